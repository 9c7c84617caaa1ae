"""A benchmark folder's results: which splits are complete, the median over splits with a two-level bootstrap
interval (splits, then images), per-dataset summaries of ``--cross``, and the printed table.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np

from pynima.errors import PynimaError
from pynima.files import atomic_path, read_json, write_json

__all__ = [
    "BENCHMARK_FILE",
    "METRICS",
    "format_summary",
    "split_and_image_interval",
    "split_complete",
    "split_dir",
    "summarize",
]

METRICS = ("srcc", "plcc", "krcc", "rmse", "emd")


BENCHMARK_FILE = "benchmark.json"


def split_dir(out: str | Path, i: int) -> Path:
    """The folder of split ``i`` in a benchmark's output folder."""
    return Path(out) / f"split_{i:02d}"


def split_and_image_interval(
    preds: list[dict[str, np.ndarray]], n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% interval of the median-over-splits of each metric, by a two-level bootstrap: resample the splits, then the
    test images within each resampled split. It therefore includes split-to-split variance as well as the sampling of
    images. Written out because scipy.stats.bootstrap resamples a single level.

    Args:
        preds: each split's predictions (``pynima.evaluation.evaluate.read_predictions``).
        n_boot: bootstrap resamples.
        seed: the resampling's seed.

    Returns:
        {metric: (low, high)} for each of ``METRICS``.
    """
    from pynima.evaluation.metrics import percentile_interval, resample_blocks, resampled_metrics

    rng = np.random.default_rng(seed)
    k = len(preds)
    chosen = rng.integers(0, k, (n_boot, k))  # resample b's slot s holds split chosen[b, s]
    values = {m: np.full((n_boot, k), np.nan) for m in METRICS}
    for j, p in enumerate(preds):  # the images of every slot that drew split j, resampled block by block
        slots, start = np.argwhere(chosen == j), 0
        for idx in resample_blocks(rng, len(p["mos"]), len(slots)):
            got = resampled_metrics(p["pred_mean"], p["mos"], idx, p["emd"])
            block, start = slots[start : start + len(idx)], start + len(idx)
            for m in METRICS:
                values[m][block[:, 0], block[:, 1]] = got[m]
    with warnings.catch_warnings():  # a resample whose every slot is constant has no median: NaN, dropped
        warnings.simplefilter("ignore", RuntimeWarning)
        return {m: percentile_interval(np.nanmedian(values[m], axis=1).tolist()) for m in METRICS}


def summarize(out: str | Path, repeats: int | None = None, n_boot: int = 1000) -> dict:
    """Collect the finished splits of a benchmark folder into results.csv and summary.json."""
    from pynima.evaluation.evaluate import read_predictions
    from pynima.evaluation.metrics import RANKING_ORDER

    out = Path(out)
    meta = read_json(out / BENCHMARK_FILE)
    repeats = repeats or meta["repeats"]
    rows, preds = [], []
    for i in range(repeats):
        d = split_dir(out, i)
        if not split_complete(d):
            continue
        m = json.loads((d / "metrics.json").read_text())
        split = json.loads((d / "split.json").read_text())
        trained = json.loads((d / "train.json").read_text())
        pred = read_predictions(d / "predictions.csv")
        rows.append(
            {
                "split": i,
                "seed": split["seed"],
                "test_refs": _refs(pred["ref"]),
                "n_test": m["n_images"],
                **{k: m[k]["value"] for k in METRICS},
                **{k: (m.get("ranking") or {}).get(k) for k in RANKING_ORDER},
                "epochs": trained["epochs"],
                "seconds": trained["seconds"],
                "cpu_seconds": trained.get("cpu_seconds"),  # None: trained before train.json recorded it
            }
        )
        preds.append(pred)
    if not rows:
        raise PynimaError(f"{out}: no finished split yet")
    with atomic_path(out / "results.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    interval = split_and_image_interval(preds, n_boot=n_boot)
    stats = {k: _spread([r[k] for r in rows]) | {"ci_low": interval[k][0], "ci_high": interval[k][1]} for k in METRICS}
    # within-reference ranking: the same spread over splits (no interval), where every split has it
    stats |= {k: _spread([r[k] for r in rows]) for k in RANKING_ORDER if all(r[k] is not None for r in rows)}
    summary = {
        "splits_finished": len(rows),
        "repeats": repeats,
        "config": meta["config"],
        "metrics": stats,
        "rows": rows,
        "cross": _cross_summary(out, repeats, n_boot),
        "interval": "95% two-level bootstrap (splits, then test images) of the median over splits",
    }
    write_json(out / "summary.json", summary)
    return summary


def _spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles, IQR, mean and std of one metric over the splits."""
    v = np.array(values, dtype=float)
    q25, q75 = np.percentile(v, [25, 75])
    return {
        "median": float(np.median(v)),
        "q25": float(q25),
        "q75": float(q75),
        "iqr": float(q75 - q25),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
    }


def _refs(refs: np.ndarray) -> str:
    """The test part's references for results.csv: listed (in numeric order when they are numbers) up to 8, else
    counted (a by-image split of camera photos has one per image).
    """
    unique = sorted({str(r) for r in refs}, key=lambda r: (not r.isdigit(), int(r) if r.isdigit() else 0, r))
    return " ".join(unique) if len(unique) <= 8 else f"{len(unique)} references"


def _cross_summary(out: Path, repeats: int, n_boot: int) -> dict:
    """Per cross dataset (``split_NN/cross/NAME``): the median over splits of each metric and its two-level
    interval, as for the test parts.
    """
    from pynima.evaluation.evaluate import read_predictions

    names = sorted(
        {
            p.name
            for i in range(repeats)
            for p in (split_dir(out, i) / "cross").glob("*")
            if (p / "metrics.json").is_file()
        }
    )
    table = {}
    for name in names:
        done = [split_dir(out, i) / "cross" / name for i in range(repeats)]
        done = [d for d in done if (d / "metrics.json").is_file()]
        metrics = [read_json(d / "metrics.json") for d in done]
        interval = split_and_image_interval([read_predictions(d / "predictions.csv") for d in done], n_boot=n_boot)
        table[name] = {
            "data": metrics[0]["data"],
            "format": metrics[0].get("format"),
            "splits": len(done),
            "n_images": metrics[0]["n_images"],
            **{
                k: {
                    "median": float(np.median([m[k]["value"] for m in metrics])),
                    "ci_low": interval[k][0],
                    "ci_high": interval[k][1],
                }
                for k in METRICS
            },
        }
    return table


def format_summary(summary: dict) -> str:
    """A benchmark's summary as a text table: per split, the median, IQR and 95% intervals."""
    from pynima.evaluation.metrics import RANKING_ORDER

    cfg = summary["config"]
    lines = [
        f"{summary['splits_finished']} of {summary['repeats']} splits, split={cfg['split']} "
        f"ratios={'/'.join(f'{r:g}' for r in cfg['ratios'])} labels={cfg['labels']} vote_std={cfg['vote_std']} "
        f"epochs={cfg['epochs']}",
        f"{'split':>5s} {'seed':>4s} {'test refs':>14s} {'n':>5s} " + " ".join(f"{k:>7s}" for k in METRICS),
    ]
    for r in summary["rows"]:
        lines.append(
            f"{r['split']:5d} {r['seed']:4d} {r['test_refs']:>14s} {r['n_test']:5d} "
            + " ".join(f"{r[k]:7.4f}" for k in METRICS)
        )
    s = summary["metrics"]
    lines.append(f"{'median':>31s} " + " ".join(f"{s[k]['median']:7.4f}" for k in METRICS))
    lines.append(f"{'IQR':>31s} " + " ".join(f"{s[k]['iqr']:7.4f}" for k in METRICS))
    lines.append(
        f"{'95% interval (splits+images)':>31s} "
        + " ".join(f"[{s[k]['ci_low']:.3f},{s[k]['ci_high']:.3f}]" for k in ("srcc", "plcc"))
    )
    ranked = [k for k in RANKING_ORDER if k in s]
    if ranked:
        lines.append(
            "within one reference (median over splits): "
            + ", ".join(
                f"{k} {s[k]['median']:.4f} (per split {' '.join(f'{r[k]:.3f}' for r in summary['rows'])})"
                for k in ranked
            )
        )
    for name, c in summary.get("cross", {}).items():
        lines.append(
            f"cross-dataset {name} ({c['format']}, {c['n_images']} images, {c['splits']} models): "
            + ", ".join(
                f"{k.upper()} {c[k]['median']:.4f} [{c[k]['ci_low']:.3f}, {c[k]['ci_high']:.3f}]"
                for k in ("srcc", "plcc")
            )
        )
    return "\n".join(lines)


def split_complete(d: Path) -> bool:
    """Whether a split folder holds a finished run: its result files exist and parse, and predictions.csv has a
    complete row per test image (a crash mid-write, or an older pynima, may have left less).
    """
    from pynima.evaluation.evaluate import read_predictions

    try:
        m, _, _ = (json.loads((d / f).read_text()) for f in ("metrics.json", "train.json", "split.json"))
        pred = read_predictions(d / "predictions.csv")
        n = len(pred.get("mos", ()))
        whole = all(not np.isnan(v).any() for v in pred.values() if v.dtype != object)  # a cut row has empty cells
        return (d / "best.ckpt").is_file() and all(k in m for k in METRICS) and whole and n == m["n_images"] > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False
