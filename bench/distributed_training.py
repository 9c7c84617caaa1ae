"""Training throughput with 1 and N processes: ``pynima train --devices N`` on the same data, in one run.

    python bench/distributed_training.py DATA [--devices 1 2] [--accelerator cpu|gpu] [--epochs 1] [--batch-size 16]

Each process count trains the same config (no test part, no ONNX export) from ImageNet weights in a fresh folder
under --work. Prints, per count: the training seconds ``pynima train`` records in train.json (loop only: start-up and
the test evaluation are outside it), training images per second (training images x epochs / seconds, so validation
passes count as overhead), the effective batch, the best validation SRCC, and the throughput ratio to the first
count. On a GPU machine, ``--devices 1 2 4 8`` measures DDP scaling; on a CPU, N processes share the same cores (each
gets cores / N threads), so the ratio shows the cost of the engine, not a speed-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def train_once(data: str, out: Path, devices: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "pynima.cli",
        "train",
        data,
        "--out",
        str(out),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--devices",
        str(devices),
        "--accelerator",
        args.accelerator,
        "--ratios",
        "0.85",
        "0.15",
        "0",
        "--no-onnx",
        "--quiet",
        "--seed",
        "0",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"pynima train --devices {devices} failed:\n{r.stderr[-2000:]}")
    info = json.loads((out / "train.json").read_text())
    n_train = len(json.loads((out / "split.json").read_text())["train"])
    with open(out / "metrics.csv") as f:
        srcc = [float(row["val_srcc"]) for row in csv.DictReader(f) if row.get("val_srcc")]
    return info | {
        "images_per_s": n_train * info["epochs"] / info["seconds"],
        "n_train": n_train,
        "best_val_srcc": max(srcc) if srcc else float("nan"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="a dataset pynima train reads (e.g. the output of pynima synth)")
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2], help="process counts to compare (first: base)")
    p.add_argument("--accelerator", default="cpu", help="cpu or gpu (default cpu)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16, help="per process (default 16)")
    p.add_argument("--work", help="folder for the runs (default: a temporary one, removed)")
    args = p.parse_args()

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pynima-ddp-"))
    rows = []
    try:
        for n in args.devices:
            out = work / f"devices-{n}"
            if out.exists():
                shutil.rmtree(out)
            rows.append((n, train_once(args.data, out, n, args)))
            print(f"devices {n}: {rows[-1][1]['seconds']:.1f} s", file=sys.stderr, flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    base = rows[0][1]["images_per_s"]
    print(
        f"{args.accelerator}, {args.epochs} epoch(s) on {rows[0][1]['n_train']} training images, batch "
        f"{args.batch_size} per process"
    )
    print(
        f"{'processes':>9} {'device':>8} {'eff. batch':>10} {'train s':>8} {'images/s':>9} {'ratio':>6} {'val SRCC':>8}"
    )
    for n, r in rows:
        print(
            f"{n:>9} {r['device']:>8} {r['effective_batch_size']:>10} {r['seconds']:>8.1f} "
            f"{r['images_per_s']:>9.2f} {r['images_per_s'] / base:>6.2f} {r['best_val_srcc']:>8.4f}"
        )


if __name__ == "__main__":
    main()
