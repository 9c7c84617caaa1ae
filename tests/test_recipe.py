"""Training recipe options: learning-rate schedules, fine-tuning from a pynima checkpoint, no-test splits."""

import json
import math

import pytest

from pynima.config import RECIPES, TrainConfig
from pynima.datasets.splits import apply_split, make_split, split_ratios
from pynima.datasets.tid2013 import read_tid2013
from pynima.errors import DatasetError, PynimaError
from pynima.training.items import make_loader
from pynima.training.module import build_module, lr_factor
from pynima.training.train import make_trainer, train

pytestmark = pytest.mark.train


def test_lr_factor_follows_its_formula():
    assert [lr_factor(s, 4, 20) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    for step in range(4, 21):
        assert lr_factor(step, 4, 20, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * (step - 4) / 16)))
    assert lr_factor(4, 4, 20, "cosine") == 1.0 and lr_factor(20, 4, 20, "cosine") == pytest.approx(0.0)
    assert lr_factor(0, 0, 10, "cosine") == 1.0


@pytest.mark.slow
def test_the_scheduler_sets_each_steps_learning_rate(tiny, tmp_path):
    """2 epochs x 5 steps, 1 warm-up epoch, cosine: the learning rate Lightning applies at each step."""
    import lightning as L

    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append([g["lr"] for g in trainer.optimizers[0].param_groups])

    cfg = TrainConfig(
        data=str(tiny),
        out=str(tmp_path / "run"),
        epochs=2,
        batch_size=8,
        num_workers=0,
        lr_head=1e-3,
        lr_base=1e-4,
        schedule="cosine",
        warmup_epochs=1,
        export_onnx=False,
    )
    train(cfg, progress=False, test=False, callbacks=[Record()])
    steps = len(seen)
    assert steps == 10
    for step, (head, base) in enumerate(seen):
        f = lr_factor(step, 5, steps, "cosine")
        assert head == pytest.approx(1e-3 * f) and base == pytest.approx(1e-4 * f)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["schedule"] == "cosine"


def test_init_starts_from_the_checkpoints_weights(run, tiny, tmp_path):
    """Before any step, a model initialised from best.ckpt has the validation EMD best.ckpt had."""
    cfg = TrainConfig(data=str(tiny), out=str(tmp_path), batch_size=8, num_workers=0, init=str(run / "best.ckpt"))
    val = apply_split(read_tid2013(tiny), json.loads((run / "split.json").read_text()), "val")
    result = make_trainer(logger=False, enable_progress_bar=False).validate(
        build_module(cfg), make_loader(val, cfg, False), verbose=False
    )
    best = json.loads((run / "train.json").read_text())["best_val_emd"]
    assert result[0]["val_emd"] == pytest.approx(best, abs=1e-6)
    with pytest.raises(PynimaError, match="same --backbone"):
        build_module(TrainConfig(data=str(tiny), backbone="tf_efficientnet_lite1", init=str(run / "best.ckpt")))


def test_train_json_records_the_cpu_seconds(run):
    """CPU seconds (this process and its loader workers) next to the wall seconds: more than nothing, and no more
    than every core busy for the whole run."""
    import os

    info = json.loads((run / "train.json").read_text())
    assert 0 < info["cpu_seconds"] <= info["seconds"] * os.cpu_count() + 1


@pytest.mark.slow
def test_a_split_without_a_test_part(tiny, tmp_path):
    records = read_tid2013(tiny)
    split = make_split(records, "reference", split_ratios([0.8, 0.2, 0]), seed=0)
    assert split["test"] == [] and len(split["train"]) == 50 and len(split["val"]) == 10
    with pytest.raises(DatasetError):
        split_ratios([1.0, 0])
    cfg = TrainConfig(
        data=str(tiny),
        out=str(tmp_path / "final"),
        epochs=1,
        batch_size=8,
        num_workers=0,
        ratios=(0.8, 0.2, 0.0),
        export_onnx=False,
    )
    out = train(cfg, progress=False)
    assert (out / "best.ckpt").is_file() and not (out / "metrics.json").exists()


def test_a_recipe_fills_only_what_is_not_given(tmp_path):
    pynima, paper = TrainConfig(data="d"), TrainConfig(data="d", recipe="paper")
    ours = RECIPES["pynima"]
    assert (pynima.recipe, pynima.schedule, pynima.warmup_epochs) == ("pynima", ours["schedule"], ours["warmup_epochs"])
    assert pynima.learning_rates() == RECIPES["pynima"]["adam"]
    assert (paper.schedule, paper.warmup_epochs, paper.learning_rates()) == ("constant", 0.0, (3.7e-5, 1.4e-4))
    assert TrainConfig(data="d", recipe="paper", optimizer="sgd").learning_rates() == (3e-6, 3e-7)
    mixed = TrainConfig(data="d", recipe="paper", schedule="cosine", lr_head=1e-3)
    assert (mixed.schedule, mixed.warmup_epochs, mixed.learning_rates()) == ("cosine", 0.0, (1e-3, 1.4e-4))
    for bad in ("fast", ["paper"], None):
        with pytest.raises(PynimaError, match="recipe must be one of"):
            TrainConfig(data="d", recipe=bad)
    # a config.json written before recipes existed had the paper's defaults, and keeps them
    old = tmp_path / "config.json"
    old.write_text(json.dumps({"data": "d", "lr_head": None, "lr_base": None}))
    assert TrainConfig.from_file(old).learning_rates() == (3.7e-5, 1.4e-4)
    assert TrainConfig.from_file(old).clean_label is False  # nor clean labels, which came later still
    assert (pynima.clean_label, paper.clean_label) == (ours["clean_label"], RECIPES["paper"]["clean_label"])
    assert TrainConfig(data="d", clean_label=False).clean_label is False
    assert TrainConfig.from_file(old).schedule == "constant"


def test_the_cli_recipe_option_reaches_the_config():
    from pynima.cli.commands import config_from_args
    from pynima.cli.parser import build_parser

    def config(*argv):
        return config_from_args(build_parser().parse_args(["train", "data", *argv]))

    assert config().recipe == "pynima" and config().schedule == RECIPES["pynima"]["schedule"]
    paper = config("--recipe", "paper")
    assert (paper.recipe, paper.schedule, paper.learning_rates()) == ("paper", "constant", (3.7e-5, 1.4e-4))
    assert config("--recipe", "paper", "--lr-base", "2e-4").learning_rates() == (3.7e-5, 2e-4)
    assert config("--recipe", "paper", "--test-crops", "grid").test_crops == "grid"


def test_the_test_part_is_scored_with_the_configs_crops(run):
    """The run fixture keeps the defaults: its test metrics say which crops scored them."""
    from pynima.evaluation.evaluate import CROP_DESCRIPTION

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["recipe"] == "pynima" and cfg["test_crops"] == "centre"
    assert json.loads((run / "metrics.json").read_text())["crops"] == CROP_DESCRIPTION["centre"]


@pytest.mark.slow
def test_test_crops_grid_scores_the_test_part_with_the_grid(tiny, tmp_path):
    from pynima.evaluation.evaluate import CROP_DESCRIPTION

    cfg = TrainConfig(
        data=str(tiny),
        out=str(tmp_path / "grid"),
        epochs=1,
        batch_size=8,
        num_workers=0,
        test_crops="grid",
        export_onnx=False,
    )
    out = train(cfg, progress=False)
    assert json.loads((out / "metrics.json").read_text())["crops"] == CROP_DESCRIPTION["grid"]
    with pytest.raises(PynimaError, match="test_crops must be one of"):
        TrainConfig(data="d", test_crops="five")
