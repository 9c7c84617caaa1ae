"""pynima serve under hostile clients (docs/reliability.md): pixel budgets, slow request heads, foreign Host and Origin
headers, the port, a killed supervisor, what /v1/model shows."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image
from test_serve import start, stop

import pynima.serving.app
from pynima.config import Limits
from pynima.errors import PynimaError
from pynima.serving.app import create_app
from pynima.serving.guards import default_allowed_hosts

pytestmark = pytest.mark.serve

LOCAL = "http://127.0.0.1:8000"


def client(**settings):
    """A TestClient of create_app(**settings) at 127.0.0.1:8000, a Host the default settings answer to."""
    from starlette.testclient import TestClient

    return TestClient(create_app(**settings), base_url=LOCAL)


def zero_png(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG of width x height: a few hundred kB that decode to width x height x 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    z, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
    pixels = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg(photo: np.ndarray, size: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    image = Image.fromarray(photo)
    (image.resize(size) if size else image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The names of the uploads the server decodes."""
    seen, real = [], pynima.images.decode_rgb

    def counted(data: bytes, name: str = "image"):
        seen.append(name)
        return real(data, name)

    monkeypatch.setattr(pynima.serving.app, "decode_rgb", counted)
    return seen


# ------------------------------------------------------------------------------------------------- pixel budgets


def test_a_request_over_its_pixel_budget_is_refused_before_decoding(photos, decodes):
    bomb = zero_png(9000, 9000)  # the request: eight of them, 1.8 MiB, 4.9 GB once decoded
    files = [("files", (f"zero{i}.png", bomb, "image/png")) for i in range(8)]
    assert sum(len(f[1][1]) for f in files) < 2 * 2**20
    with client() as c:
        r = c.post("/v1/score", files=files)
        assert r.status_code == 413, r.text
        limit = Limits().max_request_pixels
        assert r.json()["error"] == (
            f"the images of this request have {8 * 9000 * 9000:,} pixels, over the limit of "
            f"{limit:,} per request: send fewer or smaller images"
        )
        assert decodes == []  # refused from the headers: not one pixel decoded
        ok = c.post("/v1/score", content=jpeg(photos[0]), headers={"content-type": "image/jpeg"})
        assert ok.status_code == 200 and 0 < ok.json()["results"][0]["mean"] < 9
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/model").json()["limits"]["max_request_pixels"] == limit


def test_the_servers_pixel_budget_answers_503_while_spent_and_is_given_back(photos, monkeypatch):
    entered, release, real = threading.Event(), threading.Event(), pynima.images.decode_rgb

    def held(data: bytes, name: str = "image"):  # the first upload is held in its decoding until released
        if name == "held.jpg":
            entered.set()
            release.wait(20)
        return real(data, name)

    monkeypatch.setattr(pynima.serving.app, "decode_rgb", held)
    big, small = jpeg(photos[0], (512, 512)), jpeg(photos[1], (512, 384))  # 262,144 and 196,608 pixels
    result = {}
    with client(limits=Limits(max_request_pixels=300_000, max_inflight_pixels=400_000)) as c:
        first = threading.Thread(
            target=lambda: result.update(r=c.post("/v1/score", files=[("files", ("held.jpg", big, "image/jpeg"))]))
        )
        first.start()
        assert entered.wait(20)
        busy = c.post("/v1/score", files=[("files", ("other.jpg", small, "image/jpeg"))])
        release.set()
        first.join(30)
        again = c.post("/v1/score", files=[("files", ("other.jpg", small, "image/jpeg"))])
        over = c.post("/v1/score", files=[("files", (f"{i}.jpg", big, "image/jpeg")) for i in range(2)])
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
    assert busy.json()["error"].startswith("busy: the requests in flight are decoding 262,144 pixels of the 400,000")
    assert result["r"].status_code == 200 and again.status_code == 200  # the budget came back
    assert over.status_code == 413 and "524,288 pixels, over the limit of 300,000" in over.json()["error"]


def test_pixel_budgets_must_fit_together():
    with pytest.raises(PynimaError, match="cannot be over"):
        create_app(limits=Limits(max_request_pixels=10, max_inflight_pixels=5))


# -------------------------------------------------------------------------------------- slow and large request heads


def test_stalled_request_heads_are_dropped_and_healthz_answers():
    proc, url = start("--header-timeout", "1", "--max-connections", "30")
    port = int(url.rsplit(":", 1)[1])
    stalled = []
    try:
        for _ in range(50):  # headers that never end, more connections than --max-connections
            s = socket.create_connection(("127.0.0.1", port), timeout=8)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stalled.append(s)
        t0, status = time.monotonic(), None
        while time.monotonic() - t0 < 8 and status != 200:
            with contextlib.suppress(httpx.TransportError):
                status = httpx.get(url + "/healthz", timeout=2).status_code
        waited = time.monotonic() - t0
        answers = [s.recv(4096) for s in stalled]  # the server answers 408 and closes, or recv times out
        with socket.create_connection(("127.0.0.1", port), timeout=5) as big:  # a head still unfinished at 40 kB
            big.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000)
            huge = big.recv(4096)
        after = httpx.get(url + "/healthz", timeout=5)
    finally:
        for s in stalled:
            s.close()
        stop(proc)
    assert status == 200 and waited < 5, (status, waited)
    assert all(a.startswith(b"HTTP/1.1 408") and b"request headers not received within 1 s" in a for a in answers)
    assert huge.startswith(b"HTTP/1.1 400") and after.status_code == 200  # refused at 16 KiB, the server stays up


# ----------------------------------------------------------------------------------------- Host and Origin headers


def test_host_and_origin_headers(photos):
    body = {"files": ("photo.jpg", jpeg(photos[0]), "image/jpeg")}
    with client() as c:
        rebound = c.post("/v1/score", files=body, headers={"host": "evil.example:8000"})
        foreign = c.post("/v1/score", files=body, headers={"origin": "http://evil.example"})
        sandboxed = c.post("/v1/score", files=body, headers={"origin": "null"})
        same = c.post("/v1/score", files=body, headers={"origin": LOCAL})
        curl = c.post("/v1/score", files=body)
        named = c.get("/v1/model", headers={"host": "localhost:8000"})
        probe = c.get("/healthz", headers={"host": "10.1.2.3:8000"})  # load balancers probe with an IP
    assert rebound.status_code == 400 and "'evil.example:8000' is not a name" in rebound.json()["error"]
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["error"] == (
        "cross-origin request from http://evil.example refused: this server answers "
        "pages of its own origin only, unless started with --cors http://evil.example"
    )
    assert sandboxed.status_code == 403
    assert same.status_code == 200 and curl.status_code == 200 and named.status_code == 200 and probe.status_code == 200
    assert same.json()["results"][0]["mean"] == pytest.approx(curl.json()["results"][0]["mean"], abs=1e-6)


def test_cors_origins_and_allowed_hosts_are_options(photos):
    body = {"files": ("photo.jpg", jpeg(photos[0]), "image/jpeg")}
    with client(cors=["https://labelling.example"], allowed_hosts=["scores.example", "*.internal"]) as c:
        allowed = c.post(
            "/v1/score", files=body, headers={"origin": "https://labelling.example", "host": "scores.example"}
        )
        other = c.post(
            "/v1/score", files=body, headers={"origin": "https://third.example", "host": "a.b.internal:8443"}
        )
        loopback = c.get("/v1/model")
    assert allowed.status_code == 200 and "mean" in allowed.json()["results"][0]
    assert allowed.headers["access-control-allow-origin"] == "https://labelling.example"
    assert other.status_code == 403  # the host matches *.internal, the origin is not allowed
    assert loopback.status_code == 400  # the given hosts replace the defaults
    with pytest.raises(PynimaError, match="allowed hosts are"):
        create_app(allowed_hosts=["scores.*.example"])


def test_default_allowed_hosts_follow_the_bound_address():
    assert set(default_allowed_hosts("127.0.0.1")) == {"127.0.0.1", "localhost", "::1"}
    assert default_allowed_hosts("192.0.2.7") == ["192.0.2.7"]
    everywhere = default_allowed_hosts("0.0.0.0")
    assert "0.0.0.0" not in everywhere and {"localhost", socket.gethostname().lower()} <= set(everywhere)


# --------------------------------------------------------------------------------- the port and worker processes


def test_a_port_out_of_range_is_a_usage_error():
    r = subprocess.run(
        [sys.executable, "-m", "pynima.cli", "serve", "--port", "99999"], capture_output=True, text=True, timeout=60
    )  # a server on some other port would time out here
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "pynima serve: error: port must be 0-65535 (0: any free port), got 99999\n"


def test_a_port_in_use_is_one_line_and_exit_2_without_ready():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "pynima.cli", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout)
    assert r.stderr == f"pynima serve: error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def test_port_0_takes_a_free_port_and_logs_it():
    proc = subprocess.Popen(
        [sys.executable, "-m", "pynima.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline, port = time.monotonic() + 60, None
        while time.monotonic() < deadline and not any("Application startup complete" in x for x in lines):
            time.sleep(0.1)
        listening = [x for x in lines if "pynima serve: listening on http://127.0.0.1:" in x]
        port = int(listening[0].rsplit(":", 1)[1].split(";")[0])
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert port > 0 and ready == 200
    ready_line = next(i for i, x in enumerate(lines) if "pynima serve: ready" in x)
    assert lines.index(listening[0]) < ready_line, lines  # ready only once the port is bound


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.slow
def test_workers_exit_when_the_supervisor_is_killed():
    proc, url = start("--workers", "2")
    port = int(url.rsplit(":", 1)[1])
    deadline = time.monotonic() + 60
    while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(4):  # both workers serve (the kernel spreads connections between them)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    proc.kill()  # SIGKILL: uvicorn's supervisor cannot stop its workers
    proc.wait(10)
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # not to leave them serving when the test fails
        os.kill(pid, signal.SIGKILL)
    assert len(workers) >= 2 and not left, left
    with pytest.raises(ConnectionRefusedError):  # nothing listens on the port any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_model_info_names_the_file_not_its_folders(tmp_path):
    import onnx

    from pynima.scoring.models import bundled_model

    model = onnx.load(str(bundled_model()))
    kept = [p for p in model.metadata_props if p.key != "pynima_name"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    path = tmp_path / "secret-folder" / "mine.onnx"
    path.parent.mkdir()
    onnx.save(model, str(path))
    with client(model=str(path)) as c:
        info = c.get("/v1/model")
    assert info.json()["name"] == "mine.onnx" and "secret-folder" not in info.text


def test_too_many_files_names_the_count_and_the_limit(photos):
    data = jpeg(photos[0], (256, 256))
    with client(limits=Limits(max_files=2)) as c:
        r = c.post("/v1/score", files=[("files", (f"{i}.jpg", data, "image/jpeg")) for i in range(5)])
    assert r.status_code == 413 and r.json() == {"error": "too many files: 5 (the limit is 2 per request)"}
