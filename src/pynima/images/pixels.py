"""From an opened image or an array to 8-bit sRGB RGB: ICC profiles, 16-bit and float white levels, transparency
composited on white, multi-page files.
"""

from __future__ import annotations

import io
import logging
import math

import numpy as np

from pynima.errors import DatasetError
from pynima.images.problems import (
    MIN_SIDE,
    check_header,
    fail,
    reason,
    report_notes,
    too_small,
)

__all__ = ["BACKGROUND", "array_to_rgb", "pil_to_rgb", "to_rgb"]

log = logging.getLogger(__name__)


BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white, as a viewer on a white page shows them


_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}  # grey with a white level of 65535 (I: as 16-bit PNG/PPM)


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
    colour by more than one 8-bit level (an sRGB profile).
    """
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
    except Exception as e:  # noqa: BLE001 - LittleCMS refuses a broken profile with OSError or its own types
        notes.append(f"its embedded ICC profile cannot be read ({reason(e)}); colours used as stored, unconverted")
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
        notes.append(f"its embedded ICC profile cannot be applied ({reason(e)}); colours used as stored, unconverted")
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
        notes.append(f"a TIFF whose later pages cannot be read ({reason(e)}); only the first page is scored")
        return
    if pages > 1:
        notes.append(f"multi-page TIFF ({pages} pages); only the first page is scored")


def pil_to_rgb(im, name: object, max_value: float | None = None, notes: list[str] | None = None) -> np.ndarray:
    """The decoding policy for an opened PIL image (a file or the caller's): see load_rgb. Warnings (the problem,
    without the name) are appended to ``notes``.
    """
    from PIL import Image, ImageOps

    notes = [] if notes is None else notes
    check_header(im, name)
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
        raise fail(name, f"max_value applies to 16-bit and float images, not to mode {im.mode}")
    if icc:
        im = _to_srgb(im, icc, notes)
    if im.mode == "RGB" and not im.has_transparency_data:
        return np.asarray(im)
    if im.has_transparency_data:
        return np.asarray(_composite(im))
    try:
        return np.asarray(im.convert("RGB"))
    except ValueError:
        raise fail(name, f"unsupported image mode {im.mode}") from None


def _white_level(a: np.ndarray, max_value: float | None, name: object) -> float:
    if max_value is not None:
        try:
            white = float(max_value)
        except (TypeError, ValueError):
            white = math.nan
        if not (math.isfinite(white) and white > 0):
            raise fail(name, f"max_value must be a positive finite number, got {max_value!r}")
        return white
    if a.dtype == np.uint8:
        return 255.0
    if a.dtype == np.uint16:
        return 65535.0
    if np.issubdtype(a.dtype, np.floating):
        raise fail(
            name,
            f"{a.dtype} array: pass max_value, its white level (max_value=1.0 for values in [0, 1], "
            f"255.0 for [0, 255])",
        )
    raise fail(name, f"{a.dtype} array: pass max_value, its white level (e.g. 4095 for 12-bit data)")


def _check_shape(a: np.ndarray, name: object) -> None:
    """A one-line DatasetError for an array that is not an image of at least MIN_SIDE pixels a side, (H, W[, C])."""
    if a.size == 0:
        raise fail(name, f"empty array (shape {a.shape})")
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4) and min(a.shape[1:]) > 4:
        raise fail(name, f"shape {a.shape} looks channels-first; pass a.transpose(1, 2, 0) for (H, W, C)")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise fail(name, f"shape {a.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise too_small(name, w, h)


def array_to_rgb(a: np.ndarray, max_value: float | None = None, name: object = "image array") -> np.ndarray:
    """An image array as (H, W, 3) uint8, or a one-line DatasetError; see to_rgb for the accepted arrays."""
    _check_shape(a, name)
    h, w = a.shape[:2]
    if a.dtype == np.bool_:
        if max_value not in (None, 1):
            raise fail(name, "a boolean array is bilevel (False black, True white); max_value does not apply")
        a, max_value = a.astype(np.uint8) * np.uint8(255), None
    elif not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise fail(
            name,
            f"unsupported dtype {a.dtype}: expected uint8, uint16, another integer type or a float type with max_value",
        )
    white = _white_level(a, max_value, name)
    if a.dtype != np.uint8 or white != 255:
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise fail(name, "contains NaN or infinite values")
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > white:
            raise fail(name, f"values from {lo:g} to {hi:g}, outside [0, {white:g}] (max_value {white:g})")
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
                raise fail(name, "32-bit float image: pass max_value, its white level (e.g. max_value=1.0)")
            return array_to_rgb(np.asarray(image), max_value, name=name)
        found: list[str] = []
        try:
            rgb = pil_to_rgb(image, name, max_value, found)
        except DatasetError:
            raise
        except Exception as e:  # noqa: BLE001 - a lazily loaded PIL image can still fail to decode
            raise fail(name, f"cannot decode image ({reason(e)})") from None
        report_notes(name, found, notes)
        return rgb
    if not isinstance(image, np.ndarray):
        raise fail("image array", f"expected a path, a NumPy array or a PIL image, got {type(image).__name__}")
    return array_to_rgb(image, max_value)
