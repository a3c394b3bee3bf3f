"""The HTTP face: a real uvicorn on a free port, driven with httpx, beside the running service.

The service runs through :func:`callout.runtime.run` (config → registry backend → responder +
HTTP in one event loop) against the real nats-server in config mode; logins come from real
nats-py clients. The backend is the file-backed test backend of ``tests/callout/worlds.py``,
registered by name like ``[backend.ldap]``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import pytest

from callout.audit import AuditRecord
from callout.config import BACKENDS, load_config
from callout.http import HttpContext, _bearer_ok, start_http
from callout.metrics import Metrics
from callout.runtime import Built, run
from tests.callout.worlds import DICT_KIND, toml_text, write_secret
from tests.natsserver import NatsServer
from tests.realcomp import free_port
from trustkit.errors import CalloutError
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

T = TypeVar("T")
ADMIN_TOKEN = "admin-token-Zq81"
USERS = {
    "alice": {"password": "alice-pw-1", "groups": ["ops"]},
    "carol": {"password": "carol-pw-1", "groups": ["sales"]},
}
POLICY = {
    "max_lifetime": 600,
    "rules": [{"id": "ops", "groups": ["ops"], "pub": {"allow": ["ops.>"]}, "sub": {"allow": ["_INBOX.>"]}}],
}


@dataclass
class Setup:
    tmp: Path
    server: NatsServer
    config: Path
    http_port: int
    down_file: Path
    audit: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setitem(BACKENDS, "dict", DICT_KIND)
    issuer = KeyPair.generate(PrefixByte.ACCOUNT)
    conf = (
        "authorization {\n  timeout: 1\n"
        '  users: [ { user: "auth", password: "auth-pw" } ]\n'
        f"  auth_callout {{ issuer: {issuer.public_key}, auth_users: [ auth ] }}\n}}"
    )
    write_secret(tmp_path / "issuer.nk", issuer.seed)
    write_secret(tmp_path / "nats.pw", "auth-pw")
    write_secret(tmp_path / "admin.tok", ADMIN_TOKEN)
    (tmp_path / "users.json").write_text(json.dumps(USERS))
    (tmp_path / "policy.toml").write_text(toml_text(POLICY))
    port = free_port()
    with NatsServer(conf, tmp_path) as server:
        doc = {
            "nats": {"url": server.url, "user": "auth", "password_file": "nats.pw"},
            "issuer": {"seed_file": "issuer.nk"},
            "policy": {"file": "policy.toml"},
            "audit": {"file": "audit/decisions.jsonl"},
            "http": {"port": port, "admin_token_file": "admin.tok", "ready_cache": 0},
            "backend": {"dict": {"users_file": "users.json", "down_file": "down"}},
        }
        (tmp_path / "callout.toml").write_text(toml_text(doc))
        yield Setup(tmp_path, server, tmp_path / "callout.toml", port, tmp_path / "down", tmp_path / "audit")


async def serving(s: Setup, body: Callable[[httpx.AsyncClient, Built], Awaitable[T]]) -> T:
    """Run the program in this loop for the duration of ``body``."""
    cfg = load_config(s.config, {})
    stop = asyncio.Event()
    ready: asyncio.Future[Built] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(cfg, stop=stop, ready=lambda b, _: ready.set_result(b)))
    try:
        built = await asyncio.wait_for(asyncio.shield(ready), 10)
        async with httpx.AsyncClient(base_url=s.base, timeout=5) as client:
            return await asyncio.wait_for(body(client, built), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def login(s: Setup, user: str, password: str) -> bool:
    try:
        nc = await nats.connect(
            s.server.url, user=user, password=password, allow_reconnect=False, max_reconnect_attempts=0
        )
    except nats.errors.Error:
        return False
    await nc.close()
    return True


_SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? -?[0-9.e+-]+(Inf)?$')


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in metrics:\n{text}")


def test_health_metrics_and_decisions(setup: Setup) -> None:
    async def body(client: httpx.AsyncClient, built: Built) -> None:
        r = await client.get("/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        r = await client.get("/readyz")
        assert (r.status_code, r.json()) == (200, {"status": "ready"})

        assert await login(setup, "alice", "alice-pw-1")
        assert not await login(setup, "alice", "wrong-pw-9")
        assert not await login(setup, "carol", "carol-pw-1")

        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.text
        for line in text.splitlines():
            assert line.startswith("# ") or _SAMPLE.match(line), line
        assert metric(text, 'trustkit_callout_requests_total{outcome="issued"}') == 1
        assert metric(text, 'trustkit_callout_requests_total{outcome="refused"}') == 2
        assert metric(text, "trustkit_callout_allowed_total") == 1
        assert metric(text, 'trustkit_callout_denied_total{reason="invalid_credentials"}') == 1
        assert metric(text, 'trustkit_callout_denied_total{reason="no_matching_rule"}') == 1
        assert metric(text, 'trustkit_callout_backend_seconds_bucket{backend="dict",le="+Inf"}') == 3
        assert metric(text, 'trustkit_callout_backend_seconds_count{backend="dict"}') == 3
        assert metric(text, "trustkit_callout_nats_connected") == 1
        assert "# TYPE trustkit_callout_backend_seconds histogram" in text

        # the admin endpoint: bearer token, compared in constant time
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}):
            r = await client.get("/v1/decisions", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer"
            assert "decisions" not in r.json()
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        r = await client.get("/v1/decisions", headers=auth)
        assert r.status_code == 200
        decisions = r.json()["decisions"]
        assert [(d["username"], d["outcome"], d["reason_code"]) for d in decisions] == [
            ("carol", "refused", "no_matching_rule"),
            ("alice", "refused", "invalid_credentials"),
            ("alice", "issued", "allowed"),
        ]
        assert decisions[2]["user_nkey"].startswith("U") and decisions[2]["backend"] == "dict"
        for secret in ("alice-pw-1", "wrong-pw-9", "carol-pw-1", "auth-pw", ADMIN_TOKEN):
            assert secret not in r.text
        r = await client.get("/v1/decisions", params={"limit": 1}, headers=auth)
        assert len(r.json()["decisions"]) == 1
        assert (await client.get("/v1/decisions", params={"limit": 0}, headers=auth)).status_code == 422

        # a backend that fails its probe makes the service not ready, with the reason
        setup.down_file.write_text("")
        r = await client.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"status": "not ready", "reasons": ["dict: down file present"]}
        setup.down_file.unlink()
        assert (await client.get("/readyz")).status_code == 200

    asyncio.run(serving(setup, body))
    # the audit log and its index: 0600, one line per decision, the index only for issued keys
    log_file, index = setup.audit / "decisions.jsonl", setup.audit / "decisions.jsonl.index"
    for f in (log_file, index):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["reason_code"] for r in records] == ["allowed", "invalid_credentials", "no_matching_rule"]
    assert all(set(r) == set(AuditRecord.__dataclass_fields__) for r in records)
    [entry] = [json.loads(line) for line in index.read_text().splitlines()]
    assert entry["identity"] == "alice" and entry["user_nkey"] == records[0]["user_nkey"]
    assert entry["exp"] - entry["iat"] == 600
    assert "alice-pw-1" not in log_file.read_text()


def test_readyz_follows_the_nats_connection(setup: Setup) -> None:
    async def body(client: httpx.AsyncClient, built: Built) -> None:
        assert (await client.get("/readyz")).status_code == 200
        setup.server.stop()
        for _ in range(100):
            r = await client.get("/readyz")
            if r.status_code == 503:
                break
            await asyncio.sleep(0.05)
        assert r.status_code == 503 and "nats: not connected" in r.json()["reasons"]
        assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
        assert metric((await client.get("/metrics")).text, "trustkit_callout_nats_connected") == 0
        setup.server.start()  # same port: nats-py reconnects and resubscribes
        for _ in range(200):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/readyz")).status_code == 200
        assert await login(setup, "alice", "alice-pw-1")

    asyncio.run(serving(setup, body))


def test_no_admin_token_means_no_admin_access(setup: Setup) -> None:
    async def body() -> int:
        async def ready() -> tuple[bool, list[str]]:
            return True, []

        ctx = HttpContext(ready=ready, metrics=lambda: "", decisions=lambda n: [], admin_token=None)
        server = await start_http(ctx, "127.0.0.1", 0)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                return (await client.get("/v1/decisions", headers={"Authorization": "Bearer x"})).status_code
        finally:
            await server.stop()

    assert asyncio.run(body()) == 401


def test_a_busy_port_is_a_clear_error() -> None:
    async def body() -> None:
        async def ready() -> tuple[bool, list[str]]:
            return True, []

        ctx = HttpContext(ready=ready, metrics=lambda: "", decisions=lambda n: [], admin_token="t")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            with pytest.raises(CalloutError, match=r"cannot listen on 127\.0\.0\.1"):
                await start_http(ctx, "127.0.0.1", s.getsockname()[1])

    asyncio.run(body())


def test_bearer_comparison() -> None:
    assert _bearer_ok("Bearer abc", "abc")
    assert _bearer_ok("bearer abc", "abc")
    assert not _bearer_ok("Bearer abd", "abc")
    assert not _bearer_ok("Bearer abcd", "abc")
    assert not _bearer_ok("Bearer ", "abc")
    assert not _bearer_ok("abc", "abc")
    assert not _bearer_ok(None, "abc")
    assert not _bearer_ok("Bearer abc", None)


def test_metrics_text_format() -> None:
    m = Metrics(buckets=(0.01, 0.1))
    base: dict[str, Any] = {"at": 0, "backend": 'we"ird\n'}
    m.observe(AuditRecord(outcome="issued", reason_code="allowed", backend_seconds=0.005, **base))
    m.observe(AuditRecord(outcome="refused", reason_code="invalid_credentials", backend_seconds=0.05, **base))
    m.observe(AuditRecord(outcome="dropped", reason_code="request_expired", **base))  # no backend asked
    text = m.render({"trustkit_callout_in_flight": ("Requests now.", 2)})
    lab = 'backend="we\\"ird\\n"'
    assert f'trustkit_callout_backend_seconds_bucket{{{lab},le="0.01"}} 1' in text
    assert f'trustkit_callout_backend_seconds_bucket{{{lab},le="0.1"}} 2' in text
    assert f'trustkit_callout_backend_seconds_bucket{{{lab},le="+Inf"}} 2' in text
    assert f"trustkit_callout_backend_seconds_sum{{{lab}}} 0.055" in text
    assert 'trustkit_callout_denied_total{reason="request_expired"} 1' in text
    assert 'trustkit_callout_requests_total{outcome="dropped"} 1' in text
    assert "# TYPE trustkit_callout_in_flight gauge\ntrustkit_callout_in_flight 2" in text
    assert text.endswith("\n")
