"""How far a score moves when nothing a person would notice changes: the picture shifted by 0-16 pixels, or the same
pixels stored in another lossless format.

For each photo (the six of bench/photo_ladder.py, plus the images of --images DIR), windows of (H - 16) x (W - 16)
taken at offsets (d, 0) and (0, d) for d = 0..16 and (d, d) for d in 1, 2, 4, 8, 16 are scored in every crop mode;
a photo's movement is the largest minus the smallest mean score over its windows. Then the photo is written as PNG,
BMP, TIFF and lossless WebP and each file scored against the array (full window, same mode).

    python bench/shift_stability.py [MODEL] [--images DIR] [--modes centre grid full] [--trace]

Prints, per crop mode, the median and the largest movement over photos, the largest lossless difference, and the
seconds per window relative to the centre crop's, measured in the same run. ``--trace`` also prints each photo's
scores along the horizontal shifts d = 0..16: a zig-zag is aliasing (the network's strides), a steady drift is the
content that enters and leaves the window.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_ladder import photos  # noqa: E402

from pynima.scale import SHIFT as MAX_SHIFT  # noqa: E402  (one source with --shift-weight's)

OFFSETS = sorted(
    {(d, 0) for d in range(MAX_SHIFT + 1)} | {(0, d) for d in range(MAX_SHIFT + 1)} | {(d, d) for d in (1, 2, 4, 8, 16)}
)
LOSSLESS = {"png": {}, "bmp": {}, "tiff": {}, "webp": {"lossless": True}}


def windows(image: np.ndarray) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [image[y : y + h - MAX_SHIFT, x : x + w - MAX_SHIFT] for x, y in OFFSETS]


def lossless_differences(scorer, image: np.ndarray, folder: Path) -> float:
    """The largest |score of the file - score of the array| over the lossless formats."""
    from PIL import Image

    reference = scorer.score(image).mean
    worst = 0.0
    for fmt, options in LOSSLESS.items():
        path = folder / f"image.{fmt}"
        Image.fromarray(image).save(path, **options)
        worst = max(worst, abs(scorer.score(path).mean - reference))
    return worst


def main() -> None:
    import pynima
    from pynima.images import load_rgb
    from pynima.scoring.paths import iter_image_paths

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="a checkpoint or .onnx (default: the bundled model)")
    ap.add_argument("--images", metavar="DIR", help="more photos (e.g. ../shared/data/kodak)")
    ap.add_argument("--modes", nargs="+", default=["centre", "grid", "full"])
    ap.add_argument("--trace", action="store_true", help="each photo's scores along the horizontal shifts")
    args = ap.parse_args()
    images = dict(photos())
    if args.images:
        images |= {p.name: load_rgb(p) for p in iter_image_paths([args.images])}
    print(f"{len(images)} photos, {len(OFFSETS)} shifts of 0-{MAX_SHIFT} px each")
    seconds = {}
    print(f"{'crops':7s} {'median move':>11s} {'largest move':>12s} {'photo':>22s} {'lossless':>9s} {'time':>6s}")
    horizontal = [i for i, (x, y) in enumerate(OFFSETS) if y == 0]  # (0, 0), (1, 0), ... (16, 0), in order
    traces = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            scorer = pynima.load(args.model, crops=mode)
            scorer.score(next(iter(images.values())))  # warm-up
            moves, lossless, t0 = {}, 0.0, time.perf_counter()
            for name, image in images.items():
                scores = [scorer.score(w).mean for w in windows(image)]
                moves[name] = max(scores) - min(scores)
                traces.append(f"{mode:7s} {name[:22]:22s} " + " ".join(f"{scores[i]:.2f}" for i in horizontal))
            seconds[mode] = (time.perf_counter() - t0) / (len(images) * len(OFFSETS))
            for image in images.values():
                lossless = max(lossless, lossless_differences(scorer, image, Path(tmp)))
            worst = max(moves, key=moves.get)
            ratio = seconds[mode] / seconds.get("centre", seconds[mode])
            print(
                f"{mode:7s} {np.median(list(moves.values())):11.3f} {moves[worst]:12.3f} {worst:>22s} "
                f"{lossless:9.2e} {ratio:5.2f}x"
            )
    print("time: seconds per window relative to the first mode's" + (" (centre)" if "centre" in seconds else ""))
    if args.trace:
        print(f"scores at horizontal shifts 0..{MAX_SHIFT} px:")
        print("\n".join(traces))


if __name__ == "__main__":
    main()
