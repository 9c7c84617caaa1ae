"""One tiny run of every bench/*.py script, so the scripts cannot rot: each must finish and print its table.

These are smoke runs (a few images, one repeat): they check that a script works, not what it measures."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED

BENCH = REPO / "bench"
pytestmark = pytest.mark.slow


def bench(script: str, *args: str, cwd: Path | None = None) -> str:
    env = os.environ | {"PYTHONPATH": str(BENCH)}
    r = subprocess.run(
        [sys.executable, str(BENCH / script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_every_bench_script_has_a_smoke_test():
    tested = {
        "compare_recipes",
        "distributed_training",
        "label_targets",
        "litserve_app",
        "pseudo_label_leakage",
        "ray_scoring",
        "serve_load",
        "synth_fidelity",
        "test_time_crops",
        "throughput",
        "train_step",
        "photo_ladder",
        "shift_stability",
        "chaos",
        "batching",
        "model_speed",
        "dropout_noise",
        "bootstrap",
    }
    assert {p.stem for p in BENCH.glob("*.py")} == tested


def test_bootstrap():
    """Both bootstraps run on the same resamples: every interval end equal but plcc_logistic's (the fit fixed)."""
    out = bench("bootstrap.py", "--resamples", 50)
    row = next(line for line in out.splitlines() if line.startswith("synthetic (480)"))
    moves = dict(part.split() for part in row.split("x  ", 1)[1].split(", "))
    assert set(moves) == {"srcc", "krcc", "plcc", "plcc_logistic", "rmse", "emd"}
    assert all(float(v) < 1e-12 for k, v in moves.items() if k != "plcc_logistic")
    assert 0 <= float(moves["plcc_logistic"]) < 0.02


def test_chaos():
    out = bench("chaos.py")  # exits 1 if a case fails, which bench() asserts against
    rows = [line for line in out.splitlines() if line.rstrip().endswith((" yes", " NO"))]
    assert len(rows) == 10 and all(row.rstrip().endswith("yes") for row in rows)
    assert "10 of 10 cases pass" in out


def test_train_step():
    out = bench("train_step.py", "--images", 4, "--steps", 1, "--batch", 2, "--repeats", 1)
    assert "baseline" in out and "x baseline" in out


def test_serve_load_and_litserve_app():
    out = bench("serve_load.py", "--requests", 4, "--concurrency", 1, 2, "--litserve", "--soak", 2)
    assert "offline ceiling" in out and "LitServe, batching" in out and "C=2: batching / batch size 1" in out
    assert "soak: 2 s at 4 clients" in out and " 0 errors" in out


def test_batching():
    out = bench("batching.py", "--images", 8, "--repeats", 1)
    rows = [line for line in out.splitlines() if line.startswith(("| default |", "| no-spin |", "| cap-4 |"))]
    assert len(rows) == 12 and rows[0].startswith("| default | 1 |") and "| 1.00 |" in rows[0]


def test_model_speed():
    """The bundled model against itself: a row per (model, mode), each mode's first row the baseline at 1.00."""
    from pynima.scoring.models import bundled_model

    model = bundled_model()
    out = bench("model_speed.py", model, model, "--images", 4, "--repeats", 1, "--modes", "centre", "full")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith(f"| {model.name} |")]
    assert [(r[1], r[3]) for r in rows[::2]] == [("centre", "1.00"), ("full", "1.00")] and len(rows) == 4


def test_throughput():
    out = bench("throughput.py", "--images", 4, "--repeats", 1, "--batch", 2, "--cold-runs", 1)
    assert "onnx-int8" in out and "cold start" in out


def test_distributed_training(tiny):
    out = bench("distributed_training.py", tiny, "--devices", 1, 2, "--epochs", 1, "--batch-size", 4)
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [row[:3] for row in rows] == [["1", "cpu", "4"], ["2", "cpu", "8"]] and rows[0][5] == "1.00", out


def test_ray_scoring():
    pytest.importorskip("ray")
    out = bench("ray_scoring.py", "--images", 4, "--repeats", 1, "--configs", "1x1", "--listing-files", 100)
    assert "pynima predict (score_paths" in out and "| 1x1 | 1 |" in out and "files/s" in out


def test_label_targets(shared_labels):
    assert "vote std 'sem'" in bench("label_targets.py", "--labels", shared_labels)


def test_synth_fidelity_and_pseudo_label_leakage(shared_labels, tmp_path):
    """One Kodak reference re-synthesized with its human labels, then the leakage check on a one-photo pretraining
    set against a split that holds that reference out."""
    kodak = SHARED / "kodak" / "kodim01.png"
    if not kodak.is_file():
        pytest.skip(f"{kodak} not present")
    (tmp_path / "kodak").mkdir()
    shutil.copy(kodak, tmp_path / "kodak")
    out = bench(
        "synth_fidelity.py",
        "--kodak",
        tmp_path / "kodak",
        "--labels",
        shared_labels,
        "--out",
        tmp_path / "resynth",
        "--fit",
    )
    assert "fsimc" in out and "PSEUDO_MOS_LOGISTIC" in out
    from pynima.synth.build import synthesize

    synthesize(tmp_path / "pseudo", refs=tmp_path / "kodak", progress=False)
    names = sorted(p.name for p in (tmp_path / "resynth" / "distorted_images").iterdir())
    split = tmp_path / "split.json"
    split.write_text('{"train": %s, "val": [], "test": []}' % str(names).replace("'", '"'))
    out = bench("pseudo_label_leakage.py", split, "--data", tmp_path / "resynth", "--pseudo", tmp_path / "pseudo")
    assert "| split |" in out and "max abs change" in out


def test_compare_recipes(tmp_path):
    for arm, srcc in (("a", (0.70, 0.72)), ("b", (0.75, 0.71))):
        (tmp_path / arm).mkdir()
        with open(tmp_path / arm / "results.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                ["split", "seed", "test_refs", "n_test", "srcc", "plcc", "krcc", "rmse", "emd", "epochs", "seconds"]
            )
            for i, s in enumerate(srcc):
                w.writerow([i, i, f"{i + 1} {i + 5}", 240, s, s + 0.01, s - 0.2, 0.8, 0.14, 4, 600 + i])
                (tmp_path / arm / f"split_{i:02d}").mkdir()
                with open(tmp_path / arm / f"split_{i:02d}" / "predictions.csv", "w", newline="") as p:
                    rows = csv.writer(p)
                    rows.writerow(["name", "ref", "kind", "level", "mos", "pred_mean", "pred_std", "emd"])
                    for k in range(6):  # reference 1: perfectly ranked; reference 2: reversed
                        rows.writerow([f"i01_01_{k}.bmp", 1, 1, k, k, k / 2, 1, 0.1])
                        rows.writerow([f"i02_01_{k}.bmp", 2, 1, k, k, -k, 1, 0.1])
    out = bench(
        "compare_recipes.py",
        f"A={tmp_path / 'a'}",
        f"B={tmp_path / 'b'}",
        "--once",
        "B=20",
        "--plot",
        tmp_path / "plot.svg",
    )
    assert "| B | 0.7300 | 0.7400 | 1 of 2 | 0.0000 | 10.0 | 20 min |" in out
    assert "+0.0500 / +0.0500" in out and (tmp_path / "plot.svg").stat().st_size > 1000
    # the same plot from published medians (the folders gone)
    bench(
        "compare_recipes.py",
        "--points",
        "A=10,0.70,0.71",
        "B=10,0.73,0.74",
        "--once",
        "B=20",
        "--plot",
        tmp_path / "plot.png",
    )
    from PIL import Image

    assert Image.open(tmp_path / "plot.png").format == "PNG"


def test_test_time_crops(run, tiny, tmp_path):
    """A one-split benchmark folder made of the ``run`` fixture: both crop modes evaluated, the table printed."""
    split = tmp_path / "bench" / "split_00"
    split.mkdir(parents=True)
    (tmp_path / "bench" / "benchmark.json").write_text(json.dumps({"config": {"data": str(tiny)}}))
    for name in ("best.ckpt", "split.json", "metrics.json"):
        shutil.copy(run / name, split / name)
    (tmp_path / "bench" / "results.csv").write_text("split,test_refs,srcc,seconds\n0,1 2,0.5,60\n")
    out = bench(
        "test_time_crops.py",
        f"tiny={tmp_path / 'bench'}",
        "--out",
        tmp_path / "tta",
        "--modes",
        "centre",
        "grid",
        "full",
    )
    centre = json.loads((tmp_path / "tta" / "tiny" / "split_00" / "centre" / "metrics.json").read_text())
    grid = json.loads((tmp_path / "tta" / "tiny" / "split_00" / "grid" / "metrics.json").read_text())
    full = json.loads((tmp_path / "tta" / "tiny" / "split_00" / "full" / "metrics.json").read_text())
    assert centre["engine"] == grid["engine"] == full["engine"] == "onnx" and "covering" in grid["crops"]
    assert "whole image" in full["crops"]
    assert f"| tiny | 00 | {json.loads((run / 'metrics.json').read_text())['srcc']['value']:.4f}" in out
    assert "grid wins" in out and "full wins" in out and "of 1 |" in out
    assert f"| tiny | full | nan | {full['ranking']['ordered_pairs']:.4f} |" in out  # tiny has no clean images
    with open(tmp_path / "tta" / "tiny" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and (rows[0]["split"], rows[0]["test_refs"], rows[0]["seconds"]) == ("0", "1 2", "60")
    assert [float(rows[0][k]) for k in ("srcc", "plcc", "emd")] == [grid[k]["value"] for k in ("srcc", "plcc", "emd")]


def test_photo_ladder(run):
    out = bench("photo_ladder.py", run / "best.ckpt", "--crops", "full")
    ladders = [line.split()[1] for line in out.splitlines() if not line.startswith("in order")]
    assert ladders.count("noise") == ladders.count("jpeg") == ladders.count("blur") == 6
    line = bench("photo_ladder.py", run / "best.ckpt", "--anchors").strip()
    assert line.startswith("On 6 scikit-image photos: clean ") and line.count("-") >= 7 and "\n" not in line
    assert "in order: noise" in out and "(crops full)" in out


def test_shift_stability(run, tmp_path):
    from PIL import Image

    (tmp_path / "more").mkdir()
    Image.fromarray(np.full((260, 300, 3), 90, np.uint8)).save(tmp_path / "more" / "flat.png")
    out = bench(
        "shift_stability.py", run / "best.ckpt", "--images", tmp_path / "more", "--modes", "centre", "full", "--trace"
    )
    assert "7 photos, 38 shifts" in out
    table, trace = out.split("scores at horizontal shifts 0..16 px:\n")
    traces = [line.split() for line in trace.splitlines()]
    assert len(traces) == 14 and all(len(t) == 2 + 17 for t in traces)  # 7 photos x 2 modes, 17 scores each
    flat = next(t for t in traces if t[:2] == ["full", "flat.png"])
    assert len(set(flat[2:])) == 1  # a uniform image's windows are all the same image
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.split()[:1] in (["centre"], ["full"])}
    assert set(rows) == {"centre", "full"} and rows["centre"][-1] == "1.00x"
    assert float(rows["full"][4]) < 1e-6  # a lossless file scores as its array


def test_dropout_noise(run):
    """The evaluated means are the scorer's centre-crop scores; the drawn ones spread, a pair's difference more."""
    import pynima

    sys.path.insert(0, str(BENCH))
    from photo_ladder import photos

    out = bench("dropout_noise.py", run / "best.ckpt")  # 200 draws: the pair std is about 1.4x the spread
    rows = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in out.splitlines()[1:7]}
    scorer = pynima.load(run / "best.ckpt", crops="centre")
    for name, image in photos().items():
        evaluated, spread, pair = rows[name]
        assert evaluated == pytest.approx(scorer.score(image).mean, abs=0.006)  # printed to 2 decimals
        assert 0 < spread < pair
    assert "median two-draw difference std" in out
