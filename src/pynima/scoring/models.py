"""The one way to load a model: ``load(path_or_None)`` takes a checkpoint, an ONNX file or nothing (the bundled
model, docs/model-card.md) and picks the engine.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pynima.config import DEFAULT_CROPS, ENGINES
from pynima.errors import PynimaError
from pynima.scoring.engines import OnnxEngine, OpenVinoEngine, TorchEngine
from pynima.scoring.scorer import Scorer

__all__ = ["BUNDLED_MODEL", "MODEL_SUFFIXES", "bundled_model", "exported_sidecar", "load"]

log = logging.getLogger(__name__)


BUNDLED_MODEL = "nima-tid2013-lite0.onnx"  # shipped inside the package; what it is: docs/model-card.md


MODEL_SUFFIXES = (".ckpt", ".onnx", ".pt", ".pth")  # how the CLI tells a model from an image


def bundled_model() -> Path:
    """The model that ships inside the package (docs/model-card.md), scored with when no model is given."""
    path = Path(__file__).parents[1] / BUNDLED_MODEL  # at the package root: the package ships it, not one layer
    if not path.is_file():
        raise PynimaError(
            f"this install has no bundled model ({path} is missing): give a model, a checkpoint "
            f"from pynima train or an .onnx file from pynima export"
        )
    return path


def exported_sidecar(ckpt: str | Path) -> Path | None:
    """The ONNX export next to a checkpoint (``best.onnx`` for ``best.ckpt``, written by ``pynima train`` and
    ``pynima export``), if it exists and is not older than the checkpoint.
    """
    onnx = Path(ckpt).with_suffix(".onnx")
    try:
        return onnx if onnx.stat().st_mtime >= Path(ckpt).stat().st_mtime else None
    except OSError:
        return None


def load(
    path: str | Path | None = None,
    engine: str | None = None,
    crops: str = DEFAULT_CROPS,
    bf16: bool = False,
    device: str = "cpu",
) -> Scorer:
    """A Scorer for a ``pynima train`` checkpoint or a ``pynima export`` ONNX file; with no ``path``, for the model
    bundled with pynima (``bundled_model()``).

    ``engine``: ``onnx`` (ONNX Runtime) or ``openvino`` (both read the ONNX file, or the up-to-date export next to a
    checkpoint), ``torch``, or None/``auto``: an ``.onnx`` file runs on ONNX Runtime, and so does a checkpoint with an
    up-to-date export next to it (same network, distributions equal to 1e-4; it starts in a fraction of the time
    because it needs neither torch nor timm); other checkpoints run on PyTorch. ``bf16``: bfloat16 arithmetic on the
    torch and openvino engines (auto then picks openvino for an export), faster on CPUs with AMX or AVX-512 BF16 but
    not bit-equal, so measure it on your data (``bench/throughput.py`` does). ``device``: ``cpu``, or ``cuda[:N]``
    (the onnx engine with onnxruntime-gpu installed, or the torch engine with a CUDA build of torch) or ``mps``
    (torch); a device this machine lacks is a one-line PynimaError.
    """
    path = bundled_model() if path is None else Path(path)
    exported = path if path.suffix.lower() == ".onnx" else exported_sidecar(path)
    if engine in (None, "auto") and exported is not None and exported != path:
        try:  # the export next to a checkpoint is a cache of it: if it cannot be used, the checkpoint still can
            return load(exported, engine="openvino" if bf16 else "onnx", crops=crops, bf16=bf16, device=device)
        except PynimaError as e:
            log.warning("%s; scoring with the checkpoint on PyTorch instead", e)
            exported = None
    if engine in (None, "auto"):
        engine = ("openvino" if bf16 else "onnx") if exported else "torch"
    if engine not in ENGINES:
        raise PynimaError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine in ("onnx", "openvino"):
        if exported is None:
            raise PynimaError(f"{path}: the {engine} engine needs an .onnx file; make one with: pynima export {path}")
        if engine == "onnx":
            if bf16:
                raise PynimaError("bf16 runs on the torch and openvino engines, not onnx")
            return Scorer(OnnxEngine(exported, device=device), crops=crops)
        if device != "cpu":
            raise PynimaError(f"device {device}: the openvino engine runs on the CPU here; use --engine onnx or torch")
        return Scorer(OpenVinoEngine(exported, precision="bf16" if bf16 else "f32"), crops=crops)
    if path.suffix.lower() == ".onnx":
        raise PynimaError(f"{path}: an ONNX file runs on the onnx or openvino engine (--engine onnx)")
    return Scorer(TorchEngine.from_checkpoint(path, bf16=bf16, device=device), crops=crops)
