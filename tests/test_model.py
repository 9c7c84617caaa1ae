import numpy as np
import pytest
import torch

from pynima.errors import PynimaError
from pynima.model import NIMA, create_model, imagenet_backbone, mean_score, normalization, std_score


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
