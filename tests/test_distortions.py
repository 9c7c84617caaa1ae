import numpy as np
import pytest

from pynima.distortions import DISTORTIONS, LEVELS, PSNR_TARGETS, distort, psnr

# types whose strength is solved for PSNR_TARGETS and can reach every target on ordinary photos
CALIBRATED = [1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 16, 17, 19, 20, 23, 24]


@pytest.fixture(scope="module")
def outputs(photos):
    """{(photo index, type, level): distorted image} for both test photos."""
    return {(i, k, lv): distort(img, k, lv, seed=3) for i, img in enumerate(photos) for k in DISTORTIONS
            for lv in LEVELS}


def test_numbering_matches_tid2013():
    assert sorted(DISTORTIONS) == list(range(1, 25))
    assert DISTORTIONS[10].name == "JPEG compression"
    assert DISTORTIONS[24].name == "Sparse sampling and reconstruction"


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_changes_image_and_keeps_shape_dtype(kind, photos, outputs):
    for i, img in enumerate(photos):
        for lv in LEVELS:
            out = outputs[i, kind, lv]
            assert out.shape == img.shape and out.dtype == np.uint8
            assert not np.array_equal(out, img), (kind, lv)


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_severity_is_monotone_in_level(kind, photos, outputs):
    """PSNR falls strictly with level; type 15 rises, because TID2013's levels for it run from worst to mildest."""
    for i, img in enumerate(photos):
        p = [psnr(img, outputs[i, kind, lv]) for lv in LEVELS]
        if kind == 15:
            assert all(a < b for a, b in zip(p, p[1:])), (kind, p)
        else:
            assert all(a > b for a, b in zip(p, p[1:])), (kind, p)


def test_fsimc_also_falls_with_level(photos, outputs):
    """A perceptual metric agrees with PSNR on the ordering (averaged over the two photos)."""
    from pynima.fullref import fr_scores

    for kind in DISTORTIONS:
        q = np.mean([fr_scores(img, [outputs[i, kind, lv] for lv in LEVELS], ["fsimc"])["fsimc"]
                     for i, img in enumerate(photos)], axis=0)
        diffs = np.diff(q) if kind != 15 else -np.diff(q)
        assert (diffs < 0).all() or (kind == 17 and q[0] > q[-1]), (kind, q)


@pytest.mark.parametrize("kind", CALIBRATED)
def test_levels_hit_psnr_targets(kind, photos, outputs):
    for i, img in enumerate(photos):
        for lv in LEVELS:
            assert abs(psnr(img, outputs[i, kind, lv]) - PSNR_TARGETS[lv - 1]) < 0.6, (kind, lv)


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_same_seed_same_bytes(kind, photos, outputs):
    again = distort(photos[0], kind, 3, seed=3)
    assert again.tobytes() == outputs[0, kind, 3].tobytes()


def test_different_seed_different_noise(photos):
    a, b = distort(photos[0], 1, 3, seed=0), distort(photos[0], 1, 3, seed=1)
    assert not np.array_equal(a, b)


def test_bad_arguments(photos):
    with pytest.raises(ValueError, match="type"):
        distort(photos[0], 25, 1)
    with pytest.raises(ValueError, match="level"):
        distort(photos[0], 1, 6)
    with pytest.raises(ValueError, match="uint8"):
        distort(photos[0].astype(float), 1, 1)
