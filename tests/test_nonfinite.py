"""Non-finite numbers are errors, never scores: a diverged training run, a model whose output is not a probability
distribution, NaN metadata (issue 23, items 1-2)."""

import math

import numpy as np
import pytest

import pynima
from pynima.config import TrainConfig
from pynima.errors import NonFiniteError, PynimaError

META = {"pynima_backbone": "tf_efficientnet_lite0", "pynima_mean": "0.5,0.5,0.5", "pynima_std": "0.5,0.5,0.5"}


def linear_onnx(path, weights: np.ndarray, softmax: bool, meta: dict[str, str] = META):
    """A NIMA-shaped ONNX file (N x 3 x 224 x 224 in, N x 10 out, pynima metadata): global pooling, then a 3 x 10
    linear layer, with or without the softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 224, 224])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10])
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits" if softmax else "out"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["out"], axis=1))
    graph = helper.make_graph(nodes, "g", [x], [y], [numpy_helper.from_array(weights.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, str(path))
    return path


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (240, 260, 3), np.uint8)


def test_a_model_with_its_softmax_scores(tmp_path, image):
    """The control: the same network with its softmax is a valid model, so the refusals below are for the output."""
    w = np.random.default_rng(1).normal(size=(3, 10))
    score = pynima.load(linear_onnx(tmp_path / "ok.onnx", w, softmax=True)).score(image)
    assert 0 <= score.mean <= 9 and sum(score.distribution) == pytest.approx(1, abs=1e-5)


def test_a_model_without_softmax_is_refused_not_scored(tmp_path, image):
    w = np.random.default_rng(1).normal(size=(3, 10)) * 5
    path = linear_onnx(tmp_path / "logits.onnx", w, softmax=False)
    with pytest.raises(PynimaError, match="not a probability distribution.*without its softmax") as e:
        pynima.load(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_model_with_non_finite_weights_is_refused(tmp_path, bad):
    w = np.ones((3, 10))
    w[0, 0] = bad
    with pytest.raises(NonFiniteError, match="not finite"):
        pynima.load(linear_onnx(tmp_path / "nan.onnx", w, softmax=True))


@pytest.mark.parametrize("field", ["pynima_mean", "pynima_std"])
@pytest.mark.parametrize("value", ["nan,0.5,0.5", "0.5,inf,0.5"])
def test_non_finite_normalization_metadata_is_refused(tmp_path, field, value):
    path = linear_onnx(tmp_path / "m.onnx", np.ones((3, 10)), softmax=True, meta=META | {field: value})
    with pytest.raises(PynimaError, match="malformed pynima metadata"):
        pynima.load(path)


def test_a_checkpoint_with_nan_weights_is_refused_by_load_and_evaluate(run, tiny, tmp_path, capsys):
    import torch

    from pynima.cli import main

    saved = torch.load(run / "best.ckpt", weights_only=True)
    key = [k for k in saved["state_dict"] if k.endswith(".weight")][-1]  # the head's linear layer
    saved["state_dict"][key] = torch.full_like(saved["state_dict"][key], math.nan)
    bad = tmp_path / "nan.ckpt"
    torch.save(saved, bad)
    with pytest.raises(NonFiniteError, match="not finite"):
        pynima.load(bad, engine="torch")
    code = main(["evaluate", str(bad), str(tiny), "--out", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert code == 2 and "not finite" in err and not (tmp_path / "ev" / "metrics.json").exists()


def test_a_diverged_training_run_stops_with_one_line_instead_of_a_perfect_score(tiny, tmp_path):
    """lr 1e30 used to end with validation EMD 0.0: a NaN sample counted as a perfect prediction."""
    from pynima.training.train import train

    cfg = TrainConfig(
        data=str(tiny),
        out=str(tmp_path / "r"),
        epochs=1,
        batch_size=8,
        num_workers=0,
        lr_head=1e30,
        lr_base=1e30,
        export_onnx=False,
    )
    with pytest.raises(NonFiniteError, match="training diverged") as e:
        train(cfg, progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "r" / "metrics.json").exists()


def test_a_search_counts_a_diverged_trial_as_failed_not_best(tiny, tmp_path, caplog):
    import logging

    from pynima.training.search import run_search

    cfg = TrainConfig(data=str(tiny), out=str(tmp_path / "s"), epochs=1, batch_size=8, num_workers=0)
    with (
        caplog.at_level(logging.WARNING, logger="pynima.training.search"),
        pytest.raises(PynimaError, match="no trial finished"),
    ):
        run_search(cfg, trials=1, lr_head_range=(1e29, 1e30), lr_base_range=(1e29, 1e30))
    assert "training diverged" in caplog.text and not (tmp_path / "s" / "best_config.json").exists()


def wrong_values(annotation: str) -> list:
    """Values of the wrong type for a TrainConfig field annotated ``annotation``."""
    values = [{"a": 1}, [[1]]]
    if "bool" not in annotation:
        values.append(True)  # JSON's true is no number
    if "str" not in annotation:
        values.append("x")
    if "float" in annotation or "int" in annotation:
        values.append(math.nan)
    return values


def test_every_train_config_field_refuses_a_wrong_type_in_one_line():
    """A config file with "seed": true used to pass the check and crash after --overwrite had removed the old
    run; every field is walked, so a new field without a check fails here."""
    from dataclasses import fields

    for f in fields(TrainConfig):
        for value in wrong_values(str(f.type)):
            with pytest.raises(PynimaError, match=f.name) as e:
                TrainConfig(**{"data": "d", f.name: value})
            assert "\n" not in str(e.value), (f.name, value)
    assert TrainConfig(data="d", seed=0).seed == 0
    with pytest.raises(PynimaError, match="seed"):
        TrainConfig(data="d", seed=-1)
