import shutil

import numpy as np
import pytest
from PIL import Image

from pynima.datasets.tid2013 import parse_name, read_labels, read_tid2013
from pynima.errors import DatasetError
from pynima.images import load_rgb


def write_labels(root, rows, stds, crlf=True):
    nl = "\r\n" if crlf else "\n"
    (root / "mos_with_names.txt").write_bytes(nl.join(rows).encode() + nl.encode())
    (root / "mos_std.txt").write_bytes(nl.join(stds).encode() + nl.encode())


def make_root(tmp_path, names, on_disk=None):
    """A TID2013-layout root with the given label names and tiny stand-in images (names on disk may differ in case)."""
    root = tmp_path / "tid"
    (root / "distorted_images").mkdir(parents=True)
    (root / "reference_images").mkdir()
    write_labels(root, [f"{5 - i * 0.01:.5f} {n}" for i, n in enumerate(names)], ["0.12"] * len(names))
    for n in on_disk if on_disk is not None else names:
        Image.new("RGB", (8, 6), (10, 20, 30)).save(root / "distorted_images" / n)
    Image.new("RGB", (8, 6)).save(root / "reference_images" / "I01.BMP")
    return root


def test_parse_name():
    assert parse_name("I01_17_3.bmp") == (1, 17, 3)
    assert parse_name("i25_24_5.BMP") == (25, 24, 5)
    assert parse_name("i01_25_1.bmp") is None
    assert parse_name("i01_01_6.bmp") is None
    assert parse_name("foo.bmp") is None


def test_case_insensitive_names_and_crlf(tmp_path):
    names = ["I01_01_1.bmp", "i01_01_2.bmp", "i01_02_1.bmp"]
    root = make_root(tmp_path, names, on_disk=["i01_01_1.bmp", "I01_01_2.BMP", "i01_02_1.bmp"])
    recs = read_tid2013(root)
    assert [(r.ref, r.kind, r.level) for r in recs] == [(1, 1, 1), (1, 1, 2), (1, 2, 1)]
    assert recs[1].path.name == "I01_01_2.BMP"
    assert recs[0].mos == pytest.approx(5.0) and recs[0].mos_std == pytest.approx(0.12)
    assert all(r.reference is not None and r.reference.name == "I01.BMP" for r in recs)


def test_row_count_mismatch_names_both_files(tmp_path):
    root = make_root(tmp_path, ["i01_01_1.bmp", "i01_01_2.bmp"])
    write_labels(root, ["5.0 i01_01_1.bmp", "4.0 i01_01_2.bmp"], ["0.1"])
    with pytest.raises(DatasetError, match=r"mos_std.txt: 1 rows but mos_with_names.txt has 2"):
        read_tid2013(root)


def test_unparsable_and_nan_lines_are_counted(tmp_path):
    root = make_root(tmp_path, ["i01_01_1.bmp", "i01_01_2.bmp", "i01_01_3.bmp"])
    write_labels(root, ["5.0 i01_01_1.bmp", "nan i01_01_2.bmp", "oops"], ["0.1", "0.1", "nan"])
    with pytest.raises(DatasetError) as e:
        read_tid2013(root)
    msg = str(e.value)
    assert "mos_with_names.txt line 2" in msg and "3 problems in all" in msg
    assert "\n" not in msg


def test_missing_image(tmp_path):
    root = make_root(tmp_path, ["i01_01_1.bmp", "i01_01_2.bmp", "i01_01_3.bmp"], on_disk=["i01_01_1.bmp"])
    with pytest.raises(
        DatasetError,
        match=r"i01_01_2.bmp \(mos_with_names.txt line 2\): no such image "
        r"\(2 problems in all",
    ):
        read_tid2013(root)


def test_duplicate_rows(tmp_path):
    root = make_root(tmp_path, ["i01_01_1.bmp", "I01_01_1.bmp"], on_disk=["i01_01_1.bmp"])
    with pytest.raises(DatasetError, match="already listed on line 1"):
        read_tid2013(root)


def test_missing_label_file(tmp_path):
    root = make_root(tmp_path, ["i01_01_1.bmp"])
    (root / "mos_std.txt").unlink()
    with pytest.raises(DatasetError, match="mos_std.txt: file not found"):
        read_tid2013(root)


def test_real_tid2013_labels(shared_labels):
    labels = read_labels(shared_labels / "mos_with_names.txt", shared_labels / "mos_std.txt")
    assert len(labels) == 2280
    assert {lab.ref for lab in labels} == set(range(1, 20))
    assert {lab.kind for lab in labels} == set(range(1, 25))
    assert {lab.level for lab in labels} == {1, 2, 3, 4, 5}
    assert labels[0].name == "I01_01_1.bmp" and labels[0].mos == pytest.approx(5.51429)
    assert labels[0].mos_std == pytest.approx(0.13013)
    mos = np.array([lab.mos for lab in labels])
    assert mos.min() > 0 and mos.max() < 9
    assert np.median([lab.mos_std for lab in labels]) == pytest.approx(0.13, abs=0.01)


def test_real_labels_with_stand_in_images(shared_labels, tmp_path):
    """The real label files against a root of tiny stand-in images whose on-disk names are all lower case."""
    root = tmp_path / "tid"
    (root / "distorted_images").mkdir(parents=True)
    for f in ("mos_with_names.txt", "mos_std.txt"):
        shutil.copy(shared_labels / f, root / f)
    names = [line.split()[1] for line in (root / "mos_with_names.txt").read_text().splitlines()]
    img = Image.new("RGB", (4, 3))
    for n in names:
        img.save(root / "distorted_images" / n.lower())
    recs = read_tid2013(root)
    assert len(recs) == 2280
    assert recs[-1].ref == 19 and recs[-1].kind == 24 and recs[-1].level == 5
    assert all(r.path.is_file() for r in recs)
    assert recs[0].reference is None  # no reference_images/ in this root


def test_load_rgb_errors(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="broken.jpg: cannot decode image"):
        load_rgb(bad)
    with pytest.raises(DatasetError, match="no such file"):
        load_rgb(tmp_path / "absent.png")
    gray = tmp_path / "g.png"
    Image.new("L", (50, 40)).save(gray)
    assert load_rgb(gray).shape == (40, 50, 3)
