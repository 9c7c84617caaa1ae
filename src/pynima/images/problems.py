"""The refusals the decoding policy shares: file names shown safely, one-line reasons, the header checks (pixel cap,
minimum size) made before any pixel is decoded.
"""

from __future__ import annotations

import logging
import os

from pynima.errors import DatasetError

__all__ = ["MIN_SIDE", "check_header", "display_name", "fail", "reason", "report_notes", "too_many_pixels", "too_small"]

log = logging.getLogger(__name__)


def display_name(name: object) -> str:
    r"""A file name (or any text) as one printable line: characters that are not printable (newline, tab, the ESC
    of terminal escape sequences, bidi controls) are shown as Python escapes (``\n``, ``\x1b``, ``\u202e``) and the
    bytes of a name that is not UTF-8 (surrogate-escaped by ``os.fsdecode``) as ``\xNN``; printable text, non-ASCII
    letters included, is kept. What every path pynima predict prints goes through.
    """
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode's surrogateescape holds it
        return f"\\x{code - 0xDC00:02x}"
    return ascii(c)[1:-1]  # \n, \t, \x1b, \u202e...


def fail(name: object, problem: str) -> DatasetError:
    """The error for a problem with one file, its message starting with the file's printable name."""
    return DatasetError(f"{display_name(name)}: {problem}")


def report_notes(name: object, found: list[str], notes: list[str] | None) -> None:
    """Warnings of one decoding: appended to the caller's ``notes``, or logged (one line each, naming the file)."""
    if notes is not None:
        notes.extend(found)
        return
    for note in found:
        log.warning("%s: %s", display_name(name), note)


MIN_SIDE = 32  # images whose shorter side is below this are refused: too little content for a 224 crop to judge


def too_many_pixels(name: object, pixels: str) -> DatasetError:
    """The error for an image over PIL's decompression-bomb limit, with how to raise it."""
    from PIL import Image

    return fail(
        name,
        f"{pixels}, over the limit of {Image.MAX_IMAGE_PIXELS:,} (PIL.Image.MAX_IMAGE_PIXELS, the "
        f"decompression-bomb guard); raise that limit to read it",
    )


def too_small(name: object, w: int, h: int) -> DatasetError:
    """The error for an image whose shorter side is under ``MIN_SIDE``."""
    return fail(name, f"{w}x{h} is too small to score (shorter side under the minimum of {MIN_SIDE} px)")


def reason(e: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def check_header(im, name: object) -> tuple[int, int]:
    """(width, height) of an opened image after the checks that need no pixels: pixel cap, minimum size, mode."""
    from PIL import Image

    w, h = im.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise too_many_pixels(name, f"{w}x{h} is {w * h:,} pixels")
    if min(w, h) < MIN_SIDE:
        raise too_small(name, w, h)
    if im.mode == "F":
        raise fail(
            name,
            "32-bit float image: no defined white level; save it as 8- or 16-bit, or pass "
            "np.asarray(image) with max_value",
        )
    return w, h
