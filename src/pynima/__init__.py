"""pynima: blind (no-reference) image quality assessment with NIMA, and TID2013-format data tooling.

    import pynima
    scorer = pynima.load("runs/default/best.ckpt")
    scorer.score("photo.jpg").mean      # predicted mean opinion score, 0-9
"""

__version__ = "0.1.0"


def load(ckpt):
    """A Scorer for a checkpoint written by ``pynima train`` (see pynima.predict)."""
    from pynima.predict import load as _load

    return _load(ckpt)
