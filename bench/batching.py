"""Why scoring one image at a time could beat batches, measured in one run on one folder.

    python bench/batching.py [--images 200] [--repeats 3] [--model FILE.onnx]

For each batch size (1, 4, 16, 32) and each ONNX Runtime setting, the time ``Scorer.score_paths`` takes over the same
folder of JPEGs (512x384, quality 90), and the time of the network alone on already decoded batches of that size,
both per image and as a ratio to batch size 1 with ONNX Runtime's defaults, measured in this run. The settings:

* ``default``: ONNX Runtime's defaults, whose intra-op threads spin while they wait for work;
* ``no-spin``: ``session.intra_op.allow_spinning = 0``: the threads sleep instead, so the decoding threads that run
  beside the network (one batch ahead) get the cores;
* ``cap-4``: the defaults, with at most 4 crops per network call (``pynima.scoring.scorer.MAX_PIXELS_PER_PASS``
  lowered for the run): batches as large as asked, each run through the network 4 crops at a time.

The bundled model by default (weights do not change speed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import pynima.scoring.scorer as scorer_module
from pynima.scale import CROP
from pynima.scoring.engines import MAX_CROPS_PER_PASS
from pynima.scoring.models import bundled_model, load
from pynima.scoring.preprocess import normalize
from pynima.scoring.scorer import Scorer

BATCHES = (1, 4, 16, 32)


def make_folder(root: Path, n: int) -> list[Path]:
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        y, x = (i * 7) % max(1, photo.shape[0] - 384), (i * 13) % max(1, photo.shape[1] - 512)
        tile = np.zeros((384, 512, 3), np.uint8)
        part = photo[y : y + 384, x : x + 512]
        tile[: part.shape[0], : part.shape[1]] = part
        paths.append(root / f"{i:04d}.jpg")
        Image.fromarray(tile).save(paths[-1], quality=90)
    return paths


def scorer(model: Path, spinning: bool) -> Scorer:
    import onnxruntime as ort

    s = load(model, engine="onnx")
    if not spinning:
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        s.engine.session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return s


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    model = args.model or bundled_model()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        crops = np.stack([np.asarray(Image.open(p))[80:304, 144:368] for p in paths[:32]])
        scorers = {setting: scorer(model, spinning) for setting, spinning in (("default", True), ("no-spin", False))}
        scorers["cap-4"] = scorers["default"]
        cases = [(setting, b) for setting in scorers for b in BATCHES]
        x = normalize(crops, scorers["default"].engine.mean, scorers["default"].engine.std)

        def pipeline(setting: str, b: int) -> float:
            scorer_module.MAX_PIXELS_PER_PASS = (4 if setting == "cap-4" else MAX_CROPS_PER_PASS) * CROP * CROP
            try:
                return seconds(lambda: list(scorers[setting].score_paths(paths, batch_size=b))) / len(paths)
            finally:
                scorer_module.MAX_PIXELS_PER_PASS = MAX_CROPS_PER_PASS * CROP * CROP

        def network(setting: str, b: int) -> float:
            engine, step = scorers[setting].engine, min(b, 4) if setting == "cap-4" else b
            return seconds(lambda: [engine(x[i : i + step]) for i in range(0, 32, step)]) / 32

        for case in cases:  # warm-up: ONNX Runtime plans memory for each new input shape
            pipeline(*case), network(*case)
        # round robin: every repeat times every case once, so a drift of the machine's speed (another job, a
        # throttled core) spreads over all cases instead of landing on the ones timed last
        times = {case: ([], []) for case in cases}
        for _ in range(args.repeats):
            for case in cases:
                times[case][0].append(pipeline(*case))
                times[case][1].append(network(*case))
    rows = [(*case, statistics.median(p), statistics.median(n), min(p), max(p)) for case, (p, n) in times.items()]
    base_pipeline, base_network = rows[0][2], rows[0][3]
    print(f"{args.images} images, median of {args.repeats} round-robin repeats; ratios to batch 1 with the defaults")
    print("| ONNX Runtime | batch | score_paths ms/image | ratio | (min-max) | network alone ms/image | ratio |")
    print("|---|---|---|---|---|---|---|")
    for setting, b, p, n, lo, hi in rows:
        print(
            f"| {setting} | {b} | {p * 1e3:.2f} | {p / base_pipeline:.2f} | ({lo * 1e3:.2f}-{hi * 1e3:.2f}) | "
            f"{n * 1e3:.2f} | {n / base_network:.2f} |"
        )


if __name__ == "__main__":
    main()
