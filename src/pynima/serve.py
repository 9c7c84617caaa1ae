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
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, Query, Request  # module level: FastAPI reads the handlers' annotations from here
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pynima.config import CROP_MODES, DEFAULT_CROPS
from pynima.data import CROP, DatasetError, decode_rgb
from pynima.errors import PynimaError
from pynima.labels import moments
from pynima.predict import Scorer, check_crops, crops, load

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("page.html")


@dataclass(frozen=True)
class Limits:
    """What one request may send (see the module docstring)."""

    max_body: int = 32 * 2**20
    max_files: int = 16
    body_timeout: float = 30.0


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
            for (_, future), row in zip(batch, p):
                if not future.done():  # its client may have gone
                    future.set_result(row)


class _Metrics:
    """Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("pynima_requests", "HTTP requests", ["path", "status"], registry=self.registry)
        self.latency = Histogram("pynima_request_seconds", "request latency", ["path"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.batch_images = Histogram("pynima_batch_images", "images per network call", registry=self.registry,
                                      buckets=(1, 2, 4, 8, 16, 32, 64))
        self.images = Counter("pynima_images", "images scored or refused", ["result"], registry=self.registry)


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _status(problem: str) -> int:
    """415 for what is not an image at all, 422 for an image refused by the decoding policy."""
    return 415 if "not an image" in problem else 422


KNOWN_PATHS = {"/v1/score", "/healthz", "/readyz", "/v1/model", "/metrics", "/"}


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
            return await self._refuse(send, 413, f"request body of {int(length):,} bytes is over the limit of "
                                                 f"{self.limits.max_body:,}")
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
                await self._refuse(send, e.status, str(e))

    @staticmethod
    async def _refuse(send, status: int, message: str) -> None:
        import json

        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def create_app(model: str | Path | None = None, engine: str | None = None, max_batch: int = 32,
               max_wait: float = 0.005, limits: Limits = Limits(), cors: list[str] | tuple[str, ...] = ()):
    """The FastAPI app scoring with ``model`` (default: the bundled model) on ``engine`` (as ``pynima.load``).
    ``cors``: origins allowed to call it from a browser page elsewhere (none by default)."""
    from contextlib import asynccontextmanager

    from starlette.concurrency import run_in_threadpool

    import pynima

    if max_batch < 1 or max_wait < 0 or limits.max_files < 1 or limits.max_body < 1:
        raise PynimaError("max_batch, max_files and max_body must be positive and max_wait at least 0")
    scorer = load(model, engine=engine)
    metrics = _Metrics()
    state = {"ready": False}
    batcher = Batcher(scorer, max_batch, max_wait,
                      on_batch=lambda images, _crops: metrics.batch_images.observe(images))

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        # warm-up: the first network call allocates; /readyz says ready only after it
        await batcher.distribution(np.zeros((1, CROP, CROP, 3), np.uint8))
        state["ready"] = True
        log.info("pynima serve: ready (%s on %s)", scorer.engine.metadata.get("pynima_name", model),
                 scorer.engine.name)
        yield
        state["ready"] = False
        await batcher.stop()

    app = FastAPI(title="pynima", version=pynima.__version__, lifespan=lifespan,
                  description="Blind image quality assessment with NIMA: the distribution of opinion scores (0-9) "
                              "of each uploaded image.")
    if cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=["GET", "POST"],
                           allow_headers=["*"])

    async def score_one(name: str, data: bytes, mode: str) -> dict:
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
            result["warning"] = (f"{name}: {w}x{h} is smaller than the {CROP}x{CROP} crop; scored with zero padding, "
                                 f"so the score is less reliable")
        return result

    async def read_images(request: Request) -> list[tuple[str, bytes]]:
        """(name, bytes) of each uploaded image; _Refused for what is not an upload of images."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=limits.max_files, max_fields=limits.max_files)
            except _Refused:
                raise
            except Exception as e:  # noqa: BLE001 - Starlette's MultiPartException for too many parts or bad syntax
                raise _Refused(413 if "Too many" in str(e) else 400, f"multipart body refused: {e}") from None
            uploads = [(getattr(v, "filename", None) or k, v) for k, v in form.multi_items() if hasattr(v, "read")]
            if not uploads:
                raise _Refused(400, "no image files in the form")
            return [(name, await v.read()) for name, v in uploads]
        if content_type.startswith("image/") or content_type == "application/octet-stream":
            return [(request.headers.get("x-filename", "image"), await request.body())]
        raise _Refused(415, f"send images as multipart/form-data files or as an image/* body, not "
                            f"{content_type or 'no content type'}")

    @app.post("/v1/score", summary="score uploaded images",
              description="Multipart form files (any field name, up to the file limit), or one image as the raw "
                          "body with an image/* content type. Per image: name, mean, std, the 10-bin distribution, "
                          "or an error.")
    async def score(request: Request, crops_mode: Literal[CROP_MODES] = Query(DEFAULT_CROPS, alias="crops")):
        try:
            check_crops(crops_mode, scorer.engine)
        except PynimaError as e:
            return JSONResponse({"error": str(e)}, 422)
        try:
            items = await read_images(request)
        except _Refused as e:
            return JSONResponse({"error": str(e)}, e.status)
        results = await asyncio.gather(*(score_one(name, data, crops_mode) for name, data in items))
        if len(results) == 1 and "error" in results[0]:
            return JSONResponse({"error": results[0]["error"], "results": results}, results[0].pop("status"))
        for r in results:
            r.pop("status", None)
        return {"results": results}

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
        return {"name": meta.get("pynima_name", str(model or "bundled")), "version": meta.get("pynima_model_version"),
                "backbone": getattr(scorer.engine, "backbone", meta.get("pynima_backbone")),
                "engine": scorer.engine.name, "pynima": pynima.__version__,
                "input": {"crop": CROP, "crops": list(CROP_MODES), "default_crops": DEFAULT_CROPS,
                          "scale": "mean opinion score 0-9 (TID2013's), 10 bins"},
                "limits": {"max_body_bytes": limits.max_body, "max_files": limits.max_files},
                "card": meta.get("pynima_card")}

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    return _Guard(app, limits, metrics)


SETTINGS_ENV = "PYNIMA_SERVE"  # create_app's arguments as JSON, for uvicorn's worker processes (--workers N)


def app_from_environment():
    """The app of ``create_app(**json.loads($PYNIMA_SERVE))``: the factory uvicorn imports in each worker process."""
    import json
    import os

    settings = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
    settings["limits"] = Limits(**settings.get("limits", {}))
    return create_app(**settings)


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8000, engine: str | None = None,
          workers: int = 1, max_batch: int = 32, max_wait: float = 0.005, limits: Limits = Limits(),
          cors: list[str] | tuple[str, ...] = ()) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM (in-flight requests are finished first)."""
    import json
    import os
    from dataclasses import asdict

    import uvicorn

    settings = {"model": model, "engine": engine, "max_batch": max_batch, "max_wait": max_wait,
                "limits": asdict(limits), "cors": list(cors)}
    if workers > 1:  # each worker process builds its own app (and model) from the environment
        os.environ[SETTINGS_ENV] = json.dumps(settings)
        uvicorn.run("pynima.serve:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    timeout_graceful_shutdown=30)
    else:
        app = create_app(model, engine, max_batch, max_wait, limits, cors)
        uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=30)
