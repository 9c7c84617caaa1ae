"""Preprocessing shared by evaluation and prediction, the torch, ONNX Runtime and OpenVINO engines, pynima export."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pynima.errors import PynimaError
from pynima.scale import CROP
from pynima.scoring.engines import OnnxEngine, TorchEngine
from pynima.scoring.export import export_onnx, quantize_int8
from pynima.scoring.models import load
from pynima.scoring.preprocess import crop_boxes, crops, normalize
from pynima.scoring.scorer import Scorer


@pytest.fixture(scope="module")
def onnx_file(run, tmp_path_factory):
    return export_onnx(run / "best.ckpt", tmp_path_factory.mktemp("onnx") / "model.onnx", {"name": "tiny-test"})


def test_export_metadata_says_what_the_model_is(run, onnx_file, tmp_path):
    meta = OnnxEngine(onnx_file).metadata
    assert meta["pynima_name"] == "tiny-test"
    assert meta["pynima_backbone"] == "tf_efficientnet_lite0" and meta["pynima_source"] == "best.ckpt"
    with pytest.raises(PynimaError, match="pynima_mean"):  # scoring reads it: a user value would score wrongly
        export_onnx(run / "best.ckpt", tmp_path / "m.onnx", {"pynima_mean": "0,0,0"})
    assert not (tmp_path / "m.onnx").exists()


def test_centre_crop_matches_torchvision_and_training_transform(photos):
    from pynima.training.items import transforms

    image = photos[0][:383, :511]  # odd sizes exercise the rounding
    mean, std = (0.5,) * 3, (0.4, 0.5, 0.6)
    ours = normalize(crops(image, "centre"), mean, std)[0]
    theirs = transforms(mean, std, train=False)(Image.fromarray(image)).numpy()
    assert ours.shape == (3, CROP, CROP) and np.abs(ours - theirs).max() < 1e-5


def test_grid_crops_cover_the_image_and_stay_bounded():
    boxes = crop_boxes(384, 512, "grid")
    assert len(boxes) == 6
    covered = np.zeros((384, 512), bool)
    for y, x in boxes:
        covered[y : y + CROP, x : x + CROP] = True
    assert covered.all()
    assert len(crop_boxes(3000, 4000, "grid")) == 16 and crop_boxes(200, 200, "grid") == [(-12, -12)]
    small = crops(np.full((100, 150, 3), 7, np.uint8), "grid")
    assert small.shape == (1, CROP, CROP, 3) and small[0, 112, 112, 0] == 7 and small[0, 0, 0, 0] == 0
    with pytest.raises(PynimaError, match="crops"):
        crop_boxes(384, 512, "five")


@pytest.mark.parametrize("mode", ["centre", "grid"])
def test_onnx_matches_pytorch(run, tiny, onnx_file, mode):
    paths = sorted((tiny / "distorted_images").iterdir())[:12]
    torch_scorer = Scorer(TorchEngine.from_checkpoint(run / "best.ckpt"), crops=mode)
    onnx_scorer = load(onnx_file, crops=mode)
    a = np.array([s.distribution for _, s, _ in torch_scorer.score_paths(paths, batch_size=5)])
    b = np.array([s.distribution for _, s, _ in onnx_scorer.score_paths(paths, batch_size=5)])
    assert a.shape == (12, 10) and np.abs(a - b).max() < 1e-4
    assert onnx_scorer.engine.backbone == "tf_efficientnet_lite0"


def test_evaluation_uses_the_prediction_path(run, tiny):
    """metrics.json of the run and the scorer agree image by image (same crops, same numbers)."""
    from pynima.evaluation.evaluate import read_predictions

    pred = read_predictions(run / "predictions.csv")
    scorer = load(run / "best.ckpt")
    means = [scorer.score(tiny / "distorted_images" / name).mean for name in pred["name"]]
    assert np.allclose(means, pred["pred_mean"], atol=1e-5)


@pytest.mark.slow
def test_predict_cli_onnx_engine(run, tiny, onnx_file):
    image = tiny / "distorted_images" / "i02_08_3.bmp"
    out = {}
    for engine, model in (("torch", run / "best.ckpt"), ("onnx", onnx_file)):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pynima.cli",
                "predict",
                str(model),
                str(image),
                "--engine",
                engine,
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        out[engine] = json.loads(r.stdout)[0]["mean"]
    assert out["torch"] == pytest.approx(out["onnx"], abs=1e-4)


@pytest.mark.slow
def test_int8_model_loads_and_scores(tiny, onnx_file):
    calibration = sorted((tiny / "distorted_images").iterdir())[:16]
    int8 = quantize_int8(onnx_file, calibration)
    scorer = load(int8)
    fp32 = load(onnx_file)
    a, b = scorer.score(calibration[0]), fp32.score(calibration[0])
    assert sum(a.distribution) == pytest.approx(1, abs=1e-4) and abs(a.mean - b.mean) < 0.5
    assert int8.stat().st_size < onnx_file.stat().st_size / 2
    with pytest.raises(PynimaError, match="calibration"):
        quantize_int8(onnx_file, [])


def test_engine_errors_are_clear(run, tmp_path):
    import shutil

    lone = shutil.copy(run / "best.ckpt", tmp_path / "lone.ckpt")  # no export next to it
    for engine in ("onnx", "openvino"):
        with pytest.raises(PynimaError, match=f"{engine} engine.*pynima export"):
            load(lone, engine=engine)
    with pytest.raises(PynimaError, match="onnx or openvino engine"):
        load(tmp_path / "x.onnx", engine="torch")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    for engine in ("auto", "openvino"):
        with pytest.raises(PynimaError, match="bad.onnx"):
            load(tmp_path / "bad.onnx", engine=engine)
    with pytest.raises(PynimaError, match="no such ONNX file"):
        load(tmp_path / "missing.onnx", engine="openvino")
    with pytest.raises(PynimaError, match="no such checkpoint"):
        load(tmp_path / "missing.ckpt")
    with pytest.raises(PynimaError, match="bf16"):
        load(run / "best.onnx", engine="onnx", bf16=True)
    with pytest.raises(PynimaError, match="engine must be"):
        load(run / "best.onnx", engine="tensorrt")


def test_openvino_matches_pytorch_in_f32_and_bf16_is_opt_in(run, tiny):
    paths = sorted((tiny / "distorted_images").iterdir())[:12]
    torch_scorer = load(run / "best.ckpt", engine="torch")
    ov = load(run / "best.ckpt", engine="openvino")  # the export next to the checkpoint, on OpenVINO
    assert ov.engine.name == "openvino" and ov.engine.backbone == "tf_efficientnet_lite0"
    a = np.array([s.distribution for _, s, _ in torch_scorer.score_paths(paths, batch_size=5)])
    b = np.array([s.distribution for _, s, _ in ov.score_paths(paths, batch_size=5)])
    assert np.abs(a - b).max() < 1e-4  # f32 forced: this CPU would otherwise run bf16 silently
    c = np.array(
        [
            s.distribution
            for _, s, _ in load(run / "best.onnx", engine="openvino", bf16=True).score_paths(paths, batch_size=5)
        ]
    )
    assert np.allclose(c.sum(1), 1, atol=1e-3) and np.abs(a - c).max() < 0.05


def test_checkpoint_with_fresh_export_starts_on_onnx(run):
    import os

    ckpt, onnx = run / "best.ckpt", run / "best.onnx"
    assert onnx.is_file()  # written by pynima train
    assert load(ckpt).engine.name == "onnx" and load(ckpt, engine="torch").engine.name == "torch"
    st = ckpt.stat()
    try:
        os.utime(ckpt, ns=(st.st_atime_ns, onnx.stat().st_mtime_ns + 10**9))  # checkpoint newer than its export
        assert load(ckpt).engine.name == "torch"
    finally:
        os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_full_mode_scores_the_whole_image_in_one_pass(run, photos):
    import torch

    engine = TorchEngine.from_checkpoint(run / "best.ckpt")
    scorer = Scorer(engine, crops="full")
    image = photos[0][:300, :417]  # odd sizes
    assert crops(image, "full").shape == (1, 300, 417, 3) and crop_boxes(300, 417, "full") == [(0, 0)]
    x = torch.from_numpy(normalize(image[None], engine.mean, engine.std))
    with torch.no_grad():
        direct = engine.model.eval()(x).double().numpy()[0]
    assert np.abs(np.array(scorer.score(image).distribution) - direct).max() < 1e-5
    # images of several sizes in one call: grouped by size, each equal to its score alone
    others = [photos[1], image, photos[1][:250, :260], image]
    together = scorer.distributions([crops(a, "full") for a in others])
    alone = np.array([scorer.score(a).distribution for a in others])
    assert together.shape == (4, 10) and np.abs(together - alone).max() < 1e-5
    small = crops(np.full((100, 150, 3), 9, np.uint8), "full")  # padded to the crop size, as in the other modes
    assert small.shape == (1, CROP, CROP, 3)


def test_full_mode_on_onnx_matches_pytorch_and_an_old_fixed_size_export_is_refused(run, photos, onnx_file, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    engine = load(onnx_file, crops="full").engine
    assert engine.any_size
    a = np.array([load(onnx_file, crops="full").score(p).distribution for p in photos])
    b = np.array(
        [Scorer(TorchEngine.from_checkpoint(run / "best.ckpt"), crops="full").score(p).distribution for p in photos]
    )
    assert np.abs(a - b).max() < 1e-4
    # a pynima export of 224 x 224 crops only (as exported before whole-image scoring)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, CROP, CROP])
    y = helper.make_tensor_value_info("distribution", TensorProto.FLOAT, ["batch", 10])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Concat", ["f", "f", "f", "f"], ["c"], axis=1),
            helper.make_node("Slice", ["c", "s", "e", "ax"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["distribution"], axis=1),
        ],
        "g",
        [x],
        [y],
        [
            helper.make_tensor("s", TensorProto.INT64, [1], [0]),
            helper.make_tensor("e", TensorProto.INT64, [1], [10]),
            helper.make_tensor("ax", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for k, v in {
        "pynima_backbone": "tf_efficientnet_lite0",
        "pynima_mean": "0.5,0.5,0.5",
        "pynima_std": "0.5,0.5,0.5",
    }.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, tmp_path / "fixed.onnx")
    assert not load(tmp_path / "fixed.onnx").engine.any_size  # it still scores crops
    with pytest.raises(PynimaError, match="dynamic image size"):
        load(tmp_path / "fixed.onnx", crops="full")


def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys):
    """Here (no GPU, onnxruntime without CUDA): --device cuda names the device and what to install, never a CUDA
    traceback; cpu scores as before. On a machine with a GPU, tests/test_metric.py's CUDA test runs instead."""
    import onnxruntime as ort
    import torch

    from pynima.cli import main

    image = tmp_path / "a.png"
    Image.fromarray(np.full((240, 240, 3), 120, np.uint8)).save(image)
    assert main(["predict", str(image), "--device", "cpu"]) == 0
    capsys.readouterr()
    cases = [
        (["--device", "mps"], "ONNX Runtime runs on cpu or cuda"),
        (["--device", "gpu0"], "cpu or cuda"),
        (["--device", "cuda", "--ray", "--out", str(tmp_path / "x.parquet")], "--device with --ray"),
    ]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        cases.append((["--device", "cuda"], "has no CUDA provider; install onnxruntime-gpu"))
    for options, problem in cases:
        assert main(["predict", str(image), *options]) == 2, options
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1 and "Traceback" not in err, err
    if not torch.cuda.is_available():
        from pynima.scoring.engines import torch_device

        with pytest.raises(PynimaError, match="device cuda: not available on this machine"):
            torch_device("cuda")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU (the CPU path is tested everywhere)")
def test_scoring_on_cuda_gives_the_cpu_scores(run):
    """The torch engine on the GPU, and ONNX Runtime's CUDA provider where onnxruntime-gpu is installed."""
    import onnxruntime as ort

    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    cpu = load(run / "best.ckpt", engine="torch").score(image).mean
    assert load(run / "best.ckpt", engine="torch", device="cuda").score(image).mean == pytest.approx(cpu, abs=1e-3)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        onnx = load(run / "best.onnx", device="cuda")
        assert onnx.engine.session.get_providers()[0] == "CUDAExecutionProvider"
        assert onnx.score(image).mean == pytest.approx(cpu, abs=1e-3)
