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

import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from pynima.errors import PynimaError
from pynima.evaluation.summary import BENCHMARK_FILE, split_complete, split_dir, summarize
from pynima.files import folder_lock, read_json, write_json

__all__ = ["PER_SPLIT", "cross_name", "next_step", "run_benchmark"]

log = logging.getLogger(__name__)


# config fields that differ between the splits of one benchmark, or do not change its results, so they are not part
# of its identity (a resumed benchmark may change them)
PER_SPLIT = ("out", "seed", "split_file", "num_workers", "export_onnx", "accelerator", "strategy")


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
    from pynima.training.train import process_rank

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
    is skipped, one with a last.ckpt resumed, any other trained afresh on the same seeded split.
    """
    from pynima.datasets.registry import read_config_dataset
    from pynima.datasets.splits import dataset_split
    from pynima.training.train import train

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
    "train" (from scratch). Rank 0 (``_run``) and the other ranks (``_follow``) both decide here, so they agree.
    """
    if split_complete(d):
        return "done"
    return "resume" if (d / "last.ckpt").is_file() and (d / "config.json").is_file() else "train"


def cross_name(data: str | Path) -> str:
    """The folder name of a cross-dataset evaluation: the dataset's folder (or CSV file) name."""
    return Path(data).resolve().name or "data"


def _csv_scale(data: str, scale: tuple[float, float] | None) -> tuple[float, float] | None:
    from pynima.datasets.registry import detect_format

    return scale if detect_format(Path(data)) == "csv" else None


def _cross(d: Path, cross: list[tuple[str, tuple[float, float] | None]]) -> None:
    """Score split ``d``'s model on each (dataset, CSV scale) of ``cross`` (unless done earlier)."""
    from pynima.evaluation.evaluate import evaluate_checkpoint

    for data, scale in cross:
        target = d / "cross" / cross_name(data)
        if not (target / "metrics.json").is_file():
            log.info("%s: scoring %s", d, data)
            evaluate_checkpoint(d / "best.ckpt", data, target, scale=scale, replace=True)


def _run(
    cfg, out: Path, repeats: int, progress: bool, cross: list[tuple[str, tuple[float, float] | None]] | None = None
) -> dict:
    from pynima.datasets.registry import read_config_dataset
    from pynima.datasets.splits import dataset_split
    from pynima.training.train import train

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
        from pynima.datasets.registry import read_dataset

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
