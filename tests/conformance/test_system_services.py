"""The server's system services on both servers: ``$SYS.REQ.USER.INFO`` and the server pings.

Every test runs on the real nats-server and on trustkit-broker with the same config (operator
mode, ``resolver: MEMORY``, a system account; or a config-mode one) and the same creds, and
checks what must agree: the requesting user, account and permissions in ``USER.INFO``; the server
id and name; the statuses and error codes; which requests get no answer or no-responders; paging
and filters. ``test_shapes_agree`` runs both servers side by side and compares every reply's key
set and JSON types, level by level. The only differences allowed are the documented ones
(docs/broker.md, "System services"), listed in ``ONLY_NATS`` and ``ONLY_BROKER``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.conformance.test_system_requests import NO_RESPONDERS, SERVER_KEYS, ask
from tests.natsserver import ServerProcess
from tests.realcomp import free_port
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config

pytestmark = pytest.mark.real

USER_INFO = "$SYS.REQ.USER.INFO"
PING = "$SYS.REQ.SERVER.PING"
SERVER_NAME = "srv1"
#: nats-server's defaults for an ``allow_responses`` without values (DEFAULT_ALLOW_RESPONSE_*)
RESP_DEFAULT = {"max": 1, "ttl": 120_000_000_000}

#: keys one server writes and the other does not, by where they stand (docs/broker.md)
ONLY_NATS = {
    "server": {"feature_flags"},  # JetStream feature flags; the broker has no JetStream
    "varz": {"git_commit", "feature_flags"},
    "statsz": {"gomaxprocs"},  # a Go runtime setting, omitted when 0
}
ONLY_BROKER = {
    "conn": {
        "account",
        "authorized_user",
        "data_used",
        "data_limit",
        "account_data_used",
        "account_data_limit",
    },
}


@dataclass
class User:
    key: KeyPair
    creds: Path


class World:
    """An operator; SYS, APP and DEF (with default permissions) accounts; users with every kind
    of permission (publish and subscribe allow/deny, queue entries, responses), one without any,
    one with an expiry."""

    def __init__(self, tmp: Path) -> None:
        now = int(time.time())
        self.now = now
        op = KeyPair.generate(PrefixByte.OPERATOR)
        self.sys = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        self.dflt = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app_sk = KeyPair.generate(PrefixByte.ACCOUNT)
        self.op_jwt = jwt.OperatorClaims(
            sub=op.public_key, name="op", system_account=self.sys.public_key
        ).encode(op, iat=now - 100)
        sys_jwt = jwt.AccountClaims(sub=self.sys.public_key, name="SYS").encode(op, iat=now - 100)
        app_jwt = jwt.AccountClaims(
            sub=self.app.public_key, name="APP", signing_keys={self.app_sk.public_key: None}
        ).encode(op, iat=now - 100)
        defaults = jwt.Permissions(
            pub=jwt.Permission(allow=["def.>", USER_INFO]), sub=jwt.Permission(allow=["_INBOX.>"])
        )
        dflt_jwt = jwt.AccountClaims(
            sub=self.dflt.public_key, name="DEF", default_permissions=defaults
        ).encode(op, iat=now - 100)
        self.accounts = [sys_jwt, app_jwt, dflt_jwt]
        self.users: dict[str, User] = {}
        self.exp = now + 3600
        self._user(tmp, "sys", self.sys)
        self._user(
            tmp,
            "bob",
            self.app,
            pub=jwt.Permission(allow=["orders.>", USER_INFO, "_INBOX.>"], deny=["orders.secret"]),
            sub_perms=jwt.Permission(allow=["_INBOX.>", "q.> grp"], deny=["q.secret", "q.x grp2"]),
            resp=jwt.ResponsePermission(max=3, ttl=5_000_000_000),
            exp=self.exp,
        )
        self._user(tmp, "plain", self.app)
        self._user(
            tmp,
            "responder",
            self.app,
            pub=jwt.Permission(allow=[USER_INFO]),
            resp=jwt.ResponsePermission(),
            signer=self.app_sk,
        )
        self._user(tmp, "dflt", self.dflt)

    def _user(self, tmp: Path, name: str, acct: KeyPair, *, signer: KeyPair | None = None, **kw: Any) -> None:
        if signer is not None:
            kw["issuer_account"] = acct.public_key
        self.users[name] = make_user(tmp, name, signer or acct, iat=self.now - 80, **kw)

    def config(self, http_port: int) -> str:
        return server_config(self.op_jwt, self.accounts, http_port)


def make_user(tmp: Path, name: str, signer: KeyPair, *, iat: int, **claims: Any) -> User:
    """A user JWT for ``name`` signed by ``signer``, written with its seed to ``tmp/<name>.creds``."""
    kp = KeyPair.generate(PrefixByte.USER)
    token = jwt.UserClaims(sub=kp.public_key, name=name, **claims).encode(signer, iat=iat)
    path = tmp / f"{name}.creds"
    path.write_bytes(format_user_creds(token, kp.seed))
    return User(kp, path)


def server_config(op_jwt: str, accounts: list[str], http_port: int) -> str:
    """The memory-resolver config both servers run, named SERVER_NAME, monitoring on ``http_port``."""
    return mem_resolver_config(op_jwt, accounts) + f"server_name: {SERVER_NAME}\nhttp_port: {http_port}\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("syssvc"))


@dataclass
class Running:
    kind: str
    server: ServerProcess
    http_port: int


def start(kind: str, config: str, workdir: Path, http_port: int) -> Running:
    srv = make_server(kind, config, workdir)
    srv.start()
    return Running(kind, srv, http_port)


@pytest.fixture(scope="module", params=SERVER_KINDS)
def running(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    port = free_port()
    run = start(request.param, world.config(port), tmp_path_factory.mktemp(request.param), port)
    try:
        yield run
    finally:
        run.server.stop()


async def connect(run: Running, world: World, name: str) -> Any:
    return await nats.connect(
        run.server.url, user_credentials=str(world.users[name].creds), name=name, allow_reconnect=False
    )


async def settle(nc: Any, count: int) -> None:
    """Wait until the server counts ``count`` connections (closes of an earlier test's clients
    reach a server a moment after the client returns)."""
    deadline = time.monotonic() + 5
    while True:
        total = envelope(await ask(nc, PING + ".CONNZ", quiet=2))["data"]["total"]
        if total == count or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


def one(replies: list[bytes]) -> dict[str, Any]:
    assert len(replies) == 1, replies
    doc = json.loads(replies[0])
    assert isinstance(doc, dict)
    return doc


def envelope(replies: list[bytes]) -> dict[str, Any]:
    """A ``ServerAPIResponse``: the ``server`` block checked, then the document."""
    doc = one(replies)
    server = doc["server"]
    assert SERVER_KEYS <= set(server), server
    assert server["name"] == SERVER_NAME and server["host"] == "127.0.0.1"
    assert isinstance(server["seq"], int) and server["time"].endswith("Z") and server["jetstream"] is False
    return doc


def sorted_perms(perms: dict[str, Any]) -> dict[str, Any]:
    """nats-server lists permissions in its sublists' order: compare them as sets."""
    out: dict[str, Any] = {}
    for direction, value in perms.items():
        if direction == "responses":
            out[direction] = value
        else:
            out[direction] = {k: sorted(v) for k, v in value.items()}
    return out


def user_info(replies: list[bytes]) -> dict[str, Any]:
    doc = envelope(replies)
    assert set(doc) == {"server", "data"}, doc
    data: dict[str, Any] = doc["data"]
    if "permissions" in data:
        data["permissions"] = sorted_perms(data["permissions"])
    return data


# --- $SYS.REQ.USER.INFO --------------------------------------------------------------------------


def test_user_info_describes_the_requesting_user(running: Running, world: World) -> None:
    """Every account may ask; the reply names the requester, its account (and the account JWT's
    name), the user JWT's name, its permissions as the server holds them, and its expiry."""

    async def main() -> dict[str, dict[str, Any]]:
        out = {}
        for name in ("sys", "bob", "plain", "responder", "dflt"):
            nc = await connect(running, world, name)
            try:
                out[name] = user_info(await ask(nc, USER_INFO))
                # the requester's details are the server's: a header the client sends is replaced
                forged = {"Nats-Request-Info": json.dumps({"acc": world.sys.public_key, "user": "UFORGED"})}
                again = user_info(await ask(nc, USER_INFO, headers=forged))
                assert again.pop("expires", None) is None or name == "bob"  # (a second may pass)
                assert again == {k: v for k, v in out[name].items() if k != "expires"}
            finally:
                await nc.close()
        return out

    before = time.time()
    got = asyncio.run(main())
    after = time.time()
    users, app = world.users, world.app.public_key
    assert got["sys"] == {
        "user": users["sys"].key.public_key,
        "account": world.sys.public_key,
        "account_name": "SYS",
        "user_name": "sys",
    }
    bob = got["bob"]
    expires = bob.pop("expires")
    assert isinstance(expires, int) and expires % 1_000_000_000 == 0
    assert world.exp - after - 1 <= expires / 1e9 <= world.exp - before  # whole seconds left
    assert bob == {
        "user": users["bob"].key.public_key,
        "account": app,
        "account_name": "APP",
        "user_name": "bob",
        "permissions": {
            "publish": {"allow": sorted(["orders.>", USER_INFO, "_INBOX.>"]), "deny": ["orders.secret"]},
            "subscribe": {"allow": ["_INBOX.>", "q.> grp"], "deny": ["q.secret", "q.x grp2"]},
            "responses": {"max": 3, "ttl": 5_000_000_000},
        },
    }
    assert got["plain"] == {
        "user": users["plain"].key.public_key,
        "account": app,
        "account_name": "APP",
        "user_name": "plain",
    }
    # responses without values: nats-server's defaults; no subscribe permissions: an empty object
    assert got["responder"]["permissions"] == {
        "publish": {"allow": [USER_INFO]},
        "subscribe": {},
        "responses": RESP_DEFAULT,
    }
    assert got["responder"]["user"] == users["responder"].key.public_key  # signed by a signing key
    # the account's default permissions, for a user without any of its own
    assert got["dflt"]["account_name"] == "DEF"
    assert got["dflt"]["permissions"] == {
        "publish": {"allow": sorted(["def.>", USER_INFO])},
        "subscribe": {"allow": ["_INBOX.>"]},
    }


def test_user_info_addressed_to_an_account_reads_the_request_header(running: Running, world: World) -> None:
    """``$SYS.REQ.USER.<A>.INFO`` is the system account's own subscription: asked directly, it
    describes whatever ``Nats-Request-Info`` says (nothing without one), with the asking
    connection's permissions; a header that is not JSON gets a 400."""

    async def main() -> list[Any]:
        nc = await connect(running, world, "sys")
        try:
            subject = f"$SYS.REQ.USER.{world.app.public_key}.INFO"
            bare = user_info(await ask(nc, subject))
            info = {"acc": world.app.public_key, "user": "UX", "name_tag": "somebody"}
            told = user_info(await ask(nc, subject, headers={"Nats-Request-Info": json.dumps(info)}))
            unknown = {"acc": KeyPair.generate(PrefixByte.ACCOUNT).public_key}
            stranger = envelope(await ask(nc, subject, headers={"Nats-Request-Info": json.dumps(unknown)}))
            bad = envelope(await ask(nc, subject, headers={"Nats-Request-Info": "{nope"}))
            wrong_type = envelope(await ask(nc, subject, headers={"Nats-Request-Info": '{"user": 7}'}))
            return [bare, told, stranger, bad, wrong_type]
        finally:
            await nc.close()

    bare, told, stranger, bad, wrong_type = asyncio.run(main())
    assert bare == {"user": "", "account": ""}
    assert told == {
        "user": "UX",
        "account": world.app.public_key,
        "account_name": "APP",
        "user_name": "somebody",
    }
    # an account the server does not know, or a header that is not a ClientInfo: a 400
    for doc in (stranger, bad, wrong_type):
        assert set(doc) == {"server", "error"} and doc["error"] == {"code": 400}


def test_user_info_in_config_mode(world: World, tmp_path: Path) -> None:
    """Config mode has a system account too (nats-server's ``$SYS``): a password user learns its
    name, account and permissions; a ``$G`` user its name; without auth, nothing but ``$G``."""
    conf = (
        "accounts { APP: { users: [ {user: a, password: p, permissions: "
        '{publish: ["x.>", "$SYS.REQ.USER.INFO"], subscribe: {allow: "_INBOX.>", deny: "_INBOX.no"}}} ] } }\n'
        "authorization { users: [ {user: g, password: q} ] }\n"
    )

    async def ask_as(url: str, **kw: Any) -> dict[str, Any]:
        nc = await nats.connect(url, allow_reconnect=False, **kw)
        try:
            return user_info(await ask(nc, USER_INFO))
        finally:
            await nc.close()

    for kind in SERVER_KINDS:
        with make_server(kind, conf + f"server_name: {SERVER_NAME}\n", tmp_path / kind) as srv:
            a = asyncio.run(ask_as(srv.url, user="a", password="p"))
            g = asyncio.run(ask_as(srv.url, user="g", password="q"))
        with make_server(kind, f"server_name: {SERVER_NAME}\n", tmp_path / f"{kind}-open") as srv:
            anon = asyncio.run(ask_as(srv.url))
        assert a == {
            "user": "a",
            "account": "APP",
            "account_name": "APP",
            "permissions": {
                "publish": {"allow": sorted(["x.>", USER_INFO])},
                "subscribe": {"allow": ["_INBOX.>"], "deny": ["_INBOX.no"]},
            },
        }, kind
        assert g == {"user": "g", "account": "$G", "account_name": "$G"}, kind
        assert anon == {"user": "", "account": "$G", "account_name": "$G"}, kind


# --- $SYS.REQ.SERVER.PING and the monitoring kinds ----------------------------------------------


def test_server_ping_and_statsz(running: Running, world: World) -> None:
    """``PING`` (and ``PING.STATSZ``, ``SERVER.<id>.STATSZ``): ``{"server", "statsz"}`` with this
    server's id and name and its connection counts; ``IDZ`` the bare ``ServerID``; another
    server's id gets no-responders."""

    async def main() -> dict[str, Any]:
        nc = await connect(running, world, "sys")
        other = await connect(running, world, "plain")
        try:
            await settle(nc, 2)
            sid = nc._server_info["server_id"]
            return {
                "id": sid,
                "ping": envelope(await ask(nc, PING)),
                "statsz": envelope(await ask(nc, PING + ".STATSZ")),
                "direct": envelope(await ask(nc, f"$SYS.REQ.SERVER.{sid}.STATSZ")),
                "idz": one(await ask(nc, PING + ".IDZ")),
                "idz_direct": one(await ask(nc, f"$SYS.REQ.SERVER.{sid}.IDZ")),
                "elsewhere": await ask(nc, "$SYS.REQ.SERVER.NOTME.VARZ"),
                "unknown_kind": await ask(nc, PING + ".NOPEZ"),
            }
        finally:
            await other.close()
            await nc.close()

    got = asyncio.run(main())
    sid = got["id"]
    for key in ("ping", "statsz", "direct"):
        doc = got[key]
        assert set(doc) == {"server", "statsz"} and doc["server"]["id"] == sid
        stats = doc["statsz"]
        assert stats["connections"] == 2 and stats["total_connections"] >= 2
        assert stats["active_accounts"] == 2 and stats["active_servers"] == 1
        assert stats["received"]["msgs"] >= 1 and stats["slow_consumers"] == 0
        assert stats["sent"] == stats["sent_to_clients"] and stats["cores"] >= 1 and stats["mem"] > 0
    assert got["idz"] == got["idz_direct"] == {"name": SERVER_NAME, "host": "127.0.0.1", "id": sid}
    assert got["elsewhere"] == [NO_RESPONDERS] and got["unknown_kind"] == [NO_RESPONDERS]


def test_varz_healthz_connz(running: Running, world: World) -> None:
    """``VARZ``, ``HEALTHZ`` and ``CONNZ`` in the envelope, addressed to all servers or to this
    one; CONNZ lists the connections with their names, traffic and subscriptions."""

    async def main() -> dict[str, Any]:
        nc = await connect(running, world, "sys")
        bob = await connect(running, world, "bob")
        try:
            sub = await bob.subscribe("_INBOX.bob.>")
            await bob.flush()
            await settle(nc, 2)
            sid = nc._server_info["server_id"]
            return {
                "id": sid,
                "bob_cid": bob._server_info["client_id"],
                "varz": envelope(await ask(nc, PING + ".VARZ")),
                "varz_direct": envelope(await ask(nc, f"$SYS.REQ.SERVER.{sid}.VARZ")),
                "healthz": envelope(await ask(nc, PING + ".HEALTHZ")),
                "connz": envelope(await ask(nc, f"$SYS.REQ.SERVER.{sid}.CONNZ")),
                "unsub": await sub.unsubscribe(),
            }
        finally:
            await bob.close()
            await nc.close()

    got = asyncio.run(main())
    for key in ("varz", "varz_direct"):
        data = got[key]["data"]
        assert data["server_id"] == got["id"] and data["server_name"] == SERVER_NAME
        assert data["connections"] == 2 and data["auth_required"] is True and data["max_payload"] == 1048576
        assert data["system_account"] == world.sys.public_key and data["trusted_operators_jwt"] == [
            world.op_jwt
        ]
        assert data["trusted_operators_claim"][0]["sub"] == data["trusted_operators_claim"][0]["iss"]
        assert data["http_port"] == running.http_port and data["ping_interval"] == 120_000_000_000
    assert got["healthz"]["data"] == {"status": "ok", "status_code": 200}
    connz = got["connz"]["data"]
    assert connz["server_id"] == got["id"] and connz["num_connections"] == connz["total"] == 2
    assert (connz["offset"], connz["limit"]) == (0, 1024)
    conns = {c["name"]: c for c in connz["connections"]}
    assert set(conns) == {"sys", "bob"} and conns["bob"]["cid"] == got["bob_cid"]
    assert (
        conns["bob"]["subscriptions"] == 1
        and conns["bob"]["kind"] == "Client"
        and conns["bob"]["type"] == "nats"
    )
    assert conns["sys"]["in_msgs"] >= 2 and conns["sys"]["lang"] == "python3"
    assert [c["cid"] for c in connz["connections"]] == sorted(c["cid"] for c in connz["connections"])


def test_options_filters_and_errors(running: Running, world: World) -> None:
    """Request bodies are ``<KIND>EventOptions``: a filter that excludes this server silences
    it; CONNZ pages, sorts and filters as nats-server does; a body that does not decode is a
    400, options the builder refuses a 500, a bad HEALTHZ request a ``status_code`` 400."""

    async def main() -> dict[str, Any]:
        nc = await connect(running, world, "sys")
        bob = await connect(running, world, "bob")
        plain = await connect(running, world, "plain")
        try:
            for i in range(3):
                await bob.subscribe(f"_INBOX.many.{i}")
            await bob.flush()
            await settle(nc, 3)
            cid = plain._server_info["client_id"]

            async def z(kind: str, body: Any) -> Any:
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                replies = await ask(nc, f"{PING}.{kind}", payload)
                return envelope(replies) if replies else None

            return {
                "plain_cid": cid,
                "bob_cid": bob._server_info["client_id"],
                "other_name": await z("VARZ", {"server_name": "elsewhere"}),
                "part_name": await z("VARZ", {"server_name": "srv"}),
                "exact_part": await z("VARZ", {"server_name": "srv", "exact_match": True}),
                "exact": await z("VARZ", {"server_name": SERVER_NAME, "exact_match": True}),
                "tags": await z("HEALTHZ", {"tags": ["eu"]}),
                "domain": await z("CONNZ", {"domain": "hub"}),
                "ping_other": one(r) if (r := await ask(nc, PING, b'{"host":"10.9.9.9"}')) else None,
                "null": await z("VARZ", b"null"),
                "bad_json": await z("VARZ", b"{nope"),
                "ping_bad_json": envelope(await ask(nc, PING, b"{nope")),
                "bad_type": await z("CONNZ", {"limit": "2"}),
                "bad_array": await z("HEALTHZ", [1]),
                "page": await z("CONNZ", {"limit": 1, "offset": 1}),
                "by_subs": await z("CONNZ", {"sort": "subs", "subscriptions": True}),
                "by_cid": await z("CONNZ", {"cid": cid}),
                "bad_sort": await z("CONNZ", {"sort": "sideways"}),
                "stop_open": await z("CONNZ", {"sort": "stop"}),
                "filter_no_acc": await z("CONNZ", {"filter_subject": "x.>"}),
                "acc_filter": await z(
                    "CONNZ", {"acc": world.app.public_key, "filter_subject": "_INBOX.many.*"}
                ),
                "user": await z("CONNZ", {"user": world.users["plain"].key.public_key, "auth": True}),
                "stream_no_acc": await z("HEALTHZ", {"stream": "S"}),
                "consumer_no_stream": await z("HEALTHZ", {"account": "A", "consumer": "C", "details": True}),
            }
        finally:
            for c in (plain, bob, nc):
                await c.close()

    got = asyncio.run(main())
    assert got["other_name"] is None and got["exact_part"] is None and got["tags"] is None
    assert got["domain"] is None and got["ping_other"] is None
    for key in ("part_name", "exact", "null"):
        assert got[key]["data"]["server_name"] == SERVER_NAME, key
    for key in ("bad_json", "ping_bad_json", "bad_type", "bad_array"):
        assert set(got[key]) == {"server", "error"} and got[key]["error"]["code"] == 400, key
        assert got[key]["error"]["description"], key
    assert "cannot unmarshal string" in got["bad_type"]["error"]["description"]
    page = got["page"]["data"]
    assert (page["offset"], page["limit"], page["num_connections"], page["total"]) == (1, 1, 1, 3)
    by_subs = got["by_subs"]["data"]["connections"]
    assert by_subs[0]["cid"] == got["bob_cid"] and sorted(by_subs[0]["subscriptions_list"]) == [
        f"_INBOX.many.{i}" for i in range(3)
    ]
    assert [c["subscriptions"] for c in by_subs] == sorted(
        (c["subscriptions"] for c in by_subs), reverse=True
    )
    by_cid = got["by_cid"]["data"]
    assert [c["cid"] for c in by_cid["connections"]] == [got["plain_cid"]] and by_cid["limit"] == 1
    assert got["bad_sort"]["error"] == {"code": 500, "description": "invalid sorting option: sideways"}
    assert got["stop_open"]["error"] == {
        "code": 500,
        "description": "sort by stop only valid on closed connections",
    }
    assert got["filter_no_acc"]["error"] == {
        "code": 500,
        "description": "filter by subject only valid with account filtering",
    }
    assert [c["cid"] for c in got["acc_filter"]["data"]["connections"]] == [got["bob_cid"]]
    user = got["user"]["data"]["connections"]
    assert [(c["cid"], c["authorized_user"], c["account"]) for c in user] == [
        (got["plain_cid"], world.users["plain"].key.public_key, world.app.public_key)
    ]
    assert user[0]["name_tag"] == "APP" and user[0]["issuer_key"] == world.app.public_key and user[0]["jwt"]
    assert got["stream_no_acc"]["data"] == {
        "status": "error",
        "status_code": 400,
        "error": '"account" must not be empty when checking stream health',
    }
    assert got["consumer_no_stream"]["data"] == {
        "status": "error",
        "status_code": 400,
        "errors": [
            {"type": "BAD_REQUEST", "error": '"stream" must not be empty when checking consumer health'}
        ],
    }


def test_account_scoped_connz(running: Running, world: World) -> None:
    """Other accounts import ``PING.CONNZ`` as their own account's CONNZ (whatever ``acc`` the
    body names); the system account asks ``$SYS.REQ.ACCOUNT.<A>.CONNZ``. Every other server
    service is not imported: no-responders, or the publish permission refuses it first."""

    async def main() -> dict[str, Any]:
        nc = await connect(running, world, "sys")
        plain = await connect(running, world, "plain")
        bob = await connect(running, world, "bob")
        errors: list[str] = []
        bob_errors = await connect_with_errors(running, world, "bob", errors)
        try:
            await settle(nc, 4)
            body = json.dumps({"acc": world.sys.public_key}).encode()
            return {
                "plain_cid": plain._server_info["client_id"],
                "bob_cid": bob._server_info["client_id"],
                "server_ping": envelope(await ask(plain, PING + ".CONNZ", body)),
                "account_ping": envelope(await ask(plain, "$SYS.REQ.ACCOUNT.PING.CONNZ")),
                "from_sys": envelope(await ask(nc, f"$SYS.REQ.ACCOUNT.{world.app.public_key}.CONNZ")),
                "sys_ping": envelope(await ask(nc, "$SYS.REQ.ACCOUNT.PING.CONNZ")),
                "not_imported": [await ask(plain, s) for s in (PING, PING + ".VARZ", PING + ".STATSZ")],
                "denied": await denied(bob_errors, errors),
            }
        finally:
            for c in (bob_errors, bob, plain, nc):
                await c.close()

    got = asyncio.run(main())
    app_cids = sorted([got["plain_cid"], got["bob_cid"], got["denied"][1]])
    for key in ("server_ping", "account_ping", "from_sys"):
        data = got[key]["data"]
        assert sorted(c["cid"] for c in data["connections"]) == app_cids, key
        assert data["total"] == data["num_connections"] == 3, key
    # "PING" taken as an account name: an account the server does not know
    assert got["sys_ping"]["data"] | {"now": ""} == {
        "server_id": "",
        "now": "",
        "num_connections": 0,
        "total": 0,
        "offset": 0,
        "limit": 1024,
        "connections": None,
    }
    assert got["not_imported"] == [[NO_RESPONDERS]] * 3
    assert got["denied"][0] == ['nats: permissions violation for publish to "$sys.req.server.ping.connz"']


async def connect_with_errors(run: Running, world: World, name: str, errors: list[str]) -> Any:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(
        run.server.url,
        user_credentials=str(world.users[name].creds),
        name=name,
        allow_reconnect=False,
        error_cb=on_error,
    )


async def denied(nc: Any, errors: list[str]) -> tuple[list[str], int]:
    """bob may not publish to ``PING.CONNZ``: the permission is checked before the import."""
    await nc.publish(PING + ".CONNZ", b"", reply="_INBOX.denied")
    await nc.flush()
    deadline = time.monotonic() + 3
    while not errors and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return [e.lower() for e in errors], nc._server_info["client_id"]


# --- HTTP: the same builders -------------------------------------------------------------------


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_http_options(running: Running, world: World) -> None:
    """The monitoring port takes the same options as query parameters, with nats-server's
    statuses and texts; ``/healthz`` sends its status code as the HTTP status."""

    async def main() -> dict[str, Any]:
        nc = await connect(running, world, "sys")
        plain = await connect(running, world, "plain")
        try:
            await settle(nc, 2)
            port = running.http_port
            out: dict[str, Any] = {"plain_cid": plain._server_info["client_id"]}
            for path in (
                "/healthz",
                "/healthz?stream=S",
                f"/connz?cid={out['plain_cid']}&auth=true",
                "/connz?limit=1&offset=5",
                "/connz?auth=maybe",
                "/connz?limit=x",
                "/connz?state=sideways",
                "/connz?sort=nope",
                "/varz",
            ):
                out[path] = await asyncio.to_thread(http_get, port, path)
            return out
        finally:
            await plain.close()
            await nc.close()

    got = asyncio.run(main())
    assert got["/healthz"][0] == 200 and json.loads(got["/healthz"][1]) == {"status": "ok"}
    status, body = got["/healthz?stream=S"]
    assert status == 400 and json.loads(body) == {
        "status": "error",
        "error": '"account" must not be empty when checking stream health',
    }
    status, body = got[f"/connz?cid={got['plain_cid']}&auth=true"]
    conns = json.loads(body)["connections"]
    assert status == 200 and [(c["cid"], c["account"]) for c in conns] == [
        (got["plain_cid"], world.app.public_key)
    ]
    status, body = got["/connz?limit=1&offset=5"]
    page = json.loads(body)
    assert status == 200 and (page["offset"], page["limit"], page["connections"], page["total"]) == (
        5,
        1,
        [],
        2,
    )
    assert got["/connz?auth=maybe"] == (
        400,
        b"Error decoding boolean for 'auth': strconv.ParseBool: parsing \"maybe\": invalid syntax",
    )
    assert got["/connz?limit=x"] == (
        400,
        b"Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax",
    )
    assert got["/connz?state=sideways"] == (400, b"Error decoding state for sideways")
    assert got["/connz?sort=nope"] == (400, b"invalid sorting option: nope")
    status, body = got["/varz"]
    varz = json.loads(body)
    # counted as nats-server counts them: /connz once its parameters decode, /healthz always
    assert status == 200 and varz["http_req_stats"] == {"/connz": 3, "/healthz": 2, "/varz": 1}


# --- shapes: both servers side by side ---------------------------------------------------------


def _category(name: str, path: tuple[str, ...]) -> str:
    """Which documented difference applies to the object at ``path`` of reply ``name``."""
    if path and path[-1] in ("server", "statsz"):
        return path[-1]
    if len(path) >= 2 and path[-2:] == ("connections", "[]"):
        return "conn"
    if (name == "varz" and path == ("data",)) or (name == "http_varz" and not path):
        return "varz"
    return ""


def shape(value: Any, name: str, path: tuple[str, ...] = ()) -> Any:
    """Key sets and JSON types, level by level (list entries by their first one); numbers are one
    type (Go writes 1.0 as 1). The documented differences are taken out."""
    if isinstance(value, dict):
        cat = _category(name, path)
        keys = set(value) - ONLY_NATS.get(cat, set()) - ONLY_BROKER.get(cat, set())
        return {k: shape(value[k], name, (*path, k)) for k in sorted(keys)}
    if isinstance(value, list):
        return [shape(value[0], name, (*path, "[]"))] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def test_shapes_agree(world: World, tmp_path: Path) -> None:
    """The same requests to both servers at once: every reply has the same keys and JSON types at
    every level, apart from ``ONLY_NATS``/``ONLY_BROKER``; and the keys that are only on one side
    are there as documented (so the lists above cannot go stale)."""
    runs = []
    try:
        for kind in SERVER_KINDS:
            port = free_port()
            runs.append(start(kind, world.config(port), tmp_path / kind, port))
        results = [asyncio.run(_all_replies(run, world)) for run in runs]
    finally:
        for run in runs:
            run.server.stop()
    nats_side, broker_side = results
    assert nats_side.keys() == broker_side.keys()
    for name in nats_side:
        a, b = nats_side[name], broker_side[name]
        assert shape(a, name) == shape(b, name), name
    # the documented differences, seen where they stand
    ping_n, ping_b = nats_side["ping"], broker_side["ping"]
    assert ONLY_NATS["server"] <= set(ping_n["server"]) and not ONLY_NATS["server"] & set(ping_b["server"])
    assert ONLY_NATS["statsz"] <= set(ping_n["statsz"]) and not ONLY_NATS["statsz"] & set(ping_b["statsz"])
    for side, other in ((nats_side, ONLY_NATS), (broker_side, ONLY_BROKER)):
        conn = side["connz"]["data"]["connections"][0]
        assert other.get("conn", set()) <= set(conn), conn
    assert ONLY_NATS["varz"] <= set(nats_side["varz"]["data"]) and not ONLY_NATS["varz"] & set(
        broker_side["http_varz"]
    )


async def _all_replies(run: Running, world: World) -> dict[str, Any]:
    nc = await connect(run, world, "sys")
    bob = await connect(run, world, "bob")
    plain = await connect(run, world, "plain")
    try:
        await bob.subscribe("_INBOX.shape")
        await bob.flush()
        sid = nc._server_info["server_id"]
        out: dict[str, Any] = {
            "user_info": one(await ask(bob, USER_INFO)),
            "user_info_sys": one(await ask(nc, USER_INFO)),
            "user_info_direct": one(await ask(nc, f"$SYS.REQ.USER.{world.app.public_key}.INFO")),
            "ping": one(await ask(nc, PING)),
            "idz": one(await ask(nc, PING + ".IDZ")),
            "varz": one(await ask(nc, f"$SYS.REQ.SERVER.{sid}.VARZ")),
            "healthz": one(await ask(nc, PING + ".HEALTHZ")),
            "healthz_bad": one(await ask(nc, PING + ".HEALTHZ", b'{"stream":"S"}')),
            "connz": one(await ask(nc, PING + ".CONNZ", b'{"subscriptions":true,"auth":true}')),
            "connz_detail": one(await ask(nc, PING + ".CONNZ", b'{"subscriptions_detail":true}')),
            "connz_account": one(await ask(plain, PING + ".CONNZ")),
            "connz_unknown": one(await ask(nc, "$SYS.REQ.ACCOUNT.PING.CONNZ")),
            "error": one(await ask(nc, PING + ".VARZ", b"{nope")),
        }
        out["http_varz"] = json.loads((await asyncio.to_thread(http_get, run.http_port, "/varz"))[1])
        out["http_connz"] = json.loads((await asyncio.to_thread(http_get, run.http_port, "/connz"))[1])
        return out
    finally:
        for c in (plain, bob, nc):
            await c.close()


# --- Go's formats (pure) -----------------------------------------------------------------------


def test_go_duration_and_uptime_formats() -> None:
    """``rtt`` is Go's ``Duration.String()`` and ``uptime`` monitor.go's ``myUptime``: the values
    Go gives for the same durations."""
    from broker.monitor import go_duration, uptime

    cases = {
        0: "0s",
        850: "850ns",
        425_000: "425µs",
        425_500: "425.5µs",
        1_500_000: "1.5ms",
        2_000_001_000: "2.000001s",
        123_500_000_000: "2m3.5s",
        3_600_000_000_000: "1h0m0s",
    }
    assert {ns: go_duration(ns) for ns in cases} == cases
    assert [uptime(s) for s in (0, 59.9, 61, 3723, 93784, 365 * 86400 + 3661)] == [
        "0s",
        "59s",
        "1m1s",
        "1h2m3s",
        "1d2h3m4s",
        "1y0d1h1m1s",
    ]
