"""Nothing lost, nothing silently wrong: synth and train never destroy what they did not just make, runs resume
exactly, files appear whole or not at all, model files cannot run code, labels off the scale are refused."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pynima.cli import main
from pynima.config import TrainConfig
from pynima.datasets.tid2013 import read_labels, read_tid2013
from pynima.errors import DatasetError, PynimaError
from pynima.files import atomic_path, folder_lock, write_json
from pynima.synth.build import MANIFEST, synthesize
from pynima.training.train import train

CLI = [sys.executable, "-m", "pynima.cli"]


def cli(capsys, *argv) -> tuple[int, str]:
    """(exit code, stderr) of ``pynima ARGV`` run in this process: the error paths need no process of their own
    (the kills and signals below do), and a process would import torch again for each."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its hash (the empty lock file a run folder keeps aside)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".pynima.lock"
    }


def write_tables(folder: Path, mos: list[float], names: list[str] | None = None) -> tuple[Path, Path]:
    names = names or [f"i01_{k:02d}_{lv}.bmp" for k in range(1, 25) for lv in range(1, 6)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mos.txt").write_text("".join(f"{m} {n}\r\n" for m, n in zip(mos, names, strict=True)))
    (folder / "std.txt").write_text("".join("0.1\r\n" for _ in names))
    return folder / "mos.txt", folder / "std.txt"


# ---------------------------------------------------------------------------------------------- synth


@pytest.fixture(scope="module")
def synth_inputs(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("synth-inputs")
    (root / "refs").mkdir()
    Image.fromarray(data.coffee()).save(root / "refs" / "coffee.png")
    good = write_tables(root / "good", [round(7 - 0.05 * i, 5) for i in range(120)])
    bad = write_tables(root / "bad", [12.0] * 120)  # off TID2013's 0-9 scale
    return root / "refs", good, bad


@pytest.mark.slow
def test_synth_failure_leaves_the_old_dataset_intact(synth_inputs, tmp_path, capsys):
    refs, good, bad = synth_inputs
    out = tmp_path / "ds"
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    before = tree_digest(out)
    assert len(before) > 120
    code, err = cli(capsys, "synth", out, "--refs", refs, "--mos-table", bad[0], "--std-table", bad[1], "--quiet")
    assert code == 2 and "outside TID2013's 0-9 scale" in err and "Traceback" not in err
    assert tree_digest(out) == before  # byte-identical
    again = synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], progress=False)
    assert again.cached and len(read_tid2013(out)) == 120
    assert not list(out.glob(".*.tmp*"))


@pytest.mark.slow
def test_synth_interrupted_midway_keeps_the_old_dataset(synth_inputs, tmp_path, monkeypatch):
    import pynima.synth.build

    refs, good, _ = synth_inputs
    out = tmp_path / "ds"
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    before = tree_digest(out)

    def crash(new, *args):
        (new / "distorted_images" / "i01_01_1.bmp").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(pynima.synth.build, "_build", crash)
    with pytest.raises(KeyboardInterrupt):
        synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], seed=3, progress=False)
    assert tree_digest(out) == before and not list(out.glob(".*.tmp*"))


@pytest.mark.slow
def test_synth_failing_mid_swap_puts_the_old_dataset_back(synth_inputs, tmp_path, monkeypatch):
    import pynima.synth.build

    refs, good, _ = synth_inputs
    out = tmp_path / "ds"
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    before = tree_digest(out)
    real = os.replace

    def flaky(src, dst):  # the swap fails at moving the old reference_images aside, after distorted_images
        if Path(src) == out / "reference_images":
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(pynima.synth.build.os, "replace", flaky)
    with pytest.raises(DatasetError, match="the old one is kept"):
        synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], seed=2, workers=2, progress=False)
    monkeypatch.undo()
    assert tree_digest(out) == before and not list(out.glob(".*.tmp*"))
    assert synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], progress=False).cached


@pytest.mark.slow
def test_what_killed_runs_left_is_cleaned_up(synth_inputs, tmp_path):
    refs, good, _ = synth_inputs
    out = tmp_path / "ds"
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".build.{dead.pid}-0123abcd.tmp" / "distorted_images").mkdir(parents=True)
    (out / f".mos.{dead.pid}-0123abcd.tmp.txt").write_text("half")
    alive = out / f".build.{os.getpid()}-0123abcd.tmp"  # a running process's: kept
    alive.mkdir()
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], seed=4, workers=2, progress=False)
    assert [p.name for p in out.glob(".*.tmp*")] == [alive.name]


@pytest.mark.slow
def test_synth_can_read_its_references_from_its_own_output(synth_inputs, tmp_path):
    refs, good, _ = synth_inputs
    out = tmp_path / "ds"
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    first = np.asarray(Image.open(out / "reference_images" / "I01.bmp"))
    r = synthesize(
        out, refs=out / "reference_images", mos_table=good[0], std_table=good[1], seed=1, workers=2, progress=False
    )
    assert not r.cached and len(read_tid2013(out)) == 120
    assert np.array_equal(np.asarray(Image.open(out / "reference_images" / "I01.bmp")), first)


@pytest.mark.slow
def test_synth_cache_checks_the_files_on_disk(synth_inputs, tmp_path):
    refs, good, _ = synth_inputs
    out = tmp_path / "ds"
    synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    (out / "distorted_images" / "i01_05_3.bmp").unlink()
    (out / "notes.txt").write_text("mine")  # not synth's: must survive the rebuild
    again = synthesize(out, refs=refs, mos_table=good[0], std_table=good[1], workers=2, progress=False)
    assert not again.cached and (out / "distorted_images" / "i01_05_3.bmp").is_file()
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / MANIFEST).read_text())["complete"] is True


# ---------------------------------------------------------------------------------------------- labels


def test_mos_off_the_scale_names_the_file_and_line(tmp_path):
    names = [f"i01_01_{lv}.bmp" for lv in range(1, 6)]
    mos, std = write_tables(tmp_path, [5.0, -1.5, 4.0, 12.0, 3.0], names)
    with pytest.raises(DatasetError, match=r"mos.txt line 2: MOS -1.5 is outside .* \(2 problems in all"):
        read_labels(mos, std)
    assert [lab.mos for lab in read_labels(mos, std, allow_out_of_range=True)] == [5.0, -1.5, 4.0, 12.0, 3.0]
    mos, std = write_tables(tmp_path / "x90", [45.0, 80.0, 12.5, 60.0, 33.0], names)  # a 0-90 scale
    with pytest.raises(DatasetError, match="line 1: MOS 45.0 is outside"):
        read_labels(mos, std)


# ---------------------------------------------------------------------------------------------- run folders


def tiny_config(tiny, out, **kw) -> TrainConfig:
    return TrainConfig(
        **(
            {
                "data": str(tiny),
                "out": str(out),
                "epochs": 1,
                "batch_size": 8,
                "num_workers": 0,
                "lr_head": 3e-3,
                "lr_base": 3e-4,
                "export_onnx": False,
            }
            | kw
        )
    )


@pytest.mark.slow
def test_train_refuses_an_existing_run_and_overwrite_replaces_only_its_files(run, tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("best.ckpt", "config.json", "metrics.json", ".pynima-run"):  # a run, with pynima's marker
        (out / name).write_bytes((run / name).read_bytes())
    (out / "notes.txt").write_text("mine")
    before = tree_digest(out)
    code, err = cli(capsys, "train", tiny, "--out", out, "--epochs", "1", "--quiet")
    assert code == 2 and "holds a run already" in err and "--overwrite" in err
    assert err.count("\n") == 1 and tree_digest(out) == before
    train(tiny_config(tiny, out), progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "config.json").read_text())["epochs"] == 1
    assert (out / "best.ckpt").read_bytes() != (run / "best.ckpt").read_bytes()
    assert not list(out.glob("best-v*"))


def test_a_locked_run_folder_is_refused(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with folder_lock(out):
        with pytest.raises(PynimaError, match="another pynima process"):
            train(tiny_config(tiny, out), progress=False)
        script = f"from pynima.files import folder_lock\nwith folder_lock({str(out)!r}): pass"
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert r.returncode != 0 and "another pynima process" in r.stderr
    with folder_lock(out):  # released
        pass


def test_bad_images_are_found_before_training(tiny, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for f in ("mos_with_names.txt", "mos_std.txt"):
        (data / f).write_bytes((tiny / f).read_bytes())
    (data / "distorted_images").mkdir()
    for p in (tiny / "distorted_images").iterdir():
        (data / "distorted_images" / p.name).write_bytes(p.read_bytes())
    bad = data / "distorted_images" / "i06_08_5.bmp"
    bad.write_bytes(b"garbage" * 100)
    out = tmp_path / "run"
    code, err = cli(capsys, "train", data, "--out", out, "--epochs", "1", "--quiet")
    assert code == 2 and str(bad) in err and err.count("\n") == 1, err
    assert not (out / "last.ckpt").exists() and not (out / "metrics.csv").exists()


@pytest.mark.slow
def test_an_image_that_fails_in_a_loader_worker_is_one_line(tiny, tmp_path):
    """A truncated JPEG passes the header check; decoding it in a DataLoader worker fails with its name."""
    from pynima.training.train import unwrap_loader_error

    data = tmp_path / "data"
    (data / "distorted_images").mkdir(parents=True)
    for f in ("mos_with_names.txt", "mos_std.txt"):
        (data / f).write_bytes((tiny / f).read_bytes())
    for p in (tiny / "distorted_images").iterdir():
        (data / "distorted_images" / p.name).write_bytes(p.read_bytes())
    target = data / "distorted_images" / "i01_01_1.bmp"
    buf = tmp_path / "x.jpg"
    Image.open(target).save(buf, format="JPEG", quality=95)
    target.write_bytes(buf.read_bytes()[: buf.stat().st_size // 3])  # a JPEG under a .bmp name, cut short
    cfg = tiny_config(tiny, tmp_path / "run", data=str(data), num_workers=1, split="random", ratios=(0.98, 0.01, 0.01))
    with pytest.raises(DatasetError) as e:
        train(cfg, progress=False)
    assert str(target) in str(e.value) and "\n" not in str(e.value) and "Traceback" not in str(e.value)
    wrapped = DatasetError(
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        "call last):\n  File x\npynima.errors.DatasetError: /a/b.png: cannot decode image (x)\n"
    )
    assert str(unwrap_loader_error(wrapped)) == "/a/b.png: cannot decode image (x)"


KILLER = """
import json, os, signal, sys
import lightning as L
from pynima.cli import main
from pynima.config import TrainConfig
from pynima.training.train import train

class Kill(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == (int(sys.argv[2]), int(sys.argv[3])):
            os.kill(os.getpid(), signal.SIGKILL)

cfg = json.loads(sys.argv[1])
train(TrainConfig(**cfg | {"ratios": tuple(cfg["ratios"])}), progress=False, callbacks=[Kill()])
"""


def metric_values(run_dir: Path) -> dict:
    m = json.loads((run_dir / "metrics.json").read_text())
    return {k: m[k] for k in ("srcc", "plcc", "krcc", "rmse", "emd")}


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory) -> Path:
    cfg = tiny_config(tiny, tmp_path_factory.mktemp("whole"), epochs=2, schedule="cosine", warmup_epochs=0.5)
    return train(cfg, progress=False)


@pytest.mark.parametrize("where", [(1, 0), (1, 2)], ids=["epoch-boundary", "mid-epoch"])
@pytest.mark.slow
def test_resume_after_kill_reproduces_the_uninterrupted_run(tiny, tmp_path, where, uninterrupted):
    """SIGKILL at the start of epoch 1 or at its third batch; --resume then ends with the same metrics and log."""
    from dataclasses import asdict

    killed = tmp_path / "killed"
    cfg = tiny_config(tiny, killed, epochs=2, schedule="cosine", warmup_epochs=0.5)
    r = subprocess.run(
        [sys.executable, "-c", KILLER, json.dumps(asdict(cfg)), *map(str, where)], capture_output=True, text=True
    )
    assert r.returncode == -9, r.stderr[-2000:]
    assert (killed / "last.ckpt").is_file() and not (killed / "metrics.json").exists()
    if where[1] == 0:
        r = subprocess.run(CLI + ["train", "--resume", str(killed), "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
    else:
        train(TrainConfig.from_file(killed / "config.json", out=str(killed)), progress=False, resume=True)
    assert json.loads((killed / "train.json").read_text())["resumed"] is True
    assert metric_values(killed) == metric_values(uninterrupted)
    assert (killed / "metrics.csv").read_text() == (uninterrupted / "metrics.csv").read_text()


@pytest.mark.slow
def test_resume_options_are_checked(tmp_path, run, capsys):
    code, err = cli(capsys, "train", "--resume", tmp_path)
    assert code == 2 and "no config.json" in err
    code, err = cli(capsys, "train", "--resume", run, "--epochs", "5")
    assert code == 2 and "drop --epochs" in err
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("config.json", "split.json"):
        (evil / name).write_bytes((run / name).read_bytes())
    torch.save({"epoch": 1, "x": Payload(tmp_path / "pwned")}, evil / "last.ckpt")
    code, err = cli(capsys, "train", "--resume", evil, "--quiet")
    assert code == 2 and "refused" in err and err.count("\n") == 1, err[-2000:]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_a_failing_init_leaves_the_run_it_would_overwrite(run, tiny, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("best.ckpt", "config.json", "split.json"):
        (out / name).write_bytes((run / name).read_bytes())
    before = tree_digest(out)
    for bad in (["--init", str(tmp_path / "absent.ckpt")], ["--warmup-epochs", "nan"], ["--lr-head", "0"]):
        code, err = cli(capsys, "train", tiny, "--out", out, "--overwrite", "--epochs", "1", "--quiet", *bad)
        assert code == 2 and err.count("\n") == 1, (bad, err[-2000:])
        assert tree_digest(out) == before, bad


# ---------------------------------------------------------------------------------------------- files


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"old": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # noqa: PT012 - the failure is inside the write
        tmp.write_text('{"new": ')
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"old": 1} and os.listdir(tmp_path) == ["metrics.json"]


def test_benchmark_resume_keeps_only_complete_splits(run, tmp_path):
    from pynima.training.benchmark import split_complete

    d = tmp_path / "split_00"
    d.mkdir()
    for name in ("metrics.json", "train.json", "split.json", "best.ckpt", "predictions.csv"):
        (d / name).write_bytes((run / name).read_bytes())
    assert split_complete(d)
    (d / "predictions.csv").unlink()  # metrics.json but no predictions.csv
    assert not split_complete(d)
    (d / "predictions.csv").write_bytes((run / "predictions.csv").read_bytes()[:-40])  # a row short
    assert not split_complete(d)
    (d / "predictions.csv").write_bytes((run / "predictions.csv").read_bytes())
    (d / "metrics.json").write_text('{"srcc": ')  # truncated JSON
    assert not split_complete(d)


# ---------------------------------------------------------------------------------------------- safe loading


class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.slow
def test_a_pickle_payload_checkpoint_does_not_execute(run, tmp_path, capsys):
    import pynima

    marker = tmp_path / "pwned"
    state = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
    state["extra"] = Payload(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(state, evil)
    with pytest.raises(PynimaError, match="refused"):
        pynima.load(evil, engine="torch")
    image = tmp_path / "x.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(image)
    for cmd in (["predict", str(evil), str(image)], ["evaluate", str(evil), str(run)], ["export", str(evil)]):
        code, err = cli(capsys, *cmd)
        assert code == 2 and "refused" in err and "Traceback" not in err, (cmd, err)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # the payload is real: unrestricted unpickling runs it
        torch.load(evil, weights_only=True)
    torch.load(evil, weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"PK\x03\x04 not a zip"], ids=["random", "empty", "zip"])
def test_a_non_checkpoint_is_one_line(tmp_path, content):
    import pynima

    bad = tmp_path / "model.ckpt"
    bad.write_bytes(content)
    with pytest.raises(PynimaError, match="not a checkpoint"):
        pynima.load(bad, engine="torch")
    torch.save({"state_dict": {}, "hyper_parameters": {"backbone": "nope"}}, bad)
    with pytest.raises(PynimaError, match="not a pynima checkpoint"):
        pynima.load(bad, engine="torch")


def test_only_a_pynima_nima_onnx_file_is_accepted(run, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    import pynima
    from pynima.scoring.export import add_metadata, export_onnx

    meta = {"pynima_backbone": "tf_efficientnet_lite0", "pynima_mean": "0.5,0.5,0.5", "pynima_std": "0.5,0.5,0.5"}
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, 1, 1])
    graph = helper.make_graph([helper.make_node("GlobalAveragePool", ["image"], ["out"])], "g", [x], [y])
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), other)
    with pytest.raises(PynimaError, match="no pynima metadata"):
        pynima.load(other)
    add_metadata(other, meta)
    for engine in ("onnx", "openvino"):
        with pytest.raises(PynimaError, match="not a NIMA network"):
            pynima.load(other, engine=engine)
    good = export_onnx(run / "best.ckpt", tmp_path / "nima.onnx")
    add_metadata(good, meta | {"pynima_std": "0.5,zero,0.5"})
    with pytest.raises(PynimaError, match="malformed pynima metadata"):
        pynima.load(good)


def test_a_broken_export_next_to_a_checkpoint_falls_back_to_the_checkpoint(run, tmp_path, caplog):
    import pynima

    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes((run / "best.ckpt").read_bytes())
    (tmp_path / "best.onnx").write_bytes(b"")  # what a kill mid-export used to leave, newer than the checkpoint
    scorer = pynima.load(ckpt)
    assert scorer.engine.name == "torch" and "best.onnx" in caplog.text and "PyTorch instead" in caplog.text
    image = np.full((256, 256, 3), 100, np.uint8)
    assert scorer.score(image).mean == pytest.approx(pynima.load(run / "best.ckpt", engine="torch").score(image).mean)


def test_a_failed_export_leaves_no_partial_file(run, tmp_path, monkeypatch):
    import pynima.scoring.export

    target = tmp_path / "best.onnx"
    target.write_bytes(b"the previous export")

    def crash(path, meta):
        raise KeyboardInterrupt  # as a kill between writing the graph and its metadata

    monkeypatch.setattr(pynima.scoring.export, "add_metadata", crash)
    with pytest.raises(KeyboardInterrupt):
        pynima.scoring.export.export_onnx(run / "best.ckpt", target)
    assert target.read_bytes() == b"the previous export" and os.listdir(tmp_path) == ["best.onnx"]


@pytest.mark.slow
def test_a_missing_or_broken_split_file_is_one_line(run, tiny, tmp_path, capsys):
    broken = tmp_path / "split.json"
    broken.write_text('{"train": [')
    for split_file in (tmp_path / "missing.json", broken):
        code, err = cli(
            capsys, "evaluate", run / "best.ckpt", tiny, "--split-file", split_file, "--out", tmp_path / "eval"
        )
        assert code == 2 and err.count("\n") == 1 and str(split_file) in err, err
