"""Scoring on Ray Data (``pynima predict --ray``) against ``pynima predict`` on the same folder, in one run.

    python bench/ray_scoring.py [--images 200] [--folder DIR] [--configs 1x1 2x1 1x2] [--repeats 3]
                                [--listing-files 20000]

* baseline: ``pynima.load().score_paths`` over the folder (what ``pynima predict`` does: the bundled ONNX model,
  decoding in a thread pool, every core), after a warm-up batch;
* Ray: a local instance with every core (``ray.init(num_cpus=os.cpu_count())``), then
  ``pynima.scoring.cluster.score_dataset`` run into a Parquet file by ``pynima.scoring.cluster.write_parquet``, once per
  configuration ``AxC`` (A actors of C CPUs each). Each run starts its actors afresh, so it is timed on the folder and
  on one image: the difference is the rate once the actors are up (what a long job sees), the one-image time the fixed
  cost of a run (actors, model, scheduling);
* the driver's listing rate (``pynima.scoring.cluster`` lists files on the driver before anything runs), on a folder of
  ``--listing-files`` empty .jpg files, and the Parquet bytes per row.

Without --folder, the images are ``--images`` JPEGs of 512x384 (TID2013's size, quality 90), windows of the photos
``pynima synth`` embeds. Each time is the median over ``--repeats``. Absolute numbers depend on the machine; compare
the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import pynima
from pynima.scoring.paths import iter_image_paths

SIZE = (512, 384)


def make_jpegs(folder: Path, n: int, seed: int = 0) -> None:
    """``n`` JPEGs of 512x384, random windows of the photos ``pynima synth`` embeds."""
    from PIL import Image

    from pynima.images import load_rgb
    from pynima.synth.build import fit_reference, reference_files

    photos = [fit_reference(load_rgb(f), (640, 480)) for f in reference_files(None)]
    rng = np.random.default_rng(seed)
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - SIZE[1] + 1), rng.integers(0, p.shape[1] - SIZE[0] + 1)
        Image.fromarray(np.ascontiguousarray(p[y : y + SIZE[1], x : x + SIZE[0]])).save(
            folder / f"img{i:05d}.jpg", quality=90
        )


def baseline(paths: list[Path], batch: int, repeats: int) -> float:
    """Seconds for pynima predict's scoring of ``paths`` (median), the model loaded and warmed up."""
    scorer = pynima.load()
    list(scorer.score_paths(paths[:batch], batch_size=batch))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _, _, error in scorer.score_paths(paths, batch_size=batch):
            assert error is None, error
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ray_run(source: Path | list[Path], out: Path, actors: int, cpus: int, batch: int, repeats: int) -> float:
    """Seconds for one pynima.scoring.cluster run into a Parquet file (median): listing, actors, scoring, writing."""
    from pynima.scoring.cluster import score_dataset, write_parquet

    times = []
    for _ in range(repeats):
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        rows, failed = write_parquet(score_dataset(source, batch_size=batch, concurrency=actors, num_cpus=cpus), out)
        times.append(time.perf_counter() - t0)
        assert failed == 0, f"{failed} of {rows} rows failed"
    return statistics.median(times)


def listing_rate(n: int) -> float:
    """Files per second the driver lists (pynima.scoring.cluster's listing of a local folder of ``n`` empty .jpg
    files).
    """
    from pynima.scoring.cluster import list_sources

    with tempfile.TemporaryDirectory(prefix="pynima-listing-") as tmp:
        for i in range(n):
            sub = Path(tmp) / f"d{i // 1000:03d}"
            sub.mkdir(exist_ok=True)
            (sub / f"f{i:06d}.jpg").touch()
        t0 = time.perf_counter()
        table, _ = list_sources([tmp], None)
        seconds = time.perf_counter() - t0
    assert table.num_rows == n
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=200, help="JPEGs to make when no --folder is given (default 200)")
    ap.add_argument("--folder", type=Path, help="score these images instead (every file must score)")
    ap.add_argument(
        "--configs",
        nargs="+",
        default=["1x1", "2x1", "1x2"],
        metavar="AxC",
        help="Ray configurations: A actors of C CPUs each (default 1x1 2x1 1x2)",
    )
    ap.add_argument("--batch", type=int, default=32, help="images per batch, both sides (default 32)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--listing-files", type=int, default=20000, help="files for the listing rate (0: skip)")
    args = ap.parse_args()

    import ray

    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="pynima-ray-bench-"))
    folder = args.folder
    if folder is None:
        folder = tmp / "images"
        folder.mkdir()
        make_jpegs(folder, args.images)
    paths = list(iter_image_paths([folder]))
    print(f"{len(paths)} images in {folder}; {cores} cores; Ray {ray.__version__}; batch {args.batch}")

    base = baseline(paths, args.batch, args.repeats)
    base_rate = len(paths) / base
    print(f"pynima predict (score_paths, {cores} cores): {base_rate:7.1f} images/s ({base_rate / cores:.1f} per core)")

    t0 = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
    print(f"ray.init (local instance): {time.perf_counter() - t0:.1f} s")
    ray.data.DataContext.get_current().enable_progress_bars = False
    out = tmp / "scores.parquet"
    print(
        "| Ray AxC | cores | run, folder (s) | run, 1 image (s) | end to end (images/s) | once up (images/s) "
        "| per core | x pynima predict (end to end / once up) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for config in args.configs:
            actors, cpus = (int(v) for v in config.split("x"))
            whole = ray_run(folder, out, actors, cpus, args.batch, args.repeats)
            size = out.stat().st_size
            one = ray_run([paths[0]], out, actors, cpus, args.batch, args.repeats)
            up = (len(paths) - 1) / (whole - one) if whole > one else float("nan")
            used = actors * cpus
            print(
                f"| {config} | {used} | {whole:.1f} | {one:.1f} | {len(paths) / whole:.1f} | {up:.1f} | "
                f"{up / used:.1f} | {len(paths) / whole / base_rate:.2f} / {up / base_rate:.2f} |"
            )
        print(f"Parquet output: {size / len(paths):.0f} bytes per row ({size:,} bytes for {len(paths)} rows)")
    finally:
        ray.shutdown()
    if args.listing_files:
        print(
            f"driver listing (local folder, {args.listing_files} files): "
            f"{listing_rate(args.listing_files):,.0f} files/s"
        )


if __name__ == "__main__":
    main()
