"""pynima: blind (no-reference) image quality assessment with NIMA, and TID2013-format data tooling.

    import pynima
    scorer = pynima.load()              # the bundled model; or a checkpoint from `pynima train`, an .onnx export
    scorer.score("photo.jpg").mean      # predicted mean opinion score, 0-9
"""

__version__ = "0.1.0"


def load(path=None, engine=None, crops=None, bf16=False):
    """A Scorer for a ``pynima train`` checkpoint, a ``pynima export`` ONNX file, or (no ``path``) the model bundled
    with pynima (see pynima.predict.load)."""
    from pynima.predict import load as _load

    return _load(path, engine=engine, bf16=bf16, **({"crops": crops} if crops else {}))
