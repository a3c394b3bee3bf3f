"""Unit tests of the callout responder core (``CalloutService.handle``) with hand-made requests.

No NATS here: each request is an ``AuthorizationRequestClaims`` signed by a test server key (and
sealed with a test server xkey), so every check the service makes has a negative test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from callout.identity import Identity, InvalidCredentials, UnknownUser
from callout.policy import Policy
from callout.service import SERVER_XKEY_HEADER, AuditRecord, CalloutService
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
from trustkit.jwt.codec import HEADER_B64, b64url_encode, go_json
from trustkit.nkeys import KeyPair, PrefixByte

NOW = 1_800_000_000
SERVER = KeyPair.generate(PrefixByte.SERVER)
SERVER_X = KeyPair.generate(PrefixByte.CURVE)
ISSUER = KeyPair.generate(PrefixByte.ACCOUNT)
SERVICE_X = KeyPair.generate(PrefixByte.CURVE)

POLICY = Policy.from_dict(
    {
        "max_lifetime": 600,
        "rules": [
            {
                "id": "ops",
                "groups": ["ops"],
                "account": "OPS",
                "pub": {"allow": ["ops.>", "user.{{name}}.>"]},
                "sub": {"allow": ["_INBOX.>"]},
                "limits": {"payload": 1024},
            },
            {"id": "dev", "groups": ["dev"], "pub": {"allow": ["dev.>"]}},
        ],
    }
)


class DictBackend:
    def __init__(self, users: Mapping[str, tuple[str, tuple[str, ...]]]) -> None:
        self.users = users
        self.calls: list[tuple[str, str]] = []

    async def authenticate(self, username: str, password: str) -> Identity:
        self.calls.append((username, password))
        if username not in self.users:
            raise UnknownUser(f"no user {username!r} in the test directory")
        secret, groups = self.users[username]
        if password != secret:
            raise InvalidCredentials(f"wrong password for {username!r}")
        return Identity(
            subject=f"uid-{username}",
            name=username,
            groups=groups,
            attributes={},
            expires_at=None,
            source="dict",
        )


class TokenDictBackend(DictBackend):
    async def authenticate_token(self, token: str) -> Identity:
        if token != "good-token":
            raise InvalidCredentials("bad token")
        return Identity(
            subject="svc-1", name="svc", groups=("ops",), attributes={}, expires_at=None, source="tok"
        )


USERS = {"alice": ("alice-pw", ("ops",)), "bob": ("bob-pw", ("dev",)), "carol": ("carol-pw", ("sales",))}


def make_request(
    *,
    user: str = "alice",
    password: str = "alice-pw",  # noqa: S107 - a test directory's password
    token: str = "",
    exp: int | None = NOW + 2,
    aud: str = AUTH_REQUEST_AUDIENCE,
    signer: KeyPair = SERVER,
    server_id: str | None = None,
    signed_xkey: str = "",
    user_nkey: str | None = None,
    iat: int = NOW,
) -> tuple[bytes, str]:
    unkey = user_nkey if user_nkey is not None else KeyPair.generate(PrefixByte.USER).public_key
    claims = AuthorizationRequestClaims(
        sub=ISSUER.public_key,
        aud=aud,
        exp=exp or 0,
        server_id=ServerID(
            name="test", host="127.0.0.1", id=server_id or signer.public_key, xkey=signed_xkey
        ),
        user_nkey=unkey,
        connect_opts=ConnectOptions(user=user, password=password, auth_token=token, lang="python"),
    )
    return claims.encode(signer, iat=iat).encode("ascii"), unkey


def sealed_request(**kw: Any) -> tuple[bytes, dict[str, str], str]:
    body, unkey = make_request(signed_xkey=SERVER_X.public_key, **kw)
    return SERVER_X.seal(body, SERVICE_X.public_key), {SERVER_XKEY_HEADER: SERVER_X.public_key}, unkey


class Harness:
    def __init__(self, backend: Any = None, **kw: Any) -> None:
        self.records: list[AuditRecord] = []
        self.backend = backend if backend is not None else DictBackend(USERS)
        self.service = CalloutService(
            ISSUER, kw.pop("policy", POLICY), self.backend, now=lambda: NOW, audit=self.records.append, **kw
        )

    def handle(self, body: bytes, headers: Mapping[str, str] | None = None) -> bytes | None:
        return asyncio.run(self.service.handle(body, headers))

    @property
    def record(self) -> AuditRecord:
        assert len(self.records) == 1, self.records
        return self.records[0]


def response_of(reply: bytes | None) -> AuthorizationResponseClaims:
    assert reply is not None
    assert reply.startswith(b"eyJ")
    resp = decode(reply.decode(), AuthorizationResponseClaims)
    assert resp.iss == ISSUER.public_key
    assert resp.validate(now=NOW).is_empty()
    return resp


# --- issuing ------------------------------------------------------------------------------------


def test_issues_a_user_jwt_bound_to_the_request() -> None:
    h = Harness()
    body, unkey = make_request()
    resp = response_of(h.handle(body))
    assert (resp.sub, resp.aud, resp.error, resp.iat) == (unkey, SERVER.public_key, "", NOW)
    user = decode(resp.jwt, UserClaims)
    assert user.sub == unkey, "the user JWT must carry the server-generated user key"
    assert user.iss == ISSUER.public_key
    assert user.aud == "OPS"
    assert user.name == "alice"
    assert (user.iat, user.exp) == (NOW, NOW + 600)
    assert user.pub.allow == ["ops.>", "user.alice.>"]
    assert user.payload == 1024
    assert user.validate(now=NOW).is_empty()
    rec = h.record
    assert (rec.outcome, rec.reason_code, rec.user_nkey) == ("issued", "allowed", unkey)
    assert rec.server_id == SERVER.public_key
    assert (rec.username, rec.identity, rec.source) == ("alice", "uid-alice", "dict")
    assert (rec.rule, rec.account) == ("ops", "OPS")
    assert (rec.issued_at, rec.expires_at, rec.encrypted) == (NOW, NOW + 600, False)


def test_default_account_when_policy_names_none() -> None:
    resp = response_of(Harness().handle(make_request(user="bob", password="bob-pw")[0]))
    assert decode(resp.jwt, UserClaims).aud == "$G"
    resp = response_of(Harness(default_account="APP").handle(make_request(user="bob", password="bob-pw")[0]))
    assert decode(resp.jwt, UserClaims).aud == "APP"


def test_encrypted_request_gets_an_encrypted_reply() -> None:
    h = Harness(xkey=SERVICE_X)
    body, headers, unkey = sealed_request()
    assert not body.startswith(b"eyJ")
    reply = h.handle(body, headers)
    assert reply is not None and not reply.startswith(b"eyJ")
    resp = response_of(SERVER_X.open(reply, SERVICE_X.public_key))
    assert resp.sub == unkey and decode(resp.jwt, UserClaims).sub == unkey
    assert h.record.encrypted


def test_header_lookup_is_case_insensitive() -> None:
    h = Harness(xkey=SERVICE_X)
    body, headers, _ = sealed_request()
    assert h.handle(body, {k.lower(): v for k, v in headers.items()}) is not None


def test_token_backend() -> None:
    h = Harness(TokenDictBackend(USERS))
    resp = response_of(h.handle(make_request(user="", password="", token="good-token")[0]))
    assert decode(resp.jwt, UserClaims).name == "svc"
    h = Harness(TokenDictBackend(USERS))
    assert response_of(h.handle(make_request(user="", password="", token="bad")[0])).error
    assert h.record.reason_code == "invalid_credentials"


def test_identity_expiry_caps_the_user_jwt() -> None:
    class Short(DictBackend):
        async def authenticate(self, username: str, password: str) -> Identity:
            return replace(await super().authenticate(username, password), expires_at=NOW + 42)

    resp = response_of(Harness(Short(USERS)).handle(make_request()[0]))
    assert decode(resp.jwt, UserClaims).exp == NOW + 42


# --- refusals: a signed error, generic text ---------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("alice", "wrong", "invalid_credentials"),
        ("nobody", "x", "unknown_user"),
        ("carol", "carol-pw", "no_matching_rule"),
        ("", "", "no_credentials"),
    ],
)
def test_refusal_is_a_generic_signed_error(user: str, password: str, reason: str) -> None:
    h = Harness()
    body, unkey = make_request(user=user, password=password)
    resp = response_of(h.handle(body))
    assert (resp.sub, resp.aud, resp.jwt) == (unkey, SERVER.public_key, "")
    assert resp.error == "not authorized", "the same text for every refusal: no user enumeration"
    assert (h.record.outcome, h.record.reason_code) == ("refused", reason)


def test_refusal_is_sealed_when_the_request_was() -> None:
    h = Harness(xkey=SERVICE_X)
    body, headers, _ = sealed_request(password="wrong")
    reply = h.handle(body, headers)
    assert reply is not None and not reply.startswith(b"eyJ")
    assert response_of(SERVER_X.open(reply, SERVICE_X.public_key)).error == "not authorized"


def test_drop_refusals_sends_nothing() -> None:
    h = Harness(drop_refusals=True)
    assert h.handle(make_request(password="wrong")[0]) is None
    assert (h.record.outcome, h.record.reason_code) == ("dropped", "invalid_credentials")


def test_token_without_token_backend_is_refused() -> None:
    h = Harness()
    assert response_of(h.handle(make_request(user="", password="", token="tok")[0])).error
    assert h.record.reason_code == "no_credentials"
    assert h.backend.calls == []


def test_backend_details_never_reach_the_reply_or_the_record() -> None:
    class Leaky:
        async def authenticate(self, username: str, password: str) -> Identity:
            raise RuntimeError("ldap://10.0.0.7 bind failed for cn=svc,dc=corp password=hunter2")

    h = Harness(Leaky())
    reply = h.handle(make_request(password="s3cret-pw")[0])
    assert response_of(reply).error == "not authorized"
    assert reply is not None and b"hunter2" not in reply and b"10.0.0.7" not in reply
    assert h.record.reason_code == "backend_error"
    assert "s3cret-pw" not in repr(h.record.to_json())


def test_backend_timeout() -> None:
    class Slow:
        async def authenticate(self, username: str, password: str) -> Identity:
            await asyncio.sleep(10)
            raise AssertionError("not reached")

    h = Harness(Slow(), backend_timeout=0.05)
    assert response_of(h.handle(make_request()[0])).error == "not authorized"
    assert h.record.reason_code == "backend_timeout"


def test_backend_returning_something_else_is_refused() -> None:
    class Wrong:
        async def authenticate(self, username: str, password: str) -> Any:
            return {"subject": username}

    h = Harness(Wrong())
    assert response_of(h.handle(make_request()[0])).error
    assert h.record.reason_code == "backend_error"


def test_audit_records_never_hold_the_password() -> None:
    h = Harness()
    for pw in ("alice-pw", "wrong-pw-123"):
        h.handle(make_request(password=pw)[0])
    for rec in h.records:
        text = repr(rec) + repr(rec.to_json())
        assert "alice-pw" not in text and "wrong-pw-123" not in text


def test_a_failing_audit_callback_does_not_break_the_reply() -> None:
    def boom(_: AuditRecord) -> None:
        raise RuntimeError("audit sink down")

    service = CalloutService(ISSUER, POLICY, DictBackend(USERS), now=lambda: NOW, audit=boom)
    assert asyncio.run(service.handle(make_request()[0])) is not None


# --- requests that cannot be trusted get no reply -----------------------------------------------


def _signed_by_account() -> bytes:
    """A well-formed request whose ``iss`` is an account key (encode refuses to make one)."""
    acct = KeyPair.generate(PrefixByte.ACCOUNT)
    claims = decode(make_request()[0].decode(), AuthorizationRequestClaims)
    payload = claims.payload_json()
    payload["iss"] = payload["nats"]["server_id"]["id"] = acct.public_key
    signing_input = HEADER_B64 + "." + b64url_encode(go_json(payload))
    return (signing_input + "." + b64url_encode(acct.sign(signing_input.encode()))).encode()


def _tampered() -> bytes:
    body, _ = make_request()
    h, _, s = body.decode().split(".")
    other = make_request(user="mallory")[0].decode().split(".")[1]
    return f"{h}.{other}.{s}".encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"eyJnot a jwt", "request_invalid"),
        (b"eyJ" + b"\xff" * 10, "request_invalid"),
        (_tampered(), "request_invalid"),
        # an account key cannot sign authorization requests (issuer kind check in decode)
        (_signed_by_account(), "request_invalid"),
        (make_request(aud="something-else")[0], "request_audience"),
        (make_request(server_id=KeyPair.generate(PrefixByte.SERVER).public_key)[0], "request_issuer"),
        (make_request(exp=None)[0], "request_no_expiry"),
        (make_request(exp=NOW - 3, iat=NOW - 10)[0], "request_expired"),
        (make_request(user_nkey=ISSUER.public_key)[0], "request_invalid"),
        (make_request(user_nkey="")[0], "request_invalid"),
        # a plaintext request that claims the server has an xkey: someone stripped the seal
        (make_request(signed_xkey=SERVER_X.public_key)[0], "xkey_mismatch"),
        (b"xkv1" + b"\x00" * 60, "encrypted_without_xkey"),
    ],
)
def test_untrusted_requests_get_no_reply(body: bytes, reason: str) -> None:
    h = Harness()
    assert h.handle(body) is None
    assert (h.record.outcome, h.record.reason_code) == ("dropped", reason)
    assert h.backend.calls == [], "the backend is never asked for an unverified request"


def test_expiry_leeway() -> None:
    assert Harness().handle(make_request(exp=NOW - 2, iat=NOW - 5)[0]) is not None
    assert Harness(leeway=0).handle(make_request(exp=NOW - 1, iat=NOW - 5)[0]) is None


def test_server_pinning() -> None:
    h = Harness(allowed_server_keys={KeyPair.generate(PrefixByte.SERVER).public_key})
    assert h.handle(make_request()[0]) is None
    assert h.record.reason_code == "server_not_allowed"
    assert Harness(allowed_server_keys={SERVER.public_key}).handle(make_request()[0]) is not None


def test_xkey_service_refuses_plaintext_requests() -> None:
    """With an xkey the server seals every request: plaintext means the credentials went in clear."""
    h = Harness(xkey=SERVICE_X)
    assert h.handle(make_request()[0]) is None
    assert h.record.reason_code == "encryption_required"
    assert h.backend.calls == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "xkey_header_missing"),
        ({SERVER_XKEY_HEADER: KeyPair.generate(PrefixByte.CURVE).public_key}, "decrypt_failed"),
        ({SERVER_XKEY_HEADER: "not-a-key"}, "decrypt_failed"),
    ],
)
def test_bad_encrypted_requests(headers: dict[str, str], reason: str) -> None:
    h = Harness(xkey=SERVICE_X)
    body, _, _ = sealed_request()
    assert h.handle(body, headers) is None
    assert h.record.reason_code == reason


def test_signed_xkey_must_match_the_header() -> None:
    h = Harness(xkey=SERVICE_X)
    body, _ = make_request(signed_xkey=KeyPair.generate(PrefixByte.CURVE).public_key)
    sealed = SERVER_X.seal(body, SERVICE_X.public_key)
    assert h.handle(sealed, {SERVER_XKEY_HEADER: SERVER_X.public_key}) is None
    assert h.record.reason_code == "xkey_mismatch"


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"issuer_keypair": KeyPair.generate(PrefixByte.USER)},
        {"issuer_keypair": KeyPair.from_public_key(ISSUER.public_key)},
        {"xkey": KeyPair.generate(PrefixByte.ACCOUNT)},
        {"xkey": KeyPair.from_public_key(SERVICE_X.public_key)},
        {"allowed_server_keys": {ISSUER.public_key}},
        {"error_text": ""},
    ],
)
def test_bad_configuration(kw: dict[str, Any]) -> None:
    args: dict[str, Any] = {"issuer_keypair": ISSUER, "policy": POLICY, "backend": DictBackend(USERS), **kw}
    with pytest.raises(CalloutError) as info:
        CalloutService(**args)
    assert info.value.code == "callout_config"
