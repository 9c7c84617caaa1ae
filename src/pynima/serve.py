"""``pynima serve``: an HTTP scoring service. FastAPI on uvicorn: routing, multipart parsing, OpenAPI at /docs and
graceful shutdown (SIGTERM finishes in-flight requests) come from them; pynima adds dynamic batching, the limits,
metrics and the page.

Dynamic batching (``Batcher``): uploads are decoded off the event loop (a thread pool), then queue for the network;
while other images are still being decoded or queued, a batch waits for them up to ``max_wait`` seconds, then
everything queued, up to ``max_batch`` crops, goes through the network in one call, on one inference thread.
Concurrent requests therefore share forward passes, and a request alone does not wait at all.

Limits, each a JSON ``{"error": ...}`` with its status code, the server staying up:
request body over ``max_body`` bytes 413; more than ``max_files`` images 413; a body slower than ``body_timeout``
seconds 408; not an image by content 415; over the pixel cap (``PIL.Image.MAX_IMAGE_PIXELS``, checked from the header
before decoding) or too small 422. In a request of several images, one that cannot be scored gets an ``error`` in its
result and the others are scored. No path ever comes from a client: images arrive as bytes.

Against hostile clients (docs/reliability.md): decoded pixels are budgeted from the images' headers before any
decoding, per request (413) and across the requests in flight (503 with Retry-After); a Host header the server does not
answer to is 400 (DNS rebinding) and a POST from a page of another origin 403 unless ``cors`` allows it; the request
head must arrive within ``Connections.header_timeout`` (``_H11``), connections are capped and the open-file limit is
raised to fit them; worker processes exit when their supervisor dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import h11
import numpy as np
import uvicorn
from fastapi import Query, Request  # module level: FastAPI reads the handlers' annotations from here
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline  # /docs with Swagger UI's files from the package, none from a CDN
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware
from uvicorn.protocols.http.h11_impl import H11Protocol

from pynima.config import CROP_MODES, CROP_SPELLINGS, DEFAULT_CROPS, Connections, Limits, crop_mode
from pynima.data import DatasetError, decode_rgb, open_image
from pynima.errors import PynimaError
from pynima.labels import moments
from pynima.predict import Scorer, check_crops, crops, load
from pynima.scale import CROP

__all__ = [
    "ANY_ADDRESS",
    "Batcher",
    "DEFAULT_CONNECTIONS",
    "DEFAULT_LIMITS",
    "DOCS_ASSETS",
    "ErrorResponse",
    "FORM_FILES",
    "GRACEFUL_SHUTDOWN",
    "KNOWN_PATHS",
    "LOOPBACK_HOSTS",
    "OTHER_FILES",
    "PAGE",
    "PARENT_ENV",
    "PROBES",
    "RETRY_AFTER",
    "SCORE_BODY",
    "SETTINGS_ENV",
    "ScoreResponse",
    "ScoredImage",
    "WATCH_INTERVAL",
    "app_from_environment",
    "create_app",
    "default_allowed_hosts",
    "serve",
]

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("page.html")


GRACEFUL_SHUTDOWN = 30  # seconds that SIGTERM leaves requests in flight to finish
RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 when the server's pixel budget is spent
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


class Batcher:
    """Scores prepared crops of many concurrent requests in shared network calls (see the module docstring)."""

    def __init__(self, scorer: Scorer, max_batch: int = 32, max_wait: float = 0.005, on_batch=None):
        self.scorer, self.max_batch, self.max_wait, self.on_batch = scorer, max_batch, max_wait, on_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.decoding = 0  # images announced (``expect``) and not yet queued: a batch waits for them
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="pynima-infer")  # one network call at a time
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
        self.pool.shutdown(wait=True)

    def expect(self, n: int = 1) -> None:
        """``n`` images are being decoded and will come to ``distribution`` (or ``cancel``): batches wait for them."""
        self.decoding += n

    def cancel(self, n: int = 1) -> None:
        """``n`` expected images will not come (they could not be decoded)."""
        self.decoding -= n

    async def distribution(self, x: np.ndarray, expected: bool = False) -> np.ndarray:
        """The 10-bin distribution of one image from its uint8 crops, averaged over them (``expected``: announced
        by ``expect`` before its decoding)."""
        future = asyncio.get_running_loop().create_future()
        if expected:
            self.decoding -= 1
        await self.queue.put((x, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size, deadline = len(batch[0][0]), loop.time() + self.max_wait
            while size < self.max_batch and (self.decoding > 0 or not self.queue.empty()):
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                batch.append(item)
                size += len(item[0])
            try:
                p = await loop.run_in_executor(self.pool, self.scorer.distributions, [x for x, _ in batch])
            except Exception as e:  # noqa: BLE001 - an engine failure fails these requests, not the server
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            if self.on_batch:
                self.on_batch(len(batch), size)
            for (_, future), row in zip(batch, p, strict=True):
                if not future.done():  # its client may have gone
                    future.set_result(row)


class _Metrics:
    """Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("pynima_requests", "HTTP requests", ["path", "status"], registry=self.registry)
        self.latency = Histogram(
            "pynima_request_seconds",
            "request latency",
            ["path"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_images = Histogram(
            "pynima_batch_images", "images per network call", registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64)
        )
        self.images = Counter("pynima_images", "images scored or refused", ["result"], registry=self.registry)


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def _multipart_refusal(e: Exception, max_files: int) -> _Refused:
    """The refusal of a multipart body Starlette could not parse (its message without Starlette's "400: ")."""
    problem = str(getattr(e, "detail", e))
    if "Too many files" in problem:
        return _too_many_files(f"more than {FORM_FILES}", max_files)
    if "Too many fields" in problem:
        return _Refused(413, f"too many form fields: more than {max_files} (the limit is {max_files} per request)")
    return _Refused(400, f"multipart body refused: {problem}")


def _too_many_files(count: int | str, max_files: int) -> _Refused:
    """413 naming the number of files sent and the limit."""
    return _Refused(413, f"too many files: {count} (the limit is {max_files} per request)")


def _check_pixels(pixels: int, limits: Limits, budget: _PixelBudget) -> None:
    """Take ``pixels`` from ``budget`` for a request, or _Refused: 413 over the request's limit, 503 (Retry-After)
    while the requests in flight hold the rest of the budget."""
    if pixels > limits.max_request_pixels:
        raise _Refused(
            413,
            f"the images of this request have {pixels:,} pixels, over the limit of "
            f"{limits.max_request_pixels:,} per request: send fewer or smaller images",
        )
    if not budget.take(pixels):
        raise _Refused(
            503,
            f"busy: the requests in flight are decoding {budget.used:,} pixels of the "
            f"{budget.limit:,} the server allows at once; retry in {RETRY_AFTER} s",
            {"Retry-After": str(RETRY_AFTER)},
        )


def _status(problem: str) -> int:
    """415 for what is not an image at all, 422 for an image refused by the decoding policy."""
    return 415 if "not an image" in problem else 422


FORM_FILES = 1000  # files a multipart body is parsed for, to name their number when it is over the limit
PROBES = ("/healthz", "/readyz")
DEFAULT_LIMITS, DEFAULT_CONNECTIONS = Limits(), Connections()  # frozen: one shared default each
KNOWN_PATHS = {"/v1/score", "/healthz", "/readyz", "/v1/model", "/metrics", "/", "/docs", "/openapi.json"}
DOCS_ASSETS = "/docs-assets"  # where /docs loads Swagger UI's script and styles from (fastapi-offline's copy)


class ScoredImage(BaseModel):
    """One uploaded image: its score, or why it was not scored."""

    name: str = Field(description="the upload's file name")
    mean: float | None = Field(None, description="predicted mean opinion score, 0 (worst) to 9 (best)")
    std: float | None = Field(None, description="spread: the standard deviation of the predicted opinions")
    distribution: list[float] | None = Field(
        None, min_length=10, max_length=10, description="predicted share of opinions for each score 0-9"
    )
    warning: str | None = Field(None, description="scored, but less reliably (an image smaller than the crop)")
    error: str | None = Field(None, description="not scored: why (not an image, truncated, too large, ...)")


class ScoreResponse(BaseModel):
    """The answer to POST /v1/score: one result per upload, in order."""

    results: list[ScoredImage]


class ErrorResponse(BaseModel):
    """A refused request: why; for a single image that could not be scored, its result too."""

    error: str
    results: list[ScoredImage] | None = None


# what POST /v1/score reads (it parses the body itself, to budget pixels before decoding): declared for /docs
SCORE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "images (any field name works)",
                    }
                },
            }
        },
        "image/*": {"schema": {"type": "string", "format": "binary", "description": "one image as the raw body"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _image_pixels(data: bytes) -> int:
    """Width x height of an upload from its header, read without decoding any pixel; 0 for what ``decode_rgb``
    refuses from the header anyway (not an image, over ``PIL.Image.MAX_IMAGE_PIXELS``).

    No JPEG draft mode (``Image.draft``, decoding at 1/2 to 1/8 scale) for large images: the scorer crops 224 x 224 at
    the image's own resolution, never resizing, so a downscaled decode would score other pixels than ``pynima
    predict`` does. The pixel budgets bound the memory instead."""
    from PIL import Image

    try:
        with open_image(io.BytesIO(data), "upload", "not an image") as im:
            w, h = im.size
    except DatasetError:
        return 0
    return 0 if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS else w * h


class _PixelBudget:
    """Decoded pixels of the requests in flight, at most ``limit``: a request takes its images' pixels before
    decoding them and gives them back once answered (the event loop's one thread does both: no lock)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, pixels: int) -> bool:
        if self.used + pixels > self.limit:
            return False
        self.used += pixels
        return True

    def give(self, pixels: int) -> None:
        self.used -= pixels


def _error_body(message: str) -> bytes:
    """The JSON body of every refusal."""
    return json.dumps({"error": message}).encode()


async def _refuse(send, status: int, message: str) -> None:
    """Answer ``{"error": message}`` with ``status`` and close the connection."""
    body = _error_body(message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case) of an ASGI scope, or None."""
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def _host_and_port(netloc: str, scheme: str) -> tuple[str | None, int | None]:
    """(host, port) of ``host[:port]`` (a Host header, an origin's authority), the port defaulting to the scheme's;
    (None, None) if it does not parse."""
    try:
        parts = urlsplit(f"//{netloc}")
        return parts.hostname, parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None, None


def default_allowed_hosts(host: str) -> list[str]:
    """The Host headers a server bound to ``host`` answers to by default: that address, with the loopback names when
    it is a loopback one, and this machine's names and addresses when it is every interface (0.0.0.0, ::)."""
    names = [host]
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        names += LOOPBACK_HOSTS
    elif host in ANY_ADDRESS:
        names += [*LOOPBACK_HOSTS, socket.gethostname(), socket.getfqdn()]
        with contextlib.suppress(OSError):
            names += socket.gethostbyname_ex(socket.gethostname())[2]
    return list(dict.fromkeys(n.lower() for n in names if n and n not in ANY_ADDRESS))


class _TrustedHosts(TrustedHostMiddleware):
    """Starlette's TrustedHostMiddleware (its patterns: names, ``*.example.com``, ``*``), answering JSON: a request
    whose Host header is none of ``allowed_hosts`` is refused with 400, so a DNS-rebinding page (evil.example
    resolved to 127.0.0.1) cannot reach the service through a visitor's browser. The probes (/healthz, /readyz) are
    exempt: they reveal nothing, and load balancers and orchestrators often send an IP address as the Host."""

    async def __call__(self, scope, receive, send):
        if self.allow_any or scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"host") or ""
        host = (_host_and_port(given, "http")[0] or "").lower()
        if host and any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in self.allowed_hosts):
            await self.app(scope, receive, send)
            return
        await _refuse(
            send,
            400,
            f"Host header {given!r} is not a name this server answers to "
            f"({', '.join(self.allowed_hosts)}); if it is, start it with --allowed-hosts",
        )


class _SameOrigin:
    """ASGI middleware refusing (403) a POST from a page of another origin, one whose Origin header names another host
    or port than the request's Host, unless ``cors`` lists that origin (or ``*``). Browsers send form and multipart
    posts across sites without asking first (no CORS preflight), so without it any web page could make its visitors'
    browsers post images here. Clients that are not browsers (curl) send no Origin and are not affected."""

    def __init__(self, app, cors: Sequence[str]):
        self.app, self.cors = app, set(cors)

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None or scope["method"] in ("GET", "HEAD", "OPTIONS") or self._allowed(origin, scope):
            await self.app(scope, receive, send)
            return
        await _refuse(
            send,
            403,
            f"cross-origin request from {origin} refused: this server answers pages of its "
            f"own origin only, unless started with --cors {origin}",
        )

    def _allowed(self, origin: str, scope) -> bool:
        if origin in self.cors or "*" in self.cors:
            return True
        parts = urlsplit(origin)
        if not parts.netloc:  # "null": a sandboxed frame or a file:// page
            return False
        mine = _host_and_port(_header(scope, b"host") or "", parts.scheme)
        return mine[0] is not None and _host_and_port(parts.netloc, parts.scheme) == mine


class _Guard:
    """ASGI middleware around the app: a request body over ``limits.max_body`` bytes is refused with 413 (from
    Content-Length when given, else while it streams), one that does not arrive within ``limits.body_timeout``
    seconds with 408; every request is counted and timed for /metrics. Written here because Starlette and uvicorn
    have neither a body-size nor a body-read timeout setting (and a plain ASGI middleware, unlike Starlette's
    BaseHTTPMiddleware, lets the handler see the refusal raised while it reads the body)."""

    def __init__(self, app, limits: Limits, metrics: _Metrics):
        self.app, self.limits, self.metrics = app, limits, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, path = time.perf_counter(), scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        status = 500

        async def observed_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, observed_send)
        finally:
            self.metrics.requests.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)

    async def _guarded(self, scope, receive, send):
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body:
            return await _refuse(
                send, 413, f"request body of {int(length):,} bytes is over the limit of {self.limits.max_body:,}"
            )
        seen, deadline = 0, time.monotonic() + self.limits.body_timeout

        async def limited():
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise _Refused(408, f"request body not received within {self.limits.body_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limits.max_body:
                    raise _Refused(413, f"request body over the limit of {self.limits.max_body:,} bytes")
            return message

        sent = False

        async def tracking_send(message):
            nonlocal sent
            sent = sent or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _Refused as e:
            if not sent:
                await _refuse(send, e.status, str(e))


def _check_settings(max_batch: int, max_wait: float, limits: Limits, allowed_hosts: Sequence[str]) -> None:
    """A PynimaError for settings create_app cannot work with."""
    if max_batch < 1 or max_wait < 0 or min(limits.max_files, limits.max_body, limits.max_request_pixels) < 1:
        raise PynimaError(
            "max_batch, max_files, max_body and the pixel limits must be positive and max_wait at least 0"
        )
    if limits.max_request_pixels > limits.max_inflight_pixels:
        raise PynimaError(
            f"the pixels of one request ({limits.max_request_pixels:,}) cannot be over those of all "
            f"requests in flight ({limits.max_inflight_pixels:,})"
        )
    wrong = [
        h for h in allowed_hosts if not h or "*" in h[1:] or (h.startswith("*") and h != "*" and not h.startswith("*."))
    ]
    if wrong:
        raise PynimaError(f"allowed hosts are names, addresses, *.domain or *, not {', '.join(map(repr, wrong))}")


def _model_name(scorer: Scorer, model: str | Path | None) -> str:
    """The model's name from its metadata, else its file name: never the directories of the server's files."""
    return scorer.engine.metadata.get("pynima_name") or (Path(model).name if model else "bundled")


async def read_images(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded image of a POST /v1/score; _Refused for what is not an upload of images, or for
    more files than ``limits`` allow."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=max(FORM_FILES, limits.max_files), max_fields=limits.max_files)
        except _Refused:
            raise
        except Exception as e:  # noqa: BLE001 - Starlette's HTTPException for too many parts or bad syntax
            raise _multipart_refusal(e, limits.max_files) from None
        uploads = [(getattr(v, "filename", None) or k, v) for k, v in form.multi_items() if hasattr(v, "read")]
        if not uploads:
            raise _Refused(400, "no image files in the form")
        if len(uploads) > limits.max_files:
            raise _too_many_files(len(uploads), limits.max_files)
        return [(name, await v.read()) for name, v in uploads]
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return [(request.headers.get("x-filename", "image"), await request.body())]
    raise _Refused(
        415,
        f"send images as multipart/form-data files or as an image/* body, not {content_type or 'no content type'}",
    )


def _add_read_routes(app, scorer: Scorer, name: str, limits: Limits, metrics: _Metrics, state: dict) -> None:
    """The GET routes of ``create_app``: probes, the model's description, Prometheus metrics and the page."""
    import pynima

    @app.get("/healthz", summary="liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="readiness: the model is loaded and warmed up")
    async def readyz():
        if not state["ready"]:
            return JSONResponse({"status": "starting"}, 503)
        return {"status": "ready"}

    @app.get("/v1/model", summary="what model scores")
    async def model_info():
        meta = scorer.engine.metadata
        return {
            "name": name,
            "version": meta.get("pynima_model_version"),
            "backbone": getattr(scorer.engine, "backbone", meta.get("pynima_backbone")),
            "engine": scorer.engine.name,
            "pynima": pynima.__version__,
            "input": {
                "crop": CROP,
                "crops": list(CROP_MODES),
                "default_crops": DEFAULT_CROPS,
                "scale": "mean opinion score 0-9 (TID2013's), 10 bins",
            },
            "limits": {
                "max_body_bytes": limits.max_body,
                "max_files": limits.max_files,
                "max_request_pixels": limits.max_request_pixels,
                "max_inflight_pixels": limits.max_inflight_pixels,
            },
            "card": meta.get("pynima_card"),
            "anchors": meta.get("pynima_anchors"),
        }

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))


async def score_one(batcher: Batcher, metrics: _Metrics, name: str, data: bytes, mode: str) -> dict:
    """One upload's result row: decoded in a thread, scored in the batcher's next network call; a refused image
    gets its error and the HTTP status it would have alone."""
    from starlette.concurrency import run_in_threadpool

    batcher.expect()
    try:
        rgb = await run_in_threadpool(decode_rgb, data, name)
    except BaseException as e:
        batcher.cancel()
        if not isinstance(e, DatasetError):
            raise
        metrics.images.labels("refused").inc()
        return {"name": name, "error": str(e), "status": _status(str(e))}
    h, w = rgb.shape[:2]
    p = await batcher.distribution(crops(rgb, mode), expected=True)
    mean, std = moments(p)
    metrics.images.labels("scored").inc()
    result = {"name": name, "mean": float(mean), "std": float(std), "distribution": [float(v) for v in p]}
    if h < CROP or w < CROP:
        result["warning"] = (
            f"{name}: {w}x{h} is smaller than the {CROP}x{CROP} crop; scored with zero padding, "
            f"so the score is less reliable"
        )
    return result


def _add_score_route(
    app, scorer: Scorer, batcher: Batcher, metrics: _Metrics, limits: Limits, budget: _PixelBudget
) -> None:
    """POST /v1/score of ``create_app``: uploads refused or admitted against the limits and the pixel budget, then
    scored together."""
    from starlette.concurrency import run_in_threadpool

    @app.post(
        "/v1/score",
        summary="score uploaded images",
        description="Multipart form files (any field name, up to the file limit), or one image as the raw "
        "body with an image/* content type. Per image: name, mean, std, the 10-bin distribution, "
        "or an error.",
        openapi_extra={"requestBody": SCORE_BODY},
        responses={
            200: {"model": ScoreResponse},
            400: {"model": ErrorResponse},
            413: {"model": ErrorResponse},
            415: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    async def score(
        request: Request, crops_mode: Literal[CROP_MODES + tuple(CROP_SPELLINGS)] = Query(DEFAULT_CROPS, alias="crops")
    ):
        try:
            check_crops(crops_mode, scorer.engine)
            crops_mode = crop_mode(crops_mode)
        except PynimaError as e:
            return JSONResponse({"error": str(e)}, 422)
        try:
            items = await read_images(request, limits)
            pixels = sum(await run_in_threadpool(lambda: [_image_pixels(data) for _, data in items]))
            _check_pixels(pixels, limits, budget)
        except _Refused as e:
            return JSONResponse({"error": str(e)}, e.status, e.headers)
        try:
            results = await asyncio.gather(
                *(score_one(batcher, metrics, name, data, crops_mode) for name, data in items)
            )
        finally:
            budget.give(pixels)
        if len(results) == 1 and "error" in results[0]:
            return JSONResponse({"error": results[0]["error"], "results": results}, results[0].pop("status"))
        for r in results:
            r.pop("status", None)
        return {"results": results}


def create_app(
    model: str | Path | None = None,
    engine: str | None = None,
    max_batch: int = 32,
    max_wait: float = 0.005,
    limits: Limits = DEFAULT_LIMITS,
    cors: Sequence[str] = (),
    allowed_hosts: Sequence[str] | None = None,
    device: str = "cpu",
):
    """The FastAPI app scoring with ``model`` (default: the bundled model) on ``engine`` and ``device`` (as
    ``pynima.load``).
    ``cors``: origins allowed to call it from a browser page elsewhere (none by default). ``allowed_hosts``: the
    Host headers it answers to (Starlette's patterns; default: the loopback names)."""
    from contextlib import asynccontextmanager

    import pynima

    allowed_hosts = list(LOOPBACK_HOSTS if allowed_hosts is None else allowed_hosts)
    _check_settings(max_batch, max_wait, limits, allowed_hosts)
    scorer = load(model, engine=engine, device=device)
    name = _model_name(scorer, model)
    metrics = _Metrics()
    budget = _PixelBudget(limits.max_inflight_pixels)
    state = {"ready": False}
    batcher = Batcher(scorer, max_batch, max_wait, on_batch=lambda images, _crops: metrics.batch_images.observe(images))

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        # warm-up: the first network call allocates; /readyz says ready only after it
        await batcher.distribution(np.zeros((1, CROP, CROP, 3), np.uint8))
        state["ready"] = True
        log.info("pynima serve: ready (%s on %s)", name, scorer.engine.name)
        yield
        state["ready"] = False
        await batcher.stop()

    app = FastAPIOffline(
        title="pynima",
        version=pynima.__version__,
        lifespan=lifespan,
        redoc_url=None,
        static_url=DOCS_ASSETS,
        description="Blind image quality assessment with NIMA: the distribution of opinion scores "
        "(0-9, higher is better) of each uploaded image.",
    )
    if cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST"], allow_headers=["*"])

    _add_score_route(app, scorer, batcher, metrics, limits, budget)
    _add_read_routes(app, scorer, name, limits, metrics, state)
    return _Guard(_TrustedHosts(_SameOrigin(app, cors), allowed_hosts=allowed_hosts), limits, metrics)


class _H11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head, which uvicorn lacks: a client that sends its
    headers slowly, or never finishes them (slowloris), would hold its connection forever. The head of each request
    must arrive within ``config.header_timeout`` seconds of the connection or of the previous response; otherwise the
    client gets a 408 and the connection is closed."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._expect_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._expect_head()

    def connection_lost(self, exc) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)

    def _expect_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.config.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # still no complete head
            body = _error_body(f"request headers not received within {self.config.header_timeout:g} s")
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()


class _Config(uvicorn.Config):
    """uvicorn's Config with ``header_timeout`` for ``_H11`` (a class of this module, so that it pickles into the
    worker processes)."""

    def __init__(self, app, header_timeout: float, **kwargs):
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout


def _fit_open_files(connections: int) -> int:
    """Raise this process's soft limit on open files (within the hard one) so that ``connections`` fit, each being a
    file descriptor: when they run out, accept() fails and every client, /healthz included, hangs. The number of
    connections that fit."""
    try:
        import resource
    except ImportError:  # not a Unix
        return connections
    need = connections + OTHER_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning(
            "pynima serve: at most %d connections fit this process's limit of %d open files", soft - OTHER_FILES, soft
        )
        return max(1, soft - OTHER_FILES)
    return connections


OTHER_FILES = 64  # open files the process needs besides its connections (model, libraries, pipes)


def _address(host: str, port: int) -> str:
    """HOST:PORT, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, bound as uvicorn binds (SO_REUSEADDR; inheritable by worker processes); a
    PynimaError naming the address and the OS's reason when it cannot be."""
    if not 0 <= port <= 65535:
        raise PynimaError(f"port must be 0-65535 (0: any free port), got {port}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError as e:
        sock.close()
        raise PynimaError(f"cannot listen on {_address(host, port)} ({e.strerror or e})") from None
    sock.set_inheritable(True)
    return sock


SETTINGS_ENV = "PYNIMA_SERVE"  # create_app's arguments as JSON, for uvicorn's worker processes (--workers N)
PARENT_ENV = "PYNIMA_SERVE_PARENT"  # the supervisor's process id, which worker processes watch
WATCH_INTERVAL = 0.5  # seconds between a worker's checks that its supervisor is alive


def _exit_with_parent(parent: int) -> None:
    """Start a thread that stops this worker process when ``parent``, uvicorn's supervisor, is gone: killed with
    SIGKILL it cannot stop its workers, which would keep serving on the port. SIGTERM first (requests in flight are
    finished), then an exit if that has not ended it."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_INTERVAL)
        log.warning("pynima serve: worker %d: its supervisor %d is gone; stopping", os.getpid(), parent)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACEFUL_SHUTDOWN + 5)
        os._exit(1)

    threading.Thread(target=watch, name="pynima-watch-parent", daemon=True).start()


def app_from_environment():
    """The app of ``create_app(**json.loads($PYNIMA_SERVE))``: the factory uvicorn imports in each worker process,
    which exits when its supervisor ($PYNIMA_SERVE_PARENT) does."""
    if os.environ.get(PARENT_ENV):
        _exit_with_parent(int(os.environ[PARENT_ENV]))
    settings = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    settings["limits"] = Limits(**settings.get("limits", {}))
    return create_app(**settings)


def serve(
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: str | None = None,
    workers: int = 1,
    max_batch: int = 32,
    max_wait: float = 0.005,
    limits: Limits = DEFAULT_LIMITS,
    cors: Sequence[str] = (),
    allowed_hosts: Sequence[str] | None = None,
    connections: Connections = DEFAULT_CONNECTIONS,
    device: str = "cpu",
) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM (in-flight requests are finished first). The port is bound
    before anything else, so a port in use is a PynimaError before the model loads; port 0 takes a free one, which
    the log names. ``allowed_hosts``: default ``default_allowed_hosts(host)``."""
    from dataclasses import asdict

    from uvicorn.supervisors import Multiprocess

    if (
        workers < 1
        or min(connections.max_connections, connections.max_header_bytes) < 1
        or min(connections.header_timeout, connections.keep_alive) <= 0
    ):
        raise PynimaError("workers, the connection limit, the header size and the timeouts must be positive")
    allowed_hosts = list(default_allowed_hosts(host) if allowed_hosts is None else allowed_hosts)
    _check_settings(max_batch, max_wait, limits, allowed_hosts)
    sock = _listen(host, port)
    port = sock.getsockname()[1]
    log.info("pynima serve: listening on http://%s; loading the model", _address(host, port))
    settings = {
        "model": model,
        "engine": engine,
        "device": device,
        "max_batch": max_batch,
        "max_wait": max_wait,
        "limits": asdict(limits),
        "cors": list(cors),
        "allowed_hosts": allowed_hosts,
    }
    with sock:
        if workers > 1:  # each worker process builds its own app (and model) from the environment
            os.environ[SETTINGS_ENV], os.environ[PARENT_ENV] = json.dumps(settings), str(os.getpid())
            config = _uvicorn_config("pynima.serve:app_from_environment", host, port, workers, connections)
            Multiprocess(config, sockets=[sock]).run()
            return
        server = uvicorn.Server(
            _uvicorn_config(create_app(**settings | {"limits": limits}), host, port, 1, connections)
        )
        server.run(sockets=[sock])
    if not server.started:
        raise PynimaError("the server did not start (its log above says why)")


def _uvicorn_config(app, host: str, port: int, workers: int, connections: Connections) -> _Config:
    """uvicorn's settings: ``app`` (an import string of a factory with workers), the h11 protocol with the head
    deadline, the connection limits, graceful shutdown."""
    return _Config(
        app,
        connections.header_timeout,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        http=_H11,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        limit_concurrency=_fit_open_files(connections.max_connections),
        timeout_keep_alive=connections.keep_alive,
        h11_max_incomplete_event_size=connections.max_header_bytes,
    )
