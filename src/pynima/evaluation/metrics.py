"""Agreement between predicted and human scores: SRCC, KRCC, PLCC (raw and after the 4-parameter logistic), RMSE, EMD,
each with a 95% bootstrap interval (scipy.stats).
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit

__all__ = [
    "CORRELATIONS",
    "METRIC_ORDER",
    "RANKING_ORDER",
    "evaluate_scores",
    "fit_logistic",
    "logistic4",
    "percentile_interval",
    "point_metrics",
    "spearman_interval",
    "type_order",
    "within_reference",
]

log = logging.getLogger(__name__)

METRIC_ORDER = ("srcc", "plcc", "plcc_logistic", "krcc", "rmse", "emd")  # the order of every table
CORRELATIONS = ("srcc", "krcc", "plcc", "plcc_logistic")


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The usual monotone 4-parameter logistic of IQA papers (VQEG): (b1 - b2) / (1 + exp(-(x - b3)/|b4|)) + b2."""
    with np.errstate(over="ignore"):  # exp overflow is the logistic's flat tail, exactly what 1/(1+inf) gives
        return (b1 - b2) / (1 + np.exp(-(x - b3) / (abs(b4) + 1e-9))) + b2


def fit_logistic(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``pred`` mapped to ``true``'s scale by the fitted logistic (identity if the fit fails)."""
    p0 = [true.max(), true.min(), float(np.mean(pred)), float(np.std(pred)) + 1e-3]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(logistic4, pred, true, p0=p0, maxfev=10000)
    except (RuntimeError, ValueError, TypeError):  # TypeError: fewer points than parameters
        return pred
    return logistic4(pred, *params)


def point_metrics(
    pred: np.ndarray, true: np.ndarray, emd: np.ndarray | None = None, logistic: bool = True
) -> dict[str, float]:
    """Each metric once; ``emd`` is the per-sample EMD, averaged here. ``logistic=False`` leaves out plcc_logistic
    (a curve fit: slow inside a bootstrap). Correlations are NaN when either side is constant (undefined).
    """
    if np.ptp(pred) == 0 or np.ptp(true) == 0:
        out = {k: float("nan") for k in CORRELATIONS if logistic or k != "plcc_logistic"}
    else:
        out = {
            "srcc": float(stats.spearmanr(pred, true).statistic),
            "krcc": float(stats.kendalltau(pred, true).statistic),
            "plcc": float(stats.pearsonr(pred, true).statistic),
        }
        if logistic:
            fitted = fit_logistic(pred, true)  # a fit that flattens completely leaves nothing to correlate
            out["plcc_logistic"] = float(stats.pearsonr(fitted, true).statistic) if np.ptp(fitted) > 0 else math.nan
    out["rmse"] = float(np.sqrt(np.mean((pred - true) ** 2)))
    if emd is not None:
        out["emd"] = float(np.mean(emd))
    return out


def evaluate_scores(
    pred: np.ndarray, true: np.ndarray, emd: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """{metric: {"value", "ci_low", "ci_high"}}: point estimates and 95% percentile bootstrap intervals over images.

    ``emd``: per-image EMD between predicted and target distributions (``pynima.model.losses.emd(...,
    reduction="none")``).

    The interval reflects only image sampling within this test set, not split-to-split variance. The resampling loop
    is written out (not scipy.stats.bootstrap) so that all metrics share each resample and the logistic is refitted
    inside it.
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    point = point_metrics(pred, true, emd)
    if np.ptp(pred) == 0 or np.ptp(true) == 0:
        log.warning(
            "every %s is %.4g: the correlations are undefined (NaN)",
            *(("prediction", pred[0]) if np.ptp(pred) == 0 else ("label", true[0])),
        )
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    n = len(pred)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)  # a resample with a constant side gives NaN correlations, dropped below
        for k, v in point_metrics(pred[idx], true[idx], None if emd is None else emd[idx]).items():
            boots[k].append(v)
    return {
        k: {"value": point[k]} | dict(zip(("ci_low", "ci_high"), percentile_interval(boots[k]), strict=True))
        for k in point
    }


def percentile_interval(values: list[float]) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap values; NaN when no resample gave one (constant predictions)."""
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def spearman_interval(rho: float, n: int) -> tuple[float, float]:
    """95% interval of Spearman's rho from n pairs: Fisher's z with the variance 1.06 / (n - 3) of Fieller, Hartley and
    Pearson (1957); cheap enough for every distortion type of every evaluation, where a bootstrap per type is not.
    """
    if n <= 3 or not math.isfinite(rho):
        return math.nan, math.nan
    z, half = math.atanh(min(max(rho, -0.999999), 0.999999)), 1.959964 * math.sqrt(1.06 / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def type_order(kind: object) -> tuple:
    """Sort key of distortion types: numeric order (TID2013, KADID), then by name (LIVE's "jpeg", CSIQ's "awgn")."""
    text = str(kind)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


RANKING_ORDER = ("clean_beats_level1", "ordered_pairs", "per_reference_srcc")  # within-reference measures, in order


def within_reference(
    pred: np.ndarray, mos: np.ndarray, ref: np.ndarray, kind: np.ndarray, level: np.ndarray, clean: dict | None = None
) -> dict:
    """How well versions of one picture are ranked, the use a no-reference model is bought for.

    Args:
        pred: predicted scores of the distorted images.
        mos: their human scores.
        ref: each image's reference.
        kind: each image's distortion type.
        level: each image's distortion level (level 0: none, left out).
        clean: the predicted score of each reference's clean image, by reference; None or {} if the dataset ships
            none.

    Returns:
        ``clean_beats_level1``: over (reference, type) groups with a clean image, the share in which the clean image
        scores strictly above the lowest level; ``ordered_pairs``: the mean over groups of the share of pairs ordered
        as humans order them (the clean image above all, versions by MOS; pairs of equal MOS skipped; a tie in
        prediction counts as wrong); ``per_reference_srcc``: the median over references of the SRCC within one
        reference (all its types), with ``per_reference`` giving each; ``ordered_pairs_per_type``: the mean share
        over each type's groups, by type, which says where the order is lost; ``groups`` and ``references`` counted.
        Levels are ordered by MOS, not by number: TID2013's contrast change and mean shift alternate direction.
    """
    clean = clean or {}
    pred, mos = np.asarray(pred, float), np.asarray(mos, float)
    ref, kind, level = (np.asarray(a, dtype=object) for a in (ref, kind, level))
    has_level = np.array([int(v) > 0 for v in level], bool)
    beats, shares, by_type = [], [], {}
    for r, k in sorted({(a, b) for a, b, h in zip(ref, kind, has_level, strict=True) if h}, key=str):
        sel = np.flatnonzero((ref == r) & (kind == k) & has_level)
        p, m = list(pred[sel]), list(mos[sel])
        if r in clean:
            lowest = sel[np.argmin([int(level[i]) for i in sel])]
            beats.append(clean[r] > pred[lowest])
            p, m = [clean[r], *p], [math.inf, *m]
        pairs = [(i, j) for i in range(len(p)) for j in range(len(p)) if m[i] > m[j]]
        if pairs:
            shares.append(np.mean([p[i] > p[j] for i, j in pairs]))
            by_type.setdefault(str(k), []).append(shares[-1])
    per_reference = {}
    for r in sorted(set(ref[has_level].tolist()), key=str):
        sel = (ref == r) & has_level
        if sel.sum() > 2 and np.ptp(pred[sel]) > 0 and np.ptp(mos[sel]) > 0:
            per_reference[str(r)] = float(stats.spearmanr(pred[sel], mos[sel]).statistic)
    return {
        "clean_beats_level1": float(np.mean(beats)) if beats else math.nan,
        "ordered_pairs": float(np.mean(shares)) if shares else math.nan,
        "per_reference_srcc": float(np.median(list(per_reference.values()))) if per_reference else math.nan,
        "per_reference": per_reference,
        "ordered_pairs_per_type": {k: float(np.mean(by_type[k])) for k in sorted(by_type, key=type_order)},
        "groups": len(shares),
        "groups_with_clean": len(beats),
        "references": len(per_reference),
    }
