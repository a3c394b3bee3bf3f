"""More system services on both servers: SUBSZ, ACCOUNTZ, the account services (INFO, STATZ,
CONNS) and the closed connections of CONNZ.

Both servers run side by side (module scope) with the same config (operator mode, ``resolver:
MEMORY``, a system account) and creds; every test runs its scenario on each and compares what
must agree: subscription lists (with each server's connection ids mapped to the client's name),
counts, imports, exports and mappings, account traffic, closed-connection reasons, errors and
their texts, and the key set and JSON types of every reply (``shape`` of
test_system_services.py). The differences allowed are the documented ones (docs/broker.md,
"System services"): nats-server counts and lists its own internal subscriptions (the system
imports every account has, ``SYSTEM_IMPORT_SUBS``), and the system account exports services the
broker answers in place.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
import pytest

from broker.config import BrokerConfig
from broker.monitor import ClosedClients, ConnzOptions, connz
from broker.server import Broker
from tests.conformance.test_system_requests import ask
from tests.conformance.test_system_services import (
    ONLY_BROKER,
    ONLY_NATS,
    PING,
    SERVER_NAME,
    Running,
    _category,
    envelope,
    http_get,
    make_user,
    server_config,
    shape,
    start,
)
from tests.realcomp import free_port
from tests.servers import SERVER_KINDS
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

#: the subscriptions nats-server's internal client holds in every account for the system imports
#: ($SYS.REQ.USER.INFO, $SYS.REQ.ACCOUNT.PING.CONNZ|STATZ, $SYS.REQ.SERVER.PING.CONNZ); the
#: broker answers those subjects in place, without subscriptions
SYSTEM_IMPORT_SUBS = 4
#: nats-server 2.15 may drop what another client publishes in the first moments after a
#: subscription's PONG (seen about once in ten tries, never after 50 ms): a subscriber waits
#: this long before the publisher starts
SUB_SETTLE = 0.1


@dataclass
class User:
    key: KeyPair
    creds: Path


class World:
    """An operator and its accounts: SYS; APP (two unrestricted users); EXP, exporting a stream,
    a service with latency tracking and a streamed service; IMP, importing the stream and a
    service, with a weighted mapping, tags and a revoked user; CNT, for traffic counts; DEF, never
    used."""

    def __init__(self, tmp: Path) -> None:
        now = int(time.time())
        self.now = now
        op = KeyPair.generate(PrefixByte.OPERATOR)
        self.keys = {
            n: KeyPair.generate(PrefixByte.ACCOUNT) for n in ("SYS", "APP", "EXP", "IMP", "CNT", "DEF")
        }
        self.sys, self.app, self.exp, self.imp = (
            self.keys[n].public_key for n in ("SYS", "APP", "EXP", "IMP")
        )
        self.cnt, self.dflt = self.keys["CNT"].public_key, self.keys["DEF"].public_key
        self.op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=self.sys).encode(
            op, iat=now - 100
        )
        self.revoked = KeyPair.generate(PrefixByte.USER).public_key
        claims: dict[str, jwt.AccountClaims] = {
            "SYS": jwt.AccountClaims(sub=self.sys, name="SYS"),
            "APP": jwt.AccountClaims(sub=self.app, name="APP"),
            "EXP": jwt.AccountClaims(
                sub=self.exp,
                name="EXP",
                exports=[
                    jwt.Export(subject="feed.>", type="stream"),
                    jwt.Export(
                        subject="svc.echo",
                        type="service",
                        service_latency=jwt.ServiceLatency(sampling=100, results="lat.echo"),
                    ),
                    jwt.Export(subject="svc.many", type="service", response_type="Stream"),
                ],
            ),
            "IMP": jwt.AccountClaims(
                sub=self.imp,
                name="IMP",
                tags=["blue"],
                imports=[
                    jwt.Import(subject="feed.>", account=self.exp, local_subject="in.feed.>", type="stream"),
                    jwt.Import(subject="svc.echo", account=self.exp, local_subject="echo", type="service"),
                    jwt.Import(subject="svc.many", account=self.exp, type="service", share=True),
                ],
                mappings={"map.a": [jwt.WeightedMapping(subject="map.b", weight=60)]},
                revocations={self.revoked: now - 50},
            ),
            "CNT": jwt.AccountClaims(sub=self.cnt, name="CNT"),
            "DEF": jwt.AccountClaims(sub=self.dflt, name="DEF"),
        }
        self.accounts = [c.encode(op, iat=now - 100) for c in claims.values()]
        self.users: dict[str, User] = {}
        for name, acct in (
            ("sys", "SYS"),
            ("a1", "APP"),
            ("a2", "APP"),
            ("imp", "IMP"),
            ("exp", "EXP"),
            ("c1", "CNT"),
            ("c2", "CNT"),
        ):
            self.users[name] = make_user(tmp, name, self.keys[acct], iat=now - 80)

    def config(self, http_port: int) -> str:
        return server_config(self.op_jwt, self.accounts, http_port)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("syssvc-more"))


@pytest.fixture(scope="module")
def pair(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    """Both servers, running side by side for the module."""
    runs: dict[str, Running] = {}
    try:
        for kind in SERVER_KINDS:
            port = free_port()
            runs[kind] = start(kind, world.config(port), tmp_path_factory.mktemp(kind), port)
        yield runs
    finally:
        for run in runs.values():
            run.server.stop()


Scenario = Callable[[Running, World], Awaitable[dict[str, Any]]]


def on_both(
    pair: dict[str, Running], world: World, scenario: Scenario
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(nats-server's results, the broker's) of one scenario."""
    got = {kind: asyncio.run(scenario(run, world)) for kind, run in pair.items()}
    return got["nats-server"], got["trustkit-broker"]


async def connect(run: Running, world: World, name: str) -> Any:
    return await nats.connect(
        run.server.url, user_credentials=str(world.users[name].creds), name=name, allow_reconnect=False
    )


async def request(nc: Any, subject: str, body: Any = None) -> dict[str, Any]:
    """One reply, as JSON (a ``ServerAPIResponse`` is checked as such)."""
    payload = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    msg = await nc.request(subject, payload, timeout=3)
    doc = json.loads(msg.data)
    assert isinstance(doc, dict)
    return envelope([msg.data]) if "data" in doc or "error" in doc else doc


async def silent(nc: Any, subject: str, body: Any = None) -> list[bytes]:
    payload = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return await ask(nc, subject, payload, quiet=0.3)


async def get(run: Running, path: str) -> tuple[int, Any]:
    status, body = await asyncio.to_thread(http_get, run.http_port, path)
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body.decode()


def cid(nc: Any) -> int:
    value = nc._server_info["client_id"]
    assert isinstance(value, int)
    return value


def full_shape(value: Any, name: str, path: tuple[str, ...] = ()) -> Any:
    """``shape`` with every list entry looked at (their distinct shapes, sorted): nats-server
    lists imports, exports and subscriptions in its maps' random order."""
    if isinstance(value, dict):
        cat = _category(name, path)
        keys = set(value) - ONLY_NATS.get(cat, set()) - ONLY_BROKER.get(cat, set())
        return {k: full_shape(value[k], name, (*path, k)) for k in sorted(keys)}
    if isinstance(value, list):
        return sorted({json.dumps(full_shape(v, name, (*path, "[]")), sort_keys=True) for v in value})
    return shape(value, name, path)


def same_shape(a: Any, b: Any, name: str) -> None:
    assert full_shape(a, name) == full_shape(b, name), name


def sub_entries(data: dict[str, Any], who: dict[int, str]) -> tuple[list[tuple[Any, ...]], int]:
    """A SUBSZ list as comparable entries, each server's connection ids replaced by the client's
    name; and how many entries belong to no client of the test (nats-server's internal ones)."""
    out, internal = [], 0
    for s in data.get("subscriptions_list", []):
        if s["cid"] not in who:
            internal += 1
            continue
        name = who[s["cid"]]
        out.append(
            (
                s["account"],
                s["account_tag"],
                s["subject"],
                s.get("qgroup"),
                s["sid"],
                s["msgs"],
                s.get("max"),
                name,
            )
        )
    return sorted(out, key=repr), internal


# --- SUBSZ -----------------------------------------------------------------------------------------


async def _subsz(run: Running, w: World) -> dict[str, Any]:
    sys_nc = await connect(run, w, "sys")
    a1 = await connect(run, w, "a1")
    a2 = await connect(run, w, "a2")
    try:
        sub_a = await a1.subscribe("sz.a")
        await a1.subscribe("sz.q", queue="grp")
        sub_w = await a1.subscribe("sz.*")
        await (await a1.subscribe("sz.max")).unsubscribe(limit=5)  # UNSUB <sid> 5
        await a2.subscribe("sz.b")
        gone = await a2.subscribe("sz.gone")
        await a1.flush()
        await asyncio.sleep(SUB_SETTLE)
        await gone.unsubscribe()
        for _ in range(3):
            await a2.publish("sz.a", b"x")
        await a2.flush()
        for sub in (sub_a, sub_w) * 3:  # delivered (and counted) before anybody looks
            await sub.next_msg(timeout=3)
        sid = sys_nc._server_info["server_id"]
        app = w.app
        out: dict[str, Any] = {"who": {cid(a1): "a1", cid(a2): "a2", cid(sys_nc): "sys"}, "sid": sid}
        for path in (
            "/subsz",
            f"/subsz?subs=1&acc={app}",
            f"/subsz?subs=1&acc={app}&test=sz.a",
            f"/subsz?subs=true&acc={app}&limit=2&offset=1",
            f"/subscriptionsz?acc={app}",
            "/subsz?test=a.*",
            "/subsz?subs=maybe",
            "/subsz?subs=1&acc=nope",
        ):
            out[path] = await get(run, path)
        out["ping"] = await request(
            sys_nc, PING + ".SUBSZ", {"subscriptions": True, "account": app, "test": "sz.a"}
        )
        out["direct"] = await request(sys_nc, f"$SYS.REQ.SERVER.{sid}.SUBSZ", {"account": app})
        out["account"] = await request(
            sys_nc, f"$SYS.REQ.ACCOUNT.{app}.SUBSZ", {"account": w.sys, "subscriptions": False}
        )
        out["unknown_account"] = await request(sys_nc, "$SYS.REQ.ACCOUNT.nope.SUBSZ")
        out["bad_test"] = await request(sys_nc, PING + ".SUBSZ", {"test": "a.*"})
        out["bad_type"] = await request(sys_nc, PING + ".SUBSZ", {"limit": "x"})
        out["varz"] = (await get(run, "/varz"))[1]
        return out
    finally:
        for nc in (a2, a1, sys_nc):
            await nc.close()


def test_subsz(pair: dict[str, Running], world: World) -> None:
    """``/subsz`` and the SUBSZ requests: the routing tables' statistics, the same client
    subscriptions listed (subject, queue, sid, deliveries, auto-unsubscribe max, account and its
    name), paging and the ``test`` filter, the account service forcing its own account and the
    list; nats-server's only extra subscriptions are its internal ones."""
    n, b = on_both(pair, world, _subsz)
    app = world.app
    full = f"/subsz?subs=1&acc={app}"
    lists = {}
    for side in (n, b):
        status, data = side[full]
        assert status == 200
        entries, internal = sub_entries(data, side["who"])
        lists[id(side)] = entries
        assert internal == (SYSTEM_IMPORT_SUBS if side is n else 0)
        # the statistics count every subscription in the account, inserted and removed
        assert data["num_subscriptions"] == len(entries) + internal == data["total"]
        assert data["num_inserts"] - data["num_removes"] == data["num_subscriptions"]
        assert data["num_removes"] >= 1  # the unsubscribed sz.gone
        assert data["offset"] == 0 and data["limit"] == 1024
        # without subs: the statistics only
        status, bare = side["/subsz"]
        assert status == 200 and bare["total"] == 0 and "subscriptions_list" not in bare
        assert bare["num_subscriptions"] >= data["num_subscriptions"]
        status, alias = side[f"/subscriptionsz?acc={app}"]
        assert status == 200 and alias["num_subscriptions"] == data["num_subscriptions"]
        # test: the subscriptions a message on sz.a reaches
        status, tested = side[f"/subsz?subs=1&acc={app}&test=sz.a"]
        assert [(e[2], e[-1]) for e in sub_entries(tested, side["who"])[0]] == [
            ("sz.*", "a1"),
            ("sz.a", "a1"),
        ]
        assert tested["total"] == 2
        status, page = side[f"/subsz?subs=true&acc={app}&limit=2&offset=1"]
        assert (page["offset"], page["limit"], page["total"], len(page["subscriptions_list"])) == (
            1,
            2,
            data["total"],
            2,
        )
        status, nope = side["/subsz?subs=1&acc=nope"]
        assert nope["num_subscriptions"] == nope["total"] == 0 and "subscriptions_list" not in nope
        # the same over $SYS
        for key in ("ping", "direct", "account"):
            assert side[key]["server"]["id"] == side["sid"], key
        assert sub_entries(side["ping"]["data"], side["who"])[0] == sub_entries(tested, side["who"])[0]
        assert side["direct"]["data"]["total"] == 0 and "subscriptions_list" not in side["direct"]["data"]
        assert side["direct"]["data"]["num_subscriptions"] == data["num_subscriptions"]
        # the account service: its own account, always with the list, whatever the body says
        assert sub_entries(side["account"]["data"], side["who"]) == sub_entries(data, side["who"])
        assert side["unknown_account"]["data"]["num_subscriptions"] == 0
        assert side["bad_test"]["data"] is None
        assert side["bad_test"]["error"] == {
            "code": 500,
            "description": "invalid test subject, must be valid publish subject: a.*",
        }
        assert side["bad_type"]["error"]["code"] == 400 and "data" not in side["bad_type"]
    assert lists[id(n)] == lists[id(b)]
    by_subject = {e[2]: e for e in lists[id(b)]}
    assert by_subject["sz.a"][5] == by_subject["sz.*"][5] == 3  # deliveries
    assert by_subject["sz.max"][6] == 5 and by_subject["sz.q"][3] == "grp"
    for path in ("/subsz?test=a.*", "/subsz?subs=maybe"):
        assert n[path] == b[path], path
        assert n[path][0] == 400
    assert n["/subsz?test=a.*"][1] == "invalid test subject, must be valid publish subject: a.*"
    # every /subsz request is counted, the alias and those refused included
    counted = n["varz"]["http_req_stats"]["/subsz"]
    assert counted == b["varz"]["http_req_stats"]["/subsz"] and counted >= 8
    for key in (full, "/subsz", f"/subsz?subs=1&acc={app}&test=sz.a"):
        same_shape(n[key][1], b[key][1], key)
    for key in ("ping", "direct", "account", "bad_test", "bad_type", "unknown_account"):
        same_shape(n[key], b[key], key)


# --- ACCOUNTZ and account INFO --------------------------------------------------------------------


async def _accountz(run: Running, w: World) -> dict[str, Any]:
    sys_nc = await connect(run, w, "sys")
    imp = await connect(run, w, "imp")
    exp = await connect(run, w, "exp")
    try:
        await imp.subscribe("in.feed.>")
        await exp.subscribe("svc.echo")
        await imp.flush()
        await exp.flush()
        out: dict[str, Any] = {"who": {cid(imp): "imp", cid(exp): "exp", cid(sys_nc): "sys"}}
        for path in (
            "/accountz",
            f"/accountz?acc={w.imp}",
            f"/accountz?acc={w.exp}",
            f"/accountz?acc={w.sys}",
            "/accountz?acc=$G",
            f"/accountz?acc={w.dflt}",
            f"/subsz?subs=1&acc={w.exp}",
        ):
            out[path] = await get(run, path)
        out["ping"] = await request(sys_nc, PING + ".ACCOUNTZ")
        out["ping_imp"] = await request(sys_nc, PING + ".ACCOUNTZ", {"account": w.imp})
        out["ping_nope"] = await request(sys_nc, PING + ".ACCOUNTZ", {"account": "nope"})
        out["info"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{w.imp}.INFO")
        out["info_ping"] = await request(sys_nc, "$SYS.REQ.ACCOUNT.PING.INFO")
        out["info_unused"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{w.dflt}.INFO")
        return out
    finally:
        for nc in (exp, imp, sys_nc):
            await nc.close()


def _imports(detail: dict[str, Any]) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True) for i in detail.get("imports", []))


def _exports(detail: dict[str, Any]) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in detail.get("exports", []))


def test_accountz_and_account_info(pair: dict[str, Running], world: World) -> None:
    """``/accountz``, ``PING.ACCOUNTZ`` and ``$SYS.REQ.ACCOUNT.<A>.INFO``: the same accounts, and
    for one the same JWT and decoded claims, imports (the system ones included), exports with
    their response types and latency, mappings, tags, revoked users and connection count."""
    n, b = on_both(pair, world, _accountz)
    w = world
    for side in (n, b):
        status, listing = side["/accountz"]
        assert status == 200 and listing["system_account"] == w.sys
        assert {w.sys, "$G", w.imp, w.exp} <= set(listing["accounts"])
        assert w.dflt not in listing["accounts"]  # preloaded, never used: not loaded
        assert set(side["ping"]["data"]["accounts"]) == set(listing["accounts"])
        assert side[f"/accountz?acc={w.dflt}"] == (400, f"Account {w.dflt} does not exist")
        assert side["ping_nope"]["data"] is None
        assert side["ping_nope"]["error"] == {"code": 500, "description": "Account nope does not exist"}
        assert side["info_ping"]["error"] == {"code": 500, "description": "Account PING does not exist"}
        assert side["info_unused"]["error"]["description"] == f"Account {w.dflt} does not exist"
        imp = side[f"/accountz?acc={w.imp}"][1]["account_detail"]
        assert side["ping_imp"]["data"]["account_detail"]["account_name"] == w.imp
        info = side["info"]["data"]
        # (the same account; nats-server lists imports and exports in its maps' random order)
        unordered = ("sublist_stats", "imports", "exports")
        assert {k: v for k, v in info.items() if k not in unordered} == {
            k: v for k, v in imp.items() if k not in unordered
        }
        assert _imports(info) == _imports(imp)
        assert imp["client_connections"] == 1 and imp["expired"] is False and imp["complete"] is True
        assert "is_system" not in imp and imp["name_tag"] == "IMP" and imp["tags"] == ["blue"]
        assert imp["decoded_jwt"]["sub"] == w.imp and imp["jwt"].count(".") == 2
        assert imp["update_time"].endswith("Z")
        sys_detail = side[f"/accountz?acc={w.sys}"][1]["account_detail"]
        assert sys_detail["is_system"] is True
    assert set(n["/accountz"][1]["accounts"]) == set(b["/accountz"][1]["accounts"])
    ni, bi = (side[f"/accountz?acc={w.imp}"][1]["account_detail"] for side in (n, b))
    assert _imports(ni) == _imports(bi)
    assert len(bi["imports"]) == 3 + 4  # the JWT's and the system's
    for key in ("jwt", "issuer_key", "name_tag", "tags", "decoded_jwt", "mappings", "revoked_user"):
        assert ni[key] == bi[key], key
    assert bi["mappings"] == {
        "map.a": [{"subject": "map.a", "weight": 40}, {"subject": "map.b", "weight": 100}]
    }
    assert ("validation_result_jwt" in ni) == ("validation_result_jwt" in bi)
    # nats-server's internal subscriptions: the system imports'; the service imports are
    # subscriptions on both
    assert ni["subscriptions"] - SYSTEM_IMPORT_SUBS == bi["subscriptions"] == 1 + 2
    ne, be = (side[f"/accountz?acc={w.exp}"][1]["account_detail"] for side in (n, b))
    assert _exports(ne) == _exports(be)
    assert {e["subject"]: e.get("response_type") for e in be["exports"]} == {
        "feed.>": None,
        "svc.echo": "Singleton",
        "svc.many": "Streamed",
    }
    ng, bg = (side["/accountz?acc=$G"][1]["account_detail"] for side in (n, b))
    assert _imports(ng) == _imports(bg) and ng["name_tag"] == bg["name_tag"] == "$G"
    ns, bs = (side[f"/accountz?acc={w.sys}"][1]["account_detail"] for side in (n, b))
    assert _imports(ns) == _imports(bs)  # USER.INFO, imported from itself
    # the stream import's copy of imp's subscription, in the exporter's table
    feeds = {
        kind: [
            e for e in sub_entries(side[f"/subsz?subs=1&acc={w.exp}"][1], side["who"])[0] if e[-1] == "imp"
        ]
        for kind, side in (("n", n), ("b", b))
    }
    assert feeds["n"] == feeds["b"] and [e[2] for e in feeds["b"]] == ["feed.>"]
    for key in ("/accountz", f"/accountz?acc={w.imp}", f"/accountz?acc={w.exp}", "/accountz?acc=$G"):
        same_shape(n[key][1], b[key][1], key)
    # the system account's exports: nats-server's own services, answered in place by the broker
    same_shape({k: v for k, v in ns.items() if k != "exports"}, bs, "sys")
    for key in ("ping", "ping_imp", "ping_nope", "info", "info_ping"):
        same_shape(n[key], b[key], key)


# --- account STATZ and CONNS ----------------------------------------------------------------------


async def _account_services(run: Running, w: World) -> dict[str, Any]:
    sys_nc = await connect(run, w, "sys")
    c1 = await connect(run, w, "c1")
    c2 = await connect(run, w, "c2")
    out: dict[str, Any] = {}
    try:
        got = []

        async def received(msg: Any) -> None:
            got.append(msg)

        sub = await c1.subscribe("cnt.>", cb=received)
        await c1.flush()
        await asyncio.sleep(SUB_SETTLE)
        for i in range(5):
            await c2.publish(f"cnt.{i}", b"0123456789")
        await c2.flush()
        deadline = time.monotonic() + 3
        while len(got) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(got) == 5
        cnt = w.cnt
        out["conns"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.CONNS")
        out["conns_same"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.CONNS", {"acc": cnt})
        out["conns_other"] = await silent(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.CONNS", {"acc": w.app})
        out["conns_bad"] = await silent(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.CONNS", b"{nope")
        out["conns_unused"] = await silent(sys_nc, f"$SYS.REQ.ACCOUNT.{w.dflt}.CONNS")
        out["statz"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.STATZ")
        out["statz_unused"] = await silent(sys_nc, f"$SYS.REQ.ACCOUNT.{w.dflt}.STATZ")
        out["statz_unused_included"] = await request(
            sys_nc, f"$SYS.REQ.ACCOUNT.{w.dflt}.STATZ", {"include_unused": True}
        )
        out["statz_bad"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.STATZ", {"accounts": 7})
        out["ping"] = await request(sys_nc, "$SYS.REQ.ACCOUNT.PING.STATZ")
        out["ping_some"] = await request(sys_nc, "$SYS.REQ.ACCOUNT.PING.STATZ", {"accounts": [cnt, "$G"]})
        out["ping_all"] = await request(sys_nc, "$SYS.REQ.ACCOUNT.PING.STATZ", {"include_unused": True})
        # another account imports the STATZ ping as its own account's
        # (asked with a short-lived inbox: nats-py's request would leave a subscription in CNT)
        out["imported"] = envelope(
            await ask(c1, "$SYS.REQ.ACCOUNT.PING.STATZ", json.dumps({"accounts": [w.sys]}).encode())
        )
        out["accstatz"] = await get(run, "/accstatz")
        out["accstatz_unused"] = await get(run, "/accstatz?unused=1")
        await sub.unsubscribe()
        await c2.close()
        await asyncio.sleep(0.3)  # the close reaches the server
        out["after"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{cnt}.CONNS")
        return out
    finally:
        for nc in (c2, c1, sys_nc):
            if not nc.is_closed:
                await nc.close()


def _stat(stat: dict[str, Any], internal: int) -> dict[str, Any]:
    """An ``AccountStat`` without nats-server's internal subscriptions."""
    return stat | {"num_subscriptions": stat["num_subscriptions"] - internal}


def test_account_statz_and_conns(pair: dict[str, Running], world: World) -> None:
    """``$SYS.REQ.ACCOUNT.<A>.CONNS`` (the ``AccountNumConns`` event as a reply),
    ``….<A>.STATZ``, ``$SYS.REQ.ACCOUNT.PING.STATZ`` (with ``accounts`` and ``include_unused``,
    and imported by every account for its own) and ``/accstatz``: the same connection counts and
    traffic (closed connections included) on both servers, and silence where nats-server is
    silent."""
    n, b = on_both(pair, world, _account_services)
    cnt = world.cnt
    stats = {}
    for side, internal in ((n, SYSTEM_IMPORT_SUBS), (b, 0)):
        conns = side["conns"]
        assert conns["type"] == "io.nats.server.advisory.v1.account_connections" and conns["id"]
        assert conns["server"]["name"] == SERVER_NAME
        stat = _stat(
            {k: v for k, v in conns.items() if k not in ("type", "id", "timestamp", "server")}, internal
        )
        stats[id(side)] = stat
        assert stat["acc"] == cnt and stat["name"] == "CNT"
        assert (stat["conns"], stat["total_conns"], stat["leafnodes"], stat["num_subscriptions"]) == (
            2,
            2,
            0,
            1,
        )
        assert stat["received"]["msgs"] == 5 and stat["received"]["bytes"] == 50  # c2 published
        assert stat["sent"]["msgs"] == 5 and stat["sent"]["bytes"] == 50  # c1 was sent
        assert stat["sent"]["routes"] == {"msgs": 0, "bytes": 0}
        assert _stat(side["conns_same"], internal)["received"] == stat["received"]
        assert side["conns_other"] == side["conns_bad"] == side["conns_unused"] == []
        statz = side["statz"]["data"]["account_statz"]
        assert [_stat(s, internal) for s in statz] == [stat]
        assert side["statz_unused"] == []
        assert side["statz_unused_included"]["data"]["account_statz"] == []
        assert side["statz_bad"]["error"]["code"] == 400
        assert "cannot unmarshal number" in side["statz_bad"]["error"]["description"]
        ping = {s["acc"] for s in side["ping"]["data"]["account_statz"]}
        assert ping == {cnt, world.sys}  # the accounts with connections
        assert [s["acc"] for s in side["ping_some"]["data"]["account_statz"]] == [cnt]
        assert {cnt, world.sys, "$G"} <= {s["acc"] for s in side["ping_all"]["data"]["account_statz"]}
        imported = side["imported"]["data"]["account_statz"]
        assert [s["acc"] for s in imported] == [cnt]
        status, accstatz = side["accstatz"]
        assert status == 200 and {s["acc"] for s in accstatz["account_statz"]} == ping
        assert {s["acc"] for s in side["accstatz_unused"][1]["account_statz"]} == {
            s["acc"] for s in side["ping_all"]["data"]["account_statz"]
        }
        after = _stat(side["after"], internal)
        assert (after["conns"], after["num_subscriptions"]) == (1, 0)
        # what the closed connection sent still counts, and c1's STATZ request since
        asked = len(json.dumps({"accounts": [world.sys]}))
        assert (after["received"]["msgs"], after["received"]["bytes"]) == (6, 50 + asked)
    assert stats[id(n)] == stats[id(b)]
    all_n = {s["acc"] for s in n["ping_all"]["data"]["account_statz"]}
    assert all_n == {s["acc"] for s in b["ping_all"]["data"]["account_statz"]}
    for key in (
        "conns",
        "statz",
        "statz_bad",
        "ping",
        "ping_some",
        "imported",
        "after",
        "statz_unused_included",
    ):
        same_shape(n[key], b[key], key)
    same_shape(n["accstatz"][1], b["accstatz"][1], "accstatz")


# --- CONNZ: closed connections, last activity -----------------------------------------------------


async def _raw(run: Running, lines: bytes) -> int:
    """A bare TCP client: reads INFO, sends ``lines`` (maybe nothing), waits, goes; its cid."""
    port = int(run.server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    info = json.loads((await reader.readline())[5:])
    if lines:
        writer.write(lines)
        await writer.drain()
        await asyncio.sleep(0.2)
    writer.close()
    value = info["client_id"]
    assert isinstance(value, int)
    return value


async def _closed(run: Running, w: World) -> dict[str, Any]:
    sys_nc = await connect(run, w, "sys")
    a1 = await connect(run, w, "a1")
    a2 = await connect(run, w, "a2")
    try:
        await a1.subscribe("cl.a")
        await a1.subscribe("cl.q", queue="g")
        await a1.publish("cl.x", b"12345")
        await a1.publish("cl.x", b"12345")
        await a1.flush()
        who = {cid(a1): "a1", cid(a2): "a2", cid(sys_nc): "sys"}
        await a1.close()
        who[await _raw(run, b'CONNECT {"verbose":false,"jwt":"x"}\r\nPING\r\n')] = "refused"
        who[await _raw(run, b"")] = "silent"
        await a2.subscribe("cl.open")
        await a2.flush()
        await asyncio.sleep(1.2)  # a2 idles
        a1_cid = next(k for k, v in who.items() if v == "a1")
        out: dict[str, Any] = {"who": who, "a1": a1_cid}
        for path in (
            "/connz?state=closed&subs=detail",
            "/connz?state=closed&auth=1&subs=1",
            "/connz?state=all",
            "/connz",
            "/connz?state=closed&sort=reason",
            "/connz?state=closed&sort=stop",
            "/connz?state=all&sort=stop",
            f"/connz?state=closed&cid={a1_cid}",
            f"/connz?state=any&cid={a1_cid}",
            f"/connz?cid={a1_cid}",
            f"/connz?state=closed&acc={w.app}",
            f"/connz?state=closed&user={w.users['a1'].key.public_key}",
            "/connz?sort=idle",
            "/connz?sort=last",
        ):
            out[path] = await get(run, path)
        out["sys"] = await request(
            sys_nc, PING + ".CONNZ", {"state": 1, "cid": a1_cid, "subscriptions_detail": True}
        )
        out["sys_acc"] = await request(sys_nc, f"$SYS.REQ.ACCOUNT.{w.app}.CONNZ", {"state": 2})
        return out
    finally:
        for nc in (a2, a1, sys_nc):
            if not nc.is_closed:
                await nc.close()


def _ours(doc: dict[str, Any], who: dict[int, str]) -> dict[str, dict[str, Any]]:
    """The test's connections of a CONNZ, by client name."""
    return {who[c["cid"]]: c for c in doc["connections"] if c["cid"] in who}


_CLOSED_KEYS = (
    "reason", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions", "name", "lang",
    "version", "jwt", "issuer_key", "name_tag", "kind", "type", "ip",
)  # fmt: skip


def _stamp(text: str) -> int:
    """An RFC 3339 time of Go's (UTC, nanoseconds) as nanoseconds since the epoch."""
    base, _, frac = text.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(base + "+00:00").timestamp())
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


def test_closed_connections_and_last_activity(pair: dict[str, Running], world: World) -> None:
    """``/connz?state=closed|all`` keeps the closed connections with ``stop`` and nats-server's
    ``reason``, their counts, subscriptions, JWT, issuer and names as they closed; filters, sorts
    and paging apply to them as on nats-server; open connections have ``last_activity`` and
    ``idle``."""
    n, b = on_both(pair, world, _closed)
    views = {}
    for side in (n, b):
        who = side["who"]
        status, doc = side["/connz?state=closed&subs=detail"]
        assert status == 200
        closed = _ours(doc, who)
        assert set(closed) == {"a1", "refused", "silent"}
        assert doc["total"] == doc["num_connections"] == len(doc["connections"])
        for c in closed.values():
            assert _stamp(c["start"]) <= _stamp(c["last_activity"]) <= _stamp(c["stop"])
            assert c["uptime"] == c["idle"] == "0s"
        assert closed["silent"]["last_activity"] == closed["silent"]["start"]  # it never sent a byte
        a1 = closed["a1"]
        views[id(side)] = (
            {name: {k: c.get(k) for k in _CLOSED_KEYS} for name, c in closed.items()},
            sorted(
                (d["account"], d["account_tag"], d["subject"], d.get("qgroup"), d["sid"], who[d["cid"]])
                for d in a1["subscriptions_list_detail"]
            ),
        )
        assert a1["reason"] == "Client Closed" and closed["refused"]["reason"] == "Authentication Failure"
        assert (a1["in_msgs"], a1["in_bytes"], a1["subscriptions"]) == (2, 10, 2)
        status, authd = side["/connz?state=closed&auth=1&subs=1"]
        a1_auth = _ours(authd, who)["a1"]
        assert a1_auth["account"] == world.app and a1_auth["name_tag"] == "APP"
        assert a1_auth["authorized_user"] == world.users["a1"].key.public_key
        assert sorted(a1_auth["subscriptions_list"]) == ["cl.a", "cl.q"]
        _, every = side["/connz?state=all"]
        _, opened = side["/connz"]
        assert every["total"] == opened["total"] + doc["total"]
        assert {"a2", "sys", "a1", "refused", "silent"} == set(_ours(every, who))
        a2 = _ours(opened, who)["a2"]
        assert "stop" not in a2 and "reason" not in a2
        assert a2["idle"] == "1s" and _stamp(a2["last_activity"]) < _stamp(opened["now"])
        _, by_reason = side["/connz?state=closed&sort=reason"]
        reasons = [c["reason"] for c in by_reason["connections"]]
        assert reasons == sorted(reasons)
        _, by_stop = side["/connz?state=closed&sort=stop"]
        stops = [_stamp(c["stop"]) for c in by_stop["connections"]]
        assert stops == sorted(stops, reverse=True)
        assert side["/connz?state=all&sort=stop"] == (400, "sort by stop only valid on closed connections")
        _, one_closed = side[f"/connz?state=closed&cid={side['a1']}"]
        assert [c["cid"] for c in one_closed["connections"]] == [side["a1"]] and one_closed["limit"] == 1
        _, one_any = side[f"/connz?state=any&cid={side['a1']}"]
        assert [c["cid"] for c in one_any["connections"]] == [side["a1"]]
        _, none_open = side[f"/connz?cid={side['a1']}"]
        assert none_open["connections"] == []
        _, by_acc = side[f"/connz?state=closed&acc={world.app}"]
        assert "a1" in _ours(by_acc, who) and "refused" not in _ours(by_acc, who)
        _, by_user = side[f"/connz?state=closed&user={world.users['a1'].key.public_key}"]
        assert set(_ours(by_user, who)) == {"a1"}
        _, by_idle = side["/connz?sort=idle"]
        lasts = [_stamp(c["last_activity"]) for c in by_idle["connections"]]
        assert lasts == sorted(lasts)
        _, by_last = side["/connz?sort=last"]
        lasts = [_stamp(c["last_activity"]) for c in by_last["connections"]]
        assert lasts == sorted(lasts, reverse=True)
        over_sys = side["sys"]["data"]["connections"]
        assert [c["cid"] for c in over_sys] == [side["a1"]]
        assert len(over_sys[0]["subscriptions_list_detail"]) == 2
        assert "a1" in _ours(side["sys_acc"]["data"], who) and "a2" in _ours(side["sys_acc"]["data"], who)
    assert views[id(n)] == views[id(b)]
    for key in ("/connz?state=closed&subs=detail", "/connz?state=closed&auth=1&subs=1", "/connz?state=all"):
        same_shape(n[key][1], b[key][1], key)
    same_shape(n["sys"], b["sys"], "sys")


def test_closed_connections_are_bounded() -> None:
    """The broker keeps the last ``max_closed_clients`` closed connections (a ring: the oldest
    go first); its account counts keep what every closed connection sent."""

    async def run() -> None:
        broker = Broker(BrokerConfig(host="127.0.0.1", port=0))
        broker.closed_clients = ClosedClients(size=3)
        await broker.start()
        try:
            url = f"nats://127.0.0.1:{broker.config.port}"
            cids = []
            for i in range(5):
                nc = await nats.connect(url, name=f"c{i}")
                cids.append(nc._server_info["client_id"])
                await nc.publish("x", b"1234")
                await nc.flush()
                await nc.close()
            deadline = time.monotonic() + 3
            while len(broker.conns) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            doc = connz(broker, ConnzOptions(state=1))
            assert [c["cid"] for c in doc["connections"]] == cids[2:] and doc["total"] == 3
            assert [c["name"] for c in doc["connections"]] == ["c2", "c3", "c4"]
            assert broker.closed_clients.accounts["$G"][:2] == [5, 20]
        finally:
            await broker.close()

    asyncio.run(run())


def test_max_closed_clients(tmp_path: Path) -> None:
    """``max_closed_clients: N`` keeps the last N closed connections in ``/connz``, on both."""

    async def scenario(run: Running) -> tuple[int, list[str]]:
        for name in ("c0", "c1", "c2"):
            nc = await nats.connect(run.server.url, name=name, allow_reconnect=False)
            await nc.close()
        for _ in range(100):
            status, doc = await get(run, "/connz?state=closed")
            if status == 200 and doc["total"] >= 2 and doc["connections"][-1]["name"] == "c2":
                break
            await asyncio.sleep(0.05)
        return doc["total"], [c["name"] for c in doc["connections"]]

    for kind in SERVER_KINDS:
        port = free_port()
        run = start(kind, f"max_closed_clients: 2\nhttp_port: {port}\n", tmp_path / kind, port)
        try:
            assert asyncio.run(scenario(run)) == (2, ["c1", "c2"]), kind
        finally:
            run.server.stop()
