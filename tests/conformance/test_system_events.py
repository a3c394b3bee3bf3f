"""Connect and disconnect advisories on both servers: ``$SYS.ACCOUNT.<A>.CONNECT`` and
``$SYS.ACCOUNT.<A>.DISCONNECT`` (events.go ``accountConnectEvent``, ``accountDisconnectEvent``).

Each server runs the same scenario, watched by a system-account subscriber: a user connects,
subscribes to a subject, publishes one message to it (and gets it back), and closes; then a client
with credentials the server refuses connects. The tests check what must agree: the subjects, the
``type``, the client's ``acc``/``user``/``name``/``lang``/``ver``/``issuer_key``/``name_tag``,
the ``reason`` of a client-closed connection and of a refused one (a disconnect of ``$G``, the
account nats-server's clients start in), the ``sent``/``received`` counts, and, side by side, the
key sets and JSON types of every event. The one difference allowed is documented
(docs/broker.md, "System account"): ``server.feature_flags`` (JetStream) is nats-server's only.
Operator mode (``resolver: MEMORY`` with a system account) and config mode (``system_account``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import __version__ as NATS_PY_VERSION
from nats.errors import Error as NatsError

from tests.conformance.test_system_services import SERVER_NAME, World, shape
from tests.realcomp import free_port
from tests.servers import SERVER_KINDS, make_server

pytestmark = pytest.mark.real

CONNECT = "io.nats.server.advisory.v1.client_connect"
DISCONNECT = "io.nats.server.advisory.v1.client_disconnect"
PAYLOAD = b"hello"
#: keys one server writes and the other does not (docs/broker.md)
ONLY_NATS = {"server": {"feature_flags"}}
CLIENT_KEYS = {"start", "host", "id", "acc", "user", "name", "lang", "ver", "name_tag", "kind", "client_type"}

Events = list[tuple[str, dict[str, Any]]]


Login = dict[str, Any]


async def _watch(url: str, sys_login: Login, user_login: Login, bad: Login) -> Events:
    """The scenario: what a system-account subscriber sees of one user's life and one refusal."""
    got: Events = []

    async def record(msg: Any) -> None:
        got.append((msg.subject, json.loads(msg.data)))

    mon = await nats.connect(url, name="monitor", allow_reconnect=False, **sys_login)
    try:
        await mon.subscribe("$SYS.ACCOUNT.*.CONNECT", cb=record)
        await mon.subscribe("$SYS.ACCOUNT.*.DISCONNECT", cb=record)
        await mon.flush()
        nc = await nats.connect(url, name="worker", allow_reconnect=False, **user_login)
        received: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def echo(msg: Any) -> None:
            received.set_result(msg.data)

        await nc.subscribe("orders.new", cb=echo)
        await nc.publish("orders.new", PAYLOAD)
        assert await asyncio.wait_for(received, 5) == PAYLOAD
        await nc.close()
        with pytest.raises((NatsError, OSError)):
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, **bad)
        deadline = time.monotonic() + 5
        while sum(1 for s, _ in got if s.endswith(".DISCONNECT")) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # nothing more is coming
    finally:
        await mon.close()
    return got


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


@pytest.fixture(scope="module")
def config_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Events]]:
    out = {}
    for kind in SERVER_KINDS:
        workdir = tmp_path_factory.mktemp(f"cfg-{kind}")
        config = CONFIG_MODE
        sys_login = {"user": "admin", "password": "apass"}
        out[kind] = _run(kind, config, workdir, sys_login, {"user": "worker", "password": "wpass"})
    yield out


def _pick(events: Events, subject: str) -> dict[str, Any]:
    found = [doc for s, doc in events if s == subject]
    assert len(found) == 1, (subject, [s for s, _ in events])
    return found[0]


def _check_common(doc: dict[str, Any], type_: str) -> None:
    assert doc["type"] == type_
    assert isinstance(doc["id"], str) and len(doc["id"]) == 22
    assert doc["timestamp"].endswith("Z")
    server = doc["server"]
    assert server["name"] == SERVER_NAME and server["host"] == "127.0.0.1"
    assert isinstance(server["seq"], int) and server["jetstream"] is False and server["flags"] == 0


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


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_config_mode_system_account(kind: str, config_events: dict[str, Events]) -> None:
    events = config_events[kind]
    connect = _pick(events, "$SYS.ACCOUNT.APP.CONNECT")
    _check_common(connect, CONNECT)
    client = connect["client"]
    assert set(client) == CLIENT_KEYS, client  # no issuer_key: no user JWT
    assert (client["acc"], client["user"], client["name"]) == ("APP", "worker", "worker")
    assert client["name_tag"] == "APP"
    gone = _pick(events, "$SYS.ACCOUNT.APP.DISCONNECT")
    assert gone["reason"] == "Client Closed"
    assert gone["sent"] == gone["received"] == {"msgs": 1, "bytes": len(PAYLOAD)}
    refused = _pick(events, "$SYS.ACCOUNT.$G.DISCONNECT")
    assert refused["reason"] == "Authentication Failure" and refused["client"]["user"] == "nobody"


def _shapes(events: Events) -> dict[str, Any]:
    out = {}
    for subject, doc in events:
        kind = subject.rsplit(".", 1)[1]
        acc = "G" if ".$G." in subject else "A"
        out[f"{acc}.{kind}"] = shape(_drop(doc), kind)
    return out


def _drop(doc: dict[str, Any]) -> dict[str, Any]:
    """The event without the keys only nats-server writes."""
    out = dict(doc)
    out["server"] = {k: v for k, v in doc["server"].items() if k not in ONLY_NATS["server"]}
    return out


@pytest.mark.parametrize("which", ["operator", "config"])
def test_shapes_agree(
    which: str, operator_events: dict[str, Events], config_events: dict[str, Events]
) -> None:
    events = operator_events if which == "operator" else config_events
    nats_events, broker_events = (events[k] for k in SERVER_KINDS)
    assert [s.rsplit(".", 1)[1] for s, _ in nats_events] == [s.rsplit(".", 1)[1] for s, _ in broker_events]
    assert _shapes(nats_events) == _shapes(broker_events)
    # nats-server writes feature_flags, and nothing else the broker lacks
    for _, doc in nats_events:
        assert set(doc["server"]) - {"feature_flags"} == {k for k in broker_events[0][1]["server"]}
