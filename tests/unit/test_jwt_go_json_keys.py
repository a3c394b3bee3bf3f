"""Keys Go's ``encoding/json`` reads differently from a plain dict lookup are refused.

Go matches a JSON key to a struct field case-insensitively (``"Pub"`` sets ``pub``; with Unicode
simple folding, so a long s (U+017F) is an ``s`` and the Kelvin sign is a ``k``), and decodes a repeated
struct key *into* the first value (a merge). nats-server therefore enforces fields that a
lookup of the exact lower-case key would skip — ``tests/interop/test_go_json_quirks.py`` shows
it on the real server. trustkit refuses such tokens rather than read them differently; the
spellings NATS tools write (Go's escapes, JS's compact JSON) take the fast path.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.support import ACCOUNT, OPERATOR, account_payload, forge, user_payload
from trustkit import jwt
from trustkit.errors import MalformedTokenError
from trustkit.jwt.codec import b64url_decode


def _raw_user(nats_json: str) -> bytes:
    """A user payload whose ``nats`` object is written verbatim (to repeat or re-case keys)."""
    head = json.dumps({k: v for k, v in user_payload().items() if k != "nats"}, separators=(",", ":"))
    return (head[:-1] + ',"nats":' + nats_json + "}").encode()


@pytest.mark.parametrize(
    ("nats_json", "fragment"),
    [
        ('{"Pub":{"allow":["ok"]},"type":"user","version":2}', "'Pub' differs from the field 'pub'"),
        ('{"SUBS":0,"type":"user","version":2}', "'SUBS' differs from the field 'subs'"),
        ('{"\u017fub":{"allow":["ok"]},"type":"user","version":2}', "differs from the field 'sub'"),
        ('{"bearer_to\u212aen":true,"type":"user","version":2}', "differs from the field 'bearer_token'"),
        ('{"pub":{"Allow":["ok"]},"type":"user","version":2}', "'Allow' differs from the field 'allow'"),
        ('{"resp":{"MAX":1,"ttl":0},"type":"user","version":2}', "'MAX' differs from the field 'max'"),
        ('{"pub":{},"Type":"user","type":"user","version":2}', "'Type' differs from the field 'type'"),
    ],
)
def test_case_variant_of_a_field_is_refused(nats_json: str, fragment: str) -> None:
    with pytest.raises(MalformedTokenError, match="only in letter case") as info:
        jwt.decode(forge(_raw_user(nats_json), ACCOUNT), jwt.UserClaims)
    assert fragment in str(info.value)


def test_case_variant_of_a_standard_claim_is_refused() -> None:
    payload = user_payload()
    payload["NAME"] = "other"
    with pytest.raises(MalformedTokenError, match="'NAME' differs from the field 'name'"):
        jwt.decode(forge(payload, ACCOUNT), jwt.UserClaims)


def test_case_variant_of_nats_is_refused() -> None:
    payload = user_payload()
    payload["NATS"] = payload.pop("nats")
    with pytest.raises(MalformedTokenError, match="'NATS' differs from the field 'nats'"):
        jwt.decode(forge(payload, ACCOUNT))


def test_case_variant_inside_account_limits_is_refused() -> None:
    payload = account_payload()
    payload["nats"]["limits"]["Conn"] = 1
    with pytest.raises(MalformedTokenError, match="'Conn' differs from the field 'conn'"):
        jwt.decode(forge(payload, OPERATOR), jwt.AccountClaims)


def test_unknown_keys_that_are_not_case_variants_still_round_trip() -> None:
    payload = user_payload(x_custom={"Pub": 1})  # a free-form value may hold any key
    payload["x_top"] = "v"
    claims = jwt.decode(forge(payload, ACCOUNT), jwt.UserClaims)
    assert claims.nats_extra == {"x_custom": {"Pub": 1}}
    assert claims.extra == {"x_top": "v"}


def test_map_keys_are_not_fields() -> None:
    """Revocation keys are map keys (exact in Go too): two spellings are two entries."""
    payload = account_payload(revocations={"*": 5, "UABC": 1, "uabc": 2})
    claims = jwt.decode(forge(payload, OPERATOR), jwt.AccountClaims)
    assert claims.revocations == {"*": 5, "UABC": 1, "uabc": 2}


def test_generic_claims_nats_is_a_plain_map() -> None:
    nats = {"Accounts": ["a"], "accounts": ["b"]}
    payload = {"iat": 1, "iss": OPERATOR.public_key, "sub": "x", "nats": nats}
    claims = jwt.decode(forge(payload, OPERATOR))
    assert isinstance(claims, jwt.GenericClaims)
    assert claims.data == {"Accounts": ["a"], "accounts": ["b"]}


@pytest.mark.parametrize(
    ("nats_json", "key"),
    [
        ('{"pub":{"allow":["ok"]},"pub":{},"type":"user","version":2}', "pub"),
        ('{"pub":{"allow":["a"],"allow":["b"]},"type":"user","version":2}', "allow"),
        ('{"subs":1,"subs":-1,"type":"user","version":2}', "subs"),
    ],
)
def test_repeated_keys_are_refused(nats_json: str, key: str) -> None:
    with pytest.raises(MalformedTokenError, match=f"repeats the key '{key}'"):
        jwt.decode(forge(_raw_user(nats_json), ACCOUNT), jwt.UserClaims)


def test_repeated_top_level_key_is_refused() -> None:
    raw = json.dumps(user_payload(), separators=(",", ":")).encode()
    raw = raw[:-1] + b',"name":"again"}'
    with pytest.raises(MalformedTokenError, match="repeats the key 'name'"):
        jwt.decode(forge(raw, ACCOUNT), jwt.UserClaims)


def test_repeated_map_key_is_refused() -> None:
    raw = json.dumps(account_payload(revocations={"UABC": 1}), separators=(",", ":")).encode()
    raw = raw.replace(b'{"UABC":1}', b'{"UABC":1,"UABC":2}')
    with pytest.raises(MalformedTokenError, match="repeats the key 'UABC'"):
        jwt.decode(forge(raw, OPERATOR), jwt.AccountClaims)


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda p: json.dumps(p, separators=(",", ":")), id="compact (JS)"),
        pytest.param(lambda p: json.dumps(p), id="with spaces"),
        pytest.param(lambda p: json.dumps(p, indent=2, ensure_ascii=True), id="indented, escaped"),
        pytest.param(
            lambda p: json.dumps(p, separators=(",", ":")).replace(">", "\\u003e"), id="Go's escapes"
        ),
    ],
)
def test_every_spelling_without_repeats_decodes(spelling: object) -> None:
    payload = user_payload(pub={"allow": ["a.>", "b.*"], "deny": ["a.<x>&"]}, tags=["é", "\u2028"])
    raw = spelling(payload).encode()  # type: ignore[operator]
    claims = jwt.decode(forge(raw, ACCOUNT), jwt.UserClaims)
    assert claims.pub.allow == ["a.>", "b.*"] and claims.pub.deny == ["a.<x>&"]
    assert claims.tags == ["é", "\u2028"]


def test_trustkit_tokens_take_the_fast_path() -> None:
    """What trustkit (= Go) writes re-serialises to itself, so no second parse is needed."""
    import orjson

    from trustkit.jwt import decoder

    claims = jwt.UserClaims(sub=jwt.decode(forge(user_payload(), ACCOUNT)).sub)
    claims.pub = jwt.Permission(allow=["a.>", "<&>"])
    claims.tags = ["\u2028x"]
    token = claims.encode(ACCOUNT, iat=1700000000)
    raw = b64url_decode(token.split(".")[1])
    out = orjson.dumps(orjson.loads(raw))
    for plain, escaped in decoder._GO_ESCAPES + decoder._GO_ESCAPES_E280:
        out = out.replace(plain, escaped)
    assert out == raw
