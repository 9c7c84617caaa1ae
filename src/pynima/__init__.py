"""pynima: blind (no-reference) image quality assessment with NIMA, and TID2013-format data tooling.

    import pynima
    scorer = pynima.load("runs/default/best.ckpt")      # or an .onnx file from `pynima export`
    scorer.score("photo.jpg").mean      # predicted mean opinion score, 0-9
"""

__version__ = "0.1.0"


def load(path, engine=None, crops="centre", bf16=False):
    """A Scorer for a ``pynima train`` checkpoint or a ``pynima export`` ONNX file (see pynima.predict.load)."""
    from pynima.predict import load as _load

    return _load(path, engine=engine, crops=crops, bf16=bf16)
