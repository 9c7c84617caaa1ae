"""``pynima benchmark``: K seeded splits, one model per split, and the median with its spread.

One train/test split gives one number whose interval ignores how much the number moves from split to split. The
field's protocol (HyperIQA, pyiqa, LoDa) is 10 random 80/20 splits by reference image, reporting the median; this runs
it with any ratios and any training configuration, and with ``split="random"`` runs the leaky per-image protocol of the
reference implementation on the same budget for comparison.

Layout of ``OUT``::

    benchmark.json    the configuration every split was trained with, and K
    split_00/ ...     one complete run per split (split.json, config.json, best.ckpt, metrics.json, predictions.csv)
      cross/NAME/     with ``--cross``: the split's model scored on every image of another dataset
    results.csv       one row per split
    summary.json      median, interquartile range, and a 95% interval that includes split-to-split variance; with
                      ``--cross``, the same for each other dataset (cross-dataset generalization)

Runs resume: a split whose outputs are complete and readable (``split_complete``) is kept, so rerunning the same
command after an interruption continues with the first unfinished split, from its ``last.ckpt`` when it has one (as
``pynima train --resume``), from scratch otherwise. Only one process at a time works in ``OUT`` (a lock). Any row
reruns alone with ``pynima train --config OUT/split_NN/config.json --out OTHER``.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pynima.errors import PynimaError
from pynima.files import atomic_path, folder_lock, read_json, write_json

__all__ = [
    "BENCHMARK_FILE",
    "METRICS",
    "PER_SPLIT",
    "cross_name",
    "format_summary",
    "next_step",
    "run_benchmark",
    "split_and_image_interval",
    "split_complete",
    "split_dir",
    "summarize",
]

log = logging.getLogger(__name__)

METRICS = ("srcc", "plcc", "krcc", "rmse", "emd")
BENCHMARK_FILE = "benchmark.json"
# config fields that differ between the splits of one benchmark, or do not change its results, so they are not part
# of its identity (a resumed benchmark may change them)
PER_SPLIT = ("out", "seed", "split_file", "num_workers", "export_onnx", "accelerator", "strategy")


def split_dir(out: str | Path, i: int) -> Path:
    return Path(out) / f"split_{i:02d}"


def _template(cfg) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in PER_SPLIT} | {
        "ratios": list(cfg.ratios),
        "first_seed": cfg.seed,
    }


def run_benchmark(
    cfg,
    repeats: int = 10,
    progress: bool = True,
    cross: list[str] | tuple[str, ...] = (),
    cross_scale: tuple[float, float] | None = None,
) -> dict:
    """Train ``repeats`` models on splits seeded ``cfg.seed``, ``cfg.seed + 1``, ...; returns the summary.

    ``cfg`` is a ``TrainConfig``: its ``out`` is the benchmark folder and its ``split``/``ratios`` the protocol.
    ``cross``: other datasets (folders in a layout ``pynima.datasets`` detects) on which every split's model is also
    scored, whole: trained on A, tested on B and C. Adding one to a finished benchmark only runs those evaluations.
    ``cross_scale``: the (worst, best) scale of the CSV files among them.

    Distributed (``cfg.devices`` x ``cfg.num_nodes`` > 1): every split is one distributed run. Rank 0 runs the
    benchmark as above; the other ranks only train alongside it (``_follow``) and return an empty dict.
    """
    from pynima.train import process_rank

    if repeats < 1:
        raise PynimaError(f"--repeats must be at least 1, got {repeats}")
    if not cfg.ratios[2] > 0:
        raise PynimaError("a benchmark is scored on its test parts: give --ratios with a test fraction above 0")
    if process_rank(cfg) != 0:
        _follow(cfg, repeats)
        return {}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        return _run(cfg, out, repeats, progress, [(c, _csv_scale(c, cross_scale)) for c in cross])


def _follow(cfg, repeats: int) -> None:
    """A rank other than 0 of a distributed benchmark: train each split rank 0 trains, writing nothing. It decides
    as ``_run`` does, from files rank 0 never changes before the training that needs this rank too: a complete split
    is skipped, one with a last.ckpt resumed, any other trained afresh on the same seeded split."""
    from pynima.datasets import dataset_split, read_config_dataset
    from pynima.train import train

    dataset = read_config_dataset(cfg)
    for i in range(repeats):
        d, seed = split_dir(cfg.out, i), cfg.seed + i
        split_cfg = replace(cfg, out=str(d), seed=seed, split_file=str(d / "split.json"))
        step = next_step(d)
        if step == "resume":
            train(split_cfg, progress=False, resume=True)
        elif step == "train":
            train(split_cfg, progress=False, split=dataset_split(dataset, cfg.split, cfg.ratios, seed))


def next_step(d: Path) -> str:
    """What a benchmark does with split folder ``d``: "done" (complete, kept), "resume" (from its last.ckpt) or
    "train" (from scratch). Rank 0 (``_run``) and the other ranks (``_follow``) both decide here, so they agree."""
    if split_complete(d):
        return "done"
    return "resume" if (d / "last.ckpt").is_file() and (d / "config.json").is_file() else "train"


def split_complete(d: Path) -> bool:
    """Whether a split folder holds a finished run: its result files exist and parse, and predictions.csv has a
    complete row per test image (a crash mid-write, or an older pynima, may have left less)."""
    from pynima.evaluate import read_predictions

    try:
        m, _, _ = (json.loads((d / f).read_text()) for f in ("metrics.json", "train.json", "split.json"))
        pred = read_predictions(d / "predictions.csv")
        n = len(pred.get("mos", ()))
        whole = all(not np.isnan(v).any() for v in pred.values() if v.dtype != object)  # a cut row has empty cells
        return (d / "best.ckpt").is_file() and all(k in m for k in METRICS) and whole and n == m["n_images"] > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def cross_name(data: str | Path) -> str:
    """The folder name of a cross-dataset evaluation: the dataset's folder (or CSV file) name."""
    return Path(data).resolve().name or "data"


def _csv_scale(data: str, scale: tuple[float, float] | None) -> tuple[float, float] | None:
    from pynima.datasets import detect_format

    return scale if detect_format(Path(data)) == "csv" else None


def _cross(d: Path, cross: list[tuple[str, tuple[float, float] | None]]) -> None:
    """Score split ``d``'s model on each (dataset, CSV scale) of ``cross`` (unless done earlier)."""
    from pynima.evaluate import evaluate_checkpoint

    for data, scale in cross:
        target = d / "cross" / cross_name(data)
        if not (target / "metrics.json").is_file():
            log.info("%s: scoring %s", d, data)
            evaluate_checkpoint(d / "best.ckpt", data, target, scale=scale, replace=True)


def _run(
    cfg, out: Path, repeats: int, progress: bool, cross: list[tuple[str, tuple[float, float] | None]] | None = None
) -> dict:
    from pynima.datasets import dataset_split, read_config_dataset
    from pynima.train import train

    cross = cross or []
    template = _template(cfg)
    meta = out / BENCHMARK_FILE
    if meta.is_file():
        # a field added to TrainConfig after the benchmark started counts as its default
        saved = _template(type(cfg)(data=cfg.data)) | read_json(meta).get("config", {})
        changed = sorted(k for k in set(template) | set(saved) if template.get(k) != saved.get(k))
        if changed:
            raise PynimaError(
                f"{out} holds a benchmark with another configuration (differs in {', '.join(changed)}); "
                f"use another --out"
            )
    write_json(meta, {"config": template, "repeats": repeats})
    names = [cross_name(c) for c, _ in cross]
    if len(set(names)) < len(names):
        raise PynimaError(f"--cross datasets need different folder names, got {', '.join(names)}")
    for data, scale in cross:  # every cross dataset is readable before hours of training
        from pynima.datasets import read_dataset

        read_dataset(data, scale=scale)

    dataset = read_config_dataset(cfg)
    for i in range(repeats):
        d = split_dir(out, i)
        seed = cfg.seed + i
        split_file = d / "split.json"
        split_cfg = replace(cfg, out=str(d), seed=seed, split_file=str(split_file))
        step = next_step(d)
        if step == "done":
            log.info("split %2d: done earlier, kept (%s)", i, d)
            _cross(d, cross)
            continue
        if step == "resume":
            log.info("split %2d of %d (seed %d): resuming in %s", i, repeats, seed, d)
            train(split_cfg, progress=progress, resume=True)
            _cross(d, cross)
            continue
        if d.exists():  # interrupted before its first checkpoint: restart this split from scratch
            with folder_lock(d):  # unless a pynima train --resume of it is running
                shutil.rmtree(d)
        d.mkdir(parents=True)
        split = dataset_split(dataset, cfg.split, cfg.ratios, seed)
        write_json(split_file, split, indent=1)
        log.info("split %2d of %d (seed %d): training in %s", i, repeats, seed, d)
        train(split_cfg, progress=progress, split=split)
        _cross(d, cross)
    return summarize(out, repeats)


def split_and_image_interval(
    preds: list[dict[str, np.ndarray]], n_boot: int = 1000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """95% interval of the median-over-splits of each metric, by a two-level bootstrap: resample the splits, then the
    test images within each resampled split. It therefore includes split-to-split variance as well as the sampling of
    images. Written out because scipy.stats.bootstrap resamples a single level."""
    from pynima.metrics import percentile_interval, point_metrics

    rng = np.random.default_rng(seed)
    k = len(preds)
    medians: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        per_split = []
        for j in rng.integers(0, k, k):
            p = preds[j]
            idx = rng.integers(0, len(p["mos"]), len(p["mos"]))
            per_split.append(point_metrics(p["pred_mean"][idx], p["mos"][idx], p["emd"][idx], logistic=False))
        for m in METRICS:
            # a resample that left one split constant has NaN correlations there: the median of the others
            medians[m].append(float(np.nanmedian([s[m] for s in per_split])))
    return {m: percentile_interval(v) for m, v in medians.items()}


def summarize(out: str | Path, repeats: int | None = None, n_boot: int = 1000) -> dict:
    """Collect the finished splits of a benchmark folder into results.csv and summary.json."""
    from pynima.evaluate import read_predictions
    from pynima.metrics import RANKING_ORDER

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
    counted (a by-image split of camera photos has one per image)."""
    unique = sorted({str(r) for r in refs}, key=lambda r: (not r.isdigit(), int(r) if r.isdigit() else 0, r))
    return " ".join(unique) if len(unique) <= 8 else f"{len(unique)} references"


def _cross_summary(out: Path, repeats: int, n_boot: int) -> dict:
    """Per cross dataset (``split_NN/cross/NAME``): the median over splits of each metric and its two-level
    interval, as for the test parts."""
    from pynima.evaluate import read_predictions

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
    from pynima.metrics import RANKING_ORDER

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
