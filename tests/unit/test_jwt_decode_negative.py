"""Security negatives for ``jwt.decode``: every bad token fails closed with a specific TokenError.

A peer library accepted a zeroed signature because its check was inverted; each check here has
its own test. Tokens are forged by hand (``support.forge``) because the encoder refuses them.
"""

from __future__ import annotations

import inspect
import json
import time

import pytest

from tests.unit.support import (
    ACCOUNT,
    ACCOUNT2,
    CURVE,
    ONE_CREDS_TOKEN,
    OPERATOR,
    SERVER,
    USER,
    USER2,
    account_payload,
    flip_trailing_bit,
    forge,
    header_b64,
    user_payload,
)
from trustkit import jwt, nkeys
from trustkit.errors import (
    ClaimTypeError,
    IssuerError,
    MalformedTokenError,
    TokenError,
    TokenSignatureError,
    TrustkitError,
    UnsupportedVersionError,
)
from trustkit.jwt.codec import HEADER_B64, MAX_TOKEN_SIZE, b64url_decode, b64url_encode
from trustkit.nkeys import PrefixByte


def good_user_token() -> str:
    return forge(user_payload(), ACCOUNT)


def assert_fails(
    token: object, cls: type[TokenError], fragment: str, expect: type[jwt.Claims] | None = None
) -> None:
    with pytest.raises(cls) as info:
        jwt.decode(token, expect)  # type: ignore[arg-type]
    assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"
    assert isinstance(info.value, TokenError)


def test_control_good_forged_token_decodes() -> None:
    claims = jwt.decode(good_user_token(), jwt.UserClaims)
    assert claims.iss == ACCOUNT.public_key and claims.sub == USER.public_key


# --- signatures ---------------------------------------------------------------------------------


def test_zeroed_signature() -> None:
    h, p, _ = good_user_token().split(".")
    assert_fails(f"{h}.{p}.{b64url_encode(bytes(64))}", TokenSignatureError, "signature verification")
    h, p, _ = ONE_CREDS_TOKEN.split(".")
    assert_fails(
        f"{h}.{p}.{b64url_encode(bytes(64))}", TokenSignatureError, "signature verification", jwt.UserClaims
    )


def test_empty_signature() -> None:
    h, p, _ = good_user_token().split(".")
    assert_fails(f"{h}.{p}.", TokenSignatureError, "signature verification")


def test_signature_by_another_key_of_the_same_kind() -> None:
    payload = user_payload(ACCOUNT)  # claims iss = ACCOUNT …
    assert_fails(
        forge(payload, ACCOUNT2), TokenSignatureError, "signature verification"
    )  # … signed by ACCOUNT2


def test_swapped_issuer_with_original_signature() -> None:
    h, _p, s = good_user_token().split(".")
    payload = user_payload(ACCOUNT)
    payload["iss"] = ACCOUNT2.public_key
    p2 = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    assert_fails(f"{h}.{p2}.{s}", TokenSignatureError, "signature verification", jwt.UserClaims)


def test_signature_from_another_token() -> None:
    other = forge(user_payload(ACCOUNT, subs=5), ACCOUNT)
    h, p, _ = good_user_token().split(".")
    assert_fails(f"{h}.{p}.{other.split('.')[2]}", TokenSignatureError, "signature verification")


def test_v1_style_signature_over_payload_only_is_not_accepted_with_v2_header() -> None:
    assert_fails(forge(user_payload(), ACCOUNT, v1=True), TokenSignatureError, "signature verification")


def test_signature_tampered_one_bit() -> None:
    h, p, s = good_user_token().split(".")
    sig = bytearray(b64url_decode(s))
    for i in (0, 31, 32, 63):
        bad = bytearray(sig)
        bad[i] ^= 0x01
        assert_fails(f"{h}.{p}.{b64url_encode(bytes(bad))}", TokenSignatureError, "signature verification")


# --- issuer kind --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "signer", "expect", "fragment"),
    [
        (user_payload(OPERATOR), OPERATOR, jwt.UserClaims, "user claims cannot be issued by a operator key"),
        (user_payload(USER2), USER2, jwt.UserClaims, "user claims cannot be issued by a user key"),
        (user_payload(SERVER), SERVER, jwt.UserClaims, "cannot be issued by a server key"),
        (account_payload(USER), USER, jwt.AccountClaims, "account claims cannot be issued by a user key"),
        (account_payload(SERVER), SERVER, jwt.AccountClaims, "cannot be issued by a server key"),
        (
            {
                "iss": ACCOUNT.public_key,
                "sub": OPERATOR.public_key,
                "nats": {"type": "operator", "version": 2},
            },
            ACCOUNT,
            jwt.OperatorClaims,
            "operator claims cannot be issued by a account key",
        ),
        (
            {
                "iss": USER.public_key,
                "sub": ACCOUNT2.public_key,
                "nats": {"subject": "a", "kind": "stream", "type": "activation", "version": 2},
            },
            USER,
            jwt.ActivationClaims,
            "activation claims cannot be issued by a user key",
        ),
        (
            {
                "iss": ACCOUNT.public_key,
                "sub": ACCOUNT.public_key,
                "aud": "nats-authorization-request",
                "nats": {"user_nkey": USER.public_key, "type": "authorization_request", "version": 2},
            },
            ACCOUNT,
            jwt.AuthorizationRequestClaims,
            "cannot be issued by a account key",
        ),
        (
            {
                "iss": OPERATOR.public_key,
                "sub": USER.public_key,
                "aud": SERVER.public_key,
                "nats": {"jwt": "x", "type": "authorization_response", "version": 2},
            },
            OPERATOR,
            jwt.AuthorizationResponseClaims,
            "cannot be issued by a operator key",
        ),
    ],
    ids=[
        "user-by-operator",
        "user-by-user",
        "user-by-server",
        "account-by-user",
        "account-by-server",
        "operator-by-account",
        "activation-by-user",
        "authreq-by-account",
        "authresp-by-operator",
    ],
)
def test_wrong_issuer_kind(payload: dict, signer: object, expect: type[jwt.Claims], fragment: str) -> None:
    token = forge(payload, signer)  # type: ignore[arg-type]
    assert_fails(token, IssuerError, fragment, expect)
    assert_fails(token, IssuerError, fragment)  # also without ``expect``


# --- structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: ".".join(t.split(".")[:2]),
        lambda t: t.split(".")[0],
        lambda t: t + ".extra",
        lambda t: t + ".",
        lambda t: "",
        lambda t: "..",
        lambda t: "...",
    ],
    ids=["2-chunks", "1-chunk", "4-chunks", "trailing-dot", "empty", "two-dots", "three-dots"],
)
def test_wrong_number_of_chunks(mangle) -> None:  # type: ignore[no-untyped-def]
    token = mangle(good_user_token())
    with pytest.raises(MalformedTokenError):
        jwt.decode(token)


def test_chunk_count_messages() -> None:
    h, p, _ = good_user_token().split(".")
    assert_fails(f"{h}.{p}", MalformedTokenError, "expected 3 chunks, got 2")
    assert_fails(good_user_token() + ".x", MalformedTokenError, "expected 3 chunks, got 4")


def test_signature_cut_short() -> None:
    token = good_user_token()
    # 86 → 84 chars: valid base64url of 63 bytes, which cannot be a signature
    assert_fails(token[:-2], TokenSignatureError, "signature verification")
    # 86 → 85 chars: not a valid base64url length
    assert_fails(token[:-1], MalformedTokenError, "base64url")
    # half a signature (32 bytes)
    assert_fails(token[:-42], TokenSignatureError, "signature verification")


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize("pad", ["=", "==", "==="])
def test_base64_padding_is_refused(segment: int, pad: str) -> None:
    parts = good_user_token().split(".")
    parts[segment] += pad
    assert_fails(".".join(parts), MalformedTokenError, "base64url")


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
@pytest.mark.parametrize(
    "junk",
    ["+", "/", "!", " ", "\n", "\t", "\x00", "é"],
    ids=["plus", "slash", "bang", "space", "newline", "tab", "nul", "non-ascii"],
)
@pytest.mark.parametrize("how", ["replace", "insert", "append"])
def test_junk_characters_are_refused(segment: int, junk: str, how: str) -> None:
    parts = good_user_token().split(".")
    s = parts[segment]
    mid = len(s) // 2
    if how == "replace":
        parts[segment] = s[:mid] + junk + s[mid + 1 :]
    elif how == "insert":
        parts[segment] = s[:mid] + junk + s[mid:]
    else:
        parts[segment] = s + junk
    with pytest.raises(MalformedTokenError, match="base64url"):
        jwt.decode(".".join(parts))


def test_whitespace_around_the_token_is_refused() -> None:
    token = good_user_token()
    for bad in (" " + token, token + "\n", token + "\r\n", "\t" + token):
        with pytest.raises(MalformedTokenError, match="base64url"):
            jwt.decode(bad)


def test_non_canonical_trailing_bits() -> None:
    h, p, s = good_user_token().split(".")
    assert len(h) % 4 == 2 and len(s) % 4 == 2
    # header: 46 chars → 4 unused bits
    assert_fails(f"{flip_trailing_bit(h)}.{p}.{s}", MalformedTokenError, "canonical")
    # signature: 86 chars → 4 unused bits; same signature bytes, different spelling
    alias = flip_trailing_bit(s)
    assert b64url_decode(s) == __import__("base64").urlsafe_b64decode(alias + "==")
    assert_fails(f"{h}.{p}.{alias}", MalformedTokenError, "canonical")
    # payload: pick a name length that leaves unused bits, then flip one
    for n in range(3):
        payload = user_payload()
        payload["name"] = "u" * (n + 1)
        token = forge(payload, ACCOUNT)
        h, p, s = token.split(".")
        if len(p) % 4:
            assert_fails(f"{h}.{flip_trailing_bit(p)}.{s}", MalformedTokenError, "canonical")
            break
    else:  # pragma: no cover
        pytest.fail("no payload length with trailing bits found")


def test_oversized_token_is_refused_before_parsing() -> None:
    big = "a" * (2 * 1024 * 1024)  # 2 MiB, not even dotted: size must be checked first
    start = time.perf_counter()
    for _ in range(20):
        with pytest.raises(MalformedTokenError, match="token too large"):
            jwt.decode(big)
        with pytest.raises(MalformedTokenError, match="token too large"):
            jwt.peek_unverified(big)
    assert time.perf_counter() - start < 0.5
    dotted = HEADER_B64 + "." + "A" * (2 * 1024 * 1024) + "." + "A" * 86
    with pytest.raises(MalformedTokenError, match="token too large"):
        jwt.decode(dotted)


def test_size_limit_boundary() -> None:
    h, _, s = good_user_token().split(".")
    filler = "A" * (MAX_TOKEN_SIZE - len(h) - len(s) - 2 + 1)
    with pytest.raises(MalformedTokenError, match="token too large"):
        jwt.decode(f"{h}.{filler}.{s}")
    with pytest.raises(
        TokenError
    ) as info:  # exactly at the limit: parsed (and then refused for other reasons)
        jwt.decode(f"{h}.{filler[:-1]}.{s}")
    assert "too large" not in str(info.value)


@pytest.mark.parametrize("bad", [None, b"a.b.c", 42, ["a", "b", "c"]], ids=repr)
def test_non_string_token(bad: object) -> None:
    assert_fails(bad, MalformedTokenError, "string")


# --- header -------------------------------------------------------------------------------------


def test_v1_header_alg_ed25519() -> None:
    v1h = header_b64({"typ": "jwt", "alg": "ed25519"})
    # signed the v1 way (payload only) and the v2 way: both refused as v1
    for v1 in (True, False):
        assert_fails(forge(user_payload(), ACCOUNT, header=v1h, v1=v1), UnsupportedVersionError, "v1")


def test_v1_top_level_type_in_payload() -> None:
    payload = user_payload()
    payload["type"] = "user"
    assert_fails(forge(payload, ACCOUNT), UnsupportedVersionError, "top-level 'type'")
    # a v1 shape: no nats object at all
    v1 = {"iss": ACCOUNT.public_key, "sub": USER.public_key, "type": "user", "iat": 1}
    assert_fails(forge(v1, ACCOUNT), UnsupportedVersionError, "v1")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ({"typ": "JWT", "alg": "none"}, "unexpected 'none' algorithm"),
        ({"typ": "JWT", "alg": "None"}, "algorithm"),
        ({"typ": "JWT", "alg": "HS256"}, "algorithm"),
        ({"typ": "JWT", "alg": "ed25519-nkey-x"}, "algorithm"),
        ({"typ": "JWT"}, "algorithm"),
        ({"typ": "JWT", "alg": ["ed25519-nkey"]}, "algorithm"),
        ({"typ": "XYZ", "alg": "ed25519-nkey"}, "not supported type 'XYZ'"),
        ({"alg": "ed25519-nkey"}, "not supported type"),
        ({"typ": 1, "alg": "ed25519-nkey"}, "not supported type"),
    ],
)
def test_bad_header_fields(header: dict, fragment: str) -> None:
    token = forge(user_payload(), ACCOUNT, header=header_b64(header))
    assert_fails(token, MalformedTokenError, fragment)


def test_alg_none_with_empty_signature() -> None:
    h = header_b64({"typ": "JWT", "alg": "none"})
    p = b64url_encode(json.dumps(user_payload()).encode())
    assert_fails(f"{h}.{p}.", MalformedTokenError, "algorithm")


def test_header_case_insensitive_like_go() -> None:
    token = forge(user_payload(), ACCOUNT, header=header_b64({"typ": "jwt", "alg": "ED25519-NKEY"}))
    assert jwt.decode(token, jwt.UserClaims).sub == USER.public_key


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "header is not valid JSON"),
        (b"", "header is not valid JSON"),
        (b"\xff\xfe\x00", "header is not valid JSON"),
        (b'["typ","JWT"]', "header is not a JSON object"),
        (b'"JWT"', "header is not a JSON object"),
        (b"null", "header is not a JSON object"),
    ],
)
def test_header_not_a_json_object(raw: bytes, fragment: str) -> None:
    token = forge(user_payload(), ACCOUNT, header=b64url_encode(raw))
    assert_fails(token, MalformedTokenError, fragment)


def test_deeply_nested_header_fails_closed() -> None:
    # json.loads raises RecursionError (not ValueError) on deep nesting: must still be a TokenError
    token = forge(user_payload(), ACCOUNT, header=b64url_encode(b"[" * 100_000))
    assert_fails(token, MalformedTokenError, "header")


# --- payload ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "payload is not valid JSON"),
        (b"", "payload is not valid JSON"),
        (b"{", "payload is not valid JSON"),
        (b"\xff\xfe", "payload is not valid JSON"),
        (b"[]", "payload is not a JSON object"),
        (b"42", "payload is not a JSON object"),
        (b'"x"', "payload is not a JSON object"),
        (b"null", "payload is not a JSON object"),
    ],
)
def test_payload_not_a_json_object(raw: bytes, fragment: str) -> None:
    assert_fails(forge(raw, ACCOUNT), MalformedTokenError, fragment)


@pytest.mark.parametrize("nats", ["user", 1, ["type", "user"], True])
def test_nats_not_an_object(nats: object) -> None:
    payload = user_payload()
    payload["nats"] = nats
    assert_fails(forge(payload, ACCOUNT), MalformedTokenError, "'nats' must be an object")


def test_deeply_nested_payload_fails_closed() -> None:
    assert_fails(forge(b"[" * 100_000, ACCOUNT), MalformedTokenError, "payload")
    nested = b'{"iss":"' + ACCOUNT.public_key.encode() + b'","nats":{"type":"user","version":2,"x":'
    nested += b"[" * 50_000 + b"]" * 50_000 + b"}}"
    assert_fails(forge(nested, ACCOUNT), MalformedTokenError, "payload")


def test_newer_version() -> None:
    assert_fails(forge(user_payload(version=3), ACCOUNT), UnsupportedVersionError, "newer version")
    # also for an unknown claim type (Go checks the version first)
    payload = user_payload(type="something", version=3)
    assert_fails(forge(payload, ACCOUNT), UnsupportedVersionError, "newer version")


@pytest.mark.parametrize("version", [0, None, 1], ids=["zero", "null", "one"])
def test_known_type_with_old_version(version: object) -> None:
    assert_fails(
        forge(user_payload(version=version), ACCOUNT), UnsupportedVersionError, f"received {version or 0}"
    )


def test_known_type_with_absent_version() -> None:
    payload = user_payload()
    del payload["nats"]["version"]
    assert_fails(
        forge(payload, ACCOUNT), UnsupportedVersionError, "library supports version 2 or less - received 0"
    )


@pytest.mark.parametrize("version", ["2", [2], {"v": 2}, True], ids=repr)
def test_version_of_wrong_type(version: object) -> None:
    assert_fails(forge(user_payload(version=version), ACCOUNT), MalformedTokenError, "version")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_version_not_finite_fails_closed(literal: bytes) -> None:
    # Python's json accepts NaN/Infinity (Go does not); int(nan) raises ValueError, int(inf) OverflowError.
    raw = b'{"iss":"' + ACCOUNT.public_key.encode() + b'","nats":{"type":"user","version":' + literal + b"}}"
    with pytest.raises(MalformedTokenError):
        jwt.decode(forge(raw, ACCOUNT))
    with pytest.raises(MalformedTokenError):
        jwt.peek_unverified(forge(raw, ACCOUNT))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_anywhere_are_malformed(literal: bytes) -> None:
    # Go's encoding/json has no NaN/Infinity literals: a payload holding one is not JSON
    raw = json.dumps(user_payload()).encode()[:-2] + b',"x":' + literal + b"}}"
    assert_fails(forge(raw, ACCOUNT), MalformedTokenError, "payload is not valid JSON")


def test_fractional_version_is_malformed() -> None:
    # Go unmarshals nats.version into an int: 2.5 is a decode error, not version 2
    raw = b'{"iss":"' + ACCOUNT.public_key.encode() + b'","nats":{"type":"user","version":2.5}}'
    assert_fails(forge(raw, ACCOUNT), MalformedTokenError, "version")


def test_expect_other_claim_type() -> None:
    account_token = forge(account_payload(), OPERATOR)
    assert_fails(account_token, ClaimTypeError, "expected user claims, got account claims", jwt.UserClaims)
    assert_fails(
        ONE_CREDS_TOKEN, ClaimTypeError, "expected account claims, got user claims", jwt.AccountClaims
    )
    generic = forge(
        {"iss": OPERATOR.public_key, "sub": OPERATOR.public_key, "nats": {"version": 2}}, OPERATOR
    )
    assert_fails(generic, ClaimTypeError, "expected user claims, got generic claims", jwt.UserClaims)
    # and the right expectation works
    assert isinstance(jwt.decode(account_token, jwt.AccountClaims), jwt.AccountClaims)


# --- issuer -------------------------------------------------------------------------------------


def test_iss_missing() -> None:
    payload = user_payload()
    del payload["iss"]
    assert_fails(forge(payload, ACCOUNT), IssuerError, "no issuer")
    payload["iss"] = ""
    assert_fails(forge(payload, ACCOUNT), IssuerError, "no issuer")
    payload["iss"] = None
    assert_fails(forge(payload, ACCOUNT), IssuerError, "no issuer")


def test_iss_curve_key() -> None:
    payload = user_payload()
    payload["iss"] = CURVE.public_key
    assert_fails(forge(payload, ACCOUNT), IssuerError, "curve")


@pytest.mark.parametrize(
    "iss",
    [
        "garbage",
        ACCOUNT.public_key.lower(),
        ACCOUNT.public_key[:-1],
        ACCOUNT.seed,
        ACCOUNT.private_key,
        42,
        ["A"],
    ],
    ids=["word", "lowercase", "truncated", "seed", "private", "int", "list"],
)
def test_iss_garbage(iss: object) -> None:
    payload = user_payload()
    payload["iss"] = iss
    with pytest.raises(IssuerError):
        jwt.decode(forge(payload, ACCOUNT))


def test_iss_all_zero_key() -> None:
    # "A"*56 is a well-formed account key (zero payload, zero CRC) — a small-order point that
    # must never verify anything
    payload = user_payload()
    payload["iss"] = "A" * 56
    assert_fails(forge(payload, ACCOUNT), TokenSignatureError, "signature verification")


def test_small_order_issuer_key_cannot_forge() -> None:
    # For the identity point as public key, (R = identity, S = 0) satisfies the cofactorless
    # equation for ANY message; Go's crypto/ed25519 accepts it. libsodium rejects small-order
    # keys: a token "signed" that way must fail here.
    identity = b"\x01" + bytes(31)
    payload = user_payload()
    payload["iss"] = nkeys.encode(PrefixByte.ACCOUNT, identity)
    h = HEADER_B64
    p = b64url_encode(json.dumps(payload).encode())
    assert_fails(
        f"{h}.{p}.{b64url_encode(identity + bytes(32))}", TokenSignatureError, "signature verification"
    )


@pytest.mark.parametrize("pad", [" ", "\t"], ids=["space", "tab"])
def test_iss_with_surrounding_whitespace_is_refused(pad: str) -> None:
    # Go's base32 decoder rejects spaces/tabs (it skips only CR/LF); an issuer must be exactly a
    # key, or string comparisons downstream (iss == account, iss in signing_keys) see another value.
    payload = user_payload()
    payload["iss"] = pad + ACCOUNT.public_key + pad
    assert_fails(forge(payload, ACCOUNT), IssuerError, "not a valid public key")


# --- field types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"nats": {"subs": "x"}}, "'subs'"),
        ({"nats": {"data": 1.5}}, "'data'"),
        ({"nats": {"payload": True}}, "'payload'"),
        ({"nats": {"pub": []}}, "'pub'"),
        ({"nats": {"sub": "x"}}, "'sub'"),
        ({"nats": {"pub": {"allow": "a.b"}}}, "'allow'"),
        ({"nats": {"pub": {"deny": [1]}}}, "'deny'"),
        ({"nats": {"resp": []}}, "'resp'"),
        ({"nats": {"resp": {"max": "1", "ttl": 0}}}, "'max'"),
        ({"nats": {"src": 5}}, "'src'"),
        ({"nats": {"times": {"start": "x"}}}, "'times'"),
        ({"nats": {"times_location": 1}}, "'times_location'"),
        ({"nats": {"bearer_token": "true"}}, "'bearer_token'"),
        ({"nats": {"allowed_connection_types": "STANDARD"}}, "'allowed_connection_types'"),
        ({"nats": {"issuer_account": 1}}, "'issuer_account'"),
        ({"nats": {"tags": "a"}}, "'tags'"),
        ({"exp": "1"}, "'exp'"),
        ({"nbf": 1.0}, "'nbf'"),
        ({"iat": True}, "'iat'"),
        ({"name": 5}, "'name'"),
        ({"aud": ["x"]}, "'aud'"),
        ({"jti": 1}, "'jti'"),
        ({"sub": {}}, "'sub'"),
    ],
)
def test_wrong_json_types_in_user_claims(patch: dict, field: str) -> None:
    payload = user_payload()
    for k, v in patch.items():
        if k == "nats":
            payload["nats"].update(v)
        else:
            payload[k] = v
    assert_fails(forge(payload, ACCOUNT), MalformedTokenError, field, jwt.UserClaims)


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"limits": []}, "'limits'"),
        ({"limits": {"subs": "x"}}, "'subs'"),
        ({"limits": {"wildcards": 1}}, "'wildcards'"),
        ({"limits": {"tiered_limits": {"R1": 5}}}, "'tiered_limits'"),
        ({"signing_keys": 5}, "'signing_keys'"),
        ({"signing_keys": [5]}, "'signing_keys'"),
        ({"signing_keys": [{"kind": "other", "key": "A"}]}, "'signing_keys'"),
        ({"revocations": {"U": "x"}}, "'revocations'"),
        ({"revocations": ["U"]}, "'revocations'"),
        ({"exports": {"subject": "a"}}, "'exports'"),
        ({"exports": [{"subject": 1}]}, "'subject'"),
        ({"imports": [1]}, "'imports'"),
        ({"mappings": {"a": {"subject": "b"}}}, "'mappings.a'"),
        ({"default_permissions": {"pub": "x"}}, "'pub'"),
        ({"authorization": {"auth_users": "U"}}, "'auth_users'"),
        ({"trace": "x"}, "'trace'"),
        ({"description": 1}, "'description'"),
    ],
)
def test_wrong_json_types_in_account_claims(patch: dict, field: str) -> None:
    assert_fails(forge(account_payload(**patch), OPERATOR), MalformedTokenError, field, jwt.AccountClaims)


@pytest.mark.parametrize(
    ("where", "key", "value", "field"),
    [
        ("top", "exp", 2**64, "'exp'"),
        ("top", "iat", 2**63, "'iat'"),
        ("top", "nbf", -(2**63) - 1, "'nbf'"),
        ("nats", "subs", 2**63, "'subs'"),
        ("nats", "payload", -(2**70), "'payload'"),
        ("nats", "resp", {"max": 1, "ttl": 2**70}, "'ttl'"),
    ],
    ids=["exp", "iat", "nbf", "subs", "payload", "resp.ttl"],
)
def test_integers_outside_int64_are_malformed(where: str, key: str, value: object, field: str) -> None:
    # Go reads these into int64: a larger number is a json.Unmarshal error there, so nats-server
    # refuses the token. Accepting it here would let a trustkit broker admit what the server refuses
    # (and an iat beyond int64 can never be covered by a revocation timestamp).
    payload = user_payload()
    if where == "top":
        payload[key] = value
    else:
        payload["nats"][key] = value
    assert_fails(forge(payload, ACCOUNT), MalformedTokenError, field, jwt.UserClaims)


def test_account_limit_outside_int64_is_malformed() -> None:
    assert_fails(forge(account_payload(limits={"conn": 2**64}), OPERATOR), MalformedTokenError, "'conn'")


# --- generic claims -----------------------------------------------------------------------------


def test_unknown_claim_type_decodes_as_generic() -> None:
    payload = {
        "iss": OPERATOR.public_key,
        "sub": OPERATOR.public_key,
        "nats": {"type": "something_new", "version": 2, "foo": [1, 2]},
    }
    claims = jwt.decode(forge(payload, OPERATOR))
    assert type(claims) is jwt.GenericClaims
    assert claims.claim_type == "something_new"
    assert claims.data["foo"] == [1, 2]
    # generic claims are still verified
    h, p, _ = forge(payload, OPERATOR).split(".")
    assert_fails(f"{h}.{p}.{b64url_encode(bytes(64))}", TokenSignatureError, "signature verification")


def test_no_nats_object_decodes_as_generic() -> None:
    claims = jwt.decode(forge({"iss": ACCOUNT.public_key, "sub": "x"}, ACCOUNT))
    assert type(claims) is jwt.GenericClaims


# --- peek_unverified ----------------------------------------------------------------------------


def test_peek_unverified_does_not_verify() -> None:
    h, p, _ = good_user_token().split(".")
    zeroed = f"{h}.{p}.{b64url_encode(bytes(64))}"
    with pytest.raises(TokenSignatureError):
        jwt.decode(zeroed)
    peeked = jwt.peek_unverified(zeroed)
    assert isinstance(peeked, jwt.UserClaims)
    assert peeked.sub == USER.public_key and peeked.token == zeroed
    # wrong issuer kind: decode refuses, peek shows
    bad_kind = forge(user_payload(OPERATOR), OPERATOR)
    with pytest.raises(IssuerError):
        jwt.decode(bad_kind)
    assert jwt.peek_unverified(bad_kind).iss == OPERATOR.public_key


def test_peek_unverified_still_parses_strictly() -> None:
    with pytest.raises(MalformedTokenError):
        jwt.peek_unverified("a.b")
    with pytest.raises(UnsupportedVersionError):
        jwt.peek_unverified(
            forge(user_payload(), ACCOUNT, header=header_b64({"typ": "jwt", "alg": "ed25519"}))
        )
    h, p, s = good_user_token().split(".")
    with pytest.raises(MalformedTokenError):
        jwt.peek_unverified(f"{h}.{p}=.{s}")
    with pytest.raises(MalformedTokenError):
        jwt.peek_unverified(f"{h}.{p[:10]}+{p[11:]}.{s}")


def test_peek_unverified_is_the_only_unverified_reader() -> None:
    readers = {
        name
        for name in jwt.__all__
        if any(w in name.lower() for w in ("decode", "peek", "parse", "load", "unverified", "read"))
    }
    assert readers == {"decode", "peek_unverified"}
    params = inspect.signature(jwt.decode).parameters
    assert list(params) == ["token", "expect"]  # no verify=False switch, no issuer-kind override
    assert not any("verify" in p for p in params)


def test_every_decode_failure_is_a_trustkit_error() -> None:
    # spot check of unusual inputs: nothing escapes the exception tree
    for bad in [
        "",
        ".",
        "..",
        "a.b.c",
        "eyJ.eyJ.eyJ",
        HEADER_B64 + "..",
        HEADER_B64 + ".e30.",
        HEADER_B64 + ".e30.AA",
        HEADER_B64 + "." + b64url_encode(b'{"nats":null}') + ".AA",
    ]:
        with pytest.raises(TrustkitError):
            jwt.decode(bad)
