"""Versions of one photo, in the order a person ranks them: does a model score the clean photo first?

Six colour photographs bundled with scikit-image (no download), each at its own size, and versions of each:
Gaussian noise of sigma 5, 15 and 30 (on 0-255, seeded), JPEG at quality 95, 60, 30 and 10 (Pillow, 4:2:0), and
Gaussian blur of sigma 1, 2 and 4. Prints the score of every version and whether each ladder is in order:

    clean > noise 5 > noise 15 > noise 30
    lossless > JPEG 95 > JPEG 60 > JPEG 30 > JPEG 10
    clean > blur 1 > blur 2 > blur 4

    python bench/photo_ladder.py [MODEL] [--crops centre|grid|full]     # MODEL: default the bundled one

The bundled model's counts are in docs/model-card.md; the target is 5 of 6 photos in order on the noise and JPEG
ladders, and a test asserts them once the bundled model reaches it.
"""

from __future__ import annotations

import argparse
import io
from itertools import pairwise

import numpy as np

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "immunohistochemistry")
NOISE = (5, 15, 30)
JPEG = (95, 60, 30, 10)
BLUR = (1, 2, 4)


def photos() -> dict[str, np.ndarray]:
    """The six photos, (H, W, 3) uint8, as scikit-image ships them."""
    from skimage import data

    out = {}
    for name in PHOTOS:
        image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        out[name] = np.ascontiguousarray(image[..., :3])
    return out


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def noise(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).round().astype(np.uint8)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma)))


def ladders(image: np.ndarray) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per ladder, its versions best first (the clean photo at the top of each)."""
    return {
        "noise": [("clean", image)] + [(f"sigma {s}", noise(image, s)) for s in NOISE],
        "jpeg": [("lossless", image)] + [(f"q{q}", jpeg(image, q)) for q in JPEG],
        "blur": [("clean", image)] + [(f"sigma {s}", blur(image, s)) for s in BLUR],
    }


def in_order(scores: list[float]) -> bool:
    """Strictly falling, best version first."""
    return all(a > b for a, b in pairwise(scores))


def score_ladders(scorer, images: dict[str, np.ndarray]) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """photo -> ladder -> [(version, mean score)], best version first."""
    return {
        name: {
            ladder: [(label, scorer.score(x).mean) for label, x in versions]
            for ladder, versions in ladders(image).items()
        }
        for name, image in images.items()
    }


def anchors(result: dict[str, dict[str, list[tuple[str, float]]]]) -> str:
    """One line of what typical versions of these photos score (their range over the photos), for a model's metadata
    (``pynima_anchors``, shown by pynima serve's page): the clean photo, the lightest and heaviest JPEG, blur and
    noise.
    """

    def spread(ladder: str, version: str) -> str:
        values = [dict(table[ladder])[version] for table in result.values()]
        return f"{min(values):.1f}-{max(values):.1f}"

    return (
        f"On {len(result)} scikit-image photos: clean {spread('noise', 'clean')}, JPEG quality 95 "
        f"{spread('jpeg', 'q95')} and 10 {spread('jpeg', 'q10')}, blur sigma 1 {spread('blur', 'sigma 1')} and 4 "
        f"{spread('blur', 'sigma 4')}, noise sigma 5 {spread('noise', 'sigma 5')} and 30 {spread('noise', 'sigma 30')}."
    )


def main() -> None:
    import pynima

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="a checkpoint or .onnx (default: the bundled model)")
    ap.add_argument("--crops", default=None, help="centre, grid or full (default: pynima's default)")
    ap.add_argument("--anchors", action="store_true", help="print only the anchors line (what typical versions score)")
    args = ap.parse_args()
    scorer = pynima.load(args.model, crops=args.crops)
    result = score_ladders(scorer, photos())
    if args.anchors:
        print(anchors(result))
        return
    ordered = {ladder: 0 for ladder in ("noise", "jpeg", "blur")}
    for name, table in result.items():
        for ladder, versions in table.items():
            ok = in_order([s for _, s in versions])
            ordered[ladder] += ok
            print(
                f"{name:22s} {ladder:5s} {'in order' if ok else 'OUT OF ORDER':12s} "
                + "  ".join(f"{label} {s:.2f}" for label, s in versions)
            )
    print(
        "in order: "
        + ", ".join(f"{ladder} {n} of {len(result)}" for ladder, n in ordered.items())
        + f" (crops {scorer.crops})"
    )


if __name__ == "__main__":
    main()
