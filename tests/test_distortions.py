from itertools import pairwise

import numpy as np
import pytest

from pynima.synth.distortions import DISTORTIONS, LEVEL_SIGNS, LEVELS, distort, level_strengths, psnr, strength_for_psnr


@pytest.fixture(scope="module")
def outputs(photos):
    """{(photo index, type, level): distorted image} for both test photos."""
    return {
        (i, k, lv): distort(img, k, lv, seed=3) for i, img in enumerate(photos) for k in DISTORTIONS for lv in LEVELS
    }


def test_numbering_matches_tid2013():
    assert sorted(DISTORTIONS) == list(range(1, 25))
    assert DISTORTIONS[10].name == "JPEG compression"
    assert DISTORTIONS[24].name == "Sparse sampling and reconstruction"


@pytest.mark.parametrize("kind", list(DISTORTIONS))
@pytest.mark.slow
def test_changes_image_and_keeps_shape_dtype(kind, photos, outputs):
    for i, img in enumerate(photos):
        for lv in LEVELS:
            out = outputs[i, kind, lv]
            assert out.shape == img.shape and out.dtype == np.uint8
            assert not np.array_equal(out, img), (kind, lv)


def assert_severity_grows(kind, quality):
    """``quality`` (higher = better) of levels 1-5 falls strictly with level; type 15 rises, because TID2013's levels
    for it run from worst to mildest; 16 and 17 alternate direction by level, so each direction falls on its own."""
    q = list(quality)
    if kind in LEVEL_SIGNS:
        assert q[0] > q[2] > q[4] and q[1] > q[3], (kind, q)
    elif kind == 15:
        assert all(a < b for a, b in pairwise(q)), (kind, q)
    else:
        assert all(a > b for a, b in pairwise(q)), (kind, q)


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_severity_is_monotone_in_level(kind, photos, outputs):
    for i, img in enumerate(photos):
        assert_severity_grows(kind, [psnr(img, outputs[i, kind, lv]) for lv in LEVELS])


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_fsimc_also_falls_with_level(kind, photos, outputs):
    """A perceptual metric agrees with PSNR on the ordering (FSIMc averaged over the two photos)."""
    from pynima.synth.fullref import fr_scores

    q = np.mean(
        [fr_scores(img, [outputs[i, kind, lv] for lv in LEVELS], ["fsimc"])["fsimc"] for i, img in enumerate(photos)],
        axis=0,
    )
    assert_severity_grows(kind, q)


def test_level_table_is_complete_and_ordered():
    table = level_strengths()
    assert sorted(table) == list(range(1, 25))
    for kind, row in table.items():
        mags = [abs(v) for v in row]
        assert len(row) == 5
        if kind == 17:  # decreases (levels 1, 3, 5) and increases (2, 4) of contrast each grow
            mags = mags[0::2] + mags[1::2]
            assert mags[0] < mags[1] < mags[2] and mags[3] < mags[4], row
        elif kind == 15:
            assert all(a > b for a, b in pairwise(mags)), (kind, row)
        else:
            assert all(a < b for a, b in pairwise(mags)), (kind, row)
    assert [v > 0 for v in table[17]] == [False, True, False, True, False]


@pytest.mark.parametrize("kind", [1, 8, 10, 16, 17, 22, 23])
@pytest.mark.slow
def test_strength_for_psnr_meets_target(kind, photos):
    sign = LEVEL_SIGNS.get(kind, (1,) * 5)[1]
    s = strength_for_psnr(photos[0], kind, 30.0, sign=sign)
    got = psnr(photos[0], distort(photos[0], kind, strength=sign * s))
    assert abs(got - 30.0) < (1.0 if DISTORTIONS[kind].search.integer else 0.3), (kind, s, got)


def test_strength_for_unreachable_psnr_is_the_range_end(photos):
    assert strength_for_psnr(photos[0], 8, 150.0) == pytest.approx(DISTORTIONS[8].search.lo)
    assert strength_for_psnr(photos[0], 8, 1.0) == pytest.approx(DISTORTIONS[8].search.hi)


def test_explicit_strength_interpolates_between_levels(photos):
    s2, s3 = level_strengths()[8][1:3]
    p = [psnr(photos[0], distort(photos[0], 8, strength=s)) for s in (s2, (s2 + s3) / 2, s3)]
    assert p[0] > p[1] > p[2]


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
    with pytest.raises(ValueError, match="exactly one"):
        distort(photos[0], 1, 1, strength=3.0)
