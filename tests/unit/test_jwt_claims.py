"""Claims: encoding rules (iss/iat/jti, kinds), Go defaults and zero values, lossless unknown fields,
Go JSON details, revocations, and validation that collects errors, warnings and time checks."""

from __future__ import annotations

import json

import pytest

from tests.unit.support import (
    ACCOUNT,
    ACCOUNT2,
    CURVE,
    OPERATOR,
    OPERATOR2,
    SERVER,
    USER,
    USER2,
    account_payload,
    forge,
    user_payload,
)
from trustkit import jwt
from trustkit.errors import EncodeError, MalformedTokenError, NKeyError
from trustkit.jwt.codec import b64url_decode, go_json, jti_of
from trustkit.nkeys import KeyPair, PrefixByte

IAT = 1_700_000_000


def payload_of(token: str) -> dict:
    return json.loads(b64url_decode(token.split(".")[1]))


def expected_jti(claims: jwt.Claims) -> str:
    std = claims.standard_json()
    std.pop("jti", None)
    return jti_of(go_json(std))


# --- encode -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "signer"),
    [
        (jwt.OperatorClaims(sub=OPERATOR.public_key, name="op"), OPERATOR),
        (jwt.OperatorClaims(sub=OPERATOR.public_key, name="op"), OPERATOR2),  # operator signing key
        (jwt.AccountClaims(sub=ACCOUNT.public_key, name="acct"), OPERATOR),
        (jwt.AccountClaims(sub=ACCOUNT.public_key, name="acct"), ACCOUNT),  # self-signed
        (jwt.UserClaims(sub=USER.public_key, name="usr"), ACCOUNT),
        (jwt.ActivationClaims(sub=ACCOUNT2.public_key, import_subject="a.b", import_type="stream"), ACCOUNT),
        (jwt.GenericClaims(sub=OPERATOR.public_key, data={"accounts": [ACCOUNT.public_key]}), OPERATOR),
        (
            jwt.AuthorizationRequestClaims(
                sub=ACCOUNT.public_key, aud=jwt.AUTH_REQUEST_AUDIENCE, user_nkey=USER.public_key
            ),
            SERVER,
        ),
        (jwt.AuthorizationResponseClaims(sub=USER.public_key, aud=SERVER.public_key, jwt="x"), ACCOUNT),
    ],
    ids=[
        "operator",
        "operator-by-sk",
        "account",
        "account-self",
        "user",
        "activation",
        "generic",
        "auth-request",
        "auth-response",
    ],
)
def test_encode_sets_iss_iat_jti_and_decodes_back(claims: jwt.Claims, signer: KeyPair) -> None:
    token = claims.encode(signer, iat=IAT)
    assert claims.iss == signer.public_key
    assert claims.iat == IAT
    assert len(claims.jti) == 52 and claims.jti == expected_jti(claims)
    p = payload_of(token)
    assert (p["iss"], p["iat"], p["jti"]) == (signer.public_key, IAT, claims.jti)
    assert p["nats"]["version"] == 2
    back = jwt.decode(token, type(claims))
    assert back == claims
    assert back.payload_bytes() == claims.payload_bytes()


def test_encode_overwrites_previous_iss_iat_jti() -> None:
    claims = jwt.UserClaims(sub=USER.public_key, iss="bogus", iat=5, jti="bogus")
    claims.encode(ACCOUNT, iat=IAT)
    assert (claims.iss, claims.iat) == (ACCOUNT.public_key, IAT)
    first = claims.jti
    claims.encode(ACCOUNT, iat=IAT + 1)
    assert claims.jti != first
    # the nats object is not hashed: same std claims → same jti
    other = jwt.UserClaims(sub=USER.public_key, subs=5)
    other.encode(ACCOUNT, iat=IAT + 1)
    assert other.jti == claims.jti


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        (jwt.UserClaims(sub=ACCOUNT.public_key), "expected subject to be user public key"),
        (jwt.UserClaims(sub="garbage"), "expected subject to be user public key"),
        (jwt.UserClaims(), "subject is not set"),
        (jwt.AccountClaims(sub=USER.public_key), "expected subject to be account public key"),
        (jwt.OperatorClaims(sub=ACCOUNT.public_key), "expected subject to be operator public key"),
        (jwt.ActivationClaims(sub=USER.public_key), "expected subject to be account public key"),
        (jwt.UserClaims(sub=USER.seed), "expected subject to be user public key"),
    ],
)
def test_encode_refuses_wrong_subject_kind(claims: jwt.Claims, fragment: str) -> None:
    signer = OPERATOR if isinstance(claims, jwt.OperatorClaims) else ACCOUNT
    if isinstance(claims, jwt.AccountClaims):
        signer = OPERATOR
    with pytest.raises(EncodeError, match=fragment):
        claims.encode(signer, iat=IAT)
    assert claims.token is None and claims.iss == ""


def test_encode_refuses_whitespace_padded_subject() -> None:
    # A subject must be exactly a key: " U…" is not a user public key for Go (or for string compares).
    claims = jwt.UserClaims(sub=" " + USER.public_key)
    with pytest.raises(EncodeError, match="expected subject to be user public key"):
        claims.encode(ACCOUNT, iat=IAT)


@pytest.mark.parametrize(
    ("claims", "signer", "fragment"),
    [
        (jwt.UserClaims(sub=USER.public_key), OPERATOR, "user claims cannot be signed by a operator key"),
        (jwt.UserClaims(sub=USER.public_key), USER2, "user claims cannot be signed by a user key"),
        (jwt.UserClaims(sub=USER.public_key), CURVE, "cannot be signed by a curve key"),
        (jwt.AccountClaims(sub=ACCOUNT.public_key), USER, "account claims cannot be signed by a user key"),
        (
            jwt.OperatorClaims(sub=OPERATOR.public_key),
            ACCOUNT,
            "operator claims cannot be signed by a account key",
        ),
        (
            jwt.AuthorizationRequestClaims(sub=ACCOUNT.public_key, user_nkey=USER.public_key),
            ACCOUNT,
            "cannot be signed by a account key",
        ),
        (
            jwt.AuthorizationResponseClaims(sub=USER.public_key, jwt="x"),
            SERVER,
            "cannot be signed by a server key",
        ),
    ],
)
def test_encode_refuses_wrong_signer_kind(claims: jwt.Claims, signer: KeyPair, fragment: str) -> None:
    with pytest.raises(EncodeError, match=fragment):
        claims.encode(signer, iat=IAT)


def test_encode_refuses_public_only_signer() -> None:
    with pytest.raises(EncodeError, match="no seed"):
        jwt.UserClaims(sub=USER.public_key).encode(KeyPair.from_public_key(ACCOUNT.public_key), iat=IAT)


@pytest.mark.parametrize("iat", [0, -1, True, 1.5, "1700000000", None], ids=repr)
def test_encode_refuses_bad_iat(iat: object) -> None:
    with pytest.raises(EncodeError, match="iat"):
        jwt.UserClaims(sub=USER.public_key).encode(ACCOUNT, iat=iat)  # type: ignore[arg-type]


def test_encode_refuses_integers_go_cannot_read() -> None:
    # Go's int64 fields cannot hold these: the token would be unreadable by nats-server / Go tools
    with pytest.raises(EncodeError, match="iat"):
        jwt.UserClaims(sub=USER.public_key).encode(ACCOUNT, iat=2**63)
    for claims in (
        jwt.UserClaims(sub=USER.public_key, subs=2**63),
        jwt.UserClaims(sub=USER.public_key, exp=2**64),
        jwt.AccountClaims(sub=ACCOUNT.public_key, limits=jwt.AccountLimits(conn=-(2**63) - 1)),
    ):
        signer = OPERATOR if isinstance(claims, jwt.AccountClaims) else ACCOUNT
        with pytest.raises((EncodeError, MalformedTokenError)):
            claims.encode(signer, iat=IAT)


# --- defaults and zero values -------------------------------------------------------------------


def test_defaults_mirror_go_constructors() -> None:
    u = jwt.UserClaims(sub=USER.public_key)
    assert (u.subs, u.data, u.payload) == (-1, -1, -1)
    assert not u.bearer_token and u.resp is None and u.pub.empty() and u.sub_perms.empty()
    a = jwt.AccountClaims(sub=ACCOUNT.public_key)
    lim = a.limits
    assert (lim.subs, lim.data, lim.payload, lim.imports, lim.exports, lim.conn, lim.leaf) == (-1,) * 7
    assert lim.wildcards is True and lim.disallow_bearer is False
    assert (lim.mem_storage, lim.disk_storage, lim.streams, lim.consumer) == (0, 0, 0, 0)
    assert not lim.jetstream_enabled() and lim.tiered_limits == {}
    scope = jwt.UserScope()
    assert scope.kind == "user_scope"
    assert (scope.template.subs, scope.template.data, scope.template.payload) == (-1, -1, -1)


def test_default_payloads_match_go() -> None:
    u = jwt.UserClaims(sub=USER.public_key)
    assert u.nats_json() == {
        "pub": {},
        "sub": {},
        "subs": -1,
        "data": -1,
        "payload": -1,
        "type": "user",
        "version": 2,
    }
    a = jwt.AccountClaims(sub=ACCOUNT.public_key)
    assert go_json(a.nats_json()) == (
        b'{"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,'
        b'"conn":-1,"leaf":-1},"default_permissions":{"pub":{},"sub":{}},"authorization":{},'
        b'"type":"account","version":2}'
    )
    o = jwt.OperatorClaims(sub=OPERATOR.public_key)
    assert o.nats_json() == {"type": "operator", "version": 2}


def test_decoding_uses_zero_values_for_absent_keys() -> None:
    user = jwt.decode(
        forge(
            {"iss": ACCOUNT.public_key, "sub": USER.public_key, "nats": {"type": "user", "version": 2}},
            ACCOUNT,
        ),
        jwt.UserClaims,
    )
    assert (user.subs, user.data, user.payload) == (0, 0, 0)
    assert b'"subs"' not in user.payload_bytes()
    acct = jwt.decode(
        forge(
            {
                "iss": OPERATOR.public_key,
                "sub": ACCOUNT.public_key,
                "nats": {"type": "account", "version": 2},
            },
            OPERATOR,
        ),
        jwt.AccountClaims,
    )
    assert acct.limits.subs == 0 and acct.limits.conn == 0
    assert acct.limits.wildcards is False
    # present-but-partial limits: missing keys are zero too
    acct2 = jwt.AccountClaims.from_payload(account_payload(limits={"subs": 5}))
    assert acct2.limits.subs == 5 and acct2.limits.data == 0 and acct2.limits.wildcards is False
    # …except a scope template: Go unmarshals it into NewUserScope(), whose limits start at -1
    scoped = jwt.AccountClaims.from_payload(
        account_payload(
            signing_keys=[{"kind": "user_scope", "key": ACCOUNT2.public_key, "role": "r", "template": {}}]
        )
    )
    template = scoped.signing_keys[ACCOUNT2.public_key].template  # type: ignore[union-attr]
    assert (template.subs, template.data, template.payload) == (-1, -1, -1)


def test_null_values_decode_as_zero() -> None:
    claims = jwt.UserClaims.from_payload(user_payload(subs=None, pub=None, src=None, tags=None))
    assert claims.subs == 0 and claims.pub.empty() and claims.src == [] and claims.tags == []


def test_src_accepts_comma_separated_string() -> None:
    claims = jwt.UserClaims.from_payload(user_payload(src="10.0.0.0/8, 192.168.0.0/16,10.0.0.0/8"))
    assert claims.src == ["10.0.0.0/8", "192.168.0.0/16"]


# --- unknown fields survive -----------------------------------------------------------------------


def test_unknown_fields_survive_account_round_trip() -> None:
    raw = (
        b'{"jti":"X","iat":1700000000,"iss":"' + OPERATOR.public_key.encode() + b'","name":"a",'
        b'"sub":"' + ACCOUNT.public_key.encode() + b'","x_top":{"k":[1,"v"]},'
        b'"nats":{"exports":[{"subject":"a.b","type":"stream","x_exp":1}],'
        b'"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,'
        b'"conn":-1,"leaf":-1,"x_lim":true},'
        b'"signing_keys":[{"kind":"user_scope","key":"' + ACCOUNT2.public_key.encode() + b'","role":"r",'
        b'"template":{"pub":{"allow":["x"],"x_tpl":2},"sub":{},"subs":-1,"data":-1,"payload":-1},'
        b'"description":"","x_scope":"s"}],'
        b'"default_permissions":{"pub":{"allow":["a"],"x_perm":"y"},"sub":{},"x_dp":null},'
        b'"authorization":{"x_auth":[]},"type":"account","version":2,"x_nats":[1,2.5,"z"]}}'
    )
    claims = jwt.decode(forge(raw, OPERATOR), jwt.AccountClaims)
    assert claims.extra == {"x_top": {"k": [1, "v"]}}
    assert claims.nats_extra == {"x_nats": [1, 2.5, "z"]}
    assert claims.limits.extra == {"x_lim": True}
    assert claims.default_permissions.pub.extra == {"x_perm": "y"}
    assert claims.payload_bytes() == raw
    # and they survive re-signing
    token = claims.encode(OPERATOR, iat=IAT)
    p = payload_of(token)
    assert p["x_top"] == {"k": [1, "v"]}
    assert p["nats"]["x_nats"] == [1, 2.5, "z"]
    assert p["nats"]["limits"]["x_lim"] is True
    assert p["nats"]["default_permissions"]["pub"]["x_perm"] == "y"
    assert p["nats"]["exports"][0]["x_exp"] == 1
    assert p["nats"]["signing_keys"][0]["x_scope"] == "s"
    assert p["nats"]["signing_keys"][0]["template"]["pub"]["x_tpl"] == 2


def test_unknown_fields_survive_user_round_trip() -> None:
    payload = user_payload(
        pub={"allow": ["a"], "x_perm": {"q": 1}}, resp={"max": 1, "ttl": 5, "x_resp": 0}, x_nats="n"
    )
    payload["x_top"] = 7
    claims = jwt.decode(forge(payload, ACCOUNT), jwt.UserClaims)
    out = json.loads(claims.payload_bytes())
    assert out["x_top"] == 7
    assert out["nats"]["x_nats"] == "n"
    assert out["nats"]["pub"] == {"allow": ["a"], "x_perm": {"q": 1}}
    assert out["nats"]["resp"] == {"max": 1, "ttl": 5, "x_resp": 0}


# --- Go JSON details ------------------------------------------------------------------------------


def test_html_escaping_and_raw_utf8_in_payload() -> None:
    claims = jwt.UserClaims(sub=USER.public_key, name="<b>&\u2028\u2029 é 日本 🙂", tags=["a>b"])
    claims.pub.deny.append(">")
    token = claims.encode(ACCOUNT, iat=IAT)
    raw = b64url_decode(token.split(".")[1])
    assert b'"name":"\\u003cb\\u003e\\u0026\\u2028\\u2029 ' + "é 日本 🙂".encode() + b'"' in raw
    assert b'"deny":["\\u003e"]' in raw
    assert b'"tags":["a\\u003eb"]' in raw
    for ch in (b"<", b">", b"&", "\u2028".encode(), "\u2029".encode(), b"\\u00e9"):
        assert ch not in raw
    back = jwt.decode(token, jwt.UserClaims)
    assert back.name == claims.name and back.pub.deny == [">"]


def test_exports_and_imports_sorted_by_subject_on_encode() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.exports = [jwt.Export(subject=s, type="stream") for s in ("b.>", "a.>", "B.>", "a.b.c")]
    acct.imports = [
        jwt.Import(subject=s, account=ACCOUNT2.public_key, type="service") for s in ("z", "m", "Z")
    ]
    p = payload_of(acct.encode(OPERATOR, iat=IAT))
    assert [e["subject"] for e in p["nats"]["exports"]] == ["B.>", "a.>", "a.b.c", "b.>"]
    assert [i["subject"] for i in p["nats"]["imports"]] == ["Z", "m", "z"]


def test_signing_keys_written_as_sorted_array_with_scopes() -> None:
    keys = sorted(
        KeyPair.generate(PrefixByte.ACCOUNT, rand=lambda n, i=i: bytes([40 + i]) * n).public_key
        for i in range(3)
    )
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.add_signing_key(keys[2])
    acct.add_signing_key(keys[0], jwt.UserScope(role="sentinel"))
    acct.add_signing_key(keys[1])
    p = payload_of(acct.encode(OPERATOR, iat=IAT))
    sk = p["nats"]["signing_keys"]
    assert sk[1:] == [keys[1], keys[2]]
    assert sk[0] == {
        "kind": "user_scope",
        "key": keys[0],
        "role": "sentinel",
        "template": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
        "description": "",
    }
    raw = acct.payload_bytes()
    assert b'"description":""}' in raw  # description always written, even empty
    assert list(sk[0]) == ["kind", "key", "role", "template", "description"]
    back = jwt.decode(acct.token, jwt.AccountClaims)  # type: ignore[arg-type]
    assert back.signing_keys[keys[1]] is None
    assert back.scope_of(keys[0]) == acct.signing_keys[keys[0]]


def test_signing_keys_decode_legacy_map_form() -> None:
    claims = jwt.AccountClaims.from_payload(
        account_payload(signing_keys={ACCOUNT2.public_key: ACCOUNT2.public_key})
    )
    assert claims.signing_keys == {ACCOUNT2.public_key: None}


def test_add_signing_key_checks_kind() -> None:
    with pytest.raises(NKeyError):
        jwt.AccountClaims(sub=ACCOUNT.public_key).add_signing_key(USER.public_key)


def test_revocations_written_with_sorted_keys() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.revocations = {USER2.public_key: 3, "*": 1, USER.public_key: 2}
    p = payload_of(acct.encode(OPERATOR, iat=IAT))
    assert list(p["nats"]["revocations"]) == sorted([USER2.public_key, "*", USER.public_key])
    assert next(iter(p["nats"]["revocations"])) == "*"


def test_generic_claims_nested_maps_are_sorted_like_go() -> None:
    # Go's generic claims hold map[string]interface{}: every nested map is written with sorted keys.
    g = jwt.GenericClaims(
        sub=OPERATOR.public_key, data={"z": {"b": 1, "a": {"d": 2, "c": 3}}, "accounts": ["A"]}
    )
    g.encode(OPERATOR, iat=IAT)
    raw = g.payload_bytes()
    assert raw.endswith(b'"nats":{"accounts":["A"],"version":2,"z":{"a":{"c":3,"d":2},"b":1}}}')


def test_lone_surrogates_fail_closed_when_writing_generic_claims() -> None:
    # JSON may carry "\ud800" escapes, which UTF-8 cannot hold. Go replaces them; trustkit refuses
    # the token at decode, and refuses to write such claims: always a TrustkitError, never a bare
    # UnicodeEncodeError.
    raw = (
        b'{"iss":"'
        + OPERATOR.public_key.encode()
        + b'","sub":"x","nats":{"m":{"\\ud800":1,"a":2},"version":2}}'
    )
    with pytest.raises(MalformedTokenError, match="not valid JSON"):
        jwt.decode(forge(raw, OPERATOR))
    with pytest.raises(MalformedTokenError):
        jwt.GenericClaims(sub=OPERATOR.public_key, data={"m": {"\ud800": 1, "a": 2}}).payload_bytes()
    with pytest.raises(MalformedTokenError):
        jwt.GenericClaims(sub=OPERATOR.public_key, data={"\ud800": 1}).encode(OPERATOR, iat=IAT)


def test_lone_surrogates_fail_closed_when_re_signing_an_account() -> None:
    exports = [{"subject": "\ud800", "type": "stream"}, {"subject": "a", "type": "stream"}]
    with pytest.raises(MalformedTokenError, match="not valid JSON"):
        jwt.decode(forge(account_payload(exports=exports), OPERATOR), jwt.AccountClaims)
    claims = jwt.AccountClaims(
        sub=ACCOUNT.public_key,
        exports=[jwt.Export(subject="\ud800", type="stream"), jwt.Export(subject="a", type="stream")],
    )
    with pytest.raises(MalformedTokenError):
        claims.payload_bytes()
    with pytest.raises(MalformedTokenError):
        claims.encode(OPERATOR, iat=IAT)  # sorting exports must not escape as UnicodeEncodeError


def test_generic_claims_write_version_2_and_sorted_keys() -> None:
    g = jwt.GenericClaims(sub=OPERATOR.public_key, data={"zeta": 1, "accounts": [ACCOUNT.public_key]})
    p = payload_of(g.encode(OPERATOR, iat=IAT))
    assert list(p["nats"]) == ["accounts", "version", "zeta"]
    assert p["nats"]["version"] == 2
    assert b'"version":2' in g.payload_bytes() and b'"version":2.0' not in g.payload_bytes()


# --- revocations ----------------------------------------------------------------------------------


def test_is_revoked_semantics() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.revoke(USER.public_key, 100)
    assert acct.is_revoked(USER.public_key, 99)
    assert acct.is_revoked(USER.public_key, 100)  # equality counts: same-second issue is revoked
    assert not acct.is_revoked(USER.public_key, 101)
    assert not acct.is_revoked(USER2.public_key, 50)
    acct.revoke("*", 200)
    assert acct.is_revoked(USER2.public_key, 200)
    assert acct.is_revoked(USER.public_key, 150)
    assert not acct.is_revoked(USER2.public_key, 201)
    assert jwt.is_revoked({"*": 10}, "anything", 10)
    assert not jwt.is_revoked({}, USER.public_key, 1)


def test_revoke_keeps_the_later_time() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.revoke(USER.public_key, 100)
    acct.revoke(USER.public_key, 50)
    assert acct.revocations[USER.public_key] == 100
    acct.revoke(USER.public_key, 150)
    assert acct.revocations[USER.public_key] == 150
    acct.clear_revocation(USER.public_key)
    assert USER.public_key not in acct.revocations
    acct.clear_revocation(USER.public_key)  # idempotent
    with pytest.raises(NKeyError):
        acct.revoke(ACCOUNT2.public_key, 1)


def test_maybe_compact() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    assert acct.maybe_compact() == []
    acct.revocations = {USER.public_key: 100, USER2.public_key: 300, "*": 200}
    assert acct.maybe_compact() == [USER.public_key]
    assert acct.revocations == {USER2.public_key: 300, "*": 200}
    acct.revocations[USER.public_key] = 200  # equal to "*": covered, removed
    assert acct.maybe_compact() == [USER.public_key]
    acct.revocations = {USER.public_key: 1}
    assert acct.maybe_compact() == [] and acct.revocations == {USER.public_key: 1}


# --- validation -----------------------------------------------------------------------------------


def test_time_checks() -> None:
    u = jwt.UserClaims(sub=USER.public_key, exp=100, nbf=50)
    vr = u.validate(now=101)
    assert vr.time_checks == ["claim is expired"] and vr.errors == [] and vr.warnings == []
    assert vr.is_blocking(include_time_checks=True) and not vr.is_blocking(include_time_checks=False)
    assert u.validate(now=100).is_empty()  # expired only when now > exp
    assert u.validate(now=50).is_empty()
    assert u.validate(now=49).time_checks == ["claim is not yet valid"]
    assert u.is_expired(101) and not u.is_expired(100)
    assert u.is_not_yet_valid(49) and not u.is_not_yet_valid(50)
    assert jwt.UserClaims(sub=USER.public_key).validate(now=10**12).is_empty()  # exp 0 = never


def test_validation_collects_user_errors() -> None:
    u = jwt.UserClaims(sub=USER.public_key, exp=10)
    u.src = ["10.0.0.0/33", "10.0.0.1", "not-a-cidr", "10.1.0.0/16", "::1/128"]
    u.times = [
        jwt.TimeRange("25:00:00", "01:00:00"),
        jwt.TimeRange("", "02:00:00"),
        jwt.TimeRange("08:00:00", ""),
    ]
    u.times_location = "Not/AZone"
    u.pub = jwt.Permission(allow=["foo q", "a..b"], deny=["x.>.y"])
    u.sub_perms = jwt.Permission(allow=["foo q", "a b c", ".x"])
    u.allowed_connection_types = ["STANDARD", "BOGUS"]
    u.issuer_account = USER2.public_key
    vr = u.validate(now=20)
    errors = "\n".join(vr.errors)
    assert "invalid cidr '10.0.0.0/33'" in errors
    assert "invalid cidr '10.0.0.1'" in errors
    assert "invalid cidr 'not-a-cidr'" in errors
    assert "10.1.0.0/16" not in errors and "::1/128" not in errors
    assert "start in time range is invalid '25:00:00'" in errors
    assert "time ranges start must contain a start" in errors
    assert "time ranges end must contain an end" in errors
    assert "could not parse iana time zone by name: 'Not/AZone'" in errors
    assert 'Permission Subject "foo q" is not allowed to contain queue' in errors  # pub: no queues
    assert errors.count("foo q") == 1  # sub: a queue is fine
    assert "'a..b' has an empty token" in errors
    assert "'x.>.y': '>' must be the last token" in errors
    assert 'Permission Subject "a b c" contains too many spaces' in errors
    assert "'.x' has an empty token" in errors
    assert "account_id is not an account public key" in errors
    assert vr.warnings == ["unknown connection type 'BOGUS'"]
    assert vr.time_checks == ["claim is expired"]


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
def test_valid_time_zones(tz: str) -> None:
    assert jwt.UserClaims(sub=USER.public_key, times_location=tz).validate(now=1).is_empty()


@pytest.mark.parametrize(
    "tz", ["Not/AZone", "../etc/passwd", "/etc/localtime", "\x00", "Europe/Berlin ", "x" * 300]
)
def test_invalid_time_zones(tz: str) -> None:
    errors = jwt.UserClaims(sub=USER.public_key, times_location=tz).validate(now=1).errors
    assert len(errors) == 1 and "could not parse iana time zone" in errors[0]


@pytest.mark.parametrize("bad", ["\u0663:00:00", "01:\u0663\u0663:00", "1:00:0\u0669"])
def test_time_range_requires_ascii_digits(bad: str) -> None:
    # Go parses "15:04:05" with ASCII digits only; Python's re \d also matches Arabic-Indic digits
    u = jwt.UserClaims(sub=USER.public_key, times=[jwt.TimeRange(bad, "02:00:00")])
    assert any("start in time range is invalid" in e for e in u.validate(now=1).errors)


def test_valid_time_ranges() -> None:
    u = jwt.UserClaims(
        sub=USER.public_key,
        times=[jwt.TimeRange("1:00:00", "23:59:59"), jwt.TimeRange("22:00:00", "02:00:00")],
    )
    assert u.validate(now=1).is_empty()


def test_account_validation_errors() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.exports = [
        jwt.Export(subject="a b", type="stream"),
        jwt.Export(subject="x.>", type="service"),
        jwt.Export(subject="x.y", type="service"),
        jwt.Export(subject="s", type="bogus"),
    ]
    acct.imports = [jwt.Import(subject="q", account=USER.public_key, type="stream")]
    acct.authorization = jwt.ExternalAuthorization(
        allowed_accounts=["*", ACCOUNT2.public_key], xkey=USER.public_key
    )
    acct.revocations = {"junk": 1}
    vr = acct.validate(now=1)
    errors = "\n".join(vr.errors)
    assert "'a b' cannot contain white space" in errors
    assert "overlapping subject namespace" in errors
    assert "invalid export type: 'bogus'" in errors
    assert "is not a valid account public key" in errors
    assert "External authorization cannot have accounts without users specified" in errors
    assert 'AllowedAccounts can only be a list of accounts or "*"' in errors
    assert "is not a valid curve public key" in errors
    assert "revocation key 'junk' is not a public key" in errors


def test_account_callout_block_valid() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.authorization = jwt.ExternalAuthorization(
        auth_users=[USER.public_key], allowed_accounts=["*"], xkey=CURVE.public_key
    )
    assert acct.callout_enabled()
    assert acct.validate(now=1).is_empty()


def test_self_signed_account_with_limits_warns() -> None:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key)
    acct.limits.conn = 5
    acct.encode(ACCOUNT, iat=IAT)
    vr = acct.validate(now=IAT)
    assert vr.errors == [] and vr.warnings == ["self-signed account JWTs shouldn't contain operator limits"]
    acct.encode(OPERATOR, iat=IAT)
    assert acct.validate(now=IAT).is_empty()


def test_operator_validation() -> None:
    op = jwt.OperatorClaims(sub=OPERATOR.public_key)
    op.operator_service_urls = ["nats://ok:4222", "http://bad:80", "nats://u:p@h:4222", "tls://h/path"]
    op.signing_keys = [ACCOUNT.public_key]
    op.system_account = USER.public_key
    op.assert_server_version = "2.10"
    op.account_server_url = "no-scheme"
    errors = "\n".join(op.validate(now=1).errors)
    assert "'http://bad:80' - protocol not supported" in errors
    assert "credentials are not supported" in errors
    assert "paths are not supported" in errors
    assert "is not an operator public key" in errors
    assert "is not an account public key" in errors
    assert "asserted server version must be of the form" in errors
    assert "requires a protocol" in errors
    assert "nats://ok:4222" not in errors


def test_operator_server_version_requires_ascii_digits() -> None:
    op = jwt.OperatorClaims(sub=OPERATOR.public_key, assert_server_version="\u0662.\u0661\u0660.\u0660")
    assert any("asserted server version" in e for e in op.validate(now=1).errors)


def test_validate_reports_bad_subject_key() -> None:
    assert jwt.UserClaims(sub=ACCOUNT.public_key).validate(now=1).errors == [
        f"subject {ACCOUNT.public_key!r} is not a valid user public key"
    ]


# --- scoped users -------------------------------------------------------------------------------


def test_set_scoped_clears_permissions_and_limits() -> None:
    u = jwt.UserClaims(sub=USER.public_key, issuer_account=ACCOUNT.public_key)
    assert not u.has_empty_permissions()  # subs/data/payload -1 are limits
    u.pub.allow.append("a")
    u.set_scoped()
    assert u.has_empty_permissions()
    assert u.nats_json() == {
        "pub": {},
        "sub": {},
        "issuer_account": ACCOUNT.public_key,
        "type": "user",
        "version": 2,
    }


# --- auth callout -------------------------------------------------------------------------------


def test_authorization_response_validation() -> None:
    bad = jwt.AuthorizationResponseClaims(sub=ACCOUNT.public_key, aud=USER.public_key)
    assert bad.validate(now=1).errors == [
        "Subject must be a user public key",
        "Audience must be a server public key",
        "Error or Jwt is required",
    ]
    both = jwt.AuthorizationResponseClaims(sub=USER.public_key, aud=SERVER.public_key, jwt="x", error="no")
    assert both.validate(now=1).errors == ["Only Error or Jwt can be set"]
    for ok in (
        jwt.AuthorizationResponseClaims(sub=USER.public_key, aud=SERVER.public_key, jwt="x"),
        jwt.AuthorizationResponseClaims(sub=USER.public_key, aud=SERVER.public_key, error="denied"),
    ):
        assert ok.validate(now=1).is_empty()
    ia = jwt.AuthorizationResponseClaims(
        sub=USER.public_key, aud=SERVER.public_key, jwt="x", issuer_account=USER.public_key
    )
    assert ia.validate(now=1).errors == ["issuer_account is not an account public key"]


def test_authorization_request_validation_and_round_trip() -> None:
    req = jwt.AuthorizationRequestClaims(sub=ACCOUNT.public_key, aud=jwt.AUTH_REQUEST_AUDIENCE)
    assert req.validate(now=1).errors == ["User nkey is required"]
    req.user_nkey = ACCOUNT.public_key
    assert "is not a valid user public key" in req.validate(now=1).errors[0]
    req.user_nkey = USER.public_key
    req.server_id = jwt.ServerID(name="s", host="h", id=SERVER.public_key, xkey=CURVE.public_key)
    req.connect_opts = jwt.ConnectOptions(user="bob", password="hunter2", protocol=1)
    assert req.validate(now=1).is_empty()
    token = req.encode(SERVER, iat=IAT)
    back = jwt.decode(token, jwt.AuthorizationRequestClaims)
    assert back.user_nkey == USER.public_key and back.connect_opts.password == "hunter2"
    assert payload_of(token)["nats"]["connect_opts"]["pass"] == "hunter2"
    assert "hunter2" not in repr(back.connect_opts)
