"""Fuzzing the decoding policy (hypothesis): random bytes, and PNG, JPEG, WebP, GIF, TIFF and BMP files made here then
damaged (bytes flipped, cut, inserted, removed), read by ``load_rgb`` (from a file) and ``load_rgb_bytes`` give an
(H, W, 3) uint8 image or a PynimaError of one line; never another exception, never a hang."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_hostile_files import P3, icc_profile

from pynima.errors import PynimaError
from pynima.images import load_rgb, load_rgb_bytes


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _seeds() -> list[bytes]:
    """Small valid files of each format, some with what the policy acts on: an ICC profile, EXIF orientation,
    transparency, several frames or pages, 16-bit grey."""
    y, x = np.mgrid[:36, :40]
    rgb = Image.fromarray(np.stack([x * 6, y * 7, (x * y) % 256], -1).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_TOP_BOTTOM)]
    return [
        _encode(rgb, "PNG"),
        _encode(rgb, "PNG", icc_profile=icc_profile(P3, 2.2)),
        _encode(rgb.convert("RGBA"), "PNG"),
        _encode(Image.fromarray((y * 1800).astype(np.uint16)), "PNG"),
        _encode(rgb, "JPEG", quality=80, exif=exif),
        _encode(rgb, "JPEG", icc_profile=icc_profile(P3, 2.2)),
        _encode(rgb, "JPEG", progressive=True),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(rgb, "WEBP", quality=80),
        _encode(rgb, "WEBP", lossless=True, icc_profile=icc_profile(P3, 2.2)),
        _encode(rgb, "GIF", save_all=True, append_images=frames[1:]),
        _encode(rgb, "TIFF", save_all=True, append_images=frames[1:]),
        _encode(rgb, "TIFF", compression="tiff_lzw"),
        _encode(rgb, "BMP"),
        _encode(rgb.convert("P"), "BMP"),
    ]


SEEDS = _seeds()
SUFFIXES = [".png", ".jpg", ".webp", ".gif", ".tif", ".bmp", ".heic", ".dng", ".bin"]


@st.composite
def damaged(draw) -> bytes:
    """One of SEEDS with 1-6 random edits."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        edit = draw(st.sampled_from(["flip", "cut", "insert", "remove"]))
        if edit == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "cut":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@pytest.fixture(scope="module", autouse=True)
def small_pixel_cap():
    """A damaged header may claim millions of pixels: a lower cap keeps each example fast (it is refused from the
    header, as a larger file would be under the default cap)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Image, "MAX_IMAGE_PIXELS", 2**20)
        yield


def _rgb_or_one_line(read) -> None:
    try:
        rgb = read()
    except PynimaError as e:
        message = str(e)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        return
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_the_seeds_decode():
    for data in SEEDS:
        rgb = load_rgb_bytes(data, "seed.bin")
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 36


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(damaged(), st.binary(max_size=4096)), suffix=st.sampled_from(SUFFIXES))
def test_any_bytes_give_an_rgb_image_or_one_error_line(tmp_path, data, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    _rgb_or_one_line(lambda: load_rgb(path))
    _rgb_or_one_line(lambda: load_rgb_bytes(data, f"s3://bucket/fuzz{suffix}"))


@pytest.fixture(scope="module")
def service():
    """The service on the bundled model, in process (Starlette's TestClient), at a Host it answers to."""
    from starlette.testclient import TestClient

    from pynima.serving.app import create_app

    with TestClient(create_app(), base_url="http://127.0.0.1:8000") as c:
        yield c


@settings(max_examples=60, deadline=10000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(damaged(), st.binary(max_size=4096)), suffix=st.sampled_from(SUFFIXES), raw=st.booleans())
def test_the_service_answers_any_bytes_with_a_score_or_a_json_error(service, data, suffix, raw):
    """Every upload, as a multipart file or a raw image body: 200 with scores, or a 4xx whose JSON says why in one
    line; never a 5xx or a plain-text traceback."""
    if raw:
        r = service.post("/v1/score", content=data, headers={"content-type": "image/png"})
    else:
        r = service.post("/v1/score", files=[("files", (f"fuzz{suffix}", data, "application/octet-stream"))])
    assert r.status_code < 500, r.text[:500]
    body = r.json()
    if r.status_code != 200:
        message = body.get("error") or body.get("detail")
        assert message and "Traceback" not in str(message), body
    else:
        [row] = body["results"]
        assert 0 <= row["mean"] <= 9 and sum(row["distribution"]) == pytest.approx(1, abs=0.01), body
