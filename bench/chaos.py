"""The hostile cases of docs/reliability.md, run against the real CLI and service: bounded, loopback only.

Each case runs pynima in a subprocess (or talks to `pynima serve` on a free 127.0.0.1 port) and checks what a user
would see: the exit code, one error line, nothing hanging, nothing left behind. Prints a pass table and exits 1 if a
case failed.

    python bench/chaos.py [--model MODEL.onnx]     # default: the bundled model

Cases: a FIFO in a folder, a name that is not UTF-8 with a newline and an ESC, a full disk (a file-size limit, which
fails writes as ENOSPC does), synth under SIGTERM, and against the service: 9000x9000 PNG bombs, 50 clients that never
finish their headers, a foreign Host, a cross-site form post, SIGTERM. Training under signals is in the test suite
(tests/test_signals.py); it needs a dataset and minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CLI = [sys.executable, "-m", "pynima.cli"]
RESULTS: list[tuple[str, str, str, bool]] = []


def case(name: str, expected: str, got: str, ok: bool) -> None:
    RESULTS.append((name, expected, got, ok))


def run(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, timeout=timeout, **kw)


def zero_png(side: int) -> bytes:
    """A valid all-black side x side RGB PNG: a few hundred kB that decode to side * side * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    z, row = zlib.compressobj(9), b"\0" * (1 + 3 * side)
    pixels = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def files_cases(tmp: Path, model: list[str], photo: np.ndarray) -> None:
    folder = tmp / "fifo"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    os.mkfifo(folder / "pipe.png")
    try:
        r = run("predict", *model, str(folder), timeout=60)
        err = r.stderr.decode(errors="replace")
        case(
            "FIFO in a folder",
            "exit 1, 'not a regular file', no hang",
            f"exit {r.returncode}",
            r.returncode == 1 and "not a regular file" in err,
        )
    except subprocess.TimeoutExpired:
        case("FIFO in a folder", "exit 1, 'not a regular file', no hang", "hung 60 s", False)

    odd = tmp / "odd"
    odd.mkdir()
    Image.fromarray(photo).save(os.path.join(os.fsencode(odd), b"bad\xff\nname\x1b[31m.png"))
    r = run("predict", *model, str(odd))
    out = r.stdout.decode("utf-8", errors="strict") if r.returncode == 0 else ""
    case(
        "name: not UTF-8, newline, ESC",
        "exit 0, one escaped table row",
        f"exit {r.returncode}",
        r.returncode == 0 and len(out.strip().splitlines()) == 2 and "\x1b" not in out,
    )  # the header, the row

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    code = (
        "import sys\nfrom pynima.cli import main\n"
        "sys.exit(main(['synth', sys.argv[1], '--refs', sys.argv[2], '--workers', '1']))"
    )
    refs = tmp / "refs"
    refs.mkdir()
    Image.fromarray(photo).save(refs / "r.png")
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp / "full"), str(refs)],
        capture_output=True,
        timeout=300,
        preexec_fn=small_files,
    )
    err = r.stderr.decode(errors="replace").strip().splitlines()
    case(
        "full disk (file-size limit) during synth",
        "exit 3, one line naming the file",
        f"exit {r.returncode}",
        r.returncode == 3 and len(err) >= 1 and "Traceback" not in "\n".join(err),
    )

    out = tmp / "synth"
    proc = subprocess.Popen(
        [*CLI, "synth", str(out), "--refs", str(refs), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    end = time.monotonic() + 120
    while not list(out.glob(".build.*/distorted_images/*")) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    time.sleep(1)
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _mentions(p, str(out))]
    case(
        "synth under SIGTERM",
        "exit 143 within 10 s, no worker left",
        f"exit {proc.returncode}, {took:.1f} s, {len(left)} left",
        proc.returncode == 143 and took < 10 and not left,
    )


def _mentions(proc_dir: Path, text: str) -> bool:
    try:
        return text.encode() in (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def service_cases(model: list[str]) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*CLI, "serve", *model, "--port", str(port), "--header-timeout", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                if request(base + "/readyz") == 200:
                    break
            except OSError:
                time.sleep(0.3)
        bomb = zero_png(9000)
        boundary = "chaosboundary"
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="b{i}.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + bomb
            + b"\r\n"
            for i in range(8)
        )
        body += f"--{boundary}--\r\n".encode()
        form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        code = request(base + "/v1/score", body, form)
        case("8 PNG bombs of 9000x9000 in one request", "413 (pixel budget)", str(code), code == 413)

        stalled = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            stalled.append(s)
        t0 = time.monotonic()
        code = request(base + "/healthz")
        case(
            "50 clients stalled in their headers",
            "/healthz 200 within 5 s",
            f"{code} in {time.monotonic() - t0:.2f} s",
            code == 200 and time.monotonic() - t0 < 5,
        )
        for s in stalled:
            s.close()

        code = request(base + "/v1/model", headers={"Host": "evil.example"})
        case("foreign Host (DNS rebinding)", "400", str(code), code == 400)
        code = request(base + "/v1/score", zero_png(64), {"Content-Type": "image/png", "Origin": "http://evil.example"})
        case("cross-site post", "403", str(code), code == 403)
        code = request(base + "/v1/score", zero_png(64), {"Content-Type": "image/png"})
        case("same-site post (control)", "200", str(code), code == 200)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
    case(
        "serve under SIGTERM",
        "exits after finishing requests",
        f"exit {proc.returncode}",
        proc.returncode is not None and proc.returncode in (0, -signal.SIGTERM, 143),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an .onnx export (default: the bundled model)")
    args = parser.parse_args()
    model = [args.model] if args.model else []
    from skimage import data

    photo = data.astronaut()[::2, ::2].copy()
    with tempfile.TemporaryDirectory() as tmp:
        files_cases(Path(tmp), model, photo)
    service_cases(model)
    width = max(len(r[0]) for r in RESULTS)
    print(f"{'case':<{width}}  {'expected':<40}  {'got':<28}  pass")
    for name, expected, got, ok in RESULTS:
        print(f"{name:<{width}}  {expected:<40}  {got:<28}  {'yes' if ok else 'NO'}")
    failed = sum(not r[3] for r in RESULTS)
    print(f"{len(RESULTS) - failed} of {len(RESULTS)} cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
