"""What a candidate default costs to score with, against the model it would replace, measured in one run.

    python bench/model_speed.py BASELINE.onnx CANDIDATE.onnx [...] [--images 200] [--repeats 5] [--modes centre full]

``Scorer.score_paths`` over the same folder of JPEGs (512x384, quality 90; bench/batching.py's), every model in every
crop mode, round robin so that a drift of the machine's speed spreads over all cases. Prints, per case, the median
milliseconds per image and the ratio to the first model in the same mode (issue 22's bar: within 1.5x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batching import make_folder  # noqa: E402

from pynima.scoring.models import load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="ONNX files; the first is the baseline")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", nargs="+", default=["centre", "full"])
    args = ap.parse_args()
    # by position, so that the same file given twice (a noise floor) is two cases
    cases = [(i, mode) for mode in args.modes for i in range(len(args.models))]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        scorers = {(i, mode): load(args.models[i], engine="onnx", crops=mode) for i, mode in cases}
        for case in cases:  # warm-up: ONNX Runtime plans memory for each new input shape
            list(scorers[case].score_paths(paths[:8]))
        times: dict[tuple[int, str], list[float]] = {case: [] for case in cases}
        for _ in range(args.repeats):
            for case in cases:
                t0 = time.perf_counter()
                list(scorers[case].score_paths(paths))
                times[case].append((time.perf_counter() - t0) / len(paths))
    print(f"{args.images} images, median of {args.repeats} round-robin repeats; ratio to {args.models[0].name}")
    print("| model | crops | ms/image | ratio | (min-max) |")
    print("|---|---|---|---|---|")
    for i, mode in cases:
        t, median, base = times[i, mode], statistics.median(times[i, mode]), statistics.median(times[0, mode])
        print(
            f"| {args.models[i].name} | {mode} | {median * 1e3:.2f} | {median / base:.2f} | "
            f"({min(t) * 1e3:.2f}-{max(t) * 1e3:.2f}) |"
        )


if __name__ == "__main__":
    main()
