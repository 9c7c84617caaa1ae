"""Agreement between predicted and human scores: SRCC, KRCC, PLCC (raw and after the 4-parameter logistic), RMSE, EMD,
each with a 95% bootstrap interval (scipy.stats).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator

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
    "resample_blocks",
    "resampled_metrics",
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

    Args:
        pred: predicted scores.
        true: human scores.
        emd: per-image EMD between predicted and target distributions (``pynima.model.losses.emd(...,
            reduction="none")``), or None.
        n_boot: bootstrap resamples.
        seed: the resampling's seed.

    Returns:
        Each metric of ``point_metrics`` with its interval. The interval reflects only image sampling within this test
        set, not split-to-split variance. All metrics share each resample (written out, not scipy.stats.bootstrap,
        which resamples one statistic at a time). PLCC after the logistic keeps the mapping fitted on all images, as
        VQEG's procedure maps scores once before correlating; refitting it in every resample costs a curve fit each
        and barely moves the interval (bench/bootstrap.py; docs/performance.md).
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    point = point_metrics(pred, true, emd)
    if np.ptp(pred) == 0 or np.ptp(true) == 0:
        log.warning(
            "every %s is %.4g: the correlations are undefined (NaN)",
            *(("prediction", pred[0]) if np.ptp(pred) == 0 else ("label", true[0])),
        )
    fitted = fit_logistic(pred, true)  # point_metrics fits the same on its own; the resamples reuse it
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    for idx in resample_blocks(rng, len(pred), n_boot):  # a resample with a constant side gives NaN, dropped
        for k, v in resampled_metrics(pred, true, idx, emd, fitted).items():
            boots[k].extend(v.tolist())
    return {
        k: {"value": point[k]} | dict(zip(("ci_low", "ci_high"), percentile_interval(boots[k]), strict=True))
        for k in point
    }


RESAMPLE_CELLS = 1_000_000  # image indices per block of resamples: bounds the bootstrap's memory
KENDALL_PAIRS_MAX = 2000  # up to this many images, Kendall's tau of all resamples at once from (n x n) sign matrices


def resample_blocks(rng: np.random.Generator, n: int, count: int) -> Iterator[np.ndarray]:
    """``count`` bootstrap resamples of ``n`` images, as (rows, n) index blocks of about RESAMPLE_CELLS indices."""
    rows = max(1, RESAMPLE_CELLS // max(n, 1))
    for start in range(0, count, rows):
        yield rng.integers(0, n, (min(rows, count - start), n))


def resampled_metrics(
    pred: np.ndarray, true: np.ndarray, idx: np.ndarray, emd: np.ndarray | None = None, fitted: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """``point_metrics`` of each resample at once, for the bootstrap.

    Args:
        pred: predicted scores.
        true: human scores.
        idx: (resamples, n) image indices, a resample a row.
        emd: per-image EMD, or None.
        fitted: ``pred`` mapped by the logistic fitted on all images (for plcc_logistic), or None to leave it out.

    Returns:
        {metric: one value per resample}; correlations are NaN where either side of a resample is constant.

    Written out because scipy.stats' correlations take one sample at a time, and those calls were the bulk of an
    evaluation's time; tests/test_metrics.py checks every row against ``point_metrics`` (scipy).
    """
    p, t = pred[idx], true[idx]
    constant = (np.ptp(p, axis=1) == 0) | (np.ptp(t, axis=1) == 0)
    out = {
        "srcc": _row_pearson(stats.rankdata(p, axis=1), stats.rankdata(t, axis=1)),
        "krcc": _row_kendall(pred, true, idx),
        "plcc": _row_pearson(p, t),
    }
    if fitted is not None:
        out["plcc_logistic"] = _row_pearson(fitted[idx], t)
    for k in out:
        out[k][constant] = np.nan
    out["rmse"] = np.sqrt(np.mean((p - t) ** 2, axis=1))
    if emd is not None:
        out["emd"] = np.mean(np.asarray(emd, float)[idx], axis=1)
    return out


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``a`` with the same row of ``b`` (NaN where a row is constant)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(np.sum(a * b, axis=1) / den, -1.0, 1.0)


def _row_kendall(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Kendall's tau-b (scipy's default) of each resample ``(x[row], y[row])``.

    A resample holds image i ``w_i`` times, so its pair sums are quadratic forms of the counts w over the sign
    matrices of the original images: (concordant - discordant) = w' (Sx * Sy) w / 2 and the pairs untied in x =
    w' |Sx| w / 2, with copies of one image tied in both. One matrix product then serves every resample; past
    KENDALL_PAIRS_MAX images the matrices would be too large and each resample goes to scipy.
    """
    n = len(x)
    if n > KENDALL_PAIRS_MAX:
        return np.array([stats.kendalltau(x[row], y[row]).statistic for row in idx], float)
    rows = np.arange(len(idx))[:, None]
    w = np.bincount((rows * n + idx).ravel(), minlength=len(idx) * n).reshape(len(idx), n).astype(float)
    sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    num = np.sum((w @ (sx * sy)) * w, axis=1)
    den = np.sqrt(np.sum((w @ np.abs(sx)) * w, axis=1) * np.sum((w @ np.abs(sy)) * w, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(num / den, -1.0, 1.0)


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
