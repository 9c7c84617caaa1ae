"""pynima serve against a real uvicorn process on 127.0.0.1 (a free port), with a real HTTP client: the scores, the
endpoints, every limit, dynamic batching and graceful shutdown."""

from __future__ import annotations

import io
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import pynima

pytestmark = pytest.mark.serve


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pynima.cli", "serve", "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read())
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pynima serve did not become ready")


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out


@pytest.fixture(scope="module")
def server():
    proc, url = start("--max-files", "3", "--max-body-mb", "1", "--body-timeout", "1", "--max-wait-ms", "50")
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def images(photos, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("upload")
    paths = []
    for i, photo in enumerate(photos):
        paths.append(folder / f"photo{i}.jpg")
        Image.fromarray(photo).save(paths[-1], quality=90)
    paths.append(folder / "small.png")
    Image.fromarray(photos[0][:100, :150]).save(paths[-1])
    return paths


def test_scores_equal_the_python_api(server, images):
    scorer = pynima.load()
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in images]
    r = httpx.post(server + "/v1/score", files=files, timeout=30)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["name"] for x in results] == [p.name for p in images]
    for x, p in zip(results, images, strict=True):
        s = scorer.score(p)
        assert x["mean"] == pytest.approx(s.mean, abs=1e-6) and x["std"] == pytest.approx(s.std, abs=1e-6)
        assert np.allclose(x["distribution"], s.distribution, atol=1e-6)
    assert "warning" in results[2] and "smaller than the 224x224 crop" in results[2]["warning"]
    raw = httpx.post(
        server + "/v1/score?crops=grid",
        content=images[0].read_bytes(),
        headers={"content-type": "image/jpeg"},
        timeout=30,
    ).json()["results"][0]
    assert raw["mean"] == pytest.approx(pynima.load(crops="grid").score(images[0]).mean, abs=1e-6)
    whole = httpx.post(server + "/v1/score?crops=full", files=files[:2], timeout=30)
    if scorer.engine.any_size:  # each image as the Python API scores it whole
        full = pynima.load(crops="full")
        assert [x["mean"] for x in whole.json()["results"]] == pytest.approx(
            [full.score(p).mean for p in images[:2]], abs=1e-6
        )
    else:  # an export of 224x224 crops only: refused in one line, not a 500
        assert whole.status_code == 422 and "dynamic image size" in whole.json()["error"]


def test_endpoints(server):
    assert httpx.get(server + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server + "/readyz").json() == {"status": "ready"}
    model = httpx.get(server + "/v1/model").json()
    assert model["name"] == "nima-tid2013-lite0" and model["engine"] == "onnx" and model["limits"]["max_files"] == 3
    assert "/v1/score" in httpx.get(server + "/openapi.json").json()["paths"]
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<title>pynima" in page.text and "/v1/score" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/docs", "")  # no CDN: nothing loads from elsewhere
    docs = httpx.get(server + "/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(a.startswith("/docs-assets/") for a in assets), assets  # no CDN
    assert all(httpx.get(server + a).status_code == 200 for a in assets)
    operation = httpx.get(server + "/openapi.json").json()["paths"]["/v1/score"]["post"]
    assert {"multipart/form-data", "image/*"} <= set(operation["requestBody"]["content"])
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScoreResponse")
    assert "413" in operation["responses"]
    metrics = httpx.get(server + "/metrics").text
    assert "pynima_requests_total" in metrics and "pynima_request_seconds_bucket" in metrics


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG whose header claims width x height (one tiny compressed row stream): a decompression bomb's
    header, refused before any pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("not an image", 415, "not an image"),
        ("bomb", 422, "over the limit"),
        ("tiny", 422, "too small"),
        ("too many files", 413, "too many files: 4 (the limit is 3 per request)"),
        ("body too large", 413, "over the limit of 1,048,576"),
        ("wrong content type", 415, "multipart/form-data"),
        ("empty form", 400, "no image files"),
    ],
)
def test_limits_give_one_json_error_and_the_server_stays_up(server, images, case, status, words):
    jpeg = images[0].read_bytes()
    raw = {"not an image": b"GIF89 but not really" * 10, "bomb": _png_header(30000, 30000), "tiny": _tiny_png()}.get(
        case
    )
    if raw is not None:
        r = httpx.post(server + "/v1/score", content=raw, headers={"content-type": "image/png"})
    elif case == "too many files":
        r = httpx.post(server + "/v1/score", files=[("files", (f"{i}.jpg", jpeg)) for i in range(4)])
    elif case == "body too large":
        r = httpx.post(server + "/v1/score", content=b"\0" * (2**20 + 1), headers={"content-type": "image/png"})
    elif case == "wrong content type":
        r = httpx.post(server + "/v1/score", content=jpeg, headers={"content-type": "text/plain"})
    else:
        r = httpx.post(server + "/v1/score", data={"note": "no file"}, files=[("x", ("", b""))])
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert httpx.get(server + "/healthz").status_code == 200


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_streamed_body_over_the_limit_and_a_slow_client(server):
    def chunks():
        for _ in range(40):
            yield b"\0" * 65536  # 2.5 MiB without a Content-Length

    r = httpx.post(server + "/v1/score", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:  # promises 1000 bytes, sends 10
        s.sendall(
            b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\0" * 10
        )
        answer = b""
        while not answer.endswith(b"}"):
            more = s.recv(4096)
            if not more:
                break
            answer += more
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 408") and "not received within 1 s" in answer
    assert httpx.get(server + "/healthz").status_code == 200


def test_concurrent_requests_share_network_calls(server, images):
    def batches() -> tuple[float, float]:
        text = httpx.get(server + "/metrics").text
        value = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("pynima_batch_images_")
        }
        return value["pynima_batch_images_count"], value["pynima_batch_images_sum"]

    count0, sum0 = batches()
    jpeg = images[1].read_bytes()
    codes = []
    threads = [
        threading.Thread(
            target=lambda: codes.append(
                httpx.post(
                    server + "/v1/score", content=jpeg, headers={"content-type": "image/jpeg"}, timeout=30
                ).status_code
            )
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    count1, sum1 = batches()
    assert codes == [200] * 8 and sum1 - sum0 == 8
    assert count1 - count0 < 8  # fewer network calls than requests: some were batched together


def test_sigterm_finishes_the_request_in_flight(images):
    proc, url = start()
    data = images[0].read_bytes()
    result = {}

    def slow_body():  # the upload takes about 1.2 s, so the request is in flight when SIGTERM comes
        for i in range(4):
            time.sleep(0.3)
            yield data[i * len(data) // 4 : (i + 1) * len(data) // 4]

    def request():
        result["r"] = httpx.post(
            url + "/v1/score", content=slow_body(), headers={"content-type": "image/jpeg"}, timeout=30
        )

    t = threading.Thread(target=request)
    t.start()
    time.sleep(0.5)
    out = stop(proc)
    t.join()
    assert result["r"].status_code == 200 and "mean" in result["r"].json()["results"][0]
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status is that of a SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in out, out
    assert out.index("Shutting down") < out.index('"POST /v1/score HTTP/1.1" 200'), out  # answered after SIGTERM


def test_binds_localhost_by_default():
    from pynima.cli.parser import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.cors == []


def test_cors_is_off_by_default_and_configurable(server):
    origin = {"origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in httpx.get(server + "/v1/model", headers=origin).headers
    proc, url = start("--cors", "http://elsewhere.example")
    try:
        preflight = httpx.options(url + "/v1/score", headers=origin | {"access-control-request-method": "POST"})
        assert preflight.headers.get("access-control-allow-origin") == "http://elsewhere.example"
        other = httpx.get(url + "/v1/model", headers={"origin": "http://third.example"})
        assert "access-control-allow-origin" not in other.headers
    finally:
        stop(proc)


@pytest.mark.slow
def test_workers_each_load_the_model_and_score_the_same(images):
    proc, url = start("--workers", "2")
    try:
        means = {
            httpx.post(
                url + "/v1/score", content=images[0].read_bytes(), headers={"content-type": "image/jpeg"}, timeout=30
            ).json()["results"][0]["mean"]
            for _ in range(6)
        }
    finally:
        out = stop(proc)
    assert len(means) == 1 and abs(means.pop() - pynima.load().score(images[0]).mean) < 1e-6
    assert out.count("Started server process") == 2, out
