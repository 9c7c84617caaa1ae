"""The decoding policy (pynima.images: load_rgb, to_rgb, check_image) and how pynima predict treats bad input."""

import json
import logging
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from pynima.cli import main
from pynima.errors import DatasetError, PynimaError
from pynima.images import MIN_SIDE, check_image, load_rgb, to_rgb
from pynima.scoring.engines import MAX_CROPS_PER_PASS
from pynima.scoring.models import load
from pynima.scoring.preprocess import crops, normalize
from pynima.scoring.scorer import Scorer


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, so its header can claim any size (the decompression-bomb case)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def bomb(path):
    """A 100-byte PNG whose header says 30000x30000 (900 megapixels, over Pillow's limit)."""
    path.write_bytes(png_bytes(30000, 30000, 1, 0, b"\0" * 16))
    return path


@pytest.fixture(scope="module")
def scorer(run) -> Scorer:
    return load(run / "best.ckpt", engine="torch")


@pytest.fixture(scope="module")
def upright(photos) -> np.ndarray:
    return photos[0][:256, :320]  # 320x256, a non-square natural image


# ---------------------------------------------------------------------------------------------- files


def test_exif_orientation_is_applied(scorer, upright, tmp_path):
    stored = np.rot90(upright, k=-1)  # the sensor's view; Orientation 8 says: rotate 90 degrees anticlockwise to show
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(stored).save(tmp_path / "rotated.png", exif=exif)
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=98)
    assert np.array_equal(load_rgb(tmp_path / "rotated.png"), upright)
    assert load_rgb(tmp_path / "rotated.jpg").shape == upright.shape
    assert abs(scorer.score(tmp_path / "rotated.png").mean - scorer.score(upright).mean) < 0.01
    with Image.open(tmp_path / "rotated.png") as im:  # a PIL image passed in memory gets the same treatment
        assert np.array_equal(to_rgb(im), upright)
    grey16 = upright[..., 1].astype(np.uint16) * 257  # uncompressed 16-bit TIFF: Pillow's memory-mapped path garbles it
    Image.fromarray(np.rot90(grey16, k=-1)).save(tmp_path / "rotated16.tif", exif=exif)
    assert np.array_equal(load_rgb(tmp_path / "rotated16.tif")[..., 0], upright[..., 1])


def test_16_bit_grey_files_scale_to_8_bits(scorer, upright, tmp_path):
    grey8 = np.asarray(Image.fromarray(upright).convert("L"))
    noise = np.random.default_rng(0).integers(-128, 129, grey8.shape)  # within half an 8-bit step: same rounding
    grey16 = np.clip(grey8.astype(np.int64) * 257 + noise, 0, 65535).astype(np.uint16)
    Image.fromarray(grey8).save(tmp_path / "grey8.png")
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    Image.fromarray(grey16).save(tmp_path / "grey16.tif")
    with Image.open(tmp_path / "grey16.png") as a, Image.open(tmp_path / "grey16.tif") as b:
        assert a.mode.startswith("I") and b.mode == "I;16"  # what Pillow hands over for 16-bit grey
    reference = scorer.score(tmp_path / "grey8.png").mean
    for name in ("grey16.png", "grey16.tif"):
        assert np.array_equal(load_rgb(tmp_path / name), np.repeat(grey8[..., None], 3, axis=2))
        assert abs(scorer.score(tmp_path / name).mean - reference) < 0.01


def test_16_bit_rgb_png_arrives_as_8_bits(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (40, 40, 3)).astype(">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in values)
    (tmp_path / "rgb16.png").write_bytes(png_bytes(40, 40, 16, 2, rows))
    rgb = load_rgb(tmp_path / "rgb16.png")
    assert rgb.dtype == np.uint8 and np.abs(rgb - values.astype(np.float64) / 257).max() <= 1  # Pillow's high byte


def test_float_tiff_is_refused(tmp_path):
    Image.fromarray(np.random.default_rng(0).random((40, 40)).astype(np.float32)).save(tmp_path / "f.tif")
    for read in (load_rgb, check_image):
        with pytest.raises(DatasetError, match=r"f\.tif: 32-bit float image: no defined white level"):
            read(tmp_path / "f.tif")


def test_modes_with_transparency_are_composited_on_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[0, 1] = (0, 0, 0, 128)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    for rgb in (load_rgb(tmp_path / "rgba.png"), to_rgb(rgba)):
        assert rgb.shape == (40, 40, 3) and rgb[5, 5].tolist() == [255] * 3  # fully transparent: white, not black
        assert rgb[0, 0].tolist() == [10, 20, 30] and 126 <= rgb[0, 1, 0] <= 128  # half: half-way to white

    p = Image.new("P", (40, 40), 1)
    p.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.save(tmp_path / "p.png", transparency=1)  # palette entry 1 (red) is transparent
    rgb = load_rgb(tmp_path / "p.png")
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[9, 9].tolist() == [255] * 3

    la = Image.new("LA", (40, 40), (0, 0))
    la.putpixel((0, 0), (90, 255))
    la.save(tmp_path / "la.png")
    rgb = load_rgb(tmp_path / "la.png")
    assert rgb[0, 0].tolist() == [90] * 3 and rgb[9, 9].tolist() == [255] * 3


def test_other_modes_become_rgb(tmp_path):
    cmyk = Image.new("CMYK", (40, 40), (0, 0, 0, 0))
    cmyk.putpixel((0, 0), (0, 0, 0, 255))
    cmyk.save(tmp_path / "cmyk.tif")
    rgb = load_rgb(tmp_path / "cmyk.tif")
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[9, 9].tolist() == [255] * 3
    Image.new("1", (40, 40), 1).save(tmp_path / "bilevel.png")
    assert load_rgb(tmp_path / "bilevel.png").min() == 255
    Image.new("P", (40, 40), 3).save(tmp_path / "palette.bmp")
    assert load_rgb(tmp_path / "palette.bmp").shape == (40, 40, 3)
    assert to_rgb(Image.new("YCbCr", (40, 40), (255, 128, 128)))[0, 0].tolist() == [255] * 3


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ((200, 0, 0), (0, 0, 200))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    with Image.open(tmp_path / "anim.gif") as im:
        assert im.n_frames == 2
    rgb = load_rgb(tmp_path / "anim.gif")
    assert rgb[20, 20, 0] > 150 and rgb[20, 20, 2] < 50


def test_truncated_files_name_the_file(upright, tmp_path):
    Image.fromarray(upright).save(tmp_path / "photo.jpg")
    data = (tmp_path / "photo.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.jpg: truncated file"):
        load_rgb(tmp_path / "cut.jpg")


def test_unsupported_formats_are_named(tmp_path):
    (tmp_path / "phone.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    (tmp_path / "camera.nef").write_bytes(b"II*\0" + bytes(64))
    with pytest.raises(DatasetError, match=r"phone\.heic: HEIC is not supported.*convert it to JPEG or PNG"):
        load_rgb(tmp_path / "phone.heic")
    with pytest.raises(DatasetError, match=r"camera\.nef: camera raw \(Nikon NEF\) is not supported"):
        check_image(tmp_path / "camera.nef")


# ---------------------------------------------------------------------------------------------- check_image


def test_check_image(upright, tmp_path):
    Image.fromarray(upright).save(tmp_path / "good.png")
    Image.fromarray(upright).save(tmp_path / "good.bmp")
    assert check_image(tmp_path / "good.png") == (320, 256) and check_image(tmp_path / "good.bmp") == (320, 256)
    (tmp_path / "garbage.jpg").write_bytes(bytes(range(256)) * 4)
    for name in ("good.bmp", "good.png"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) * 2 // 3])
    Image.new("RGB", (MIN_SIDE - 1, 500)).save(tmp_path / "thin.png")
    cases = {
        "garbage.jpg": "cannot decode image",
        "cut_good.bmp": "truncated file",
        "cut_good.png": "truncated or corrupt",
        "bomb.png": r"900,000,000 pixels, over the limit",
        "thin.png": "31x500 is too small",
        "absent.png": "no such file",
    }
    bomb(tmp_path / "bomb.png")
    for name, problem in cases.items():
        with pytest.raises(DatasetError, match=rf"{name}: {problem}"):
            check_image(tmp_path / name)


def test_pixel_limit_between_pillows_warning_and_error(tmp_path, monkeypatch):
    """Over MAX_IMAGE_PIXELS but under twice it, Pillow only warns; we refuse (and do not leak the warning)."""
    import warnings

    Image.new("L", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for read in (load_rgb, check_image):
            with pytest.raises(DatasetError, match=r"big\.png: 100x100 is 10,000 pixels, over the limit of 6,000"):
                read(tmp_path / "big.png")


# ---------------------------------------------------------------------------------------------- arrays


def test_arrays_of_other_types_score_like_uint8(scorer, upright):
    reference = scorer.score(upright).mean
    assert abs(scorer.score(upright / 255.0, max_value=1.0).mean - reference) < 0.01
    assert abs(scorer.score(upright.astype(np.float32) * 2, max_value=510.0).mean - reference) < 0.01
    assert abs(scorer.score(upright.astype(np.uint16) * 257).mean - reference) < 0.01
    twelve = ((upright.astype(np.uint32) * 4095 + 127) // 255).astype(np.uint16)  # 12-bit data
    assert np.array_equal(to_rgb(twelve, max_value=4095), upright)
    grey = upright[..., 0]
    assert np.array_equal(to_rgb(grey), np.repeat(grey[..., None], 3, 2))
    assert np.array_equal(to_rgb(grey[..., None]), to_rgb(grey))
    assert to_rgb(np.ones((40, 40), bool)).min() == 255


@pytest.mark.parametrize(
    ("array", "kwargs", "problem"),
    [
        (np.zeros((64, 64, 3)), {}, r"float64 array: pass max_value.*max_value=1\.0"),
        (np.full((64, 64, 3), np.nan), {"max_value": 1.0}, "NaN or infinite"),
        (np.full((64, 64, 3), 1.5), {"max_value": 1.0}, r"outside \[0, 1\]"),
        (np.zeros((3, 64, 64), np.uint8), {}, r"channels-first; pass a\.transpose\(1, 2, 0\)"),
        (np.zeros((0, 64, 3), np.uint8), {}, "empty array"),
        (np.zeros((64, 64, 2), np.uint8), {}, "expected"),
        (np.zeros((1, 1, 3), np.uint8), {}, "1x1 is too small"),
        (np.zeros((10, 10000), np.uint8), {}, "10000x10 is too small"),
        (np.zeros((64, 64), np.int32), {}, "int32 array: pass max_value"),
        (np.zeros((64, 64), complex), {}, "unsupported dtype"),
        (np.zeros((64, 64), np.uint8), {"max_value": 0}, "max_value must be a positive"),
    ],
)
def test_bad_arrays_are_refused(scorer, array, kwargs, problem):
    with pytest.raises(DatasetError, match=rf"^image array: .*{problem}"):
        scorer.score(array, **kwargs)


def test_small_image_is_padded_with_a_warning(scorer, upright, caplog):
    small = upright[:64, :256]
    with caplog.at_level(logging.WARNING, logger="pynima.scoring"):
        s = scorer.score(small)
    assert s.warning and "256x64 is smaller than the 224x224 crop" in s.warning
    assert "256x64" in caplog.text and 0 <= s.mean <= 9
    assert scorer.score(upright).warning is None


def test_top_level_load_still_scores(run, upright):
    import pynima

    s = pynima.load(run / "best.ckpt").score(upright)
    assert 0 <= s.mean <= 9 and abs(sum(s.distribution) - 1) < 1e-4


def test_scorer_called_on_a_batch_equals_scoring_one_by_one(upright, tmp_path):
    import torch

    import pynima

    scorer = pynima.load()  # the bundled model, on ONNX Runtime
    other = np.ascontiguousarray(upright[::-1, ::-1])
    Image.fromarray(upright).save(tmp_path / "a.png")
    one_by_one = [scorer.score(x).mean for x in (upright, other)]
    mixed = scorer([tmp_path / "a.png", other, Image.fromarray(upright)])
    assert [s.mean for s in mixed] == pytest.approx([one_by_one[0], one_by_one[1], one_by_one[0]], abs=1e-4)
    stack = np.stack([upright, other])
    assert [s.mean for s in scorer(stack)] == pytest.approx(one_by_one, abs=1e-4)
    as_float = torch.from_numpy(stack).permute(0, 3, 1, 2).float() / 255  # the torch convention: NCHW in [0, 1]
    assert [s.mean for s in scorer(as_float)] == pytest.approx(one_by_one, abs=1e-4)
    assert [s.mean for s in scorer(torch.from_numpy(stack).permute(0, 3, 1, 2))] == pytest.approx(one_by_one, abs=1e-4)
    assert scorer([]) == []
    with pytest.raises(PynimaError, match="image 1 of the batch: image array: .*NaN"):
        scorer([upright / 255, np.full((300, 300, 3), np.nan)], max_value=1.0)
    with pytest.raises(PynimaError, match=r"\(N, C, H, W\)"):
        scorer(as_float[0])
    with pytest.raises(PynimaError, match="Scorer.score"):
        scorer(tmp_path / "a.png")


# ---------------------------------------------------------------------------------------------- scorer memory


class FakeEngine:
    """Records the batch size of each call; its output depends on the input, so misassembled chunks would show."""

    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        logits = np.stack([x.mean((1, 2, 3)) * k for k in range(10)], 1)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


def test_grid_crops_go_through_the_network_in_bounded_chunks(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, np.uint8) for shape in ((900, 900, 3), (384, 512, 3), (100, 120, 3))]
    engine = FakeEngine()
    scorer = Scorer(engine, crops="grid")
    engine.calls.clear()  # the Scorer's check of the network on a grey image
    inputs = [scorer.inputs(im) for im in images] * 7  # 16 + 6 + 1 crops, 7 times: 161 crops
    expected = np.stack([FakeEngine()(x).mean(0) for x in inputs])
    got = scorer.distributions(inputs)
    assert max(engine.calls) <= MAX_CROPS_PER_PASS and sum(engine.calls) == 161 and len(engine.calls) == 3
    assert np.allclose(got, expected, atol=1e-6)

    for i in range(12):
        Image.fromarray(images[0]).save(tmp_path / f"big{i:02d}.png")
    engine.calls.clear()
    scores = list(scorer.score_paths([tmp_path], batch_size=12))  # 192 crops in one batch
    assert len(scores) == 12 and max(engine.calls) <= MAX_CROPS_PER_PASS and sum(engine.calls) == 192
    direct = FakeEngine()(normalize(crops(images[0], "grid"), engine.mean, engine.std)).mean(0)
    assert np.allclose(scores[-1][1].distribution, direct, atol=1e-6)


def test_score_paths_reports_every_input(tmp_path):
    scorer = Scorer(FakeEngine())
    for bad in (0, -1, 2.5, True):
        with pytest.raises(PynimaError, match="batch_size must be a positive integer"):
            scorer.score_paths([tmp_path], batch_size=bad)
    good = tmp_path / "images"
    good.mkdir()
    Image.new("RGB", (240, 240), (30, 60, 90)).save(good / "a.png")
    (good / "b.jpg").write_bytes(b"garbage")
    Image.new("RGB", (240, 240)).save(good / "c.png")
    (tmp_path / "empty").mkdir()
    rows = list(scorer.score_paths([good, tmp_path / "missing.jpg", tmp_path / "empty"], batch_size=2))
    errors = {p.name: e for p, s, e in rows if e}
    assert [p.name for p, s, e in rows if s] == ["a.png", "c.png"]
    assert "b.jpg: cannot decode image" in errors["b.jpg"] and "no such file or folder" in errors["missing.jpg"]
    assert "no images found" in errors["empty"]


# ---------------------------------------------------------------------------------------------- pynima predict


@pytest.fixture
def mixed(tmp_path, upright):
    """A folder with two good images, a decompression bomb and (in a subfolder) a HEIC file."""
    folder = tmp_path / "mixed"
    (folder / "phone").mkdir(parents=True)
    Image.fromarray(upright).save(folder / "a.png")
    Image.fromarray(upright[:, ::-1]).save(folder / "c.jpg")
    bomb(folder / "b_bomb.png")
    (folder / "phone" / "d.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    (folder / "notes.txt").write_text("not an image, not looked at")
    return folder


def predict(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_reports_bad_files_and_scores_the_rest(run, mixed, capsys):
    code, out, err = predict(capsys, run / "best.ckpt", mixed, "--format", "json")
    rows = {r["path"].split("/")[-1]: r for r in json.loads(out)}
    assert code == 1 and sorted(rows) == ["a.png", "b_bomb.png", "c.jpg", "d.heic"]
    assert rows["a.png"]["error"] is None and 0 <= rows["a.png"]["mean"] <= 9
    assert len(rows["c.jpg"]["distribution"]) == 10 and rows["c.jpg"]["warning"] is None
    assert rows["b_bomb.png"]["mean"] is None and rows["b_bomb.png"]["distribution"] is None
    assert "900,000,000 pixels, over the limit" in rows["b_bomb.png"]["error"]
    assert "HEIC is not supported" in rows["d.heic"]["error"]
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 2 and "b_bomb.png: 900,000,000 pixels" in skipped[0] and "d.heic" in skipped[1]
    assert "Traceback" not in err and "2 of 4 input(s) could not be scored" in err

    code, out, err = predict(capsys, run / "best.ckpt", mixed, "--format", "csv")
    lines = out.splitlines()
    assert code == 1 and lines[0].endswith("p9,warning,error") and len(lines) == 5
    bomb_row = next(line for line in lines if "b_bomb.png" in line)
    assert "over the limit" in bomb_row and ",,,," in bomb_row

    code, out, err = predict(capsys, run / "best.ckpt", mixed)
    assert code == 1 and len(out.splitlines()) == 1 + 4 and "(error: 900,000,000 pixels" in out  # header + rows


def test_predict_exit_codes(run, tmp_path, upright, capsys):
    model = run / "best.ckpt"
    Image.fromarray(upright).save(tmp_path / "good.png")
    Image.fromarray(upright[:64]).save(tmp_path / "small.png")
    code, out, err = predict(capsys, model, tmp_path / "good.png", tmp_path / "small.png", "--format", "csv")
    assert code == 0 and "skipped" not in err
    assert "warning: " in err and "small.png: 320x64 is smaller than the 224x224 crop" in err
    assert "smaller than the 224x224 crop" in out.splitlines()[2]  # the warning column

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = predict(capsys, model, tmp_path / "bad")
    assert code == 1 and "skipped: " in err and "x.png" in err

    code, out, err = predict(capsys, model, tmp_path / "good.png", tmp_path / "nowhere")
    assert code == 1 and "nowhere: no such file or folder" in err

    (tmp_path / "empty").mkdir()
    code, out, err = predict(capsys, model, tmp_path / "empty")
    assert code == 1 and "empty: no images found" in err


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_predict_batch_size_is_a_usage_error(tmp_path, value):
    r = subprocess.run(
        [sys.executable, "-m", "pynima.cli", "predict", "model.ckpt", str(tmp_path), "--batch-size", value],
        capture_output=True,
        text=True,
    )
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(errors) == 1 and "--batch-size: expected a positive integer" in errors[0]
