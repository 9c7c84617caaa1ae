"""pynima: blind (no-reference) image quality assessment with NIMA, and TID2013-format data tooling.

import pynima
scorer = pynima.load()              # the bundled model; or a checkpoint from `pynima train`, an .onnx export
scorer.score("photo.jpg").mean      # predicted mean opinion score, 0-9
"""

__version__ = "0.1.0"


def load(path=None, engine=None, crops=None, bf16=False, device="cpu"):
    """A Scorer for a ``pynima train`` checkpoint, a ``pynima export`` ONNX file, or (no ``path``) the model bundled
    with pynima, on ``device`` (cpu, cuda[:N], mps; see pynima.scoring.models.load).
    """
    from pynima.scoring.models import load as _load

    return _load(path, engine=engine, bf16=bf16, device=device, **({"crops": crops} if crops else {}))


def metric(device="cpu", as_loss=False, crops=None, model=None):
    """The bundled model as a ``torch.nn.Module`` on ``(N, 3, H, W)`` tensors, for training loops and GPU (see
    pynima.scoring.metric.metric; needs pynima[train] for torch).
    """
    from pynima.scoring.metric import metric as _metric

    return _metric(device, as_loss=as_loss, model=model, **({"crops": crops} if crops else {}))
