"""broker.verifier: CONNECT signature checks in a worker process, with an in-process fail-over."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from broker.config import BrokerConfig, parse_conf
from broker.server import HOLD_LIMIT, Broker
from broker.system import apply_account_update
from broker.verifier import _HEAD, Verifier, _worker, wanted
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte, SignatureChecks, decode_public
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce


def _checks(*good: bool) -> SignatureChecks:
    """One check per flag: a true signature for True, a signature over other data for False."""
    checks = SignatureChecks()
    for i, ok in enumerate(good):
        key = KeyPair.generate(PrefixByte.USER)
        raw = decode_public(key.public_key)[1]
        data = f"nonce-{i}".encode()
        checks.add(raw, data, key.sign(data if ok else data + b"!"))
    return checks


def test_wanted() -> None:
    assert wanted({"TRUSTKIT_BROKER_VERIFIER": "0"}) is False
    assert wanted({"TRUSTKIT_BROKER_VERIFIER": "1"}) is True
    assert wanted({}) is (len(os.sched_getaffinity(0)) > 1)


def test_worker_answers_each_batch_in_order() -> None:
    checks = _checks(True, False, True)
    checks.add(b"", b"x", b"short")  # recorded to fail
    logs: list[str] = []

    async def run() -> list[list[bool]]:
        v = Verifier(logs.append)
        v.start()
        try:
            got: list[list[bool]] = []
            done = asyncio.Event()
            batches = [checks, _checks(False), _checks(True, True), SignatureChecks()]

            def collect(results: list[bool]) -> None:
                got.append(results)
                if len(got) == len(batches):
                    done.set()

            for c in batches:
                v.submit(c, collect)
            await asyncio.wait_for(done.wait(), 5)
            assert v.batches == 1  # submitted in one event-loop turn: one batch each way
            return got
        finally:
            v.close()

    assert asyncio.run(run()) == [[True, False, True, False], [False], [True, True], []]
    assert logs == []


def test_a_dead_worker_fails_over_to_the_event_loop() -> None:
    logs: list[str] = []

    async def run() -> list[list[bool]]:
        v = Verifier(logs.append)
        v.start()
        assert v.proc is not None
        got: list[list[bool]] = []
        first = asyncio.get_running_loop().create_future()
        v.submit(_checks(True), first.set_result)
        assert await asyncio.wait_for(first, 5) == [True]
        os.kill(v.proc.pid, signal.SIGKILL)
        v.proc.wait()
        # in flight when it died, and after: all answered, correctly
        futures = [asyncio.get_running_loop().create_future() for _ in range(3)]
        v.submit(_checks(True, False), futures[0].set_result)
        await asyncio.sleep(0.2)
        v.submit(_checks(False), futures[1].set_result)
        v.submit(_checks(True), futures[2].set_result)
        for f in futures:
            got.append(await asyncio.wait_for(f, 5))
        assert not v.running
        v.close()
        return got

    assert asyncio.run(run()) == [[True, False], [False], [True]]
    assert len(logs) == 1 and "signature worker stopped" in logs[0]


def test_close_answers_what_is_in_flight() -> None:
    got: list[list[bool]] = []

    async def run() -> None:
        v = Verifier(lambda m: None)
        v.start()
        v.submit(_checks(True, False), got.append)
        v._flush()  # sent, not answered yet
        v.close()

    asyncio.run(run())
    assert got == [[True, False]]


@pytest.mark.parametrize("cut", [0, 3, 8, 20])
def test_worker_stops_at_a_truncated_frame(cut: int) -> None:
    checks = _checks(True)
    pk, signed = checks.items[0]
    body = len(signed).to_bytes(4, "little") + pk + signed
    frame = _HEAD.pack(7, len(body)) + body
    out = io.BytesIO()
    _worker(io.BytesIO(frame + frame[:cut]), out)
    assert out.getvalue() == _HEAD.pack(7, 1) + b"\x01"


# --- the broker with a verifier -----------------------------------------------------------------


class Held:
    """Stands in for the worker: keeps the checks until the test answers them."""

    def __init__(self) -> None:
        self.held: list[tuple[SignatureChecks, Callable[[list[bool]], None]]] = []

    def submit(self, checks: SignatureChecks, done: Callable[[list[bool]], None]) -> None:
        self.held.append((checks, done))

    def answer(self, results: list[bool] | None = None) -> None:
        held, self.held = self.held, []
        for checks, done in held:
            done(results if results is not None else checks.run())

    def close(self) -> None:
        pass


class OpWorld:
    def __init__(self) -> None:
        now = int(time.time()) - 100
        self.op = KeyPair.generate(PrefixByte.OPERATOR)
        sys_acct = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        self.user = KeyPair.generate(PrefixByte.USER)
        self.iat = now
        op_jwt = jwt.OperatorClaims(
            sub=self.op.public_key, name="op", system_account=sys_acct.public_key
        ).encode(self.op, iat=now)
        self.token = jwt.UserClaims(sub=self.user.public_key, name="u").encode(self.app, iat=now)
        self.config = mem_resolver_config(
            op_jwt,
            [
                jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(self.op, iat=now),
                jwt.AccountClaims(sub=self.app.public_key, name="APP").encode(self.op, iat=now),
            ],
        )

    def revoking_app(self) -> str:
        claims = jwt.AccountClaims(sub=self.app.public_key, name="APP")
        claims.revoke(self.user.public_key, self.iat + 10)
        return claims.encode(self.op, iat=self.iat + 20)


@asynccontextmanager
async def broker_with(verifier: object | None, world: OpWorld) -> AsyncIterator[Broker]:
    cfg = BrokerConfig.from_conf(parse_conf(world.config))
    cfg.host, cfg.port = "127.0.0.1", 0
    broker = Broker(cfg, log=lambda m: None)
    await broker.start()
    if verifier is not None:
        if broker.verifier is not None:
            broker.verifier.close()
        broker.verifier = verifier  # type: ignore[assignment]
    try:
        yield broker
    finally:
        await broker.close()


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _login(port: int, world: OpWorld, after: bytes = b"") -> Streams:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    info = json.loads((await reader.readline())[5:])
    body = {"jwt": world.token, "sig": sign_nonce(world.user, info["nonce"]), "verbose": False, "protocol": 1}
    writer.write(b"CONNECT " + json.dumps(body).encode() + b"\r\n" + after + b"PING\r\n")
    return reader, writer


async def _until_pong_or_close(reader: asyncio.StreamReader) -> list[bytes]:
    lines: list[bytes] = []
    async with asyncio.timeout(5):
        while line := await reader.readline():
            line = line.rstrip(b"\r\n")
            if line == b"PONG":
                lines.append(line)
                return lines
            if not line.startswith(b"INFO "):
                lines.append(line)
    lines.append(b"<closed>")
    return lines


async def _nothing_for(reader: asyncio.StreamReader, seconds: float) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            await reader.readline()


def test_what_follows_a_connect_waits_for_its_verdict_and_keeps_its_order() -> None:
    world = OpWorld()
    held = Held()

    async def scenario() -> list[bytes]:
        async with broker_with(held, world) as broker:
            reader, writer = await _login(broker.config.port, world, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n")
            await _nothing_for(reader, 0.3)
            assert len(held.held) == 1 and len(held.held[0][0]) == 2  # the JWT's and the nonce's
            held.answer()
            lines = await _until_pong_or_close(reader)
            writer.close()
            return lines

    assert asyncio.run(scenario()) == [b"MSG foo 1 2", b"hi", b"PONG"]


def test_a_flood_before_the_verdict_pauses_reading_and_loses_nothing() -> None:
    """Reading stays on while a verdict is awaited, up to HOLD_LIMIT bytes; past it, reading
    pauses (the rest waits in the kernel) and resumes with the verdict, every message in order."""
    world = OpWorld()
    held = Held()
    count, size = 400, 1024
    pubs = b"".join(b"PUB foo %d\r\n%b\r\n" % (size, b"%04d" % i + b"x" * (size - 4)) for i in range(count))
    assert len(pubs) > 4 * HOLD_LIMIT

    async def scenario() -> tuple[int, bool, list[bytes]]:
        async with broker_with(held, world) as broker:
            reader, writer = await _login(broker.config.port, world, b"SUB foo 1\r\n" + pubs)
            await _nothing_for(reader, 0.3)
            (conn,) = [c for c in broker.conns if c.auth_wait is not None]
            buffered, paused = len(conn.held), conn.hold_paused
            held.answer()
            got: list[bytes] = []
            async with asyncio.timeout(10):
                while (line := await reader.readline()) != b"PONG\r\n":
                    assert line.startswith(b"MSG foo 1 "), line
                    got.append((await reader.readexactly(size + 2))[:4])
            writer.close()
            return buffered, paused, got

    buffered, paused, got = asyncio.run(scenario())
    assert paused and buffered <= HOLD_LIMIT + 256 * 1024  # one read past the limit, at most
    assert got == [b"%04d" % i for i in range(count)]


@pytest.mark.parametrize("results", [[True, False], [False, True], [False, False]])
def test_a_failed_check_refuses(results: list[bool]) -> None:
    world = OpWorld()
    held = Held()

    async def scenario() -> list[bytes]:
        async with broker_with(held, world) as broker:
            reader, writer = await _login(broker.config.port, world)
            await asyncio.sleep(0.1)
            held.answer(results)
            lines = await _until_pong_or_close(reader)
            writer.close()
            return lines

    assert asyncio.run(scenario()) == [b"-ERR 'Authorization Violation'", b"<closed>"]


def test_a_revocation_while_the_signatures_are_checked_is_not_missed() -> None:
    world = OpWorld()
    held = Held()

    async def scenario() -> list[bytes]:
        async with broker_with(held, world) as broker:
            # a first login loads the account into the broker
            reader0, writer0 = await _login(broker.config.port, world)
            await asyncio.sleep(0.1)
            held.answer()
            assert await _until_pong_or_close(reader0) == [b"PONG"]
            reader, writer = await _login(broker.config.port, world)
            await asyncio.sleep(0.1)
            assert held.held
            assert broker.resolver is not None
            revoking = broker.resolver.store(world.revoking_app())
            apply_account_update(broker, revoking)  # the first client is cut off here
            held.answer()  # both signatures are good: the account as it is now decides
            lines = await _until_pong_or_close(reader)
            writer.close()
            writer0.close()
            # and the account keeps its new claims (the verdict did not bring the old ones back)
            assert broker.accounts[world.app.public_key].claims is revoking
            return lines

    assert asyncio.run(scenario()) == [b"-ERR 'Authorization Violation'", b"<closed>"]


def test_the_broker_keeps_admitting_when_its_worker_dies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTKIT_BROKER_VERIFIER", "1")
    world = OpWorld()

    async def scenario() -> tuple[list[bytes], list[bytes], bool]:
        async with broker_with(None, world) as broker:
            v = broker.verifier
            assert v is not None and v.proc is not None
            reader, writer = await _login(broker.config.port, world)
            first = await _until_pong_or_close(reader)
            writer.close()
            batches = v.batches
            v.proc.kill()
            reader, writer = await _login(broker.config.port, world)
            second = await _until_pong_or_close(reader)
            writer.close()
            return first, second, batches == 1 and not v.running

    first, second, worked = asyncio.run(scenario())
    assert first == second == [b"PONG"] and worked
