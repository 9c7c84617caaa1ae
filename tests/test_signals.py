"""Signals give the conventional exit codes and leave nothing behind (issue 23, items 3 and 9): SIGTERM 143, Ctrl-C
(SIGINT) 130, for train (where Lightning turned SIGTERM into exit 0) and synth (whose workers outlived it)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from pynima.synth.build import synthesize

CLI = [sys.executable, "-m", "pynima.cli"]


def wait_for(condition, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (forked workers keep their parent's command line)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("signal-refs")
    for i, img in enumerate((data.coffee(), data.astronaut(), data.chelsea())):
        Image.fromarray(img).save(root / f"r{i}.png")
    return root


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_train_interrupted_by_a_signal_exits_with_its_code_and_can_resume(tiny, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            *CLI,
            "train",
            str(tiny),
            "--out",
            str(out),
            "--epochs",
            "200",
            "--batch-size",
            "8",
            "--num-workers",
            "0",
            "--no-onnx",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (out / "last.ckpt").is_file() or proc.poll() is not None, 180, "the first checkpoint")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and (out / "last.ckpt").is_file() and not (out / "metrics.json").exists()
    assert (
        "--resume"
        in subprocess.run([*CLI, "train", str(tiny), "--out", str(out)], capture_output=True, text=True).stderr
    )  # the interrupted run is there to resume, not replaced


@pytest.mark.slow
def test_synth_terminated_stops_its_workers_at_once_and_reruns(refs, tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        [*CLI, "synth", str(out), "--refs", str(refs), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        build = lambda: list(out.glob(".build.*/distorted_images/*"))  # noqa: E731
        wait_for(lambda: build() or proc.poll() is not None, 120, "synth's first images")
        assert proc.poll() is None, proc.communicate()[1]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        stopped = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err, err[-2000:]
    assert stopped < 10  # the pool's queued jobs are dropped, not waited for
    wait_for(lambda: not processes_mentioning(str(out)), 10, "synth's workers to exit")
    assert not list(out.glob(".build.*"))  # the half-built dataset is removed
    done = subprocess.run(
        [*CLI, "synth", str(out), "--refs", str(refs), "--workers", "2"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_synth_into_a_folder_holding_only_a_killed_builds_leftovers(refs, tmp_path):
    """A SIGKILLed synth leaves its hidden build folder; the rerun used to call the folder 'not a pynima synth
    dataset', because the emptiness check ran before the stale temporaries were cleaned up."""
    out = tmp_path / "ds"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".build.{dead.pid}-0123abcd.tmp" / "distorted_images").mkdir(parents=True)
    (out / ".pynima.lock").touch()
    one = tmp_path / "one"
    one.mkdir()
    os.link(refs / "r0.png", one / "r0.png")
    names = [f"i01_{k:02d}_{lv}.bmp" for k in range(1, 25) for lv in range(1, 6)]
    (tmp_path / "mos.txt").write_text("".join(f"{7 - 0.05 * i:.2f} {n}\r\n" for i, n in enumerate(names)))
    (tmp_path / "std.txt").write_text("0.1\r\n" * len(names))
    synthesize(out, refs=one, mos_table=tmp_path / "mos.txt", std_table=tmp_path / "std.txt", workers=2, progress=False)
    assert (out / "pynima-synth.json").is_file() and not list(out.glob(".build.*"))


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_file_with_its_own_exit_code(run, tmp_path):
    """A file-size limit stands for a full disk (EFBIG like ENOSPC, no root or tmpfs needed): export used to end in a
    traceback of the temporary file's cleanup, exit 1."""
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = tmp_path / "m.onnx"
    done = subprocess.run(
        [*CLI, "export", str(run / "best.ckpt"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert lines[-1].startswith("pynima export: error: ") and str(out) in lines[-1] and "too large" in lines[-1]
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))  # no partial file, no temporary left


def limited_to(size: int):
    """A preexec_fn: files of at most ``size`` bytes, the write failing with EFBIG (a full disk without root)."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_predict_into_a_full_disk_says_the_output_is_incomplete(tmp_path, fmt):
    """A redirect into a full disk cut the last CSV row; the exit status must say so, with the file's name."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(4):
        Image.new("RGB", (240, 240), (40 * k, 90, 160)).save(folder / f"{k}.png")
    target = tmp_path / "scores.out"
    with open(target, "w") as stdout:
        done = subprocess.run(
            [*CLI, "predict", str(folder), "--format", fmt],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            preexec_fn=limited_to(300),
        )
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pynima predict: error: ") and str(target) in last and "too large" in last
    assert "incomplete" in last


def test_predict_into_dev_full_is_one_line(tmp_path):
    Image.new("RGB", (240, 240), (10, 90, 160)).save(tmp_path / "a.png")
    with open("/dev/full", "w") as stdout:
        done = subprocess.run(
            [*CLI, "predict", str(tmp_path / "a.png")], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120
        )
    assert done.returncode == 3 and "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("pynima predict: error: /dev/full")


def test_report_into_a_full_disk_is_one_line_and_leaves_no_partial_file(run, tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run(
        [*CLI, "report", str(run), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited_to(20_000),
    )
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pynima report: error: ") and str(out) in last and "too large" in last
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_evaluate_into_a_full_disk_is_one_line_and_leaves_no_partial_file(run, tiny, tmp_path):
    out = tmp_path / "ev"
    done = subprocess.run(
        [*CLI, "evaluate", str(run / "best.ckpt"), str(tiny), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited_to(1_000),
    )
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pynima evaluate: error: ") and str(out) in last and "too large" in last
    assert not list(out.glob("*.json")) and not list(out.glob("*.csv")) and not list(out.glob(".*tmp*"))


@pytest.mark.slow
def test_a_full_disk_during_training_is_one_line_naming_the_checkpoint(tiny, tmp_path):
    import resource

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))  # the config fits, a checkpoint does not

    out = tmp_path / "run"
    done = subprocess.run(
        [
            *CLI,
            "train",
            str(tiny),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--num-workers",
            "0",
            "--batch-size",
            "8",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("pynima train: error: ") and ".ckpt" in last and "too large" in last
    assert not list(out.glob("*.ckpt")) and not list(out.glob(".*tmp*"))
