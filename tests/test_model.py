import numpy as np
import pytest
import torch

from pynima.errors import PynimaError
from pynima.model.network import NIMA, create_model, imagenet_backbone, mean_score, normalization, std_score


def _prep(img: np.ndarray, mean, std) -> torch.Tensor:
    from PIL import Image

    x = np.asarray(Image.fromarray(img).resize((224, 224), Image.Resampling.BICUBIC), np.float32) / 255
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None]


def test_offline_weights_classify_chelsea_as_egyptian_cat():
    from skimage import data

    net = imagenet_backbone("tf_efficientnet_lite0").eval()
    with torch.no_grad():
        logits = net(_prep(data.chelsea(), *normalization("tf_efficientnet_lite0")))
    assert logits.argmax().item() == 285  # ImageNet "Egyptian cat"


def test_nima_outputs_a_distribution_and_scores():
    model = create_model("tf_efficientnet_lite0", pretrained=False).eval()
    assert isinstance(model, NIMA)
    drop, lin = model.head
    assert drop.p == 0.75 and lin.out_features == 10 and lin.in_features == 1280
    with torch.no_grad():
        p = model(torch.randn(2, 3, 224, 224))
    assert p.shape == (2, 10) and torch.allclose(p.sum(-1), torch.ones(2)) and (p >= 0).all()
    one_hot = torch.zeros(1, 10)
    one_hot[0, 7] = 1
    assert mean_score(one_hot).item() == 7.0 and std_score(one_hot).item() == 0.0
    uniform = torch.full((1, 10), 0.1)
    assert mean_score(uniform).item() == pytest.approx(4.5)
    assert std_score(uniform).item() == pytest.approx(np.arange(10).std())


def test_hub_backbone_offline_names_the_alternatives(monkeypatch):
    monkeypatch.delenv("PYNIMA_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(PynimaError, match="no offline ImageNet weights: pass --weights FILE.*tf_efficientnet_lite0"):
        create_model("mobilenet_v2")


def test_weights_file_round_trip(tmp_path):
    net = imagenet_backbone("mobilenet_v2", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "mnv2.pth")
    model = create_model("mobilenet_v2", weights=tmp_path / "mnv2.pth")
    assert torch.equal(model.backbone.conv_stem.weight, net.conv_stem.weight)
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(PynimaError, match="bad.pth: does not fit mobilenet_v2"):
        create_model("mobilenet_v2", weights=tmp_path / "bad.pth")


def test_unknown_backbone():
    with pytest.raises(PynimaError, match="unknown backbone"):
        create_model("nope")


def test_frozen_stages_get_no_gradient_and_keep_their_statistics():
    model = create_model("tf_efficientnet_lite0", pretrained=False, freeze_stages=2).train()
    body = model.backbone
    frozen_bn, live_bn = body.blocks[1][1].bn3, body.blocks[2][0].bn3
    assert not frozen_bn.training and live_bn.training and not body.bn1.training
    stats = frozen_bn.running_mean.clone(), live_bn.running_mean.clone()
    model(torch.randn(4, 3, 224, 224)).log().sum().backward()
    assert body.conv_stem.weight.grad is None and body.blocks[1][1].conv_pwl.weight.grad is None
    assert body.blocks[2][0].conv_pw.weight.grad is not None and model.head[1].weight.grad is not None
    assert torch.equal(frozen_bn.running_mean, stats[0]) and not torch.equal(live_bn.running_mean, stats[1])
    assert not any(p.requires_grad for p in body.blocks[:2].parameters())
    assert all(p.requires_grad for p in body.blocks[2:].parameters())
    with pytest.raises(PynimaError, match="freeze_stages"):
        create_model("tf_efficientnet_lite0", pretrained=False, freeze_stages=99)


def test_the_deterministic_output_is_what_evaluation_scores_while_dropout_draws_differ():
    """The ranking terms compare ``forward_with_deterministic``'s second output: with the head's dropout on (as in
    training) it is the evaluation forward's distribution, while the first output is a dropout draw that moves."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    net = NIMA(backbone, 64).eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        evaluated = net(x)
        net.head[0].train()  # dropout on, as in a training step
        first, deterministic = net.forward_with_deterministic(x)
        second, again = net.forward_with_deterministic(x)
    assert torch.allclose(deterministic, evaluated, atol=1e-6) and torch.equal(deterministic, again)
    assert not torch.allclose(first, second) and torch.allclose(first.sum(1), torch.ones(4))
    moved = (mean_score(first) - mean_score(evaluated)).abs().max()
    assert moved > 0.01  # a dropout draw of p = 0.75 is not the evaluated score


@pytest.mark.slow
def test_the_anti_aliased_lite0_has_lite0s_weights_and_exports_to_onnx(photos, tmp_path):
    """tf_efficientnet_lite0_aa: the same ImageNet weights (a blur has none), and its ONNX export (the blur's reflect
    padding, any image size) scores the whole image as PyTorch does."""
    import pynima
    from pynima.scoring.export import export_onnx

    plain, aa = imagenet_backbone("tf_efficientnet_lite0"), imagenet_backbone("tf_efficientnet_lite0_aa")
    assert sum(type(m).__name__ == "BlurPool2d" for m in aa.modules()) == 4  # one per strided depthwise conv
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), aa.state_dict().values(), strict=True))
    model = create_model("tf_efficientnet_lite0_aa", pretrained=False)
    ckpt = tmp_path / "aa.ckpt"
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"hyper_parameters": {"backbone": "tf_efficientnet_lite0_aa"}, "state_dict": weights}, ckpt)
    onnx = export_onnx(ckpt, tmp_path / "aa.onnx")
    image = photos[1][:300, :260]  # not a multiple of the network's stride
    assert pynima.load(onnx, crops="full").score(image).mean == pytest.approx(
        pynima.load(ckpt, crops="full", engine="torch").score(image).mean, abs=1e-4
    )
