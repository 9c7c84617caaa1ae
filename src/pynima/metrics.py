"""Agreement between predicted and human scores: SRCC, KRCC, PLCC (raw and after the 4-parameter logistic), RMSE, EMD,
each with a 95% bootstrap interval (scipy.stats)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeWarning, curve_fit

NAMES = ("srcc", "krcc", "plcc", "plcc_logistic", "rmse", "emd")


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


def point_metrics(pred: np.ndarray, true: np.ndarray, emd: np.ndarray | None = None) -> dict[str, float]:
    """Each metric once; ``emd`` is the per-sample EMD, averaged here."""
    out = {
        "srcc": float(stats.spearmanr(pred, true).statistic),
        "krcc": float(stats.kendalltau(pred, true).statistic),
        "plcc": float(stats.pearsonr(pred, true).statistic),
        "plcc_logistic": float(stats.pearsonr(fit_logistic(pred, true), true).statistic),
        "rmse": float(np.sqrt(np.mean((pred - true) ** 2))),
    }
    if emd is not None:
        out["emd"] = float(np.mean(emd))
    return out


def evaluate_scores(pred: np.ndarray, true: np.ndarray, emd: np.ndarray | None = None, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """{metric: {"value", "ci_low", "ci_high"}}: point estimates and 95% percentile bootstrap intervals over images.

    ``emd``: per-image EMD between predicted and target distributions (``pynima.losses.emd(..., reduction="none")``).

    The interval reflects only image sampling within this test set, not split-to-split variance. The resampling loop
    is written out (not scipy.stats.bootstrap) so that all metrics share each resample and the logistic is refitted
    inside it.
    """
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    point = point_metrics(pred, true, emd)
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in point}
    n = len(pred)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if np.ptp(pred[idx]) == 0 or np.ptp(true[idx]) == 0:
            continue
        for k, v in point_metrics(pred[idx], true[idx], None if emd is None else emd[idx]).items():
            boots[k].append(v)
    return {k: {"value": point[k], "ci_low": float(np.percentile(boots[k], 2.5)),
                "ci_high": float(np.percentile(boots[k], 97.5))} for k in point}
