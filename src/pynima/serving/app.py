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
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from pynima.config import CROP_MODES, CROP_SPELLINGS, DEFAULT_CROPS, Connections, Limits, crop_mode
from pynima.errors import DatasetError, PynimaError
from pynima.images import decode_rgb, open_image
from pynima.model.labels import moments
from pynima.scale import CROP
from pynima.scoring.models import load
from pynima.scoring.preprocess import check_crops, crops, padding_note
from pynima.scoring.results import Result
from pynima.scoring.scorer import Scorer
from pynima.serving.batching import Batcher
from pynima.serving.guards import (
    LOOPBACK_HOSTS,
    Guard,
    Refused,
    RequestMetrics,
    SameOrigin,
    TrustedHosts,
)

__all__ = [
    "DEFAULT_CONNECTIONS",
    "DEFAULT_LIMITS",
    "DOCS_ASSETS",
    "ErrorResponse",
    "FORM_FILES",
    "PAGE",
    "RETRY_AFTER",
    "SCORE_BODY",
    "ScoreResponse",
    "ScoredImage",
    "check_settings",
    "create_app",
    "read_images",
    "score_one",
]

log = logging.getLogger(__name__)


PAGE = Path(__file__).with_name("page.html")


RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 when the server's pixel budget is spent


def _multipart_refusal(e: Exception, max_files: int) -> Refused:
    """The refusal of a multipart body Starlette could not parse (its message without Starlette's "400: ")."""
    problem = str(getattr(e, "detail", e))
    if "Too many files" in problem:
        return _too_many_files(f"more than {FORM_FILES}", max_files)
    if "Too many fields" in problem:
        return Refused(413, f"too many form fields: more than {max_files} (the limit is {max_files} per request)")
    return Refused(400, f"multipart body refused: {problem}")


def _too_many_files(count: int | str, max_files: int) -> Refused:
    """413 naming the number of files sent and the limit."""
    return Refused(413, f"too many files: {count} (the limit is {max_files} per request)")


def _check_pixels(pixels: int, limits: Limits, budget: _PixelBudget) -> None:
    """Take ``pixels`` from ``budget`` for a request, or Refused: 413 over the request's limit, 503 (Retry-After)
    while the requests in flight hold the rest of the budget.
    """
    if pixels > limits.max_request_pixels:
        raise Refused(
            413,
            f"the images of this request have {pixels:,} pixels, over the limit of "
            f"{limits.max_request_pixels:,} per request: send fewer or smaller images",
        )
    if not budget.take(pixels):
        raise Refused(
            503,
            f"busy: the requests in flight are decoding {budget.used:,} pixels of the "
            f"{budget.limit:,} the server allows at once; retry in {RETRY_AFTER} s",
            {"Retry-After": str(RETRY_AFTER)},
        )


def _status(problem: str) -> int:
    """415 for what is not an image at all, 422 for an image refused by the decoding policy."""
    return 415 if "not an image" in problem else 422


FORM_FILES = 1000  # files a multipart body is parsed for, to name their number when it is over the limit


DEFAULT_LIMITS, DEFAULT_CONNECTIONS = Limits(), Connections()  # frozen: one shared default each


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
    predict`` does. The pixel budgets bound the memory instead.
    """
    from PIL import Image

    try:
        with open_image(io.BytesIO(data), "upload", "not an image") as im:
            w, h = im.size
    except DatasetError:
        return 0
    return 0 if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS else w * h


class _PixelBudget:
    """Decoded pixels of the requests in flight, at most ``limit``: a request takes its images' pixels before
    decoding them and gives them back once answered (the event loop's one thread does both: no lock).
    """

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def take(self, pixels: int) -> bool:
        if self.used + pixels > self.limit:
            return False
        self.used += pixels
        return True

    def give(self, pixels: int) -> None:
        self.used -= pixels


def _model_name(scorer: Scorer, model: str | Path | None) -> str:
    """The model's name from its metadata, else its file name: never the directories of the server's files."""
    return scorer.engine.metadata.get("pynima_name") or (Path(model).name if model else "bundled")


async def read_images(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded image of a POST /v1/score; Refused for what is not an upload of images, or for
    more files than ``limits`` allow.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=max(FORM_FILES, limits.max_files), max_fields=limits.max_files)
        except Refused:
            raise
        except Exception as e:  # noqa: BLE001 - Starlette's HTTPException for too many parts or bad syntax
            raise _multipart_refusal(e, limits.max_files) from None
        uploads = [(getattr(v, "filename", None) or k, v) for k, v in form.multi_items() if hasattr(v, "read")]
        if not uploads:
            raise Refused(400, "no image files in the form")
        if len(uploads) > limits.max_files:
            raise _too_many_files(len(uploads), limits.max_files)
        return [(name, await v.read()) for name, v in uploads]
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return [(request.headers.get("x-filename", "image"), await request.body())]
    raise Refused(
        415,
        f"send images as multipart/form-data files or as an image/* body, not {content_type or 'no content type'}",
    )


def _add_read_routes(app, scorer: Scorer, name: str, limits: Limits, metrics: RequestMetrics, state: dict) -> None:
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


async def score_one(
    batcher: Batcher, metrics: RequestMetrics, name: str, data: bytes, mode: str
) -> tuple[Result, int | None]:
    """One upload's result row (its messages start with the upload's name) and, for a refused image, the HTTP status
    it would have alone: decoded in a thread, scored in the batcher's next network call.
    """
    from starlette.concurrency import run_in_threadpool

    batcher.expect()
    try:
        rgb = await run_in_threadpool(decode_rgb, data, name)
    except BaseException as e:
        batcher.cancel()
        if not isinstance(e, DatasetError):
            raise
        metrics.images.labels("refused").inc()
        return Result(name, error=str(e)), _status(str(e))
    p = await batcher.distribution(crops(rgb, mode), expected=True)
    mean, std = moments(p)
    metrics.images.labels("scored").inc()
    padded = padding_note(*rgb.shape[:2])
    warning = f"{name}: {padded}" if padded else None
    return Result(name, float(mean), float(std), tuple(float(v) for v in p), warning), None


def _add_score_route(
    app, scorer: Scorer, batcher: Batcher, metrics: RequestMetrics, limits: Limits, budget: _PixelBudget
) -> None:
    """POST /v1/score of ``create_app``: uploads refused or admitted against the limits and the pixel budget, then
    scored together.
    """
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
        except Refused as e:
            return JSONResponse({"error": str(e)}, e.status, e.headers)
        try:
            results = await asyncio.gather(
                *(score_one(batcher, metrics, name, data, crops_mode) for name, data in items)
            )
        finally:
            budget.give(pixels)
        rows = [{k: v for k, v in r.as_dict("name").items() if v is not None} for r, _ in results]  # no nulls
        if len(results) == 1 and results[0][1] is not None:
            return JSONResponse({"error": rows[0]["error"], "results": rows}, results[0][1])
        return {"results": rows}


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
    Host headers it answers to (Starlette's patterns; default: the loopback names).
    """
    from contextlib import asynccontextmanager

    import pynima

    allowed_hosts = list(LOOPBACK_HOSTS if allowed_hosts is None else allowed_hosts)
    check_settings(max_batch, max_wait, limits, allowed_hosts)
    scorer = load(model, engine=engine, device=device)
    name = _model_name(scorer, model)
    metrics = RequestMetrics()
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
    return Guard(TrustedHosts(SameOrigin(app, cors), allowed_hosts=allowed_hosts), limits, metrics)


def check_settings(max_batch: int, max_wait: float, limits: Limits, allowed_hosts: Sequence[str]) -> None:
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
