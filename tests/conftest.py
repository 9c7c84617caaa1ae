import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pynima.synth.distortions import distort

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PYNIMA_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_labels() -> Path:
    d = SHARED / "tid2013-labels"
    if not (d / "mos_with_names.txt").is_file():
        pytest.skip(f"shared TID2013 labels not present at {d}")
    return d


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """Two natural test images at TID2013's size (crops of scikit-image's bundled photos)."""
    from skimage import data

    from pynima.synth.build import fit_reference

    return [fit_reference(data.astronaut()), fit_reference(data.coffee())]


def write_tiny(root: Path, photos: list[np.ndarray], references: bool = False) -> Path:
    """6 references x (noise, blur) x 5 levels, 256x256, MOS falling with level; with ``references``, the clean
    images in reference_images/ too."""
    (root / "distorted_images").mkdir(parents=True)
    if references:
        (root / "reference_images").mkdir()
    rows, stds = [], []
    rng = np.random.default_rng(0)
    for ref in range(1, 7):
        base = photos[ref % 2][(ref * 17) % 100 :][:256, ref * 30 : ref * 30 + 256].copy()
        if references:
            Image.fromarray(base).save(root / "reference_images" / f"I{ref:02d}.BMP")
        for kind in (1, 8):
            for level in range(1, 6):
                name = f"i{ref:02d}_{kind:02d}_{level}.bmp"
                Image.fromarray(distort(base, kind, level, seed=ref)).save(root / "distorted_images" / name)
                rows.append(f"{7.0 - 1.2 * level + rng.normal(0, 0.1):.5f} {name}")
                stds.append("0.12")
    (root / "mos_with_names.txt").write_text("\r\n".join(rows) + "\r\n")
    (root / "mos_std.txt").write_text("\r\n".join(stds) + "\r\n")
    return root


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, photos):
    """6 references x (noise, blur) x 5 levels, 256x256, MOS falling with level (no reference images)."""
    return write_tiny(tmp_path_factory.mktemp("tiny"), photos)


@pytest.fixture(scope="session")
def tiny_refs(tmp_path_factory, photos):
    """``tiny`` with its 6 clean reference images in reference_images/."""
    return write_tiny(tmp_path_factory.mktemp("tiny-refs"), photos, references=True)


@pytest.fixture(scope="session")
def run(tiny, tmp_path_factory):
    """A model trained 3 epochs on ``tiny`` (a complete run directory)."""
    from pynima.config import TrainConfig
    from pynima.training.train import train

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        data=str(tiny), out=str(out), epochs=3, batch_size=8, num_workers=0, lr_head=3e-3, lr_base=3e-4, seed=0
    )
    return train(cfg, progress=False)


TRAINING_FIXTURES = {"run", "bench", "search"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Tests that use a fixture that trains (``run``: a model trained for half a minute, once per session;
    test_protocols' ``bench`` and ``search``) belong to the slow lane, so that ``pytest -m "not slow"`` trains none."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
