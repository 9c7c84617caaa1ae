"""Running the app: uvicorn with a bounded request-head time (``H11``), connection caps and the open-file limit
raised to fit them, worker processes that exit with their supervisor, graceful shutdown on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pynima.config import Connections, Limits
from pynima.errors import PynimaError
from pynima.serving.app import DEFAULT_CONNECTIONS, DEFAULT_LIMITS, check_settings, create_app
from pynima.serving.guards import default_allowed_hosts, error_body

__all__ = [
    "GRACEFUL_SHUTDOWN",
    "OTHER_FILES",
    "PARENT_ENV",
    "SETTINGS_ENV",
    "WATCH_INTERVAL",
    "app_from_environment",
    "serve",
]

log = logging.getLogger(__name__)


GRACEFUL_SHUTDOWN = 30  # seconds that SIGTERM leaves requests in flight to finish


class _H11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request head, which uvicorn lacks: a client that sends its
    headers slowly, or never finishes them (slowloris), would hold its connection forever. The head of each request
    must arrive within ``config.header_timeout`` seconds of the connection or of the previous response; otherwise the
    client gets a 408 and the connection is closed.
    """

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
            body = error_body(f"request headers not received within {self.config.header_timeout:g} s")
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()


class _Config(uvicorn.Config):
    """uvicorn's Config with ``header_timeout`` for ``_H11`` (a class of this module, so that it pickles into the
    worker processes).
    """

    def __init__(self, app, header_timeout: float, **kwargs):
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout


def _fit_open_files(connections: int) -> int:
    """Raise this process's soft limit on open files (within the hard one) so that ``connections`` fit, each being a
    file descriptor: when they run out, accept() fails and every client, /healthz included, hangs. The number of
    connections that fit.
    """
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
    PynimaError naming the address and the OS's reason when it cannot be.
    """
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
    finished), then an exit if that has not ended it.
    """

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
    which exits when its supervisor ($PYNIMA_SERVE_PARENT) does.
    """
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
    the log names. ``allowed_hosts``: default ``default_allowed_hosts(host)``.
    """
    from dataclasses import asdict

    from uvicorn.supervisors import Multiprocess

    if (
        workers < 1
        or min(connections.max_connections, connections.max_header_bytes) < 1
        or min(connections.header_timeout, connections.keep_alive) <= 0
    ):
        raise PynimaError("workers, the connection limit, the header size and the timeouts must be positive")
    allowed_hosts = list(default_allowed_hosts(host) if allowed_hosts is None else allowed_hosts)
    check_settings(max_batch, max_wait, limits, allowed_hosts)
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
            config = _uvicorn_config("pynima.serving.server:app_from_environment", host, port, workers, connections)
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
    deadline, the connection limits, graceful shutdown.
    """
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
