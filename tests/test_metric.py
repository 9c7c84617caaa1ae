"""pynima.metric(): the bundled model as a torch module on tensors (issue 24, item 1), checked against ONNX Runtime
(pynima predict's engine) and by a gradient step."""

import numpy as np
import pytest
import torch
from PIL import Image

import pynima
import pynima.cli
from pynima.errors import PynimaError


@pytest.fixture(scope="module")
def photo(photos) -> np.ndarray:
    return photos[0][:300, :400]


@pytest.mark.parametrize("crops", ["centre", "grid", "full"])
def test_scores_match_pynima_predict(photo, tmp_path, crops, capsys):
    """Weights read from the ONNX file's initializers, BatchNorm folded as the export folded it: same scores as ONNX
    Runtime through the CLI to 1e-4."""
    Image.fromarray(photo).save(tmp_path / "p.png")
    assert pynima.cli.main(["predict", str(tmp_path / "p.png"), "--format", "jsonl", "--crops", crops]) == 0
    import json

    expected = json.loads(capsys.readouterr().out)["mean"]
    m = pynima.metric(crops=crops)
    as_uint8 = torch.from_numpy(photo).permute(2, 0, 1)[None]
    as_float = as_uint8.float() / 255
    assert float(m(as_uint8)[0]) == pytest.approx(expected, abs=1e-4)
    assert float(m(as_float)[0]) == pytest.approx(expected, abs=1e-4)


def test_a_batch_gives_one_score_per_image_and_no_gradient_by_default(photo):
    m = pynima.metric()
    x = torch.from_numpy(np.stack([photo, photo[::-1].copy()])).permute(0, 3, 1, 2).float().div(255)
    x.requires_grad_(True)
    scores = m(x)
    assert scores.shape == (2,) and not scores.requires_grad
    assert m.lower_better is False and m.score_range == (0.0, 9.0)
    assert all(0 <= float(s) <= 9 for s in scores)


def test_as_loss_a_gradient_step_raises_the_score(photo):
    """The loss is 9 - score: one step against its gradient on a noisy image must raise the image's score."""
    loss_fn = pynima.metric(as_loss=True)
    assert loss_fn.lower_better is True
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0, 20, photo.shape), 0, 255).astype(np.float32) / 255
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].requires_grad_(True)
    loss = loss_fn(x).sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    stepped = (x - 0.02 * x.grad.sign()).clamp(0, 1).detach()
    score = pynima.metric()
    assert float(score(stepped)[0]) > float(score(x.detach())[0])
    assert float(loss_fn(stepped)[0]) < float(loss)


def test_a_small_image_is_padded_as_predict_pads_it(capsys, tmp_path):
    small = np.random.default_rng(1).integers(0, 255, (100, 150, 3), np.uint8)
    Image.fromarray(small).save(tmp_path / "s.png")
    pynima.cli.main(["predict", str(tmp_path / "s.png"), "--format", "jsonl"])
    import json

    expected = json.loads(capsys.readouterr().out)["mean"]
    assert float(pynima.metric()(torch.from_numpy(small).permute(2, 0, 1)[None])[0]) == pytest.approx(
        expected, abs=1e-4
    )


def test_bad_shapes_devices_and_crops_are_one_line():
    with pytest.raises(PynimaError, match=r"\(N, 3, H, W\)"):
        pynima.metric()(torch.zeros(3, 224, 224))
    with pytest.raises(PynimaError, match="non-finite score"):
        pynima.metric()(torch.full((1, 3, 224, 224), float("nan")))
    with pytest.raises(PynimaError, match="crops must be one of"):
        pynima.metric(crops="middle")
    if not torch.cuda.is_available():
        with pytest.raises(PynimaError, match="device cuda: not available"):
            pynima.metric(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_same_score(photo):
    x = torch.from_numpy(photo).permute(2, 0, 1)[None]
    assert float(pynima.metric(device="cuda")(x.cuda())[0]) == pytest.approx(float(pynima.metric()(x)[0]), abs=1e-3)
