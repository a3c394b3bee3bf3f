"""The callout's HTTP face: FastAPI on its own port, served by uvicorn in the service's event loop.

* ``GET /healthz`` — 200 while the process serves HTTP (liveness);
* ``GET /readyz`` — 200 when the NATS connection is up and every backend answers its probe, else
  503 with the reasons (``{"status": "not ready", "reasons": [...]}``);
* ``GET /metrics`` — Prometheus text format (:class:`callout.metrics.Metrics`);
* ``GET /v1/decisions?limit=N`` — the most recent decisions, newest first, from the in-memory
  ring (audit records: no password, token or seed is ever in one). Needs
  ``Authorization: Bearer <admin token>``, compared in constant time; 401 without it, with a
  wrong one, or when no admin token is configured.

This module imports FastAPI and uvicorn, so only :func:`callout.runtime.run` imports it, and only
when ``[http] port`` is set. uvicorn runs on a socket bound here (a bind error is ours to
report, not a ``sys.exit`` inside uvicorn) and does not take over the process's signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from trustkit.errors import CalloutError

__all__ = ["METRICS_CONTENT_TYPE", "HttpContext", "HttpServer", "create_app", "start_http"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class HttpContext:
    """What the endpoints read: callables, so the app holds no reference to service internals."""

    ready: Callable[[], Awaitable[tuple[bool, list[str]]]]
    metrics: Callable[[], str]
    decisions: Callable[[int], list[dict[str, Any]]]
    admin_token: str | None
    ring_size: int = 256


def _bearer_ok(header: str | None, token: str | None) -> bool:
    if token is None or not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # constant time over the bytes: a wrong token of the right length takes as long as any other
    return hmac.compare_digest(value.strip().encode(), token.encode())


def create_app(ctx: HttpContext) -> FastAPI:
    app = FastAPI(title="trustkit-callout", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        ok, reasons = await ctx.ready()
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return PlainTextResponse(ctx.metrics(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/v1/decisions")
    async def decisions(request: Request, limit: int = Query(100, ge=1)) -> Response:
        if not _bearer_ok(request.headers.get("authorization"), ctx.admin_token):
            return JSONResponse(
                {"detail": "a valid admin bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return JSONResponse({"decisions": ctx.decisions(min(limit, ctx.ring_size))})

    return app


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: the service owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class HttpServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.task, 5)


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CalloutError(f"[http] cannot listen on {host}:{port}: {exc}", code="callout_config") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise CalloutError(
            f"[http] cannot listen on {host}:{port}: {exc.strerror or exc}", code="callout_config"
        ) from None
    return sock


async def start_http(ctx: HttpContext, host: str, port: int) -> HttpServer:
    """Serve :func:`create_app` on ``host:port`` (0: any free port) in the running loop.

    Returns once uvicorn accepts connections. Raises :class:`CalloutError` if it cannot listen.
    """
    sock = _listen(host, port)
    config = uvicorn.Config(
        create_app(ctx), log_config=None, log_level="warning", access_log=False, lifespan="off"
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            exc = task.exception() if not task.cancelled() else None
            raise CalloutError(f"[http] uvicorn did not start: {exc!r}", code="callout_config")
        await asyncio.sleep(0.01)
    return HttpServer(server, task, int(sock.getsockname()[1]))
