"""Config-mode authentication kinds, the same scenarios on nats-server and trustkit-broker.

A token, a single user, nkey users (INFO ``nonce``, CONNECT ``nkey`` + ``sig``), bcrypt
passwords and tokens, the permissions each kind gets (own, the ``authorization`` block's
default, an account's ``default_permissions``, none for a token or the single user), the
combinations nats-server refuses to start with, and what the auth callout sees of nkey and
token clients. Wire bytes are read from a raw socket, so the exact ``-ERR`` texts and close
behaviour are compared; nats-py clients log in with each kind too.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import nats
import pytest
from nats.aio.msg import Msg

from tests.conformance.test_system_services import sorted_perms
from tests.servers import SERVER_KINDS, make_server
from trustkit.jwt import (
    AccountClaims,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
    OperatorClaims,
    Permission,
    UserClaims,
    decode,
)
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real

AUTH_VIOLATION = b"-ERR 'Authorization Violation'"
Build = Callable[[dict[str, Any]], bytes]


def connect_line(**opts: Any) -> bytes:
    body = {"verbose": False, "pedantic": False, "protocol": 1, **opts}
    return b"CONNECT " + json.dumps(body).encode() + b"\r\n"


def session(url: str, build: Build) -> tuple[dict[str, Any], list[bytes]]:
    """Read INFO, send ``build(info)`` and a PING, read until PONG or the close: (INFO, lines)."""
    host, port = url.removeprefix("nats://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        buf = b""
        while b"\r\n" not in buf:
            buf += sock.recv(65536)
        line, buf = buf.split(b"\r\n", 1)
        info = json.loads(line[5:])
        sock.sendall(build(info) + b"PING\r\n")
        deadline = time.monotonic() + 5
        while b"PONG\r\n" not in buf and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    # (nats-server PINGs a new client of its own accord: not part of the answer)
    return info, [x for x in buf.split(b"\r\n") if x and x != b"PING" and not x.startswith(b"INFO ")]


def lines_of(url: str, build: Build) -> list[bytes]:
    return session(url, build)[1]


def login(**opts: Any) -> Build:
    return lambda info: connect_line(**opts)


def nkey_login(key: KeyPair, *, signer: KeyPair | None = None, after: bytes = b"", **extra: Any) -> Build:
    """CONNECT as nkey ``key``, the INFO nonce signed by ``signer`` (default: ``key`` itself)."""

    def build(info: dict[str, Any]) -> bytes:
        sig = sign_nonce(signer or key, info["nonce"])
        return connect_line(nkey=key.public_key, sig=sig, **extra) + after

    return build


def password(user: str, pw: str, after: bytes = b"") -> Build:
    return lambda info: connect_line(user=user, **{"pass": pw}) + after


def denied_pub(subject: str) -> bytes:
    return f"-ERR 'Permissions Violation for Publish to \"{subject}\"'".encode()


def pubs(*subjects: str) -> bytes:
    return b"".join(f"PUB {s} 2\r\nhi\r\n".encode() for s in subjects)


async def round_trip(url: str, subject: str, **kw: Any) -> bytes:
    """A nats-py client logs in with ``kw`` and gets its own message back."""
    nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **kw)
    try:
        sub = await nc.subscribe(subject)
        await nc.publish(subject, b"round trip")
        msg = await sub.next_msg(timeout=5)
        return msg.data
    finally:
        await nc.close()


async def nats_refused(url: str, **kw: Any) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **kw)


# --- a token and a single user --------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_token(kind: str, tmp_path: Path) -> None:
    # the block's permissions are default permissions for its users array: nats-server registers
    # no user for a token, so they apply to nobody (the broker says so in its log)
    config = 'authorization { token: "s3cret", permissions: { publish: "only.this" } }'
    with make_server(kind, config, tmp_path) as srv:
        info, lines = session(srv.url, lambda i: connect_line(auth_token="s3cret") + pubs("any.subject"))
        assert info["auth_required"] is True and "nonce" not in info
        assert lines == [b"PONG"]
        for bad in (
            {"auth_token": "s3cre"},
            {"auth_token": "S3CRET"},
            {"auth_token": ""},
            {},
            {"user": "s3cret", "pass": "s3cret"},
        ):
            assert lines_of(srv.url, login(**bad)) == [AUTH_VIOLATION], bad
        # a CONNECT nats-server cannot decode (a number for a string) is closed without a reply
        assert lines_of(srv.url, login(auth_token=1234)) == []
        assert asyncio.run(round_trip(srv.url, "tok.rt", token="s3cret")) == b"round trip"
        asyncio.run(nats_refused(srv.url, token="wrong"))
        log = srv.log.read_text()
    if kind == "trustkit-broker":
        assert "apply to nobody" in log
        assert "s3cret" not in log


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_single_user(kind: str, tmp_path: Path) -> None:
    config = 'authorization { user: alice, password: "pw", timeout: 2 }'
    with make_server(kind, config, tmp_path) as srv:
        info, lines = session(srv.url, password("alice", "pw", pubs("x.y")))
        assert info["auth_required"] is True and "nonce" not in info
        assert lines == [b"PONG"]
        for bad in (
            {"user": "alice", "pass": "PW"},
            {"user": "alice"},
            {"user": "bob", "pass": "pw"},
            {"pass": "pw"},
            {"auth_token": "pw"},
            {},
        ):
            assert lines_of(srv.url, login(**bad)) == [AUTH_VIOLATION], bad
        assert asyncio.run(round_trip(srv.url, "u.rt", user="alice", password="pw")) == b"round trip"
        asyncio.run(nats_refused(srv.url, user="alice", password="nope"))


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_configs_that_require_no_auth(kind: str, tmp_path: Path) -> None:
    """An empty users array, or a password without a user, requires nothing in nats-server."""
    for i, config in enumerate(("authorization { users: [] }", 'authorization { password: "pw" }')):
        with make_server(kind, config, tmp_path / str(i)) as srv:
            info, lines = session(srv.url, lambda i: connect_line() + pubs("any"))
            assert "auth_required" not in info, config
            assert lines == [b"PONG"]


# --- nkey users -----------------------------------------------------------------------------------


NK_OWN = KeyPair.generate(PrefixByte.USER)  # its own permissions
NK_DEFAULT = KeyPair.generate(PrefixByte.USER)  # the authorization block's default permissions
NK_ACCOUNT = KeyPair.generate(PrefixByte.USER)  # in account A, with A's default_permissions
STRANGER = KeyPair.generate(PrefixByte.USER)  # not configured

NKEY_CONFIG = f"""
accounts {{
  A: {{ default_permissions: {{ publish: "a.>" }}, users: [ {{ nkey: {NK_ACCOUNT.public_key} }} ] }}
}}
authorization {{
  permissions: {{ publish: "default.>" }}
  users: [
    {{ nkey: {NK_OWN.public_key},
       permissions: {{ publish: {{ allow: "own.>" }}, subscribe: {{ deny: "own.secret" }} }} }}
    {{ nkey: {NK_DEFAULT.public_key} }}
    {{ user: pwuser, password: "pw" }}
  ]
}}
"""


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_nkey_users(kind: str, tmp_path: Path) -> None:
    with make_server(kind, NKEY_CONFIG, tmp_path) as srv:
        url = srv.url
        info, lines = session(url, nkey_login(NK_OWN, after=pubs("own.x", "other") + b"SUB own.secret 1\r\n"))
        assert info["auth_required"] is True
        assert isinstance(info["nonce"], str) and len(info["nonce"]) == 15
        assert lines == [
            denied_pub("other"),
            b"-ERR 'Permissions Violation for Subscription to \"own.secret\"'",
            b"PONG",
        ]
        # default permissions: the authorization block's for its users, an account's for its own
        assert lines_of(url, nkey_login(NK_DEFAULT, after=pubs("default.x", "own.x"))) == [
            denied_pub("own.x"),
            b"PONG",
        ]
        assert lines_of(url, nkey_login(NK_ACCOUNT, after=pubs("a.x", "default.x"))) == [
            denied_pub("default.x"),
            b"PONG",
        ]
        pw = {"user": "pwuser", "pass": "pw"}
        assert lines_of(url, lambda i: connect_line(**pw) + pubs("default.x", "a.x")) == [
            denied_pub("a.x"),
            b"PONG",
        ]

        # the signature in standard base64 (padded) is read too, as nats-server falls back to it
        def std_sig(info: dict[str, Any]) -> bytes:
            sig = base64.b64encode(NK_OWN.sign(info["nonce"].encode())).decode()
            return connect_line(nkey=NK_OWN.public_key, sig=sig)

        assert lines_of(url, std_sig) == [b"PONG"]

        refused: dict[str, Build] = {
            "unknown key": nkey_login(STRANGER),
            "signed by another key": nkey_login(NK_OWN, signer=STRANGER),
            "another nonce signed": lambda i: connect_line(
                nkey=NK_OWN.public_key, sig=sign_nonce(NK_OWN, "AAAAAAAAAAAAAAA")
            ),
            "no sig": login(nkey=NK_OWN.public_key),
            "empty sig": login(nkey=NK_OWN.public_key, sig=""),
            "sig not base64": login(nkey=NK_OWN.public_key, sig="!!not base64!!"),
            "sig truncated": lambda i: connect_line(
                nkey=NK_OWN.public_key, sig=sign_nonce(NK_OWN, i["nonce"])[:-4]
            ),
            # an nkey that is not configured is refused even with a good password beside it
            "unknown key with a password": nkey_login(STRANGER, **pw),
            # a configured nkey with a bad signature does not fall back to the password
            "bad sig with a password": nkey_login(NK_OWN, signer=STRANGER, **pw),
            "nothing": login(),
        }
        for name, build in refused.items():
            assert lines_of(url, build) == [AUTH_VIOLATION], name
        assert asyncio.run(round_trip(url, "own.rt", nkeys_seed_str=NK_OWN.seed)) == b"round trip"
        asyncio.run(nats_refused(url, nkeys_seed_str=STRANGER.seed))


# --- bcrypt ---------------------------------------------------------------------------------------

# $2a$ at cost 10 as `nats server passwd` makes them, $2b$ as Python's bcrypt does
BCRYPT_PW = bcrypt.hashpw(b"bcrypt-pw", bcrypt.gensalt(10, prefix=b"2a")).decode()
BCRYPT_ACCOUNT_PW = bcrypt.hashpw(b"acc-pw", bcrypt.gensalt(10)).decode()
BCRYPT_LONG = bcrypt.hashpw(b"L" * 72, bcrypt.gensalt(4, prefix=b"2a")).decode()
BCRYPT_TOKEN = bcrypt.hashpw(b"bcrypt-token", bcrypt.gensalt(10)).decode()

BCRYPT_CONFIG = f"""
accounts {{
  A: {{ users: [ {{ user: acc, password: "{BCRYPT_ACCOUNT_PW}", permissions: {{ publish: "a.>" }} }} ] }}
}}
authorization {{
  users: [
    {{ user: b, password: "{BCRYPT_PW}", permissions: {{ publish: "b.>" }} }}
    {{ user: long, password: "{BCRYPT_LONG}" }}
    {{ user: plain, password: "$2$10$not.a.bcrypt.prefix" }}
  ]
}}
"""


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_bcrypt_passwords(kind: str, tmp_path: Path) -> None:
    with make_server(kind, BCRYPT_CONFIG, tmp_path) as srv:
        url = srv.url
        # what the client sent with its CONNECT waits for the verdict, then runs in order
        ops = b"SUB b.x 1\r\n" + pubs("b.x", "c")
        assert lines_of(url, password("b", "bcrypt-pw", ops)) == [
            b"MSG b.x 1 2",
            b"hi",
            denied_pub("c"),
            b"PONG",
        ]
        assert lines_of(url, password("b", "wrong", ops)) == [AUTH_VIOLATION]  # and nothing after it
        assert lines_of(url, password("b", BCRYPT_PW)) == [AUTH_VIOLATION]  # the hash is no password
        assert lines_of(url, password("b", "")) == [AUTH_VIOLATION]
        assert lines_of(url, password("acc", "acc-pw", pubs("a.x", "b.x"))) == [denied_pub("b.x"), b"PONG"]
        assert lines_of(url, password("acc", "bcrypt-pw")) == [AUTH_VIOLATION]
        # bcrypt reads 72 bytes of a password; Go's bcrypt ignores the rest, so does the broker
        assert lines_of(url, password("long", "L" * 72 + "ignored")) == [b"PONG"]
        assert lines_of(url, password("long", "L" * 71)) == [AUTH_VIOLATION]
        # "$2$" is not one of nats-server's bcrypt prefixes: compared as plain text
        assert lines_of(url, password("plain", "$2$10$not.a.bcrypt.prefix")) == [b"PONG"]
        assert asyncio.run(round_trip(url, "b.rt", user="b", password="bcrypt-pw")) == b"round trip"

        async def many() -> list[bool]:
            # logins whose bcrypt checks overlap each get their own verdict
            async def one(pw: str) -> bool:
                try:
                    await round_trip(url, "b.many", user="b", password=pw)
                except nats.errors.Error:
                    return False
                return True

            return await asyncio.gather(*(one("bcrypt-pw" if i % 2 else f"no-{i}") for i in range(8)))

        assert asyncio.run(many()) == [i % 2 == 1 for i in range(8)]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_bcrypt_token(kind: str, tmp_path: Path) -> None:
    with make_server(kind, f'authorization {{ token: "{BCRYPT_TOKEN}" }}', tmp_path) as srv:
        assert lines_of(srv.url, login(auth_token="bcrypt-token")) == [b"PONG"]
        for bad in ("bcrypt-tokeN", BCRYPT_TOKEN, ""):
            assert lines_of(srv.url, login(auth_token=bad)) == [AUTH_VIOLATION], bad
        assert asyncio.run(round_trip(srv.url, "t.rt", token="bcrypt-token")) == b"round trip"


# --- combinations nats-server refuses ---------------------------------------------------------------

NKEY = KeyPair.generate(PrefixByte.USER).public_key
ACCOUNT_KEY = KeyPair.generate(PrefixByte.ACCOUNT).public_key

REFUSED: dict[str, tuple[str, str]] = {
    "user and token": (
        "authorization { user: a, password: b, token: t }",
        r"Cannot have a user/pass and token",
    ),
    "password and token": ("authorization { password: b, token: t }", r"Cannot have a user/pass and token"),
    "user and users": (
        "authorization { user: a, password: b, users: [ { user: c, password: d } ] }",
        r"Can not have a single user/pass and a users array",
    ),
    "user and an empty users array": (
        "authorization { user: a, users: [] }",
        r"Can not have a single user/pass and a users array",
    ),
    "token and nkey users": (
        f"authorization {{ token: t, users: [ {{ nkey: {NKEY} }} ] }}",
        r"Can not have a token and a users array",
    ),
    # nats-server reads the top-level blocks in random order: either text
    "token and account users": (
        "accounts { A: { users: [ { user: c } ] } }\nauthorization { token: t }",
        r"Can not have a token and (a users array|accounts)",
    ),
    "user and account nkey users": (
        f"authorization {{ user: a, password: b }}\naccounts {{ A: {{ users: [ {{ nkey: {NKEY} }} ] }} }}",
        r"Can not have a single user/pass and (a users array|accounts)",
    ),
    "nkey with a user": (
        f"authorization {{ users: [ {{ nkey: {NKEY}, user: x }} ] }}",
        r"Nkey users do not take usernames or passwords",
    ),
    "nkey with a password": (
        f"authorization {{ users: [ {{ nkey: {NKEY}, password: x }} ] }}",
        r"Nkey users do not take usernames or passwords",
    ),
    "account key as a user nkey": (
        f"authorization {{ users: [ {{ nkey: {ACCOUNT_KEY} }} ] }}",
        r"Not a valid public nkey for a user",
    ),
    "nkey that is no key": (
        "authorization { users: [ { nkey: UABC } ] }",
        r"Not a valid public nkey for a user",
    ),
    "the same nkey twice": (
        f"accounts {{ A: {{ users: [ {{ nkey: {NKEY} }} ] }}, B: {{ users: [ {{ nkey: {NKEY} }} ] }} }}",
        rf'Duplicate nkey "{NKEY}" detected',
    ),
    "token of the wrong type": ("authorization { token: 1234 }", r"must be a string|interface conversion"),
    # no_auth_user must name a user or nkey user of authorization {} or an account
    "no_auth_user beside a single user": (
        "no_auth_user: a\nauthorization { user: a, password: b }",
        r'no_auth_user: "a" present, but users/nkeys are not defined',
    ),
    "no_auth_user beside an empty users array": (
        "no_auth_user: a\nauthorization { users: [] }",
        r'no_auth_user: "a" present, but users/nkeys are not defined',
    ),
    "no_auth_user beside a token": (
        "no_auth_user: a\nauthorization { token: t }",
        r'no_auth_user: "a" present, but users/nkeys are not defined',
    ),
    "no_auth_user not configured": (
        f"no_auth_user: b\naccounts {{ A: {{ users: [ {{ user: a }}, {{ nkey: {NKEY} }} ] }} }}",
        r'no_auth_user: "b" not present as user or nkey in authorization block or account configuration',
    ),
    "no_auth_user of the wrong type": (
        "no_auth_user: 5\nauthorization { users: [ { user: a } ] }",
        r"must be a string|interface conversion",
    ),
    "unknown connection type": (
        "authorization { users: [ { user: a, allowed_connection_types: [ STANDARD, foo, Bar ] } ] }",
        r'invalid connection types \["FOO" "BAR"\]',
    ),
    "connection types of the wrong type": (
        "authorization { users: [ { user: a, clients: 5 } ] }",
        r"error parsing allowed connection types: unsupported type int64",
    ),
    "allow_responses a string": (
        'authorization { users: [ { user: a, permissions: { allow_responses: "always" } } ] }',
        r"error parsing response permissions, expected a boolean or a map",
    ),
    "allow_responses expires a number": (
        "authorization { users: [ { user: a, permissions: { allow_responses: { expires: 5 } } } ] }",
        r"error parsing expires, not a duration string",
    ),
    "allow_responses expires no duration": (
        'authorization { permissions: { allow_responses: { ttl: "soon" } }, users: [ { user: a } ] }',
        r'error parsing expires: time: invalid duration "soon"',
    ),
    "allow_responses max a string": (
        'accounts { A: { default_permissions: { allow_responses: { max: "1" } } } }',
        r"must be an integer|interface conversion",
    ),
    "allow_responses unknown key": (
        "authorization { users: [ { user: a, permissions: { allow_responses: { maximum: 1 } } } ] }",
        r'Unknown field "maximum" parsing permissions',
    ),
    "permissions unknown key": (
        "authorization { users: [ { user: a, permissions: { responses: true } } ] }",
        r'Unknown field "responses" parsing permissions',
    ),
    "user unknown key": (
        "authorization { users: [ { user: a, proxy: true } ] }",
        r'unknown field "proxy"',
    ),
    "proxy_required of the wrong type": (
        "authorization { users: [ { user: a, proxy_required: 1 } ] }",
        r"must be true or false|interface conversion",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_config_combinations_refused(kind: str, case: str, tmp_path: Path) -> None:
    config, text = REFUSED[case]
    assert re.search(text, refusal(kind, config, tmp_path))


def refusal(kind: str, config: str, workdir: Path) -> str:
    """What the server says when it refuses to start with ``config``."""
    server = make_server(kind, config, workdir)
    try:
        with pytest.raises(RuntimeError, match="exited") as info:
            server.start()
    finally:
        server.stop()  # (if it started after all)
    return str(info.value)


def operator_config() -> str:
    """Operator mode (``resolver: MEMORY``) with a system account and no users."""
    op, sys_acct = KeyPair.generate(PrefixByte.OPERATOR), KeyPair.generate(PrefixByte.ACCOUNT)
    now = int(time.time())
    op_claims = OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key)
    op_jwt = op_claims.encode(op, iat=now)
    sys_jwt = AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now)
    return mem_resolver_config(op_jwt, [sys_jwt])


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_operator_mode(kind: str, tmp_path: Path) -> None:
    """Next to ``operator``, nkey users are refused; a token is accepted and means nothing:
    clients still need a user JWT."""
    base = operator_config()
    users = f"{base}\nauthorization {{ users: [ {{ nkey: {NKEY} }} ] }}"
    assert "operators do not allow users to be configured directly" in refusal(kind, users, tmp_path / "n")
    no_auth = f"{base}\nno_auth_user: a"
    assert "no_auth_user not compatible with Trusted Operator" in refusal(kind, no_auth, tmp_path / "a")
    with make_server(kind, f'{base}\nauthorization {{ token: "s3cret" }}', tmp_path / "t") as srv:
        info, lines = session(srv.url, login(auth_token="s3cret"))
        assert "nonce" in info
        assert lines == [AUTH_VIOLATION]
        log = srv.log.read_text()
    if kind == "trustkit-broker":
        assert "ignored in operator mode" in log


# --- what the auth callout sees of nkey and token clients ------------------------------------------

ISSUER = KeyPair.generate(PrefixByte.ACCOUNT)


@asynccontextmanager
async def callout_responder(
    url: str, asked: list[AuthorizationRequestClaims], **login: Any
) -> AsyncIterator[None]:
    """The callout service (logged in with ``login``): admits everybody it is asked about with
    publish ``ok.>`` and records the requests."""
    nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **login)

    async def on_request(msg: Msg) -> None:
        req = decode(msg.data.decode(), AuthorizationRequestClaims)
        asked.append(req)
        now = int(time.time())
        user = UserClaims(
            sub=req.user_nkey, name="called-out", aud="$G", pub=Permission(allow=["ok.>"])
        ).encode(ISSUER, iat=now)
        resp = AuthorizationResponseClaims(sub=req.user_nkey, aud=req.server_id.id, jwt=user)
        await msg.respond(resp.encode(ISSUER, iat=now).encode())

    await nc.subscribe("$SYS.REQ.USER.AUTH", cb=on_request)
    await nc.flush()
    try:
        yield
    finally:
        await nc.close()


SVC = KeyPair.generate(PrefixByte.USER)  # the callout service: an nkey user in auth_users
CLIENT = KeyPair.generate(PrefixByte.USER)  # an nkey user
LISTED = KeyPair.generate(PrefixByte.USER)  # in auth_users, but no configured user


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_callout_with_nkey_users(kind: str, tmp_path: Path) -> None:
    """The raw user of an nkey client is its key, of a token client ``[REDACTED]``. An
    ``auth_users`` entry exempts a client from the callout only if it names a configured user
    (nats-server 2.15.1): the service's nkey does; an unconfigured key or ``[REDACTED]`` does
    not. A configured nkey with a bad signature is still called out (the request carries the
    nonce and the sig for the service to judge), unless it is an exempt auth user: refused
    without a request."""
    config = f"""
authorization {{
  timeout: 2
  users: [
    {{ nkey: {SVC.public_key} }}
    {{ nkey: {CLIENT.public_key}, permissions: {{ publish: "never" }} }}
  ]
  auth_callout {{
    issuer: {ISSUER.public_key}
    auth_users: [ {SVC.public_key}, {LISTED.public_key}, "[REDACTED]" ]
  }}
}}
"""

    async def main(url: str) -> None:
        asked: list[AuthorizationRequestClaims] = []
        async with callout_responder(url, asked, nkeys_seed_str=SVC.seed):
            infos: list[dict[str, Any]] = []

            def good(info: dict[str, Any]) -> bytes:
                infos.append(info)
                return nkey_login(CLIENT, after=pubs("ok.1", "never"))(info)

            lines = await asyncio.to_thread(lines_of, url, good)
            # the callout's user JWT decides the permissions, not the nkey user's
            assert lines == [denied_pub("never"), b"PONG"]
            assert len(asked) == 1
            req = asked[0]
            assert req.client_info.user == CLIENT.public_key
            assert req.connect_opts.nkey == CLIENT.public_key
            assert req.client_info.nonce == infos[0]["nonce"]
            assert req.connect_opts.sig == sign_nonce(CLIENT, infos[0]["nonce"])

            forged = await asyncio.to_thread(lines_of, url, nkey_login(CLIENT, signer=STRANGER))
            assert forged == [b"PONG"]
            listed = await asyncio.to_thread(lines_of, url, nkey_login(LISTED))
            assert listed == [b"PONG"]
            token = await asyncio.to_thread(lines_of, url, login(auth_token="any"))
            assert token == [b"PONG"]
            assert [r.client_info.user for r in asked] == [
                CLIENT.public_key,
                CLIENT.public_key,
                LISTED.public_key,
                "[REDACTED]",
            ]
            assert asked[-1].connect_opts.auth_token == "any"

            svc_forged = await asyncio.to_thread(lines_of, url, nkey_login(SVC, signer=STRANGER))
            assert svc_forged == [AUTH_VIOLATION] and len(asked) == 4

    with make_server(kind, config, tmp_path) as srv:
        asyncio.run(main(srv.url))


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_callout_with_a_token(kind: str, tmp_path: Path) -> None:
    """With a token, no configured user can be exempt: every client, the right token included,
    is called out (here nobody answers, so each is refused once ``timeout`` has passed)."""
    config = f"""
authorization {{
  timeout: 1
  token: "s3cret"
  auth_callout {{ issuer: {ISSUER.public_key}, auth_users: [ "[REDACTED]" ] }}
}}
"""
    with make_server(kind, config, tmp_path) as srv:
        for opts in ({"auth_token": "s3cret"}, {"auth_token": "wrong"}):
            t0 = time.monotonic()
            assert lines_of(srv.url, login(**opts)) == [AUTH_VIOLATION]
            assert time.monotonic() - t0 > 0.8, opts  # waited for the callout


# --- no_auth_user ---------------------------------------------------------------------------------

NA_ACCOUNT_KEY = KeyPair.generate(PrefixByte.USER)  # an nkey user of account A
NA_G_KEY = KeyPair.generate(PrefixByte.USER)  # an nkey user of $G
NA_HASH = bcrypt.hashpw(b"na-pw", bcrypt.gensalt(4, prefix=b"2a")).decode()
USER_INFO = "$SYS.REQ.USER.INFO"


def no_auth_config(who: str) -> str:
    return f"""
no_auth_user: "{who}"
accounts {{
  A: {{ users: [
    {{ nkey: {NA_ACCOUNT_KEY.public_key}, permissions: {{ publish: [ "a.>", "{USER_INFO}" ] }} }}
  ] }}
}}
authorization {{
  users: [
    {{ user: plain, password: ppw, permissions: {{ publish: [ "plain.>", "{USER_INFO}" ] }} }}
    {{ user: hashed, password: "{NA_HASH}" }}
    {{ nkey: {NA_G_KEY.public_key} }}
  ]
}}
"""


async def who_am_i(url: str, **kw: Any) -> dict[str, Any]:
    """A nats-py client logs in with ``kw`` and asks ``$SYS.REQ.USER.INFO`` who it is."""
    nc = await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, **kw)
    try:
        msg = await nc.request(USER_INFO, b"", timeout=5)
        data: dict[str, Any] = json.loads(msg.data)["data"]
        return data
    finally:
        await nc.close()


#: CONNECTs that carry no credentials (nats-server: no user, password, token or nkey)
NO_CREDENTIALS: dict[str, dict[str, Any]] = {
    "nothing": {},
    "empty strings": {"user": "", "pass": "", "auth_token": "", "nkey": ""},
    "a signature only": {"sig": "AAAA"},
    "a jwt only": {"jwt": "eyJ.x.y"},
}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_no_auth_user(kind: str, tmp_path: Path) -> None:
    """A client that sends no credentials is the ``no_auth_user``, with its permissions and
    account; INFO then says no auth is required, and credentials that are sent are judged as
    ever (a wrong password is not the no_auth_user)."""
    with make_server(kind, no_auth_config("plain"), tmp_path) as srv:
        url = srv.url
        info, lines = session(url, lambda i: connect_line() + pubs("plain.x", "a.x"))
        assert "auth_required" not in info and "nonce" in info
        assert lines == [denied_pub("a.x"), b"PONG"]
        for name, opts in NO_CREDENTIALS.items():
            assert lines_of(url, lambda i, o=opts: connect_line(**o) + pubs("plain.x", "a.x")) == [
                denied_pub("a.x"),
                b"PONG",
            ], name
        refused: dict[str, Build] = {
            "a password only": login(**{"pass": "ppw"}),
            "the user, a wrong password": password("plain", "wrong"),
            "the user, no password": login(user="plain"),
            "a token": login(auth_token="ppw"),
            "a configured nkey without a signature": login(nkey=NA_G_KEY.public_key),
            "an unknown nkey": nkey_login(STRANGER),
        }
        for name, build in refused.items():
            assert lines_of(url, build) == [AUTH_VIOLATION], name
        # everybody else still logs in as themselves
        assert lines_of(url, password("hashed", "na-pw", pubs("plain.x"))) == [b"PONG"]
        assert lines_of(url, nkey_login(NA_ACCOUNT_KEY, after=pubs("a.x", "plain.x"))) == [
            denied_pub("plain.x"),
            b"PONG",
        ]
        me = asyncio.run(who_am_i(url))
        assert (me["user"], me["account"]) == ("plain", "$G")
        # (nats-server lists them in its sublist's order, which varies: compared as sets)
        expected = {"publish": {"allow": ["plain.>", USER_INFO]}, "subscribe": {}}
        assert sorted_perms(me["permissions"]) == sorted_perms(expected)
        # INFO says nothing is required, but credentials a client has are sent and judged
        assert asyncio.run(who_am_i(url, user="hashed", password="na-pw"))["user"] == "hashed"
        asyncio.run(nats_refused(url, user="hashed", password="wrong"))


def without_connect(url: str, data: bytes) -> list[bytes]:
    """What the server says to ``data`` and a PING sent without a CONNECT first, until the
    second PONG or the close (a later CONNECT's PONG included)."""
    host, port = url.removeprefix("nats://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        buf = b""
        while b"\r\n" not in buf:
            buf += sock.recv(65536)
        buf = buf.split(b"\r\n", 1)[1]
        sock.sendall(data + b"PING\r\n")
        deadline = time.monotonic() + 5
        while buf.count(b"PONG\r\n") < data.count(b"PING\r\n") + 1 and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return [x for x in buf.split(b"\r\n") if x and x != b"PING" and not x.startswith(b"INFO ")]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_no_auth_user_without_connect(kind: str, tmp_path: Path) -> None:
    """With a user/password ``no_auth_user``, nats-server's parser lets a client start with any
    other operation ("telnet demos"): it is judged as that user then, without a ``+OK`` for the
    CONNECT it never sent; a CONNECT later is a new login, whose subscriptions start afresh.
    An nkey or bcrypt ``no_auth_user`` admits nobody this way."""
    with make_server(kind, no_auth_config("plain"), tmp_path / "plain") as srv:
        url = srv.url
        assert without_connect(url, pubs("plain.x", "a.x")) == [b"+OK", denied_pub("a.x"), b"PONG"]
        assert without_connect(url, b"") == [b"PONG"]
        assert without_connect(url, b"ping\r\n") == [b"PONG", b"PONG"]
        assert without_connect(url, b"SUB plain.y 1\r\n" + pubs("plain.y")) == [
            b"+OK",
            b"+OK",
            b"MSG plain.y 1 2",
            b"hi",
            b"PONG",
        ]
        other = connect_line(user="hashed", **{"pass": "na-pw"}) + pubs("a.x")
        assert without_connect(url, b"PING\r\n" + other) == [b"PONG", b"PONG"]
        bad = connect_line(user="hashed", **{"pass": "bad"})
        assert without_connect(url, b"PING\r\n" + bad) == [b"PONG", AUTH_VIOLATION]
        again = b"SUB plain.y 1\r\n" + connect_line(verbose=False) + pubs("plain.y")
        assert without_connect(url, again) == [b"+OK", b"PONG"]
        for bad in (b"CX\r\n", b"X\r\n", b"PU"):
            assert without_connect(url, bad) == [b"-ERR 'Unknown Protocol Operation'"], bad
    for who in ("hashed", NA_ACCOUNT_KEY.public_key):
        with make_server(kind, no_auth_config(who), tmp_path / who[:6]) as srv:
            # judged before the operation is read: a bad one is an Authorization Violation too
            for data in (pubs("plain.x"), b"", b"X\r\n"):
                assert without_connect(srv.url, data) == [AUTH_VIOLATION], who


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_no_auth_nkey_user(kind: str, tmp_path: Path) -> None:
    """An nkey user as ``no_auth_user`` needs no signature, even when the client names its key."""
    with make_server(kind, no_auth_config(NA_ACCOUNT_KEY.public_key), tmp_path) as srv:
        url = srv.url
        for name, opts in {
            **NO_CREDENTIALS,
            "its key, no signature": {"nkey": NA_ACCOUNT_KEY.public_key},
            "its key, a bad signature": {"nkey": NA_ACCOUNT_KEY.public_key, "sig": "AAAA"},
        }.items():
            assert lines_of(url, lambda i, o=opts: connect_line(**o) + pubs("a.x", "plain.x")) == [
                denied_pub("plain.x"),
                b"PONG",
            ], name
        for name, build in {
            "another configured key, no signature": login(nkey=NA_G_KEY.public_key),
            "another configured key, forged": nkey_login(NA_G_KEY, signer=NA_ACCOUNT_KEY),
            "an unknown key": login(nkey=STRANGER.public_key),
            "a wrong password": password("plain", "x"),
        }.items():
            assert lines_of(url, build) == [AUTH_VIOLATION], name
        assert lines_of(url, password("plain", "ppw", pubs("plain.x"))) == [b"PONG"]
        me = asyncio.run(who_am_i(url))
        assert (me["user"], me["account"]) == (NA_ACCOUNT_KEY.public_key, "A")


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_no_auth_user_with_a_bcrypt_password(kind: str, tmp_path: Path) -> None:
    """nats-server compares the no_auth_user's configured password with itself: a bcrypt hash
    is no password for itself, so such a no_auth_user admits nobody (the user itself still can)."""
    with make_server(kind, no_auth_config("hashed"), tmp_path) as srv:
        for name, opts in NO_CREDENTIALS.items():
            assert lines_of(srv.url, login(**opts)) == [AUTH_VIOLATION], name
        assert lines_of(srv.url, password("hashed", "na-pw")) == [b"PONG"]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_no_auth_user_and_the_callout(kind: str, tmp_path: Path) -> None:
    """A no_auth_user that is not an ``auth_users`` entry is called out like anybody: the
    request carries its name and configured password (nats-server writes them into the
    client's CONNECT); one that is an entry is not called out."""
    config = f"""
no_auth_user: plain
authorization {{
  timeout: 2
  users: [
    {{ user: svc, password: s }}
    {{ user: plain, password: ppw, permissions: {{ publish: "never" }} }}
  ]
  auth_callout {{ issuer: {ISSUER.public_key}, auth_users: [ svc ] }}
}}
"""

    async def main(url: str) -> None:
        asked: list[AuthorizationRequestClaims] = []
        async with callout_responder(url, asked, user="svc", password="s"):
            lines = await asyncio.to_thread(lines_of, url, lambda i: connect_line() + pubs("ok.1", "never"))
            assert lines == [denied_pub("never"), b"PONG"]  # the callout's permissions
            assert len(asked) == 1
            req = asked[0]
            assert req.client_info.user == "plain"
            assert (req.connect_opts.user, req.connect_opts.password) == ("plain", "ppw")
            # without a CONNECT: called out as well, then the operations sent meanwhile
            lines = await asyncio.to_thread(without_connect, url, pubs("ok.2", "never"))
            assert lines == [b"+OK", denied_pub("never"), b"PONG"]
            assert len(asked) == 2 and asked[1].connect_opts.user == "plain"

    with make_server(kind, config, tmp_path) as srv:
        asyncio.run(main(srv.url))


# --- allowed_connection_types and proxy_required -----------------------------------------------------

CT_WEB = KeyPair.generate(PrefixByte.USER)
CT_STD = KeyPair.generate(PrefixByte.USER)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_allowed_connection_types(kind: str, tmp_path: Path) -> None:
    """A user whose ``allowed_connection_types`` (aliases ``connection_types``, ``clients``;
    any case; a string or an array) leave out STANDARD is refused, even with good credentials;
    an empty list allows every type."""
    config = f"""
no_auth_user: web
authorization {{
  users: [
    {{ user: web, password: w, allowed_connection_types: [ "WEBSOCKET", "mqtt" ] }}
    {{ user: others, password: w, allowed_connection_types: [ IN_PROCESS, LEAFNODE, LEAFNODE_WS, MQTT_WS ] }}
    {{ user: both, password: w, connection_types: [ websocket, standard ] }}
    {{ user: any, password: w, allowed_connection_types: [] }}
    {{ user: one, password: w, clients: "Standard" }}
    {{ nkey: {CT_WEB.public_key}, allowed_connection_types: [ WEBSOCKET ] }}
    {{ nkey: {CT_STD.public_key}, allowed_connection_types: [ STANDARD ] }}
  ]
}}
"""
    with make_server(kind, config, tmp_path) as srv:
        url = srv.url
        for name in ("both", "any", "one"):
            assert lines_of(url, password(name, "w")) == [b"PONG"], name
        assert lines_of(url, nkey_login(CT_STD)) == [b"PONG"]
        for name, build in {
            "web": password("web", "w"),
            "others": password("others", "w"),
            "websocket nkey": nkey_login(CT_WEB),
            "the no_auth_user (web)": login(),
        }.items():
            assert lines_of(url, build) == [AUTH_VIOLATION], name


CT_PROXY = KeyPair.generate(PrefixByte.USER)

PROXY_CONFIGS = {
    "users": f"""authorization {{ users: [
      {{ user: prox, password: w, proxy_required: true }}
      {{ user: free, password: w, proxy_required: false }}
      {{ nkey: {CT_PROXY.public_key}, proxy_required: true }}
    ] }}""",
    "single user": "authorization { user: prox, password: w, proxy_required: true }",
    "token": "authorization { token: w, proxy_required: true }",
}


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_proxy_required(kind: str, tmp_path: Path) -> None:
    """``proxy_required`` users (and, in ``authorization {}``, the token or single user) may only
    come through a trusted proxy; neither server here has one, so they are refused. An
    ``authorization { proxy_required }`` beside a users list concerns nobody."""
    for name, config in PROXY_CONFIGS.items():
        with make_server(kind, config, tmp_path / name.replace(" ", "_")) as srv:
            for build in (password("prox", "w"), login(auth_token="w")):
                assert lines_of(srv.url, build) == [AUTH_VIOLATION], name
            if name == "users":
                assert lines_of(srv.url, password("free", "w")) == [b"PONG"]
                assert lines_of(srv.url, nkey_login(CT_PROXY)) == [AUTH_VIOLATION]
    config = "authorization { proxy_required: true, users: [ { user: u, password: w } ] }"
    with make_server(kind, config, tmp_path / "block") as srv:
        assert lines_of(srv.url, password("u", "w")) == [b"PONG"]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_proxy_required_with_the_callout(kind: str, tmp_path: Path) -> None:
    """nats-server asks the callout about a ``proxy_required`` client and then refuses it
    whatever the answer; the broker refuses that config instead (docs/broker.md)."""
    config = f"""authorization {{
      users: [ {{ user: svc, password: s }}, {{ user: prox, password: w, proxy_required: true }} ]
      auth_callout {{ issuer: {ISSUER.public_key}, auth_users: [ svc ] }}
    }}"""
    if kind == "trustkit-broker":
        assert "proxy_required together with auth_callout is not supported" in refusal(kind, config, tmp_path)
        return
    with make_server(kind, config, tmp_path) as srv:
        assert lines_of(srv.url, password("svc", "s")) == [b"PONG"]


# --- allow_responses ------------------------------------------------------------------------------

RESPONSES_CONFIG = """
authorization {
  # the block's default permissions, for its users without their own
  permissions: { subscribe: "svc.>", allow_responses: true }
  users: [
    { user: asker, password: a, permissions: { subscribe: "_R.>" } }
    { user: dflt, password: r }
    { user: two, password: r,
      permissions: { import: "x.>", export: "svc.>", publish_allow_responses: { max: 2, expires: "1s" } } }
    { user: deny, password: r,
      permissions: { publish: { deny: "no.>" }, allow_responses: { max_msgs: -1, ttl: "-1s" } } }
    { user: never, password: r, permissions: { publish: "x.>", allow_responses: false } }
  ]
}
"""


class Raw:
    """A raw client socket kept open across steps (INFO read, ``build(info)`` sent)."""

    def __init__(self, url: str, build: Build) -> None:
        host, port = url.removeprefix("nats://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.buf = b""
        info = json.loads(self.line()[5:])
        self.sock.sendall(build(info))

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until(self, last: bytes) -> list[bytes]:
        """The lines up to ``last`` (included), without the server's PINGs and INFOs."""
        out: list[bytes] = []
        while not out or out[-1] != last:
            line = self.line()
            if line != b"PING" and not line.startswith(b"INFO "):
                out.append(line)
        return out

    def ask(self, data: bytes) -> list[bytes]:
        self.sock.sendall(data + b"PING\r\n")
        return self.until(b"PONG")

    def close(self) -> None:
        self.sock.close()


def replies(url: str, responder: str, answers: list[bytes], *, wait: float = 0.0) -> tuple[list[bytes], int]:
    """``responder`` is delivered a request on ``svc.a`` (reply ``_R.1``) from ``asker``, waits
    ``wait`` seconds, then sends ``answers``: what it was told, and how many replies came back."""
    r = Raw(url, password(responder, "r"))
    q = Raw(url, password("asker", "a"))
    try:
        assert r.ask(b"SUB svc.> 1\r\n") == [b"PONG"]
        assert q.ask(b"SUB _R.> 1\r\nPUB svc.a _R.1 2\r\nhi\r\n") == [b"PONG"]
        assert r.until(b"hi") == [b"MSG svc.a 1 _R.1 2", b"hi"]
        time.sleep(wait)
        told = r.ask(b"".join(answers))
        got = q.ask(b"")
        return told, got.count(b"MSG _R.1 1 2")
    finally:
        r.close()
        q.close()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_allow_responses(kind: str, tmp_path: Path) -> None:
    """``allow_responses`` (alias ``publish_allow_responses``): ``true`` is one reply within two
    minutes, ``{ max, expires }`` (aliases ``max_msgs``, ``ttl``) more or longer, negative
    values no limit; without a publish allow list, nothing but replies may be published;
    ``false`` is no response permission. ``import``/``export`` are publish/subscribe."""
    reply, other = pubs("_R.1"), pubs("other")
    with make_server(kind, RESPONSES_CONFIG, tmp_path) as srv:
        url = srv.url
        # the block's default: one reply, nothing else (subscribe svc.> allowed the request)
        assert replies(url, "dflt", [reply, reply, other]) == (
            [denied_pub("_R.1"), denied_pub("other"), b"PONG"],
            1,
        )
        assert replies(url, "two", [reply, pubs("x.1"), reply, reply]) == ([denied_pub("_R.1"), b"PONG"], 2)
        assert replies(url, "two", [reply], wait=1.3) == ([denied_pub("_R.1"), b"PONG"], 0)  # expired
        # a publish deny without an allow list: the blanket allow is off too
        assert replies(url, "deny", [reply, reply, reply, pubs("no.1", "free")]) == (
            [denied_pub("no.1"), denied_pub("free"), b"PONG"],
            3,
        )
        assert replies(url, "never", [reply, pubs("x.1")]) == ([denied_pub("_R.1"), b"PONG"], 0)

        async def request() -> bytes:
            responder = await nats.connect(url, user="dflt", password="r", allow_reconnect=False)
            # the asker's inboxes where it may subscribe
            asker = await nats.connect(
                url, user="asker", password="a", inbox_prefix="_R", allow_reconnect=False
            )
            try:

                async def answer(msg: Msg) -> None:
                    await msg.respond(b"answer")

                await responder.subscribe("svc.rt", cb=answer)
                await responder.flush()
                # nats-server 2.15.1 may still miss another client's publish for a few ms after the
                # PONG (seen once in CI as no responders; see test_system_services_more.SUB_SETTLE)
                await asyncio.sleep(0.1)
                msg = await asker.request("svc.rt", b"q", timeout=5)
                return msg.data
            finally:
                await asker.close()
                await responder.close()

        assert asyncio.run(request()) == b"answer"


# --- the documented example -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_the_documented_config(kind: str, tmp_path: Path) -> None:
    """docs/broker.md's config-mode example, with real keys and a real hash, runs on both."""
    from tests.realcomp import ROOT

    doc = (ROOT / "docs" / "broker.md").read_text()
    section = doc[doc.index("## Config-mode authentication") :]
    start = section.index("```\n") + 4
    block = section[start : section.index("```\n", start)]
    in_a, own = KeyPair.generate(PrefixByte.USER), KeyPair.generate(PrefixByte.USER)
    text = block.replace("U…A", in_a.public_key).replace("U…", own.public_key)
    text = text.replace("$2a$11$…", bcrypt.hashpw(b"a-pw", bcrypt.gensalt(4, prefix=b"2a")).decode())
    text = re.sub(r"#[^\n]*", "", text)
    with make_server(kind, text, tmp_path) as srv:
        url = srv.url
        assert lines_of(url, nkey_login(in_a, after=pubs("a.1", "default.1"))) == [
            denied_pub("default.1"),
            b"PONG",
        ]
        assert lines_of(url, password("a", "a-pw", pubs("a.1", "x"))) == [denied_pub("x"), b"PONG"]
        assert lines_of(url, password("alice", "pw", pubs("alice.1", "x"))) == [denied_pub("x"), b"PONG"]
        assert lines_of(url, nkey_login(own, after=pubs("own.1", "default.1"))) == [
            denied_pub("default.1"),
            b"PONG",
        ]
        assert lines_of(url, password("alice", "wrong")) == [AUTH_VIOLATION]
        # no_auth_user: a client without credentials is alice; web is never a STANDARD client
        assert lines_of(url, lambda i: connect_line() + pubs("alice.1", "x")) == [denied_pub("x"), b"PONG"]
        assert lines_of(url, password("web", "pw")) == [AUTH_VIOLATION]
