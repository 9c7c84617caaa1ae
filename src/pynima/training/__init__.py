"""Training NIMA with Lightning: training items and samplers, the LightningModule, ``train()``, the benchmark and the
search.
"""
