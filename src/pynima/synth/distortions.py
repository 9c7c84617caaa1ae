"""The 24 distortion types of TID2013, as deterministic functions on uint8 RGB images.

``distort(image, kind, level, seed)`` takes an ``(H, W, 3)`` uint8 image, a TID2013 type 1-24 and a level 1-5 and
returns a new uint8 image of the same shape; ``distort(image, kind, strength=s)`` gives any intermediate severity, for
augmentation. Types are numbered and named as in TID2013 (Ponomarenko et al., "Image database TID2013: peculiarities,
results and perspectives", Signal Processing: Image Communication 30, 2015), so ``distort(img, 10, 3)`` is what
TID2013 calls ``iXX_10_3``.

Strength. Every type has one strength parameter that grows with the damage (noise std in 0-255 units, blur sigma in
pixels, 100 - JPEG quality, JPEG2000 compression ratio, fraction of corrupted bytes...; each function's docstring says
which). The random draws of one (seed, type) do not depend on the strength, so a stronger level is the same noise,
only stronger: severity is monotone by construction.

Levels. TID2008/TID2013 chose one set of parameters per type and level such that, for most types, the levels land
near fixed PSNR values; we use 33, 30, 27, 24 and 21 dB (``PSNR_TARGETS``: our reading of the design, TID2008's four
levels at about 30/27/24/21 dB plus one milder level; the search tool here could not retrieve the paper's text to
confirm the exact figures). Like TID2013, a level is one fixed strength for every image, so the PSNR of a level varies
with the content (a JPEG of a flat sky has a higher PSNR than one of foliage at the same quality). The table
``tid2013_levels.json`` holds those strengths: the median over Kodak images 01-19 (TID2013's own sources) of the
strength that meets each PSNR target, written by ``scripts/calibrate_levels.py``. An earlier version solved the
strength per image instead; bench/synth_fidelity.py showed that this makes PSNR agree with human scores far better
than it does on the real TID2013 (see docs/data.md), so it was dropped.

Exceptions, each following TID2013's own level design as its label file shows it:

* 15 (local block-wise distortions): TID2013's MOS *rises* with level (mean 3.30, 3.35, 3.47, 3.75, 4.16 over
  references 01-19), so level 1 here is the strongest (most blocks) and level 5 the mildest.
* 16 (mean shift) and 17 (contrast change) alternate direction: 17's MOS is 5.65, 6.49, 4.47, 6.27, 3.43, i.e.
  levels 2 and 4 *increase* contrast (which observers like) and 1, 3, 5 decrease it; the strengths are signed.
  The size of the change still grows with level, so an FR metric falls with level.
* 18 (colour saturation) uses a fixed desaturation table: full desaturation of a colourful photo stays above 21 dB, so
  PSNR targets are not reachable.

Codec types use real codecs (Pillow's libjpeg and OpenJPEG). Transmission errors: JPEG (12) corrupts bytes of the
entropy-coded data of a real JPEG stream with restart markers, decoded by libjpeg's error recovery; JPEG2000 (13) is an
emulation, because OpenJPEG refuses corrupted code-streams instead of concealing errors: the image is JPEG2000-coded,
then code-blocks of its 9/7 wavelet transform are replaced by wrong coefficients, which is what a corrupted code-block
does to a decoded image.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pynima.datasets.tid2013 import TYPE_NAMES

__all__ = [
    "CHROMA_NOISE_GAIN",
    "DISTORTIONS",
    "Distortion",
    "J2K_BLOCK",
    "J2K_ERROR_GAIN",
    "LEVELS",
    "LEVELS_FILE",
    "LEVEL_SIGNS",
    "LOCAL_BLOCK",
    "LOCAL_BLOCK_MAX",
    "NEPN_MAX_COVERAGE",
    "NEPN_PATCH",
    "NOISY_SOURCE_SIGMA",
    "PSNR_TARGETS",
    "Search",
    "additive_colour_noise",
    "additive_gaussian_noise",
    "chromatic_aberrations",
    "colour_quantization_with_dither",
    "colour_saturation_change",
    "comfort_noise",
    "contrast_change",
    "distort",
    "gaussian_blur",
    "high_frequency_noise",
    "image_denoising",
    "impulse_noise",
    "jpeg2000_compression",
    "jpeg2000_transmission_errors",
    "jpeg_compression",
    "jpeg_transmission_errors",
    "level_strengths",
    "local_blockwise_distortions",
    "lossy_compression_of_noisy_images",
    "masked_noise",
    "mean_shift",
    "multiplicative_gaussian_noise",
    "non_eccentricity_pattern_noise",
    "psnr",
    "quantization_noise",
    "sparse_sampling_and_reconstruction",
    "spatially_correlated_noise",
    "strength_for_psnr",
]

PSNR_TARGETS: tuple[float, ...] = (33.0, 30.0, 27.0, 24.0, 21.0)
LEVELS = (1, 2, 3, 4, 5)
LEVELS_FILE = Path(__file__).with_name("tid2013_levels.json")

_F = np.float32


class Search(NamedTuple):
    """Where scripts/calibrate_levels.py looks for a level's strength (strength grows with the damage)."""

    lo: float
    hi: float
    integer: bool = False
    log: bool = True


class Distortion(NamedTuple):
    """A TID2013 distortion type: its number and name, the function, and how its levels were calibrated."""

    number: int
    name: str
    fn: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    search: Search | None  # None: the level table is a design choice, not a PSNR calibration


# --------------------------------------------------------------------------------------------------- helpers


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (capped at 100 dB for identical images, to keep solvers finite)."""
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(reference, image):
        return 100.0
    return float(peak_signal_noise_ratio(reference, image, data_range=255))


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _white(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=_F)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / (x.std() + 1e-12)).astype(_F)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sig = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return gaussian_filter(x.astype(_F, copy=False), sig, mode="reflect")


def _luma(x: np.ndarray) -> np.ndarray:
    return x.astype(_F) @ np.array([0.299, 0.587, 0.114], _F)


def _encode(image: np.ndarray, fmt: str, **params) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_u8(image)).save(buf, fmt, **params)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _jpeg(image: np.ndarray, strength: float) -> np.ndarray:
    return _decode(_encode(image, "JPEG", quality=int(round(100 - strength))))


def _jpeg2000(image: np.ndarray, ratio: float) -> np.ndarray:
    return _decode(_encode(image, "JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True))


def _count(fraction: float, n: int) -> int:
    return min(n, max(1, round(fraction * n)))


# --------------------------------------------------------------------------------------------------- the 24 types


def additive_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """1: white Gaussian noise of std ``sigma``, independent in R, G and B."""
    return _u8(image + sigma * _white(rng, image.shape))


_YCC_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], _F)
CHROMA_NOISE_GAIN = 3.0  # type 2: chroma noise std / luma noise std


def additive_colour_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """2: Gaussian noise in YCbCr, std ``sigma`` in Y and CHROMA_NOISE_GAIN times that in Cb and Cr."""
    ycc = _white(rng, image.shape) * np.array([1.0, CHROMA_NOISE_GAIN, CHROMA_NOISE_GAIN], _F)
    return _u8(image + sigma * (ycc @ _YCC_TO_RGB.T))


def spatially_correlated_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """3: white noise low-passed by a Gaussian of 1 px, then scaled to std ``sigma``: grain a few pixels wide."""
    return _u8(image + sigma * _unit(_blur(_white(rng, image.shape), 1.0)))


def masked_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """4: noise of mean std ``sigma`` whose amplitude follows local activity (7x7 std of luminance): hidden in
    texture.
    """
    from scipy.ndimage import uniform_filter

    y = _luma(image)
    activity = np.sqrt(np.maximum(uniform_filter(y * y, 7) - uniform_filter(y, 7) ** 2, 0.0))
    weight = activity / (activity.mean() + 1e-6)
    return _u8(image + sigma * _white(rng, image.shape) * weight[..., None])


def high_frequency_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """5: white noise minus its Gaussian (1 px) low-pass, scaled to std ``sigma``: only the finest scales."""
    w = _white(rng, image.shape)
    return _u8(image + sigma * _unit(w - _blur(w, 1.0)))


def impulse_noise(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """6: salt and pepper: a ``fraction`` of the pixels set to 0 or 255 (per channel)."""
    hit = (rng.random(image.shape[:2], dtype=_F) < fraction)[..., None]
    values = rng.integers(0, 2, image.shape, dtype=np.uint8) * np.uint8(255)
    return np.where(hit, values, image)


def quantization_noise(image: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    """7: uniform quantization of each channel with the given ``step``."""
    return _u8((np.floor(image.astype(_F) / step) + 0.5) * step)


def gaussian_blur(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """8: Gaussian blur of std ``sigma`` px."""
    return _u8(_blur(image, sigma))


def image_denoising(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """9: what denoising leaves: Gaussian noise of std ``sigma`` added, then removed by wavelet BayesShrink
    (scikit-image, YCbCr).
    """
    from skimage.restoration import denoise_wavelet

    noisy = np.clip(image.astype(_F) / 255 + (sigma / 255) * _white(rng, image.shape), 0, 1)
    den = denoise_wavelet(
        noisy, sigma=sigma / 255, wavelet="db2", channel_axis=-1, convert2ycbcr=True, rescale_sigma=True
    )
    return _u8(den * 255)


def jpeg_compression(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """10: JPEG (Pillow/libjpeg, 4:2:0) at quality 100 - ``strength``."""
    return _jpeg(image, strength)


def jpeg2000_compression(image: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """11: JPEG2000 (Pillow/OpenJPEG, 9/7 wavelet) at compression ``ratio``."""
    return _jpeg2000(image, ratio)


def jpeg_transmission_errors(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """12: a quality-90 JPEG with a restart marker every 4 MCUs, a ``fraction`` of its entropy-coded bytes replaced
    at random. libjpeg conceals each error until the next restart marker: short runs of damaged blocks.
    """
    stream = _encode(image, "JPEG", quality=90, restart_marker_blocks=4)
    data = np.frombuffer(stream, np.uint8).copy()
    sos = stream.find(b"\xff\xda")
    start = sos + 2 + int.from_bytes(stream[sos + 2 : sos + 4], "big")
    idx = np.arange(start + 1, len(stream) - 2)
    # never touch a marker byte or the byte after one (stuffing / RST), and never write 0xFF
    idx = idx[(data[idx] != 0xFF) & (data[idx - 1] != 0xFF)]
    positions = rng.permutation(idx)
    values = rng.integers(0, 255, len(positions)).astype(np.uint8)
    k = _count(fraction, len(positions))
    data[positions[:k]] = values[:k]
    return _decode(data.tobytes())


J2K_BLOCK = 16
J2K_ERROR_GAIN = 3.0


def jpeg2000_transmission_errors(image: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """13 (emulated): a JPEG2000 image (ratio 5) in which a ``fraction`` of the 16x16 code-blocks of the detail
    bands of a 3-level bior4.4 (= 9/7) transform, one colour channel each, are replaced by wrong coefficients
    (Gaussian, J2K_ERROR_GAIN times the band's std): the ringing blotches a corrupted code-block leaves.
    """
    import pywt

    base = _jpeg2000(image, 5.0).astype(_F)
    coeffs = [
        c if i == 0 else tuple(c)
        for i, c in enumerate(pywt.wavedec2(base, "bior4.4", level=3, axes=(0, 1), mode="periodization"))
    ]
    blocks = [
        (i, d, np.s_[y : y + J2K_BLOCK, x : x + J2K_BLOCK, ch])
        for i in range(1, len(coeffs))
        for d, band in enumerate(coeffs[i])
        for y in range(0, band.shape[0], J2K_BLOCK)
        for x in range(0, band.shape[1], J2K_BLOCK)
        for ch in range(band.shape[2])
    ]
    order = rng.permutation(len(blocks))
    noise = _white(rng, (len(blocks), J2K_BLOCK, J2K_BLOCK))
    for j in order[: _count(fraction, len(blocks))]:
        i, d, sl = blocks[j]
        region = coeffs[i][d][sl]
        region[...] = J2K_ERROR_GAIN * coeffs[i][d].std() * noise[j][: region.shape[0], : region.shape[1]]
    out = pywt.waverec2(coeffs, "bior4.4", axes=(0, 1), mode="periodization")
    return _u8(out[: image.shape[0], : image.shape[1]])


NEPN_PATCH = 12
NEPN_MAX_COVERAGE = 8


def non_eccentricity_pattern_noise(image: np.ndarray, coverage: float, rng: np.random.Generator) -> np.ndarray:
    """14: 12x12 patches copied over from 3-10 px away, as many as cover ``coverage`` times the image area
    (overlaps counted; at most NEPN_MAX_COVERAGE): local displacements of the pattern.
    """
    h, w = image.shape[:2]
    n_max = NEPN_MAX_COVERAGE * h * w // NEPN_PATCH**2
    ys = rng.integers(10, h - NEPN_PATCH - 10, n_max)
    xs = rng.integers(10, w - NEPN_PATCH - 10, n_max)
    offsets = rng.integers(3, 11, (n_max, 2)) * rng.choice([-1, 1], (n_max, 2))
    out = image.copy()
    for y, x, (dy, dx) in list(zip(ys, xs, offsets, strict=True))[: _count(coverage / NEPN_MAX_COVERAGE, n_max)]:
        out[y : y + NEPN_PATCH, x : x + NEPN_PATCH] = image[y + dy : y + dy + NEPN_PATCH, x + dx : x + dx + NEPN_PATCH]
    return out


LOCAL_BLOCK = 32
LOCAL_BLOCK_MAX = 64


def local_blockwise_distortions(image: np.ndarray, count: float, rng: np.random.Generator) -> np.ndarray:
    """15: ``count`` 32x32 blocks (per 512x384 of image area) filled with a random flat colour."""
    h, w = image.shape[:2]
    ys = rng.integers(0, h - LOCAL_BLOCK, LOCAL_BLOCK_MAX)
    xs = rng.integers(0, w - LOCAL_BLOCK, LOCAL_BLOCK_MAX)
    colours = rng.integers(0, 256, (LOCAL_BLOCK_MAX, 3)).astype(np.uint8)
    n = min(LOCAL_BLOCK_MAX, max(1, round(count * h * w / (512 * 384))))
    out = image.copy()
    for y, x, c in zip(ys[:n], xs[:n], colours[:n], strict=True):
        out[y : y + LOCAL_BLOCK, x : x + LOCAL_BLOCK] = c
    return out


def mean_shift(image: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """16: ``shift`` (signed, 0-255 units) added to every channel."""
    return _u8(image.astype(_F) + shift)


def contrast_change(image: np.ndarray, log_gain: float, rng: np.random.Generator) -> np.ndarray:
    """17: contrast about the image mean scaled by exp(``log_gain``): < 0 lowers it, > 0 raises it."""
    x = image.astype(_F)
    m = x.mean()
    return _u8(m + math.exp(log_gain) * (x - m))


def colour_saturation_change(image: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """18: colours pulled toward the pixel's luminance by ``amount`` (0: unchanged, 1: greyscale)."""
    x = image.astype(_F)
    y = _luma(image)[..., None]
    return _u8(y + (1 - amount) * (x - y))


def multiplicative_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """19: x * (1 + ``sigma`` * n), n white Gaussian: noise proportional to intensity."""
    return _u8(image * (1 + sigma * _white(rng, image.shape)))


def comfort_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """20: detail below a Gaussian low-pass of ``sigma`` px removed and replaced by noise of the same band and
    power, as codecs with noise substitution do.
    """
    x = image.astype(_F)
    w = _white(rng, image.shape)
    low = _blur(x, sigma)
    return _u8(low + _unit(w - _blur(w, sigma)) * (x - low).std(axis=(0, 1)))


NOISY_SOURCE_SIGMA = 4.0


def lossy_compression_of_noisy_images(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """21: Gaussian noise of std NOISY_SOURCE_SIGMA (a noisy camera image), then JPEG at quality 100 - ``strength``."""
    return _jpeg(image + NOISY_SOURCE_SIGMA * _white(rng, image.shape), strength)


def colour_quantization_with_dither(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """22: a palette of 256 - ``strength`` colours (median cut) with Floyd-Steinberg dither."""
    from PIL import Image

    colours = max(2, 256 - int(round(strength)))
    q = Image.fromarray(image).quantize(
        colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
    )
    return np.asarray(q.convert("RGB"))


def chromatic_aberrations(image: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """23: red and blue planes moved ``shift`` px in opposite horizontal directions and blurred by shift/2 (lateral
    chromatic aberration).
    """
    from scipy.ndimage import shift as move

    out = image.astype(_F)
    for ch, sign in ((0, 1), (2, -1)):
        out[..., ch] = _blur(move(out[..., ch], (0, sign * shift), order=1, mode="nearest"), shift / 2)
    return _u8(out)


def sparse_sampling_and_reconstruction(image: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """24: one pixel in ``factor`` kept (at random), the others filled by normalised Gaussian interpolation whose
    width follows the sample spacing.
    """
    x = image.astype(_F)
    p = 1.0 / factor
    mask = (rng.random(image.shape[:2], dtype=_F) < p).astype(_F)
    sigma = 0.8 / math.sqrt(p)
    weight = _blur(mask, sigma)[..., None]
    recon = _blur(x * mask[..., None], sigma) / np.maximum(weight, 1e-6)
    return _u8(np.where(mask[..., None] > 0, x, recon))


_NOISE = Search(0.05, 300.0)
DISTORTIONS: dict[int, Distortion] = {
    d.number: d
    for d in (
        Distortion(1, TYPE_NAMES[1], additive_gaussian_noise, _NOISE),
        Distortion(2, TYPE_NAMES[2], additive_colour_noise, _NOISE),
        Distortion(3, TYPE_NAMES[3], spatially_correlated_noise, _NOISE),
        Distortion(4, TYPE_NAMES[4], masked_noise, _NOISE),
        Distortion(5, TYPE_NAMES[5], high_frequency_noise, _NOISE),
        Distortion(6, TYPE_NAMES[6], impulse_noise, Search(1e-5, 0.9)),
        Distortion(7, TYPE_NAMES[7], quantization_noise, Search(1.0, 200.0)),
        Distortion(8, TYPE_NAMES[8], gaussian_blur, Search(0.1, 30.0)),
        Distortion(9, TYPE_NAMES[9], image_denoising, Search(1.0, 200.0)),
        Distortion(10, TYPE_NAMES[10], jpeg_compression, Search(0, 99, integer=True, log=False)),
        Distortion(11, TYPE_NAMES[11], jpeg2000_compression, Search(1.5, 5000.0)),
        Distortion(12, TYPE_NAMES[12], jpeg_transmission_errors, Search(1e-5, 0.3)),
        Distortion(13, TYPE_NAMES[13], jpeg2000_transmission_errors, Search(1e-3, 1.0)),
        Distortion(14, TYPE_NAMES[14], non_eccentricity_pattern_noise, Search(1e-3, 8.0)),
        Distortion(15, TYPE_NAMES[15], local_blockwise_distortions, None),
        Distortion(16, TYPE_NAMES[16], mean_shift, Search(0.05, 255.0)),
        Distortion(17, TYPE_NAMES[17], contrast_change, Search(1e-3, 5.0)),
        Distortion(18, TYPE_NAMES[18], colour_saturation_change, None),
        Distortion(19, TYPE_NAMES[19], multiplicative_gaussian_noise, Search(1e-4, 5.0)),
        Distortion(20, TYPE_NAMES[20], comfort_noise, Search(0.2, 20.0)),
        Distortion(
            21,
            TYPE_NAMES[21],
            lossy_compression_of_noisy_images,
            Search(0, 99, integer=True, log=False),
        ),
        Distortion(
            22,
            TYPE_NAMES[22],
            colour_quantization_with_dither,
            Search(0, 254, integer=True, log=False),
        ),
        Distortion(23, TYPE_NAMES[23], chromatic_aberrations, Search(0.02, 40.0)),
        Distortion(24, TYPE_NAMES[24], sparse_sampling_and_reconstruction, Search(1.0001, 2000.0)),
    )
}

# Signs of the signed types (the level table stores magnitudes for these, scripts/calibrate_levels.py solves them).
LEVEL_SIGNS: dict[int, tuple[int, ...]] = {16: (+1, -1, +1, -1, +1), 17: (-1, +1, -1, +1, -1)}


@functools.cache
def level_strengths() -> dict[int, tuple[float, ...]]:
    """The strength of each (type, level), signed for types 16 and 17 (from ``tid2013_levels.json``)."""
    table = json.loads(LEVELS_FILE.read_text())["strengths"]
    return {int(k): tuple(s * LEVEL_SIGNS.get(int(k), (1,) * 5)[i] for i, s in enumerate(v)) for k, v in table.items()}


def _check(image: np.ndarray, kind: int) -> np.ndarray:
    if kind not in DISTORTIONS:
        raise ValueError(f"distortion type must be 1-24, got {kind}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if min(image.shape[:2]) < 64:
        raise ValueError(f"image too small for the TID2013 distortions: {image.shape[1]}x{image.shape[0]}")
    return image


def distort(
    image: np.ndarray, kind: int, level: int | None = None, *, strength: float | None = None, seed: int = 0
) -> np.ndarray:
    """Apply TID2013 distortion ``kind`` (1-24) at ``level`` (1-5), or at an explicit ``strength``.

    Deterministic: the same image, kind, strength and seed give the same bytes, and the random draws do not depend on
    the strength, so levels differ only in severity.
    """
    image = _check(image, kind)
    if (level is None) == (strength is None):
        raise ValueError("give exactly one of level and strength")
    if strength is None:
        if level not in LEVELS:
            raise ValueError(f"level must be 1-5, got {level}")
        strength = level_strengths()[kind][level - 1]
    out = DISTORTIONS[kind].fn(image, strength, np.random.default_rng([seed, kind]))
    if out.shape != image.shape or out.dtype != np.uint8:  # a contract of every distortion function, kept under -O
        raise RuntimeError(f"distortion {kind} returned {out.dtype} {out.shape} for uint8 {image.shape}")
    return out


def strength_for_psnr(
    image: np.ndarray, kind: int, target: float, sign: int = 1, seed: int = 0, tol: float = 0.1, max_evals: int = 12
) -> float:
    """The strength at which ``distort(image, kind, strength=sign * s)`` has PSNR closest to ``target`` dB.

    Searches the type's ``Search`` range, where PSNR falls as strength grows: Illinois regula falsi (in log space
    unless the range says otherwise: PSNR is close to linear in log-strength, so 3-5 renders usually suffice), or
    bisection for integer strengths. Written here because no library solver stops at "closest within a budget" on a
    function that is only roughly monotone, which is what calibrating a codec parameter needs.
    """
    image = _check(image, kind)
    spec = DISTORTIONS[kind].search
    if spec is None:
        raise ValueError(f"type {kind} has a fixed level table, not a PSNR calibration")
    seen: dict[float, float] = {}

    def f(s: float) -> float:
        if s not in seen:
            seen[s] = psnr(image, distort(image, kind, strength=sign * s, seed=seed)) - target
        return seen[s]

    to_s = math.exp if spec.log and not spec.integer else (lambda t: t)
    a, b = (math.log(spec.lo), math.log(spec.hi)) if spec.log and not spec.integer else (spec.lo, spec.hi)
    fa, fb = f(to_s(a)), f(to_s(b))
    # a target outside the range gives the nearest end
    for _ in range(max_evals - 2 if fa > 0 > fb else 0):
        if spec.integer:
            if b - a <= 1:
                break
            c = (a + b) // 2
            fc = f(c)
            a, fa, b, fb = (c, fc, b, fb) if fc > 0 else (a, fa, c, fc)
        else:
            c = (a * fb - b * fa) / (fb - fa)
            fc = f(to_s(c))
            if fc * fb < 0:
                a, fa = b, fb
            else:
                fa /= 2
            b, fb = c, fc
        if abs(fc) < tol:
            break
    return min(seen, key=lambda s: abs(seen[s]))
