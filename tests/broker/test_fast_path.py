"""The broker's message fast path: the parser's sink mode, the verdict caches, and nats-server's
delivery-time subscribe deny filter.

* ``Parser.feed(data, sink)`` hands operations over as they are parsed (runs of canonical PUBs as
  one batch of bytes); whatever is split where, and wherever the sink says stop, the sink plus
  the returned list hold exactly the operations ``feed(data)`` returns, in order.
* ``Conn.pubs`` decides a publish from caches (subject bytes -> subject, publish verdicts per set
  of permissions); a second CONNECT with other permissions, a live mapping or ``data`` limit, and
  invalid or ``$SYS.`` subjects must still get what the full check gives.
* A wildcard (or queue) subscription that overlaps a subscribe deny entry does not get messages
  on denied subjects (nats-server ``checkDenySub``): compared on both servers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.config import BrokerConfig, parse_conf
from broker.protocol import (
    Connect,
    Op,
    Parser,
    Ping,
    ProtocolError,
    Pub,
    Sub,
    _connect_exact,
    _connect_fast,
)
from broker.server import Broker
from broker.sharing import build_mappings
from tests.broker.test_protocol import HEADERS_ON, PROPS, STREAM, STREAM_OPS, cut, operation
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

# --- the parser's sink mode -------------------------------------------------------------------


class Recorder:
    """A sink that records what it is handed (PUB batches as Pub ops) and says stop after
    ``stop_after`` operations."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.ops: list[Op] = []
        self.batches: list[int] = []
        self.stop_after = stop_after

    def _full(self) -> bool:
        return self.stop_after is not None and len(self.ops) >= self.stop_after

    def pubs(self, batch: list[tuple[bytes, bytes | None, bytes]]) -> int | None:
        assert batch
        self.batches.append(len(batch))
        for i, (subject, reply, payload) in enumerate(batch):
            assert type(subject) is bytes and type(payload) is bytes
            rep = reply.decode("utf-8", "surrogateescape") if reply is not None else None
            self.ops.append(Pub(subject.decode("utf-8", "surrogateescape"), rep, payload))
            if self._full():
                return i + 1
        return None

    def op(self, op: Op) -> bool:
        self.ops.append(op)
        return self._full()


def sink_chunks(chunks: list[bytes], stop_after: int | None = None) -> tuple[list[Op], list[Op]]:
    """(what the sink got, what feed returned) over ``chunks``; once the sink says stop, the
    rest of that feed is returned and later feeds go to the sink again."""
    p = Parser()
    rec = Recorder(stop_after)
    rest: list[Op] = []
    for c in chunks:
        rest += p.feed(c, rec)
        if rec._full():
            rec.stop_after = None  # the broker resumes later (after the auth callout)
    assert p.buffered == 0
    return rec.ops, rest


def test_sink_gets_the_whole_stream_in_order() -> None:
    got, rest = sink_chunks([STREAM])
    assert got == STREAM_OPS and rest == []


def test_sink_split_at_every_offset() -> None:
    for i in range(len(STREAM) + 1):
        got, rest = sink_chunks([STREAM[:i], STREAM[i:]])
        assert got == STREAM_OPS and rest == [], i


def test_sink_byte_by_byte() -> None:
    got, rest = sink_chunks([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert got == STREAM_OPS and rest == []


def test_sink_stop_anywhere_returns_the_rest_in_order() -> None:
    for k in range(1, len(STREAM_OPS) + 1):
        got, rest = sink_chunks([STREAM], stop_after=k)
        assert got == STREAM_OPS[:k] and rest == STREAM_OPS[k:], k


def test_pubs_come_as_one_batch_before_what_follows() -> None:
    data = b"".join(b"PUB a.%d 1\r\nx\r\n" % i for i in range(5)) + b"PING\r\n" + b"PUB b 0\r\n\r\n"
    rec = Recorder()
    assert Parser().feed(data, rec) == []
    assert rec.batches == [5, 1]
    assert rec.ops == [*(Pub(f"a.{i}", None, b"x") for i in range(5)), Ping(), Pub("b", None, b"")]


def test_stop_inside_a_batch() -> None:
    data = b"".join(b"PUB a.%d r.%d 1\r\nx\r\n" % (i, i) for i in range(6)) + b"SUB s 1\r\n"
    for k in range(1, 7):
        rec = Recorder(stop_after=k)
        rest = Parser().feed(data, rec)
        want = [Pub(f"a.{i}", f"r.{i}", b"x") for i in range(6)] + [Sub("s", None, "1")]
        assert rec.ops == want[:k] and rest == want[k:], k


def test_sink_error_keeps_only_what_the_sink_did_not_get() -> None:
    rec = Recorder()
    with pytest.raises(ProtocolError) as ei:
        Parser().feed(b"PING\r\nPUB a 1\r\nx\r\nSUB a 1\r\nBAD\r\n", rec)
    assert rec.ops == [Ping(), Pub("a", None, b"x"), Sub("a", None, "1")] and ei.value.ops == []
    rec = Recorder(stop_after=1)
    with pytest.raises(ProtocolError) as ei:
        Parser().feed(b"PING\r\nPUB a 1\r\nx\r\nBAD\r\n", rec)
    assert rec.ops == [Ping()] and ei.value.ops == [Pub("a", None, b"x")]


def test_a_limit_set_by_the_sink_applies_to_the_next_operation() -> None:
    class Lowering(Recorder):
        def __init__(self, parser: Parser) -> None:
            super().__init__()
            self.parser = parser

        def op(self, op: Op) -> bool:
            if isinstance(op, Connect):
                self.parser.max_payload = 2  # what the broker's admit() does
            return super().op(op)

    p = Parser()
    rec = Lowering(p)
    with pytest.raises(ProtocolError) as ei:
        p.feed(b"PUB a 3\r\nxyz\r\nCONNECT {}\r\nPUB a 2\r\nxy\r\nPUB a 3\r\nxyz\r\n", rec)
    assert rec.ops == [Pub("a", None, b"xyz"), Connect({}), Pub("a", None, b"xy")]
    assert ei.value.err_text == "Maximum Payload Violation"


def test_odd_spellings_reach_the_sink_as_operations() -> None:
    for data in (b"pub x 1\r\nz\r\n", b"PUB\tx 1\r\nz\r\n", b"PUB x 1\nz\r\n", b"PUB x  1\r\nz\r\n"):
        rec = Recorder()
        assert Parser().feed(data, rec) == []
        assert rec.ops == [Pub("x", None, b"z")] and rec.batches == [], data


@PROPS
@given(st.lists(operation(), max_size=12), st.lists(st.integers(0, 10**6), max_size=12), st.integers(0, 14))
def test_sink_agrees_with_feed_in_random_chunks(
    ops: list[tuple[bytes, Op | None]], cuts: list[int], stop: int
) -> None:
    data = HEADERS_ON + b"".join(b for b, _ in ops)
    expected = [Connect({"headers": True})] + [op for _, op in ops if op is not None]
    p = Parser()
    rec = Recorder(stop_after=stop or None)
    seen: list[Op] = []
    for c in cut(data, cuts):
        before = len(rec.ops)
        rest = p.feed(c, rec)
        # within one feed the sink gets operations first, then the rest is returned
        seen += rec.ops[before:] + rest
        if rest:
            rec.stop_after = None
    assert seen == expected


# --- CONNECT: the orjson fast path gives the exact decoder's result, or steps aside ------------

_NAMES = ["verbose", "echo", "protocol", "name", "jwt", "sig", "headers", "Verbose", "x", "import"]
_NAMES.append("ve\\u0072bose")
_VALUES = ["true", "false", "null", "1", "-3", "1.0", '"s"', '"\\ud800"', '"\xc3\xa9"', '"\xff"', "[]", "{}"]
_VALUES.append("99999999999999999999")


@st.composite
def connect_json(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(_NAMES), st.sampled_from(_VALUES)), max_size=6))
    body = b",".join(b'"' + k.encode() + b'":' + v.encode("latin-1") for k, v in pairs)
    return draw(st.sampled_from([b"{%s}" % body, b"null", b"[1]", b"{%s" % body]))


def _exact(arg: bytes) -> object:
    try:
        return _connect_exact(arg)
    except ProtocolError:
        return "refused"


@PROPS
@given(connect_json())
def test_connect_fast_path_agrees_with_the_exact_decoder(arg: bytes) -> None:
    fast = _connect_fast(arg)
    if fast is not None:
        assert fast == _exact(arg), arg


def test_connect_fast_path_takes_what_clients_send_and_leaves_the_rest() -> None:
    sent = b'{"verbose":false,"pedantic":false,"protocol":1,"headers":true,"name":"a b","lang":"python3"}'
    assert _connect_fast(sent) == _connect_exact(sent)
    for odd in (
        b'{"verbose":false,"verbose":null}',  # Go: null leaves false in place; a dict keeps null
        b'{"protocol":"x","protocol":1}',  # Go: refused; a dict keeps 1
        b'{"echo":true,"echo":true}',  # repeated names, however harmless
        b'{"name":"a","jwt":"j","name":"b"}',
        b'{"name":["x"],"name":"y"}',
        b'{"Verbose":false}',  # case-folded name
        b'{"verb\\u006fse":false}',  # an escaped name
        b'{"name":"\xff"}',  # invalid UTF-8: Go repairs it
        b'{"import":{"allow":["a"]}}',
        b"null",
    ):
        assert _connect_fast(odd) is None, odd


# --- the broker: caches that must follow changes (in-process broker, raw sockets) ----------------


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.buf = b""
        line = self.until(b"\r\n")
        self.info = json.loads(line[5 : line.index(b"\r\n")])
        self.buf = line[line.index(b"\r\n") + 2 :]

    def until(self, marker: bytes, timeout: float = 3.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"no {marker!r} in {self.buf!r}") from None
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ping(self) -> bytes:
        """Everything the server sent up to the PONG of a PING sent now."""
        self.send(b"PING\r\n")
        return self.until(b"PONG\r\n")

    def close(self) -> None:
        self.sock.close()


@asynccontextmanager
async def running(config: str = "") -> AsyncIterator[Broker]:
    cfg = BrokerConfig.from_conf(parse_conf(config)) if config else BrokerConfig()
    cfg.host, cfg.port = "127.0.0.1", 0
    broker = Broker(cfg)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_live_mapping_and_data_limit_reach_subjects_already_cached() -> None:
    async def run() -> None:
        async with running() as broker:
            port = broker.config.port
            sub = await _in_thread(Raw, broker.config.port)
            pub = await _in_thread(Raw, port)
            await _in_thread(sub.send, b'CONNECT {"verbose":false}\r\nSUB > 1\r\n')
            await _in_thread(pub.send, b'CONNECT {"verbose":false}\r\n')
            await _in_thread(sub.ping)
            await _in_thread(pub.send, b"PUB a.b 2\r\nhi\r\n")
            await _in_thread(pub.ping)
            assert b"MSG a.b 1 2\r\nhi\r\n" in await _in_thread(sub.ping)
            assert b"a.b" in broker.subjects  # the fast path knows it now
            # a pushed JWT with a mapping (what sharing.load does): the next publish is mapped
            account = broker.accounts["$G"]
            account.mapper = build_mappings({"a.b": [jwt.WeightedMapping(subject="c.d")]})
            await _in_thread(pub.send, b"PUB a.b 2\r\nhi\r\n")
            await _in_thread(pub.ping)
            assert b"MSG c.d 1 2\r\nhi\r\n" in await _in_thread(sub.ping)
            account.mapper = None
            # an account data limit set live: the next publish over it is refused
            account.data_limit = account.data_used + 2
            await _in_thread(pub.send, b"PUB a.b 2\r\nok\r\nPUB a.b 2\r\nno\r\n")
            got = await _in_thread(pub.ping)
            assert got.count(b"-ERR 'Permissions Violation for Publish to \"a.b\"'") == 1
            assert b"MSG a.b 1 2\r\nok\r\n" in await _in_thread(sub.ping)
            pub.close()
            sub.close()

    asyncio.run(run())


def test_invalid_and_system_subjects_never_enter_the_subject_cache() -> None:
    async def run() -> None:
        async with running() as broker:
            pub = await _in_thread(Raw, broker.config.port)
            await _in_thread(pub.send, b'CONNECT {"verbose":true}\r\n')
            await _in_thread(pub.send, b"PUB a..b 1\r\nx\r\nPUB a.* 1\r\nx\r\nPUB $SYS.X 1\r\nx\r\n")
            got = await _in_thread(pub.ping)
            assert got.count(b"-ERR 'Invalid Publish Subject'") == 2
            assert set(broker.subjects) == set()
            pub.close()

    asyncio.run(run())


# --- both servers -------------------------------------------------------------------------------


class World:
    """One account; users whose permissions the fast path must honour."""

    def __init__(self) -> None:
        now = int(time.time())
        op = KeyPair.generate(PrefixByte.OPERATOR)
        sys_acct = KeyPair.generate(PrefixByte.ACCOUNT)
        app = KeyPair.generate(PrefixByte.ACCOUNT)
        self.users: dict[str, tuple[KeyPair, str]] = {}
        specs: dict[str, dict[str, object]] = {
            "open": {},
            "nofoo": {"pub": jwt.Permission(deny=["foo.>"])},
            "filtered": {
                "sub_perms": jwt.Permission(deny=["secret.*.x", "jobs.hidden grp"]),
            },
        }
        for name, extra in specs.items():
            kp = KeyPair.generate(PrefixByte.USER)
            claims = jwt.UserClaims(sub=kp.public_key, name=name, **extra)  # type: ignore[arg-type]
            self.users[name] = (kp, claims.encode(app, iat=now - 100))
        op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
            op, iat=now - 100
        )
        sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now - 100)
        app_jwt = jwt.AccountClaims(sub=app.public_key, name="APP").encode(op, iat=now - 90)
        self.config = mem_resolver_config(op_jwt, [sys_jwt, app_jwt])

    def connect(self, raw: Raw, name: str) -> None:
        kp, token = self.users[name]
        body = {"verbose": False, "pedantic": False, "protocol": 1, "jwt": token}
        body["sig"] = sign_nonce(kp, raw.info["nonce"])
        raw.send(b"CONNECT " + json.dumps(body).encode() + b"\r\n")


@pytest.fixture(scope="module")
def world() -> World:
    return World()


@pytest.fixture(scope="module", params=SERVER_KINDS)
def port(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    srv = make_server(request.param, world.config, tmp_path_factory.mktemp(request.param))
    with srv:
        yield srv.port


@pytest.mark.real
def test_a_second_connect_with_other_permissions_is_checked_afresh(world: World, port: int) -> None:
    pub = Raw(port)
    try:
        world.connect(pub, "open")
        pub.send(b"PUB foo.bar 1\r\nx\r\n" * 3)
        assert b"-ERR" not in pub.ping()
        world.connect(pub, "nofoo")  # the same subject is now denied
        pub.send(b"PUB foo.bar 1\r\nx\r\nPUB other 1\r\nx\r\n")
        got = pub.ping()
        assert got.count(b"-ERR 'Permissions Violation for Publish to \"foo.bar\"'") == 1, got
        world.connect(pub, "open")
        pub.send(b"PUB foo.bar 1\r\nx\r\n")
        assert b"-ERR" not in pub.ping()
    finally:
        pub.close()


@pytest.mark.real
def test_wildcard_subscriptions_do_not_get_denied_subjects(world: World, port: int) -> None:
    sub, pub = Raw(port), Raw(port)
    try:
        world.connect(sub, "filtered")
        # secret.> overlaps the deny secret.*.x; jobs.* in queue grp overlaps jobs.hidden grp
        sub.send(b"SUB secret.> 1\r\nSUB jobs.* grp 2\r\nSUB other.* 3\r\n")
        assert b"-ERR" not in sub.ping()
        world.connect(pub, "open")
        pub.send(
            b"PUB secret.a.x 1\r\n1\r\nPUB secret.a.y 1\r\n2\r\nPUB secret.a.x.z 1\r\n3\r\n"
            b"PUB jobs.hidden 1\r\n4\r\nPUB jobs.open 1\r\n5\r\nPUB other.x 1\r\n6\r\n"
        )
        assert b"-ERR" not in pub.ping()
        got = sub.ping()
        assert b"MSG secret.a.x " not in got, got
        assert b"MSG jobs.hidden " not in got, got
        for subject in (b"secret.a.y", b"secret.a.x.z", b"jobs.open", b"other.x"):
            assert b"MSG " + subject + b" " in got, (subject, got)
    finally:
        sub.close()
        pub.close()


@pytest.mark.real
def test_without_an_overlapping_subscription_nothing_is_filtered(world: World, port: int) -> None:
    sub, pub = Raw(port), Raw(port)
    try:
        world.connect(sub, "filtered")
        sub.send(b"SUB secret.a.y 1\r\nSUB jobs.open 2\r\n")  # literal, no queue: no filter
        assert b"-ERR" not in sub.ping()
        world.connect(pub, "open")
        pub.send(b"PUB secret.a.y 1\r\n1\r\nPUB jobs.open 1\r\n2\r\n")
        pub.ping()
        got = sub.ping()
        assert b"MSG secret.a.y 1 1\r\n1\r\n" in got and b"MSG jobs.open 2 1\r\n2\r\n" in got, got
    finally:
        sub.close()
        pub.close()


@pytest.mark.real
def test_a_queue_member_that_may_not_take_a_message_passes_it_on(world: World, port: int) -> None:
    """processMsgResults: the members of a queue group are tried in turn until one takes the
    message; a member whose deny filter refuses it, or the sender without echo, does not."""
    filtered, other, pub = Raw(port), Raw(port), Raw(port)
    try:
        world.connect(filtered, "filtered")
        world.connect(other, "open")
        kp, token = world.users["open"]
        body = {"verbose": False, "protocol": 1, "echo": False, "jwt": token}
        body["sig"] = sign_nonce(kp, pub.info["nonce"])
        pub.send(b"CONNECT " + json.dumps(body).encode() + b"\r\n")
        for raw in (filtered, other, pub):
            raw.send(b"SUB jobs.* grp 1\r\n")
            assert b"-ERR" not in raw.ping()
        pub.send(b"PUB jobs.hidden 1\r\nx\r\n" * 30)
        assert b"-ERR" not in pub.ping()
        assert other.ping().count(b"MSG jobs.hidden 1 1\r\n") == 30
        assert b"MSG" not in filtered.ping()
    finally:
        for raw in (filtered, other, pub):
            raw.close()
