"""JWT wire format: Go-produced tokens decode and re-encode to the same bytes; strict base64url; jti."""

from __future__ import annotations

import json

import pytest

from tests.unit.support import (
    ACCOUNT,
    ACCOUNT_PAYLOAD,
    ONE_CREDS_ACCOUNT,
    ONE_CREDS_JTI,
    ONE_CREDS_JTI_INPUT,
    ONE_CREDS_PAYLOAD,
    ONE_CREDS_TOKEN,
    ONE_CREDS_USER,
    OPERATOR,
    OPERATOR_PAYLOAD,
    SIGNING_KEY_USER_PAYLOAD,
    USER,
)
from trustkit import jwt, nkeys
from trustkit.errors import MalformedTokenError
from trustkit.jwt.codec import (
    HEADER_B64,
    HEADER_JSON,
    b64url_decode,
    b64url_encode,
    go_json,
    jti_of,
    sha512_256,
)


def recomputed_jti(claims: jwt.Claims) -> str:
    saved = claims.jti
    claims.jti = ""
    try:
        return jti_of(go_json(claims.standard_json()))
    finally:
        claims.jti = saved


# --- constants ----------------------------------------------------------------------------------


def test_header_is_the_one_go_writes() -> None:
    assert HEADER_JSON == b'{"typ":"JWT","alg":"ed25519-nkey"}'
    assert HEADER_B64 == "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ"
    assert jwt.MAX_TOKEN_SIZE == 1024 * 1024


def test_sha512_256_known_answer() -> None:
    # FIPS 180-4 example "abc": SHA-512/256 has its own IV (not a truncated SHA-512)
    assert sha512_256(b"abc").hex() == "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"


# --- one.creds (§2.13) --------------------------------------------------------------------------


def test_one_creds_token_decodes_as_user() -> None:
    claims = jwt.decode(ONE_CREDS_TOKEN, jwt.UserClaims)
    assert isinstance(claims, jwt.UserClaims)
    assert claims.sub == ONE_CREDS_USER
    assert claims.iss == ONE_CREDS_ACCOUNT
    assert claims.name == "one"
    assert claims.iat == 1616247232
    assert claims.jti == ONE_CREDS_JTI
    assert (claims.subs, claims.data, claims.payload) == (-1, -1, -1)
    assert claims.pub.empty() and claims.sub_perms.empty()
    assert claims.token == ONE_CREDS_TOKEN
    assert claims.validate(now=1616247232).is_empty()
    # untyped decode picks the same class
    assert type(jwt.decode(ONE_CREDS_TOKEN)) is jwt.UserClaims


def test_one_creds_payload_bytes_are_reproduced() -> None:
    assert b64url_decode(ONE_CREDS_TOKEN.split(".")[1]) == ONE_CREDS_PAYLOAD
    claims = jwt.decode(ONE_CREDS_TOKEN, jwt.UserClaims)
    assert claims.payload_bytes() == ONE_CREDS_PAYLOAD


def test_one_creds_jti_recomputation() -> None:
    claims = jwt.decode(ONE_CREDS_TOKEN, jwt.UserClaims)
    saved = claims.jti
    claims.jti = ""
    assert go_json(claims.standard_json()) == ONE_CREDS_JTI_INPUT
    claims.jti = saved
    assert jti_of(ONE_CREDS_JTI_INPUT) == ONE_CREDS_JTI
    assert recomputed_jti(claims) == "GECPTJHHMS3MCMKLTPGYGAO45GQ6N6QPYWQ4GPLAEB33VCRJNRVQ"


def test_new_user_claims_reproduce_one_creds_payload() -> None:
    # Go's NewUserClaims defaults + name, issued by the account at that iat, give the same bytes.
    claims = jwt.UserClaims(sub=ONE_CREDS_USER, name="one")
    claims.iss, claims.iat = ONE_CREDS_ACCOUNT, 1616247232
    claims.jti = recomputed_jti(claims)
    assert claims.jti == ONE_CREDS_JTI
    assert claims.payload_bytes() == ONE_CREDS_PAYLOAD


# --- other Go-produced payloads (§2.6, §2.13) ---------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (jwt.AccountClaims, ACCOUNT_PAYLOAD),
        (jwt.OperatorClaims, OPERATOR_PAYLOAD),
        (jwt.UserClaims, SIGNING_KEY_USER_PAYLOAD),
        (jwt.UserClaims, ONE_CREDS_PAYLOAD),
    ],
    ids=["account", "operator", "user-by-signing-key", "one-creds"],
)
def test_go_payloads_round_trip_byte_exact(cls: type[jwt.Claims], payload: bytes) -> None:
    claims = cls.from_payload(json.loads(payload))
    assert claims.payload_bytes() == payload
    assert recomputed_jti(claims) == claims.jti


def test_account_example_fields() -> None:
    acct = jwt.AccountClaims.from_payload(json.loads(ACCOUNT_PAYLOAD))
    assert acct.sub == "ABSMSCU7T4MJXN44NXZCAI52BY4QIL7SIKMSFL3LGRWMZLNCIGSTI7K7"
    assert acct.signing_keys == {"ABQVKKW3Q5LRIVJUNDPLYVSRLKFIIGEKQGYZCPYRDVAYTSCUNCYRTT7X": None}
    assert acct.limits.wildcards is True and acct.limits.conn == -1
    assert not acct.limits.jetstream_enabled()
    assert acct.validate(now=1719519727).is_empty()
    user = jwt.UserClaims.from_payload(json.loads(SIGNING_KEY_USER_PAYLOAD))
    assert acct.did_sign(user)
    assert user.issuer_account == acct.sub


def test_operator_example_fields() -> None:
    op = jwt.OperatorClaims.from_payload(json.loads(OPERATOR_PAYLOAD))
    assert op.is_self_signed()
    assert op.system_account == "ACQTWVGSGHYVY3R6D2WMO3V6LV2MGK5B7G47E43BHJB6FQVY7EHNTMMG"
    assert op.signing_keys == ["ODKLLI6VZWV6M7WTZWB725HLOLTQQTDK4NQGVEGD4CO7J2L2UIZO5SGW"]
    assert op.validate(now=1726560200).is_empty()


# --- our own tokens -----------------------------------------------------------------------------


def test_encoded_token_shape_and_signature() -> None:
    claims = jwt.UserClaims(sub=USER.public_key, name="x")
    token = claims.encode(ACCOUNT, iat=1700000000)
    h64, p64, s64 = token.split(".")
    assert h64 == HEADER_B64
    assert b64url_decode(p64) == claims.payload_bytes()
    assert len(s64) == 86
    nkeys.verify(ACCOUNT.public_key, f"{h64}.{p64}".encode(), b64url_decode(s64))
    assert "=" not in token
    assert claims.token == token
    assert jwt.decode(token, jwt.UserClaims) == claims


def test_encoding_is_deterministic_for_the_same_iat() -> None:
    a = jwt.OperatorClaims(sub=OPERATOR.public_key, name="op").encode(OPERATOR, iat=1)
    b = jwt.OperatorClaims(sub=OPERATOR.public_key, name="op").encode(OPERATOR, iat=1)
    assert a == b  # Ed25519 is deterministic
    c = jwt.OperatorClaims(sub=OPERATOR.public_key, name="op").encode(OPERATOR, iat=2)
    assert a.split(".")[1] != c.split(".")[1]


# --- strict base64url ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"f", b"fo", b"foo", b"foob", b"\xff\xfe\xfd", bytes(range(256))])
def test_b64url_round_trip(raw: bytes) -> None:
    text = b64url_encode(raw)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == raw


@pytest.mark.parametrize(
    "bad",
    [
        "Zg==",
        "Zg=",
        "Zm9v=",
        "Zm+v",
        "Zm/v",
        "Zm9 v",
        "Zm9v\n",
        "Zm!v",
        "Z",
        "Zm9vY",
        "Zh",
        "Zm8",
        "Zm9w",
        "é",
    ],
    ids=[
        "pad2",
        "pad1",
        "pad-full",
        "plus",
        "slash",
        "space",
        "newline",
        "bang",
        "len1",
        "len5",
        "trailing-bits-2",
        "ok-3",
        "ok-4",
        "non-ascii",
    ],
)
def test_b64url_is_strict(bad: str) -> None:
    if bad in ("Zm8", "Zm9w"):  # canonical: decode fine (controls for the cases around them)
        b64url_decode(bad)
        return
    with pytest.raises(MalformedTokenError, match="base64url"):
        b64url_decode(bad)


# --- Go-compatible JSON -------------------------------------------------------------------------


def test_go_json_escaping() -> None:
    value = {"s": "<a href='x'>&amp;</a>\u2028\u2029é日本🙂\x7f\"\\\n"}
    out = go_json(value)
    assert out == (
        b'{"s":"\\u003ca href=\'x\'\\u003e\\u0026amp;\\u003c/a\\u003e\\u2028\\u2029'
        + "é日本🙂".encode()
        + b'\x7f\\"\\\\\\n"}'
    )
    assert json.loads(out) == value


def test_go_json_is_compact_and_keeps_key_order() -> None:
    assert (
        go_json({"b": 1, "a": [1, 2], "c": {"z": True, "y": None}})
        == b'{"b":1,"a":[1,2],"c":{"z":true,"y":null}}'
    )


def test_go_json_refuses_nan_and_unencodable() -> None:
    with pytest.raises(MalformedTokenError):
        go_json({"x": float("nan")})
    with pytest.raises(MalformedTokenError):
        go_json({"x": object()})
    with pytest.raises(MalformedTokenError):
        go_json({"x": "\ud800"})  # lone surrogate: not valid UTF-8
