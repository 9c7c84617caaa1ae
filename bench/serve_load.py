"""Load on ``pynima serve``: throughput and latency with dynamic batching against batch size 1, and against the
same scoring on LitServe (``bench/litserve_app.py``, with ``--litserve``), in one run.

Starts each server on a free port (``--max-batch 1``: every request alone; then the given batching; then LitServe
with the same batch limits), sends ``--requests`` single-image multipart requests from ``--clients`` concurrent
clients (httpx, threads), and prints images per second, p50/p95 latency and the ratios to batch size 1. Absolute
numbers depend on the machine; compare the ratios.

    python bench/serve_load.py [--image photo.jpg] [--clients 8] [--requests 200] [--max-batch 32] [--max-wait-ms 5]
                               [--litserve]
"""

from __future__ import annotations

import argparse
import io
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], ready: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, *command, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + ready, timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not become ready")


def load(url: str, image: bytes, clients: int, requests: int) -> dict:
    def one(_):
        t0 = time.perf_counter()
        r = client.post(url, files={"file": ("photo.jpg", image, "image/jpeg")}, timeout=60)
        r.raise_for_status()
        return time.perf_counter() - t0

    with httpx.Client(limits=httpx.Limits(max_connections=clients)) as client, ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))  # warm-up: connections and the first calls
        t0 = time.perf_counter()
        latencies = np.array(list(pool.map(one, range(requests))))
        wall = time.perf_counter() - t0
    return {"img_s": requests / wall, "p50_ms": 1000 * np.median(latencies),
            "p95_ms": 1000 * np.percentile(latencies, 95)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="a JPEG to send (default: scikit-image's astronaut at 512x384)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--litserve", action="store_true", help="also the same scoring on LitServe")
    args = parser.parse_args(argv)
    if args.image:
        image = open(args.image, "rb").read()
    else:
        from PIL import Image
        from skimage import data

        from pynima.synth import fit_reference

        buf = io.BytesIO()
        Image.fromarray(fit_reference(data.astronaut())).save(buf, format="JPEG", quality=90)
        image = buf.getvalue()
    serve = ["-m", "pynima.cli", "serve"]
    settings = {"pynima serve, batch size 1":
                    (serve + ["--max-batch", "1", "--max-wait-ms", "0"], "/readyz", "/v1/score"),
                f"pynima serve, batching ({args.max_batch} crops, {args.max_wait_ms:g} ms)":
                    (serve + ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)], "/readyz",
                     "/v1/score")}
    if args.litserve:
        app = str(Path(__file__).with_name("litserve_app.py"))
        settings[f"LitServe, batching ({args.max_batch}, {args.max_wait_ms:g} ms)"] = (
            [app, "--max-batch", str(args.max_batch), "--batch-timeout", str(args.max_wait_ms / 1000)], "/health",
            "/predict")
    rows = {}
    for name, (command, ready, path) in settings.items():
        proc, url = start(command, ready)
        try:
            rows[name] = load(url + path, image, args.clients, args.requests)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"{args.requests} requests of one 512x384 JPEG from {args.clients} concurrent clients")
    print(f"{'setting':48s} {'img/s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'x img/s':>8s}")
    base = next(iter(rows.values()))
    for name, r in rows.items():
        print(f"{name:48s} {r['img_s']:8.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['img_s'] / base['img_s']:8.2f}")
    batched = list(rows.values())[1]
    print(f"batching / batch size 1: throughput x{batched['img_s'] / base['img_s']:.2f}, "
          f"p50 latency x{batched['p50_ms'] / base['p50_ms']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
