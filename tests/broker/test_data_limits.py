"""``data`` limits: trustkit-broker enforces what nats-server only carries.

Semantics (docs/broker.md, "Data limits"): a quota of published bytes (payload plus headers), never
a rate. The user JWT's ``data`` is per connection, counted since CONNECT; the account JWT's ``data``
covers all of the account's connections, counted since the broker started. A publish that would
go over either is dropped with ``Permissions Violation for Publish to "<subject>"`` and the
connection stays: real clients treat that text as non-fatal (nats-py reports it to ``error_cb``
and keeps its subscriptions). Refused publishes are not counted. A pushed account JWT changes the
limit for the next publish, not the count.

These tests run on the broker only, because nats-server does not enforce ``data`` (the last test
shows that on the real nats-server).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from broker.config import BrokerConfig, parse_conf
from broker.server import Broker
from tests.natsserver import NatsServer
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

USER_DATA = 100
ACCOUNT_DATA = 150


@dataclass
class World:
    tmp: Path
    op: KeyPair
    sys_creds: Path
    quota: KeyPair  # account with data: ACCOUNT_DATA
    users: dict[str, tuple[KeyPair, str, Path]]
    config: str
    now: int

    def creds(self, name: str) -> str:
        return str(self.users[name][2])

    def account_jwt(self, data: int) -> str:
        claims = jwt.AccountClaims(
            sub=self.quota.public_key, name="QUOTA", limits=jwt.AccountLimits(data=data)
        )
        self.now += 1
        return claims.encode(self.op, iat=self.now)


@pytest.fixture
def world(tmp_path: Path) -> World:
    now = int(time.time()) - 100
    op, sys_acct, app, quota = (
        KeyPair.generate(p)
        for p in (PrefixByte.OPERATOR, PrefixByte.ACCOUNT, PrefixByte.ACCOUNT, PrefixByte.ACCOUNT)
    )
    op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
        op, iat=now
    )
    accounts = [
        jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now),
        jwt.AccountClaims(sub=app.public_key, name="APP").encode(op, iat=now),
    ]
    users: dict[str, tuple[KeyPair, str, Path]] = {}
    for name, account, data in (
        ("metered", app, USER_DATA),
        ("free", app, -1),
        ("q1", quota, -1),
        ("q2", quota, -1),
        ("sys", sys_acct, -1),
    ):
        kp = KeyPair.generate(PrefixByte.USER)
        token = jwt.UserClaims(sub=kp.public_key, name=name, data=data).encode(account, iat=now)
        path = tmp_path / f"{name}.creds"
        path.write_bytes(format_user_creds(token, kp.seed))
        users[name] = (kp, token, path)
    w = World(tmp_path, op, users["sys"][2], quota, users, "", now)
    w.config = mem_resolver_config(op_jwt, [*accounts, w.account_jwt(ACCOUNT_DATA)])
    return w


@asynccontextmanager
async def running(world: World) -> AsyncIterator[Broker]:
    cfg = BrokerConfig.from_conf(parse_conf(world.config))
    cfg.host, cfg.port, cfg.http_port = "127.0.0.1", 0, 0
    broker = Broker(cfg)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


class Client:
    """A nats-py client that records what its error callback was told."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: NATS | None = None

    async def connect(self, url: str, creds: str) -> Client:
        async def on_error(e: Exception) -> None:
            self.errors.append(str(e))

        self.nc = await nats.connect(
            url, user_credentials=creds, error_cb=on_error, allow_reconnect=False, max_reconnect_attempts=0
        )
        return self

    async def pub(self, subject: str, size: int, **kw: Any) -> None:
        assert self.nc is not None
        await self.nc.publish(subject, b"x" * size, **kw)
        await self.nc.flush(timeout=2)  # the PONG comes after any -ERR for the publish


def _connz(broker: Broker) -> dict[str, Any]:
    port = broker.config.http_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/connz", timeout=3) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


async def _drain(sub: Any) -> list[int]:
    sizes: list[int] = []
    while True:
        try:
            msg = await sub.next_msg(timeout=0.3)
        except nats.errors.TimeoutError:
            return sizes
        sizes.append(len(msg.data))


DENIED = 'nats: permissions violation for publish to "m.data"'


def test_user_data_limit_is_per_connection_and_the_client_keeps_working(world: World) -> None:
    async def run() -> None:
        async with running(world) as broker:
            url = f"nats://127.0.0.1:{broker.config.port}"
            watcher = await Client().connect(url, world.creds("free"))
            metered = await Client().connect(url, world.creds("metered"))
            assert watcher.nc is not None and metered.nc is not None
            seen = await watcher.nc.subscribe("m.>")
            inbox = await metered.nc.subscribe("to.metered")
            await watcher.nc.flush()

            await metered.pub("m.data", 60)  # 60 of 100
            await metered.pub("m.data", 41)  # would be 101: refused, not counted
            await metered.pub("m.data", 40)  # exactly 100: allowed
            await metered.pub("m.data", 1)  # refused
            assert await _drain(seen) == [60, 40]
            assert metered.errors == [DENIED, DENIED]
            # nats-py keeps the connection: it still receives, and it may still publish 0 bytes
            assert metered.nc.is_connected
            await watcher.pub("to.metered", 500)
            assert len((await inbox.next_msg(timeout=2)).data) == 500
            await metered.pub("m.data", 0)
            assert await _drain(seen) == [0]

            connz = {c["name"]: c for c in (await asyncio.to_thread(_connz, broker))["connections"]}
            m = next(c for c in connz.values() if c["data_limit"] == USER_DATA)
            assert m["data_used"] == 100 and m["in_bytes"] == 142  # in_bytes counts refused ones too
            assert m["account_data_limit"] == -1

            # the limit is per connection: a new connection of the same user starts at zero
            again = await Client().connect(url, world.creds("metered"))
            await again.pub("m.data", 100)
            assert await _drain(seen) == [100] and again.errors == []
            for c in (watcher, metered, again):
                assert c.nc is not None
                await c.nc.close()

    asyncio.run(run())


def test_headers_count_against_the_limit(world: World) -> None:
    async def run() -> None:
        async with running(world) as broker:
            url = f"nats://127.0.0.1:{broker.config.port}"
            metered = await Client().connect(url, world.creds("metered"))
            # nats-py sends "NATS/1.0\r\nK: v\r\n\r\n", 18 bytes: 82 + 18 fills the quota exactly
            await metered.pub("m.data", 82, headers={"K": "v"})
            await metered.pub("m.data", 0, headers={"K": "v"})
            assert metered.errors == [DENIED]
            (conn,) = [c for c in (await asyncio.to_thread(_connz, broker))["connections"]]
            assert conn["data_used"] == 100
            assert metered.nc is not None
            await metered.nc.close()

    asyncio.run(run())


def test_account_data_limit_spans_connections_and_follows_pushes(world: World) -> None:
    async def run() -> None:
        async with running(world) as broker:
            url = f"nats://127.0.0.1:{broker.config.port}"
            q1 = await Client().connect(url, world.creds("q1"))
            q2 = await Client().connect(url, world.creds("q2"))
            assert q1.nc is not None and q2.nc is not None
            seen = await q1.nc.subscribe("m.>")
            await q1.nc.flush()
            await q1.pub("m.data", 100)
            await q2.pub("m.data", 60)  # 160 > 150: refused
            await q2.pub("m.data", 50)  # 150: allowed
            assert await _drain(seen) == [100, 50]
            assert (q1.errors, q2.errors) == ([], [DENIED])

            # the account's count outlives its connections
            await q2.nc.close()
            q3 = await Client().connect(url, world.creds("q2"))
            await q3.pub("m.data", 1)
            assert q3.errors == [DENIED] and await _drain(seen) == []

            # a pushed JWT with a higher limit applies to the next publish; the count stays
            sys = await nats.connect(url, user_credentials=str(world.sys_creds), allow_reconnect=False)
            subject = f"$SYS.REQ.ACCOUNT.{world.quota.public_key}.CLAIMS.UPDATE"
            reply = json.loads((await sys.request(subject, world.account_jwt(200).encode(), timeout=3)).data)
            assert reply["data"]["code"] == 200
            await q3.pub("m.data", 50)
            await q3.pub("m.data", 1)
            assert await _drain(seen) == [50] and q3.errors == [DENIED, DENIED]
            connz = (await asyncio.to_thread(_connz, broker))["connections"]
            quota_conns = [c for c in connz if c["account"] == world.quota.public_key]
            assert {(c["account_data_used"], c["account_data_limit"]) for c in quota_conns} == {(200, 200)}

            # unlimited again (-1): everything flows
            await sys.request(subject, world.account_jwt(-1).encode(), timeout=3)
            await q3.pub("m.data", 1000)
            assert await _drain(seen) == [1000]
            for nc in (q1.nc, q3.nc, sys):
                assert nc is not None
                await nc.close()

    asyncio.run(run())


def test_exact_refusal_on_the_wire_keeps_the_connection(world: World) -> None:
    """Raw protocol, verbose on: the refused publish gets the -ERR and no +OK; PING still PONGs."""

    async def run() -> list[bytes]:
        async with running(world) as broker:
            kp, token, _ = world.users["metered"]

            def session() -> list[bytes]:
                with socket.create_connection(("127.0.0.1", broker.config.port), timeout=3) as s:
                    f = s.makefile("rb")
                    info = json.loads(f.readline()[5:])
                    sig = sign_nonce(kp, info["nonce"])
                    body = {"jwt": token, "sig": sig, "verbose": True, "protocol": 1}
                    s.sendall(
                        b"CONNECT " + json.dumps(body).encode() + b"\r\n"
                        b"PUB m.data 100\r\n" + b"x" * 100 + b"\r\nPUB m.data 1\r\nx\r\nPING\r\n"
                    )
                    lines = []
                    while (line := f.readline().rstrip(b"\r\n")) != b"PONG":
                        lines.append(line)
                    return lines

            return await asyncio.to_thread(session)

    assert asyncio.run(run()) == [b"+OK", b"+OK", b"-ERR 'Permissions Violation for Publish to \"m.data\"'"]


@pytest.mark.real
def test_nats_server_carries_but_does_not_enforce_data(world: World, tmp_path: Path) -> None:
    """Why these tests are broker-only: the real nats-server delivers past the user's ``data``."""
    (tmp_path / "nats").mkdir()
    srv = NatsServer(world.config, tmp_path / "nats")

    async def run() -> tuple[list[int], list[str]]:
        metered = await Client().connect(srv.url, world.creds("metered"))
        assert metered.nc is not None
        seen = await metered.nc.subscribe("m.>")
        await metered.pub("m.data", 60)
        await metered.pub("m.data", 60)
        sizes = await _drain(seen)
        await metered.nc.close()
        return sizes, metered.errors

    with srv:
        assert asyncio.run(run()) == ([60, 60], [])
