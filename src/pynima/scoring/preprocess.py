"""The one NumPy preprocessing path every engine and evaluation use: centre, grid and whole-image crops,
normalization, and the preprocessing an ONNX file declares in its metadata.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pynima.config import CROP_MODES, crop_mode
from pynima.errors import PynimaError
from pynima.scale import CROP

__all__ = ["MAX_GRID", "any_size", "check_crops", "crop_boxes", "crops", "normalize", "padding_note", "preprocessing"]

MAX_GRID = 4  # grid crops per side at most: a 12-megapixel photo gets 16 crops, not 250


def _offsets(length: int, n: int) -> list[int]:
    if n == 1:
        return [int(round((length - CROP) / 2.0))]  # torchvision CenterCrop's rounding, so evaluation matches training
    return [round(i * (length - CROP) / (n - 1)) for i in range(n)]


def check_crops(mode: str, engine=None) -> None:
    """Refuse, in one PynimaError line, a crop mode that is not one of CROP_MODES, or ``"full"`` with an ``engine``
    whose network takes 224x224 crops only (an ONNX file exported before image sizes were dynamic).
    """
    if crop_mode(mode) not in CROP_MODES:
        raise PynimaError(f"crops must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    if mode == "full" and not getattr(engine, "any_size", True):
        raise PynimaError(
            f"crops full needs a model exported with a dynamic image size; this ONNX file takes "
            f"{CROP}x{CROP} crops only (re-export its checkpoint with pynima export, or score with "
            f"crops centre or grid)"
        )


def crop_boxes(height: int, width: int, mode: str = "centre") -> list[tuple[int, int]]:
    """Top-left corners of the 224x224 crops of an image (see the module docstring)."""
    check_crops(mode)
    mode = crop_mode(mode)
    if mode == "full":
        return [(0, 0)]
    if mode == "centre" or (height <= CROP and width <= CROP):
        ny = nx = 1
    else:
        ny, nx = (min(MAX_GRID, max(1, math.ceil(s / CROP))) for s in (height, width))
    return [(y, x) for y in _offsets(height, ny) for x in _offsets(width, nx)]


def crops(image: np.ndarray, mode: str = "centre") -> np.ndarray:
    """(n, 224, 224, 3) uint8 crops, or with ``mode="full"`` the whole image as (1, H, W, 3); an image smaller than
    224 on a side is zero-padded around its centre to at least 224, as torchvision's CenterCrop does.
    """
    h, w = image.shape[:2]
    if h < CROP or w < CROP:
        padded = np.zeros((max(h, CROP), max(w, CROP), 3), np.uint8)
        y, x = (padded.shape[0] - h) // 2, (padded.shape[1] - w) // 2
        padded[y : y + h, x : x + w] = image
        image, (h, w) = padded, padded.shape[:2]
    if mode == "full":
        return image[None]
    return np.stack([image[y : y + CROP, x : x + CROP] for y, x in crop_boxes(h, w, mode)])


def padding_note(height: int, width: int) -> str | None:
    """The warning of an image that ``crops`` pads (smaller than the crop on a side), None for one it does not."""
    if height >= CROP and width >= CROP:
        return None
    return (
        f"{width}x{height} is smaller than the {CROP}x{CROP} crop; scored with zero padding, so the score is less "
        "reliable"
    )


def normalize(batch: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 NHWC crops -> float32 NCHW network input, (x / 255 - mean) / std."""
    scale = (np.float32(1 / 255) / np.asarray(std, np.float32))[:, None, None]
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32))[:, None, None]
    # Transposed while still uint8, then one contiguous float copy and two in-place passes: several times faster than
    # scaling first and transposing the float result (docs/performance.md), bit-identical numbers.
    x = batch.transpose(0, 3, 1, 2).astype(np.float32, order="C")
    x *= scale
    x -= shift
    return x


def any_size(inputs: list) -> bool:
    """Whether an ONNX network's input (shape as in ``preprocessing``) takes any image size (``crops="full"``)."""
    return not any(isinstance(d, int) and d >= 0 for d in inputs[0][2:])


def preprocessing(
    path: str | Path, meta: dict[str, str], inputs: list, outputs: list
) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """(backbone, mean, std) from the metadata ``pynima export`` writes into an ONNX file, once the file is known to be
    a NIMA network: one input of N x 3 x 224 x 224 (or N x 3 x H x W, any size) and one output of N x 10
    (``inputs``/``outputs``: their shapes, a dynamic dimension as anything but an int). Any other ONNX file is
    refused rather than scored wrongly.
    """
    if not {"pynima_backbone", "pynima_mean", "pynima_std"} <= set(meta):
        raise PynimaError(f"{path}: not exported by pynima export (no pynima metadata)")
    fixed = [[d if isinstance(d, int) and d >= 0 else None for d in shape] for shape in (*inputs, *outputs)]
    if (
        len(inputs) != 1
        or len(outputs) != 1
        or fixed[0][1:] not in ([3, CROP, CROP], [3, None, None])
        or fixed[1][1:] != [10]
    ):
        raise PynimaError(
            f"{path}: not a NIMA network (inputs {inputs}, outputs {outputs}; expected one input "
            f"N x 3 x H x W (or N x 3 x {CROP} x {CROP}) and one output N x 10)"
        )
    try:
        mean, std = (tuple(float(v) for v in meta[k].split(",")) for k in ("pynima_mean", "pynima_std"))
    except ValueError:
        mean = std = ()
    if len(mean) != 3 or len(std) != 3 or not all(map(math.isfinite, mean + std)) or min(std) <= 0:
        raise PynimaError(
            f"{path}: malformed pynima metadata (mean {meta['pynima_mean']!r}, std {meta['pynima_std']!r})"
        )
    return meta["pynima_backbone"], mean, std
