"""Repeated splits (pynima benchmark), the learning-rate search (pynima search), reports, and configs as files."""

import base64
import csv
import io
import json
import logging
import re
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from pynima.cli import main
from pynima.config import TrainConfig
from pynima.datasets.splits import make_split, split_ratios
from pynima.datasets.tid2013 import read_tid2013
from pynima.errors import PynimaError
from pynima.evaluation.report import write_report
from pynima.evaluation.summary import split_dir
from pynima.training.benchmark import run_benchmark
from pynima.training.search import run_search

FAST = dict(epochs=1, batch_size=8, num_workers=0, lr_head=3e-3, lr_base=3e-4, export_onnx=False)


@pytest.fixture(scope="module")
def bench(tiny, tmp_path_factory):
    cfg = TrainConfig(
        data=str(tiny), out=str(tmp_path_factory.mktemp("bench")), ratios=split_ratios((0.5, 0.5)), seed=3, **FAST
    )
    run_benchmark(cfg, repeats=2, progress=False)
    return cfg


@pytest.fixture(scope="module")
def search(tiny, tmp_path_factory):
    cfg = TrainConfig(data=str(tiny), out=str(tmp_path_factory.mktemp("search")), **FAST)
    first = run_search(cfg, trials=1, lr_head_range=(1e-4, 1e-2), lr_base_range=(1e-5, 1e-3))
    return cfg, first


def test_split_ratios_carve_validation_from_train():
    assert split_ratios((0.8, 0.2)) == pytest.approx((0.68, 0.12, 0.2))
    assert split_ratios([0.7, 0.2, 0.1]) == (0.7, 0.2, 0.1)
    with pytest.raises(PynimaError, match="0.5 0.2"):
        split_ratios((0.5, 0.2))


@pytest.mark.slow
def test_benchmark_splits_are_disjoint_by_reference_and_seeded(bench, tiny):
    records = read_tid2013(tiny)
    seen_tests = []
    for i in range(2):
        split = json.loads((split_dir(bench.out, i) / "split.json").read_text())
        assert split == make_split(records, "reference", bench.ratios, bench.seed + i)
        refs = {p: {int(n[1:3]) for n in split[p]} for p in ("train", "val", "test")}
        assert not (refs["train"] & refs["test"] or refs["val"] & refs["test"] or refs["train"] & refs["val"])
        seen_tests.append(refs["test"])
    assert seen_tests[0] != seen_tests[1]


def test_benchmark_summary_matches_its_splits(bench):
    from pathlib import Path

    out = Path(bench.out)
    summary = json.loads((out / "summary.json").read_text())
    srcc = [json.loads((split_dir(out, i) / "metrics.json").read_text())["srcc"]["value"] for i in range(2)]
    assert summary["metrics"]["srcc"]["median"] == pytest.approx(np.median(srcc))
    assert summary["metrics"]["srcc"]["iqr"] == pytest.approx(np.subtract(*np.percentile(srcc, [75, 25])))
    lo, hi = summary["metrics"]["srcc"]["ci_low"], summary["metrics"]["srcc"]["ci_high"]
    assert lo < hi and lo <= max(srcc) and hi >= min(srcc)  # the interval of the median meets the splits' values
    assert len((out / "results.csv").read_text().strip().splitlines()) == 3
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    trained = [json.loads((split_dir(out, i) / "train.json").read_text()) for i in range(2)]
    assert [float(r["cpu_seconds"]) for r in rows] == [t["cpu_seconds"] for t in trained]  # each split's CPU time


@pytest.mark.slow
def test_benchmark_resumes_and_refuses_another_config(bench, caplog):
    from dataclasses import replace
    from pathlib import Path

    out = Path(bench.out)
    kept = [(split_dir(out, i) / "best.ckpt").stat().st_mtime_ns for i in range(2)]
    half_done = split_dir(out, 2)
    half_done.mkdir()
    (half_done / "junk").write_text("an interrupted split")
    with caplog.at_level(logging.INFO, logger="pynima.training.benchmark"):
        summary = run_benchmark(bench, repeats=3, progress=False)
    assert [(split_dir(out, i) / "best.ckpt").stat().st_mtime_ns for i in range(2)] == kept
    assert summary["splits_finished"] == 3 and not (half_done / "junk").exists()
    assert "done earlier, kept" in caplog.text
    with pytest.raises(PynimaError, match="epochs"):
        run_benchmark(replace(bench, epochs=2), repeats=3, progress=False)


@pytest.mark.slow
def test_benchmark_cross_dataset_table(bench, tiny, tmp_path):
    """--cross on a finished benchmark: every split's model scored on another layout (a KADID-10k stand-in made of
    tiny's images), nothing retrained, and the summary's cross table is the median over the splits."""
    import shutil
    from pathlib import Path

    from pynima.evaluation.summary import format_summary

    other = tmp_path / "kadid"
    (other / "images").mkdir(parents=True)
    rows = ["dist_img,ref_img,dmos,var"]
    for i, src in enumerate(sorted((tiny / "distorted_images").iterdir())[:8]):
        name = f"I{i // 4 + 1:02d}_{i % 4 + 1:02d}_01.png"
        shutil.copy(src, other / "images" / name)  # a .bmp under a .png name: content, not the suffix, decides
        rows.append(f"{name},I{i // 4 + 1:02d}.png,{1 + i * 0.5},0.4")
    (other / "dmos.csv").write_text("\n".join(rows) + "\n")
    out = Path(bench.out)
    kept = [(split_dir(out, i) / "best.ckpt").stat().st_mtime_ns for i in range(2)]
    summary = run_benchmark(bench, repeats=2, progress=False, cross=[str(other)])
    assert [(split_dir(out, i) / "best.ckpt").stat().st_mtime_ns for i in range(2)] == kept
    cross = summary["cross"]["kadid"]
    srcc = [
        json.loads((split_dir(out, i) / "cross" / "kadid" / "metrics.json").read_text())["srcc"]["value"]
        for i in range(2)
    ]
    assert cross["splits"] == 2 and cross["n_images"] == 8 and cross["format"] == "kadid10k"
    assert cross["srcc"]["median"] == pytest.approx(np.median(srcc))
    assert "cross-dataset kadid (kadid10k, 8 images, 2 models)" in format_summary(summary)
    report = write_report(bench.out, fmt="md").read_text()
    assert "Cross-dataset" in report and f"| kadid | kadid10k | 8 | 2 | {cross['srcc']['median']:.4f}" in report


@pytest.mark.slow
def test_search_resumes_from_its_storage(search):
    import optuna

    cfg, first = search
    out = __import__("pathlib").Path(cfg.out)
    assert [t["state"] for t in first["trials"]] == ["COMPLETE"]
    trial0 = (out / "trial_000" / "metrics.csv").stat().st_mtime_ns
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    optuna.load_study(study_name="pynima", storage=storage).ask()  # a trial left RUNNING by an interruption
    second = run_search(cfg, trials=2, lr_head_range=(1e-4, 1e-2), lr_base_range=(1e-5, 1e-3))
    states = [t["state"] for t in second["trials"]]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    assert (out / "trial_000" / "metrics.csv").stat().st_mtime_ns == trial0  # not retrained
    for t in second["trials"]:
        if t["state"] == "COMPLETE":
            assert 1e-4 <= t["lr_head"] <= 1e-2 and 1e-5 <= t["lr_base"] <= 1e-3
    # trials never touch the test part: no test evaluation, no checkpoints kept
    assert not list(out.glob("trial_*/metrics.json")) and not list(out.glob("trial_*/*.ckpt"))


def test_search_best_config_is_a_train_config(search):
    cfg, _ = search
    out = __import__("pathlib").Path(cfg.out)
    result = json.loads((out / "search.json").read_text())
    best = TrainConfig.from_file(out / "best_config.json")
    done = [t for t in result["trials"] if t["val_emd"] is not None]
    top = min(done, key=lambda t: t["val_emd"])
    assert (best.lr_head, best.lr_base) == (top["lr_head"], top["lr_base"])
    assert best.split_file == str(out / "split.json") and best.data == cfg.data
    with pytest.raises(PynimaError, match="sampler"):
        run_search(cfg, trials=1, sampler="tpe", lr_head_range=(1e-4, 1e-2), lr_base_range=(1e-5, 1e-3))


def _images(text: str, folder=None) -> list[Image.Image]:
    """The figures of a report: embedded (HTML), or PNG files linked beside it (Markdown; none inlined)."""
    inline = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    if folder is None:
        return [Image.open(io.BytesIO(base64.b64decode(b))) for b in inline]
    assert not inline
    return [Image.open(folder / link) for link in re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", text)]


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_run_report_has_figures_and_the_metrics(bench, fmt):
    run = split_dir(bench.out, 0)
    path = write_report(run, fmt=fmt)
    text = path.read_text()
    images = _images(text, path.parent if fmt == "md" else None)
    assert len(images) == 3 and all(im.format == "PNG" and min(im.size) > 100 for im in images)
    m = json.loads((run / "metrics.json").read_text())
    for k in ("srcc", "plcc", "krcc", "rmse", "emd"):
        for part in ("value", "ci_low", "ci_high"):
            assert f"{m[k][part]:.4f}" in text, (k, part)
    assert f"{m['n_images']} images of {m['n_references']} references" in text and "Labels: human opinion" in text
    for v in m["per_type_srcc"].values():  # 15 test images per type: each with its interval
        assert f"{v['ci_low']:.3f}" in text and f"{v['ci_high']:.3f}" in text
    assert text.index("Test metrics") < text.index("Configuration")  # results before the long configuration
    if fmt == "md":
        assert len(text) < 20_000  # links, not 200 KB of base64


def test_a_pseudo_labelled_evaluation_is_not_captioned_human(bench, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(split_dir(bench.out, 0), run)
    m = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps(m | {"labels": "pseudo-labels: FSIMc, a full-reference metric"}))
    text = write_report(run).read_text()
    assert "Labels: pseudo-labels: FSIMc" in text and "human MOS" not in text


def test_benchmark_and_search_reports(bench, search):
    from pathlib import Path

    text = write_report(bench.out).read_text()
    summary = json.loads((Path(bench.out) / "summary.json").read_text())
    assert f"{summary['metrics']['srcc']['median']:.4f}" in text and len(_images(text)) == 3
    cfg, _ = search
    path = write_report(cfg.out, fmt="md")
    text = path.read_text()
    assert "learning-rate landscape" in text and len(_images(text, path.parent)) == 1
    with pytest.raises(PynimaError, match="not a pynima run"):
        write_report(Path(bench.out) / "split_00" / "lightning_logs_missing")


def test_train_config_round_trips_through_its_file(bench, tmp_path, capsys):
    run = split_dir(bench.out, 1)
    saved = TrainConfig.from_file(run / "config.json")
    assert asdict(saved) | {"ratios": tuple(saved.ratios)} == json.loads((run / "config.json").read_text()) | {
        "ratios": tuple(bench.ratios)
    }
    (tmp_path / "bad.json").write_text(json.dumps({"data": "x", "learning_rate": 1}))
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_cli_config_file_never_picks_the_output_folder(bench, tmp_path):
    import argparse

    from pynima.cli.commands import config_from_args

    run = split_dir(bench.out, 0)
    cfg = config_from_args(argparse.Namespace(config=str(run / "config.json")))
    assert cfg.out == "runs/nima" and cfg.split_file == str(run / "split.json") and cfg.seed == bench.seed
    cfg = config_from_args(argparse.Namespace(config=str(run / "config.json"), out=str(tmp_path), epochs=7))
    assert cfg.out == str(tmp_path) and cfg.epochs == 7
