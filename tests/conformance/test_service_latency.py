"""Service latency tracking (an export's ``latency: {sampling, results}``), on both servers.

A request that crosses into the exporting account through a service import, and that the
export's sampling picks, is measured: the server publishes an
``io.nats.server.metric.v1.service_latency`` event on the results subject in the exporting
account. Each scenario runs on the real nats-server and on trustkit-broker with the same accounts
(built with the library, ``resolver: MEMORY``) and the same nats-py clients; the events differ in
their values (ids, times, durations) and must agree in everything else: which requests are
measured, the status and description, the keys present at every level and their JSON types,
durations in nanoseconds (total >= service), times in RFC 3339, the requester's details only with
the import's ``share``, the trace headers that picked a request, and the tracked reply subject.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from tests.conformance.test_sharing_routing import World, clients, drain, synced
from tests.servers import SERVER_KINDS
from trustkit import jwt
from trustkit.creds import parse_creds

pytestmark = pytest.mark.real

SVC = jwt.SERVICE
MS = 1_000_000  # nanoseconds
LATENCY_TYPE = "io.nats.server.metric.v1.service_latency"
RFC3339NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")
EVENT_ID = re.compile(r"[0-9A-Za-z]{22}")
#: what nats-server tells about a client when it shares its details (nats-py sets no name)
DETAILED = {
    "start", "host", "id", "acc", "user", "lang", "ver", "rtt", "server", "jwt", "issuer_key", "name_tag",
    "kind", "client_type",
}  # fmt: skip
DELAY = 0.05  # seconds the responder takes


def tracked(sampling: int, results: str) -> jwt.ServiceLatency:
    return jwt.ServiceLatency(sampling=sampling, results=results)


def build(tmp: Path) -> World:
    w = World(tmp)
    w.account("EXP")
    w.account("IMP")
    w.export("EXP", "svc.other", SVC)
    w.export("EXP", "svc.all", SVC, service_latency=tracked(100, "lat.all"))
    w.export("EXP", "svc.share", SVC, service_latency=tracked(100, "lat.share"))
    w.export("EXP", "svc.hdr", SVC, service_latency=tracked(0, "lat.hdr"))  # "headers"
    w.export("EXP", "svc.half", SVC, service_latency=tracked(50, "lat.half"))
    w.export("EXP", "svc.slow", SVC, response_threshold=300 * MS, service_latency=tracked(100, "lat.slow"))
    # what nats-server refuses to track: a streamed service, results on a service export
    w.export("EXP", "svc.stream", SVC, response_type="Stream", service_latency=tracked(100, "lat.stream"))
    w.export("EXP", "svc.zloop", SVC, service_latency=tracked(100, "svc.other"))
    # ... that is exported already: the JWT's exports are sorted by subject and nats-server
    # checks each against those before it, so this one (before svc.other) is tracked
    w.export("EXP", "svc.early", SVC, service_latency=tracked(100, "svc.other"))
    w.export("EXP", "svc.plain", SVC)
    for name in ("all", "hdr", "half", "slow", "stream", "zloop", "early", "plain"):
        w.import_("IMP", "EXP", f"svc.{name}", SVC)
    w.import_("IMP", "EXP", "svc.share", SVC, share=True)
    w.user("alice", "EXP")
    w.user("bob", "IMP")
    return w


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build(tmp_path_factory.mktemp("latency"))


@pytest.fixture(scope="module")
def urls(world: World) -> Iterator[dict[str, str]]:
    """Both servers, on the same accounts."""
    with world.server(SERVER_KINDS[0]) as a, world.server(SERVER_KINDS[1]) as b:
        yield {SERVER_KINDS[0]: a.url, SERVER_KINDS[1]: b.url}


def on_both(urls: dict[str, str], scenario: Callable[[str], Awaitable[Any]]) -> dict[str, Any]:
    """Run ``scenario(url)`` on each server; what it returned, by server kind."""
    return {kind: asyncio.run(scenario(url)) for kind, url in urls.items()}  # type: ignore[arg-type]


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and JSON types, no values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def nanos(text: str) -> int:
    """An RFC 3339 UTC time with up to nanoseconds, as Unix nanoseconds."""
    assert RFC3339NANO.fullmatch(text), text
    whole, _, frac = text[:-1].partition(".")
    secs = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    return secs * 1_000_000_000 + int(frac.ljust(9, "0"))


def check_event(event: dict[str, Any], status: int) -> None:
    """What every latency event has, whatever its status."""
    assert event["type"] == LATENCY_TYPE
    assert EVENT_ID.fullmatch(event["id"]), event["id"]
    assert event["status"] == status
    for key in ("service", "system", "total"):
        assert type(event[key]) is int and event[key] >= 0, (key, event)
    assert event["total"] >= event["service"]
    start, stamp = nanos(event["start"]), nanos(event["timestamp"])
    assert abs(time.time_ns() - stamp) < 60 * 1_000_000_000
    assert start <= stamp


def user_key(world: World, user: str) -> str:
    return parse_creds(Path(world.creds[user]).read_bytes()).user_claims().sub


def user_jwt(world: World, user: str) -> str:
    return parse_creds(Path(world.creds[user]).read_bytes()).jwt or ""


def event_of(msg: Msg) -> dict[str, Any]:
    event = json.loads(msg.data)
    assert isinstance(event, dict)
    return event


async def slow_answer(msg: Msg) -> None:
    await asyncio.sleep(DELAY)
    await msg.respond(b"ok")


# --- a measured request ---------------------------------------------------------------------------


def test_a_sampled_request_reports_its_latency(urls: dict[str, str], world: World) -> None:
    """100% sampling: status 200, the requester's account and RTT (no ``share``), the responder
    in detail, and durations that cover the responder's delay; the responder sees nats-server's
    tracked reply (``_R_.<prefix>.<token>.<server hash>.T``)."""

    async def scenario(url: str) -> tuple[dict[str, Any], str]:
        async with clients(url, world, "alice", "bob") as (svc, client):
            lat = await svc.nc.subscribe("lat.>")
            replies: list[str] = []

            async def handle(msg: Msg) -> None:
                replies.append(msg.reply)
                await slow_answer(msg)

            await svc.nc.subscribe("svc.all", cb=handle)
            await synced(svc.nc)
            assert (await client.nc.request("svc.all", b"x", timeout=3)).data == b"ok"
            events = await drain(lat)
            assert [m.subject for m in events] == ["lat.all"]
            assert events[0].headers is None  # the server's own message: no headers
            return event_of(events[0]), replies[0]

    got = on_both(urls, scenario)
    shapes = {kind: shape(event) for kind, (event, _) in got.items()}
    assert shapes[SERVER_KINDS[0]] == shapes[SERVER_KINDS[1]], shapes
    for kind, (event, reply) in got.items():
        check_event(event, 200)
        tokens = reply.split(".")
        assert len(tokens) == 5 and tokens[0] == "_R_" and tokens[-1] == "T", (kind, reply)
        assert list(event) == [
            "type", "id", "timestamp", "status", "requestor", "responder", "start", "service", "system",
            "total",
        ]  # fmt: skip
        assert set(event["requestor"]) == {"acc", "rtt"}, (kind, event)
        assert event["requestor"]["acc"] == world.key("IMP")
        assert type(event["requestor"]["rtt"]) is int and event["requestor"]["rtt"] > 0
        resp = event["responder"]
        assert set(resp) == DETAILED, (kind, resp)
        assert (resp["acc"], resp["user"], resp["issuer_key"], resp["name_tag"]) == (
            world.key("EXP"),
            user_key(world, "alice"),
            world.key("EXP"),
            "alice",
        )
        assert resp["jwt"] == user_jwt(world, "alice")
        assert (resp["host"], resp["kind"], resp["client_type"]) == ("127.0.0.1", "Client", "nats")
        assert type(resp["id"]) is int and type(resp["rtt"]) is int and resp["rtt"] > 0
        nanos(resp["start"])
        assert event["service"] >= 0.8 * DELAY * 1e9, (kind, event)
        assert event["total"] >= event["service"] + event["requestor"]["rtt"]


def test_share_adds_the_requesters_details(urls: dict[str, str], world: World) -> None:
    async def scenario(url: str) -> dict[str, Any]:
        async with clients(url, world, "alice", "bob") as (svc, client):
            lat = await svc.nc.subscribe("lat.share")
            await svc.nc.subscribe("svc.share", cb=slow_answer)
            await synced(svc.nc)
            await client.nc.request("svc.share", b"x", timeout=3)
            (event,) = await drain(lat)
            return event_of(event)

    got = on_both(urls, scenario)
    assert shape(got[SERVER_KINDS[0]]) == shape(got[SERVER_KINDS[1]])
    for event in got.values():
        check_event(event, 200)
        req = event["requestor"]
        assert set(req) == DETAILED, req
        assert (req["acc"], req["user"], req["name_tag"]) == (world.key("IMP"), user_key(world, "bob"), "bob")
        assert set(event["responder"]) == DETAILED


# --- sampling -------------------------------------------------------------------------------------

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
#: trace headers a request carries -> the ``header`` of its latency event (None: not measured)
HEADER_CASES: list[tuple[dict[str, str], dict[str, list[str]] | None]] = [
    ({}, None),
    ({"Other": "1"}, None),
    (
        {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "tracestate": "k=v", "Other": "1"},
        {"Traceparent": [f"00-{TRACE_ID}-00f067aa0ba902b7-01"], "Tracestate": ["k=v"]},
    ),
    ({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"}, None),
    (
        {"X-B3-Sampled": "1", "X-B3-TraceId": "a1", "X-B3-SpanId": "b1", "X-B3-ParentSpanId": "c1", "O": "1"},
        {"X-B3-Sampled": ["1"], "X-B3-Traceid": ["a1"], "X-B3-Spanid": ["b1"], "X-B3-Parentspanid": ["c1"]},
    ),
    ({"X-B3-Sampled": "0", "X-B3-TraceId": "a2"}, None),
    ({"x-b3-traceid": "a3"}, {"X-B3-Traceid": ["a3"]}),
    ({"b3": "a4-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"}, {"B3": ["a4-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"]}),
    ({"b3": "a5-e457b5a2e4d86bd1-0"}, None),
    ({"b3": "0"}, None),
    (
        {"uber-trace-id": "479fefe9525eddb:5adb976bfc1f95c1:479fefe9525eddb:1", "uberctx-user": "bob"},
        {"Uber-Trace-Id": ["479fefe9525eddb:5adb976bfc1f95c1:479fefe9525eddb:1"], "Uberctx-User": ["bob"]},
    ),
    # an Uber header decides alone, even against a sampled B3 header
    ({"uber-trace-id": "479fefe9525eddb:5adb976bfc1f95c1:479fefe9525eddb:0", "X-B3-Sampled": "1"}, None),
]


def test_headers_sampling_measures_requests_with_a_sampled_trace_header(
    urls: dict[str, str], world: World
) -> None:
    async def scenario(url: str) -> list[dict[str, Any]]:
        async with clients(url, world, "alice", "bob") as (svc, client):
            lat = await svc.nc.subscribe("lat.hdr")
            await svc.nc.subscribe("svc.hdr", cb=slow_answer)
            await synced(svc.nc)
            for headers, _ in HEADER_CASES:
                await client.nc.request("svc.hdr", b"x", timeout=3, headers=headers or None)
            return [event_of(m) for m in await drain(lat, 0.6)]

    expected = [want for _, want in HEADER_CASES if want is not None]
    for kind, events in on_both(urls, scenario).items():
        for event in events:
            check_event(event, 200)
        got = sorted((e.get("header") for e in events), key=json.dumps)
        assert got == sorted(expected, key=json.dumps), kind


def test_percentage_sampling_measures_some_requests(urls: dict[str, str], world: World) -> None:
    """50% sampling: of 60 requests some are measured and some are not (each outcome that fails
    this has a probability below 1e-17)."""
    n = 60

    async def scenario(url: str) -> list[dict[str, Any]]:
        async with clients(url, world, "alice", "bob") as (svc, client):
            lat = await svc.nc.subscribe("lat.half")

            async def answer(msg: Msg) -> None:
                await msg.respond(b"ok")

            await svc.nc.subscribe("svc.half", cb=answer)
            await synced(svc.nc)
            for _ in range(n):
                await client.nc.request("svc.half", b"x", timeout=3)
            return [event_of(m) for m in await drain(lat, 0.6)]

    for kind, events in on_both(urls, scenario).items():
        assert 0 < len(events) < n, (kind, len(events))
        for event in events:
            check_event(event, 200)
            assert "header" not in event


def test_exports_nats_server_does_not_track(urls: dict[str, str], world: World) -> None:
    """A Stream service, an export whose results subject is a service export listed before it,
    and an export without ``latency``: answered, never measured, and their replies are not
    tracked ones. The same results subject on an export listed before that service export is
    tracked."""

    async def scenario(url: str) -> tuple[list[str], list[str], list[str]]:
        async with clients(url, world, "alice", "bob") as (svc, client):
            lat = await svc.nc.subscribe("lat.>")
            loop = await svc.nc.subscribe("svc.other")
            replies: list[str] = []

            async def answer(msg: Msg) -> None:
                replies.append(msg.reply)
                await msg.respond(b"ok")

            names = ("stream", "zloop", "plain")
            for name in (*names, "early"):
                await svc.nc.subscribe(f"svc.{name}", cb=answer)
            await synced(svc.nc)
            for name in names:
                assert (await client.nc.request(f"svc.{name}", b"x", timeout=3)).data == b"ok"
            quiet = [m.subject for m in await drain(lat) + await drain(loop, 0.1)]
            await client.nc.request("svc.early", b"x", timeout=3)
            early = [m.subject for m in await drain(loop)]
            return quiet, early, replies

    for kind, (quiet, early, replies) in on_both(urls, scenario).items():
        assert quiet == [], kind
        assert early == ["svc.other"], kind
        assert [len(r.split(".")) for r in replies] == [3, 3, 3, 5], (kind, replies)


# --- requests that get no response -----------------------------------------------------------------


def test_unanswered_requests_report_why(urls: dict[str, str], world: World) -> None:
    """400 a request without a reply subject, 503 nobody in the exporter took it, 408 the
    requester stopped listening before the response, 504 the export's threshold passed: with the
    requester, without a responder, and zero durations."""

    async def scenario(url: str) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        async with clients(url, world, "alice", "bob") as (svc, client):
            lat = await svc.nc.subscribe("lat.>")
            await synced(svc.nc)
            # 503: nobody subscribed to svc.all in EXP
            with pytest.raises(NoRespondersError):
                await client.nc.request("svc.all", b"x", timeout=2)
            out[503] = event_of(await lat.next_msg(timeout=3))
            # 400: no reply subject
            await client.nc.publish("svc.all", b"x")
            out[400] = event_of(await lat.next_msg(timeout=3))

            async def late(msg: Msg) -> None:
                await asyncio.sleep(0.4)
                await msg.respond(b"late")

            async def never(msg: Msg) -> None:
                pass

            await svc.nc.subscribe("svc.all", cb=late)
            await svc.nc.subscribe("svc.slow", cb=never)
            await synced(svc.nc)
            # 408: the requester unsubscribes its reply subject before the response
            inbox = client.nc.new_inbox()
            sub = await client.nc.subscribe(inbox)
            await client.nc.publish("svc.all", b"x", reply=inbox)
            await client.nc.flush()
            await asyncio.sleep(0.1)
            await sub.unsubscribe()
            out[408] = event_of(await lat.next_msg(timeout=3))
            # 504: no response within the 300 ms threshold
            inbox = client.nc.new_inbox()
            await client.nc.subscribe(inbox)
            await client.nc.publish("svc.slow", b"x", reply=inbox)
            out[504] = event_of(await lat.next_msg(timeout=3))
            assert await drain(lat, 0.6) == []  # the late response to the 408 request is not measured
        return out

    got = on_both(urls, scenario)
    descriptions = {
        400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable", 504: "Service Timeout",
    }  # fmt: skip
    for status, description in descriptions.items():
        shapes = {kind: shape(events[status]) for kind, events in got.items()}
        assert shapes[SERVER_KINDS[0]] == shapes[SERVER_KINDS[1]], (status, shapes)
        for kind, events in got.items():
            event = events[status]
            check_event(event, status)
            assert event["description"] == description, (kind, event)
            assert "responder" not in event
            assert (event["service"], event["system"], event["total"]) == (0, 0, 0)
            assert set(event["requestor"]) == {"acc", "rtt"} and event["requestor"]["acc"] == world.key("IMP")


# --- a pushed JWT ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_pushed_exporter_turns_tracking_on_and_off(tmp_path: Path, kind: str) -> None:
    w = World(tmp_path)
    w.account("EXP")
    w.account("IMP")
    w.export("EXP", "svc.x", SVC)
    w.import_("IMP", "EXP", "svc.x", SVC)
    w.user("alice", "EXP")
    w.user("bob", "IMP")

    async def scenario(url: str) -> None:
        async with clients(url, w, "sys", "alice", "bob") as (sys, svc, client):
            lat = await svc.nc.subscribe("lat.x")
            await svc.nc.subscribe("svc.x", cb=slow_answer)
            await synced(svc.nc)

            async def push() -> None:
                subject = f"$SYS.REQ.ACCOUNT.{w.key('EXP')}.CLAIMS.UPDATE"
                reply = await sys.nc.request(subject, w.account_jwt("EXP").encode(), timeout=3)
                assert json.loads(reply.data)["data"]["code"] == 200, reply.data

            async def measured() -> int:
                await client.nc.request("svc.x", b"x", timeout=3)
                return len(await drain(lat))

            assert await measured() == 0
            w.claims["EXP"].exports[0].service_latency = tracked(100, "lat.x")
            await push()
            assert await measured() == 1
            w.claims["EXP"].exports[0].service_latency = None
            await push()
            assert await measured() == 0

    with w.server(kind) as server:
        asyncio.run(scenario(server.url))
