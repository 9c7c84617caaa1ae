"""Earth Mover's Distance between score distributions, NIMA's training loss."""

from __future__ import annotations

import torch

__all__ = ["emd"]


def emd(p: torch.Tensor, q: torch.Tensor, r: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """EMD between distributions over ordered bins (last axis), as in the NIMA paper.

        EMD(p, q) = ( mean_k |CDF_p(k) - CDF_q(k)|^r )^(1/r)

    computed per sample and then averaged over the batch (``reduction="mean"``) or returned per sample
    (``"none"``). Earlier NIMA repositories took the root of the batch mean, or skipped the CDF; both change the loss.
    pyiqa's ``emd_loss`` has the same per-sample form; it is not a dependency because pyiqa brings its whole model
    zoo (and OpenCV) for these few lines, and its root has an infinite gradient where p == q, which this guards.
    """
    if p.shape != q.shape:
        raise ValueError(f"shapes differ: {tuple(p.shape)} vs {tuple(q.shape)}")
    diff = (torch.cumsum(p, dim=-1) - torch.cumsum(q, dim=-1)).abs()
    m = diff.pow(r).mean(dim=-1)
    # the root's gradient is infinite at 0 (p == q): give those samples value 0 and gradient 0 instead of NaN. Only
    # exact zeros: a NaN sample (a diverged network) stays NaN, so that training and evaluation see it
    zero = m == 0
    per_sample = torch.where(zero, torch.zeros_like(m), torch.where(zero, torch.ones_like(m), m).pow(1.0 / r))
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
