"""Why scoring one image at a time could beat batches, measured in one run on one folder.

    python bench/batching.py [--images 200] [--repeats 3] [--model FILE.onnx]

For each batch size (1, 4, 16, 32) and each ONNX Runtime setting, the time ``Scorer.score_paths`` takes over the same
folder of JPEGs (512x384, quality 90), and the time of the network alone on already decoded batches of that size,
both per image and as a ratio to batch size 1 with ONNX Runtime's defaults, measured in this run. The settings:

* ``default``: ONNX Runtime's defaults, whose intra-op threads spin while they wait for work;
* ``no-spin``: ``session.intra_op.allow_spinning = 0``: the threads sleep instead, so the decoding threads that run
  beside the network (one batch ahead) get the cores.

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


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: ONNX Runtime plans memory for each new input shape
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
        rows = []
        for setting, spinning in (("default", True), ("no-spin", False)):
            s = scorer(model, spinning)
            x = normalize(crops, s.engine.mean, s.engine.std)
            for b in BATCHES:
                pipeline = timed(lambda s=s, b=b: list(s.score_paths(paths, batch_size=b)), args.repeats)
                network = timed(lambda s=s, b=b, x=x: [s.engine(x[i : i + b]) for i in range(0, 32, b)], args.repeats)
                rows.append((setting, b, pipeline / len(paths), network / 32))
    base_pipeline, base_network = rows[0][2], rows[0][3]
    print(f"{args.images} images, median of {args.repeats}; ratios to batch 1 with the defaults, this run\n")
    print("| ONNX Runtime | batch | score_paths ms/image | ratio | network alone ms/image | ratio |")
    print("|---|---|---|---|---|---|")
    for setting, b, pipeline, network in rows:
        print(
            f"| {setting} | {b} | {pipeline * 1e3:.2f} | {pipeline / base_pipeline:.2f} | {network * 1e3:.2f} | "
            f"{network / base_network:.2f} |"
        )


if __name__ == "__main__":
    main()
