"""Training, evaluation and prediction end to end on a tiny synthetic TID2013-layout dataset."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import pynima
from pynima.config import TrainConfig
from pynima.datasets.splits import make_split
from pynima.datasets.tid2013 import read_tid2013
from pynima.evaluation.evaluate import evaluate_checkpoint
from pynima.training.train import train

pytestmark = pytest.mark.train


def test_split_by_reference_is_disjoint_and_seeded(tiny):
    recs = read_tid2013(tiny)
    split = make_split(recs, "reference", seed=1)
    refs = {part: {int(n[1:3]) for n in split[part]} for part in ("train", "val", "test")}
    assert not (refs["train"] & refs["val"] or refs["train"] & refs["test"] or refs["val"] & refs["test"])
    assert sum(len(split[p]) for p in ("train", "val", "test")) == len(recs)
    assert make_split(recs, "reference", seed=1) == split and make_split(recs, "reference", seed=2) != split
    random = make_split(recs, "random", seed=1)
    assert {int(n[1:3]) for n in random["train"]} & {int(n[1:3]) for n in random["test"]}  # the leak


def test_training_improves_validation_emd(run):
    from pynima.files import read_csv

    val = [float(r["val_emd"]) for r in read_csv(run / "metrics.csv") if r["val_emd"]]
    assert len(val) == 3 and min(val[1:]) < val[0]
    assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file()
    assert (run / "loss_curve.png").stat().st_size > 1000
    split = json.loads((run / "split.json").read_text())
    assert split["mode"] == "reference" and split["test"]


def test_evaluation_outputs(run, tiny):
    m = json.loads((run / "metrics.json").read_text())
    for k in ("srcc", "plcc", "krcc", "rmse", "emd"):
        assert m[k]["ci_low"] <= m[k]["value"] <= m[k]["ci_high"], k
    assert m["part"] == "test" and m["n_images"] == 10
    assert m["per_type_srcc"] == {}  # 5 test images per type: too few for a per-type SRCC
    assert m["n_references"] == 1 and m["labels"].startswith("human opinion scores")
    assert (run / "scatter.png").stat().st_size > 1000
    whole = evaluate_checkpoint(run / "best.ckpt", tiny, run / "all", n_boot=50)
    assert whole["n_images"] == 60 and whole["part"] == "all" and whole["n_references"] == 6
    assert set(whole["per_type_srcc"]) == {"1", "8"}
    for v in whole["per_type_srcc"].values():
        assert v["n"] == 30 and v["ci_low"] < v["srcc"] < v["ci_high"]


def test_evaluation_runs_on_the_onnx_export_and_agrees_with_torch(run, tiny):
    """The run's best.onnx (written before the test evaluation) scores it; PyTorch on the checkpoint agrees."""
    from pynima.evaluation.evaluate import read_predictions

    assert json.loads((run / "metrics.json").read_text())["engine"] == "onnx"
    split = json.loads((run / "split.json").read_text())
    crops = json.loads((run / "config.json").read_text())["test_crops"]
    torch_run = evaluate_checkpoint(
        run / "best.ckpt", tiny, run / "torch", split=split, n_boot=50, engine="torch", crops=crops
    )
    assert torch_run["engine"] == "torch"
    assert torch_run["crops"] == json.loads((run / "metrics.json").read_text())["crops"]
    ours, theirs = read_predictions(run / "predictions.csv"), read_predictions(run / "torch" / "predictions.csv")
    assert list(ours["name"]) == list(theirs["name"])
    assert abs(ours["pred_mean"] - theirs["pred_mean"]).max() < 1e-3


def test_checkpoint_loads_without_imagenet_weights(run):
    from pynima.model.network import load_checkpoint

    model, hp = load_checkpoint(run / "best.ckpt")
    assert hp["backbone"] == "tf_efficientnet_lite0" and not model.training


def test_python_api_scores_paths_and_arrays(run, tiny):
    scorer = pynima.load(run / "best.ckpt")
    path = tiny / "distorted_images" / "i01_01_1.bmp"
    a = scorer.score(path)
    b = scorer.score(np.asarray(Image.open(path)))
    assert a.mean == pytest.approx(b.mean) and 0 <= a.mean <= 9 and a.std > 0
    assert len(a.distribution) == 10 and sum(a.distribution) == pytest.approx(1.0, abs=1e-5)


def test_predict_cli_reports_and_skips_bad_files(run, tiny, tmp_path, capsys):
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    for name in ("i01_01_1.bmp", "i01_08_5.bmp"):
        (folder / name).write_bytes((tiny / "distorted_images" / name).read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    from pynima.cli import main

    cmd = ["predict", str(run / "best.ckpt"), str(tmp_path / "photos")]
    code = main([*cmd, "--format", "json"])  # in process: a subprocess would import torch again
    out, err = capsys.readouterr()
    assert code == 1, err  # one file failed
    rows = json.loads(out)
    assert [row["path"].rsplit("/", 1)[1] for row in rows] == ["broken.jpg", "i01_01_1.bmp", "i01_08_5.bmp"]
    assert rows[0]["mean"] is None and "cannot decode image" in rows[0]["error"]
    assert all(len(row["distribution"]) == 10 and row["error"] is None for row in rows[1:])
    assert "broken.jpg: cannot decode image" in err and "1 of 3 input(s) could not be scored" in err
    code = main([*cmd, "--format", "csv"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("path,mean,std,p0") and len(lines) == 4 and code == 1
    code = main(cmd)
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 + 3 and "i01_08_5.bmp" in out and code == 1


@pytest.mark.slow
def test_same_seed_same_run(tiny, tmp_path):
    def once(name):
        cfg = TrainConfig(
            data=str(tiny), out=str(tmp_path / name), epochs=1, batch_size=8, num_workers=0, seed=5, export_onnx=False
        )
        return (train(cfg, progress=False) / "metrics.csv").read_text()

    assert once("a") == once("b")


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "{tmp}/missing.ckpt", "{tmp}"],
        ["train", "{tmp}/no-dataset"],
        ["predict", "{tmp}/missing.ckpt", "{tmp}"],
    ],
)
def test_cli_errors_are_one_line(args, tmp_path, capsys):
    from pynima.cli import main

    code = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert str(tmp_path) in err


def test_image_cache_gives_the_same_items(tiny):
    from pynima.model.labels import label_distributions
    from pynima.training.items import IQADataset, transforms

    recs = read_tid2013(tiny)[:4]
    t = label_distributions(recs)
    plain = IQADataset(recs, t, transforms((0.5,) * 3, (0.5,) * 3, train=False))
    cached = IQADataset(recs, t, transforms((0.5,) * 3, (0.5,) * 3, train=False), cache=True)
    for i in range(4):
        a, b = plain[i], cached[i]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


@pytest.mark.slow
def test_bf16_training_image_cache_and_frozen_stages_run(tiny, tmp_path):
    from pynima.model.network import create_model

    cfg = TrainConfig(
        data=str(tiny),
        out=str(tmp_path / "bf16"),
        epochs=1,
        batch_size=8,
        num_workers=0,
        seed=1,
        precision="bf16-mixed",
        cache_images=True,
        export_onnx=False,
        freeze_stages=2,
    )
    out = train(cfg, progress=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images"] == 10 and np.isfinite(m["emd"]["value"])
    saved = json.loads((out / "config.json").read_text())
    assert saved["precision"] == "bf16-mixed" and saved["freeze_stages"] == 2
    trained = torch.load(out / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    imagenet = create_model("tf_efficientnet_lite0").state_dict()
    for key in ("backbone.conv_stem.weight", "backbone.blocks.1.1.bn3.running_mean", "backbone.blocks.1.1.bn3.weight"):
        assert torch.equal(trained[f"model.{key}"], imagenet[key]), key  # frozen: still the ImageNet values
    for key in ("backbone.blocks.2.0.conv_pw.weight", "backbone.blocks.2.0.bn1.running_mean"):
        assert not torch.equal(trained[f"model.{key}"], imagenet[key]), key  # trained


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("3", "not a config"),
        ('{"data": "x", "ratios": 5}', "ratios must be"),
        ('{"data": "x", "optimizer": "adamw"}', "optimizer must be one of"),
        ('{"data": "x", "lr_head": 0.0}', "lr_head must be a positive number"),
        ('{"data": "x", "epochs": "10"}', "epochs must be an integer"),
        ('{"data": "x", "cache_images": "yes"}', "cache_images must be true or false"),
        ('{"data": "x", "learning_rate": 1}', "unknown config key"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_key(content, problem, tmp_path, capsys):
    """In process (main() is what the console script calls): the exit code and the one stderr line are the same."""
    from pynima.cli import main

    config = tmp_path / "config.json"
    config.write_text(content)
    code = main(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.strip().count("\n") == 0, err
    assert problem in err and not (tmp_path / "run").exists()


def test_train_config_takes_pathlib_paths(tmp_path):
    cfg = TrainConfig(data=tmp_path / "data", out=tmp_path / "run", init=tmp_path / "x.ckpt")
    assert cfg.data == str(tmp_path / "data") and cfg.out == str(tmp_path / "run") and isinstance(cfg.init, str)
