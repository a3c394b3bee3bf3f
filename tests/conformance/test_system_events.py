"""The server's events on both servers, with the same config and creds (events.go):

- ``$SYS.ACCOUNT.<A>.CONNECT`` and ``$SYS.ACCOUNT.<A>.DISCONNECT`` (``accountConnectEvent``,
  ``accountDisconnectEvent``);
- an account's connection count, ``$SYS.ACCOUNT.<A>.SERVER.CONNS`` and the old
  ``$SYS.SERVER.ACCOUNT.<A>.CONNS`` (``accConnsUpdate``), on every change and every 30 s while
  the account has connections;
- ``$SYS.SERVER.<id>.CLIENT.AUTH.ERR`` for a client refused for its credentials
  (``sendAuthErrorEvent``);
- ``$SYS.SERVER.<id>.STATSZ`` on the statsz heartbeat (250 ms, then twice as long each time up to
  10 s) and ``$SYS.SERVER.<id>.SHUTDOWN`` when the server stops (``shutdownEventing``: then no
  connection gets a DISCONNECT advisory).

The main scenario, watched by a system-account subscriber: a user connects, subscribes to a
subject, publishes one message to it (and gets it back), and closes; then a client with
credentials the server refuses connects. The tests check what must agree: the order of the
events (by the ``server.seq`` each carries), the subjects, the ``type``, the client's
``acc``/``user``/``name``/``lang``/``ver``/``issuer_key``/``name_tag``, the ``reason``, the
``sent``/``received`` counts, an account's counts, and, side by side, the key sets and JSON types
of every event. Other scenarios: a client refused at its account's connection limit, the close
reason of each way a server closes a client (protocol errors, a re-CONNECT, a failed TLS
handshake), a shutdown, and the timers. The differences allowed are documented (docs/broker.md,
"System events"): ``server.feature_flags`` (JetStream) is nats-server's only, an account's
``num_subscriptions`` counts no internal subscriptions on the broker, and nats-server's
DISCONNECT may overtake the events it usually follows (:func:`canonical`).
Operator mode (``resolver: MEMORY`` with a system account) and config mode (``system_account``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import __version__ as NATS_PY_VERSION
from nats.errors import Error as NatsError

from tests.broker.test_tls import PKI, make_pki
from tests.conformance.test_system_services import SERVER_NAME, World, shape
from tests.natsserver import ServerProcess
from tests.realcomp import free_port
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config

pytestmark = pytest.mark.real

CONNECT = "io.nats.server.advisory.v1.client_connect"
DISCONNECT = "io.nats.server.advisory.v1.client_disconnect"
CONNS = "io.nats.server.advisory.v1.account_connections"
PAYLOAD = b"hello"
#: keys one server writes and the other does not (docs/broker.md)
ONLY_NATS = {"server": {"feature_flags"}}
CLIENT_KEYS = {"start", "host", "id", "acc", "user", "name", "lang", "ver", "name_tag", "kind", "client_type"}
SERVER_KEYS = {"name", "host", "id", "ver", "jetstream", "flags", "seq", "time"}
ZERO = {"msgs": 0, "bytes": 0}
#: what a system-account monitor subscribes to (STATSZ and SHUTDOWN are watched on their own)
SUBJECTS = (
    "$SYS.ACCOUNT.*.CONNECT",
    "$SYS.ACCOUNT.*.DISCONNECT",
    "$SYS.ACCOUNT.*.SERVER.CONNS",
    "$SYS.SERVER.ACCOUNT.*.CONNS",
    "$SYS.SERVER.*.CLIENT.AUTH.ERR",
)

Events = list[tuple[str, dict[str, Any]]]
Login = dict[str, Any]


def kind_of(subject: str) -> str:
    """``CONNECT``, ``DISCONNECT``, ``CONNS`` (the new subject), ``CONNS.old``, ``AUTH.ERR``."""
    if subject.endswith(".CLIENT.AUTH.ERR"):
        return "AUTH.ERR"
    if subject.startswith("$SYS.SERVER.ACCOUNT."):
        return "CONNS.old"
    if subject.endswith(".SERVER.CONNS"):
        return "CONNS"
    return subject.rsplit(".", 1)[1]


def label(subject: str) -> str:
    """The event's kind with its account: ``G`` for ``$G``, ``A`` for any other."""
    kind = kind_of(subject)
    if kind == "AUTH.ERR":
        return kind
    return f"{'G' if '.$G.' in subject else 'A'}.{kind}"


def labels(events: Events) -> list[str]:
    return [label(s) for s, _ in events]


def _seq(doc: dict[str, Any]) -> int:
    return int(doc["server"]["seq"] if "server" in doc else doc["seq"])


def canonical(events: Events) -> Events:
    """Events in server order, but a DISCONNECT advisory after its account's new count and its
    client's auth-error advisory: nats-server sends it from a goroutine of its own (client.go
    markConnAsClosed), which now and then overtakes them."""
    out = list(events)
    moved = True
    while moved:
        moved = False
        for i in range(len(out) - 1):
            (s, d), (t, e) = out[i], out[i + 1]
            if kind_of(s) != "DISCONNECT":
                continue
            if kind_of(t).startswith("CONNS") or (
                kind_of(t) == "AUTH.ERR" and e["client"]["id"] == d["client"]["id"]
            ):
                out[i], out[i + 1] = out[i + 1], out[i]
                moved = True
    return out


class Monitor:
    """A system-account client recording what it receives, in the server's order (``seq``):
    nats-py runs each subscription's callbacks on its own, so arrival order is not send order."""

    def __init__(self) -> None:
        self.got: Events = []
        self.nc: Any = None

    async def start(self, url: str, login: Login, subjects: tuple[str, ...] = SUBJECTS) -> Monitor:
        self.nc = await nats.connect(url, name="monitor", allow_reconnect=False, **login)

        async def record(msg: Any) -> None:
            self.got.append((msg.subject, json.loads(msg.data)))

        for subject in subjects:
            await self.nc.subscribe(subject, cb=record)
        await self.nc.flush()
        return self

    def events(self) -> Events:
        return canonical(sorted(self.got, key=lambda e: _seq(e[1])))

    async def wait(self, done: Callable[[Events], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.events()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # nothing more is coming

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


def _count(kind: str) -> Callable[[Events], int]:
    return lambda events: sum(1 for s, _ in events if kind_of(s) == kind)


async def _refused(url: str, login: Login) -> None:
    with pytest.raises((NatsError, OSError)):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, **login)


async def _watch(url: str, sys_login: Login, user_login: Login, bad: Login) -> Events:
    """The scenario: what a system-account subscriber sees of one user's life and one refusal."""
    mon = await Monitor().start(url, sys_login)
    try:
        nc = await nats.connect(url, name="worker", allow_reconnect=False, **user_login)
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def echo(msg: Any) -> None:
            received.set_result(msg.data)

        await nc.subscribe("orders.new", cb=echo)
        await nc.publish("orders.new", PAYLOAD)
        assert await asyncio.wait_for(received, 5) == PAYLOAD
        await nc.close()
        await _refused(url, bad)
        await mon.wait(lambda events: _count("DISCONNECT")(events) >= 2)
    finally:
        await mon.close()
    return mon.events()


def _run(kind: str, config: str, workdir: Path, sys_login: Login, user_login: Login) -> Events:
    srv = make_server(kind, config, workdir)
    srv.start()
    try:
        bad = {"user": "nobody", "password": "wrong"}
        return asyncio.run(_watch(srv.url, sys_login, user_login, bad))
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("sysevents"))


@pytest.fixture(scope="module")
def operator_events(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Events]]:
    out = {}
    for kind in SERVER_KINDS:
        sys_login = {"user_credentials": str(world.users["sys"].creds)}
        user_login = {"user_credentials": str(world.users["plain"].creds)}
        workdir = tmp_path_factory.mktemp(f"op-{kind}")
        out[kind] = _run(kind, world.config(free_port()), workdir, sys_login, user_login)
    yield out


CONFIG_MODE = f"""
server_name: {SERVER_NAME}
accounts {{
  APP: {{ users: [ {{ user: worker, password: wpass }} ] }}
  SYS: {{ users: [ {{ user: admin, password: apass }} ] }}
}}
system_account: SYS
"""
ADMIN = {"user": "admin", "password": "apass"}


@pytest.fixture(scope="module")
def config_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Events]]:
    out = {}
    for kind in SERVER_KINDS:
        workdir = tmp_path_factory.mktemp(f"cfg-{kind}")
        out[kind] = _run(kind, CONFIG_MODE, workdir, ADMIN, {"user": "worker", "password": "wpass"})
    yield out


def _pick(events: Events, subject: str) -> dict[str, Any]:
    found = [doc for s, doc in events if s == subject]
    assert len(found) == 1, (subject, [s for s, _ in events])
    return found[0]


def _check_common(doc: dict[str, Any], type_: str) -> None:
    assert doc["type"] == type_
    assert isinstance(doc["id"], str) and len(doc["id"]) == 22
    assert doc["timestamp"].endswith("Z")
    _check_server(doc["server"])


def _check_server(server: dict[str, Any]) -> None:
    assert set(server) - ONLY_NATS["server"] == SERVER_KEYS, server
    assert server["name"] == SERVER_NAME and server["host"] == "127.0.0.1"
    assert isinstance(server["seq"], int) and server["jetstream"] is False and server["flags"] == 0


#: the main scenario's events, in order: the worker (account A) comes and goes, then the refusal
SCENARIO = [
    "A.CONNS.old", "A.CONNS", "A.CONNECT",
    "A.CONNS.old", "A.CONNS", "A.DISCONNECT",
    "AUTH.ERR", "G.DISCONNECT",
]  # fmt: skip


@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.parametrize("which", ["operator", "config"])
def test_events_in_order(
    kind: str, which: str, operator_events: dict[str, Events], config_events: dict[str, Events]
) -> None:
    """The account's count goes before the CONNECT (the client is added to the account first) and
    before the DISCONNECT; the auth-error advisory before the refused client's DISCONNECT."""
    events = (operator_events if which == "operator" else config_events)[kind]
    assert labels(events) == SCENARIO


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_operator_connect_and_disconnect(kind: str, world: World, operator_events: dict[str, Events]) -> None:
    events = operator_events[kind]
    app = world.app.public_key
    user = world.users["plain"].key.public_key
    connect = _pick(events, f"$SYS.ACCOUNT.{app}.CONNECT")
    _check_common(connect, CONNECT)
    client = connect["client"]
    assert CLIENT_KEYS | {"jwt", "issuer_key"} == set(client), client
    assert (client["acc"], client["user"], client["name"], client["lang"]) == (app, user, "worker", "python3")
    assert client["ver"] == NATS_PY_VERSION
    assert client["issuer_key"] == app and client["name_tag"] == "APP"
    assert (client["kind"], client["client_type"], client["host"]) == ("Client", "nats", "127.0.0.1")

    gone = _pick(events, f"$SYS.ACCOUNT.{app}.DISCONNECT")
    _check_common(gone, DISCONNECT)
    assert gone["client"]["id"] == client["id"] and gone["client"]["start"] == client["start"]
    assert {k: v for k, v in gone["client"].items() if k not in ("rtt", "stop")} == client
    assert isinstance(gone["client"]["rtt"], int) and gone["client"]["rtt"] > 0
    assert gone["client"]["stop"] == gone["timestamp"]
    assert gone["reason"] == "Client Closed"
    # what the client sent (PUB) and received (its own message back)
    assert gone["sent"] == {"msgs": 1, "bytes": len(PAYLOAD)}
    assert gone["received"] == {"msgs": 1, "bytes": len(PAYLOAD)}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_refused_client_is_a_disconnect_of_the_global_account(
    kind: str, operator_events: dict[str, Events]
) -> None:
    events = operator_events[kind]
    refused = _pick(events, "$SYS.ACCOUNT.$G.DISCONNECT")
    _check_common(refused, DISCONNECT)
    assert refused["reason"] == "Authentication Failure"
    client = refused["client"]
    assert (client["acc"], client["user"], client["name_tag"]) == ("$G", "nobody", "$G")
    assert "issuer_key" not in client and "name" not in client and "jwt" not in client
    assert refused["sent"] == refused["received"] == {"msgs": 0, "bytes": 0}
    assert not [s for s, _ in events if s == "$SYS.ACCOUNT.$G.CONNECT"]
    assert not [s for s, _ in events if s.startswith("$SYS.SERVER.ACCOUNT.$G.")]  # never for $G


@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.parametrize("which", ["operator", "config"])
def test_auth_error_advisory(
    kind: str, which: str, operator_events: dict[str, Events], config_events: dict[str, Events]
) -> None:
    """``$SYS.SERVER.<id>.CLIENT.AUTH.ERR``: the refused client's disconnect advisory again, on the
    server's own subject; a client that closes itself has none."""
    events = (operator_events if which == "operator" else config_events)[kind]
    refused = _pick(events, "$SYS.ACCOUNT.$G.DISCONNECT")
    [(subject, err)] = [(s, d) for s, d in events if kind_of(s) == "AUTH.ERR"]
    assert subject == f"$SYS.SERVER.{refused['server']['id']}.CLIENT.AUTH.ERR"
    _check_common(err, DISCONNECT)
    assert err["id"] != refused["id"]
    assert err["reason"] == "Authentication Failure"
    assert err["sent"] == refused["sent"] and err["received"] == refused["received"]
    volatile = ("stop",)
    assert {k: v for k, v in err["client"].items() if k not in volatile} == {
        k: v for k, v in refused["client"].items() if k not in volatile
    }


@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.parametrize("which", ["operator", "config"])
def test_account_connections(
    kind: str,
    which: str,
    world: World,
    operator_events: dict[str, Events],
    config_events: dict[str, Events],
) -> None:
    """``AccountNumConns`` when the worker comes (1) and goes (0), on the new subject and the old
    one (one event id for both): the account, its name, its counts, and what its clients sent and
    received (the worker's message, once each way)."""
    events = (operator_events if which == "operator" else config_events)[kind]
    acc = world.app.public_key if which == "operator" else "APP"
    conns = [(s, d) for s, d in events if kind_of(s).startswith("CONNS")]
    assert [s for s, _ in conns] == [
        f"$SYS.SERVER.ACCOUNT.{acc}.CONNS",
        f"$SYS.ACCOUNT.{acc}.SERVER.CONNS",
    ] * 2
    came, went = conns[1][1], conns[3][1]
    assert conns[0][1]["id"] == came["id"] != went["id"] == conns[2][1]["id"]
    for old, new in ((conns[0][1], came), (conns[2][1], went)):
        assert _without_server(old) == _without_server(new)
    links = {"gateways": ZERO, "routes": ZERO, "leafs": ZERO}
    traffic = {"msgs": 1, "bytes": len(PAYLOAD)} | links
    for doc, n, counts in ((came, 1, ZERO | links), (went, 0, traffic)):
        _check_common(doc, CONNS)
        assert set(doc) - {"type", "id", "timestamp", "server", "num_subscriptions"} == {
            "acc", "name", "conns", "leafnodes", "total_conns", "sent", "received", "slow_consumers"
        }  # fmt: skip
        assert (doc["acc"], doc["name"], doc["conns"], doc["total_conns"]) == (acc, "APP", n, n)
        assert doc["leafnodes"] == 0 and doc["slow_consumers"] == 0
        assert isinstance(doc["num_subscriptions"], int)  # nats-server counts its internal ones too
        assert doc["sent"] == doc["received"] == counts


def _without_server(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "server"}


def _shapes(events: Events) -> list[tuple[str, Any]]:
    return [(label(subject), shape(_drop(doc), kind_of(subject))) for subject, doc in events]


def _drop(doc: dict[str, Any]) -> dict[str, Any]:
    """The event without the keys only nats-server writes."""
    out = dict(doc)
    if "server" in doc:
        out["server"] = {k: v for k, v in doc["server"].items() if k not in ONLY_NATS["server"]}
    else:  # SHUTDOWN: the server block itself
        out = {k: v for k, v in doc.items() if k not in ONLY_NATS["server"]}
    return out


@pytest.mark.parametrize("which", ["operator", "config"])
def test_shapes_agree(
    which: str, operator_events: dict[str, Events], config_events: dict[str, Events]
) -> None:
    events = operator_events if which == "operator" else config_events
    nats_events, broker_events = (events[k] for k in SERVER_KINDS)
    assert labels(nats_events) == labels(broker_events)
    assert _shapes(nats_events) == _shapes(broker_events)
    # nats-server writes feature_flags, and nothing else the broker lacks
    for _, doc in nats_events:
        assert set(doc["server"]) - {"feature_flags"} == {k for k in broker_events[0][1]["server"]}


# --- a client refused at its account's connection limit ----------------------------------------


class LimitWorld:
    """An operator, a system account and an account ``LIM`` that allows one connection."""

    def __init__(self, tmp: Path) -> None:
        now = int(time.time())
        op = KeyPair.generate(PrefixByte.OPERATOR)
        self.sys = KeyPair.generate(PrefixByte.ACCOUNT)
        self.lim = KeyPair.generate(PrefixByte.ACCOUNT)
        self.op_jwt = jwt.OperatorClaims(
            sub=op.public_key, name="op", system_account=self.sys.public_key
        ).encode(op, iat=now - 100)
        self.accounts = [
            jwt.AccountClaims(sub=self.sys.public_key, name="SYS").encode(op, iat=now - 100),
            jwt.AccountClaims(
                sub=self.lim.public_key, name="LIM", limits=jwt.AccountLimits(conn=1)
            ).encode(op, iat=now - 100),
        ]
        self.creds: dict[str, Path] = {}
        self.tokens: dict[str, str] = {}
        for name, acct in (("sys", self.sys), ("first", self.lim), ("second", self.lim)):
            kp = KeyPair.generate(PrefixByte.USER)
            token = jwt.UserClaims(sub=kp.public_key, name=name).encode(acct, iat=now - 80)
            path = tmp / f"{name}.creds"
            path.write_bytes(format_user_creds(token, kp.seed))
            self.creds[name] = path
            self.tokens[name] = token

    def config(self) -> str:
        return mem_resolver_config(self.op_jwt, self.accounts) + f"server_name: {SERVER_NAME}\n"


async def _watch_limit(url: str, lw: LimitWorld) -> Events:
    mon = await Monitor().start(url, {"user_credentials": str(lw.creds["sys"])})
    try:
        first = await nats.connect(
            url, name="first", allow_reconnect=False, user_credentials=str(lw.creds["first"])
        )
        try:
            await _refused(url, {"name": "second", "user_credentials": str(lw.creds["second"])})
            await mon.wait(lambda events: _count("DISCONNECT")(events) >= 1)
            return mon.events()  # (not the first client's going)
        finally:
            await first.close()
    finally:
        await mon.close()


@pytest.fixture(scope="module")
def limit_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LimitWorld, dict[str, Events]]]:
    lw = LimitWorld(tmp_path_factory.mktemp("limit"))
    out = {}
    for kind in SERVER_KINDS:
        srv = make_server(kind, lw.config(), tmp_path_factory.mktemp(f"limit-{kind}"))
        srv.start()
        try:
            out[kind] = asyncio.run(_watch_limit(srv.url, lw))
        finally:
            srv.stop()
    yield lw, out


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_refused_at_the_account_limit(kind: str, limit_events: tuple[LimitWorld, dict[str, Events]]) -> None:
    """nats-server binds the client to its account before it checks the limit: no CONNECT and
    no count change, only a DISCONNECT of that account, without the user it never became (no
    ``user``, ``issuer_key`` or ``tags``); and no auth-error advisory."""
    lw, runs = limit_events
    events = runs[kind]
    assert labels(events) == ["A.CONNS.old", "A.CONNS", "A.CONNECT", "A.DISCONNECT"]
    lim = lw.lim.public_key
    assert events[1][1]["conns"] == 1 and events[2][1]["client"]["name"] == "first"
    subject, gone = events[3]
    assert subject == f"$SYS.ACCOUNT.{lim}.DISCONNECT"
    _check_common(gone, DISCONNECT)
    assert gone["reason"] == "Maximum Account Connections Exceeded"
    client = gone["client"]
    assert set(client) == CLIENT_KEYS - {"user"} | {"jwt", "rtt", "stop"}, client
    assert (client["acc"], client["name"], client["name_tag"]) == (lim, "second", "LIM")
    assert client["jwt"] == lw.tokens["second"]
    assert gone["sent"] == gone["received"] == ZERO


# --- close reasons --------------------------------------------------------------------------------

REASONS_CONFIG = CONFIG_MODE + "max_payload: 1000\nmax_control_line: 512\n"
#: at the end of what a raw client sends: it waits for PONG, then resets the connection
RESET = b"<reset>"
LOGIN = b'{"user":"worker","pass":"wpass","verbose":false}'
ADMITTED = ["A.CONNS.old", "A.CONNS", "A.CONNECT", "A.CONNS.old", "A.CONNS", "A.DISCONNECT"]
#: (what a raw client sends after INFO, the events it causes, the DISCONNECT's reason)
CLOSES: list[tuple[bytes, list[str], str]] = [
    (b"CONNECT " + LOGIN + b"\r\nFOO\r\n", ADMITTED, "Protocol Violation"),
    (b"CONNECT " + LOGIN + b"\r\nPUB a\r\n", ADMITTED, "Protocol Violation"),
    (b"CONNECT " + LOGIN + b"\r\n-ERR 'bye'\r\n", ADMITTED, "Parse Error"),
    (b"CONNECT " + LOGIN + b"\r\nPUB a 2000\r\n", ADMITTED, "Maximum Message Payload Exceeded"),
    (b"CONNECT " + LOGIN + b"\r\nSUB " + b"a" * 600 + b" 1\r\n", ADMITTED, "Maximum Control Line Exceeded"),
    # checked once the client is in its account (client.go processConnect)
    (b'CONNECT {"user":"worker","pass":"wpass","protocol":5}\r\n', ADMITTED, "Bad Client Protocol Version"),
    (
        b'CONNECT {"user":"worker","pass":"wpass","no_responders":true}\r\n',
        ADMITTED,
        "No Responders Requires Headers",
    ),
    # a second CONNECT is a new login: the client leaves its account and comes back
    (
        b"CONNECT " + LOGIN + b"\r\nPING\r\nCONNECT " + LOGIN + b"\r\n-ERR 'bye'\r\n",
        ADMITTED[:3] + ADMITTED[3:5] + ADMITTED,
        "Parse Error",
    ),
    # ... and before it is in one
    (b'CONNECT {"user":\r\n', ["G.DISCONNECT"], "Protocol Violation"),
    (b"SUB a 1\r\n", ["AUTH.ERR", "G.DISCONNECT"], "Authentication Failure"),
    (b'CONNECT {"user":"worker","pass":"nope","protocol":5}\r\n', ["AUTH.ERR", "G.DISCONNECT"],
     "Authentication Failure"),
    # the client resets its connection (RST) instead of closing it
    (b"CONNECT " + LOGIN + b"\r\nPING\r\n" + RESET, ADMITTED, "Read Error"),
]  # fmt: skip


async def _raw_close(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()  # INFO
        if data.endswith(RESET):
            writer.write(data[: -len(RESET)])
            await asyncio.wait_for(reader.readuntil(b"PONG\r\n"), 5)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # closed with linger 0: an RST
            return
        writer.write(data)
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)  # until the server closes it
    finally:
        writer.close()


def _new_disconnect(seen: set[int]) -> Callable[[Events], bool]:
    return lambda events: any(kind_of(s) == "DISCONNECT" and _seq(d) not in seen for s, d in events)


async def _watch_closes(srv: ServerProcess) -> list[Events]:
    mon = await Monitor().start(srv.url, ADMIN)
    out = []
    try:
        for data, _, _ in CLOSES:
            seen = {_seq(doc) for _, doc in mon.got}
            await _raw_close(srv.port, data)
            await mon.wait(_new_disconnect(seen))
            out.append([(s, d) for s, d in mon.events() if _seq(d) not in seen])
    finally:
        await mon.close()
    return out


@pytest.fixture(scope="module")
def close_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Events]]]:
    out = {}
    for kind in SERVER_KINDS:
        srv = make_server(kind, REASONS_CONFIG, tmp_path_factory.mktemp(f"closes-{kind}"))
        srv.start()
        try:
            out[kind] = asyncio.run(_watch_closes(srv))
        finally:
            srv.stop()
    yield out


@pytest.mark.parametrize("kind", SERVER_KINDS)
@pytest.mark.parametrize("case", range(len(CLOSES)), ids=lambda i: CLOSES[i][2].replace(" ", "-") + f"-{i}")
def test_close_reasons(kind: str, case: int, close_events: dict[str, list[Events]]) -> None:
    """nats-server's ``ClosedState`` for each way a server closes a client: a parser error is a
    Protocol Violation, the client's own ``-ERR`` a Parse Error; the protocol version and
    no-responders checks come after the login, so the client was in its account."""
    _, expected, reason = CLOSES[case]
    events = close_events[kind][case]
    assert labels(events) == expected
    for subject, doc in events:
        if kind_of(subject) in ("AUTH.ERR", "DISCONNECT"):
            assert doc["reason"] == reason


def _client_facts(events: Events) -> list[tuple[Any, ...]]:
    return [
        (label(s), d.get("reason"), d["client"]["acc"], d["client"].get("user"), d["client"]["name_tag"])
        for s, d in events
        if "client" in d
    ]


def test_close_events_agree(close_events: dict[str, list[Events]]) -> None:
    nats_side, broker_side = (close_events[k] for k in SERVER_KINDS)
    for a, b in zip(nats_side, broker_side, strict=True):
        assert _shapes(a) == _shapes(b)
        assert _client_facts(a) == _client_facts(b)


async def _watch_tls(srv: ServerProcess, pki: PKI) -> Events:
    tls = {"tls": pki.client_context(), "tls_hostname": "127.0.0.1"}
    mon = await Monitor().start(srv.url, ADMIN | tls)
    try:
        await _raw_close(srv.port, b'CONNECT {"user":"worker","pass":"wpass"}\r\n')  # not TLS
        await mon.wait(lambda events: _count("DISCONNECT")(events) >= 1)
    finally:
        await mon.close()
    return mon.events()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_tls_handshake_failure(kind: str, tmp_path: Path) -> None:
    """A client that answers INFO in plaintext on a TLS server: a disconnect of ``$G`` (its CONNECT
    was never read), reason ``TLS Handshake Failure``."""
    pki = make_pki(tmp_path / "pki")
    config = CONFIG_MODE + (
        f"tls {{ cert_file: {json.dumps(pki.path('server.pem'))}, "
        f"key_file: {json.dumps(pki.path('server-key.pem'))}, timeout: 1 }}\n"
    )
    srv = make_server(kind, config, tmp_path / kind)
    srv.start()
    try:
        events = asyncio.run(_watch_tls(srv, pki))
    finally:
        srv.stop()
    assert labels(events) == ["G.DISCONNECT"]
    gone = events[0][1]
    _check_common(gone, DISCONNECT)
    assert gone["reason"] == "TLS Handshake Failure"
    assert set(gone["client"]) == {"start", "host", "id", "acc", "stop", "name_tag", "kind", "client_type"}
    assert gone["client"]["acc"] == gone["client"]["name_tag"] == "$G"


# --- shutdown ---------------------------------------------------------------------------------------


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _raw_monitor(port: int, subjects: tuple[str, ...]) -> Stream:
    """A system-account client on a plain socket: nats-py drops what its subscriptions hold
    when the server closes the connection, this one reads to the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # INFO
    subs = b"".join(b"SUB %s %d\r\n" % (s.encode(), i) for i, s in enumerate(subjects, 1))
    writer.write(b'CONNECT {"user":"admin","pass":"apass","verbose":false}\r\n' + subs + b"PING\r\n")
    await writer.drain()
    while (line := await asyncio.wait_for(reader.readline(), 5)) != b"PONG\r\n":
        assert line and not line.startswith(b"-ERR"), line
    return reader, writer


async def _read_to_end(reader: asyncio.StreamReader) -> Events:
    out: Events = []
    while line := await asyncio.wait_for(reader.readline(), 10):
        if line.startswith(b"MSG "):
            parts = line.split()
            data = await reader.readexactly(int(parts[-1]) + 2)
            out.append((parts[1].decode(), json.loads(data[:-2])))
    return out


async def _watch_shutdown(srv: ServerProcess) -> tuple[Events, Events]:
    subjects = (*SUBJECTS, "$SYS.SERVER.*.SHUTDOWN")
    reader, writer = await _raw_monitor(srv.port, subjects)
    worker = await nats.connect(srv.url, user="worker", password="wpass", allow_reconnect=False)
    try:
        await worker.flush()
        await asyncio.sleep(0.3)
        ending = asyncio.ensure_future(_read_to_end(reader))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(srv.stop)
        got = await ending
    finally:
        writer.close()
        if not worker.is_closed:
            await worker.close()
    cut = next(i for i, (s, _) in enumerate(got) if s.endswith(".SHUTDOWN"))
    return got[:cut], got[cut:]


@pytest.fixture(scope="module")
def shutdown_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Events, Events]]]:
    out = {}
    for kind in SERVER_KINDS:
        srv = make_server(kind, CONFIG_MODE, tmp_path_factory.mktemp(f"shutdown-{kind}"))
        srv.start()
        try:
            out[kind] = asyncio.run(_watch_shutdown(srv))
        finally:
            srv.stop()
    yield out


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_shutdown(kind: str, shutdown_events: dict[str, tuple[Events, Events]]) -> None:
    """``$SYS.SERVER.<id>.SHUTDOWN`` (its body is the ``server`` block), and nothing after it:
    nats-server stops its events before it closes the connections, so the worker and the monitor
    go without a DISCONNECT advisory or a count change."""
    before, after = shutdown_events[kind]
    # (nats-server sends events from a queue: the monitor may see its own connect, in SYS)
    before = [(s, d) for s, d in before if ".APP." in s]
    assert labels(before) == ["A.CONNS.old", "A.CONNS", "A.CONNECT"]
    [(subject, doc)] = after
    assert subject == f"$SYS.SERVER.{doc['id']}.SHUTDOWN"
    _check_server(doc)
    assert doc["id"] == before[0][1]["server"]["id"] and doc["seq"] > before[-1][1]["server"]["seq"]


def test_shutdown_shapes_agree(shutdown_events: dict[str, tuple[Events, Events]]) -> None:
    (_, a), (_, b) = (shutdown_events[k] for k in SERVER_KINDS)
    assert _shapes(a) == _shapes(b)


# --- the timers: statsz heartbeat, account connection counts -------------------------------------

TIMERS_WINDOW = 31.5  # s after the worker connects: one account heartbeat (30 s), six statsz
TIMER_SLACK = 0.5  # s either way


Arrivals = list[tuple[float, str, dict[str, Any]]]


async def _watch_timers(srv: ServerProcess, login: Login) -> tuple[list[float], Arrivals]:
    """When STATSZ broadcasts and the worker's account's counts arrive (seconds, monotonic)."""
    statsz: list[float] = []
    conns: Arrivals = []
    nc = await nats.connect(srv.url, name="monitor", allow_reconnect=False, **ADMIN)

    async def on_statsz(msg: Any) -> None:
        statsz.append(time.monotonic())
        doc = json.loads(msg.data)
        assert set(doc) == {"server", "statsz"} and doc["statsz"]["connections"] >= 1

    async def on_conns(msg: Any) -> None:
        conns.append((time.monotonic(), msg.subject, json.loads(msg.data)))

    await nc.subscribe("$SYS.SERVER.*.STATSZ", cb=on_statsz)
    await nc.subscribe("$SYS.ACCOUNT.APP.SERVER.CONNS", cb=on_conns)
    await nc.subscribe("$SYS.SERVER.ACCOUNT.APP.CONNS", cb=on_conns)
    await nc.flush()
    worker = await nats.connect(srv.url, name="worker", allow_reconnect=False, **login)
    start = time.monotonic()
    try:
        await asyncio.sleep(TIMERS_WINDOW)
    finally:
        await worker.close()
        await nc.close()
    return [t - start for t in statsz], [(t - start, s, d) for t, s, d in conns]


@pytest.fixture(scope="module")
def timer_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Both servers at once (the window is long)."""
    servers = [make_server(k, CONFIG_MODE, tmp_path_factory.mktemp(f"timers-{k}")) for k in SERVER_KINDS]
    try:
        for srv in servers:
            srv.start()

        async def both() -> list[Any]:
            login = {"user": "worker", "password": "wpass"}
            return list(await asyncio.gather(*(_watch_timers(srv, login) for srv in servers)))

        results = asyncio.run(both())
    finally:
        for srv in servers:
            srv.stop()
    yield dict(zip(SERVER_KINDS, results, strict=True))


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_statsz_heartbeat(kind: str, timer_events: dict[str, Any]) -> None:
    """STATSZ at 0.25 s after the start, then 1, 2, 4, 8 s later (the interval doubles, and
    the 500 ms one is swallowed by the 1 s rate limit), then every 10 s."""
    statsz, _ = timer_events[kind]
    gaps = [b - a for a, b in itertools.pairwise(statsz)]
    assert len(gaps) >= 4, statsz
    for gap, want in zip(gaps[-4:], (2.0, 4.0, 8.0, 10.0), strict=True):
        assert abs(gap - want) < TIMER_SLACK, (gaps, statsz)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_account_connections_heartbeat(kind: str, timer_events: dict[str, Any]) -> None:
    """The account's count when the worker connects, and again 30 s later, on both subjects."""
    _, conns = timer_events[kind]
    conns = sorted(conns, key=lambda c: _seq(c[2]))
    assert [s for _, s, _ in conns] == ["$SYS.SERVER.ACCOUNT.APP.CONNS", "$SYS.ACCOUNT.APP.SERVER.CONNS"] * 2
    first, again = conns[1], conns[3]
    assert first[0] < TIMER_SLACK and abs(again[0] - 30.0) < TIMER_SLACK, conns
    assert first[2]["conns"] == again[2]["conns"] == 1 and first[2]["id"] != again[2]["id"]
