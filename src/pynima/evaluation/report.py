"""``pynima report RUN_DIR``: one self-contained HTML (or Markdown) file for a run, a benchmark or a search.

In HTML the figures are embedded as base64 PNG data URIs, so the single file can be mailed or attached to an issue;
Markdown links PNG files written beside it (``report_files/`` for ``report.md``), as Markdown viewers expect. What
the folder is decides the sections, results first and the configuration last:

* a training run (``pynima train``): where the labels come from and the test set's size, test metrics with 95%
  intervals, loss curves, scatter plot, SRCC per distortion type with intervals; configuration;
* a benchmark (``pynima benchmark``): median / IQR / interval over splits, the per-split table, SRCC per split,
  validation loss curves of every split, median SRCC per distortion type; configuration;
* a search (``pynima search``): the trial table, the learning-rate landscape, the best configuration; configuration.

Numbers are printed with 4 decimals, straight from the JSON files the commands wrote.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from pynima.errors import PynimaError
from pynima.evaluation.metrics import METRIC_ORDER, type_order
from pynima.evaluation.plots import per_split_chart, per_type_chart, val_curves
from pynima.files import write_bytes, write_text

__all__ = ["write_report"]


class _Doc:
    """Builds the same content as HTML or Markdown."""

    def __init__(self, fmt: str, title: str, folder: str = ""):
        # Markdown: the figures (file name -> PNG) go into ``folder``, beside the report, and are linked
        self.fmt, self.parts, self.figures, self.folder = fmt, [], {}, folder
        if fmt == "html":
            self.parts.append(
                f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
                "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
                "text-align:right}img{max-width:100%}</style></head><body>"
                f"<h1>{html.escape(title)}</h1>"
            )
        else:
            self.parts.append(f"# {title}\n")

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>" if self.fmt == "html" else f"\n## {text}\n")

    def para(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>" if self.fmt == "html" else f"\n{text}\n")

    def table(self, head: list[str], rows: list[list]) -> None:
        cells = [[str(c) for c in r] for r in rows]
        if self.fmt == "html":
            self.parts.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells)
                + "</table>"
            )
        else:
            self.parts.append(
                "\n| "
                + " | ".join(head)
                + " |\n|"
                + "---|" * len(head)
                + "\n"
                + "".join("| " + " | ".join(r) + " |\n" for r in cells)
            )

    def image(self, png: bytes, alt: str) -> None:
        if self.fmt == "html":
            uri = "data:image/png;base64," + base64.b64encode(png).decode()
            self.parts.append(
                f"<figure><img alt='{html.escape(alt)}' src='{uri}'><figcaption>{html.escape(alt)}"
                "</figcaption></figure>"
            )
        else:
            name = f"figure{len(self.figures) + 1}.png"
            self.figures[name] = png
            self.parts.append(f"\n![{alt}]({self.folder}/{name})\n")

    def text(self) -> str:
        return "".join(self.parts) + ("</body></html>\n" if self.fmt == "html" else "\n")


def _config_table(doc: _Doc, cfg: dict) -> None:
    doc.heading("Configuration")
    doc.table(["key", "value"], [[k, json.dumps(v) if isinstance(v, (list, dict)) else v] for k, v in cfg.items()])


def _run(doc: _Doc, d: Path) -> None:
    cfg = json.loads((d / "config.json").read_text()) if (d / "config.json").is_file() else {}
    m = json.loads((d / "metrics.json").read_text())
    size = f"{m['n_images']} images" + (f" of {m['n_references']} references" if m.get("n_references") else "")
    doc.heading(f"Test metrics ({size}, {m['part']})")
    doc.para(f"Labels: {m.get('labels', 'not recorded (an evaluation older than this report)')}. Data: {m['data']}.")
    doc.table(
        ["metric", "value", "95% low", "95% high"],
        [
            [k, f"{m[k]['value']:.4f}", f"{m[k]['ci_low']:.4f}", f"{m[k]['ci_high']:.4f}"]
            for k in METRIC_ORDER
            if k in m
        ],
    )
    doc.para(m.get("interval", ""))
    truth = "pseudo-labels" if m.get("labels", "").startswith("pseudo") else "human MOS"
    for name, alt in (
        ("loss_curve.png", "loss curves (train and validation EMD per epoch)"),
        ("scatter.png", f"predicted mean score against {truth}"),
    ):
        if (d / name).is_file():
            doc.image((d / name).read_bytes(), alt)
    if m.get("per_type_srcc"):
        doc.heading("SRCC per distortion type")
        doc.image(per_type_chart(m["per_type_srcc"], "test SRCC per distortion type"), "SRCC per distortion type")
        rows = sorted(m["per_type_srcc"].items(), key=lambda t: type_order(t[0]))
        interval = lambda v, k: f"{v[k]:.3f}" if k in v else ""  # noqa: E731 - evaluations before the intervals
        doc.table(
            ["type", "name", "n", "SRCC", "95% low", "95% high"],
            [
                [k, v["name"], v["n"], f"{v['srcc']:.4f}", interval(v, "ci_low"), interval(v, "ci_high")]
                for k, v in rows
            ],
        )
        doc.para(m.get("per_type_interval", ""))
    _config_table(doc, cfg)


def _benchmark(doc: _Doc, d: Path) -> None:
    from pynima.evaluation.summary import METRICS, split_dir, summarize

    # the summary pynima benchmark wrote; only a benchmark interrupted before its first summary is summarized here
    summary = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else summarize(d)
    doc.heading(f"Summary over {summary['splits_finished']} of {summary['repeats']} splits")
    s = summary["metrics"]
    doc.table(
        ["metric", "median", "q25", "q75", "IQR", "95% low", "95% high"],
        [[k] + [f"{s[k][c]:.4f}" for c in ("median", "q25", "q75", "iqr", "ci_low", "ci_high")] for k in METRICS],
    )
    doc.para(summary["interval"])
    doc.heading("Per split")
    doc.table(
        ["split", "seed", "test refs", "n"] + list(METRICS) + ["epochs", "seconds"],
        [
            [r["split"], r["seed"], r["test_refs"], r["n_test"]]
            + [f"{r[k]:.4f}" for k in METRICS]
            + [r["epochs"], r["seconds"]]
            for r in summary["rows"]
        ],
    )
    doc.image(per_split_chart(summary["rows"]), "test SRCC and PLCC of each split")
    if summary.get("cross"):
        doc.heading("Cross-dataset: every split's model on other datasets")
        doc.table(
            ["dataset", "format", "images", "models", "SRCC median", "SRCC 95%", "PLCC median", "PLCC 95%"],
            [
                [name, c["format"], c["n_images"], c["splits"]]
                + [
                    v
                    for k in ("srcc", "plcc")
                    for v in (f"{c[k]['median']:.4f}", f"[{c[k]['ci_low']:.3f}, {c[k]['ci_high']:.3f}]")
                ]
                for name, c in summary["cross"].items()
            ],
        )
        doc.para("Median over the splits' models; 95% two-level bootstrap (models, then images).")
    runs = [split_dir(d, r["split"]) for r in summary["rows"]]
    doc.image(val_curves(runs), "validation EMD per epoch, every split")
    per_type: dict[str, list[float]] = {}
    names = {}
    for r in runs:
        for k, v in json.loads((r / "metrics.json").read_text()).get("per_type_srcc", {}).items():
            per_type.setdefault(k, []).append(v["srcc"])
            names[k] = v["name"]
    if per_type:
        doc.heading("SRCC per distortion type (median over splits)")
        med = {k: {"name": names[k], "srcc": float(np.median(v))} for k, v in per_type.items()}
        doc.image(per_type_chart(med, "median test SRCC per distortion type"), "SRCC per distortion type")
    _config_table(doc, summary["config"])


def _search(doc: _Doc, d: Path) -> None:
    res = json.loads((d / "search.json").read_text())
    doc.heading(f"Trials ({res['sampler']} sampler, {res['trial_epochs']} epochs each, validation data only)")
    rows = sorted(res["trials"], key=lambda t: (t["val_emd"] is None, t["val_emd"] or 0))
    fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    doc.table(
        ["trial", "state", "lr_head", "lr_base", "val EMD", "val SRCC", "epochs"],
        [
            [
                t["number"],
                t["state"],
                fmt(t["lr_head"], ".3g"),
                fmt(t["lr_base"], ".3g"),
                fmt(t["val_emd"], ".4f"),
                fmt(t["val_srcc"], ".4f"),
                fmt(t["epochs"], "d"),
            ]
            for t in rows
        ],
    )
    if (d / "landscape.png").is_file():
        doc.image((d / "landscape.png").read_bytes(), "learning-rate landscape (validation EMD)")
    best = res["best"]
    doc.para(
        f"Best: trial {best['number']}, lr_head {best['lr_head']:.3g}, lr_base {best['lr_base']:.3g}, "
        f"validation EMD {best['val_emd']:.4f}. Final run: pynima train --config {d / 'best_config.json'}"
    )
    _config_table(doc, res["config"])


def write_report(run_dir: str | Path, fmt: str = "html", out: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` (kind detected from its files) and return its path."""
    d = Path(run_dir)
    if fmt not in ("html", "md"):
        raise PynimaError(f"report format must be html or md, got {fmt!r}")
    if (d / "benchmark.json").is_file():
        kind, build = "benchmark", _benchmark
    elif (d / "search.json").is_file():
        kind, build = "learning-rate search", _search
    elif (d / "metrics.json").is_file():
        kind, build = "run", _run
    else:
        raise PynimaError(
            f"{d}: not a pynima run, benchmark or search folder (no metrics.json, benchmark.json or search.json)"
        )
    path = Path(out) if out else d / f"report.{fmt}"
    figures = path.parent / f"{path.stem}_files"
    doc = _Doc(fmt, f"pynima {kind}: {d}", figures.name)
    build(doc, d)
    for name, png in doc.figures.items():  # before the report, so that a report on disk never links a missing file
        figures.mkdir(parents=True, exist_ok=True)
        write_bytes(figures / name, png)
    write_text(path, doc.text())
    return path
