"""Bad input on both servers: each is refused precisely, and everybody else keeps flowing.

Every scenario runs on nats-server and on trustkit-broker with the same config and creds, while a
"bystander" pair of nats-py clients does request-reply round trips in the same event loop. After
each scenario the bystander must have made progress (during it, for the long ones) and must not
have seen a single failure or disconnect.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest

from tests.realcomp import free_port
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real

T = TypeVar("T")
MAX_PAYLOAD = 64 * 1024  # nats-server: max_payload may not exceed max_pending
MAX_PENDING = 256 * 1024
MAX_CONNECTIONS = 300


@dataclass
class User:
    key: KeyPair
    token: str
    creds: Path


class World:
    def __init__(self, tmp: Path) -> None:
        now = int(time.time())
        op = KeyPair.generate(PrefixByte.OPERATOR)
        sys_acct, app = KeyPair.generate(PrefixByte.ACCOUNT), KeyPair.generate(PrefixByte.ACCOUNT)
        unknown = KeyPair.generate(PrefixByte.ACCOUNT)  # an account the resolver does not know
        op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
            op, iat=now - 100
        )
        sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now - 100)
        self.users: dict[str, User] = {}
        for name, signer, extra in (
            ("good", app, {}),
            ("expired", app, {"exp": now - 10}),
            ("revoked", app, {}),
            ("foreign", unknown, {}),
        ):
            kp = KeyPair.generate(PrefixByte.USER)
            token = jwt.UserClaims(sub=kp.public_key, name=name, **extra).encode(signer, iat=now - 100)  # type: ignore[arg-type]
            path = tmp / f"{name}.creds"
            path.write_bytes(format_user_creds(token, kp.seed))
            self.users[name] = User(kp, token, path)
        acct = jwt.AccountClaims(sub=app.public_key, name="APP")
        acct.revoke(self.users["revoked"].key.public_key, now - 50)
        self.account_jwt = acct.encode(op, iat=now - 90)
        self.config = mem_resolver_config(op_jwt, [sys_jwt, self.account_jwt]) + (
            f"max_payload: {MAX_PAYLOAD}\nmax_pending: {MAX_PENDING}\nmax_connections: {MAX_CONNECTIONS}\n"
        )

    def forged(self) -> str:
        """The good user's JWT with its name changed: the signature no longer matches."""
        head, body, sig = self.users["good"].token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["name"] = "admin"
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{head}.{body}.{sig}"


@dataclass
class Server:
    kind: str
    url: str
    port: int
    http_port: int

    def varz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/varz", timeout=3) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    http = free_port()
    config = f"{world.config}http_port: {http}\n"
    srv = make_server(request.param, config, tmp_path_factory.mktemp(request.param))
    with srv:
        yield Server(request.param, srv.url, srv.port, http)


# --- the bystander --------------------------------------------------------------------------------
class Bystander:
    """Two nats-py clients doing request-reply round trips until stopped."""

    def __init__(self) -> None:
        self.ok = 0
        self.failures: list[str] = []
        self._stop = asyncio.Event()

    async def run(self, url: str, creds: Path) -> None:
        errors: list[str] = []

        async def on_error(e: Exception) -> None:
            errors.append(repr(e))

        opts: dict[str, Any] = {
            "user_credentials": str(creds),
            "allow_reconnect": False,
            "error_cb": on_error,
        }
        responder = await nats.connect(url, **opts)
        client = await nats.connect(url, **opts)

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("bystander.echo", cb=echo)
        await responder.flush()
        # warm-up, not counted: nats-py may write its flush PING ahead of the buffered SUB, so the
        # first request can still find no responder
        for _ in range(50):
            try:
                await client.request("bystander.echo", b"warm-up", timeout=3)
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.02)
        i = 0
        try:
            while not self._stop.is_set():
                i += 1
                body = b"round %d" % i
                try:
                    reply = await client.request("bystander.echo", body, timeout=3)
                    if reply.data != body:
                        self.failures.append(f"wrong reply {reply.data!r}")
                    self.ok += 1
                except Exception as exc:  # every failure is recorded and asserted on
                    self.failures.append(f"round {i} ({self.ok} ok): {exc!r}")
                await asyncio.sleep(0.005)
        finally:
            if not (client.is_connected and responder.is_connected):
                self.failures.append("bystander disconnected")
            self.failures.extend(errors)
            await client.close()
            await responder.close()

    async def progress(self, rounds: int = 3, timeout: float = 10) -> None:
        target = self.ok + rounds
        deadline = time.monotonic() + timeout
        while self.ok < target and time.monotonic() < deadline and not self.failures:
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


def with_bystander(
    server: Server, world: World, scenario: Callable[[Bystander], Awaitable[T]], *, during: int = 0
) -> T:
    """Run ``scenario`` while a bystander works; assert it never failed and kept progressing.

    ``during``: round trips the bystander must complete while the scenario runs.
    """

    async def main() -> T:
        by = Bystander()
        task = asyncio.create_task(by.run(server.url, world.users["good"].creds))
        try:
            await by.progress()
            before = by.ok
            result = await scenario(by)
            done_during = by.ok - before
            await by.progress()
            after = by.ok
        finally:
            by.stop()
            await task
        assert by.failures == [], by.failures
        assert done_during >= during, f"bystander made {done_during} round trips during the scenario"
        assert after > before + done_during, "bystander made no progress after the scenario"
        return result

    return asyncio.run(main())


# --- a raw protocol client (asyncio) --------------------------------------------------------------
class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: dict[str, Any]):
        self.reader, self.writer, self.info = reader, writer, info

    @classmethod
    async def open(cls, server: Server) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.startswith(b"INFO "), line
        return cls(reader, writer, json.loads(line[5:]))

    def connect_frame(self, user: User | None, *, token: str | None = None, **opts: Any) -> bytes:
        body: dict[str, Any] = {"verbose": False, "pedantic": False, "protocol": 1, "headers": True}
        if user is not None:
            body["jwt"] = token or user.token
            body["sig"] = sign_nonce(user.key, self.info["nonce"])
        body.update(opts)
        return b"CONNECT " + json.dumps(body).encode() + b"\r\n"

    async def exchange(self, data: bytes, *, timeout: float = 5) -> tuple[list[bytes], bool]:
        """Send ``data`` + PING; return the lines until PONG (INFOs skipped), and whether closed."""
        self.writer.write(data + b"PING\r\n")
        return await self.lines(timeout=timeout)

    async def lines(self, *, timeout: float = 5) -> tuple[list[bytes], bool]:
        out: list[bytes] = []
        try:
            async with asyncio.timeout(timeout):
                while line := await self.reader.readline():
                    line = line.rstrip(b"\r\n")
                    if line == b"PONG":
                        return out, False
                    if not line.startswith(b"INFO "):
                        out.append(line)
        except ConnectionError:
            pass
        except TimeoutError:
            raise AssertionError(f"no PONG and no close within {timeout}s: {out}") from None
        return out, True

    def close(self) -> None:
        self.writer.close()


async def _session(server: Server, data: bytes | Callable[[Raw], bytes]) -> tuple[list[bytes], bool]:
    raw = await Raw.open(server)
    try:
        return await raw.exchange(data(raw) if callable(data) else data)
    finally:
        raw.close()


AUTH_VIOLATION = ([b"-ERR 'Authorization Violation'"], True)


# --- garbage, oversize, split -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "before", "after", "expected"),
    [
        ("verb", False, b"FOO bar\r\n", ([b"-ERR 'Unknown Protocol Operation'"], True)),
        ("binary", False, b"\x00\xff\xfe\x01\r\n", ([b"-ERR 'Unknown Protocol Operation'"], True)),
        ("http", True, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", AUTH_VIOLATION),  # anything but CONNECT
        ("sub-before-connect", True, b"SUB x 1\r\n", AUTH_VIOLATION),
        # nats-server closes on a bad CONNECT body or PUB size without any -ERR (client.go readLoop)
        ("connect-json", True, b"CONNECT {not json}\r\n", ([], True)),
        ("pub-size", False, b"PUB x abc\r\n", ([], True)),
        ("pub-args", False, b"PUB\r\n", ([b"-ERR 'Unknown Protocol Operation'"], True)),
        ("bad-subject", False, b"SUB a..b 1\r\n", ([b"-ERR 'Invalid Subject'"], False)),
        ("payload-overrun", False, b"PUB x 2\r\nabc\r\n", ([b"-ERR 'Unknown Protocol Operation'"], True)),
    ],
)
def test_garbage_is_refused(
    server: Server, world: World, name: str, before: bool, after: bytes, expected: object
) -> None:
    """``before``: sent instead of CONNECT; otherwise after a good CONNECT."""

    async def scenario(_: Bystander) -> tuple[list[bytes], bool]:
        if before:
            return await _session(server, after)
        return await _session(server, lambda raw: raw.connect_frame(world.users["good"]) + after)

    assert with_bystander(server, world, scenario) == expected


def test_oversize_control_line_and_payload_close_only_that_client(server: Server, world: World) -> None:
    async def scenario(_: Bystander) -> tuple[tuple[list[bytes], bool], ...]:
        good = world.users["good"]
        long_line = await _session(server, lambda raw: raw.connect_frame(good) + b"PUB " + b"a" * 6000)
        too_big = b"PUB x %d\r\n" % (MAX_PAYLOAD + 1)
        big = await _session(server, lambda raw: raw.connect_frame(good) + too_big)
        long_connect = await _session(server, b"CONNECT {" + b'"x":1,' * 1000)
        return long_line, big, long_connect

    long_line, big, long_connect = with_bystander(server, world, scenario)
    assert long_line == ([b"-ERR 'maximum control line exceeded'"], True)
    assert big == ([b"-ERR 'Maximum Payload Violation'"], True)
    assert long_connect == ([b"-ERR 'maximum control line exceeded'"], True)


def test_a_session_split_into_single_bytes(server: Server, world: World) -> None:
    async def scenario(_: Bystander) -> tuple[list[bytes], bool]:
        raw = await Raw.open(server)
        try:
            sock = raw.writer.transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            data = raw.connect_frame(world.users["good"]) + (
                b"SUB s.* 1\r\nHPUB s.a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB s.b 3\r\nabc\r\n"
            )
            for i in range(len(data)):
                raw.writer.write(data[i : i + 1])
                await raw.writer.drain()
                if i % 64 == 0:
                    await asyncio.sleep(0.001)
            return await raw.exchange(b"")
        finally:
            raw.close()

    assert with_bystander(server, world, scenario) == (
        [b"HMSG s.a 1 r 12 14", b"NATS/1.0", b"", b"hi", b"MSG s.b 1 3", b"abc"],
        False,
    )


# --- bad credentials --------------------------------------------------------------------------------
def test_bad_jwts_are_refused(server: Server, world: World) -> None:
    good = world.users["good"]

    async def scenario(_: Bystander) -> list[tuple[list[bytes], bool]]:
        attempts: list[Callable[[Raw], bytes]] = [
            lambda raw: raw.connect_frame(good, token=world.forged()),
            lambda raw: raw.connect_frame(world.users["expired"]),
            lambda raw: raw.connect_frame(world.users["revoked"]),
            lambda raw: raw.connect_frame(world.users["foreign"]),
            lambda raw: raw.connect_frame(good, token=world.account_jwt),  # not a user JWT
            lambda raw: raw.connect_frame(good, token="eyJ0eXAiOiJKV1QifQ.e30.AAAA"),
            lambda raw: raw.connect_frame(None, jwt=good.token),  # no nonce signature
            lambda raw: raw.connect_frame(None, jwt=good.token, sig="!!notbase64!!"),
            lambda raw: raw.connect_frame(None),  # nothing at all
        ]
        return [await _session(server, a) for a in attempts]

    assert with_bystander(server, world, scenario) == [AUTH_VIOLATION] * 9


# --- a client that never reads --------------------------------------------------------------------
def test_slow_consumer_is_cut_and_everyone_else_flows(server: Server, world: World) -> None:
    good = world.users["good"]

    async def scenario(by: Bystander) -> tuple[int, bool, int]:
        # the slow client: tiny receive buffer, subscribes, then never reads
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", server.port))
        info = json.loads(slow.recv(65536).split(b"\r\n", 1)[0][5:])
        sig = sign_nonce(good.key, info["nonce"])
        body = {"jwt": good.token, "sig": sig, "verbose": False, "protocol": 1}
        slow.sendall(b"CONNECT " + json.dumps(body).encode() + b"\r\nSUB flood.> 1\r\nPING\r\n")
        before = server.varz()["slow_consumers"] if server.kind == "nats-server" else None
        await asyncio.sleep(0.2)
        # a nats-py producer floods it with 16 MiB; the producer is never cut off
        producer = await nats.connect(server.url, user_credentials=str(good.creds), allow_reconnect=False)
        chunk = os.urandom(MAX_PAYLOAD // 2)
        for i in range(512):
            await producer.publish(f"flood.{i % 7}", chunk)
            if i % 32 == 0:
                await producer.flush(timeout=10)
        await producer.flush(timeout=10)
        producer_ok = producer.is_connected
        await producer.close()
        # the slow client is gone from the server although it still has not read a byte (within
        # nats-server's 10 s write deadline: it flushes until then, the broker aborts at once)
        deadline = time.monotonic() + 15
        while (live := (await asyncio.to_thread(server.varz))["connections"]) != 2:
            assert time.monotonic() < deadline, f"{live} connections: the slow client was kept"
            await asyncio.sleep(0.05)

        def drain() -> int:
            slow.settimeout(10)
            total = 0
            try:
                while chunk := slow.recv(1 << 20):
                    total += len(chunk)
            except (ConnectionResetError, TimeoutError):
                pass
            finally:
                slow.close()
            return total

        received = await asyncio.to_thread(drain)
        varz = await asyncio.to_thread(server.varz)
        return received, producer_ok, varz["slow_consumers"] - (before or 0)

    received, producer_ok, slow_consumers = with_bystander(server, world, scenario, during=5)
    assert producer_ok
    assert received < 8 * 1024 * 1024, "the slow client was not cut off"
    assert slow_consumers >= 1


# --- floods -----------------------------------------------------------------------------------------
def test_a_flood_of_connects(server: Server, world: World) -> None:
    """150 clients at once: a third authenticate, a third forge, a third never send CONNECT."""
    good = world.users["good"]

    async def one(i: int) -> tuple[str, tuple[list[bytes], bool]]:
        raw = await Raw.open(server)
        try:
            if i % 3 == 0:
                return "good", await raw.exchange(raw.connect_frame(good) + b"SUB x 1\r\n")
            if i % 3 == 1:
                return "forged", await raw.exchange(raw.connect_frame(good, token=world.forged()))
            return "silent", await raw.lines(timeout=6)  # nothing sent: the auth timer cuts it
        finally:
            raw.close()

    async def scenario(_: Bystander) -> dict[str, set[tuple[tuple[bytes, ...], bool]]]:
        results = await asyncio.gather(*(one(i) for i in range(150)))
        out: dict[str, set[tuple[tuple[bytes, ...], bool]]] = {}
        for kind, (lines, closed) in results:
            out.setdefault(kind, set()).add((tuple(lines), closed))
        return out

    assert with_bystander(server, world, scenario, during=5) == {
        "good": {((), False)},
        "forged": {((b"-ERR 'Authorization Violation'",), True)},
        "silent": {((b"-ERR 'Authentication Timeout'",), True)},
    }


def test_max_connections_refuses_the_excess(server: Server, world: World) -> None:
    async def after_info(r: asyncio.StreamReader) -> bytes:
        """What follows INFO within a second: nothing for an accepted client."""
        try:
            async with asyncio.timeout(1):
                return await r.read()  # up to EOF: the refusal and the close
        except TimeoutError:
            return b"(open)"

    async def scenario(by: Bystander) -> list[bytes]:
        deadline = time.monotonic() + 10
        while (live := (await asyncio.to_thread(server.varz))["connections"]) != 2:
            assert time.monotonic() < deadline, f"{live} connections left over"
            await asyncio.sleep(0.1)
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(MAX_CONNECTIONS):  # the bystander holds 2: the last 2 are refused
                r, w = await asyncio.open_connection("127.0.0.1", server.port)
                conns.append((r, w))
                assert (await asyncio.wait_for(r.readline(), 5)).startswith(b"INFO ")
            return list(await asyncio.gather(*(after_info(reader) for reader, _ in conns)))
        finally:
            for _, writer in conns:
                writer.close()

    outcomes = with_bystander(server, world, scenario)
    assert outcomes[:-2] == [b"(open)"] * (MAX_CONNECTIONS - 2)
    assert outcomes[-2:] == [b"-ERR 'maximum connections exceeded'\r\n"] * 2


# --- a bad config -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_max_payload_above_max_pending_is_refused_at_startup(kind: str, tmp_path: Path) -> None:
    srv = make_server(kind, "max_payload: 2000000\nmax_pending: 1000000\n", tmp_path)
    message = r"max_payload \(2000000\) cannot be higher than max_pending \(1000000\)"
    with pytest.raises(RuntimeError, match=message):
        srv.start()
