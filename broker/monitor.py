"""The monitoring port: ``/healthz``, ``/varz``, ``/connz`` with nats-server's basic fields.

A tiny HTTP/1.0 responder on asyncio streams (no framework on the broker's loop); GET only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from broker.tls import tls_version

if TYPE_CHECKING:
    from broker.server import Broker, Conn


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def varz(b: Broker) -> dict[str, Any]:
    live = list(b.conns)
    t = b.closed_totals
    return {
        "server_id": b.server_key.public_key,
        "server_name": b.info_base["server_name"],
        "version": b.info_base["version"],
        "proto": 1,
        "host": b.config.host,
        "port": b.config.port,
        "max_payload": b.config.max_payload,
        "max_pending": b.config.max_pending,
        "auth_required": b.config.operator_mode,
        "tls_required": b.config.tls is not None,
        "tls_verify": b.config.tls is not None and b.config.tls.verify,
        "tls_timeout": b.config.tls.timeout if b.config.tls is not None else 0,
        "connections": len(live),
        "total_connections": b.total_connections,
        "subscriptions": sum(len(c.subs) for c in live),
        "in_msgs": t[0] + sum(c.in_msgs for c in live),
        "in_bytes": t[1] + sum(c.in_bytes for c in live),
        "out_msgs": t[2] + sum(c.out_msgs for c in live),
        "out_bytes": t[3] + sum(c.out_bytes for c in live),
        "slow_consumers": b.slow_consumers,
        "start": _ts(b.started),
        "now": _ts(time.time()),
        "uptime": f"{int(time.time() - b.started)}s",
    }


def _conn(c: Conn) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cid": c.cid,
        "ip": c.client_ip,
        "account": c.account.key if c.account else None,
        "name": c.name,
        "lang": c.lang,
        "version": c.version,
        "start": _ts(c.started),
        "subscriptions": len(c.subs),
        "in_msgs": c.in_msgs,
        "in_bytes": c.in_bytes,
        "out_msgs": c.out_msgs,
        "out_bytes": c.out_bytes,
        "pending_bytes": c.transport.get_write_buffer_size() if c.transport else 0,
        "authorized_user": c.grant.user_key if c.grant else None,
        # trustkit's data limits (docs/broker.md): bytes counted against the user's and the
        # account's ``data`` limit; -1 is unlimited. in_bytes also counts refused publishes.
        "data_used": c.data_used,
        "data_limit": c.data_limit,
        "account_data_used": c.account.data_used if c.account else 0,
        "account_data_limit": c.account.data_limit if c.account else -1,
    }
    ssl_object = c.transport.get_extra_info("ssl_object") if c.transport and not c.tls_pending else None
    if ssl_object is not None:
        cipher = ssl_object.cipher()
        out["tls_version"] = tls_version(ssl_object)
        out["tls_cipher_suite"] = cipher[0] if cipher else ""
    return out


def connz(b: Broker) -> dict[str, Any]:
    conns = sorted(b.conns, key=lambda c: c.cid)
    return {
        "server_id": b.server_key.public_key,
        "now": _ts(time.time()),
        "num_connections": len(conns),
        "total": len(conns),
        "connections": [_conn(c) for c in conns],
    }


def healthz(b: Broker) -> dict[str, Any]:
    return {"status": "ok"}


ROUTES: dict[str, Callable[[Broker], dict[str, Any]]] = {"/varz": varz, "/connz": connz, "/healthz": healthz}


async def start_monitor(broker: Broker, host: str, port: int) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            route = ROUTES.get(path.rstrip("/") or "/")
            if len(parts) < 2 or parts[0] != "GET" or route is None:
                status, body = "404 Not Found", orjson.dumps({"error": f"unknown endpoint {path!r}"})
            else:
                status, body = "200 OK", orjson.dumps(route(broker), option=orjson.OPT_INDENT_2)
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
