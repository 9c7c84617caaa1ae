"""Scoring images with a trained model: paths, preprocessing, the ONNX/torch/OpenVINO engines, ``Scorer``, export,
Ray.
"""
