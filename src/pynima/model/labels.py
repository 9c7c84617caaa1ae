"""Target distributions over the 10 score bins, from the mean and std that TID2013 gives per image.

NIMA predicts the distribution of human opinion scores over ordered bins (TID2013: scores 0-9). TID2013 gives only
each image's mean (MOS) and ``mos_std``, so the target distribution has to be built:

* ``max_entropy(mean, std)``: the maximum-entropy distribution on 0..bins-1 with that mean and std,
  p_k proportional to exp(a k + b k^2) (a discretised Gaussian when it fits the grid), solved to 1e-6 in mean and std.
* ``max_entropy(mean)`` (no std): the mean-only maximum-entropy distribution, p_k proportional to r^k (a truncated
  geometric distribution); what earlier NIMA repositories used for TID2013, kept for comparison.

Edge cases, handled explicitly rather than left to a solver that would not converge:

* mean <= 0 or mean >= bins-1: all mass on the end bin (std ignored);
* std below the smallest the grid allows for that mean (mass on the two bins around the mean, sqrt(f(1-f)) with f the
  fractional part of the mean), or above it by at most NEAR_MIN_STD: that two-bin distribution, the limit of the
  family as b -> -inf (closer to the limit, Newton's steps underflow before the std converges);
* std above the largest the grid allows (mass on the two end bins, sqrt(m(bins-1-m))): that two-end distribution.

TID2013's ``mos_std`` is the uncertainty of the mean, not the spread of the votes (median 0.13 on a 0-9 scale, far
below any opinion spread). ``vote_std`` turns it into the std of a vote distribution; the choice is a parameter
(see its docstring) because it changes the targets a lot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from pynima.config import LABELS, VoteStd
from pynima.scale import BINS

__all__ = [
    "FIXED_VOTE_STD",
    "NEAR_MIN_STD",
    "TID2013_OBSERVERS",
    "label_distributions",
    "max_entropy",
    "moments",
    "rebin_votes",
    "std_range",
    "targets",
    "vote_std",
]

if TYPE_CHECKING:
    from pynima.datasets.record import Record


# Votes behind each TID2013 MOS, an estimate: 985 experiments over 25 references, ~39 per reference (configurable)
TID2013_OBSERVERS = 39
NEAR_MIN_STD = 1e-3  # a std this close above the smallest possible gets the two-bin limit (see the docstring)
FIXED_VOTE_STD = 1.5  # a typical opinion-score spread on a 0-9 scale (AVA's mean std is about 1.4 on 1-10)


def vote_std(mos_std: np.ndarray | float, mode: VoteStd = "sem", observers: int = TID2013_OBSERVERS) -> np.ndarray:
    """Std of the opinion-score distribution to build targets from, given TID2013's ``mos_std``.

    * ``"sem"`` (default): ``mos_std`` read as the standard error of the mean of ``observers`` votes, so the vote
      std is mos_std * sqrt(observers) (median 0.13 -> about 0.8);
    * ``"fixed"``: FIXED_VOTE_STD for every image (ignores mos_std);
    * ``"raw"``: mos_std as is (near-degenerate targets: almost all mass on the two bins around the mean).
    """
    s = np.asarray(mos_std, dtype=float)
    if mode == "sem":
        return s * math.sqrt(observers)
    if mode == "fixed":
        return np.full_like(s, FIXED_VOTE_STD)
    if mode == "raw":
        return s
    raise ValueError(f"vote std mode must be 'sem', 'fixed' or 'raw', got {mode!r}")


def _two_bin(mean: float, bins: int) -> np.ndarray:
    lo = min(int(math.floor(mean)), bins - 2)
    f = mean - lo
    p = np.zeros(bins)
    p[lo], p[lo + 1] = 1 - f, f
    return p


def std_range(mean: float, bins: int = BINS) -> tuple[float, float]:
    """(smallest, largest) std a distribution on 0..bins-1 with this mean can have."""
    f = mean - math.floor(mean)
    return math.sqrt(max(f * (1 - f), 0.0)), math.sqrt(max(mean * (bins - 1 - mean), 0.0))


def _solve(mean: float, std: float | None, bins: int, tol: float) -> np.ndarray:
    """Newton's method on the convex dual log Z(t) - t.m of the exponential family (written here because each call
    is a 1- or 2-parameter problem where a hand-rolled damped Newton step with an exact Hessian is both simpler and
    faster than scipy.optimize's general minimisers, and the tolerance is on the moments, not on the parameters).
    """
    k = np.arange(bins, dtype=float)
    z = (k - mean) / bins  # centred and scaled features: keeps exp() finite and the Hessian well-conditioned
    feats = np.stack([z, z * z]) if std is not None else z[None]
    target = np.array([0.0, (std / bins) ** 2]) if std is not None else np.zeros(1)
    theta = np.zeros(len(feats))
    for _ in range(200):
        logits = theta @ feats
        p = np.exp(logits - logits.max())
        p /= p.sum()
        mom = feats @ p
        grad = mom - target
        m_err = abs(grad[0]) * bins
        s_err = abs(math.sqrt(max(mom[1] - mom[0] ** 2, 0.0)) * bins - std) if std is not None else 0.0
        if m_err < tol and s_err < tol:
            return p
        cov = (feats * p) @ feats.T - np.outer(mom, mom)
        step = np.linalg.solve(cov + 1e-12 * np.eye(len(feats)), grad)
        # damped Newton: halve the step until the dual objective decreases
        obj = _dual(theta, feats, target)
        t = 1.0
        while t > 1e-8 and _dual(theta - t * step, feats, target) > obj:
            t /= 2
        theta = theta - t * step
    raise RuntimeError(f"max-entropy solve did not converge for mean={mean}, std={std}")


def _dual(theta: np.ndarray, feats: np.ndarray, target: np.ndarray) -> float:
    logits = theta @ feats
    mx = logits.max()
    return float(mx + np.log(np.exp(logits - mx).sum()) - theta @ target)


def max_entropy(mean: float, std: float | None = None, bins: int = BINS, tol: float = 1e-7) -> np.ndarray:
    """The maximum-entropy distribution on scores 0..bins-1 with this mean (and std, if given).

    See the module docstring for the cases at the edges of what the grid allows.
    """
    if not (math.isfinite(mean) and (std is None or math.isfinite(std))):
        raise ValueError(f"mean and std must be finite, got {mean}, {std}")
    if mean <= 0 or mean >= bins - 1:
        p = np.zeros(bins)
        p[0 if mean <= 0 else -1] = 1.0
        return p
    if std is not None:
        lo, hi = std_range(mean, bins)
        if std <= lo + NEAR_MIN_STD:
            return _two_bin(mean, bins)
        if std >= hi - tol:
            f = mean / (bins - 1)
            p = np.zeros(bins)
            p[0], p[-1] = 1 - f, f
            return p
    return _solve(mean, std, bins, tol)


def targets(means: np.ndarray, stds: np.ndarray | None, bins: int = BINS) -> np.ndarray:
    """Stack ``max_entropy`` over arrays of means (and stds; None gives the mean-only variant): (N, bins)."""
    means = np.asarray(means, float)
    if stds is None:
        return np.stack([max_entropy(m, None, bins) for m in means])
    return np.stack([max_entropy(m, s, bins) for m, s in zip(means, np.asarray(stds, float), strict=True)])


def moments(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of distributions over 0..bins-1 along the last axis."""
    k = np.arange(p.shape[-1])
    m = (p * k).sum(-1)
    return m, np.sqrt(np.maximum((p * k**2).sum(-1) - m**2, 0.0))


def rebin_votes(votes: Sequence[float], bins: int = BINS) -> np.ndarray:
    """Vote counts over n equally spaced score levels (worst first) as a distribution over ``bins`` bins spanning the
    same range: each level's share is split between the two bins around its position, so the mean is kept (KonIQ's 5
    levels 1-5 sit at 0, 2.25, 4.5, 6.75 and 9 on 0-9). n == bins gives the normalised counts as they are (AVA).
    """
    v = np.asarray(votes, dtype=float)
    if v.ndim != 1 or len(v) < 2 or not np.isfinite(v).all() or (v < 0).any() or v.sum() <= 0:
        raise ValueError(f"vote counts must be 2 or more finite non-negative numbers with a positive total, got {v}")
    v = v / v.sum()
    if len(v) == bins:
        return v
    p = np.zeros(bins)
    for x, share in zip(np.linspace(0, bins - 1, len(v)), v, strict=True):
        lo = min(int(math.floor(x)), bins - 2)
        p[lo] += share * (lo + 1 - x)
        p[lo + 1] += share * (x - lo)
    return p


def label_distributions(records: Sequence[Record], labels: str = "auto", vote: str = "sem") -> np.ndarray:
    """(N, 10) target distributions (see the module docstring).

    ``labels``: "auto" (default): each record's vote histogram where the dataset publishes one (AVA, KonIQ;
    ``rebin_votes``), else the max-entropy distribution; "maxent": max-entropy from mean and std for every record,
    votes or not; "mean-only": max-entropy from the mean alone. The std for max-entropy: the record's ``vote_sd``
    where the dataset gives the spread of the votes (KADID, KonIQ, CSIQ, LIVE Challenge), else ``vote_std`` of
    TID2013's ``mos_std`` (``vote``), else FIXED_VOTE_STD when the dataset gives no std at all (LIVE, SPAQ).
    """
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
    out = np.empty((len(records), BINS))
    for i, r in enumerate(records):
        if labels == "auto" and r.votes is not None:
            out[i] = rebin_votes(r.votes)
        elif labels == "mean-only":
            out[i] = max_entropy(r.mos, None)
        else:
            if vote == "fixed" or (r.vote_sd is None and not math.isfinite(r.mos_std)):
                std = FIXED_VOTE_STD
            else:
                std = r.vote_sd if r.vote_sd is not None else float(vote_std(r.mos_std, vote))
            out[i] = max_entropy(r.mos, std)
    return out.astype(np.float32)
