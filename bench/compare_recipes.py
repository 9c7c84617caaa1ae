"""Paired comparison of benchmark folders (same splits, different recipes) and their time to quality.

Each ``pynima benchmark`` folder holds one recipe's models on seeded splits; folders made with the same first seed,
ratios and dataset have identical splits, so their rows pair up. This prints, as Markdown:

* per split, each recipe's test SRCC / PLCC, and each recipe's difference to the first (the paired comparison);
* per recipe, the median SRCC and PLCC over the splits they all finished, the median SRCC *within* one test
  reference (ranking versions of the same scene, from each split's predictions.csv), against median wall-clock
  minutes per model (``results.csv``'s ``seconds``: training with its validation, not the final test evaluation),
  plus any one-time cost given with ``--once LABEL=MINUTES`` (e.g. pretraining), stated separately;

and with ``--plot FILE`` draws SRCC and PLCC against minutes per model (SVG or PNG by the suffix); ``--points``
draws the same plot from published medians when the folders are gone.

    python bench/compare_recipes.py LABEL=runs/b5-paper LABEL=runs/b5-pretrain [--once pretrain=23] [--plot F]
    python bench/compare_recipes.py --points paper=6.9,0.71,0.74 ... --once paper=32 --plot F
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read_rows(folder: Path) -> dict[int, dict[str, float]]:
    """Split index -> its row of results.csv (numbers as floats)."""
    with open(folder / "results.csv", newline="") as f:
        return {
            int(r["split"]): {k: (v if k == "test_refs" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)
        }


def within_reference_srcc(folder: Path, split: int) -> list[float]:
    """SRCC between prediction and MOS among the images of each test reference of one split."""
    from scipy import stats

    from pynima.files import read_csv

    rows = read_csv(folder / f"split_{split:02d}" / "predictions.csv")
    refs = sorted({r["ref"] for r in rows})
    return [
        float(
            stats.spearmanr(
                [float(r["pred_mean"]) for r in rows if r["ref"] == ref],
                [float(r["mos"]) for r in rows if r["ref"] == ref],
            ).statistic
        )
        for ref in refs
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arms", nargs="*", metavar="LABEL=FOLDER")
    ap.add_argument(
        "--once",
        action="append",
        default=[],
        metavar="LABEL=MINUTES",
        help="a one-time cost of the recipe LABEL (paid once, not per model)",
    )
    ap.add_argument("--plot", type=Path)
    ap.add_argument(
        "--points",
        action="extend",
        nargs="+",
        default=[],
        metavar="LABEL=MINUTES,SRCC,PLCC",
        help="draw --plot from these medians (a published table) instead of benchmark folders",
    )
    ap.add_argument("--splits", type=int, default=5, help="K of the --points' benchmark, for the title")
    args = ap.parse_args()
    once = {k: float(v) for k, v in (o.split("=", 1) for o in args.once)}
    if args.points:
        if not args.plot:
            raise SystemExit("--points draws a plot: give --plot FILE")
        points = {lab: tuple(float(x) for x in v.split(",")) for lab, v in (p.split("=", 1) for p in args.points)}
        plot(points, once, args.splits, args.plot)
        return

    arms = dict(a.split("=", 1) for a in args.arms)
    rows = {label: read_rows(Path(folder)) for label, folder in arms.items()}
    splits = sorted(set.intersection(*(set(r) for r in rows.values())))
    for label, r in rows.items():
        refs = {s: r[s]["test_refs"] for s in splits}
        if refs != {s: rows[next(iter(rows))][s]["test_refs"] for s in splits}:
            raise SystemExit(f"{label}: its splits hold other test references than the first arm's: not paired")
    labels = list(rows)
    first = labels[0]

    print(f"Paired per split ({len(splits)} splits finished by every arm); difference = arm minus {first}\n")
    head = ["split", "test refs"] + [f"{lab} SRCC / PLCC" for lab in labels]
    head += [f"{lab} - {first}" for lab in labels[1:]]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for s in splits:
        cells = [str(s), rows[first][s]["test_refs"]]
        cells += [f"{rows[lab][s]['srcc']:.4f} / {rows[lab][s]['plcc']:.4f}" for lab in labels]
        cells += [
            f"{rows[lab][s]['srcc'] - rows[first][s]['srcc']:+.4f} / "
            f"{rows[lab][s]['plcc'] - rows[first][s]['plcc']:+.4f}"
            for lab in labels[1:]
        ]
        print("| " + " | ".join(cells) + " |")

    print("\nTime to quality (medians over the same splits)\n")
    print(
        "| recipe | SRCC median | PLCC median | SRCC wins vs first | SRCC within a reference (median) | "
        "minutes per model (median) | one-time |"
    )
    print("|---|---|---|---|---|---|---|")
    points = {}
    for lab in labels:
        srcc = np.array([rows[lab][s]["srcc"] for s in splits])
        plcc = np.array([rows[lab][s]["plcc"] for s in splits])
        minutes = float(np.median([rows[lab][s]["seconds"] for s in splits])) / 60
        wins = sum(rows[lab][s]["srcc"] > rows[first][s]["srcc"] for s in splits)
        within = [v for s in splits for v in within_reference_srcc(Path(arms[lab]), s)]  # NaN: a constant side
        points[lab] = (minutes, float(np.median(srcc)), float(np.median(plcc)))
        print(
            f"| {lab} | {np.median(srcc):.4f} | {np.median(plcc):.4f} | "
            f"{'-' if lab == first else f'{wins} of {len(splits)}'} | {np.nanmedian(within):.4f} | {minutes:.1f} | "
            f"{f'{once[lab]:.0f} min' if lab in once else '-'} |"
        )

    if args.plot:
        plot(points, once, len(splits), args.plot)


def plot(points: dict[str, tuple[float, float, float]], once: dict[str, float], k: int, path: Path) -> None:
    """SRCC (circles) and PLCC (squares) of each recipe against minutes per model, one colour per recipe, in a
    legend; a recipe with a one-time cost (pretraining) is drawn a second time at minutes + that cost (the first
    model's real price), joined by a dashed line, so the cost is on the time axis, not in a note.
    """
    from matplotlib.lines import Line2D

    from pynima.evaluation.plots import pyplot, save_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.get_cmap("tab10").colors
    handles = []
    for i, (lab, (minutes, srcc, plcc)) in enumerate(points.items()):
        c = colours[i % len(colours)]
        xs = [minutes] + ([minutes + once[lab]] if lab in once else [])
        for j, x in enumerate(xs):
            ax.scatter([x], [srcc], marker="o", color=c, facecolors="none" if j else c)
            ax.scatter([x], [plcc], marker="s", color=c, facecolors="none" if j else c)
        if lab in once:
            for v in (srcc, plcc):
                ax.plot(xs, [v, v], "--", color=c, lw=0.8)
        handles.append(Line2D([], [], color=c, marker="o", ls="", label=lab))
    handles += [
        Line2D([], [], color="k", marker="o", ls="", label="SRCC (median)"),
        Line2D([], [], color="k", marker="s", ls="", label="PLCC (median)"),
    ]
    if once:
        handles.append(
            Line2D([], [], color="k", marker="o", mfc="none", ls="--", label="with the one-time cost (pretraining)")
        )
    ax.legend(handles=handles, fontsize=7, loc="lower right", framealpha=0.9)
    ax.set_xlabel("wall-clock minutes per model (2-core CPU); hollow: plus the one-time cost")
    ax.set_ylabel("median over splits")
    ax.set_xlim(0, max(x + once.get(lab, 0) for lab, (x, _, _) in points.items()) * 1.1)
    values = [v for _, a, b in points.values() for v in (a, b)]
    ax.set_ylim(min(values) - 0.06, max(values) + 0.03)
    ax.set_title(f"Time to quality, by-reference splits (K={k})", fontsize=10)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
