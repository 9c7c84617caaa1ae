"""The model bundled inside the package (docs/model-card.md): found with no argument, says what it is, ranks quality."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import pynima
from pynima.errors import PynimaError
from pynima.scoring.models import BUNDLED_MODEL, bundled_model
from pynima.synth.distortions import distort


def test_the_bundled_model_ships_inside_the_package_and_says_what_it_is():
    import onnx

    path = bundled_model()
    assert path.stat().st_size <= 15 * 2**20
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert meta["pynima_name"] == "nima-tid2013-lite0"
    assert meta["pynima_backbone"] == "tf_efficientnet_lite0"
    assert "research and education" in meta["pynima_labels_licence"]
    assert meta["pynima_card"] == "docs/model-card.md" and meta["pynima_command"] == "scripts/bundled_model.sh"
    assert meta["pynima_anchors"].startswith("On 6 scikit-image photos: clean ")  # shown by pynima serve's page


@pytest.mark.slow
def test_the_bundled_models_anchors_are_what_the_photo_ladder_measures_with_it():
    """The anchors in the metadata are bench/photo_ladder.py's, rerun on the bundled file now (not copied text)."""
    import onnx

    root = Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "photo_ladder.py"), str(bundled_model()), "--anchors"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    meta = {p.key: p.value for p in onnx.load(str(bundled_model()), load_external_data=False).metadata_props}
    assert done.returncode == 0 and done.stdout.strip() == meta["pynima_anchors"]


@pytest.mark.slow
def test_the_wheel_carries_the_model_the_docs_and_the_page(tmp_path):
    """What a pip user gets: the wheel built from this checkout holds the bundled model byte for byte, the docs that
    pynima docs prints and the service's page; and git tracks the model (*.onnx is ignored elsewhere)."""
    import zipfile

    repo = Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(repo)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("pynima-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert z.read(f"pynima/{BUNDLED_MODEL}") == bundled_model().read_bytes()
    assert {"pynima/serving/page.html", "pynima/synth/tid2013_levels.json", "pynima/docs/model-card.md"} <= names
    if (repo / ".git").exists():
        tracked = subprocess.run(
            ["git", "-C", str(repo), "ls-files", f"src/pynima/{BUNDLED_MODEL}"], capture_output=True, text=True
        )
        assert tracked.stdout.strip() == f"src/pynima/{BUNDLED_MODEL}"


def test_load_without_a_model_uses_the_bundled_one(photos):
    scorer = pynima.load()
    assert scorer.engine.name == "onnx" and scorer.engine.metadata["pynima_name"] == "nima-tid2013-lite0"
    s = scorer.score(photos[0])
    assert 0 <= s.mean <= 9 and sum(s.distribution) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("kind", [1, 8, 10])  # additive Gaussian noise, Gaussian blur, JPEG
def test_the_bundled_model_scores_heavy_distortion_below_the_clean_photo(photos, kind):
    scorer = pynima.load()
    for photo in photos:
        clean, worst = scorer.score(photo).mean, scorer.score(distort(photo, kind, 5, seed=0)).mean
        assert clean > worst + 0.5, (kind, clean, worst)


def test_predict_with_no_model_scores_with_the_bundled_one(photos, tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(photos[1]).save(image)
    r = subprocess.run(
        [sys.executable, "-m", "pynima.cli", "predict", str(image), "--format", "json"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["mean"] == pytest.approx(pynima.load().score(image).mean, abs=1e-6)


def test_predict_with_a_model_and_no_images_is_a_usage_error(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pynima.cli", "predict", str(bundled_model())], capture_output=True, text=True
    )
    assert r.returncode == 2 and "no images given" in r.stderr and "Traceback" not in r.stderr


def test_a_missing_bundled_model_is_one_clear_error(monkeypatch):
    import pynima.scoring.models

    monkeypatch.setattr(pynima.scoring.models, "BUNDLED_MODEL", "absent.onnx")
    with pytest.raises(PynimaError, match="no bundled model"):
        pynima.load()
