"""Operator mode on both servers: the callout account's ``authorization`` block.

The world is a real trustkit store (``tests/callout/worlds.py``): the server — the real
nats-server and trustkit-broker, each test runs on both (``tests/servers.py``) — runs the
nats-based resolver config from :mod:`trustkit.serverconfig`, the accounts are pushed, and the
service runs through :func:`callout.runtime.run` from a config file, connected with its creds.
Clients are nats-py connecting with the sentinel's creds plus a user/password (what nats.go
sends; nats-py needs the small :class:`~tests.callout.worlds.SentinelClient` shim for it,
nats.py #999). Where a user lands is read from ``/connz?auth=true`` on both servers; nats-server
also answers ``$SYS.REQ.USER.INFO`` (the broker does not serve it), checked there too.

What nats-server accepts in operator mode (``server/auth_callout.go``): the response signed by
the callout account or one of its signing keys; the user JWT signed by the target account or one
of its signing keys with ``issuer_account`` naming the target, which must be the callout account
or in its ``allowed_accounts``. Every case runs with and without an xkey.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import orjson
import pytest

from callout.audit import AuditRecord, read_index
from callout.config import BACKENDS, CalloutConfig, load_config
from callout.identity import Identity
from callout.policy import Policy
from callout.revoke import revoke_identity
from callout.runtime import Built, run
from callout.service import AccountSigner, CalloutService
from tests.callout.worlds import (
    DICT_KIND,
    OperatorWorld,
    connect_sentinel,
    make_operator_world,
    toml_text,
    write_secret,
)
from tests.natsserver import ServerProcess
from tests.realcomp import free_port
from tests.servers import SERVER_KINDS, make_server
from trustkit.errors import CalloutError
from trustkit.jwt import (
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
    ConnectOptions,
    ServerID,
    UserClaims,
    decode,
)
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

T = TypeVar("T")

USERS = {
    "alice": {"password": "alice-pw", "groups": ["app"]},
    "olga": {"password": "olga-pw", "groups": ["ops"]},
    "ann": {"password": "ann-pw", "groups": ["auth"]},
    "oscar": {"password": "oscar-pw", "groups": ["other"]},
}
POLICY = {
    "max_lifetime": 600,
    "rules": [
        {
            "id": "app",
            "groups": ["app"],
            "account": "APP",
            "pub": {"allow": ["app.>", "$SYS.REQ.USER.INFO"]},
            "sub": {"allow": ["app.>", "_INBOX.>"]},
        },
        {
            "id": "ops",
            "groups": ["ops"],
            "account": "OPS",
            "pub": {"allow": ["ops.>", "$SYS.REQ.USER.INFO"]},
            "sub": {"allow": ["_INBOX.>", "ops.>"]},
        },
        # no account: the user stays in the callout account
        {"id": "auth", "groups": ["auth"], "pub": {"allow": ["$SYS.REQ.USER.INFO"]}, "sub": {"allow": [">"]}},
        {"id": "other", "groups": ["other"], "account": "OTHER", "pub": {"allow": ["x.>"]}},
    ],
}


@dataclass
class Env:
    world: OperatorWorld
    server: ServerProcess
    tmp: Path
    kind: str
    http_port: int

    def config(self, name: str, backend: dict[str, Any] | None = None, **issuer: Any) -> CalloutConfig:
        d = self.tmp / name
        d.mkdir()
        (d / "users.json").write_text(json.dumps(USERS))
        (d / "policy.toml").write_text(toml_text(POLICY))
        doc: dict[str, Any] = {
            "mode": "operator",
            "nats": {"url": self.server.url, "creds_file": str(self.world.service_creds)},
            "issuer": {"account": "AUTH", "home": str(self.world.home), "operator": "demo", **issuer},
            "policy": {"file": "policy.toml"},
            "audit": {"file": "audit.jsonl"},
            "backend": {"dict": {"users_file": "users.json"}, **(backend or {})},
        }
        if self.world.xkey is not None:
            doc["xkey"] = {"seed_file": str(write_secret(d / "x.seed", self.world.xkey.seed))}
        (d / "callout.toml").write_text(toml_text(doc))
        return load_config(d / "callout.toml", {})


def _env(tmp_path_factory: pytest.TempPathFactory, name: str, *, xkey: bool, kind: str) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"operator-{name}")
    world = make_operator_world(tmp, xkey=xkey)
    http_port = free_port()
    with make_server(kind, f"{world.server_config()}\nhttp_port: {http_port}", tmp) as server:
        asyncio.run(world.push_all(server.url))
        yield Env(world, server, tmp, kind, http_port)


@pytest.fixture(
    scope="module",
    params=[(kind, mode) for kind in SERVER_KINDS for mode in ("plain", "xkey")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kind, mode = request.param
    yield from _env(tmp_path_factory, mode, xkey=mode == "xkey", kind=kind)


@pytest.fixture(params=SERVER_KINDS)
def revocation_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A world of its own: revocations change the APP account (the xkey plays no part here)."""
    yield from _env(tmp_path_factory, "revocation", xkey=True, kind=request.param)


@pytest.fixture(autouse=True)
def dict_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "dict", DICT_KIND)


async def serving(cfg: CalloutConfig, body: Callable[[Built], Awaitable[T]]) -> T:
    stop = asyncio.Event()
    ready: asyncio.Future[Built] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(cfg, stop=stop, ready=lambda b, _: ready.set_result(b)))
    try:
        built = await asyncio.wait_for(asyncio.shield(ready), 10)
        return await asyncio.wait_for(body(built), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def user_info(env: Env, nc: Any) -> dict[str, Any] | None:
    """nats-server's own account of the user (``$SYS.REQ.USER.INFO``); None on the broker."""
    if env.kind != "nats-server":
        return None
    doc: dict[str, Any] = orjson.loads((await nc.request("$SYS.REQ.USER.INFO", b"", timeout=2)).data)["data"]
    return doc


async def account_of(env: Env, nc: Any) -> str:
    """The account the server placed ``nc`` in, from its ``/connz?auth=true`` (both servers)."""
    cid = nc._server_info["client_id"]
    async with httpx.AsyncClient() as http:
        doc = (await http.get(f"http://127.0.0.1:{env.http_port}/connz?auth=true&limit=1024")).json()
    [conn] = [c for c in doc["connections"] if c["cid"] == cid]
    return str(conn["account"])


async def wait_for(pred: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not pred() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def test_user_placed_in_a_target_account_by_its_signing_key(env: Env) -> None:
    async def body(built: Built) -> tuple[str, dict[str, Any] | None, list[str]]:
        # the service signs APP's users with APP's signing key, responses with AUTH's signing key
        assert built.service.accounts["APP"].key.public_key == env.world.app_signing_key
        assert built.service.issuer.public_key == env.world.auth_signing_key
        errors: list[str] = []
        nc = await connect_sentinel(env.server.url, env.world.sentinel_creds, "alice", "alice-pw", errors)
        try:
            sub = await nc.subscribe("app.orders")
            await nc.flush()
            await nc.publish("app.orders", b"one")
            assert (await sub.next_msg(timeout=2)).data == b"one"
            await nc.publish("ops.secret", b"no")
            await nc.flush()
            await wait_for(lambda: bool(errors))
            assert nc.is_connected
            return await account_of(env, nc), await user_info(env, nc), errors
        finally:
            await nc.close()

    account, info, errors = asyncio.run(serving(env.config("app"), body))
    assert any('permissions violation for publish to "ops.secret"' in e.lower() for e in errors), errors
    assert account == env.world.app_key
    if info is not None:
        assert info["account"] == env.world.app_key and info["user"] == "alice"
        assert sorted(info["permissions"]["publish"]["allow"]) == sorted(["app.>", "$SYS.REQ.USER.INFO"])


def test_plain_nats_py_logs_in_with_user_and_password_in_the_token(env: Env) -> None:
    """nats.py #999: beside sentinel creds nats-py sends a token but never user/password. With
    ``[backend] token_passwords`` the token ``USER:PASSWORD`` is a password login."""

    async def body(built: Built) -> tuple[str, bool]:
        nc = await nats.connect(
            env.server.url,
            user_credentials=str(env.world.sentinel_creds),
            token="alice:alice-pw",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=3,
        )
        try:
            sub = await nc.subscribe("app.orders")
            await nc.flush()
            await nc.publish("app.orders", b"one")
            assert (await sub.next_msg(timeout=2)).data == b"one"
            account = await account_of(env, nc)
        finally:
            await nc.close()
        refused = False
        try:
            await nats.connect(
                env.server.url,
                user_credentials=str(env.world.sentinel_creds),
                token="alice:wrong",
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=3,
            )
        except nats.errors.Error as exc:
            refused = "authorization violation" in str(exc).lower()
        return account, refused

    account, refused = asyncio.run(serving(env.config("tokenpw", backend={"token_passwords": True}), body))
    assert account == env.world.app_key and refused


def test_user_placed_by_a_target_account_key(env: Env) -> None:
    """OPS has no signing key: its account key signs (no issuer_account)."""

    async def body(built: Built) -> str:
        assert built.service.accounts["OPS"].key.public_key == env.world.ops_key
        nc = await connect_sentinel(env.server.url, env.world.sentinel_creds, "olga", "olga-pw", [])
        try:
            sub = await nc.subscribe("ops.x")
            await nc.flush()
            await nc.publish("ops.x", b"ok")
            assert (await sub.next_msg(timeout=2)).data == b"ok"
            info = await user_info(env, nc)
            assert info is None or info["account"] == env.world.ops_key
            return await account_of(env, nc)
        finally:
            await nc.close()

    assert asyncio.run(serving(env.config("ops"), body)) == env.world.ops_key


def test_user_kept_in_the_callout_account_with_the_account_key_as_issuer(env: Env) -> None:
    """No account in the rule: the user lands in AUTH. Here the issuer seed is AUTH's own key."""
    seed = env.world.ws.key(env.world.auth_key, "account").seed
    path = write_secret(env.tmp / "auth-account.nk", seed)

    async def body(built: Built) -> tuple[str, list[str]]:
        assert built.service.issuer.public_key == env.world.auth_key
        errors: list[str] = []
        nc = await connect_sentinel(env.server.url, env.world.sentinel_creds, "ann", "ann-pw", errors)
        try:
            # the policy's subscribe deny keeps callout-account users away from auth requests
            await nc.subscribe("$SYS.REQ.USER.AUTH")
            await nc.flush()
            await wait_for(lambda: bool(errors))
            info = await user_info(env, nc)
            assert info is None or info["account"] == env.world.auth_key
            return await account_of(env, nc), errors
        finally:
            await nc.close()

    account, errors = asyncio.run(serving(env.config("auth", seed_file=str(path)), body))
    assert account == env.world.auth_key
    assert any("permissions violation for subscription" in e.lower() for e in errors), errors


@pytest.mark.parametrize(
    ("user", "password", "outcome", "reason"),
    [
        ("alice", "wrong", "refused", "invalid_credentials"),
        ("mallory", "x", "refused", "unknown_user"),
        # the service issues, but OTHER is not in AUTH's allowed_accounts: the server refuses it
        ("oscar", "oscar-pw", "issued", "allowed"),
    ],
)
def test_refusals(env: Env, user: str, password: str, outcome: str, reason: str) -> None:
    async def body(built: Built) -> tuple[str, str]:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect_sentinel(env.server.url, env.world.sentinel_creds, user, password, [])
        await wait_for(lambda: bool(built.ring.recent(1)))
        rec = built.ring.recent(1)[0]
        return rec.outcome, rec.reason_code

    assert asyncio.run(serving(env.config(f"refuse-{user}"), body)) == (outcome, reason)


def test_revoke_identity_disconnects_every_live_connection(revocation_env: Env) -> None:
    """Two live connections of alice, one of olga: revoking alice closes both of hers only."""
    env = revocation_env
    cfg = env.config("revoke")

    async def body(built: Built) -> tuple[list[str], list[Any], bool, str]:
        closed: list[str] = []

        def closer(name: str) -> Callable[[], Awaitable[None]]:
            async def cb() -> None:
                closed.append(name)

            return cb

        a1 = await connect_sentinel(
            env.server.url, env.world.sentinel_creds, "alice", "alice-pw", [], closed_cb=closer("a1")
        )
        await connect_sentinel(
            env.server.url, env.world.sentinel_creds, "alice", "alice-pw", [], closed_cb=closer("a2")
        )
        o1 = await connect_sentinel(
            env.server.url, env.world.sentinel_creds, "olga", "olga-pw", [], closed_cb=closer("o1")
        )
        index = cfg.index_file()
        assert index is not None
        await wait_for(lambda: index.exists() and len(read_index(index)) >= 3)
        report = await revoke_identity(cfg, "alice", now=int(time.time()), expected_servers=1)
        await wait_for(lambda: {"a1", "a2"} <= set(closed))
        last = str(a1.last_error)
        still = o1.is_connected
        closed_by_revocation = sorted(closed)
        # revocation is per key: a new login gets a fresh key and is let in again
        again = await connect_sentinel(env.server.url, env.world.sentinel_creds, "alice", "alice-pw", [])
        await again.close()
        await o1.close()
        return closed_by_revocation, [report], still, last

    closed, [report], olga_connected, last_error = asyncio.run(serving(cfg, body))
    assert closed == ["a1", "a2"]
    assert olga_connected
    assert "user authentication revoked" in last_error.lower(), last_error
    assert len(report.keys) == 2 and {k.account for k in report.keys} == {"APP"}
    assert report.accounts == {env.world.app_key: "APP"}
    assert [(r.code, r.account) for r in report.replies] == [(200, env.world.app_key)] and report.ok
    app = env.world.ws.open("demo").account_claims("APP")
    assert {k.user_nkey for k in report.keys} <= set(app.revocations)


# --- the responder's operator-mode rules, with hand-made requests (no server) ----------------------

NOW = 1_800_000_000
SERVER = KeyPair.generate(PrefixByte.SERVER)
CALLOUT = KeyPair.generate(PrefixByte.ACCOUNT)
CALLOUT_SK = KeyPair.generate(PrefixByte.ACCOUNT)
TARGET = KeyPair.generate(PrefixByte.ACCOUNT)
TARGET_SK = KeyPair.generate(PrefixByte.ACCOUNT)
UNIT_POLICY = Policy.from_dict(
    {
        "rules": [
            {"id": "app", "groups": ["app"], "account": "APP", "pub": {"allow": ["app.>"]}},
            {"id": "home", "groups": ["home"], "pub": {"allow": ["h.>"]}},
            {"id": "lost", "groups": ["lost"], "account": "NOWHERE", "pub": {"allow": ["x.>"]}},
        ]
    }
)


class UnitBackend:
    async def authenticate(self, username: str, password: str) -> Identity:
        return Identity(
            subject=username, name=username, groups=(password,), attributes={}, expires_at=None, source="unit"
        )


class UnitTokens:
    async def authenticate_token(self, token: str) -> Identity:
        return Identity(
            subject="tok", name="tok", groups=("app",), attributes={}, expires_at=None, source="t"
        )


def unit_request(user: str = "u", group: str = "app", *, sub: str | None = None, token: str = "") -> bytes:
    claims = AuthorizationRequestClaims(
        sub=sub or CALLOUT.public_key,
        aud=AUTH_REQUEST_AUDIENCE,
        exp=NOW + 2,
        server_id=ServerID(name="s", host="127.0.0.1", id=SERVER.public_key),
        user_nkey=KeyPair.generate(PrefixByte.USER).public_key,
        connect_opts=ConnectOptions(user="" if token else user, password=group, auth_token=token),
    )
    return claims.encode(SERVER, iat=NOW).encode()


def unit_service(issuer: KeyPair = CALLOUT_SK, **kw: Any) -> tuple[CalloutService, list[AuditRecord]]:
    records: list[AuditRecord] = []
    signer = AccountSigner(TARGET.public_key, TARGET_SK, "APP")
    service = CalloutService(
        issuer,
        UNIT_POLICY,
        UnitBackend(),
        mode="operator",
        callout_account=CALLOUT.public_key,
        accounts={"APP": signer, TARGET.public_key: signer},
        now=lambda: NOW,
        audit=records.append,
        **kw,
    )
    return service, records


def test_unit_user_signed_by_the_target_signing_key_with_issuer_account() -> None:
    service, records = unit_service()
    reply = asyncio.run(service.handle(unit_request()))
    assert reply is not None
    resp = decode(reply.decode(), AuthorizationResponseClaims)
    # the response: signed by the callout account's signing key, naming the account
    assert (resp.iss, resp.issuer_account) == (CALLOUT_SK.public_key, CALLOUT.public_key)
    user = decode(resp.jwt, UserClaims)
    assert (user.iss, user.issuer_account, user.aud) == (TARGET_SK.public_key, TARGET.public_key, "")
    assert user.sub == resp.sub
    assert (records[0].account, records[0].account_key) == ("APP", TARGET.public_key)


def test_unit_user_kept_in_the_callout_account() -> None:
    service, records = unit_service(issuer=CALLOUT)
    reply = asyncio.run(service.handle(unit_request(group="home")))
    assert reply is not None
    resp = decode(reply.decode(), AuthorizationResponseClaims)
    assert (resp.iss, resp.issuer_account) == (CALLOUT.public_key, "")  # the account key itself
    user = decode(resp.jwt, UserClaims)
    assert (user.iss, user.issuer_account) == (CALLOUT.public_key, "")
    assert records[0].account_key == CALLOUT.public_key


def test_unit_unknown_target_account_is_refused() -> None:
    service, records = unit_service()
    reply = asyncio.run(service.handle(unit_request(group="lost")))
    assert reply is not None and decode(reply.decode(), AuthorizationResponseClaims).error
    assert (records[0].outcome, records[0].reason_code, records[0].account) == (
        "refused",
        "account_unknown",
        "NOWHERE",
    )


def test_unit_request_for_another_account_is_dropped() -> None:
    service, records = unit_service()
    assert asyncio.run(service.handle(unit_request(sub=TARGET.public_key))) is None
    assert records[0].reason_code == "request_subject"


def test_unit_token_backend_and_labels() -> None:
    service, records = unit_service(
        token_backend=UnitTokens(), backend_label="ldap", token_backend_label="oidc"
    )
    assert asyncio.run(service.handle(unit_request(token="t0k"))) is not None
    assert asyncio.run(service.handle(unit_request())) is not None
    assert [(r.backend, r.identity) for r in records] == [("oidc", "tok"), ("ldap", "u")]
    assert all(r.backend_seconds is not None and r.backend_seconds >= 0 for r in records)


def test_unit_token_passwords() -> None:
    service, records = unit_service(token_backend=UnitTokens(), token_passwords=True)
    assert asyncio.run(service.handle(unit_request(token="bob:app"))) is not None  # USER:PASSWORD
    assert asyncio.run(service.handle(unit_request(token="t0k"))) is not None  # no colon: a token
    assert [(r.backend, r.identity, r.username, r.outcome) for r in records] == [
        ("backend", "bob", "bob", "issued"),
        ("token", "tok", "", "issued"),
    ]
    assert "bob:app" not in repr(records)  # the token (the password in it) is in no record
    plain, records = unit_service(token_backend=UnitTokens())
    assert asyncio.run(plain.handle(unit_request(token="bob:app"))) is not None
    assert records[0].identity == "tok"  # off by default: the whole token goes to the token backend


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"mode": "edge"}, "mode must be"),
        ({"mode": "config", "callout_account": TARGET.public_key}, "callout account key itself"),
        ({"mode": "config", "accounts": {"A": AccountSigner(TARGET.public_key, TARGET_SK)}}, "config mode"),
        ({"mode": "operator", "callout_account": "nope"}, "not an account public key"),
        ({"backend": None}, "no backend"),
        ({"backend": None, "token_backend": UnitTokens(), "token_passwords": True}, "needs a backend"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ],
)
def test_unit_bad_service_settings(kw: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"issuer_keypair": CALLOUT, "policy": UNIT_POLICY, "backend": UnitBackend(), **kw}
    with pytest.raises(CalloutError) as info:
        CalloutService(**args)
    assert info.value.code == "callout_config" and needle in info.value.message


def test_unit_account_signer_checks() -> None:
    with pytest.raises(CalloutError, match="not an account public key"):
        AccountSigner("AXYZ", TARGET_SK)
    with pytest.raises(CalloutError, match="with its seed"):
        AccountSigner(TARGET.public_key, KeyPair.from_public_key(TARGET_SK.public_key))
    assert AccountSigner(TARGET.public_key, TARGET).issuer_account == ""
    assert AccountSigner(TARGET.public_key, TARGET_SK).issuer_account == TARGET.public_key
