"""The command line's conventions (issue 24, items 5, 6 and 8): --version, python -m pynima, the American spelling of
a crop mode, "did you mean", -v after the command, a table header, streamed JSON and JSON Lines, a progress bar only
on a terminal, training output on stderr."""

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pynima
from pynima.cli import main
from pynima.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def images(tmp_path_factory, photos) -> Path:
    folder = tmp_path_factory.mktemp("imgs")
    for k, photo in enumerate(photos[:3]):
        Image.fromarray(photo[:240, :300]).save(folder / f"{k}.png")
    return folder


def predict(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_python_dash_m():
    done = subprocess.run([sys.executable, "-m", "pynima", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"pynima {pynima.__version__}"


def test_center_is_a_spelling_of_centre(images, capsys):
    _, centre, _ = predict(capsys, images, "--format", "json", "--crops", "centre")
    code, center, _ = predict(capsys, images, "--format", "json", "--crops", "center")
    assert code == 0 and json.loads(center) == json.loads(centre)
    assert Scorer(pynima.load().engine, crops="center").crops == "centre"


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["predcit", "x.png"], "did you mean predict?"),
        (["predict", "x.png", "--bacth-size", "2"], "did you mean --batch-size?"),
        (["predict", "x.png", "--crops", "gird"], "did you mean grid?"),
        (["evaluate", "m.onnx", "data", "--ovewrite"], "did you mean --overwrite?"),
        (["train", "data", "--rankng-weight", "1"], "did you mean --ranking-weight?"),  # in an argument group
        (["serve", "--max-fles", "3"], "did you mean --max-files?"),
    ],
)
def test_a_mistyped_command_choice_or_option_gets_a_suggestion(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and suggestion in err.strip().splitlines()[-1]


def test_an_unknown_option_without_a_near_one_is_the_usual_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "x.png", "--zzzzzzzz"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unrecognized arguments: --zzzzzzzz" in err and "did you mean" not in err


def test_verbose_after_the_command(images, capsys):
    code, out, err = predict(capsys, images / "0.png", "-v")
    assert code == 0 and "0.png" in out
    assert main(["-v", "predict", str(images / "0.png")]) == 0


def test_the_table_has_a_header_saying_what_the_numbers_mean(images, capsys):
    code, out, _ = predict(capsys, images)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + len(list(images.iterdir()))
    assert lines[0].split()[:3] == ["mean", "std", "path"] and "higher is better" in lines[0] and "0-9" in lines[0]
    assert all(line.split()[-1].endswith(".png") for line in lines[1:])


def test_json_lines_one_object_per_input_and_the_same_values_as_json(images, capsys, tmp_path):
    missing = tmp_path / "missing.png"
    code, jsonl, _ = predict(capsys, images, missing, "--format", "jsonl")
    _, whole, _ = predict(capsys, images, missing, "--format", "json")
    rows = [json.loads(line) for line in jsonl.splitlines()]
    assert code == 1 and len(rows) == 1 + len(list(images.iterdir())) and rows == json.loads(whole)
    assert rows[-1]["path"] == str(missing) and rows[-1]["mean"] is None and rows[-1]["error"]
    assert all(abs(sum(r["distribution"]) - 1) < 1e-4 for r in rows[:-1])


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_rows_are_written_as_images_are_scored_not_at_the_end(images, capsys, monkeypatch, fmt):
    """Between the first and the second result, the first must already be on stdout (JSON used to wait for all)."""
    real = pynima.load().score(images / "0.png")
    seen = []

    def two_results(self, paths, batch_size=16):
        yield images / "0.png", real, None
        seen.append(capsys.readouterr().out)
        yield images / "1.png", real, None

    monkeypatch.setattr(Scorer, "score_paths", two_results)
    assert main(["predict", str(images), "--format", fmt]) == 0
    rest = capsys.readouterr().out
    assert f"{real.mean:.3f}"[:4] in seen[0] and "0.png" in seen[0] and "1.png" not in seen[0]
    if fmt == "json":
        assert len(json.loads(seen[0] + rest)) == 2
    if fmt == "jsonl":
        assert json.loads(seen[0])["path"].endswith("0.png")


def test_no_progress_bar_when_stderr_is_not_a_terminal(images):
    done = subprocess.run(
        [sys.executable, "-m", "pynima", "predict", str(images), "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "\r" not in done.stderr and "images" not in done.stderr


def read_terminal(fd: int, process: subprocess.Popen, timeout: float = 120) -> str:
    """What a process wrote to a pseudo-terminal until it exited."""
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            process.kill()
            raise AssertionError("no output on the terminal")
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True])
def test_a_progress_bar_on_a_terminal_unless_quiet(tmp_path, quiet):
    """The bar shows after a second of scoring: 300 images at 400x400 take longer than that on any CPU here."""
    rng = np.random.default_rng(0)
    for k in range(300):
        Image.fromarray(rng.integers(0, 255, (400, 400, 3), np.uint8)).save(tmp_path / f"{k:03d}.bmp")
    main_fd, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real terminal has a size
    argv = [sys.executable, "-m", "pynima", "predict", str(tmp_path), "--format", "csv", "--batch-size", "1"]
    process = subprocess.Popen(argv + (["--quiet"] if quiet else []), stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = read_terminal(main_fd, process)
    os.close(main_fd)
    assert process.returncode == 0
    assert ("images" in shown and "\r" in shown) != quiet, shown[-500:]


@pytest.mark.slow
def test_train_writes_results_alone_on_stdout(tiny, tmp_path):
    """Lightning's progress bar (which writes to stdout) and its notices go to stderr; stdout holds the results."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pynima",
            "train",
            str(tiny),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--num-workers",
            "0",
            "--batch-size",
            "8",
            "--no-onnx",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stdout and "Epoch" not in done.stdout and "it/s" not in done.stdout
    assert "test set" in done.stdout and "run directory" in done.stdout
    assert "FutureWarning" not in done.stderr and "DeprecationWarning" not in done.stderr
    dataset_lines = [line for line in done.stderr.splitlines() if line.startswith(f"{tiny}: ")]
    assert len(dataset_lines) == 1, dataset_lines


def test_docs_ship_with_the_package_and_help_texts_point_there(capsys):
    """A pip install has no repository: the help texts name `pynima docs TOPIC`, which reads the packaged copy."""
    import re

    assert main(["docs"]) in (0, None)
    listing = capsys.readouterr().out
    assert re.search(r"^model-card\s+Model card", listing, re.M) and re.search(r"^datasets\s+Datasets", listing, re.M)
    assert main(["docs", "model-card"]) in (0, None)
    card = capsys.readouterr().out
    assert card == (Path(__file__).parents[1] / "docs" / "model-card.md").read_text(encoding="utf-8")
    assert main(["docs", "model-crad"]) == 2
    assert "did you mean model-card?" in capsys.readouterr().err
    for command in ("train", "benchmark", "evaluate", "predict", "serve", "search", "export", "report", "synth"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert not re.search(r"docs/[\w-]+\.md", text), (command, re.findall(r"\S*docs/[\w-]+\.md\S*", text))
        topics = re.findall(r"pynima docs ([\w-]+)", text)
        assert all(f"\n{t} " in "\n" + listing for t in topics), (command, topics)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    assert "0 (worst) to 9 (best), higher is better" in capsys.readouterr().out


def test_every_output_has_the_one_result_row(images, capsys, tmp_path):
    """predict's JSON and CSV, the HTTP results and the Parquet schema of --ray all carry Result's fields, in order."""
    from pynima.scoring.cluster import schema
    from pynima.scoring.results import FIELDS, Result
    from pynima.serving.app import ScoredImage

    missing = tmp_path / "missing.png"
    _, out, _ = predict(capsys, images / "0.png", missing, "--format", "json")
    rows = json.loads(out)
    assert [list(r) for r in rows] == [["path", *FIELDS]] * 2
    _, out, _ = predict(capsys, images / "0.png", "--format", "csv")
    header = out.splitlines()[0].split(",")
    assert header == ["path", "mean", "std", *(f"p{k}" for k in range(10)), "warning", "error"]
    assert list(ScoredImage.model_fields) == ["name", *FIELDS]
    assert schema().names == ["path", *FIELDS]
    assert (
        rows[1]["error"]
        == Result.of(missing, error=f"{missing}: no such file or folder").error
        == "no such file or folder"
    )
    assert rows[1]["mean"] is None and rows[0]["error"] is None


@pytest.mark.parametrize(
    ("command", "groups"),
    [
        ("train", ["data", "model", "optimization", "clean references and ranking", "run", "devices"]),
        ("benchmark", ["data", "model", "optimization", "clean references and ranking", "run", "devices"]),
        ("predict", ["output", "Ray", "model"]),
        ("serve", ["network", "model", "limits"]),
    ],
)
def test_help_shows_the_options_in_groups(command, groups, capsys):
    """As timm's train.py does: the many options of a command are read by topic, each in one group."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    headings = [line[:-1] for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[-len(groups) :] == groups
    ungrouped = out.split("\noptions:\n")[1].split(f"\n{groups[0]}:\n")[0]
    listed = [line.split()[0].rstrip(",") for line in ungrouped.splitlines() if line.startswith("  -")]
    assert set(listed) <= {"-h", "-v", "--overwrite", "--resume", "--repeats", "--cross", "--cross-scale"}
