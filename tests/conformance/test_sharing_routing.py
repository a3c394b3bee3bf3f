"""Sharing between accounts, the edge cases, on both servers: response types and thresholds, the
rewritten reply and who may answer it, ``Nats-Request-Info``, wildcard exports and imports with
local subjects, account token positions, activations that expire, are not yet valid or are revoked
with ``*``, service chains, stream imports that are not transitive, queue groups across accounts,
mapping functions (and the ones nats-server refuses), weighted loss, cluster-scoped mappings, and
live updates of imports and mappings.

Accounts are built with the library and preloaded (``resolver: MEMORY``); clients are nats-py with
trustkit's creds. Every scenario runs on the real nats-server and on trustkit-broker with the same
config, and must end the same way on both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from tests.natsserver import ServerProcess
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config

pytestmark = pytest.mark.real

SVC, STREAM = jwt.SERVICE, jwt.STREAM
MS = 1_000_000  # nanoseconds


class World:
    """An operator, its system account, and accounts/users built with the library."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.now = int(time.time())
        self.iat = self.now - 100
        self.op = KeyPair.generate(PrefixByte.OPERATOR)
        self.keys: dict[str, KeyPair] = {}
        self.claims: dict[str, jwt.AccountClaims] = {}
        self.creds: dict[str, str] = {}
        self.account("SYS")
        self.user("sys", "SYS")

    def account(self, name: str) -> str:
        kp = KeyPair.generate(PrefixByte.ACCOUNT)
        self.keys[name] = kp
        self.claims[name] = jwt.AccountClaims(sub=kp.public_key, name=name)
        return kp.public_key

    def key(self, name: str) -> str:
        return self.keys[name].public_key

    def user(self, name: str, account: str, **fields: Any) -> str:
        kp = KeyPair.generate(PrefixByte.USER)
        claims = jwt.UserClaims(sub=kp.public_key, name=name, **fields)
        token = claims.encode(self.keys[account], iat=self.iat)
        path = self.tmp / f"{name}.creds"
        path.write_bytes(format_user_creds(token, kp.seed))
        self.creds[name] = str(path)
        return str(path)

    def export(self, account: str, subject: str, kind: str, **fields: Any) -> None:
        self.claims[account].exports.append(jwt.Export(subject=subject, type=kind, **fields))

    def import_(self, account: str, exporter: str, subject: str, kind: str, **fields: Any) -> None:
        imp = jwt.Import(subject=subject, account=self.key(exporter), type=kind, **fields)
        self.claims[account].imports.append(imp)

    def activation(
        self, exporter: str, importer: str, subject: str, kind: str, *, iat: int | None = None, **times: int
    ) -> str:
        act = jwt.ActivationClaims(sub=self.key(importer), import_subject=subject, import_type=kind, **times)
        return act.encode(self.keys[exporter], iat=self.iat if iat is None else iat)

    def account_jwt(self, name: str) -> str:
        self.iat += 1
        return self.claims[name].encode(self.op, iat=self.iat)

    def config(self) -> str:
        op_jwt = jwt.OperatorClaims(
            sub=self.op.public_key, name="op", system_account=self.key("SYS")
        ).encode(self.op, iat=self.iat)
        return mem_resolver_config(op_jwt, [self.account_jwt(name) for name in self.claims])

    def server(self, kind: str) -> ServerProcess:
        return make_server(kind, self.config(), self.tmp / kind)


class Conn:
    """A nats-py client that keeps what its error callback was told."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc = Client()

    async def connect(self, url: str, creds: str) -> Client:
        async def on_error(e: Exception) -> None:
            self.errors.append(str(e))

        await self.nc.connect(
            url, user_credentials=creds, allow_reconnect=False, connect_timeout=3, error_cb=on_error
        )
        return self.nc


@asynccontextmanager
async def clients(url: str, world: World, *users: str) -> AsyncIterator[list[Conn]]:
    conns = [Conn() for _ in users]
    try:
        for c, user in zip(conns, users, strict=True):
            await c.connect(url, world.creds[user])
        yield conns
    finally:
        for c in conns:
            if c.nc.is_connected:
                await c.nc.close()


async def synced(nc: Client) -> None:
    """Return once the server has processed everything ``nc`` sent (see test_sharing.synced)."""
    probe = nc.new_inbox()
    sub = await nc.subscribe(probe)
    await nc.publish(probe, b"")
    await sub.next_msg(timeout=5)
    await sub.unsubscribe()


async def drain(sub: Any, wait: float = 0.4) -> list[Msg]:
    out: list[Msg] = []
    while True:
        try:
            out.append(await sub.next_msg(timeout=wait))
        except NatsTimeout:
            return out


def answer(make: Callable[[Msg], bytes]) -> Callable[[Msg], Awaitable[None]]:
    """A subscription callback that responds with ``make(msg)``."""

    async def cb(msg: Msg) -> None:
        await msg.respond(make(msg))

    return cb


async def fails(request: Callable[[], Awaitable[Msg]]) -> bool:
    try:
        await request()
    except (NoRespondersError, NatsTimeout):
        return True
    return False


# --- one world for the static scenarios ------------------------------------------------------------


def build_static(tmp: Path) -> World:
    w = World(tmp)
    now = w.now
    for name in ("EXP", "IMP", "OTHER", "D", "DEEP"):
        w.account(name)
    imp, other, d = w.key("IMP"), w.key("OTHER"), w.key("D")
    # services of EXP
    w.export("EXP", "svc.echo", SVC)
    w.export("EXP", "svc.single", SVC, response_type="Singleton")
    w.export("EXP", "svc.stream", SVC, response_type="Stream")
    w.export("EXP", "svc.chunked", SVC, response_type="Chunked")
    w.export("EXP", "svc.fast", SVC, response_type="Stream", response_threshold=500 * MS)
    w.export("EXP", "svc.slow", SVC, response_type="Stream")
    w.export("EXP", "svc.*.time", SVC)
    w.export("EXP", "svc.private", SVC, token_req=True, revocations={"*": now - 50})
    w.export("EXP", "deep", SVC)
    # streams of EXP
    w.export("EXP", "orders.>", STREAM)
    w.export("EXP", "news.*.items", STREAM, account_token_position=2)
    w.export("EXP", "feed.>", STREAM)
    w.export("EXP", "work.>", STREAM)
    # IMP takes the services under local names, and three streams
    for local in ("echo", "single", "stream", "chunked", "fast", "slow"):
        w.import_("IMP", "EXP", f"svc.{local}", SVC, local_subject=local)
    w.import_("IMP", "EXP", "svc.*.time", SVC, local_subject="t.$1")
    fresh = w.activation("EXP", "IMP", "svc.private", SVC, iat=now - 10)  # after the "*" revocation
    w.import_("IMP", "EXP", "svc.private", SVC, token=fresh, local_subject="private")
    w.import_("IMP", "EXP", "deep", SVC)
    w.import_("IMP", "EXP", "orders.*", STREAM, local_subject="in.$1")
    w.import_("IMP", "EXP", f"news.{imp}.items", STREAM)
    w.import_("IMP", "EXP", "feed.>", STREAM, local_subject="relay.>")
    w.import_("IMP", "EXP", "work.>", STREAM)
    w.export("IMP", "relay.>", STREAM)
    # OTHER: someone else's token position, an old activation, and IMP's relay
    w.import_("OTHER", "EXP", f"news.{imp}.items", STREAM, local_subject="stolen.items")
    w.import_("OTHER", "EXP", f"news.{other}.items", STREAM)
    old = w.activation("EXP", "OTHER", "svc.private", SVC, iat=now - 100)  # before the "*" revocation
    w.import_("OTHER", "EXP", "svc.private", SVC, token=old, local_subject="private")
    w.import_("OTHER", "IMP", "relay.>", STREAM, local_subject="again.>")
    # D imports the token-position export by its own subject: refused (nats-server needs the key)
    w.import_("D", "EXP", "news.*.items", STREAM)
    assert d
    # a chain: IMP -> EXP ("deep") -> DEEP ("svc.deep")
    w.export("DEEP", "svc.deep", SVC)
    w.import_("EXP", "DEEP", "svc.deep", SVC, local_subject="deep")
    # share: IMP's details go with "shared"; on "deep2" only from the second hop (EXP -> DEEP) on
    w.export("EXP", "svc.shared", SVC)
    w.import_("IMP", "EXP", "svc.shared", SVC, local_subject="shared", share=True)
    w.export("DEEP", "svc.deep2", SVC)
    w.import_("EXP", "DEEP", "svc.deep2", SVC, local_subject="deep2", share=True)
    w.export("EXP", "deep2", SVC)
    w.import_("IMP", "EXP", "deep2", SVC)
    # mappings in EXP
    w.claims["EXP"].mappings = {
        "p.*": [jwt.WeightedMapping(subject="part.{{partition(10,1)}}")],
        "s.*": [jwt.WeightedMapping(subject="split.{{split(1,-)}}")],
        "sl.*": [jwt.WeightedMapping(subject="slice.{{SliceFromLeft(1,2)}}")],
        "sw.*.*": [jwt.WeightedMapping(subject="swap.$2.{{wildcard(1)}}")],
        "l.*": [jwt.WeightedMapping(subject="left.{{left(1,2)}}")],
        "r.*": [jwt.WeightedMapping(subject="right.{{right(1,2)}}")],
        "u.*": [jwt.WeightedMapping(subject="u.{{nope(1)}}")],  # an unknown function
        "c": [jwt.WeightedMapping(subject="c.east", cluster="east")],  # never applies: no cluster
        "drop": [jwt.WeightedMapping(subject="drop", weight=50)],  # the source listed: 50% lost
        "keep": [jwt.WeightedMapping(subject="keep.a", weight=50)],  # the rest stays on keep
    }
    w.user("alice", "EXP")
    w.user("alice2", "EXP")
    w.user("bob", "IMP")
    w.user("carol", "OTHER")
    w.user("dave", "D")
    w.user("deep", "DEEP")
    w.user("strict", "EXP", pub=jwt.Permission(allow=["_INBOX.>"]))  # may run synced()
    w.user("responder", "EXP", pub=jwt.Permission(allow=["_INBOX.>"]), resp=jwt.ResponsePermission(max=1))
    return w


@pytest.fixture(scope="module")
def static(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_static(tmp_path_factory.mktemp("sharing"))


@pytest.fixture(scope="module", params=SERVER_KINDS)
def url(request: pytest.FixtureRequest, static: World) -> Iterator[str]:
    with static.server(request.param) as server:
        yield server.url


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


# --- services -------------------------------------------------------------------------------------


def test_request_reply_is_rewritten_and_names_the_requesting_account(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "alice", "bob") as (svc, client):
            seen: list[Msg] = []

            async def handle(msg: Msg) -> None:
                seen.append(msg)
                await msg.respond(b"echo:" + msg.data)

            await svc.nc.subscribe("svc.echo", cb=handle)
            await synced(svc.nc)
            # a requester cannot pass itself off as another account
            forged = {"Nats-Request-Info": json.dumps({"acc": static.key("EXP")})}
            reply = await client.nc.request("echo", b"hi", timeout=2, headers=forged)
            assert reply.data == b"echo:hi"
            msg = seen[0]
            assert msg.subject == "svc.echo"
            assert msg.reply.startswith("_R_.") and len(msg.reply.split(".")) == 3, msg.reply
            assert msg.headers is not None
            info = json.loads(msg.headers["Nats-Request-Info"])
            assert info["acc"] == static.key("IMP")
            # the exporter's own subject is not visible in the importer
            assert await fails(lambda: client.nc.request("svc.echo", b"", timeout=0.5))

    run(scenario())


def test_a_service_without_a_responder_is_no_responders(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "bob") as (client,):
            with pytest.raises(NoRespondersError):
                await client.nc.request("single", b"", timeout=2)

    run(scenario())


def test_the_responder_needs_permission_for_the_rewritten_reply(url: str, static: World) -> None:
    """nats-server does not grant a publish permission for ``_R_`` replies: a responder limited
    to other subjects is refused, one with ``allow_responses`` may answer."""

    async def scenario() -> None:
        async with clients(url, static, "strict", "responder", "bob") as (strict, responder, client):
            await strict.nc.subscribe("svc.single", cb=answer(lambda m: b"no"))
            await synced(strict.nc)
            with pytest.raises(NatsTimeout):
                await client.nc.request("single", b"", timeout=1)
            await asyncio.sleep(0.2)
            refused = 'permissions violation for publish to "_r_.'  # nats-py lower-cases it
            assert any(refused in e for e in strict.errors), strict.errors
            await strict.nc.close()
            await responder.nc.subscribe("svc.single", cb=answer(lambda m: b"yes"))
            await synced(responder.nc)
            assert (await client.nc.request("single", b"", timeout=2)).data == b"yes"
            assert responder.errors == []

    run(scenario())


def test_response_types(url: str, static: World) -> None:
    """Singleton takes one response; Stream and Chunked take many, until an empty message."""

    async def scenario() -> None:
        async with clients(url, static, "alice", "bob") as (svc, client):

            async def answer(msg: Msg) -> None:
                for part in (b"1", b"2", b"3", b"", b"4"):
                    await svc.nc.publish(msg.reply, part)

            for name in ("single", "stream", "chunked"):
                await svc.nc.subscribe(f"svc.{name}", cb=answer)
            await synced(svc.nc)
            got = {}
            for name in ("single", "stream", "chunked"):
                inbox = client.nc.new_inbox()
                sub = await client.nc.subscribe(inbox)
                await client.nc.publish(name, b"go", reply=inbox)
                got[name] = [m.data for m in await drain(sub)]
            assert got == {
                "single": [b"1"],
                "stream": [b"1", b"2", b"3", b""],
                "chunked": [b"1", b"2", b"3", b""],
            }

    run(scenario())


def test_response_threshold_ends_a_stream_of_responses(url: str, static: World) -> None:
    """A Stream export with a 500 ms threshold forgets a request that waited longer for its next
    response; with the default threshold (2 min) the late response still arrives."""

    async def scenario() -> None:
        async with clients(url, static, "alice", "bob") as (svc, client):

            async def late(msg: Msg) -> None:
                await svc.nc.publish(msg.reply, b"now")
                await asyncio.sleep(2.5)
                await svc.nc.publish(msg.reply, b"late")

            await svc.nc.subscribe("svc.fast", cb=late)
            await svc.nc.subscribe("svc.slow", cb=late)
            await synced(svc.nc)
            subs = {}
            for name in ("fast", "slow"):
                inbox = client.nc.new_inbox()
                subs[name] = await client.nc.subscribe(inbox)
                await client.nc.publish(name, b"", reply=inbox)
            await asyncio.sleep(3.2)
            got = {name: [m.data for m in await drain(sub, 0.3)] for name, sub in subs.items()}
            assert got == {"fast": [b"now"], "slow": [b"now", b"late"]}

    run(scenario())


def test_wildcard_service_import_with_a_local_subject(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "alice", "bob") as (svc, client):
            await svc.nc.subscribe("svc.*.time", cb=answer(lambda m: m.subject.encode()))
            await synced(svc.nc)
            for zone in ("eu", "us"):
                reply = await client.nc.request(f"t.{zone}", b"", timeout=2)
                assert reply.data == f"svc.{zone}.time".encode()
            assert await fails(lambda: client.nc.request("t.eu.x", b"", timeout=0.5))

    run(scenario())


def test_private_service_and_activations_revoked_with_star(url: str, static: World) -> None:
    """``revocations: {"*": t}`` revokes every activation issued at or before ``t``."""

    async def scenario() -> None:
        async with clients(url, static, "alice", "bob", "carol") as (svc, fresh, old):
            await svc.nc.subscribe("svc.private", cb=answer(lambda m: b"ok"))
            await synced(svc.nc)
            assert (await fresh.nc.request("private", b"", timeout=2)).data == b"ok"
            assert await fails(lambda: old.nc.request("private", b"", timeout=0.5))

    run(scenario())


def test_service_imports_chain_through_accounts(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "deep", "bob") as (svc, client):
            seen: list[Msg] = []

            async def handle(msg: Msg) -> None:
                seen.append(msg)
                await msg.respond(b"from the deep")

            await svc.nc.subscribe("svc.deep", cb=handle)
            await synced(svc.nc)
            assert (await client.nc.request("deep", b"", timeout=2)).data == b"from the deep"
            assert seen[0].headers is not None
            info = json.loads(seen[0].headers["Nats-Request-Info"])
            assert (info["acc"], info.get("svc")) == (static.key("IMP"), static.key("EXP"))

    run(scenario())


async def _request_info_of(svc: Conn, client: Conn, listen: str, ask: str) -> dict[str, Any]:
    """The ``Nats-Request-Info`` that a request on ``ask`` brings to ``listen`` in the exporter."""
    seen: list[Msg] = []

    async def handle(msg: Msg) -> None:
        seen.append(msg)
        await msg.respond(b"")

    sub = await svc.nc.subscribe(listen, cb=handle)
    await synced(svc.nc)
    await client.nc.request(ask, b"", timeout=2)
    await sub.unsubscribe()
    assert seen[0].headers is not None
    info = json.loads(seen[0].headers["Nats-Request-Info"])
    assert isinstance(info, dict)
    return info


def _rtt_ok(info: dict[str, Any]) -> bool:
    """Takes ``rtt`` out of ``info``: nanoseconds, present once the server has an estimate."""
    return isinstance(info.pop("rtt", 1), int)


def test_share_sends_the_requesters_details_with_its_requests(url: str, static: World) -> None:
    """Go ``getClientInfo``: the account and RTT always; who the requester is (and the server)
    only through an import with ``share``; on a chain, the server's name once a hop shares."""

    async def scenario() -> None:
        async with clients(url, static, "alice", "bob", "deep") as (exp, client, deep):
            plain = await _request_info_of(exp, client, "svc.echo", "echo")
            shared = await _request_info_of(exp, client, "svc.shared", "shared")
            chained = await _request_info_of(deep, client, "svc.deep2", "deep2")
        assert _rtt_ok(plain) and plain == {"acc": static.key("IMP")}
        assert _rtt_ok(shared)
        assert sorted(shared) == sorted(
            ["start", "host", "id", "acc", "user", "lang", "ver", "server", "jwt", "issuer_key", "name_tag",
             "kind", "client_type"]
        )  # fmt: skip
        assert (shared["acc"], shared["kind"], shared["client_type"]) == (static.key("IMP"), "Client", "nats")
        assert shared["issuer_key"] == static.key("IMP") and shared["jwt"].count(".") == 2
        assert shared["user"].startswith("U") and shared["host"] == "127.0.0.1"
        assert shared["name_tag"] == "bob"
        assert _rtt_ok(chained)
        assert set(chained) == {"acc", "svc", "server"} and chained["svc"] == static.key("EXP")
        assert chained["server"] == shared["server"]

    run(scenario())


# --- streams --------------------------------------------------------------------------------------


def test_wildcard_stream_import_rewrites_each_subscription(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "alice", "bob") as (pub, sub):
            subs = {s: await sub.nc.subscribe(s) for s in ("in.*", "in.eu", "*.us", "in.>")}
            await synced(sub.nc)
            for subject in ("orders.eu", "orders.us", "orders.eu.late"):
                await pub.nc.publish(subject, subject.encode())
            await synced(pub.nc)
            got = {s: sorted((m.subject, m.data) for m in await drain(x)) for s, x in subs.items()}
            eu, us = ("in.eu", b"orders.eu"), ("in.us", b"orders.us")
            assert got == {"in.*": [eu, us], "in.eu": [eu], "*.us": [us], "in.>": [eu, us]}

    run(scenario())


def test_account_token_position(url: str, static: World) -> None:
    """Each importer gets the subjects with its own key at the position; a stolen key or the
    export's own wildcard subject is refused."""

    async def scenario() -> None:
        imp, other = static.key("IMP"), static.key("OTHER")
        async with clients(url, static, "alice", "bob", "carol", "dave") as (pub, bob, carol, dave):
            b, c, d = [await x.nc.subscribe(">") for x in (bob, carol, dave)]
            for x in (bob, carol, dave):
                await synced(x.nc)
            for s in (b, c, d):
                await drain(s, 0.1)  # nothing from before
            await pub.nc.publish(f"news.{imp}.items", b"for imp")
            await pub.nc.publish(f"news.{other}.items", b"for other")
            await synced(pub.nc)
            assert [(m.subject, m.data) for m in await drain(b)] == [(f"news.{imp}.items", b"for imp")]
            assert [(m.subject, m.data) for m in await drain(c)] == [(f"news.{other}.items", b"for other")]
            assert await drain(d) == []

    run(scenario())


def test_stream_imports_are_not_transitive(url: str, static: World) -> None:
    """EXP → IMP (feed.> as relay.>) → OTHER (relay.> as again.>): OTHER sees IMP's own
    publishes only; what IMP imported is not passed on."""

    async def scenario() -> None:
        async with clients(url, static, "alice", "bob", "carol") as (exp, imp, other):
            at_imp = await imp.nc.subscribe("relay.>")
            at_other = await other.nc.subscribe("again.>")
            await synced(imp.nc)
            await synced(other.nc)
            await exp.nc.publish("feed.x", b"from exp")
            await imp.nc.publish("relay.y", b"from imp")
            await synced(exp.nc)
            await synced(imp.nc)
            assert sorted(m.subject for m in await drain(at_imp)) == ["relay.x", "relay.y"]
            assert [(m.subject, m.data) for m in await drain(at_other)] == [("again.y", b"from imp")]

    run(scenario())


def test_queue_groups_span_the_exporter_and_the_importer(url: str, static: World) -> None:
    """A queue subscription in the importer joins the exporter's group of the same name: each
    message goes to one member of the combined group."""

    async def scenario() -> None:
        async with clients(url, static, "alice", "alice2", "bob") as (pub, member, importer):
            a = await member.nc.subscribe("work.>", queue="q")
            b = await importer.nc.subscribe("work.>", queue="q")
            await synced(member.nc)
            await synced(importer.nc)
            for i in range(100):
                await pub.nc.publish(f"work.{i}", b"")
            await synced(pub.nc)
            got_a, got_b = len(await drain(a)), len(await drain(b))
            assert got_a + got_b == 100 and got_a > 0 and got_b > 0, (got_a, got_b)

    run(scenario())


# --- mappings -------------------------------------------------------------------------------------


def test_mapping_functions_and_the_mappings_nats_server_refuses(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "alice") as (c,):
            sub = await c.nc.subscribe(">")
            await synced(c.nc)
            await drain(sub, 0.1)
            sent = ["p.foo", "p.qux", "s.a-b--c", "sl.abcde", "sw.x.y", "l.abcd", "r.abcd", "u.x", "c"]
            for subject in sent:
                await c.nc.publish(subject, subject.encode())
            await synced(c.nc)
            got = {m.data.decode(): m.subject for m in await drain(sub) if m.data}
            assert got == {
                "p.foo": "part.3",  # fnv32a("foo") % 10, nats-server's own test vector
                "p.qux": "part.9",
                "s.a-b--c": "split.a.b.c",
                "sl.abcde": "slice.ab.cd.e",
                "sw.x.y": "swap.y.x",
                "l.abcd": "left.ab",
                "r.abcd": "right.cd",
                "u.x": "u.x",  # an unknown function: nats-server leaves the mapping out
                "c": "c",  # cluster-scoped: this server is in no cluster
            }

    run(scenario())


def test_weighted_mappings_keep_or_drop_the_remainder(url: str, static: World) -> None:
    async def scenario() -> None:
        async with clients(url, static, "alice") as (c,):
            drop, keep, keep_a = [await c.nc.subscribe(s) for s in ("drop", "keep", "keep.a")]
            await synced(c.nc)
            for _ in range(200):
                await c.nc.publish("drop", b"")
                await c.nc.publish("keep", b"")
            await synced(c.nc)
            dropped = len(await drain(drop))
            kept, moved = len(await drain(keep)), len(await drain(keep_a))
            assert 40 < dropped < 160, dropped  # half of them lost, the source being listed at 50%
            assert kept + moved == 200 and kept > 40 and moved > 40, (kept, moved)

    run(scenario())


# --- activations over time, and live updates --------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_activation_expiry_and_validity_window(tmp_path: Path, kind: str) -> None:
    """An activation works until its expiry and then stops; one already expired, or not valid
    yet, never works."""
    w = World(tmp_path)
    for name in ("EXP", "B", "C", "D"):
        w.account(name)
    w.export("EXP", "prv.>", STREAM, token_req=True)
    soon = w.now + 5  # time enough to start the server and connect first
    for name, times in (("B", {"exp": soon}), ("C", {"exp": w.now - 10}), ("D", {"nbf": w.now + 3600})):
        token = w.activation("EXP", name, "prv.>", STREAM, **times)
        w.import_(name, "EXP", "prv.>", STREAM, token=token)
        w.user(name.lower(), name)
    w.user("alice", "EXP")

    async def scenario(url: str) -> None:
        async with clients(url, w, "alice", "b", "c", "d") as (pub, b, c, d):
            subs = [await x.nc.subscribe("prv.>") for x in (b, c, d)]
            for x in (b, c, d):
                await synced(x.nc)
            await pub.nc.publish("prv.1", b"")
            await synced(pub.nc)
            assert [len(await drain(s)) for s in subs] == [1, 0, 0]
            await asyncio.sleep(max(0.0, soon + 1.2 - time.time()))
            await pub.nc.publish("prv.2", b"")
            await synced(pub.nc)
            assert [len(await drain(s)) for s in subs] == [0, 0, 0]

    with w.server(kind) as server:
        asyncio.run(scenario(server.url))


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_pushed_imports_and_mappings_apply_to_live_clients(tmp_path: Path, kind: str) -> None:
    """A pushed importer JWT adds a stream import for subscriptions made before it, and a pushed
    exporter JWT with a mapping changes where the next publish goes."""
    w = World(tmp_path)
    for name in ("EXP", "B"):
        w.account(name)
    w.export("EXP", "orders.>", STREAM)
    w.user("alice", "EXP")
    w.user("bob", "B")

    async def scenario(url: str) -> None:
        async with clients(url, w, "sys", "alice", "bob") as (sys, pub, sub):
            live = await sub.nc.subscribe("in.>")
            mapped = await pub.nc.subscribe("new.>")
            await synced(sub.nc)
            await synced(pub.nc)
            await pub.nc.publish("orders.1", b"")
            await synced(pub.nc)
            assert await drain(live) == []

            async def push(name: str) -> None:
                subject = f"$SYS.REQ.ACCOUNT.{w.key(name)}.CLAIMS.UPDATE"
                reply = await sys.nc.request(subject, w.account_jwt(name).encode(), timeout=3)
                assert json.loads(reply.data)["data"]["code"] == 200, reply.data

            w.import_("B", "EXP", "orders.>", STREAM, local_subject="in.>")
            await push("B")
            w.claims["EXP"].mappings = {"orders.*": [jwt.WeightedMapping(subject="new.$1")]}
            await push("EXP")
            await pub.nc.publish("orders.2", b"")
            await synced(pub.nc)
            assert [m.subject for m in await drain(mapped)] == ["new.2"]
            assert await drain(live) == []  # the publish was mapped away from orders.2
            await pub.nc.publish("orders.x.y", b"")  # not mapped (two tokens after orders)
            await synced(pub.nc)
            assert [m.subject for m in await drain(live)] == ["in.x.y"]

    with w.server(kind) as server:
        asyncio.run(scenario(server.url))
