"""Load on ``pynima serve`` (loopback only, bounded in count and time), in one run.

* the offline ceiling: the same images scored in-process with ``Scorer.score_paths`` (what ``pynima predict`` does),
  on the same engine;
* ``--requests`` single-image multipart requests at each concurrency of ``--concurrency``, against the server with
  batch size 1 and with dynamic batching (and, with ``--litserve``, the same scoring on LitServe,
  ``bench/litserve_app.py``): throughput, p50/p95/p99 latency, errors, throughput as a share of the ceiling;
* with ``--soak SECONDS``: the batching server at moderate load (4 clients) for that long, its resident memory
  (VmRSS) after warm-up and at the end, and the error count.

Absolute numbers depend on the machine; compare the ratios measured in the same run.

    python bench/serve_load.py [--image photo.jpg] [--requests 200] [--concurrency 1 8 32] [--litserve]
                               [--soak 600]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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
    # a process group of its own, so that stop() ends every process the server starts (LitServe's outlive it)
    proc = subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + ready, timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit("the server did not become ready")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server (a graceful shutdown), then SIGKILL to whatever of its process group is left."""
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(url: str, image: bytes, clients: int, requests: int | None = None, seconds: float | None = None) -> dict:
    """``requests`` requests (or as many as fit in ``seconds``) from ``clients`` concurrent clients."""
    errors = 0
    deadline = time.perf_counter() + seconds if seconds else None

    def one(_):
        nonlocal errors
        t0 = time.perf_counter()
        try:
            ok = client.post(url, files={"file": ("photo.jpg", image, "image/jpeg")}, timeout=60).status_code == 200
        except httpx.HTTPError:
            ok = False
        errors += not ok
        return time.perf_counter() - t0

    def until_deadline(_):
        times = []
        while time.perf_counter() < deadline:
            times.append(one(None))
        return times

    with httpx.Client(limits=httpx.Limits(max_connections=clients)) as client, ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients)))  # warm-up: connections and the first calls
        errors = 0
        t0 = time.perf_counter()
        if deadline:
            latencies = np.array([t for times in pool.map(until_deadline, range(clients)) for t in times])
        else:
            latencies = np.array(list(pool.map(one, range(requests))))
        wall = time.perf_counter() - t0
    return {
        "img_s": len(latencies) / wall,
        "p50_ms": 1000 * np.median(latencies),
        "p95_ms": 1000 * np.percentile(latencies, 95),
        "p99_ms": 1000 * np.percentile(latencies, 99),
        "errors": errors,
        "n": len(latencies),
    }


def offline(image: bytes, n: int) -> float:
    """Images per second of in-process scoring (``pynima predict``'s path: decode, crop, batched network calls)."""
    import pynima

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "photo.jpg"
        path.write_bytes(image)
        scorer = pynima.load()
        list(scorer.score_paths([path] * 8, batch_size=32))  # warm-up
        t0 = time.perf_counter()
        scored = sum(1 for _, s, _ in scorer.score_paths([path] * n, batch_size=32) if s)
        return scored / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="a JPEG to send (default: scikit-image's astronaut at 512x384)")
    parser.add_argument("--requests", type=int, default=200, help="requests per setting and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--litserve", action="store_true", help="also the same scoring on LitServe")
    parser.add_argument("--soak", type=float, default=0, metavar="SECONDS", help="a soak of this length (0: none)")
    args = parser.parse_args(argv)
    if args.image:
        image = Path(args.image).read_bytes()
    else:
        from PIL import Image
        from skimage import data

        from pynima.synth.build import fit_reference

        buf = io.BytesIO()
        Image.fromarray(fit_reference(data.astronaut())).save(buf, format="JPEG", quality=90)
        image = buf.getvalue()

    ceiling = offline(image, args.requests)
    serve = ["-m", "pynima.cli", "serve"]
    batching = ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]
    settings = {
        "pynima serve, batch size 1": (serve + ["--max-batch", "1", "--max-wait-ms", "0"], "/readyz", "/v1/score"),
        f"pynima serve, batching ({args.max_batch} crops, {args.max_wait_ms:g} ms)": (
            serve + batching,
            "/readyz",
            "/v1/score",
        ),
    }
    if args.litserve:
        app = str(Path(__file__).with_name("litserve_app.py"))
        settings[f"LitServe, batching ({args.max_batch}, {args.max_wait_ms:g} ms)"] = (
            [app, "--max-batch", str(args.max_batch), "--batch-timeout", str(args.max_wait_ms / 1000)],
            "/health",
            "/predict",
        )
    rows = []
    for name, (command, ready, path) in settings.items():
        proc, url = start(command, ready)
        try:
            for c in args.concurrency:
                rows.append((name, c, load(url + path, image, c, args.requests)))
        finally:
            stop(proc)

    print(
        f"one 512x384 JPEG ({len(image):,} bytes); offline ceiling (in-process score_paths, batch 32): "
        f"{ceiling:.1f} img/s"
    )
    print(
        f"{'setting':46s} {'C':>3s} {'img/s':>7s} {'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'errors':>6s} "
        f"{'of offline':>10s}"
    )
    for name, c, r in rows:
        print(
            f"{name:46s} {c:3d} {r['img_s']:7.1f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} {r['p99_ms']:7.1f} "
            f"{r['errors']:6d} {r['img_s'] / ceiling:9.0%}"
        )
    by = {(name, c): r for name, c, r in rows}
    names = list(settings)
    for c in args.concurrency:
        base, batched = by[(names[0], c)], by[(names[1], c)]
        print(
            f"C={c}: batching / batch size 1: throughput x{batched['img_s'] / base['img_s']:.2f}, "
            f"p50 latency x{batched['p50_ms'] / base['p50_ms']:.2f}"
        )

    if args.soak:
        proc, url = start(serve + batching, "/readyz")
        try:
            load(url + "/v1/score", image, 4, requests=40)  # warm-up before the first memory reading
            before, samples, done = rss_mb(proc.pid), [], threading.Event()

            def sample():  # RSS every tenth of the soak, to tell a plateau from steady growth
                while not done.wait(args.soak / 10):
                    samples.append(rss_mb(proc.pid))

            sampler = threading.Thread(target=sample)
            sampler.start()
            r = load(url + "/v1/score", image, 4, seconds=args.soak)
            done.set()
            sampler.join()
            after = rss_mb(proc.pid)
        finally:
            stop(proc)
        print(
            f"soak: {args.soak:g} s at 4 clients: {r['n']} requests, {r['img_s']:.1f} img/s, "
            f"p99 {r['p99_ms']:.1f} ms, {r['errors']} errors; server RSS {before:.0f} MiB after warm-up, "
            f"{after:.0f} MiB at the end ({after - before:+.0f} MiB); every tenth: "
            f"{' '.join(f'{v:.0f}' for v in samples)} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
