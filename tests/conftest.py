import os
from pathlib import Path

import numpy as np
import pytest

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
    """Two small natural test images (crops of scikit-image's bundled photos)."""
    from skimage import data

    return [np.ascontiguousarray(data.astronaut()[40:200, 150:374]),
            np.ascontiguousarray(data.coffee()[100:260, 200:424])]
