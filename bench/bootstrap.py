"""The bootstrap intervals of ``pynima evaluate`` (pynima.evaluation.metrics.evaluate_scores), against the loop they
replaced: scipy's correlations called once per resample, with the logistic refitted in each.

Both run on the same resamples of the same predictions; prints each one's time, the ratio, and per metric how far
the interval ends moved (0 up to rounding for all but plcc_logistic, whose mapping is now fitted once on all images).

    python bench/bootstrap.py [PREDICTIONS_CSV ...] [--resamples 1000]

PREDICTIONS_CSV: a predictions.csv of ``pynima train``, ``evaluate`` or ``benchmark``; without one, 480 synthetic
scores (a TID2013 test part's size, correlation about 0.8).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def loop_intervals(pred: np.ndarray, true: np.ndarray, emd: np.ndarray, idx: np.ndarray) -> dict:
    """The former bootstrap: point_metrics (scipy, logistic refitted) of each resample in turn."""
    from pynima.evaluation.metrics import percentile_interval, point_metrics

    boots: dict[str, list[float]] = {}
    for row in idx:
        for k, v in point_metrics(pred[row], true[row], emd[row]).items():
            boots.setdefault(k, []).append(v)
    return {k: percentile_interval(v) for k, v in boots.items()}


def block_intervals(pred: np.ndarray, true: np.ndarray, emd: np.ndarray, idx: np.ndarray) -> dict:
    """The bootstrap as evaluate_scores runs it: every resample at once, the logistic fitted once."""
    from pynima.evaluation.metrics import fit_logistic, percentile_interval, resampled_metrics

    got = resampled_metrics(pred, true, idx, emd, fit_logistic(pred, true))
    return {k: percentile_interval(v.tolist()) for k, v in got.items()}


def main() -> None:
    from pynima.evaluation.evaluate import read_predictions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions", nargs="*", help="predictions.csv files (default: synthetic scores)")
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    sets = {}
    for path in args.predictions:
        p = read_predictions(path)
        sets[path] = (p["pred_mean"], p["mos"], p["emd"])
    if not sets:
        rng = np.random.default_rng(0)
        true = rng.uniform(1, 7, 480)
        sets["synthetic (480)"] = (true + rng.normal(0, 1.0, 480), true, rng.uniform(0.03, 0.1, 480))
    header = f"{'predictions':40s} {'images':>6s} {'loop s':>8s} {'blocks s':>8s} {'speed-up':>8s}"
    print(f"{header}  largest move of an end")
    for name, (pred, true, emd) in sets.items():
        idx = np.random.default_rng(0).integers(0, len(pred), (args.resamples, len(pred)))
        t0 = time.perf_counter()
        old = loop_intervals(pred, true, emd, idx)
        t1 = time.perf_counter()
        new = block_intervals(pred, true, emd, idx)
        t2 = time.perf_counter()
        moves = ", ".join(f"{k} {max(abs(a - b) for a, b in zip(old[k], new[k], strict=True)):.1e}" for k in old)
        print(f"{name[-40:]:40s} {len(pred):6d} {t1 - t0:8.2f} {t2 - t1:8.3f} {(t1 - t0) / (t2 - t1):7.0f}x  {moves}")


if __name__ == "__main__":
    main()
