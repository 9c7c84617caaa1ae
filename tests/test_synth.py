import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest
from PIL import Image

from pynima.datasets.tid2013 import read_tid2013
from pynima.errors import DatasetError
from pynima.images import load_rgb
from pynima.synth.build import MANIFEST, fit_reference, reference_files, synthesize


@pytest.fixture(scope="module")
def refs_dir(tmp_path_factory):
    """One reference photo, larger than 512x384, so the dataset has 120 images."""
    from skimage import data

    d = tmp_path_factory.mktemp("refs")
    Image.fromarray(data.coffee()).save(d / "coffee.png")  # 600x400
    return d


@pytest.fixture(scope="module")
def pseudo(refs_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    return synthesize(out, refs=refs_dir, seed=0, workers=2, progress=False)


@pytest.mark.slow
def test_pseudo_labelled_dataset_round_trips(pseudo):
    assert not pseudo.cached and pseudo.n_images == 120
    recs = read_tid2013(pseudo.out)
    assert len(recs) == 120
    assert [(r.ref, r.kind, r.level) for r in recs[:6]] == [
        (1, 1, 1),
        (1, 1, 2),
        (1, 1, 3),
        (1, 1, 4),
        (1, 1, 5),
        (1, 2, 1),
    ]
    assert recs[0].path.name == "i01_01_1.bmp" and recs[0].reference.name == "I01.bmp"
    img = load_rgb(recs[0].path)
    assert img.shape == (384, 512, 3)
    mos = np.array([r.mos for r in recs])
    assert mos.min() >= 0 and mos.max() <= 9 and mos.std() > 0.3
    assert all(0 < r.mos_std < 1 for r in recs)
    # TID2013's own file format: CRLF line ends
    assert (pseudo.out / "mos_with_names.txt").read_bytes().count(b"\r\n") == 120


def test_the_label_source_is_recorded(pseudo, tmp_path):
    from pynima.synth.build import label_source

    assert label_source(pseudo.out).startswith("pseudo-labels: FSIMc") and "not human" in label_source(pseudo.out)
    assert label_source(tmp_path) is None  # not written by synth


def test_pseudo_mos_falls_with_level(pseudo):
    recs = read_tid2013(pseudo.out)
    by_level = [np.mean([r.mos for r in recs if r.level == lv and r.kind not in (15, 17)]) for lv in range(1, 6)]
    assert all(a > b for a, b in pairwise(by_level)), by_level


def test_second_run_is_cached_and_writes_nothing(pseudo, refs_dir):
    files = sorted(p for p in pseudo.out.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    again = synthesize(pseudo.out, refs=refs_dir, seed=0, progress=False)
    assert again.cached and again.n_images == 120
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_table_labels_are_copied_exactly(refs_dir, tmp_path):
    names = [f"i01_{k:02d}_{lv}.bmp" for k in range(1, 25) for lv in range(1, 6)]
    mos = [round(7 - 0.05 * i, 5) for i in range(120)]
    rows = enumerate(zip(mos, names, strict=True))
    (tmp_path / "mos.txt").write_bytes("".join(f"{m} {n.upper() if i % 2 else n}\r\n" for i, (m, n) in rows).encode())
    (tmp_path / "std.txt").write_bytes("".join(f"{0.1 + i / 1000:.4f}\r\n" for i in range(120)).encode())
    r = synthesize(
        tmp_path / "ds", refs=refs_dir, mos_table=tmp_path / "mos.txt", std_table=tmp_path / "std.txt", progress=False
    )
    assert r.labels == "tables"
    recs = read_tid2013(r.out)
    assert [x.mos for x in recs] == pytest.approx(mos)
    assert [x.mos_std for x in recs] == pytest.approx([0.1 + i / 1000 for i in range(120)])


def test_table_without_rows_for_a_reference(refs_dir, tmp_path):
    (tmp_path / "m.txt").write_text("5.0 i02_01_1.bmp\n")
    (tmp_path / "s.txt").write_text("0.1\n")
    with pytest.raises(DatasetError, match=r"no row for i01_01_1.bmp \(120 images"):
        synthesize(tmp_path / "ds", refs=refs_dir, mos_table=tmp_path / "m.txt", std_table=tmp_path / "s.txt")


def test_fit_reference_crops_without_squashing():
    big = np.random.default_rng(0).integers(0, 256, (768, 512, 3), dtype=np.uint8)  # portrait Kodak shape
    out = fit_reference(big)
    assert out.shape == (384, 512, 3)
    np.testing.assert_array_equal(out, big[192:576])
    small = np.zeros((300, 451, 3), np.uint8)  # chelsea's size: scaled up keeping aspect, then cropped
    assert fit_reference(small).shape == (384, 512, 3)


def test_embedded_references_exist():
    files = reference_files(None)
    assert len(files) >= 5 and all(f.is_file() for f in files)


def test_refuses_foreign_non_empty_folder(tmp_path, refs_dir):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a pynima synth dataset"):
        synthesize(tmp_path, refs=refs_dir)
    assert not (tmp_path / MANIFEST).exists()


def test_cli_help_imports_no_heavy_modules():
    code = (
        "import contextlib, sys, pynima.cli\n"
        "with contextlib.suppress(SystemExit): pynima.cli.main(['synth', '--help'])\n"
        "print(sorted(m for m in ('torch', 'piq', 'skimage', 'scipy', 'PIL') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "--mos-table" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_cli_errors_are_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pynima.cli", "synth", str(tmp_path), "--refs", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "reference folder not found" in r.stderr


@pytest.mark.slow
def test_no_progress_bar_when_stderr_is_not_a_terminal(refs_dir, tmp_path):
    """A log file or a CI job gets the summary line, not hundreds of carriage-return updates of tqdm's bar."""
    r = subprocess.run(
        [sys.executable, "-m", "pynima", "synth", str(tmp_path / "ds"), "--refs", str(refs_dir), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\r" not in r.stderr and "ref x type" not in r.stderr, r.stderr[-500:]
    assert "120 distorted images of 1 references" in r.stdout
