"""broker/sharing.py: subject transforms, mappings, and the broker's own bookkeeping of imports.

What nats-server does is compared on both servers in tests/conformance/test_sharing*.py. Here:
the transform and mapping rules against nats-server's own test vectors (server/
subject_transform_test.go) and Go semantics, and, with a broker in this process, the state that
only the broker shows: pending responses dropped when they are answered, when the requester goes
away or when the threshold passes; shadow subscriptions that follow their subscription through
UNSUB, auto-unsubscribe, disconnect and pushes; and a pushed JWT written off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import broker.system as system_module
from broker import sharing
from broker.config import BrokerConfig, parse_conf
from broker.server import Broker
from broker.sharing import SharingError, Transform, build_mappings, transform_tokenize, transform_untokenize
from tests.conformance.test_sharing_routing import World, answer, clients, drain, synced
from trustkit import jwt
from trustkit.serverconfig import nats_resolver_config

SVC, STREAM = jwt.SERVICE, jwt.STREAM

# --- transforms: nats-server's TestSubjectTransforms vectors ------------------------------------------

MATCH = [
    ("foo", "bar", "foo", "bar"),
    ("foo.*.bar.*.baz", "req.$2.$1", "foo.A.bar.B.baz", "req.B.A"),
    ("foo.*.bar.*.baz", "req.{{wildcard(2)}}.{{wildcard(1)}}", "foo.A.bar.B.baz", "req.B.A"),
    ("baz.>", "my.pre.>", "baz.1.2.3", "my.pre.1.2.3"),
    ("baz.>", "foo.bar.>", "baz.1.2.3", "foo.bar.1.2.3"),
    ("*", "foo.bar.$1", "foo", "foo.bar.foo"),
    ("*", "{{splitfromleft(1,3)}}", "12345", "123.45"),
    ("*", "{{SplitFromRight(1,3)}}", "12345", "12.345"),
    ("*", "{{SliceFromLeft(1,3)}}", "1234567890", "123.456.789.0"),
    ("*", "{{SliceFromRight(1,3)}}", "1234567890", "1.234.567.890"),
    ("*", "{{split(1,-)}}", "-abc-def--ghi-", "abc.def.ghi"),
    ("*", "{{split(1,-)}}", "abc-def--ghi-", "abc.def.ghi"),
    ("*.*", "{{split(2,-)}}.{{splitfromleft(1,2)}}", "foo.-abc-def--ghij-", "abc.def.ghij.fo.o"),
    ("*", "{{right(1,1)}}", "1234", "4"),
    ("*", "{{right(1,3)}}", "1234", "234"),
    ("*", "{{right(1,6)}}", "1234", "1234"),
    ("*", "{{left(1,1)}}", "1234", "1"),
    ("*", "{{left(1,3)}}", "1234", "123"),
    ("*", "{{left(1,6)}}", "1234", "1234"),
    ("*", "bar.{{partition(0)}}", "baz", "bar.0"),
    ("*", "bar.{{partition(10, 0)}}", "foo", "bar.3"),
    ("*.*", "bar.{{partition(10)}}", "foo.bar", "bar.6"),
    ("*", "bar.{{partition(10)}}", "foo", "bar.3"),
    ("*", "bar.{{partition(10)}}", "baz", "bar.0"),
    ("*", "bar.{{partition(10)}}", "qux", "bar.9"),
    ("*", "bar.{{random(0)}}", "qux", "bar.0"),
    ("foo.bar", "baz.{{partition(10)}}", "foo.bar", "baz.6"),
    ("foo.baz", "qux.{{partition(10)}}", "foo.baz", "qux.4"),
    ("test.subject", "result.{{partition(5)}}", "test.subject", "result.0"),
    ("", "prefix.>", "foo", "prefix.foo"),
    ("*", "{{ Partition (10, 1) }}", "foo", "3"),  # spaces inside the braces are allowed
]


@pytest.mark.parametrize(("src", "dest", "sample", "expected"), MATCH)
def test_transforms_match_nats_server_vectors(src: str, dest: str, sample: str, expected: str) -> None:
    tr = Transform.create(src, dest)
    assert tr is not None
    assert tr.apply(sample) == expected


def test_random_stays_below_its_bound() -> None:
    tr = Transform.create("*", "bar.{{random(6)}}")
    assert tr is not None
    assert {tr.apply("qux") for _ in range(500)} == {f"bar.{i}" for i in range(6)}


REFUSE = [
    ("foo..", "bar", False),
    ("foo.*", "bar.*", False),
    ("foo.*", "bar.$2", False),
    ("foo.*", "bar.$1.>", False),
    ("foo.>", "bar.baz", False),
    ("foo.*.*", "bar.$2", True),
    ("foo.*", "foo.$foo", True),
    ("foo.*", "bar.{{Partition(2,1)}}", True),
    ("foo.*", "foo.{{wildcard(2)}}", False),
    ("foo.*", "foo.{{unimplemented(1)}}", False),
    ("foo.*", "foo.{{partition()}}", False),
    ("foo.*", "foo.{{random()}}", False),
    ("foo.*", "foo.{{wildcard(foo)}}", False),
    ("foo.*", "foo.{{wildcard()}}", False),
    ("foo.*", "foo.{{wildcard(1,2)}}", False),
    ("foo.*", "foo.{{ wildcard5) }}", False),
    ("foo.*", "foo.{{splitLeft(2,2}}", False),
    ("foo", "bla.{{wildcard(1)}}", False),
    ("foo.*", f"foo.{{{{partition({2**31})}}}}", False),
    ("foo.*", f"foo.{{{{random({2**31})}}}}", False),
]


@pytest.mark.parametrize(("src", "dest", "strict"), REFUSE)
def test_transforms_nats_server_refuses(src: str, dest: str, strict: bool) -> None:
    with pytest.raises(SharingError, match=r"^invalid (subject|mapping destination)"):
        Transform.create(src, dest, strict=strict)


@pytest.mark.parametrize(
    ("src", "dest", "strict"),
    [
        ("foo.*", "bar.{{Wildcard(1)}}", True),
        ("foo.*.*", "bar.$2", False),
        ("foo.*.*", "bar.{{partition(1)}}", False),
        ("*.*", "{{partition(10,1,2)}}", False),
        ("foo.*.*", "foo.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(5,1,2)}}", False),
        ("foo.*", f"foo.{{{{partition({2**31 - 1})}}}}", False),
        ("foo.bar", f"foo.{{{{random({2**31 - 1})}}}}", False),
    ],
)
def test_transforms_nats_server_accepts(src: str, dest: str, strict: bool) -> None:
    assert Transform.create(src, dest, strict=strict) is not None


def test_reversible_transforms_and_placeholders() -> None:
    tr = Transform.create("foo.*.*", "bar.$2.{{Wildcard(1)}}", strict=True)
    assert tr is not None
    reverse = tr.reverse()
    assert reverse is not None and reverse.apply(tr.apply("foo.b.a")) == "foo.b.a"
    assert transform_untokenize("foo.$2.$1") == ("foo.*.*", ["$2", "$1"])
    assert transform_untokenize("foo.{{wildcard(2)}}.{{wildcard(1)}}") == (
        "foo.*.*",
        ["{{wildcard(2)}}", "{{wildcard(1)}}"],
    )
    assert transform_untokenize("bar") == ("bar", [])
    assert transform_tokenize("foo.*.x.*") == "foo.$1.x.$2"


def test_transforms_slice_by_bytes_as_go_does() -> None:
    tr = Transform.create("*", "{{SplitFromLeft(1,1)}}")
    assert tr is not None
    # "é" is two bytes in UTF-8: Go splits inside it; the bytes survive the round trip
    out = tr.apply("é")
    assert out.encode("utf-8", "surrogateescape") == b"\xc3.\xa9"


# --- mappings -------------------------------------------------------------------------------------


def wm(subject: str, weight: int = 0, cluster: str = "") -> jwt.WeightedMapping:
    return jwt.WeightedMapping(subject=subject, weight=weight, cluster=cluster)


def spread(mapper: sharing.Mappings, subject: str, n: int = 4000) -> Counter[str]:
    return Counter(mapper(subject) for _ in range(n))


def test_weights_pick_destinations_and_the_rest_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharing, "_rng", random.Random(5))
    mapper = build_mappings({"t.*": [wm("t.$1.fast", 60), wm("t.$1.slow", 30)]})
    assert mapper is not None
    got = spread(mapper, "t.a")
    assert set(got) == {"t.a.fast", "t.a.slow", "t.a"}
    assert 0.55 < got["t.a.fast"] / 4000 < 0.65 and 0.25 < got["t.a.slow"] / 4000 < 0.35
    assert mapper("u.a") == "u.a" and mapper("t.a.b") == "t.a.b"


def test_a_listed_source_means_the_rest_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharing, "_rng", random.Random(6))
    mapper = build_mappings({"x": [wm("x", 30), wm("y", 30)]})
    assert mapper is not None
    got = spread(mapper, "x")
    assert set(got) == {"x", "y", ""}  # "" = dropped
    assert 0.35 < got[""] / 4000 < 0.45


def test_cluster_scoped_destinations_never_apply() -> None:
    mapper = build_mappings({"a": [wm("a.east", 100, "east")], "b": [wm("b.west", 100, "west"), wm("b.all")]})
    assert mapper is not None
    assert {mapper("a") for _ in range(50)} == {"a"}
    assert {mapper("b") for _ in range(50)} == {"b.all"}


def test_mappings_nats_server_refuses_are_left_out_and_logged() -> None:
    logged: list[str] = []
    mapper = build_mappings(
        {
            "dup": [wm("d1", 50), wm("d1", 50)],
            "heavy": [wm("h1", 60), wm("h2", 60)],
            "fn": [wm("fn.{{nope(1)}}")],
            "space.*": [wm("s.{{wildcard(1)}}.a b")],
            "ok.*": [wm("done.{{wildcard(1)}}")],
        },
        logged.append,
    )
    assert mapper is not None and len(mapper) == 1
    assert mapper("ok.1") == "done.1" and mapper("dup") == "dup" and mapper("fn") == "fn"
    assert sorted(m.split("'")[1] for m in logged) == ["dup", "fn", "heavy", "space.*"]
    assert any("unknown function" in m for m in logged)
    assert build_mappings({}) is None


# --- Go subject helpers and the request-info header --------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "test", "expected"),
    [
        ("foo.*", ">", True),
        ("foo.*", "*.*", True),
        ("foo.*", "foo.*", True),
        ("foo.*", "foo.bar", False),
        ("foo.>", "foo.*", False),
        ("foo.bar", "foo.*", True),
        ("foo", "foo.>", False),
    ],
)
def test_subset_is_go_is_subset_match(subject: str, test: str, expected: bool) -> None:
    assert sharing._subset(subject.split("."), test.split(".")) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("foo.*", "foo.bar", True),
        ("foo.*", "bar.*", False),
        ("foo.>", "*.bar.baz", True),
        ("a.*", "a.*.*", False),
    ],
)
def test_collide_is_go_subjects_collide(a: str, b: str, expected: bool) -> None:
    assert sharing._collide(a, b) is expected and sharing._collide(b, a) is expected


def test_request_info_header_is_set_or_replaced() -> None:
    info = b'{"acc":"A"}'
    assert sharing._set_header(None, info) == b"NATS/1.0\r\nNats-Request-Info: " + info + b"\r\n\r\n"
    forged = b'NATS/1.0\r\nX: 1\r\nNats-Request-Info: {"acc":"EVIL"}\r\nY: 2\r\n\r\n'
    replaced = b"NATS/1.0\r\nX: 1\r\nY: 2\r\nNats-Request-Info: " + info + b"\r\n\r\n"
    assert sharing._set_header(forged, info) == replaced
    assert sharing._request_info(sharing._set_header(forged, info)) == {"acc": "A"}
    assert sharing._go_json({"svc": "S", "acc": "A", "rtt": 0}) == b'{"acc":"A","svc":"S"}'


# --- the broker's bookkeeping, in this process ------------------------------------------------------


def small_world(tmp: Path) -> World:
    w = World(tmp)
    for name in ("EXP", "IMP"):
        w.account(name)
    w.export("EXP", "svc.one", SVC)
    w.export("EXP", "svc.many", SVC, response_type="Stream", response_threshold=300 * 1_000_000)
    w.export("EXP", "orders.>", STREAM)
    w.import_("IMP", "EXP", "svc.one", SVC, local_subject="one")
    w.import_("IMP", "EXP", "svc.many", SVC, local_subject="many")
    w.import_("IMP", "EXP", "orders.>", STREAM, local_subject="in.>")
    w.user("alice", "EXP")
    w.user("bob", "IMP")
    w.user("bob2", "IMP")
    return w


@asynccontextmanager
async def running(config: str) -> AsyncIterator[Broker]:
    cfg = BrokerConfig.from_conf(parse_conf(config))
    cfg.host, cfg.port = "127.0.0.1", 0
    b = Broker(cfg)
    await b.start()
    try:
        yield b
    finally:
        await b.close()


async def until(check: Callable[[], object], within: float = 3.0) -> bool:
    """Poll ``check`` (state the broker changes on an event this process does not see, such as a
    TCP close) until it holds or ``within`` passes."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def url_of(b: Broker) -> str:
    return f"nats://127.0.0.1:{b.config.port}"


def test_pending_responses_are_forgotten(tmp_path: Path) -> None:
    """A Singleton's entry goes with its answer; a Stream's when the requester unsubscribes, when
    it disconnects, or when the threshold passes without a response."""
    w = small_world(tmp_path)

    async def scenario() -> None:
        async with running(w.config()) as b, clients(url_of(b), w, "alice", "bob", "bob2") as conns:
            svc, bob, bob2 = conns
            exp, imp = b.accounts[w.key("EXP")], b.accounts[w.key("IMP")]
            assert exp.links is not None and imp.links is not None
            await svc.nc.subscribe("svc.one", cb=answer(lambda m: b"1"))
            await svc.nc.subscribe("svc.many", cb=answer(lambda m: b"part"))
            await synced(svc.nc)

            assert (await bob.nc.request("one", b"", timeout=2)).data == b"1"
            assert exp.links.responses == {} and imp.links.rr == {}

            inbox = bob.nc.new_inbox()
            sub = await bob.nc.subscribe(inbox)
            await bob.nc.publish("many", b"", reply=inbox)
            assert (await sub.next_msg(timeout=2)).data == b"part"
            assert len(exp.links.responses) == 1 and list(imp.links.rr) == [inbox]
            await sub.unsubscribe()
            await synced(bob.nc)
            assert exp.links.responses == {} and imp.links.rr == {}

            await bob2.nc.subscribe("reply.here")
            await bob2.nc.publish("many", b"", reply="reply.here")
            await synced(bob2.nc)
            await asyncio.sleep(0.1)
            assert len(exp.links.responses) == 1
            await bob2.nc.close()
            assert await until(lambda: not exp.links.responses and not imp.links.rr)

            await bob.nc.subscribe("quiet")  # answered once, then nothing more
            await bob.nc.publish("many", b"", reply="quiet")
            await synced(bob.nc)
            await asyncio.sleep(0.1)
            assert len(exp.links.responses) == 1
            assert await until(lambda: not exp.links.responses)  # threshold 300 ms

    asyncio.run(scenario())


def test_shadow_subscriptions_follow_their_subscription(tmp_path: Path) -> None:
    w = small_world(tmp_path)

    async def scenario() -> None:
        async with running(w.config()) as b, clients(url_of(b), w, "sys", "alice", "bob") as (sys, pub, sub):
            exp = b.accounts[w.key("EXP")]
            base = len(exp.router)
            s1 = await sub.nc.subscribe("in.>")
            s2 = await sub.nc.subscribe("in.a")
            await sub.nc.subscribe("elsewhere")
            await synced(sub.nc)
            assert len(exp.router) == base + 2
            await s2.unsubscribe()
            await synced(sub.nc)
            assert len(exp.router) == base + 1

            once = await sub.nc.subscribe("in.once")
            await once.unsubscribe(limit=1)
            await synced(sub.nc)
            assert len(exp.router) == base + 2
            for i in range(3):
                await pub.nc.publish("orders.once", str(i).encode())
            await synced(pub.nc)
            assert [m.data for m in await drain(once)] == [b"0"]
            assert len(exp.router) == base + 1
            assert len(await drain(s1)) == 3

            # a push that drops the import drops the shadows; the next one brings them back
            async def push(name: str) -> None:
                subject = f"$SYS.REQ.ACCOUNT.{w.key(name)}.CLAIMS.UPDATE"
                reply = await sys.nc.request(subject, w.account_jwt(name).encode(), timeout=3)
                assert json.loads(reply.data)["data"]["code"] == 200

            imports = w.claims["IMP"].imports
            w.claims["IMP"].imports = [i for i in imports if i.type == SVC]
            await push("IMP")
            assert len(exp.router) == base
            w.claims["IMP"].imports = imports
            await push("IMP")
            assert len(exp.router) == base + 1
            await pub.nc.publish("orders.x", b"")
            await synced(pub.nc)
            assert [m.subject for m in await drain(s1)] == ["in.x"]

            await sub.nc.close()
            assert await until(lambda: len(exp.router) == base)  # the broker sees the close

    asyncio.run(scenario())


def test_a_pushed_jwt_is_live_at_once_written_off_the_loop_and_answered_after_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file write waits here until the test lets it go: meanwhile other clients are served
    (the event loop is free), the new JWT already applies (a revoked user is cut off), and the
    push is not answered yet. Two pushes are answered in order, and the file holds the last."""
    w = World(tmp_path)
    w.account("APP")
    w.user("victim", "APP")
    w.user("bystander", "APP")
    jwt_dir = tmp_path / "jwt"
    op_jwt = jwt.OperatorClaims(sub=w.op.public_key, name="op", system_account=w.key("SYS")).encode(
        w.op, iat=w.iat
    )
    config = nats_resolver_config(op_jwt, w.account_jwt("SYS"), directory=str(jwt_dir))
    started, release = threading.Event(), threading.Event()
    real_write = system_module.atomic_write

    def slow_write(path: Path, data: bytes) -> Path:
        started.set()
        assert release.wait(10), "the test never released the write"
        return real_write(path, data)

    async def scenario() -> None:
        async with running(config) as b:
            url = url_of(b)
            async with clients(url, w, "sys") as (sys,):
                first = w.account_jwt("APP")
                reply = await sys.nc.request("$SYS.REQ.CLAIMS.UPDATE", first.encode(), timeout=3)
                assert json.loads(reply.data)["data"]["code"] == 200
            async with clients(url, w, "sys", "victim", "bystander") as (sys, victim, bystander):
                monkeypatch.setattr(system_module, "atomic_write", slow_write)
                w.claims["APP"].revoke(_user_key(w, "victim"), w.now)
                second = w.account_jwt("APP")
                w.claims["APP"].description = "third"
                third = w.account_jwt("APP")
                inbox = sys.nc.new_inbox()
                replies = await sys.nc.subscribe(inbox)
                await sys.nc.publish("$SYS.REQ.CLAIMS.UPDATE", second.encode(), reply=inbox)
                await sys.nc.publish("$SYS.REQ.CLAIMS.UPDATE", third.encode(), reply=inbox)
                await sys.nc.flush()
                assert await asyncio.to_thread(started.wait, 5)
                await bystander.nc.flush(timeout=2)  # served while the file is being written
                for _ in range(50):
                    if not victim.nc.is_connected:
                        break
                    await asyncio.sleep(0.05)
                assert not victim.nc.is_connected  # revoked before the write finished
                assert await drain(replies, 0.2) == []  # not answered yet
                release.set()
                got = [json.loads(m.data)["data"]["message"] for m in await drain(replies, 1.0)]
                assert got == ["jwt updated", "jwt updated"]
                assert (jwt_dir / f"{w.key('APP')}.jwt").read_text() == third

    asyncio.run(scenario())


def _user_key(w: World, name: str) -> str:
    from trustkit.creds import parse_creds

    return jwt.decode(parse_creds(Path(w.creds[name]).read_bytes()).jwt, jwt.UserClaims).sub

