"""Test-time crops, paired: each model of ``pynima benchmark`` folders scored on its test part with one centre crop,
the grid of crops covering the image and the whole image (``pynima evaluate --crops``; ``--modes`` chooses), with
the within-reference ranking measures of each, and what each costs.

For every split of every folder, the split's ``best.ckpt`` is linked into ``OUT/LABEL/split_NN/``, exported to ONNX
next to it (so both crop modes run on ONNX Runtime, as ``pynima evaluate`` does for a run that has ``best.onnx``),
and evaluated once per mode. Finished evaluations are kept, so a rerun continues. Prints, as Markdown, per split: the
benchmark's own test SRCC/PLCC, each mode's (the first mode re-scored here is a parity check of the engine when it is
the benchmark's own), and each mode minus the first; then per folder the medians, the wins over the first mode and
the seconds per evaluation; then per folder and mode the medians of the within-reference measures.

``OUT/LABEL`` is then shaped like a benchmark folder scored with the grid (``results.csv``, the benchmark's rows with
the grid's metrics; ``split_NN/predictions.csv``), so ``bench/compare_recipes.py`` can put it next to the others.

    python bench/test_time_crops.py paper=runs/b5-paper pretrain=runs/b5-pretrain --out runs/tta \
        [--modes centre grid full]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from pynima.config import CROP_MODES
from pynima.datasets.splits import read_split
from pynima.evaluation.evaluate import evaluate_checkpoint
from pynima.evaluation.metrics import RANKING_ORDER
from pynima.files import read_json, write_json
from pynima.scoring.export import export_onnx

MODES = ("centre", "grid")


def evaluate_split(
    split_dir: Path, data: str, out: Path, modes: tuple[str, ...] | list[str] = MODES
) -> dict[str, dict]:
    """metrics.json of each crop mode (and its wall seconds) for one benchmark split, computed once."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "best.ckpt"
    if not ckpt.exists():
        try:  # a link costs no disk; a copy where links are not possible
            os.link(split_dir / "best.ckpt", ckpt)
        except OSError:
            shutil.copy2(split_dir / "best.ckpt", ckpt)
    if not ckpt.with_suffix(".onnx").exists():
        export_onnx(ckpt)
    split = read_split(split_dir / "split.json")
    result = {}
    for mode in modes:
        done = out / mode / "metrics.json"
        if not done.is_file():
            t0 = time.perf_counter()
            metrics = evaluate_checkpoint(ckpt, data, out / mode, split=split, part="test", crops=mode, replace=True)
            write_json(done, metrics | {"seconds": round(time.perf_counter() - t0, 1)})
        result[mode] = read_json(done)
    return result


def write_grid_results(folder: Path, out: Path, splits: list[Path], grid: list[dict]) -> None:
    """``out/results.csv``: the rows of ``folder/results.csv`` for ``splits``, with the grid's test metrics."""
    with open(folder / "results.csv", newline="") as f:
        own = {int(r["split"]): r for r in csv.DictReader(f)}
    rows = []
    for d, metrics in zip(splits, grid, strict=True):
        i = int(d.name.removeprefix("split_"))
        rows.append(own[i] | {k: metrics[k]["value"] for k in ("srcc", "plcc", "krcc", "rmse", "emd")})
        shutil.copy2(out / d.name / "grid" / "predictions.csv", out / d.name / "predictions.csv")
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arms", nargs="+", metavar="LABEL=FOLDER", help="pynima benchmark output folders")
    ap.add_argument("--out", type=Path, default=Path("runs/test-time-crops"))
    ap.add_argument("--splits", type=int, default=None, help="only the first N splits of each folder")
    ap.add_argument(
        "--modes",
        nargs="+",
        choices=CROP_MODES,
        default=list(MODES),
        help="crop modes to score with, the first one the baseline of the differences (default centre grid)",
    )
    args = ap.parse_args()
    first, others = args.modes[0], args.modes[1:]

    rows, summary, ranking = [], [], []
    for label, folder in (a.split("=", 1) for a in args.arms):
        folder = Path(folder)
        data = read_json(folder / "benchmark.json")["config"]["data"]
        splits = sorted(d for d in folder.glob("split_*") if (d / "metrics.json").is_file())[: args.splits]
        arm = {mode: [] for mode in args.modes}
        for d in splits:
            own = read_json(d / "metrics.json")
            got = evaluate_split(d, data, args.out / label / d.name, args.modes)
            for mode in args.modes:
                arm[mode].append(got[mode])
            c = got[first]
            rows.append(
                f"| {label} | {d.name.removeprefix('split_')} | {own['srcc']['value']:.4f} / "
                f"{own['plcc']['value']:.4f} | "
                + " | ".join(f"{got[m]['srcc']['value']:.4f} / {got[m]['plcc']['value']:.4f}" for m in args.modes)
                + " | "
                + " | ".join(
                    f"{got[m]['srcc']['value'] - c['srcc']['value']:+.4f} / "
                    f"{got[m]['plcc']['value'] - c['plcc']['value']:+.4f}"
                    for m in others
                )
                + " |"
            )
        if "grid" in args.modes:
            write_grid_results(folder, args.out / label, splits, arm["grid"])
        med = {k: {m: float(np.median([v[m]["value"] for v in arm[k]])) for m in ("srcc", "plcc")} for k in arm}
        secs = {k: float(np.median([v["seconds"] for v in arm[k]])) for k in args.modes}
        wins = {
            m: sum(g["srcc"]["value"] > c["srcc"]["value"] for c, g in zip(arm[first], arm[m], strict=True))
            for m in others
        }
        summary.append(
            f"| {label} | {len(splits)} | "
            + " | ".join(f"{med[m]['srcc']:.4f} / {med[m]['plcc']:.4f}" for m in args.modes)
            + " | "
            + " | ".join(f"{wins[m]} of {len(splits)}" for m in others)
            + " | "
            + " / ".join(f"{secs[m]:.0f}" for m in args.modes)
            + " |"
        )
        for m in args.modes:
            r = [v.get("ranking") or {} for v in arm[m]]
            cells = [
                float(np.median([x[k] for x in r])) if all(x.get(k) is not None for x in r) else math.nan
                for k in RANKING_ORDER
            ]
            ranking.append(f"| {label} | {m} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")

    print("Per split: test SRCC / PLCC\n")
    print(
        f"| arm | split | benchmark ({first}, its own run) | "
        + " | ".join(args.modes)
        + " | "
        + " | ".join(f"{m} - {first}" for m in others)
        + " |"
    )
    print("|---|---|---|" + "---|" * (len(args.modes) + len(others)))
    print("\n".join(rows))
    print("\nMedians over the splits\n")
    print(
        "| arm | splits | "
        + " | ".join(f"{m} SRCC / PLCC" for m in args.modes)
        + " | "
        + " | ".join(f"{m} wins (SRCC)" for m in others)
        + " | seconds per evaluation, "
        + " / ".join(args.modes)
        + " |"
    )
    print("|---|---|" + "---|" * (2 * len(args.modes)))
    print("\n".join(summary))
    print("\nWithin one reference: medians over the splits\n")
    print("| arm | crops | " + " | ".join(RANKING_ORDER) + " |")
    print("|---|---|" + "---|" * len(RANKING_ORDER))
    print("\n".join(ranking))


if __name__ == "__main__":
    main()
