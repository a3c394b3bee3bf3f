"""End to end: OIDC tokens and device keys → CalloutService → the real nats-server (config mode).

Nothing is mocked: a real OpenID provider (npm oidc-provider) mints the access tokens, the OIDC
backend discovers it and fetches its JWKS over HTTP, the callout service answers the real
nats-server's authorization requests over NATS, and real nats-py clients connect with
``token=<access token>`` (CONNECT ``auth_token``) or, for devices, ``user=<device id>`` and
``password=<device JWT>``. Every case runs with and without an xkey.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from nats.aio.client import Client as NATS

from callout.backends.device import DeviceBackend, DeviceConfig
from callout.backends.oidc import OidcBackend, OidcConfig
from callout.policy import Policy
from callout.service import AuditRecord, CalloutService, PasswordBackend
from tests.callout.oidc_fixture import OidcProvider
from tests.callout.test_device_backend import b64, mint, pem, write_registry
from tests.natsserver import NatsServer, ServerProcess
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

T = TypeVar("T")

AUTH_TIMEOUT = 1  # seconds nats-server waits for the callout

POLICY = Policy.from_dict(
    {
        "max_lifetime": 600,
        "rules": [
            {
                "id": "ops",
                "groups": ["ops"],
                "pub": {"allow": ["ops.>", "$SYS.REQ.USER.INFO"]},
                "sub": {"allow": ["ops.>", "_INBOX.>"]},
            },
            {
                "id": "chargers",
                "groups": ["chargers"],
                "pub": {"allow": ["telemetry.{{subject}}.>", "$SYS.REQ.USER.INFO"]},
                "sub": {"allow": ["_INBOX.>", "telemetry.>"]},
            },
        ],
    }
)


@dataclass
class World:
    server: ServerProcess
    issuer: KeyPair
    xkey: KeyPair | None


@pytest.fixture(scope="module", params=["plain", "xkey"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    issuer = KeyPair.generate(PrefixByte.ACCOUNT)
    xkey = KeyPair.generate(PrefixByte.CURVE) if request.param == "xkey" else None
    lines = [
        "authorization {",
        f"  timeout: {AUTH_TIMEOUT}",
        '  users: [ { user: "auth", password: "auth-pw" } ]',
        "  auth_callout {",
        f"    issuer: {issuer.public_key}",
        "    auth_users: [ auth ]",
        *([f"    xkey: {xkey.public_key}"] if xkey else []),
        "  }",
        "}",
    ]
    with NatsServer("\n".join(lines), tmp_path_factory.mktemp(f"oidc-e2e-{request.param}")) as server:
        yield World(server, issuer, xkey)


@dataclass
class Running:
    records: list[AuditRecord] = field(default_factory=list)

    def reasons(self) -> list[str]:
        return [r.reason_code for r in self.records]


async def with_service(
    world: World, backend: PasswordBackend, body: Callable[[Running], Awaitable[T]]
) -> T:
    run = Running()
    service = CalloutService(world.issuer, POLICY, backend, xkey=world.xkey, audit=run.records.append)
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        service.run(world.server.url, user="auth", password="auth-pw", ready=ready, stop=stop)
    )
    try:
        await asyncio.wait_for(ready.wait(), 5)
        return await asyncio.wait_for(body(run), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def connect(world: World, errors: list[str], **kw: Any) -> NATS:
    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    return await nats.connect(
        world.server.url,
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        **kw,
    )


async def wait_for(pred: Callable[[], bool], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def allowed_and_denied(nc: NATS, errors: list[str], allowed: str, denied: str) -> dict[str, Any]:
    """Publish to ``allowed`` (must arrive), to ``denied`` (must be a permissions violation), and
    return the server's account of the user ($SYS.REQ.USER.INFO)."""
    sub = await nc.subscribe(allowed)
    await nc.flush()
    await nc.flush()
    await nc.publish(allowed, b"ok")
    assert (await sub.next_msg(timeout=2)).data == b"ok"
    await nc.publish(denied, b"no")
    await nc.flush()
    await wait_for(lambda: bool(errors))
    assert any(f'permissions violation for publish to "{denied}"' in e.lower() for e in errors), errors
    assert nc.is_connected
    info: dict[str, Any] = orjson.loads((await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data)["data"]
    return info


def oidc_backend(provider: OidcProvider) -> OidcBackend:
    return OidcBackend(OidcConfig(issuer=provider.issuer, audience="nats", leeway=0))


# --- OIDC -----------------------------------------------------------------------------------------


def claims_of(token: str) -> dict[str, Any]:
    seg = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))


def test_oidc_token_connects_with_its_groups_permissions(world: World, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice", ttl=120)
    exp = claims_of(token)["exp"]

    async def body(run: Running) -> tuple[dict[str, Any], list[AuditRecord]]:
        errors: list[str] = []
        nc = await connect(world, errors, token=token)
        try:
            return await allowed_and_denied(nc, errors, "ops.deploy", "secret.x"), run.records
        finally:
            await nc.close()

    info, records = asyncio.run(with_service(world, oidc_backend(oidc_provider), body))
    assert info["account"] == "$G"
    assert sorted(info["permissions"]["publish"]["allow"]) == ["$SYS.REQ.USER.INFO", "ops.>"]
    # the NATS user JWT ends when the IdP token ends (120 s), not at the policy's 600 s
    assert 0 < info["expires"] <= (exp - time.time() + 1) * 10**9
    assert info["expires"] <= 120 * 10**9
    [rec] = [r for r in records if r.outcome == "issued"]
    assert (rec.identity, rec.source, rec.rule) == ("alice", "oidc", "ops")
    assert rec.encrypted == (world.xkey is not None)
    assert rec.expires_at == exp


def test_oidc_token_as_password(world: World, oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice")

    async def body(run: Running) -> dict[str, Any]:
        errors: list[str] = []
        nc = await connect(world, errors, user="alice", password=token)
        try:
            return await allowed_and_denied(nc, errors, "ops.x", "other.x")
        finally:
            await nc.close()

    info = asyncio.run(with_service(world, oidc_backend(oidc_provider), body))
    assert info["user"] == "Alice Example"


def test_refused_tokens_get_authorization_violation(world: World, oidc_provider: OidcProvider) -> None:
    expiring = oidc_provider.token("alice", ttl=1)
    good = oidc_provider.token("alice")
    h, p, s = good.split(".")
    tampered = f"{h}.{b64(json.dumps({**claims_of(good), 'groups': ['ops', 'admin']}).encode())}.{s}"
    cases = {
        "token_signature": tampered,
        "token_audience": oidc_provider.token("alice", rs="urn:other"),
        "token_issuer": oidc_provider.token("alice", overrides={"set": {"iss": "https://evil.example"}}),
        "token_algorithm": f"{b64(json.dumps({'alg': 'none'}).encode())}.{p}.",
        "token_malformed": "not-a-jwt",
        "no_matching_rule": oidc_provider.token("carol"),
    }
    # a real expiry: wait until the provider's own exp has passed
    time.sleep(max(0.0, claims_of(expiring)["exp"] - time.time() + 0.05))
    cases["token_expired"] = expiring

    async def body(run: Running) -> tuple[list[tuple[str, list[str], float]], list[AuditRecord]]:
        out = []
        for reason, token in cases.items():
            errors: list[str] = []
            t0 = time.monotonic()
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await connect(world, errors, token=token)
            out.append((reason, errors, time.monotonic() - t0))
        # the service still serves a good token afterwards
        nc = await connect(world, [], token=good)
        await nc.close()
        await wait_for(lambda: len(run.records) >= len(cases) + 1)
        return out, run.records

    results, records = asyncio.run(with_service(world, oidc_backend(oidc_provider), body))
    for reason, errors, elapsed in results:
        assert any("authorization violation" in e.lower() for e in errors), (reason, errors)
        assert elapsed < AUTH_TIMEOUT, reason  # an explicit refusal, not a timeout
    assert [r.reason_code for r in records] == [*cases, "allowed"]
    assert all(r.outcome == "refused" for r in records[:-1])


# --- device keys ----------------------------------------------------------------------------------


def test_device_key_client(world: World, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    registry = tmp_path / "devices.toml"
    write_registry(registry, {"charger-0001": {"public_key": pem(key), "groups": ["chargers"]}})
    backend = DeviceBackend(DeviceConfig(registry=registry, audience="nats-edge"))

    def device_token() -> str:
        now = int(time.time())
        jti = uuid.uuid4().hex
        return mint(key, {"sub": "charger-0001", "iat": now, "exp": now + 60, "jti": jti, "aud": "nats-edge"})

    async def body(run: Running) -> tuple[dict[str, Any], list[str]]:
        errors: list[str] = []
        token = device_token()
        nc = await connect(world, errors, user="charger-0001", password=token)
        try:
            info = await allowed_and_denied(
                nc, errors, "telemetry.charger-0001.power", "telemetry.meter-9.power"
            )
        finally:
            await nc.close()
        # the same device JWT again: a replay
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect(world, [], user="charger-0001", password=token)
        # a key the registry does not know for this device
        stranger = ec.generate_private_key(ec.SECP256R1())
        now = int(time.time())
        forged = mint(stranger, {"iat": now, "exp": now + 60, "jti": uuid.uuid4().hex, "aud": "nats-edge"})
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect(world, [], user="charger-0001", password=forged)
        await wait_for(lambda: len(run.records) >= 3)
        refused = [r.reason_code for r in run.records if r.outcome == "refused"]
        return info, refused

    info, refused = asyncio.run(with_service(world, backend, body))
    assert info["user"] == "charger-0001"
    allow = sorted(info["permissions"]["publish"]["allow"])
    assert allow == ["$SYS.REQ.USER.INFO", "telemetry.charger-0001.>"]
    assert refused == ["token_replayed", "token_signature"]
