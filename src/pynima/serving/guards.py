"""The service's guards against hostile clients, as ASGI middleware: trusted Host names (DNS rebinding), same-origin
POSTs, body size and time limits, and the JSON error every refusal gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.middleware.trustedhost import TrustedHostMiddleware

from pynima.config import Limits

__all__ = [
    "ANY_ADDRESS",
    "Guard",
    "KNOWN_PATHS",
    "LOOPBACK_HOSTS",
    "PROBES",
    "Refused",
    "RequestMetrics",
    "SameOrigin",
    "TrustedHosts",
    "default_allowed_hosts",
    "error_body",
    "refuse",
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


ANY_ADDRESS = ("0.0.0.0", "::", "")


def _header(scope, name: bytes) -> str | None:
    """The first value of the header ``name`` (lower case) of an ASGI scope, or None."""
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def _host_and_port(netloc: str, scheme: str) -> tuple[str | None, int | None]:
    """(host, port) of ``host[:port]`` (a Host header, an origin's authority), the port defaulting to the scheme's;
    (None, None) if it does not parse.
    """
    try:
        parts = urlsplit(f"//{netloc}")
        return parts.hostname, parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None, None


def default_allowed_hosts(host: str) -> list[str]:
    """The Host headers a server bound to ``host`` answers to by default: that address, with the loopback names when
    it is a loopback one, and this machine's names and addresses when it is every interface (0.0.0.0, ::).
    """
    names = [host]
    if host in LOOPBACK_HOSTS or host.startswith("127."):
        names += LOOPBACK_HOSTS
    elif host in ANY_ADDRESS:
        names += [*LOOPBACK_HOSTS, socket.gethostname(), socket.getfqdn()]
        with contextlib.suppress(OSError):
            names += socket.gethostbyname_ex(socket.gethostname())[2]
    return list(dict.fromkeys(n.lower() for n in names if n and n not in ANY_ADDRESS))


class TrustedHosts(TrustedHostMiddleware):
    """Starlette's TrustedHostMiddleware (its patterns: names, ``*.example.com``, ``*``), answering JSON: a request
    whose Host header is none of ``allowed_hosts`` is refused with 400, so a DNS-rebinding page (evil.example
    resolved to 127.0.0.1) cannot reach the service through a visitor's browser. The probes (/healthz, /readyz) are
    exempt: they reveal nothing, and load balancers and orchestrators often send an IP address as the Host.
    """

    async def __call__(self, scope, receive, send):
        """ASGI entry: apply this guard to an HTTP request, pass everything else through."""
        if self.allow_any or scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"host") or ""
        host = (_host_and_port(given, "http")[0] or "").lower()
        if host and any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in self.allowed_hosts):
            await self.app(scope, receive, send)
            return
        await refuse(
            send,
            400,
            f"Host header {given!r} is not a name this server answers to "
            f"({', '.join(self.allowed_hosts)}); if it is, start it with --allowed-hosts",
        )


class SameOrigin:
    """ASGI middleware refusing (403) a POST from a page of another origin, one whose Origin header names another host
    or port than the request's Host, unless ``cors`` lists that origin (or ``*``). Browsers send form and multipart
    posts across sites without asking first (no CORS preflight), so without it any web page could make its visitors'
    browsers post images here. Clients that are not browsers (curl) send no Origin and are not affected.
    """

    def __init__(self, app, cors: Sequence[str]):
        self.app, self.cors = app, set(cors)

    async def __call__(self, scope, receive, send):
        """ASGI entry: apply this guard to an HTTP request, pass everything else through."""
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None or scope["method"] in ("GET", "HEAD", "OPTIONS") or self._allowed(origin, scope):
            await self.app(scope, receive, send)
            return
        await refuse(
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


class Guard:
    """ASGI middleware around the app: a request body over ``limits.max_body`` bytes is refused with 413 (from
    Content-Length when given, else while it streams), one that does not arrive within ``limits.body_timeout``
    seconds with 408; every request is counted and timed for /metrics. Written here because Starlette and uvicorn
    have neither a body-size nor a body-read timeout setting (and a plain ASGI middleware, unlike Starlette's
    BaseHTTPMiddleware, lets the handler see the refusal raised while it reads the body).
    """

    def __init__(self, app, limits: Limits, metrics: RequestMetrics):
        self.app, self.limits, self.metrics = app, limits, metrics

    async def __call__(self, scope, receive, send):
        """ASGI entry: apply this guard to an HTTP request, pass everything else through."""
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
            return await refuse(
                send, 413, f"request body of {int(length):,} bytes is over the limit of {self.limits.max_body:,}"
            )
        seen, deadline = 0, time.monotonic() + self.limits.body_timeout

        async def limited():
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise Refused(408, f"request body not received within {self.limits.body_timeout:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limits.max_body:
                    raise Refused(413, f"request body over the limit of {self.limits.max_body:,} bytes")
            return message

        sent = False

        async def tracking_send(message):
            nonlocal sent
            sent = sent or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except Refused as e:
            if not sent:
                await refuse(send, e.status, str(e))


class RequestMetrics:
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


class Refused(Exception):
    """A request refused with an HTTP status, a message and optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


PROBES = ("/healthz", "/readyz")


KNOWN_PATHS = {"/v1/score", "/healthz", "/readyz", "/v1/model", "/metrics", "/", "/docs", "/openapi.json"}


def error_body(message: str) -> bytes:
    """The JSON body of every refusal."""
    return json.dumps({"error": message}).encode()


async def refuse(send, status: int, message: str) -> None:
    """Answer ``{"error": message}`` with ``status`` and close the connection."""
    body = error_body(message)
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
