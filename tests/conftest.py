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
    """Two natural test images at TID2013's size (crops of scikit-image's bundled photos)."""
    from skimage import data

    from pynima.synth import fit_reference

    return [fit_reference(data.astronaut()), fit_reference(data.coffee())]
