"""Write src/pynima/tid2013_levels.json: one strength per TID2013 (type, level).

For every PSNR-calibrated type, the strength that meets each level's PSNR target (pynima.synth.distortions.PSNR_TARGETS)
is solved on each calibration image, and the median over images is the level's strength: like TID2013, one parameter
set per level for all images. Types 15 and 18 have design tables (see pynima.synth.distortions).

    python scripts/calibrate_levels.py [--refs DIR]    # default: ../shared/data/kodak (TID2013's sources 01-19)
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pynima.images import load_rgb
from pynima.synth.build import fit_reference, reference_files
from pynima.synth.distortions import DISTORTIONS, LEVEL_SIGNS, LEVELS, LEVELS_FILE, PSNR_TARGETS, strength_for_psnr

DESIGN_TABLES = {
    15: [32, 20, 12, 7, 4],  # blocks per 512x384; TID2013's MOS rises with level for this type
    18: [0.35, 0.55, 0.7, 0.85, 1.0],  # desaturation; PSNR targets are out of reach
}
_IMAGES: list[np.ndarray] = []


def _init(images: list[np.ndarray]) -> None:
    _IMAGES[:] = images


def _solve(kind: int) -> tuple[int, list[list[float]]]:
    signs = LEVEL_SIGNS.get(kind, (1,) * 5)
    return kind, [
        [strength_for_psnr(img, kind, PSNR_TARGETS[lv - 1], sign=signs[lv - 1], seed=i + 1) for lv in LEVELS]
        for i, img in enumerate(_IMAGES)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--refs", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak")
    args = ap.parse_args()
    files = reference_files(args.refs)
    images = [fit_reference(load_rgb(f)) for f in files]
    t0 = time.perf_counter()
    kinds = [k for k, d in DISTORTIONS.items() if d.search is not None]
    strengths: dict[str, list[float]] = {str(k): [float(v) for v in t] for k, t in DESIGN_TABLES.items()}
    with ProcessPoolExecutor(initializer=_init, initargs=(images,)) as pool:
        for kind, per_image in pool.map(_solve, sorted(kinds, key=lambda k: k not in (9, 11, 13, 20, 22))):
            med = np.median(np.array(per_image), axis=0)
            if DISTORTIONS[kind].search.integer:
                med = np.round(med)
            strengths[str(kind)] = [float(f"{v:.5g}") for v in med]
            print(f"{kind:2d} {DISTORTIONS[kind].name[:40]:40s} " + " ".join(f"{v:9.4g}" for v in med), flush=True)
    LEVELS_FILE.write_text(
        json.dumps(
            {
                "about": "Strength of each TID2013 (type, level) for pynima.synth.distortions; written by "
                "scripts/calibrate_levels.py: the median over the calibration images of the strength meeting "
                "each level's PSNR target (magnitudes; types 16 and 17 alternate sign by level).",
                "psnr_targets": list(PSNR_TARGETS),
                "calibration_images": [f.name for f in files],
                "strengths": {k: strengths[k] for k in sorted(strengths, key=int)},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {LEVELS_FILE} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
