"""Reading image-quality datasets: TID2013 and anything written in its layout (``pynima synth``).

TID2013 layout (Ponomarenko et al. 2015; the same for a ``pynima synth`` output)::

    ROOT/
      mos_with_names.txt     "MOS name" per line, e.g. "5.51429 I01_01_1.bmp"; MOS on a 0-9 scale
      mos_std.txt            the std of each MOS, same order (the uncertainty of the mean, not of the votes)
      distorted_images/      i01_01_1.bmp ... iRR_TT_L.bmp: reference RR (01-25), distortion type TT (1-24), level L
      reference_images/      I01.BMP ... (optional for no-reference training)

The real files have CRLF line ends and mixed case (``I01_01_1.bmp`` next to ``i01_01_2.bmp``, and other cases again on
disk), so names are matched case-insensitively.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePath, PurePosixPath

import numpy as np

from pynima.errors import PynimaError
from pynima.scale import CROP, SCORE_RANGE

__all__ = [
    "AnchorBatchSampler",
    "BACKGROUND",
    "DISTORTED_DIR",
    "DatasetError",
    "EpochSampler",
    "IMAGE_SUFFIXES",
    "IQADataset",
    "LIGHT_KINDS",
    "LIGHT_STREAM",
    "Label",
    "LightVersion",
    "MIN_SIDE",
    "MOS_FILE",
    "MOS_RANGE",
    "RAW_SUFFIXES",
    "REFERENCE_DIR",
    "Record",
    "STD_FILE",
    "UNSUPPORTED_SUFFIXES",
    "VAL_CARVE",
    "apply_split",
    "array_to_rgb",
    "check_image",
    "check_images",
    "clean_anchors",
    "decode_rgb",
    "display_name",
    "light_versions",
    "load_rgb",
    "load_rgb_bytes",
    "make_split",
    "mean_squared_error",
    "open_image",
    "parse_name",
    "problems_error",
    "read_labels",
    "read_lines",
    "read_split",
    "read_tid2013",
    "split_ratios",
    "to_rgb",
    "transforms",
]

log = logging.getLogger(__name__)

MOS_FILE = "mos_with_names.txt"
STD_FILE = "mos_std.txt"
DISTORTED_DIR = "distorted_images"
REFERENCE_DIR = "reference_images"

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

MOS_RANGE = SCORE_RANGE  # TID2013's scale (observers' scores 0-9), the labels a TID2013 folder may hold

_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)


class DatasetError(PynimaError):
    """A dataset on disk is malformed; the message names the file, the line and how many problems there are."""


@dataclass(frozen=True)
class Label:
    """One row of a TID2013 label file pair."""

    name: str  # as written in the label file
    mos: float
    mos_std: float
    ref: int  # reference image, 1-25
    kind: int  # distortion type, 1-24
    level: int  # 1-5
    line: int  # 1-based line in the label files


@dataclass(frozen=True)
class Record:
    """One image of a dataset, with its labels and the files on disk; every reader (``pynima.datasets``) gives these.

    Scores are on the model's scale, TID2013's 0-9 (the 10 bins are scores 0..9); a dataset on another scale is
    mapped onto it linearly (``pynima.datasets.Scale``) and its own number kept in ``score``."""

    path: Path
    mos: float  # on the model's 0-9 scale
    mos_std: float  # the uncertainty of the mean as TID2013 gives it, on the 0-9 scale; nan if the dataset has none
    ref: int | str  # the reference image (synthetic distortions), or the image itself (authentic): a split's unit
    kind: int | str  # distortion type (TID2013 1-24, LIVE "jpeg"...); 0 if the dataset has none
    level: int  # distortion level; 0 if the dataset has none
    reference: Path | None  # the reference image, when the dataset ships it
    score: float | None = None  # on the dataset's own scale (None: the same as mos)
    vote_sd: float | None = None  # std of the individual votes, on the 0-9 scale, when the dataset gives it
    votes: tuple[float, ...] | None = None  # vote counts per score level, worst level first (AVA, KonIQ)
    name: str | None = None  # unique within the dataset when file names are not (LIVE: "jpeg/img1.bmp")

    @property
    def dataset_score(self) -> float:
        """The score on the dataset's own scale: ``score``, else ``mos`` (TID2013's scale is the model's)."""
        return self.mos if self.score is None else self.score

    @property
    def key(self) -> str:
        """What split files and predictions.csv call this image: ``name``, else the file name."""
        return self.name or self.path.name


def parse_name(name: str) -> tuple[int, int, int] | None:
    """``"i01_17_3.bmp"`` (any case) -> (ref 1, type 17, level 3); None if not a valid TID2013 name."""
    m = _NAME.match(name.strip())
    if not m:
        return None
    ref, kind, level = (int(g) for g in m.groups())
    if not (1 <= ref <= 99 and 1 <= kind <= 24 and 1 <= level <= 5):
        return None
    return ref, kind, level


def problems_error(problems: list[str]) -> DatasetError:
    more = f" ({len(problems)} problems in all; the first is shown)" if len(problems) > 1 else ""
    return DatasetError(problems[0] + more)


def read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    lines = text.splitlines()  # handles CRLF
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def read_labels(mos_file: str | Path, std_file: str | Path, allow_out_of_range: bool = False) -> list[Label]:
    """Parse a ``mos_with_names.txt`` / ``mos_std.txt`` pair (TID2013 format); one DatasetError for all problems.

    A MOS outside TID2013's 0-9 scale (``MOS_RANGE``) is a problem unless ``allow_out_of_range``: a file on another
    scale (0-100, 1-5 DMOS) would otherwise train and evaluate silently wrong."""
    mos_file, std_file = Path(mos_file), Path(std_file)
    mos_lines, std_lines = read_lines(mos_file), read_lines(std_file)
    problems: list[str] = []
    if len(mos_lines) != len(std_lines):
        problems.append(f"{std_file}: {len(std_lines)} rows but {mos_file.name} has {len(mos_lines)}")
    labels: list[Label] = []
    for i, (row, std_row) in enumerate(zip(mos_lines, std_lines, strict=False), start=1):  # unequal: reported above
        parts = row.split()
        mos = _number(parts[0]) if len(parts) == 2 else None
        key = parse_name(parts[1]) if len(parts) == 2 else None
        std = _number(std_row.strip())
        if mos is None or key is None:
            problems.append(f"{mos_file} line {i}: expected 'MOS iRR_TT_L.bmp' with a finite MOS, got {row.strip()!r}")
        if mos is not None and key is not None and not allow_out_of_range and not (MOS_RANGE[0] <= mos <= MOS_RANGE[1]):
            problems.append(
                f"{mos_file} line {i}: MOS {parts[0]} is outside TID2013's {MOS_RANGE[0]:g}-"
                f"{MOS_RANGE[1]:g} scale (--allow-out-of-range accepts it)"
            )
            mos = None
        if std is None or std < 0:
            problems.append(f"{std_file} line {i}: expected a finite non-negative std, got {std_row.strip()!r}")
        if mos is not None and key is not None and std is not None and std >= 0:
            labels.append(Label(parts[1], mos, std, *key, line=i))
    seen: dict[str, int] = {}
    for lab in labels:
        k = lab.name.lower()
        if k in seen:
            problems.append(f"{mos_file} line {lab.line}: {lab.name} already listed on line {seen[k]}")
        seen.setdefault(k, lab.line)
    if not labels and not problems:
        problems.append(f"{mos_file}: no rows")
    if problems:
        raise problems_error(problems)
    return labels


def _index(folder: Path) -> dict[str, Path]:
    """Lower-cased file name -> path, for case-insensitive lookup."""
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def read_tid2013(root: str | Path, allow_out_of_range: bool = False) -> list[Record]:
    """All images of a TID2013-layout dataset, in label-file order.

    Raises one DatasetError naming the file, line and number of problems if the label files disagree, a line does not
    parse, a value is NaN or outside the 0-9 scale (see ``read_labels``), or a listed image is missing from
    ``distorted_images/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    labels = read_labels(root / MOS_FILE, root / STD_FILE, allow_out_of_range)
    distorted, references = _index(root / DISTORTED_DIR), _index(root / REFERENCE_DIR)
    if not distorted:
        raise DatasetError(f"{root / DISTORTED_DIR}: missing or empty")
    problems, records = [], []
    for lab in labels:
        path = distorted.get(lab.name.lower())
        if path is None:
            problems.append(f"{root / DISTORTED_DIR / lab.name} ({MOS_FILE} line {lab.line}): no such image")
            continue
        ref = next((references[n] for n in (f"i{lab.ref:02d}.bmp", f"i{lab.ref:02d}.png") if n in references), None)
        records.append(Record(path, lab.mos, lab.mos_std, lab.ref, lab.kind, lab.level, ref))
    if problems:
        raise problems_error(problems)
    return records


# ---------------------------------------------------------------------------------------------- decoding policy
#
# One policy for every image pynima reads (training, evaluation, prediction; files and in-memory images): see
# load_rgb, to_rgb and check_image. The table of what happens to each kind of input is in docs/reliability.md.

MIN_SIDE = 32  # images whose shorter side is below this are refused: too little content for a 224 crop to judge
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white, as a viewer on a white page shows them
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}  # grey with a white level of 65535 (I: as 16-bit PNG/PPM)
_OPEN_LOCK = threading.Lock()


def display_name(name: object) -> str:
    """A file name (or any text) as one printable line: characters that are not printable (newline, tab, the ESC
    of terminal escape sequences, bidi controls) are shown as Python escapes (``\\n``, ``\\x1b``, ``\\u202e``) and the
    bytes of a name that is not UTF-8 (surrogate-escaped by ``os.fsdecode``) as ``\\xNN``; printable text, non-ASCII
    letters included, is kept. What every path pynima predict prints goes through."""
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode's surrogateescape holds it
        return f"\\x{code - 0xDC00:02x}"
    return ascii(c)[1:-1]  # \n, \t, \x1b, \u202e...


def _fail(name: object, problem: str) -> DatasetError:
    return DatasetError(f"{display_name(name)}: {problem}")


def _too_many_pixels(name: object, pixels: str) -> DatasetError:
    from PIL import Image

    return _fail(
        name,
        f"{pixels}, over the limit of {Image.MAX_IMAGE_PIXELS:,} (PIL.Image.MAX_IMAGE_PIXELS, the "
        f"decompression-bomb guard); raise that limit to read it",
    )


def _too_small(name: object, w: int, h: int) -> DatasetError:
    return _fail(name, f"{w}x{h} is too small to score (shorter side under the minimum of {MIN_SIDE} px)")


def _unsupported(path: PurePath) -> str:
    """The message for a file Pillow cannot identify, naming the format when the suffix says what it is."""
    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return "cannot decode image (not an image format Pillow reads, or a corrupt header)"
    return f"{kind} is not supported by this Pillow installation; convert it to JPEG or PNG"


def _refuse_raw(path: PurePath, name: object) -> None:
    raw = RAW_SUFFIXES.get(path.suffix.lower())
    if raw is not None:
        raise _fail(name, f"camera raw ({raw}) is not supported; develop it to JPEG, PNG or TIFF first")


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
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a folder, not an image file") from None
    except PermissionError:
        raise _fail(path, "cannot read (permission denied)") from None
    except OSError as e:
        raise _fail(path, f"cannot read ({_reason(e)})") from None
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
    device can be read without end. A path that cannot be stat'ed is left to open() to report."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    kind = next((kind for test, kind in _SPECIAL if test(mode)), None)
    if kind is not None:
        raise _fail(path, f"not a regular file ({kind}); not opened")


@contextmanager
def open_image(f, name: object, unsupported: str) -> Iterator:
    """Image.open of an open binary file, closed on exit; a DatasetError naming ``name`` if it is not an image Pillow
    reads (``unsupported`` says why) or is over the pixel cap.

    Pillow's decompression-bomb guard raises DecompressionBombError (not an OSError) above twice
    ``Image.MAX_IMAGE_PIXELS`` and only warns between one and two times it; both become the same refusal (the
    warning is silenced here because _check_header refuses those images). The lock keeps catch_warnings, which changes
    process-wide state, from racing between decoding threads.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
    except UnidentifiedImageError:
        raise _fail(name, unsupported) from None
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise _too_many_pixels(name, count) from None
    except Exception as e:  # noqa: BLE001 - Pillow's plugins raise many types on malformed headers
        raise _fail(name, f"cannot read image header ({_reason(e)})") from None
    with im:
        yield im


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _check_header(im, name: object) -> tuple[int, int]:
    """(width, height) of an opened image after the checks that need no pixels: pixel cap, minimum size, mode."""
    from PIL import Image

    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise _too_many_pixels(name, f"{w}x{h} is {w * h:,} pixels")
    if min(w, h) < MIN_SIDE:
        raise _too_small(name, w, h)
    if im.mode == "F":
        raise _fail(
            name,
            "32-bit float image: no defined white level; save it as 8- or 16-bit, or pass "
            "np.asarray(image) with max_value",
        )
    return w, h


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
            size = _check_header(im, path)
            end = _raw_end(im)
            if end is not None and path.stat().st_size < end:
                raise _fail(path, f"truncated file ({path.stat().st_size:,} bytes, the pixel data needs {end:,})")
            if im.format == "PNG":
                im.verify()  # chunk structure and CRCs, no decompression
            return size
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - verify raises OSError, SyntaxError, struct.error... for broken files
            raise _fail(path, f"truncated or corrupt ({_reason(e)})") from None


def _composite(im):
    """An image with transparency flattened onto BACKGROUND, as RGB."""
    from PIL import Image

    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND + (255,)), rgba).convert("RGB")


_ICC_BASE = {"RGB": "RGB", "RGBA": "RGB", "P": "RGB", "PA": "RGB", "L": "L", "LA": "L", "1": "L", "CMYK": "CMYK"}
_ICC_SPACE = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}  # a profile's colour space -> the mode it applies to


def _to_srgb(im, icc: bytes, notes: list[str]):
    """``im`` converted from its embedded ICC profile to sRGB (mode RGB, or RGBA keeping its alpha) with the
    perceptual intent (for the matrix profiles of cameras and screens, Adobe RGB and Display P3, LittleCMS uses
    relative colorimetric, the only one they define). Returned as it is, with a note, if the profile cannot be read or
    applied or is for another colour space than the image's; as it is, silently, if the conversion would move no
    colour by more than one 8-bit level (an sRGB profile)."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
    except Exception as e:  # noqa: BLE001 - LittleCMS refuses a broken profile with OSError or its own types
        notes.append(f"its embedded ICC profile cannot be read ({_reason(e)}); colours used as stored, unconverted")
        return im
    base = _ICC_BASE.get(im.mode)
    if base is None or _ICC_SPACE.get(space) != base:
        notes.append(
            f"its embedded ICC profile is for {space or 'no known'} colour, not for a {im.mode} image; "
            f"colours used as stored, unconverted"
        )
        return im
    try:
        transform = ImageCms.buildTransform(
            profile, ImageCms.createProfile("sRGB"), base, "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL
        )
        if _moves_nothing(transform, base):
            return im
        alpha = im.convert("RGBA").getchannel("A") if im.has_transparency_data else None
        out = ImageCms.applyTransform(im.convert(base) if im.mode != base else im, transform)
    except Exception as e:  # noqa: BLE001 - as above
        notes.append(f"its embedded ICC profile cannot be applied ({_reason(e)}); colours used as stored, unconverted")
        return im
    if alpha is not None:
        out.putalpha(alpha)
    return out


def _moves_nothing(transform, base: str) -> bool:
    """Whether an RGB or grey transform to sRGB leaves a grid of colours (every grey) within one 8-bit level."""
    from PIL import Image, ImageCms

    if base == "CMYK":
        return False
    levels = np.arange(0, 256, 15, dtype=np.uint8)
    probe = (
        np.stack(np.meshgrid(levels, levels, levels), -1).reshape(1, -1, 3)
        if base == "RGB"
        else np.arange(256, dtype=np.uint8).reshape(1, -1)
    )
    out = np.asarray(ImageCms.applyTransform(Image.fromarray(probe), transform), np.int16)
    return bool(np.abs(out - (probe if base == "RGB" else probe[..., None])).max() <= 1)


def _pages(im, notes: list[str]) -> None:
    """A note when a TIFF has more than one page (only the first is scored)."""
    if im.format != "TIFF":
        return
    try:
        pages = im.n_frames
    except Exception as e:  # noqa: BLE001 - a broken later IFD: the first page may still decode
        im.seek(0)
        notes.append(f"a TIFF whose later pages cannot be read ({_reason(e)}); only the first page is scored")
        return
    if pages > 1:
        notes.append(f"multi-page TIFF ({pages} pages); only the first page is scored")


def _pil_to_rgb(im, name: object, max_value: float | None = None, notes: list[str] | None = None) -> np.ndarray:
    """The decoding policy for an opened PIL image (a file or the caller's): see load_rgb. Warnings (the problem,
    without the name) are appended to ``notes``."""
    from PIL import Image, ImageOps

    notes = [] if notes is None else notes
    _check_header(im, name)
    _pages(im, notes)
    im.load()
    icc = im.info.get("icc_profile")
    if im.getexif().get(0x0112, 1) != 1:  # EXIF Orientation: the camera stored the picture rotated or mirrored
        im = ImageOps.exif_transpose(im)
    if im.mode in _SIXTEEN_BIT:
        rgb = array_to_rgb(np.asarray(im), 65535 if max_value is None else max_value, name=name)
        if not icc:
            return rgb
        im = Image.fromarray(np.ascontiguousarray(rgb[..., 0]))  # grey, 8-bit, for its (grey) profile
    elif max_value not in (None, 255):
        raise _fail(name, f"max_value applies to 16-bit and float images, not to mode {im.mode}")
    if icc:
        im = _to_srgb(im, icc, notes)
    if im.mode == "RGB" and not im.has_transparency_data:
        return np.asarray(im)
    if im.has_transparency_data:
        return np.asarray(_composite(im))
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError:
        raise _fail(name, f"unsupported image mode {im.mode}") from None


def _report(name: object, found: list[str], notes: list[str] | None) -> None:
    """Warnings of one decoding: appended to the caller's ``notes``, or logged (one line each, naming the file)."""
    if notes is not None:
        notes.extend(found)
        return
    for note in found:
        log.warning("%s: %s", display_name(name), note)


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
    _report(path, found, notes)
    return rgb


def _decode(im, name: object, source, notes: list[str]) -> np.ndarray:
    """The pixels of an opened image under the decoding policy (_pil_to_rgb); a failure is one DatasetError.
    ``source``: the file object Pillow reads, looked at again to say why a JPEG does not decode."""
    try:
        return _pil_to_rgb(im, name, notes=notes)
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
        raise _fail(name, f"{problem} ({_reason(e)})") from None


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
    ``name``. The format is sniffed from the content, never from a name."""
    source, found = io.BytesIO(data), []
    with open_image(source, name, "not an image (no image format Pillow reads, or a corrupt header)") as im:
        rgb = _decode(im, name, source, found)
    _report(name, found, notes)
    return rgb


def load_rgb_bytes(data: bytes, path: str, notes: list[str] | None = None) -> np.ndarray:
    """``load_rgb`` for the bytes of a file read elsewhere (object storage, pynima.ray): the same policy and the same
    one-line DatasetError as ``load_rgb`` gives for a file named ``path`` (its suffix names camera raw and unsupported
    formats), so a file scores and fails alike wherever it is read from."""
    _refuse_raw(PurePosixPath(path), path)
    source, found = io.BytesIO(data), []
    with open_image(source, path, _unsupported(PurePosixPath(path))) as im:
        rgb = _decode(im, path, source, found)
    _report(path, found, notes)
    return rgb


def _white_level(a: np.ndarray, max_value: float | None, name: object) -> float:
    if max_value is not None:
        try:
            white = float(max_value)
        except (TypeError, ValueError):
            white = math.nan
        if not (math.isfinite(white) and white > 0):
            raise _fail(name, f"max_value must be a positive finite number, got {max_value!r}")
        return white
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    if np.issubdtype(a.dtype, np.floating):
        raise _fail(
            name,
            f"{a.dtype} array: pass max_value, its white level (max_value=1.0 for values in [0, 1], "
            f"255.0 for [0, 255])",
        )
    raise _fail(name, f"{a.dtype} array: pass max_value, its white level (e.g. 4095 for 12-bit data)")


def array_to_rgb(a: np.ndarray, max_value: float | None = None, name: object = "image array") -> np.ndarray:
    """An image array as (H, W, 3) uint8, or a one-line DatasetError; see to_rgb for the accepted arrays."""
    if a.size == 0:
        raise _fail(name, f"empty array (shape {a.shape})")
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4) and min(a.shape[1:]) > 4:
        raise _fail(name, f"shape {a.shape} looks channels-first; pass a.transpose(1, 2, 0) for (H, W, C)")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise _fail(name, f"shape {a.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise _too_small(name, w, h)
    if a.dtype == np.bool_:
        if max_value not in (None, 1):
            raise _fail(name, "a boolean array is bilevel (False black, True white); max_value does not apply")
        a, max_value = a.astype(np.uint8) * np.uint8(255), None
    elif not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise _fail(
            name,
            f"unsupported dtype {a.dtype}: expected uint8, uint16, another integer type or a float type with max_value",
        )
    white = _white_level(a, max_value, name)
    if a.dtype != np.uint8 or white != 255:
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise _fail(name, "contains NaN or infinite values")
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > white:
            raise _fail(name, f"values from {lo:g} to {hi:g}, outside [0, {white:g}] (max_value {white:g})")
        x = a.astype(np.float32)
        x *= np.float32(255 / white)
        a = np.rint(x, out=x).astype(np.uint8)
    if a.ndim == 2 or a.shape[2] == 1:
        return np.repeat(a.reshape(h, w, 1), 3, axis=2)
    if a.shape[2] == 4:
        from PIL import Image

        return np.asarray(_composite(Image.fromarray(np.ascontiguousarray(a), "RGBA")))
    return a


def to_rgb(image, max_value: float | None = None, notes: list[str] | None = None) -> np.ndarray:
    """An in-memory image (NumPy array or PIL image) as (H, W, 3) uint8, under load_rgb's policy; a one-line
    DatasetError ("image array: ..." or the PIL image's file name) otherwise.

    Arrays: uint8 as is; uint16 scaled by 65535, or by ``max_value`` (e.g. 4095 for 12-bit data); float and other
    integer types need ``max_value`` (their white level: 1.0 for [0, 1]); values outside [0, max_value], NaN and
    infinity are refused; bool is bilevel (True white). Shapes (H, W) and (H, W, 1) (grey), (H, W, 3), (H, W, 4)
    (RGBA, composited on BACKGROUND); channels-first (C, H, W) is refused with a hint to transpose. PIL images: as
    files (EXIF orientation, ICC profile, modes, first frame); ``max_value`` applies to 16-bit and "F" images.
    Warnings go to ``notes`` or the log, as in load_rgb.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        name = getattr(image, "filename", "") or "PIL image"
        if image.mode == "F":
            if max_value is None:
                raise _fail(name, "32-bit float image: pass max_value, its white level (e.g. max_value=1.0)")
            return array_to_rgb(np.asarray(image), max_value, name=name)
        found: list[str] = []
        try:
            rgb = _pil_to_rgb(image, name, max_value, found)
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - a lazily loaded PIL image can still fail to decode
            raise _fail(name, f"cannot decode image ({_reason(e)})") from None
        _report(name, found, notes)
        return rgb
    if not isinstance(image, np.ndarray):
        raise _fail("image array", f"expected a path, a NumPy array or a PIL image, got {type(image).__name__}")
    return array_to_rgb(image, max_value)


def check_images(records: list[Record], threads: int = 4) -> None:
    """Check every record's image file from its header (``check_image``: readable, not truncated where that is
    cheap to see, within the size limits) before any training starts; one DatasetError for all problems."""
    from concurrent.futures import ThreadPoolExecutor

    def problem(r: Record) -> str | None:
        try:
            check_image(r.path)
        except DatasetError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(threads) as pool:
        problems = [p for p in pool.map(problem, records) if p]
    if problems:
        raise problems_error(problems)


# ---------------------------------------------------------------------------------------------- splits

VAL_CARVE = 0.15  # share of the training references held out for validation when only train/test are given


def split_ratios(values: tuple[float, ...] | list[float], val_carve: float = VAL_CARVE) -> tuple[float, float, float]:
    """(train, val, test) fractions from 3 numbers, or from 2 (train, test: the field's 80/20), in which case
    validation is carved out of the training part (``val_carve`` of it), so the test part stays as given. With 3
    numbers the test fraction may be 0: no test part, for a final model trained on every reference."""
    given = tuple(float(v) for v in values)
    if (
        len(given) not in (2, 3)
        or min(given[:2]) <= 0
        or given[-1] < 0
        or (len(given) == 2 and given[1] == 0)
        or abs(sum(given) - 1) > 1e-6
    ):
        raise DatasetError(
            f"split ratios must be 2 (train test) or 3 (train val test) numbers summing to 1, all "
            f"positive but the test part of 3, which may be 0; got {' '.join(f'{v:g}' for v in given)}"
        )
    if len(given) == 2:
        return (given[0] * (1 - val_carve), given[0] * val_carve, given[1])
    return given  # type: ignore[return-value]


def make_split(
    records: list[Record], mode: str = "reference", ratios: tuple[float, float, float] = (0.7, 0.2, 0.1), seed: int = 0
) -> dict:
    """Seeded train/val/test split, as a JSON-ready dict of image file names per part.

    ``reference`` (default): the *reference images* are divided, so no scene is in two parts, as the field does.
    ``random``: the images themselves are divided: the reference implementation's protocol, in which the same scenes
    (at other distortions) appear in train and test; offered for comparison only.
    """
    if mode not in ("reference", "random"):
        raise ValueError(f"split mode must be 'reference' or 'random', got {mode!r}")
    units = sorted({r.ref for r in records}) if mode == "reference" else list(range(len(records)))
    with_test = ratios[2] > 0
    if len(units) < 2 + with_test:
        raise DatasetError(
            f"a {mode} split needs at least {2 + with_test} "
            f"{'references' if mode == 'reference' else 'images'}, got {len(units)}"
        )
    order = [units[i] for i in np.random.default_rng(seed).permutation(len(units))]
    n_val = max(1, round(ratios[1] * len(units)))
    n_train = (
        len(units) - n_val if not with_test else min(max(1, round(ratios[0] * len(units))), len(units) - n_val - 1)
    )
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    split: dict = {"mode": mode, "seed": seed, "ratios": list(ratios)}
    for name, chosen in parts.items():
        chosen = set(chosen)
        split[name] = [r.key for i, r in enumerate(records) if (r.ref if mode == "reference" else i) in chosen]
    return split


def read_split(path: str | Path) -> dict:
    """A split file (``split.json`` of a run, or any ``--split-file``): image names per part, checked; one
    DatasetError naming the file otherwise."""
    from pynima.files import read_json

    split = read_json(path)
    bad = (
        not isinstance(split, dict)
        or not all(isinstance(split.get(p), list) for p in ("train", "val", "test"))
        or not all(isinstance(n, str) for p in ("train", "val", "test") for n in split[p])
    )
    if bad:
        raise DatasetError(
            f"{path}: not a split file (a JSON object with lists of image names 'train', 'val' and 'test')"
        )
    return split


def apply_split(records: list[Record], split: dict, part: str) -> list[Record]:
    """The records of one part of a split (matched by ``Record.key``, case-insensitively)."""
    wanted = {n.lower() for n in split[part]}
    chosen = [r for r in records if r.key.lower() in wanted]
    if len(chosen) != len(wanted):
        raise DatasetError(f"split part {part!r} lists {len(wanted)} images, {len(chosen)} of them are in the dataset")
    return chosen


# ---------------------------------------------------------------------------------------------- training items


def transforms(mean: tuple[float, ...], std: tuple[float, ...], train: bool):
    """torchvision transforms of a training item (random crop at native resolution, flip) or an evaluation item
    (the centre crop, as ``pynima predict`` takes it), normalized with the backbone's ``mean`` and ``std``."""
    import torch
    from torchvision.transforms import v2

    crop = [v2.RandomCrop(CROP, pad_if_needed=True), v2.RandomHorizontalFlip()] if train else [v2.CenterCrop(CROP)]
    return v2.Compose([v2.ToImage(), *crop, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class IQADataset:
    """(image tensor, target distribution, MOS, index, unit) per record; a plain map-style dataset for DataLoader. The
    index lets a distributed validation drop the items its sampler padded (``EpochSampler``); the unit (the key's seed,
    -1 without one) tells the ranking term which items share a crop (``AnchorBatchSampler``). A clean reference added
    as a ranking anchor has MOS nan: it has no label, only its place above its distorted versions.

    Items are decoded by ``load_rgb``, the decoding policy ``pynima predict`` uses. An item key may be an index or
    ``(index, seed)`` (from ``EpochSampler``): the seed then drives the random crop and flip, so the augmentation
    does not depend on which process or RNG state decodes the item. ``cache``: decode every image once into memory
    (uint8; TID2013's 3000 images take 1.8 GB), so an epoch only crops and flips; otherwise each item is decoded from
    disk."""

    def __init__(
        self,
        records: list[Record],
        targets: np.ndarray,
        transform,
        cache: bool = False,
        light: dict[int, LightVersion] | None = None,
        label: Callable[[float, float], np.ndarray] | None = None,
    ):
        import torch

        self.records, self.targets, self.transform = records, torch.from_numpy(targets), transform
        self.images = [self._decode(i) for i in range(len(records))] if cache else None
        self.light, self.label = light or {}, label

    def _decode(self, i: int):
        import torch

        image = load_rgb(self.records[i].path)
        return torch.from_numpy(image if image.flags.writeable else image.copy()).permute(2, 0, 1)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]):
        import torch

        i, seed = key if isinstance(key, tuple) else (key, None)
        image = self.images[i] if self.images is not None else self._decode(i)
        target, mos = self.targets[i], self.records[i].mos
        if i in self.light:  # a light version: distorted now, from the key's seed, and labelled by its damage
            version, mos, std = self.light[i].make(image.permute(1, 2, 0).numpy(), 0 if seed is None else seed)
            image = torch.from_numpy(version if version.flags.writeable else version.copy()).permute(2, 0, 1)
            target = torch.from_numpy(self.label(mos, std))
        if seed is None:
            x = self.transform(image)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = self.transform(image)
        unit = -1 if seed is None else seed  # the ranking term pairs items of one unit (same seed: same crop)
        return x, target, torch.tensor(mos, dtype=torch.float32), i, unit


class EpochSampler:
    """A DataLoader sampler yielding ``(index, seed)``: the order (shuffled or not) and the augmentation seeds are a
    function of the run's seed and the epoch only (Lightning calls ``set_epoch``), so a run resumed at epoch E sees
    exactly the batches the uninterrupted run saw, whatever the RNG state or the loader workers. torch's RandomSampler
    draws from the global RNG instead, which a resumed process cannot reproduce. A plain iterable (DataLoader needs
    no Sampler subclass), so this module does not import torch.

    Distributed (``world`` > 1): every process draws the same epoch order and takes every ``world``-th item from
    position ``rank``, so the processes share each epoch without overlap and an item keeps its augmentation seed
    whatever the number of processes. ``pad``: repeat items from the start of the order until every process has the
    same count, as torch's DistributedSampler does: DDP and FSDP need the same number of steps, and of forward passes,
    on every process (validation drops the repeats by index after gathering); without it the shards differ by at
    most one item and none is seen twice."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1, pad: bool = True):
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world), got rank {rank} of {world}")
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.rank, self.world, self.pad = rank, world, pad

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.pad:
            return -(-self.n // self.world)
        return len(range(self.rank, self.n, self.world))

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        items = list(zip(order.tolist(), rng.integers(0, 2**62, self.n).tolist(), strict=True))
        if self.pad and self.world > 1 and items:
            items += (items * self.world)[: len(self) * self.world - self.n]
        return iter(items[self.rank :: self.world])


# ---------------------------------------------------------------------------------------------- ranking anchors


def clean_anchors(
    records: list[Record], label_margin: float | None = None, top: float = math.inf
) -> tuple[list[Record], list[int | None]]:
    """The items of the ranking term: ``records`` followed by one clean record per reference image the dataset
    ships, and for each of ``records`` the index of its clean record (None: the dataset has no reference file for it,
    or the image has no distortion level, as camera photos have not).

    ``label_margin`` None: the clean records have no label (MOS nan), only their place above their versions. A
    number: they are labelled at the top of their scene's observed scale, the highest MOS among the reference's
    versions in ``records`` plus ``label_margin``, with that version's std, capped at ``top`` (the scale's).
    TID2013 publishes no score for its references; this is the label their place implies."""
    items, clean = list(records), {}
    anchors: list[int | None] = []
    best: dict[str, Record] = {}
    for r in records:
        if r.level > 0 and (r.ref not in best or r.mos > best[r.ref].mos):
            best[r.ref] = r
    for r in records:
        if r.level > 0 and r.reference is not None and r.ref not in clean and r.reference.is_file():
            clean[r.ref] = len(items)
            best_version = best[r.ref]
            mos, std = (
                (math.nan, math.nan)
                if label_margin is None
                else (min(top, best_version.mos + label_margin), best_version.mos_std)
            )
            items.append(
                Record(
                    path=r.reference,
                    mos=mos,
                    mos_std=std,
                    ref=r.ref,
                    kind=0,
                    level=0,
                    reference=None,
                    name=f"reference:{r.reference.name}",
                )
            )
        anchors.append(clean.get(r.ref) if r.level > 0 else None)
    return items, anchors


@dataclass(frozen=True)
class LightVersion:
    """How to make a light version of one scene's clean reference: distortion ``kind`` (``pynima.distortions``,
    TID2013's numbering) at a random strength up to ``strength`` (the type's level 1 in pynima's level table),
    labelled between the clean label and the scene's level 1 of that type in proportion to its damage: the share of
    level 1's mean squared error against the clean image that it has, capped at 1. Linear in MSE because, for small
    damage, what people notice grows with the energy of the change; the labels only need to keep clean above light
    above level 1 within one type, which any increasing map does."""

    kind: int
    strength: float
    level1_mse: float
    clean: tuple[float, float]  # the clean label (mos, std)
    level1: tuple[float, float]  # the scene's level-1 label of this type (mos, std)

    def make(self, image: np.ndarray, seed: int) -> tuple[np.ndarray, float, float]:
        """(the light version, its mos, its std) of ``image``, the clean reference as (H, W, 3) uint8; the same
        ``seed`` gives the same version."""
        from pynima.distortions import distort

        image = np.ascontiguousarray(image)
        rng = np.random.default_rng([seed, self.kind, LIGHT_STREAM])
        strength = float(rng.uniform(0.0, self.strength))
        version = distort(image, self.kind, strength=strength, seed=int(rng.integers(2**31)))
        share = min(1.0, mean_squared_error(image, version) / self.level1_mse)
        (c_mos, c_std), (m_mos, m_std) = self.clean, self.level1
        return version, c_mos - share * (c_mos - m_mos), c_std + share * (m_std - c_std)


LIGHT_STREAM = 7  # the random stream of light versions, apart from the crop's (the same key drives both)
# TID2013 types whose strength 0 is the clean image and whose damage grows steadily with strength: the ones light
# versions are made of (noise of every kind, impulse noise, blur, JPEG)
LIGHT_KINDS = (1, 2, 3, 4, 5, 6, 8, 10, 19)


def mean_squared_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two images of one shape, on 0-255."""
    return float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))


def light_versions(
    records: list[Record], items: list[Record], anchors: list[int | None]
) -> tuple[list[Record], dict[int, LightVersion], list[tuple[int, ...]]]:
    """Light versions of the clean references ``clean_anchors`` added: damage lighter than TID2013's level 1
    (noise of std 1-5, JPEG at quality 60-100), which no labelled image shows, labelled between the clean label
    and level 1 (``LightVersion``). Needs TID2013's type numbering (``LIGHT_KINDS``) and labelled clean items.

    Returns ``items`` followed by one item per (scene, type) with a level-1 image in ``records``; their
    ``LightVersion`` by item index; and per record, the light items it is paired with in a batch (its own type's if
    it is one of LIGHT_KINDS, else every light item of its scene)."""
    from pynima.distortions import level_strengths

    strengths = level_strengths()
    out, light = list(items), {}
    by_scene: dict[object, dict[int, int]] = {}
    for i, r in enumerate(records):
        clean = anchors[i]
        if r.level != 1 or r.kind not in LIGHT_KINDS or clean is None or not math.isfinite(items[clean].mos):
            continue
        mse = mean_squared_error(load_rgb(items[clean].path), load_rgb(r.path))
        if mse <= 0:
            continue
        reference = items[clean]
        light[len(out)] = LightVersion(
            r.kind, strengths[r.kind][0], mse, (reference.mos, reference.mos_std), (r.mos, r.mos_std)
        )
        by_scene.setdefault(r.ref, {})[r.kind] = len(out)
        out.append(replace(reference, kind=r.kind, name=f"light:{r.kind}:{reference.path.name}"))
    lights = []
    for r in records:
        scene = by_scene.get(r.ref, {})
        lights.append((scene[r.kind],) if r.kind in scene else tuple(scene.values()))
    return out, light, lights


class AnchorBatchSampler:
    """A DataLoader batch sampler for the ranking term: the batches of ``sampler`` (an ``EpochSampler``: the same
    images, order and crops as training without it), each followed by the clean reference of its first ``per_batch``
    images that have one, keyed with that image's seed, so the pair gets the same crop and flip and differs only by
    the distortion; with ``lights`` (per image, the light versions it may be paired with: ``light_versions``), a
    light version of the same scene too, keyed alike (``IQADataset`` gives the seed as the item's unit;
    ``pynima.train.ranking_loss`` pairs by it).
    Lightning calls ``sampler.set_epoch``; distributed, ``sampler`` is the process's shard."""

    def __init__(
        self,
        sampler: EpochSampler,
        batch_size: int,
        anchors: list[int | None],
        per_batch: int,
        lights: list[tuple[int, ...]] | None = None,
    ):
        self.sampler, self.batch_size, self.anchors, self.per_batch = sampler, batch_size, anchors, per_batch
        self.lights = lights

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        keys = list(self.sampler)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            chosen = [(i, seed) for i, seed in batch if self.anchors[i] is not None][: self.per_batch]
            paired = [(self.anchors[i], seed) for i, seed in chosen]
            if self.lights is not None:  # and a light version of the same scene, cropped alike
                paired += [(self.lights[i][seed % len(self.lights[i])], seed) for i, seed in chosen if self.lights[i]]
            yield batch + paired
