"""``pynima.metric()``: the bundled model as a ``torch.nn.Module`` on tensors, for code written for pyiqa, piq or
torchmetrics: ``(N, 3, H, W)`` images in, ``(N,)`` scores out, on any torch device, differentiable with
``as_loss=True`` (to train a restoration model against it).

The weights are read from the bundled ONNX file itself, so there is one copy of them. Its export folded each
BatchNorm into the convolution before it (ONNX's constant folding), so the convolutions get the folded weights and
each BatchNorm becomes the identity plus the folded bias; ``tests/test_metric.py`` checks the result against ONNX
Runtime.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pynima.config import DEFAULT_CROPS, crop_mode
from pynima.errors import PynimaError
from pynima.scale import CROP, SCORE_RANGE
from pynima.scoring.engines import torch_device
from pynima.scoring.models import bundled_model
from pynima.scoring.preprocess import check_crops, crop_boxes

__all__ = ["NIMAMetric", "metric", "nima_from_onnx"]


def nima_from_onnx(path: str | Path) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """The NIMA module of a ``pynima export`` ONNX file, with its input normalization.

    Args:
        path: an ONNX file written by ``pynima export`` (the bundled model by default in ``metric``).

    Returns:
        (model in eval mode, mean, std): the network expects ``(x - mean) / std`` of RGB in [0, 1].
    """
    import onnx
    from onnx import numpy_helper

    from pynima.model.network import create_model

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    if "pynima_backbone" not in meta:
        raise PynimaError(f"{path}: not a pynima export (no pynima_backbone in its metadata)")
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in proto.graph.initializer}
    model = create_model(meta["pynima_backbone"], pretrained=False).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    folded = [(n.input[1], n.input[2] if len(n.input) > 2 else None) for n in proto.graph.node if n.op_type == "Conv"]
    if len(folded) != len(convs) or len(norms) != len(convs):
        raise PynimaError(
            f"{path}: {len(folded)} convolutions in the ONNX graph, {len(convs)} in "
            f"{meta['pynima_backbone']}: not an export of this network"
        )
    with torch.no_grad():
        # modules() walks the backbone in the order it runs, as the exported graph's nodes are ordered; every
        # convolution of these backbones is followed by its BatchNorm, which the export folded into it
        for conv, norm, (w, b) in zip(convs, norms, folded, strict=True):
            if weights[w].shape != conv.weight.shape or b is None:
                raise PynimaError(f"{path}: convolution {w} does not match {meta['pynima_backbone']}")
            conv.weight.copy_(weights[w])
            norm.weight.fill_(1.0)
            norm.bias.copy_(weights[b])
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)  # (x - 0) / sqrt(var + eps) = x
        linear = model.head[1]
        linear.weight.copy_(weights["head.1.weight"])
        linear.bias.copy_(weights["head.1.bias"])
    mean = tuple(float(v) for v in meta.get("pynima_mean", "0.5,0.5,0.5").split(","))
    std = tuple(float(v) for v in meta.get("pynima_std", "0.5,0.5,0.5").split(","))
    return model, mean, std


class NIMAMetric(nn.Module):
    """The mean opinion score (0-9, higher is better) of each image of a batch.

    Input: ``(N, 3, H, W)`` RGB, float in [0, 1] or uint8 in [0, 255]. Output: ``(N,)``; with ``as_loss=True``
    ``9 - score`` (lower is better, differentiable with respect to the input), else the score without gradients.
    """

    score_range = SCORE_RANGE

    def __init__(self, model: nn.Module, mean, std, crops: str = DEFAULT_CROPS, as_loss: bool = False) -> None:
        super().__init__()
        check_crops(crops)
        self.net, self.crops, self.as_loss = model.eval(), crop_mode(crops), as_loss
        self.net.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.register_buffer("bins", torch.arange(10, dtype=torch.float32))

    @property
    def lower_better(self) -> bool:
        """Whether a lower output is better: True for the loss (``as_loss=True``), False for the score."""
        return self.as_loss

    def train(self, mode: bool = True) -> NIMAMetric:
        """Training or evaluation mode of the wrapper; the network stays in eval mode (no dropout, fixed BatchNorm)."""
        super().train(mode)
        self.net.eval()  # dropout and BatchNorm stay as in scoring, also inside a training loop
        return self

    def distribution(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 10) probabilities of the scores 0-9, crops as in ``pynima predict`` (distributions averaged)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise PynimaError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        h, w = x.shape[-2:]
        if h < CROP or w < CROP:  # zero padding around the centre, as pynima predict does
            top, left = (max(CROP - h, 0)) // 2, (max(CROP - w, 0)) // 2
            x = nn.functional.pad(x, (left, max(CROP - w, 0) - left, top, max(CROP - h, 0) - top))
            h, w = x.shape[-2:]
        x = (x - self.mean) / self.std
        if self.crops == "full":
            return self.net(x)
        boxes = crop_boxes(h, w, self.crops)
        return torch.stack([self.net(x[..., y : y + CROP, c : c + CROP]) for y, c in boxes]).mean(0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N,) scores, higher is better (with ``as_loss``: ``9 - score``, differentiable); NaN is an error."""
        with torch.set_grad_enabled(self.as_loss and torch.is_grad_enabled()):
            score = self.distribution(images) @ self.bins
        if not torch.isfinite(score).all():  # a NaN must not pass as a score, nor as a loss that trains on
            raise PynimaError("non-finite score: the images hold NaN or infinite values")
        return SCORE_RANGE[1] - score if self.as_loss else score


def metric(
    device: str | torch.device = "cpu",
    as_loss: bool = False,
    crops: str = DEFAULT_CROPS,
    model: str | Path | None = None,
) -> NIMAMetric:
    """The bundled model (or ``model``, a ``pynima export`` ONNX file) as a torch metric, as pyiqa's
    ``create_metric`` gives one.

    Args:
        device: where it runs: "cpu", "cuda", "cuda:1", "mps"; a missing device is one PynimaError line.
        as_loss: output ``9 - score`` with gradients (lower is better), to use as a training loss.
        crops: one of pynima.config.CROP_MODES (or "center"): how an image is scored, as in ``pynima predict --crops``.
        model: an ONNX file from ``pynima export``; default the bundled model.

    Returns:
        A ``torch.nn.Module`` mapping ``(N, 3, H, W)`` images to ``(N,)`` outputs, with ``lower_better`` and
        ``score_range`` attributes.
    """
    check_crops(crops)
    target = torch_device(device)
    net, mean, std = nima_from_onnx(model or bundled_model())
    return NIMAMetric(net, mean, std, crops=crops, as_loss=as_loss).to(target)
