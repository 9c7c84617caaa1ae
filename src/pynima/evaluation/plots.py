"""Every figure pynima draws (scatter plots, loss curves, per-type and per-split charts), with matplotlib imported
only when one is drawn, and categorical colours for distortion types.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pynima.evaluation.metrics import type_order
from pynima.files import (
    atomic_path,
    read_csv,
)

__all__ = [
    "loss_curve",
    "per_split_chart",
    "per_type_chart",
    "pyplot",
    "save_figure",
    "scatter",
    "type_colours",
    "val_curves",
]


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path | None = None, dpi: int = 120) -> bytes | None:
    """Every figure's last step: laid out, written and closed (so that a long benchmark does not keep it open).

    Args:
        fig: a matplotlib figure.
        path: the file to write, atomically, in the format its suffix names (png, svg, pdf); None for PNG bytes.
        dpi: resolution of raster formats.

    Returns:
        The PNG bytes when ``path`` is None (the reports embed or link them), else None.
    """
    fig.tight_layout()
    try:
        if path is None:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi)
            return buf.getvalue()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
        return None
    finally:
        pyplot().close(fig)


def loss_curve(metrics_csv: Path, out_png: Path) -> None:
    """Train and validation EMD per epoch, from Lightning's CSV log."""
    plt = pyplot()
    train, val = {}, {}
    for row in read_csv(metrics_csv):
        if row.get("train_emd"):
            train[int(row["epoch"])] = float(row["train_emd"])
        if row.get("val_emd"):
            val[int(row["epoch"])] = float(row["val_emd"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(train), list(train.values()), "o-", label="train EMD")
    ax.plot(list(val), list(val.values()), "s-", label="validation EMD")
    ax.set_xlabel("epoch")
    ax.set_ylabel("EMD (r=2)")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, out_png)


def type_colours(n: int) -> list:
    """``n`` categorical colours for distortion types, the most distinct first: tab20's dark then light halves, then
    tab20b's (40 in all, then repeating).
    """
    import matplotlib

    tab20, tab20b = matplotlib.colormaps["tab20"].colors, matplotlib.colormaps["tab20b"].colors
    palette = [*tab20[0::2], *tab20[1::2], *tab20b[0::4], *tab20b[1::4], *tab20b[2::4], *tab20b[3::4]]
    return [palette[i % len(palette)] for i in range(n)]


def scatter(pred: np.ndarray, true: np.ndarray, kinds: list, names: dict, path: Path, title: str, xlabel: str) -> None:
    """Predicted against true scores, one colour and legend entry per distortion type (categorical, by name)."""
    plt = pyplot()
    order = sorted(set(kinds), key=type_order)
    colours = type_colours(len(order))
    markers = "os^Dv"  # with more types than the 40 colours, the marker tells them apart
    fig, ax = plt.subplots(figsize=(9, 5.5))
    kinds = np.asarray(kinds, dtype=object)
    for i, k in enumerate(order):
        sel = kinds == k
        ax.scatter(
            true[sel],
            pred[sel],
            s=12,
            alpha=0.85,
            color=colours[i],
            marker=markers[i // 40 % len(markers)],
            label=f"{k} {names.get(k, k)}"[:30],
        )
    lo, hi = min(true.min(), pred.min()), max(true.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("predicted mean score (0-9)")
    ax.set_title(title, fontsize=10)
    if len(order) > 1:
        ax.legend(
            fontsize=6,
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            ncol=1 if len(order) <= 26 else 2,
            title="distortion type",
            title_fontsize=7,
            frameon=False,
        )
    save_figure(fig, path)


def per_type_chart(per_type: dict[str, dict], title: str) -> bytes:
    """Horizontal bars of SRCC per distortion type, each type its own categorical colour and its name, with the 95%
    interval as an error bar where ``per_type`` has one.
    """
    plt = pyplot()
    kinds = sorted(per_type, key=type_order)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(kinds) + 1.2))
    vals = [per_type[k]["srcc"] for k in kinds]
    ax.barh(range(len(kinds)), vals, color=type_colours(len(kinds)))  # the scatter plot's colours, in its order
    if all("ci_low" in per_type[k] for k in kinds):
        low = [v - per_type[k]["ci_low"] for k, v in zip(kinds, vals, strict=True)]
        high = [per_type[k]["ci_high"] - v for k, v in zip(kinds, vals, strict=True)]
        ax.errorbar(vals, range(len(kinds)), xerr=[low, high], fmt="none", ecolor="k", elinewidth=0.7, capsize=2)
    ax.set_yticks(range(len(kinds)), [f"{k} {per_type[k]['name'][:34]}" for k in kinds], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlim(min(-0.1, min(vals) - 0.05, *(per_type[k].get("ci_low", 0) for k in kinds)), 1)
    ax.set_xlabel("SRCC")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, dpi=110)


def val_curves(runs: list[Path]) -> bytes:
    """PNG of the validation EMD by epoch, one line per run (a benchmark's splits)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for d in runs:
        val = {int(r["epoch"]): float(r["val_emd"]) for r in read_csv(d / "metrics.csv") if r.get("val_emd")}
        ax.plot(list(val), list(val.values()), "o-", ms=3, label=d.name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation EMD")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, dpi=110)


def per_split_chart(rows: list[dict]) -> bytes:
    """PNG of each split's SRCC and PLCC, with the median."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, k in enumerate(("srcc", "plcc")):
        v = [r[k] for r in rows]
        ax.scatter(np.full(len(v), i) + np.linspace(-0.08, 0.08, len(v)), v, s=25, label=k.upper())
        ax.hlines(np.median(v), i - 0.25, i + 0.25, color="k", lw=1.5)
    ax.set_xticks([0, 1], ["SRCC", "PLCC"])
    ax.set_ylabel("test value per split (bar: median)")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, dpi=110)
