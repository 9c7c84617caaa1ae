"""Opening image files and bytes: what counts as an image, and what is refused before decoding (camera raw,
special files, formats without a codec, arithmetic-coded JPEG, decompression bombs).
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath, PurePosixPath

import numpy as np

from pynima.errors import DatasetError
from pynima.images.pixels import pil_to_rgb
from pynima.images.problems import (
    check_header,
    fail,
    reason,
    report_notes,
    too_many_pixels,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "RAW_SUFFIXES",
    "UNSUPPORTED_SUFFIXES",
    "check_image",
    "decode_rgb",
    "image_files",
    "load_rgb",
    "load_rgb_bytes",
    "open_image",
]

log = logging.getLogger(__name__)


# Image files to pynima (folders are walked for these): what Pillow reads, plus the formats below, listed so that such
# files are reported by name ("HEIC is not supported...") instead of silently left out.
UNSUPPORTED_SUFFIXES = {  # readable only with a Pillow plugin or codec (pillow-heif, libavif...): refused if absent
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".jxl": "JPEG XL",
    ".avif": "AVIF",
}


RAW_SUFFIXES = {  # camera raw: always refused; Pillow would open some as TIFF and return the embedded thumbnail
    ".dng": "DNG",
    ".cr2": "Canon CR2",
    ".cr3": "Canon CR3",
    ".nef": "Nikon NEF",
    ".arw": "Sony ARW",
    ".orf": "Olympus ORF",
    ".rw2": "Panasonic RW2",
    ".raf": "Fujifilm RAF",
    ".srw": "Samsung SRW",
    ".pef": "Pentax PEF",
}


IMAGE_SUFFIXES = {
    ".bmp",
    ".dib",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".apng",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".gif",
    ".jp2",
    ".qoi",
    ".tga",
    *UNSUPPORTED_SUFFIXES,
    *RAW_SUFFIXES,
}


_OPEN_LOCK = threading.Lock()


def image_files(folder: Path) -> list[Path]:
    """The files directly in ``folder`` whose suffix is an image's (``IMAGE_SUFFIXES``), sorted by path."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _unsupported(path: PurePath) -> str:
    """The message for a file Pillow cannot identify, naming the format when the suffix says what it is."""
    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return "cannot decode image (not an image format Pillow reads, or a corrupt header)"
    return f"{kind} is not supported by this Pillow installation; convert it to JPEG or PNG"


def _refuse_raw(path: PurePath, name: object) -> None:
    raw = RAW_SUFFIXES.get(path.suffix.lower())
    if raw is not None:
        raise fail(name, f"camera raw ({raw}) is not supported; develop it to JPEG, PNG or TIFF first")


@contextmanager
def _opened(path: Path) -> Iterator:
    """The image file opened by Image.open (the header only), closed on exit; every failure to open it is a
    DatasetError naming the file.

    The file is handed to Pillow as a file object, not a path: Pillow then reads uncompressed data instead of
    memory-mapping it, and its memory-mapped path garbles uncompressed TIFFs whose orientation tag says rotated
    (orientations 5-8). See open_image for the rest.
    """
    _refuse_raw(path, path)
    _refuse_special(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - handed to PIL, which closes it with the image
    except FileNotFoundError:
        raise fail(path, "no such file") from None
    except IsADirectoryError:
        raise fail(path, "is a folder, not an image file") from None
    except PermissionError:
        raise fail(path, "cannot read (permission denied)") from None
    except OSError as e:
        raise fail(path, f"cannot read ({reason(e)})") from None
    with f, open_image(f, path, _unsupported(path)) as im:
        yield im, f


_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _refuse_special(path: Path) -> None:
    """Refuse, without opening it, a path that is not a regular file: opening a FIFO waits for a writer forever, and a
    device can be read without end. A path that cannot be stat'ed is left to open() to report.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    kind = next((kind for test, kind in _SPECIAL if test(mode)), None)
    if kind is not None:
        raise fail(path, f"not a regular file ({kind}); not opened")


@contextmanager
def open_image(f, name: object, unsupported: str) -> Iterator:
    """Image.open of an open binary file, closed on exit; a DatasetError naming ``name`` if it is not an image Pillow
    reads (``unsupported`` says why) or is over the pixel cap.

    Pillow's decompression-bomb guard raises DecompressionBombError (not an OSError) above twice
    ``Image.MAX_IMAGE_PIXELS`` and only warns between one and two times it; both become the same refusal (the
    warning is silenced here because check_header refuses those images). The lock keeps catch_warnings, which changes
    process-wide state, from racing between decoding threads.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
    except UnidentifiedImageError:
        raise fail(name, unsupported) from None
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise too_many_pixels(name, count) from None
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many types on malformed headers
        raise fail(name, f"cannot read image header ({reason(e)})") from None
    with im:
        yield im


def _raw_end(im) -> int | None:
    """Where the pixel data of an uncompressed ('raw') image ends in its file, from the tile list; None if unknown."""
    from PIL import ImageMode

    end = 0
    for tile in im.tile:
        codec, (x0, y0, x1, y1), offset, args = tuple(tile)[:4]  # a plain tuple before Pillow 11, a namedtuple after
        if codec != "raw":
            return None
        rawmode, stride = (args, 0) if isinstance(args, str) else tuple(args[:2])
        if not stride:
            if rawmode.split(";")[0] == "1":
                bits = 1
            else:
                try:
                    spec = ImageMode.getmode(rawmode)
                except KeyError:
                    return None
                bits = 8 * int(spec.typestr[2:]) * len(spec.bands)
            stride = -(-(x1 - x0) * bits // 8)
        end = max(end, offset + abs(stride) * (y1 - y0))
    return end or None


def check_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels; fast enough for every file of a
    dataset before training.

    Raises the same one-line DatasetError as load_rgb for: missing or unreadable files, formats Pillow cannot read,
    more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels, a shorter side under MIN_SIDE, float ("F") images, and
    truncation where it is cheap to see: uncompressed BMP/PPM/TIFF shorter than their pixel data, PNG chunks that fail
    their CRC or end early (``Image.verify``). Truncated JPEG, WebP and GIF data is only found by load_rgb.
    """
    path = Path(path)
    with _opened(path) as (im, _):
        try:
            size = check_header(im, path)
            end = _raw_end(im)
            if end is not None and path.stat().st_size < end:
                raise fail(path, f"truncated file ({path.stat().st_size:,} bytes, the pixel data needs {end:,})")
            if im.format == "PNG":
                im.verify()  # chunk structure and CRCs, no decompression
            return size
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - verify raises OSError, SyntaxError, struct.error... for broken files
            raise fail(path, f"truncated or corrupt ({reason(e)})") from None


def load_rgb(path: str | Path, notes: list[str] | None = None) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 array, or raise a one-line DatasetError naming the file.

    The policy (the same for in-memory images, see to_rgb): only regular files are opened (a FIFO, socket or device is
    refused unopened); EXIF orientation applied; an embedded ICC profile converts the colours to sRGB (see _to_srgb;
    PNG gAMA/cHRM without one are ignored); 16-bit grey (I;16 PNG/TIFF, 16-bit PPM) scaled to 8 bits by
    v * 255 / 65535, rounded (16-bit RGB arrives from Pillow already reduced to 8 bits); grey, bilevel, palette, CMYK
    (without a profile: no colour management) and YCbCr converted to RGB; transparency (alpha, or a palette or colour
    key) composited on BACKGROUND; animated GIF/APNG/WebP: the first frame; multi-page TIFF: the first page, with a
    warning; refused with a reason: float images (no white level), more than PIL.Image.MAX_IMAGE_PIXELS pixels
    (checked from the header, before decoding), a shorter side under MIN_SIDE, truncated or corrupt data, formats
    Pillow cannot read here. Warnings (a multi-page TIFF, an ICC profile that cannot be used) are appended to
    ``notes`` as problems without the file name, or logged if ``notes`` is None.
    """
    path = Path(path)
    found: list[str] = []
    with _opened(path) as (im, f):
        rgb = _decode(im, path, f, found)
    report_notes(path, found, notes)
    return rgb


def _decode(im, name: object, source, notes: list[str]) -> np.ndarray:
    """The pixels of an opened image under the decoding policy (pil_to_rgb); a failure is one DatasetError.
    ``source``: the file object Pillow reads, looked at again to say why a JPEG does not decode.
    """
    try:
        return pil_to_rgb(im, name, notes=notes)
    except DatasetError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt file makes Pillow raise anything, OSError to struct.error
        if "truncated" in str(e):
            problem = "truncated file"
        elif im.format in ("JPEG", "MPO") and _arithmetic_jpeg(source):
            problem = (
                "arithmetic-coded JPEG, which this Pillow cannot decode: re-encode it (jpegtran in.jpg > "
                "out.jpg does so losslessly)"
            )
        else:
            problem = "cannot decode image"
        raise fail(name, f"{problem} ({reason(e)})") from None


_ARITHMETIC_SOF = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # SOF9-11, SOF13-15: frames coded with arithmetic coding


def _arithmetic_jpeg(source) -> bool:
    """Whether a JPEG file's frame header (SOFn marker) says arithmetic coding; False if it cannot be told."""
    try:
        source.seek(2)  # after SOI
        for _ in range(1000):  # marker segments before the frame header
            head = source.read(4)
            while head[:2] == b"\xff\xff":  # fill bytes
                head = head[1:] + source.read(1)
            if len(head) < 4 or head[0] != 0xFF:
                return False
            if head[1] in _ARITHMETIC_SOF:
                return True
            if head[1] == 0xDA or (0xC0 <= head[1] <= 0xCF and head[1] not in (0xC4, 0xC8, 0xCC)):
                return False  # the scan, or a Huffman-coded frame
            source.seek(int.from_bytes(head[2:], "big") - 2, 1)
    except (OSError, ValueError):
        return False
    return False


def decode_rgb(data: bytes, name: str = "image", notes: list[str] | None = None) -> np.ndarray:
    """``load_rgb`` for an image in memory (an upload): the same policy and the same one-line DatasetError, naming
    ``name``. The format is sniffed from the content, never from a name.
    """
    source, found = io.BytesIO(data), []
    with open_image(source, name, "not an image (no image format Pillow reads, or a corrupt header)") as im:
        rgb = _decode(im, name, source, found)
    report_notes(name, found, notes)
    return rgb


def load_rgb_bytes(data: bytes, path: str, notes: list[str] | None = None) -> np.ndarray:
    """``load_rgb`` for the bytes of a file read elsewhere (object storage, pynima.scoring.cluster): the same policy and
    the same one-line DatasetError as ``load_rgb`` gives for a file named ``path`` (its suffix names camera raw and
    unsupported formats), so a file scores and fails alike wherever it is read from.
    """
    _refuse_raw(PurePosixPath(path), path)
    source, found = io.BytesIO(data), []
    with open_image(source, path, _unsupported(PurePosixPath(path))) as im:
        rgb = _decode(im, path, source, found)
    report_notes(path, found, notes)
    return rgb
