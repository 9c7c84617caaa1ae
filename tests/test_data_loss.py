"""Nothing lost, round two (issue 23, items 6-8): --overwrite deletes only a pynima run's files and only after every
option was checked; evaluate and export never write over what they were not asked to replace; metrics.json is
valid JSON, and a dataset whose correlations are undefined is refused instead of reported as NaN."""

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest

from pynima.cli import main
from pynima.files import RUN_MARKER, write_json


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".pynima.lock"
    }


@pytest.fixture
def run_copy(run, tmp_path):
    """A copy of the session's trained run, to be attacked."""
    return Path(shutil.copytree(run, tmp_path / "run"))


def test_a_run_folder_carries_the_marker(run):
    assert (run / RUN_MARKER).is_file()


def test_overwrite_with_an_unchecked_option_in_a_config_keeps_the_old_run(run_copy, tiny, tmp_path, capsys):
    before = digest(run_copy)
    config = json.loads((run_copy / "config.json").read_text()) | {"seed": True, "data": str(tiny)}
    (tmp_path / "bad.json").write_text(json.dumps(config))
    code = main(["train", "--config", str(tmp_path / "bad.json"), "--out", str(run_copy), "--overwrite"])
    assert code == 2 and "seed must be an integer" in capsys.readouterr().err
    assert digest(run_copy) == before


def test_overwrite_never_deletes_a_folder_pynima_did_not_make_a_run(tiny, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "own settings"}')
    (mine / "report.html").write_text("<p>my report</p>")
    before = digest(mine)
    code = main(
        [
            "train",
            str(tiny),
            "--out",
            str(mine),
            "--overwrite",
            "--epochs",
            "1",
            "--num-workers",
            "0",
            "--no-onnx",
            "--quiet",
        ]
    )
    assert code == 2 and "pynima did not write" in capsys.readouterr().err
    assert digest(mine) == before


@pytest.mark.slow
def test_evaluate_refuses_to_replace_a_runs_test_results_or_an_earlier_evaluation(run_copy, tiny, tmp_path, capsys):
    before = digest(run_copy)
    code = main(["evaluate", str(run_copy / "best.ckpt"), str(tiny), "--out", str(run_copy)])
    assert code == 2 and "training run's folder" in capsys.readouterr().err and digest(run_copy) == before
    out = tmp_path / "ev"
    assert main(["evaluate", str(run_copy / "best.ckpt"), str(tiny), "--out", str(out)]) == 0
    first = digest(out)
    assert main(["evaluate", str(run_copy / "best.ckpt"), str(tiny), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and digest(out) == first
    assert main(["evaluate", str(run_copy / "best.ckpt"), str(tiny), "--out", str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("name", ["best.ckpt", "notes.txt"])
def test_export_never_writes_over_its_input_or_a_non_onnx_file(run_copy, capsys, name):
    target = run_copy / name
    if not target.exists():
        target.write_text("my notes")
    before = target.read_bytes()
    code = main(["export", str(run_copy / "best.ckpt"), "--out", str(target)])
    assert code == 2 and ".onnx" in capsys.readouterr().err and target.read_bytes() == before


def test_json_files_hold_null_for_an_undefined_number_never_bare_nan(tmp_path):
    write_json(tmp_path / "m.json", {"srcc": {"value": math.nan, "ci": [math.inf, 0.5]}, "n": 3})
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"srcc": {"value": None, "ci": [None, 0.5]}, "n": 3}


@pytest.mark.parametrize(
    ("rows", "problem"),
    [([("a.png", 5.0)], "at least 3"), ([("a.png", 5.0), ("b.png", 5.0), ("c.png", 5.0)], "every label is 5")],
)
def test_evaluate_refuses_a_dataset_whose_correlations_are_undefined(run, tmp_path, capsys, rows, problem):
    import numpy as np
    from PIL import Image

    for name, _ in rows:
        Image.fromarray(np.full((64, 64, 3), 100, np.uint8)).save(tmp_path / name)
    csv = tmp_path / "labels.csv"
    csv.write_text("path,mos\n" + "".join(f"{n},{m}\n" for n, m in rows))
    code = main(["evaluate", str(run / "best.ckpt"), str(csv), "--scale", "1", "9", "--out", str(tmp_path / "ev")])
    assert code == 2 and problem in capsys.readouterr().err
    assert not (tmp_path / "ev" / "metrics.json").exists()
