"""Hostile and unusual image files (issue 23): embedded ICC profiles, PNG gAMA, multi-page TIFF, arithmetic-coded
JPEG, symlinked and hidden folders, FIFOs, and file names that are not UTF-8 or hold newlines and terminal escapes.
docs/reliability.md lists what happens to each."""

import base64
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from pynima.cli import main
from pynima.errors import DatasetError
from pynima.images import display_name, load_rgb, load_rgb_bytes, to_rgb
from pynima.scoring.paths import iter_image_paths
from pynima.scoring.scorer import Scorer

REPO = Path(__file__).resolve().parents[1]

# Display P3: its primaries' and D65's chromaticities; D50, the profile connection space's white
P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
SRGB = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D65, D50 = (0.3127, 0.3290), np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def rgb_to_xyz(primaries, white=D65) -> np.ndarray:
    """The 3x3 matrix from linear RGB to XYZ of a colour space with these primaries and white point."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    w = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return xyz * np.linalg.solve(xyz, w)


def icc_profile(primaries, gamma: float) -> bytes:
    """A minimal ICC v2 display profile written by hand: matrix/TRC, these primaries (white D65, adapted to D50 with
    Bradford, as ICC asks) and one gamma curve for the three channels."""
    w65 = rgb_to_xyz(primaries).sum(1)  # D65 in XYZ
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50) / (BRADFORD @ w65)) @ BRADFORD
    colorants = adapt @ rgb_to_xyz(primaries)

    def xyz(v) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(struct.pack(">i", round(c * 65536)) for c in v)

    text = b"pynima test profile\0"
    tags = [
        (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8) + bytes(3 + 67)),
        (b"wtpt", xyz(D50)),
        (b"rXYZ", xyz(colorants[:, 0])),
        (b"gXYZ", xyz(colorants[:, 1])),
        (b"bXYZ", xyz(colorants[:, 2])),
    ]
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + bytes(4)
        + b"".join(struct.pack(">i", round(c * 65536)) for c in D50)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def srgb_decode(v: np.ndarray) -> np.ndarray:
    v = v / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def as_p3(srgb: np.ndarray) -> np.ndarray:
    """An sRGB picture's colours as Display P3 values with a gamma-2.2 curve (the profile above), 8-bit."""
    linear = srgb_decode(srgb.astype(np.float64)) @ (np.linalg.inv(rgb_to_xyz(P3)) @ rgb_to_xyz(SRGB)).T
    return np.rint(np.clip(linear, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def picture(photos) -> np.ndarray:
    return photos[1][:240, :256]  # 256x240 (no padding warning), saturated colours (coffee)


class FakeEngine:
    """A network stand-in: any input gives a fixed distribution, so tests of files need no model."""

    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1, np.float32)


# ---------------------------------------------------------------------------------------------- colour


def test_embedded_wide_gamut_profile_is_converted_to_srgb(picture, tmp_path):
    p3, icc = as_p3(picture), icc_profile(P3, 2.2)
    assert np.abs(p3.astype(int) - picture).mean() > 3  # read as sRGB, the stored values would be off
    Image.fromarray(p3).save(tmp_path / "p3.png", icc_profile=icc)
    Image.fromarray(p3).save(tmp_path / "p3.jpg", icc_profile=icc, quality=95)
    Image.fromarray(p3).save(tmp_path / "p3.webp", icc_profile=icc, lossless=True)
    rgba = np.dstack([p3, np.full(p3.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "p3a.png", icc_profile=icc)
    for rgb in (
        load_rgb(tmp_path / "p3.png"),
        load_rgb(tmp_path / "p3.webp"),
        load_rgb(tmp_path / "p3a.png"),
        load_rgb_bytes((tmp_path / "p3.png").read_bytes(), "s3://b/p3.png"),
        to_rgb(Image.open(tmp_path / "p3.png")),
    ):
        diff = np.abs(rgb.astype(int) - picture)
        assert diff.max() <= 3 and diff.mean() < 0.6, (diff.max(), diff.mean())
    rgba[:10, :10, 3] = 0  # transparent: composited on white after the conversion, as without a profile
    Image.fromarray(rgba).save(tmp_path / "p3a.png", icc_profile=icc)
    assert (load_rgb(tmp_path / "p3a.png")[:10, :10] == 255).all()
    stored = np.asarray(Image.open(tmp_path / "p3.jpg").convert("RGB"))
    jpeg, off = (np.abs(a.astype(int) - picture).mean() for a in (load_rgb(tmp_path / "p3.jpg"), stored))
    assert jpeg < 3 and jpeg < off / 2, (jpeg, off)  # within JPEG's own loss


def test_an_srgb_profile_changes_nothing_and_gamma_without_a_profile_is_ignored(picture, tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(picture).save(tmp_path / "srgb.png", icc_profile=srgb)
    assert np.array_equal(load_rgb(tmp_path / "srgb.png"), picture)
    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", struct.pack(">I", 100000))  # gamma 1.0: linear values, if it were believed
    info.add(b"cHRM", struct.pack(">8I", *(round(v * 100000) for xy in (D65, *P3) for v in xy)))
    Image.fromarray(picture).save(tmp_path / "gamma.png", pnginfo=info)
    with Image.open(tmp_path / "gamma.png") as im:
        assert im.info["gamma"] == 1.0  # Pillow sees the chunk
    assert np.array_equal(load_rgb(tmp_path / "gamma.png"), picture)


def test_a_broken_profile_is_a_warning_and_the_pixels_are_used_as_stored(picture, tmp_path, caplog):
    Image.fromarray(picture).save(tmp_path / "broken.png", icc_profile=b"not a profile" * 10)
    notes: list[str] = []
    assert np.array_equal(load_rgb(tmp_path / "broken.png", notes), picture)
    assert len(notes) == 1 and "embedded ICC profile cannot be read" in notes[0] and "unconverted" in notes[0]
    with caplog.at_level(logging.WARNING, logger="pynima.images"):
        load_rgb(tmp_path / "broken.png")  # without a list: logged, one line naming the file
    assert "broken.png: its embedded ICC profile cannot be read" in caplog.text
    (row,) = Scorer(FakeEngine()).score_paths([tmp_path / "broken.png"])
    assert row[1].warning.startswith(f"{tmp_path / 'broken.png'}: its embedded ICC profile cannot be read")
    grey = Image.fromarray(picture[..., 0])
    grey.info["icc_profile"] = icc_profile(P3, 2.2)  # an RGB profile on a grey image: not applied, said so
    notes = []
    assert np.array_equal(to_rgb(grey, notes=notes)[..., 0], picture[..., 0]) and "not for a L image" in notes[0]


# ---------------------------------------------------------------------------------------------- formats


def test_multi_page_tiff_scores_its_first_page_with_a_warning(picture, tmp_path, capsys):
    pages = [Image.fromarray(picture), Image.fromarray(picture[::-1]), Image.fromarray(picture[:, ::-1])]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    notes: list[str] = []
    assert np.array_equal(load_rgb(tmp_path / "pages.tif", notes), picture)
    assert notes == ["multi-page TIFF (3 pages); only the first page is scored"]
    pages[0].save(tmp_path / "one.tif")
    (row, single) = Scorer(FakeEngine()).score_paths([tmp_path / "pages.tif", tmp_path / "one.tif"])
    assert "pages.tif: multi-page TIFF (3 pages)" in row[1].warning and single[1].warning is None
    assert main(["predict", str(tmp_path / "pages.tif"), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "warning: " in err and "pages.tif: multi-page TIFF (3 pages); only the first page" in err
    assert out.splitlines()[1].endswith(",multi-page TIFF (3 pages); only the first page is scored,")


# 48x40, the gradient below, written by libjpeg-turbo's cjpeg -arithmetic -quality 90 (SOF9)
ARITHMETIC_JPEG = base64.b64decode("""
/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMUFRUVDA8XGBYUGB
IUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBT/yQARCAAoADADASIA
AhEBAxEB/8wACgAQEAUBEBEF/9oADAMBAAIRAxEAPwD/AO2BK3p04D5sYWcbjZ1M5DEwV0GR+bfMW4uPd39EJoy5fSrF7TgtAUpnJ2cR7tos4LtFI5
JjsGeVY03Lgh321qwDgOX7PmeLX6WYMA26SHBqNlhLR41vsA4A2kuudweE4xGNl1ebqTwr9E5hUGUnOhMlfTTLHjtn/ZpkE5L5iZP/AM+bsAVlewE3
dQX27BmQlmgCIO7tv2tS40tJdssP7j8bIVD/2Q==
""")


def test_arithmetic_coded_jpeg_is_scored_or_named(tmp_path, monkeypatch):
    y, x = np.mgrid[:40, :48]
    gradient = np.stack([x * 5, y * 6, (x + y) * 2], -1)
    assert b"\xff\xc9" in ARITHMETIC_JPEG  # SOF9: extended sequential DCT, arithmetic coding
    (tmp_path / "arith.jpg").write_bytes(ARITHMETIC_JPEG)
    rgb = load_rgb(tmp_path / "arith.jpg")  # this Pillow's libjpeg-turbo decodes it
    assert rgb.shape == (40, 48, 3) and np.abs(rgb.astype(int) - gradient).mean() < 2

    from PIL import Image as pil

    def no_arithmetic(*args, **kwargs):  # a libjpeg built without arithmetic decoding fails in the scan
        raise OSError("broken data stream when reading image file")

    monkeypatch.setattr(pil.core, "jpeg_decoder", no_arithmetic)
    with pytest.raises(
        DatasetError,
        match=r"^\S*arith\.jpg: arithmetic-coded JPEG, which this Pillow cannot "
        r"decode: re-encode it",
    ):
        load_rgb(tmp_path / "arith.jpg")
    Image.fromarray(gradient.astype(np.uint8)).save(tmp_path / "huffman.jpg")
    with pytest.raises(DatasetError, match=r"huffman\.jpg: cannot decode image"):  # the hint only where it applies
        load_rgb(tmp_path / "huffman.jpg")


# ---------------------------------------------------------------------------------------------- folders


def test_folder_walk_follows_links_once_and_leaves_out_hidden_names(picture, tmp_path, caplog):
    top, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    (top / "trip").mkdir(parents=True)
    (top / ".thumbnails").mkdir()
    elsewhere.mkdir()
    for path in (top / "a.png", top / "trip" / "b.png", top / ".thumbnails" / "a.png", elsewhere / "c.png"):
        Image.fromarray(picture).save(path)
    (top / "._a.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")  # an AppleDouble file
    (top / "linked").symlink_to(elsewhere)  # a symlinked subfolder: scored
    (top / "trip" / "loop").symlink_to(top)  # a loop back to the top
    (top / "trip-link").symlink_to(top / "trip")  # a second link to a folder already walked (walked after it)
    with caplog.at_level(logging.INFO, logger="pynima.scoring"):
        found = list(iter_image_paths([top]))
    assert [p.relative_to(top).as_posix() for p in found] == ["a.png", "linked/c.png", "trip/b.png"]
    lines = caplog.text.splitlines()
    assert sum("trip/loop: not followed: a symlink loop back to" in line for line in lines) == 1
    assert sum("trip-link: not followed: a second link to the folder" in line for line in lines) == 1
    assert any("left out 1 hidden image file(s) and 1 hidden folder(s)" in line for line in lines)
    rows = list(Scorer(FakeEngine()).score_paths([top, top / "._a.png"]))  # a hidden file named: still tried
    assert [e is None for _, _, e in rows] == [True, True, True, False] and "cannot decode" in rows[-1][2]
    pytest.importorskip("pyarrow")
    from pynima.scoring.cluster import list_sources

    for link in (top / "linked", top / "trip" / "loop", top / "trip-link"):  # pyarrow's listing follows links
        link.unlink()  # with no guard: a loop there multiplies paths until the OS refuses one
    remote, _ = list_sources([f"file://{top}"], None)  # the object-storage listing of --ray leaves them out too
    listed = [p.removeprefix(f"file://{top}/") for p in remote["path"].to_pylist()]
    assert listed == ["a.png", "trip/b.png"]


def run_predict(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """pynima predict (the bundled model) in a subprocess with a UTF-8 stdout, bounded: a hang fails the test."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, "-m", "pynima.cli", "predict", *args], capture_output=True, timeout=timeout, env=env
    )


def test_a_fifo_is_refused_unopened(picture, tmp_path):
    folder = tmp_path / "with-fifo"
    folder.mkdir()
    Image.fromarray(picture).save(folder / "good.png")
    os.mkfifo(folder / "pipe.png")  # opening it for reading would wait for a writer forever
    os.mkfifo(tmp_path / "given.jpg")
    r = run_predict(str(folder), str(tmp_path / "given.jpg"), "--format", "json")
    rows = {Path(row["path"]).name: row for row in json.loads(r.stdout)}
    assert r.returncode == 1 and rows["good.png"]["error"] is None
    skipped = [line for line in r.stderr.decode().splitlines() if line.startswith("skipped:")]
    for name, path in (("pipe.png", folder / "pipe.png"), ("given.jpg", tmp_path / "given.jpg")):
        assert rows[name]["error"] == "not a regular file (a FIFO); not opened"
        assert f"skipped: {path}: not a regular file (a FIFO); not opened" in skipped
    script = textwrap.dedent(f"""
        from pynima.images import check_image
        try:
            check_image({str(folder / "pipe.png")!r})
        except Exception as e:
            print(type(e).__name__, e)
    """)
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert r.stdout.strip().endswith("pipe.png: not a regular file (a FIFO); not opened"), r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------- names


@pytest.fixture
def odd_names(picture, tmp_path) -> Path:
    """A folder of good images whose names are not UTF-8, hold a newline or a terminal escape, and a broken one."""
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.fromarray(picture).save(folder / "plain.png")
    data = (folder / "plain.png").read_bytes()
    for name in (b"bad\xff.png", b"new\nline.png", b"esc\x1b[31mred.png"):
        Path(os.fsdecode(os.path.join(os.fsencode(folder), name))).write_bytes(data)
    Path(os.fsdecode(os.path.join(os.fsencode(folder), b"z\xfe\nbroken.jpg"))).write_bytes(b"not a jpeg")
    return folder


SHOWN = ["bad\\xff.png", "esc\\x1b[31mred.png", "new\\nline.png", "plain.png", "z\\xfe\\nbroken.jpg"]


def test_display_name_escapes_what_would_break_a_line():
    assert display_name("plain/ä 日本.png") == "plain/ä 日本.png"
    assert display_name(os.fsdecode(b"a\xff\n\x1b[2J\t") + "\u202e.png") == "a\\xff\\n\\x1b[2J\\t\\u202e.png"
    assert display_name(b"raw\xff") == "raw\\xff"


def test_odd_file_names_are_scored_and_shown_escaped(odd_names):
    r = run_predict(str(odd_names))
    out, err = r.stdout.decode(), r.stderr.decode()  # strict UTF-8: a raw surrogate would have failed to print
    assert r.returncode == 1 and "Traceback" not in err
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["mean", "std", "path"]
    assert [line.rsplit("/", 1)[-1].split("  (")[0] for line in rows] == SHOWN
    assert "\x1b" not in out + err and len(rows) == 5
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert skipped == [
        f"skipped: {odd_names}/z\\xfe\\nbroken.jpg: cannot decode image (not an image format "
        f"Pillow reads, or a corrupt header)"
    ]

    r = run_predict(str(odd_names), "--format", "csv")
    lines = r.stdout.decode().splitlines()
    assert [line.split(",")[0].rsplit("/", 1)[-1] for line in lines[1:]] == SHOWN and len(lines) == 6

    r = run_predict(str(odd_names), "--format", "json")
    rows = json.loads(r.stdout)  # the JSON keeps the name losslessly: os.fsencode gives the bytes back
    names = sorted(os.path.basename(os.fsencode(row["path"])) for row in rows)
    assert names == sorted(os.listdir(os.fsencode(odd_names))) and r.stdout.isascii()
    assert [row["error"] is None for row in rows] == [True] * 4 + [False]


def test_odd_file_names_are_rows_on_ray_too(odd_names, tmp_path):
    """The driver's listing and an actor's reading (pynima.scoring.cluster), without starting Ray: the listing used to
    fail the whole job on a name that is not UTF-8."""
    pa = pytest.importorskip("pyarrow")
    from concurrent.futures import ThreadPoolExecutor

    from pynima.scoring.cluster import ScoreBatch, list_sources, schema

    os.mkfifo(odd_names / "pipe.png")
    table, _ = list_sources([odd_names], None)
    actor = object.__new__(ScoreBatch)  # its constructor reads the model from Ray's object store
    actor.scorer, actor.filesystems, actor.pool = Scorer(FakeEngine()), [], ThreadPoolExecutor(1)
    out = actor(table)
    assert out.schema == schema() and out.num_rows == 6
    rows = {Path(row["path"]).name: row for row in out.to_pylist()}
    assert rows["bad\\xff.png"]["mean"] is not None and rows["new\nline.png"]["mean"] is not None
    assert rows["pipe.png"]["error"] == "not a regular file (a FIFO); not opened"
    assert rows["z\\xfe\\nbroken.jpg"]["error"].startswith("cannot decode image")  # not UTF-8: all escaped
    assert isinstance(pa.array([r["path"] for r in rows.values()]), pa.StringArray)
