"""Full-reference quality metrics (piq) of distorted images against their reference.

Used to label synthetic data (pseudo-MOS) and to check how faithful a synthesized TID2013 is (bench/synth_fidelity.py).
All metrics are "higher is better".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FR_METRICS", "fr_scores"]

FR_METRICS: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "fsim", "fsimc")


def fr_scores(
    reference: np.ndarray, images: Sequence[np.ndarray], metrics: Sequence[str] = FR_METRICS
) -> dict[str, np.ndarray]:
    """Score each (H, W, 3) uint8 image in ``images`` against ``reference`` with piq.

    psnr: over RGB; ssim: piq's default (Gaussian window, 2x downsampling as in the original MATLAB code);
    ms_ssim: 5 scales; fsim: greyscale FSIM; fsimc: FSIM with the chromatic term (FSIMc).
    """
    import piq
    import torch

    unknown = set(metrics) - set(FR_METRICS)
    if unknown:
        raise ValueError(f"unknown FR metric(s) {sorted(unknown)}; known: {', '.join(FR_METRICS)}")

    def tensor(a: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.array(a)).permute(0, 3, 1, 2).float() / 255

    y = tensor(np.stack(list(images)))
    x = tensor(reference[None]).expand_as(y)
    fns = {
        "psnr": lambda: piq.psnr(y, x, data_range=1.0, reduction="none"),
        "ssim": lambda: piq.ssim(y, x, data_range=1.0, reduction="none"),
        "ms_ssim": lambda: piq.multi_scale_ssim(y, x, data_range=1.0, reduction="none"),
        "fsim": lambda: piq.fsim(y, x, data_range=1.0, reduction="none", chromatic=False),
        "fsimc": lambda: piq.fsim(y, x, data_range=1.0, reduction="none", chromatic=True),
    }
    with torch.no_grad():
        scores = {m: fns[m]().double().numpy() for m in metrics}
    if "psnr" in scores:  # identical images give inf; cap like pynima.synth.distortions.psnr
        scores["psnr"] = np.minimum(scores["psnr"], 100.0)
    return scores
