"""Response permissions (``allow_responses``) and the connection timers, on both servers.

A user with ``resp`` may publish to the reply subject of a request it was delivered: ``max``
replies within ``ttl`` (nats-server client.go ``deliverMsg`` / ``responseAllowed``; 0 means the
defaults of 1 reply and 2 minutes, a negative value means no limit). The allowed replies are kept
per connection and pruned of used-up and expired ones when a request is delivered, once more than
4096 were added or more than a second went by since the last prune (``pruneReplyPerms``): a
responder that never answers does not grow without bound. The map is inspected on an in-process
broker with a clock the test sets; what a client sees is compared with nats-server.

The ping timer (``Stale Connection``) is pinned here too: the broker arms it, like the auth
timer, from one shared sweep instead of a timer per connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from broker.config import BrokerConfig, parse_conf
from broker.server import REPLY_PERM_LIMIT, Broker, Conn
from tests.natsserver import ServerProcess
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real

SECOND = 1_000_000_000  # ns


@dataclass
class User:
    key: KeyPair
    token: str


class World:
    def __init__(self) -> None:
        now = int(time.time()) - 100
        op, sys_acct, app = (
            KeyPair.generate(p) for p in (PrefixByte.OPERATOR, PrefixByte.ACCOUNT, PrefixByte.ACCOUNT)
        )
        op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
            op, iat=now
        )
        self.users: dict[str, User] = {}
        specs: dict[str, jwt.ResponsePermission | None] = {
            "asker": None,
            "ttl1s": jwt.ResponsePermission(max=1, ttl=SECOND),  # a reply within a second
            "short": jwt.ResponsePermission(max=1, ttl=SECOND * 4 // 10),  # within 0.4 s
            "long": jwt.ResponsePermission(max=1, ttl=10 * SECOND),
            "unlimited": jwt.ResponsePermission(max=-1, ttl=-1),  # any number, for ever
        }
        for name, resp in specs.items():
            kp = KeyPair.generate(PrefixByte.USER)
            claims = jwt.UserClaims(sub=kp.public_key, name=name)
            if resp is not None:
                claims = jwt.UserClaims(
                    sub=kp.public_key, name=name, pub=jwt.Permission(allow=["_INBOX.none"]), resp=resp
                )
            self.users[name] = User(kp, claims.encode(app, iat=now))
        accounts = [
            jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now),
            jwt.AccountClaims(sub=app.public_key, name="APP").encode(op, iat=now),
        ]
        self.config = mem_resolver_config(op_jwt, accounts)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # pings every 300 ms, two may go unanswered: a silent client is stale after ~0.9 s
    config = world.config + '\nping_interval: "300ms"\nping_max: 2\n'
    with make_server(request.param, config, tmp_path_factory.mktemp(request.param)) as srv:
        yield srv


class Raw:
    """A raw protocol client: the exact lines a server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: dict[str, Any]):
        self.reader, self.writer, self.info = reader, writer, info

    @classmethod
    async def open(cls, port: int, user: User | None = None, **opts: Any) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"INFO "), line
        raw = cls(reader, writer, json.loads(line[5:]))
        if user is not None:
            body: dict[str, Any] = {"verbose": False, "pedantic": False, "protocol": 1, "headers": True}
            body.update(jwt=user.token, sig=sign_nonce(user.key, raw.info["nonce"]), **opts)
            assert await raw.exchange(b"CONNECT " + json.dumps(body).encode() + b"\r\n") == ([], False)
        return raw

    async def exchange(self, data: bytes = b"", *, timeout: float = 10) -> tuple[list[bytes], bool]:
        """Send ``data`` + PING; the lines until PONG (INFOs skipped), and whether it closed."""
        self.writer.write(data + b"PING\r\n")
        return await self.lines(timeout=timeout)

    async def lines(
        self, *, timeout: float = 10, until: bytes | None = b"PONG", pong: bool = True
    ) -> tuple[list[bytes], bool]:
        """The lines until ``until`` (None: until the server closes), and whether it closed. With
        ``pong`` the server's PINGs are answered, not returned."""
        out: list[bytes] = []
        try:
            async with asyncio.timeout(timeout):
                while line := await self.reader.readline():
                    line = line.rstrip(b"\r\n")
                    if line == until:
                        return out, False
                    if pong and line == b"PING":
                        self.writer.write(b"PONG\r\n")
                    elif not line.startswith(b"INFO "):
                        out.append(line)
        except ConnectionError:
            pass
        except TimeoutError:
            raise AssertionError(f"no {until!r} and no close within {timeout}s: {out}") from None
        return out, True

    async def idle(self, seconds: float) -> None:
        """Let ``seconds`` pass answering PINGs; nothing else may arrive."""
        try:
            out, closed = await self.lines(timeout=seconds, until=None)
        except AssertionError:
            return
        raise AssertionError(f"closed ({closed}) while idle: {out}")

    def close(self) -> None:
        self.writer.close()


def refused(subject: str) -> bytes:
    return b"-ERR 'Permissions Violation for Publish to \"%b\"'" % subject.encode()


@asynccontextmanager
async def pair(port: int, world: World, responder: str) -> AsyncIterator[tuple[Raw, Raw]]:
    """An asker subscribed to ``_INBOX.>`` and a responder subscribed to ``svc``."""
    asker = await Raw.open(port, world.users["asker"])
    answer = await Raw.open(port, world.users[responder], name=responder)
    try:
        assert await asker.exchange(b"SUB _INBOX.> 1\r\n") == ([], False)
        assert await answer.exchange(b"SUB svc 1\r\n") == ([], False)
        yield asker, answer
    finally:
        asker.close()
        answer.close()


async def request(asker: Raw, answer: Raw, *replies: str) -> None:
    """Publish one request per reply subject; the responder gets them all."""
    data = b"".join(b"PUB svc %b 0\r\n\r\n" % r.encode() for r in replies)
    assert await asker.exchange(data) == ([], False)
    lines, closed = await answer.exchange()
    assert not closed and lines[0::2] == [b"MSG svc 1 %b 0" % r.encode() for r in replies]


async def reply(answer: Raw, asker: Raw, subject: str) -> tuple[list[bytes], list[bytes]]:
    """The responder publishes to ``subject``: what it is told, and what the asker gets."""
    told, closed = await answer.exchange(b"PUB %b 2\r\nok\r\n" % subject.encode())
    assert not closed
    got, closed = await asker.exchange()
    assert not closed
    return told, got


# --- both servers -------------------------------------------------------------------------------
def test_a_reply_after_the_ttl_is_refused(server: ServerProcess, world: World) -> None:
    async def scenario() -> None:
        async with pair(server.port, world, "ttl1s") as (asker, answer):
            await request(asker, answer, "_INBOX.late", "_INBOX.soon")
            assert await reply(answer, asker, "_INBOX.soon") == ([], [b"MSG _INBOX.soon 1 2", b"ok"])
            await asyncio.gather(asker.idle(1.3), answer.idle(1.3))
            assert await reply(answer, asker, "_INBOX.late") == ([refused("_INBOX.late")], [])
            # a request delivered now may be answered
            await request(asker, answer, "_INBOX.late")
            assert await reply(answer, asker, "_INBOX.late") == ([], [b"MSG _INBOX.late 1 2", b"ok"])

    asyncio.run(scenario())


def test_negative_max_and_ttl_mean_no_limit(server: ServerProcess, world: World) -> None:
    async def scenario() -> None:
        async with pair(server.port, world, "unlimited") as (asker, answer):
            await request(asker, answer, "_INBOX.u")
            for _ in range(3):
                assert await reply(answer, asker, "_INBOX.u") == ([], [b"MSG _INBOX.u 1 2", b"ok"])

    asyncio.run(scenario())


def test_a_request_delivered_twice_counts_a_reply(server: ServerProcess, world: World) -> None:
    """deliverMsg asks pubAllowedFullCheck whether the reply is allowed already: a second
    delivery of the same request (two subscriptions) uses up the one reply of ``max: 1``."""

    async def scenario() -> None:
        async with pair(server.port, world, "ttl1s") as (asker, answer):
            assert await answer.exchange(b"SUB svc 2\r\n") == ([], False)
            assert await asker.exchange(b"PUB svc _INBOX.twice 0\r\n\r\n") == ([], False)
            lines, _ = await answer.exchange()
            assert sorted(lines[0::2]) == [b"MSG svc 1 _INBOX.twice 0", b"MSG svc 2 _INBOX.twice 0"]
            assert await reply(answer, asker, "_INBOX.twice") == ([refused("_INBOX.twice")], [])

    asyncio.run(scenario())


def test_a_client_that_never_answers_pings_is_stale(server: ServerProcess, world: World) -> None:
    async def scenario() -> tuple[list[bytes], bool, float]:
        raw = await Raw.open(server.port, world.users["asker"])
        try:
            start = time.monotonic()
            lines, closed = await raw.lines(timeout=5, until=None, pong=False)
            return lines, closed, time.monotonic() - start
        finally:
            raw.close()

    lines, closed, took = asyncio.run(scenario())
    assert lines == [b"PING", b"PING", b"-ERR 'Stale Connection'"] and closed
    assert 0.5 < took < 3.0, took


# --- the map of allowed replies, on the broker ---------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def running(world: World) -> AsyncIterator[tuple[Broker, Clock]]:
    cfg = BrokerConfig.from_conf(parse_conf(world.config))
    cfg.host, cfg.port = "127.0.0.1", 0
    broker = Broker(cfg)
    clock = Clock()
    broker.clock = clock
    await broker.start()
    try:
        yield broker, clock
    finally:
        await broker.close()


def responder(broker: Broker, name: str) -> Conn:
    (conn,) = [c for c in broker.conns if c.name == name]
    return conn


def test_unanswered_requests_are_pruned_after_the_limit_and_live_replies_still_work(world: World) -> None:
    async def scenario() -> None:
        async with running(world) as (broker, clock), pair(broker.config.port, world, "short") as pr:
            asker, answer = pr
            conn = responder(broker, "short")
            # the first delivery prunes (nothing was pruned before); then 4096 more: at the limit,
            # not over it, so none is forgotten although they expire meanwhile
            old = [f"_INBOX.old.{i}" for i in range(REPLY_PERM_LIMIT + 1)]
            await request(asker, answer, *old)
            assert len(conn.replies) == REPLY_PERM_LIMIT + 1
            clock.now += 0.5  # all expired (ttl 0.4 s), less than a second since the last prune
            await request(asker, answer, "_INBOX.live.0")  # the 4097th since the prune: pruned
            assert set(conn.replies) == {"_INBOX.live.0"}
            clock.now += 0.1
            await request(asker, answer, "_INBOX.live.1", "_INBOX.live.2")
            assert set(conn.replies) == {"_INBOX.live.0", "_INBOX.live.1", "_INBOX.live.2"}
            for r in ("_INBOX.live.0", "_INBOX.live.1", "_INBOX.live.2"):
                assert await reply(answer, asker, r) == ([], [b"MSG %b 1 2" % r.encode(), b"ok"])
            assert await reply(answer, asker, "_INBOX.old.7") == ([refused("_INBOX.old.7")], [])

    asyncio.run(scenario())


def test_replies_are_pruned_a_second_after_the_last_prune(world: World) -> None:
    async def scenario() -> None:
        async with running(world) as (broker, clock), pair(broker.config.port, world, "long") as pr:
            asker, answer = pr
            conn = responder(broker, "long")
            await request(asker, answer, "_INBOX.a", "_INBOX.b", "_INBOX.c")
            assert await reply(answer, asker, "_INBOX.a") == ([], [b"MSG _INBOX.a 1 2", b"ok"])
            # used up (max 1) but kept until the next prune, as nats-server does
            assert set(conn.replies) == {"_INBOX.a", "_INBOX.b", "_INBOX.c"}
            clock.now += 0.9
            await request(asker, answer, "_INBOX.d")
            assert set(conn.replies) == {"_INBOX.a", "_INBOX.b", "_INBOX.c", "_INBOX.d"}
            clock.now += 0.2  # more than a second since the prune of the first delivery
            await request(asker, answer, "_INBOX.e")
            assert set(conn.replies) == {"_INBOX.b", "_INBOX.c", "_INBOX.d", "_INBOX.e"}
            assert await reply(answer, asker, "_INBOX.a") == ([refused("_INBOX.a")], [])
            assert await reply(answer, asker, "_INBOX.b") == ([], [b"MSG _INBOX.b 1 2", b"ok"])
            clock.now += 10.5  # b..e expired (ttl 10 s); pruned at the next delivery
            await request(asker, answer, "_INBOX.f")
            assert set(conn.replies) == {"_INBOX.f"}
            assert await reply(answer, asker, "_INBOX.c") == ([refused("_INBOX.c")], [])

    asyncio.run(scenario())
