"""Property-based tests (hypothesis) of the TID2013 label parser and of max-entropy targets over their whole valid
input range."""

import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pynima.datasets.tid2013 import MOS_RANGE, read_labels
from pynima.errors import DatasetError
from pynima.model.labels import NEAR_MIN_STD, max_entropy, std_range
from pynima.scale import BINS

KEYS = st.tuples(st.integers(1, 99), st.integers(1, 24), st.integers(1, 5))
ROW = st.tuples(
    KEYS,
    st.floats(*MOS_RANGE, allow_nan=False),
    st.floats(0, 5, allow_nan=False),
    st.sampled_from(["i", "I"]),
    st.sampled_from([".bmp", ".BMP"]),
)
files = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(folder: Path, mos_text: str, std_text: str) -> tuple[Path, Path]:
    (folder / "m.txt").write_bytes(mos_text.encode())
    (folder / "s.txt").write_bytes(std_text.encode())
    return folder / "m.txt", folder / "s.txt"


@files
@given(rows=st.lists(ROW, min_size=1, max_size=30, unique_by=lambda r: r[0]), eol=st.sampled_from(["\n", "\r\n"]))
def test_valid_label_files_parse_back_exactly(tmp_path, rows, eol):
    mos_text = "".join(f"{m!r} {i}{r:02d}_{k:02d}_{lv}{ext}{eol}" for (r, k, lv), m, _, i, ext in rows)
    std_text = "".join(f"{s!r}{eol}" for _, _, s, _, _ in rows)
    labels = read_labels(*_write(tmp_path, mos_text, std_text))
    assert [(lab.ref, lab.kind, lab.level) for lab in labels] == [r[0] for r in rows]
    assert [lab.mos for lab in labels] == [r[1] for r in rows]
    assert [lab.mos_std for lab in labels] == [r[2] for r in rows]
    assert [lab.line for lab in labels] == list(range(1, len(rows) + 1))


@files
@given(mos_text=st.text(max_size=200), std_text=st.text(max_size=200))
def test_any_text_parses_or_is_one_dataset_error(tmp_path, mos_text, std_text):
    try:
        labels = read_labels(*_write(tmp_path, mos_text, std_text))
    except DatasetError as e:
        assert "\n" not in str(e) and ("m.txt" in str(e) or "s.txt" in str(e))
    else:
        assert labels and all(MOS_RANGE[0] <= lab.mos <= MOS_RANGE[1] and lab.mos_std >= 0 for lab in labels)


@files
@given(
    rows=st.lists(ROW, min_size=1, max_size=10, unique_by=lambda r: r[0]),
    bad=st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not MOS_RANGE[0] <= v <= MOS_RANGE[1]),
)
def test_one_bad_mos_is_reported_with_its_line(tmp_path, rows, bad):
    line = len(rows) // 2
    mos = [r[1] for r in rows]
    mos[line] = bad
    mos_text = "".join(f"{m!r} i{r:02d}_{k:02d}_{lv}.bmp\n" for ((r, k, lv), *_), m in zip(rows, mos, strict=True))
    try:
        read_labels(*_write(tmp_path, mos_text, "0.1\n" * len(rows)))
    except DatasetError as e:
        assert f"line {line + 1}:" in str(e)
    else:
        raise AssertionError(f"MOS {bad} accepted")


@settings(max_examples=300, deadline=None)
@given(mean=st.floats(0, BINS - 1), std=st.one_of(st.none(), st.floats(0, 6)))
def test_max_entropy_is_a_distribution_with_the_asked_moments(mean, std):
    p = max_entropy(mean, std)
    k = np.arange(BINS)
    assert p.shape == (BINS,) and np.all(p >= 0) and math.isclose(p.sum(), 1.0, abs_tol=1e-9)
    m = float(p @ k)
    s = math.sqrt(max(float(p @ k**2) - m * m, 0.0))
    if 0 < mean < BINS - 1:
        assert abs(m - mean) < 1e-5
        if std is not None:
            lo, hi = std_range(mean)
            if std <= lo + NEAR_MIN_STD:  # the two-bin limit
                assert abs(s - lo) < 1e-6
            else:  # the asked std, or the largest the grid allows
                assert abs(s - min(std, hi)) < 1e-5
    else:
        assert p[0 if mean <= 0 else -1] == 1.0
