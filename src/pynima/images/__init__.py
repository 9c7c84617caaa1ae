"""The image decoding policy: which files are images, what is refused and why (one line naming the file), and how
every input (a file, bytes, a PIL image, an array) becomes one 8-bit sRGB RGB array.

``reading`` opens files and bytes (refusing raw, special files, decompression bombs, truncated data), ``pixels``
converts what was opened (ICC profiles to sRGB, 16-bit and float white levels, transparency on white), ``problems``
holds the shared refusals. The public names are re-exported here: ``from pynima.images import load_rgb``.
"""

from pynima.images.pixels import BACKGROUND, array_to_rgb, to_rgb
from pynima.images.problems import MIN_SIDE, display_name, reason
from pynima.images.reading import (
    IMAGE_SUFFIXES,
    RAW_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    check_image,
    decode_rgb,
    image_files,
    load_rgb,
    load_rgb_bytes,
    open_image,
)

__all__ = [
    "BACKGROUND",
    "IMAGE_SUFFIXES",
    "MIN_SIDE",
    "RAW_SUFFIXES",
    "UNSUPPORTED_SUFFIXES",
    "array_to_rgb",
    "check_image",
    "decode_rgb",
    "display_name",
    "image_files",
    "load_rgb",
    "load_rgb_bytes",
    "open_image",
    "reason",
    "to_rgb",
]
