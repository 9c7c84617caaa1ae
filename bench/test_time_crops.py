"""Test-time crops, paired: each model of ``pynima benchmark`` folders scored on its test part with one centre crop
and with the grid of crops covering the image (``pynima evaluate --crops``), and what the grid costs.

For every split of every folder, the split's ``best.ckpt`` is linked into ``OUT/LABEL/split_NN/``, exported to ONNX
next to it (so both crop modes run on ONNX Runtime, as ``pynima evaluate`` does for a run that has ``best.onnx``),
and evaluated twice. Finished evaluations are kept, so a rerun continues. Prints, as Markdown, per split: the
benchmark's own test SRCC/PLCC (centre crop), the same centre crop re-scored here (a parity check of the engine), the
grid, and grid minus centre; then per folder the medians, the grid's wins and the seconds per evaluation.

``OUT/LABEL`` is then shaped like a benchmark folder scored with the grid (``results.csv``, the benchmark's rows with
the grid's metrics; ``split_NN/predictions.csv``), so ``bench/compare_recipes.py`` can put it next to the others.

    python bench/test_time_crops.py paper=runs/b5-paper pretrain=runs/b5-pretrain --out runs/tta
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import time
from pathlib import Path

import numpy as np

from pynima.data import read_split
from pynima.evaluate import evaluate_checkpoint
from pynima.export import export_onnx
from pynima.files import read_json, write_json

MODES = ("centre", "grid")


def evaluate_split(split_dir: Path, data: str, out: Path) -> dict[str, dict]:
    """metrics.json of both crop modes (and their wall seconds) for one benchmark split, computed once."""
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
    for mode in MODES:
        done = out / mode / "metrics.json"
        if not done.is_file():
            t0 = time.perf_counter()
            metrics = evaluate_checkpoint(ckpt, data, out / mode, split=split, part="test", crops=mode)
            write_json(done, metrics | {"seconds": round(time.perf_counter() - t0, 1)})
        result[mode] = read_json(done)
    return result


def write_grid_results(folder: Path, out: Path, splits: list[Path], grid: list[dict]) -> None:
    """``out/results.csv``: the rows of ``folder/results.csv`` for ``splits``, with the grid's test metrics."""
    with open(folder / "results.csv", newline="") as f:
        own = {int(r["split"]): r for r in csv.DictReader(f)}
    rows = []
    for d, metrics in zip(splits, grid):
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
    args = ap.parse_args()

    rows, summary = [], []
    for label, folder in (a.split("=", 1) for a in args.arms):
        folder = Path(folder)
        data = read_json(folder / "benchmark.json")["config"]["data"]
        splits = sorted(d for d in folder.glob("split_*") if (d / "metrics.json").is_file())[:args.splits]
        arm = {mode: [] for mode in MODES}
        for d in splits:
            own = read_json(d / "metrics.json")
            got = evaluate_split(d, data, args.out / label / d.name)
            for mode in MODES:
                arm[mode].append(got[mode])
            c, g = got["centre"], got["grid"]
            rows.append(f"| {label} | {d.name.removeprefix('split_')} | {own['srcc']['value']:.4f} / "
                        f"{own['plcc']['value']:.4f} | {c['srcc']['value']:.4f} / {c['plcc']['value']:.4f} | "
                        f"{g['srcc']['value']:.4f} / {g['plcc']['value']:.4f} | "
                        f"{g['srcc']['value'] - c['srcc']['value']:+.4f} / "
                        f"{g['plcc']['value'] - c['plcc']['value']:+.4f} |")
        write_grid_results(folder, args.out / label, splits, arm["grid"])
        med = {k: {m: float(np.median([v[m]["value"] for v in arm[k]])) for m in ("srcc", "plcc")} for k in arm}
        wins = sum(g["srcc"]["value"] > c["srcc"]["value"] for c, g in zip(arm["centre"], arm["grid"]))
        secs = {k: float(np.median([v["seconds"] for v in arm[k]])) for k in MODES}
        summary.append(f"| {label} | {len(splits)} | {med['centre']['srcc']:.4f} / {med['centre']['plcc']:.4f} | "
                       f"{med['grid']['srcc']:.4f} / {med['grid']['plcc']:.4f} | {wins} of {len(splits)} | "
                       f"{secs['centre']:.0f} / {secs['grid']:.0f} ({secs['grid'] / secs['centre']:.1f}x) |")

    print("Per split: test SRCC / PLCC\n")
    print("| arm | split | benchmark (centre, its own run) | centre (re-scored) | grid | grid - centre |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nMedians over the splits\n")
    print("| arm | splits | centre SRCC / PLCC | grid SRCC / PLCC | grid wins (SRCC) | seconds per evaluation, "
          "centre / grid |")
    print("|---|---|---|---|---|---|")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
