"""Distributed training on CPU: two processes with the gloo backend, launched by Lightning and by torchrun
(docs/distributed.md)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pynima.config import TrainConfig
from pynima.datasets.splits import read_split
from pynima.errors import PynimaError
from pynima.files import read_csv
from pynima.training.items import EpochSampler

pytestmark = pytest.mark.distributed

TWO_CPU_PROCESSES = ["--devices", "2", "--accelerator", "cpu", "--strategy", "ddp", "--num-workers", "0", "--quiet"]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # a stray launcher variable would make these processes join another run
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("n", [0, 1, 5, 10, 11])
@pytest.mark.parametrize("world", [2, 3])
def test_epoch_sampler_shards_each_epoch(n, world):
    one = list(EpochSampler(n, seed=4, shuffle=True))
    for pad in (True, False):
        shards = [list(EpochSampler(n, 4, True, rank, world, pad)) for rank in range(world)]
        assert [len(s) for s in shards] == [len(EpochSampler(n, 4, True, r, world, pad)) for r in range(world)]
        items = [item for shard in shards for item in shard]
        if pad:  # equal step counts for DDP; every item present, a few from the start repeated
            assert len({len(s) for s in shards}) == 1 and set(items) == set(one)
            assert len(items) - n < world
        else:  # evaluation: each item exactly once, with the seed it has in a single process
            assert sorted(items) == sorted(one)


def test_options_are_checked():
    with pytest.raises(PynimaError, match="devices must be a positive integer or 'auto'"):
        TrainConfig(data="d", devices=0)
    with pytest.raises(PynimaError, match="strategy must be one of"):
        TrainConfig(data="d", strategy="horovod")
    with pytest.raises(PynimaError, match="num_nodes must be an integer"):
        TrainConfig(data="d", num_nodes=0)


def test_search_refuses_several_processes(tiny, tmp_path):
    from pynima.training.search import run_search

    with pytest.raises(PynimaError, match="one process"):
        run_search(TrainConfig(data=str(tiny), out=str(tmp_path / "s"), devices=2), trials=1)


@pytest.mark.slow
def test_two_processes_train_once_and_validate_on_the_whole_set(tiny, tmp_path):
    """Lightning launches the second process; the run writes one set of outputs, and its validation metrics (over
    both processes' shards) equal a one-process evaluation of the saved checkpoint on the same images."""
    from pynima.evaluation.evaluate import evaluate_checkpoint

    out = tmp_path / "ddp"
    r = _run(
        [
            sys.executable,
            "-m",
            "pynima.cli",
            "train",
            str(tiny),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            *TWO_CPU_PROCESSES,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("test set (") == 1 and r.stdout.count("run directory:") == 1, r.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            ".pynima-run",
            ".pynima.lock",
            "best.ckpt",
            "best.onnx",
            "config.json",
            "hparams.yaml",
            "last.ckpt",
            "loss_curve.png",
            "metrics.csv",
            "metrics.json",
            "predictions.csv",
            "scatter.png",
            "split.json",
            "train.json",
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # nothing written beside it (no lightning_logs)
    info = json.loads((out / "train.json").read_text())
    assert info["processes"] == 2 and info["effective_batch_size"] == 8 and info["epochs"] == 2

    rows = [row for row in read_csv(out / "metrics.csv") if row.get("val_emd")]
    assert [int(row["epoch"]) for row in rows] == [0, 1]  # one row per epoch: rank 1 logged nothing of its own
    best = min(rows, key=lambda row: float(row["val_emd"]))
    assert float(best["val_emd"]) == pytest.approx(info["best_val_emd"], abs=1e-7)

    split = read_split(out / "split.json")
    alone = evaluate_checkpoint(out / "best.ckpt", tiny, tmp_path / "alone", split=split, part="val", engine="torch")
    assert alone["n_images"] == len(split["val"]) > 2
    assert float(best["val_srcc"]) == pytest.approx(alone["srcc"]["value"], abs=1e-6)
    assert float(best["val_plcc"]) == pytest.approx(alone["plcc"]["value"], abs=1e-6)
    assert float(best["val_emd"]) == pytest.approx(alone["emd"]["value"], abs=1e-6)
    shutil.rmtree(tmp_path / "alone")


@pytest.mark.slow
def test_benchmark_under_torchrun(tiny, tmp_path):
    """torchrun starts both processes; rank 0 runs the benchmark, rank 1 trains each split alongside it."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip("torchrun is not installed next to this Python")
    out = tmp_path / "bench"
    r = _run(
        [
            str(torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "pynima.cli",
            "benchmark",
            str(tiny),
            "--out",
            str(out),
            "--repeats",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--no-onnx",
            *TWO_CPU_PROCESSES,
        ],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("2 of 2 splits") == 1, r.stdout  # one summary, from rank 0
    results = read_csv(out / "results.csv")
    assert [row["split"] for row in results] == ["0", "1"]
    for i in range(2):
        d = out / f"split_{i:02d}"
        assert json.loads((d / "train.json").read_text())["processes"] == 2
        assert np.isfinite(json.loads((d / "metrics.json").read_text())["srcc"]["value"])
    assert sorted(p.name for p in out.iterdir()) == [
        ".pynima.lock",
        "benchmark.json",
        "results.csv",
        "split_00",
        "split_01",
        "summary.json",
    ]
    assert not list(out.glob("split_*/best.onnx"))


@pytest.mark.slow
def test_train_under_slurm(tiny, tmp_path):
    """Two processes started with the variables srun gives each task (no SLURM here): Lightning's SLURM environment
    ranks them, and rank 0 alone writes the run."""
    import socket

    out = tmp_path / "slurm"
    host = socket.gethostname()
    common = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NODEID": "0",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "pynima",
        "SLURM_NODELIST": host,
        "SLURM_JOB_NODELIST": host,
        "MASTER_PORT": str(_free_port()),
        "PYTHONWARNINGS": "ignore",
    }
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    tasks = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pynima.cli",
                "train",
                str(tiny),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--batch-size",
                "4",
                *TWO_CPU_PROCESSES,
            ],
            env=env | common | {"SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    results = [t.communicate(timeout=900) for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], [err[-2000:] for _, err in results]
    assert "test set (" in results[0][0] and results[1][0] == ""  # rank 1 trained and printed nothing
    assert json.loads((out / "train.json").read_text())["processes"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slurm"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launcher_and_option_mismatches_are_one_line(monkeypatch):
    """Under torchrun (its variables set here, rank 0 of 2), --devices must make the same count: 1 would have each
    process train alone into the same folder, 4 would fail only inside fit, after an old run was replaced."""
    from pynima.training.train import distributed_trainer

    torchrun = {
        "TORCHELASTIC_RUN_ID": "t",
        "RANK": "0",
        "GROUP_RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }
    for key, value in torchrun.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(PynimaError, match="one of several that torchrun or srun started"):
        distributed_trainer(TrainConfig(data="d", accelerator="cpu"), logger=False)
    with pytest.raises(PynimaError, match="--devices 4 --num-nodes 1"):
        distributed_trainer(TrainConfig(data="d", accelerator="cpu", devices=4), logger=False)
    assert distributed_trainer(TrainConfig(data="d", accelerator="cpu", devices=2), logger=False).world_size == 2


def test_resume_with_another_process_count_is_refused(run, tmp_path):
    """The schedule counts optimizer steps, which depend on the number of processes."""
    from pynima.training.train import train

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    for name in ("train.json", "metrics.json"):
        (unfinished / name).unlink()
    cfg = TrainConfig.from_file(unfinished / "config.json", out=str(unfinished), devices=2, accelerator="cpu")
    with pytest.raises(PynimaError, match="trained by 1 process.*not 2"):
        train(cfg, progress=False, resume=True)
    assert (unfinished / "last.ckpt").is_file() and not (unfinished / "train.json").exists()


def test_each_process_draws_its_own_dropout():
    """Lightning's DDP setup seeds every process alike; the callback then gives each rank its own stream (when
    training starts, after that setup), and a lone process keeps the run's stream."""
    from types import SimpleNamespace

    import torch

    from pynima.training.train import GlobalRNG

    draws = []
    for world, rank in ((2, 0), (2, 1), (1, 0)):
        torch.manual_seed(0)
        GlobalRNG(seed=0).on_train_start(SimpleNamespace(world_size=world, global_rank=rank), None)
        draws.append(torch.rand(4))
    torch.manual_seed(0)
    assert not torch.equal(draws[0], draws[1]) and torch.equal(draws[2], torch.rand(4))
