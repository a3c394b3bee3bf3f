"""trustkit vs the Go reference libraries (nats-io/jwt v2.3.0, nkeys 0.3.0): byte-for-byte.

Method: build claims in Python, send their JSON to the Go checker (``encode``), read the ``iat`` Go
chose, re-encode the same claims with trustkit at that ``iat`` with the same signer and compare the
WHOLE token (Ed25519 is deterministic, so equal payloads give equal tokens). Then each side decodes
and validates the other's token, and trustkit re-encodes Go's decoded claims.

Debian ships nats-io/jwt v2.3.0; trustkit writes what the current library writes. The differences
(checked in /usr/share/gocode/src/github.com/nats-io/jwt/v2 against upstream HEAD) are:

* accounts: v2.3.0 has no ``authorization`` block; modern Go always writes ``"authorization":{}``
  (a struct, never omitted) after ``default_permissions``/``mappings``;
* scoped signing keys: v2.3.0's ``UserScope`` has no ``description``; modern Go always writes
  ``"description":""`` as the last key of each scope object;
* v2.3.0 writes account ``signing_keys`` in Go map order (random); modern Go sorts them;
* no ``trace``/``cluster_traffic`` on accounts, no ``allow_trace`` on imports/exports, no
  ``proxy_required`` on users (all omitempty, so absent while unset).

For accounts the expected modern bytes are computed from Go's payload by inserting exactly those
two constructs (:func:`modernize_account_payload`); every other kind must be identical.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.interop.gocheck import GoChecker
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

OP, ACC, USR = PrefixByte.OPERATOR, PrefixByte.ACCOUNT, PrefixByte.USER

# --- deterministic keys ---------------------------------------------------------------------------


def _key(kind: PrefixByte, label: str) -> KeyPair:
    """A fixed key per label (same key in every run and in every test order)."""
    digest = hashlib.sha256(f"trustkit/go-interop/{label}".encode()).digest()
    return KeyPair.generate(kind, rand=lambda n: digest[:n])


OPERATOR = _key(OP, "operator")
OP_SK1, OP_SK2, OP_SK3 = (_key(OP, f"operator-sk{i}") for i in (1, 2, 3))
SYS_ACCOUNT = _key(ACC, "system-account")
ACCOUNT = _key(ACC, "account-orders")
ACCOUNT_SK_SCOPED = _key(ACC, "account-orders-sk-scoped")
ACCOUNT_SK_PLAIN = _key(ACC, "account-orders-sk-plain")
ACCOUNT_SK_EXTRA = _key(ACC, "account-orders-sk-extra")
EXPORTER = _key(ACC, "account-exporter")
EXPORTER_SK = _key(ACC, "account-exporter-sk")
PARTNER = _key(ACC, "account-partner")
USER = _key(USR, "user-alice")
USER_MIN = _key(USR, "user-bob")
USER_SCOPED = _key(USR, "user-carol")
USER_REVOKED = _key(USR, "user-mallory")

NBF = 1_700_000_000  # 2023-11-14: in the past, Go validates with the real clock
EXP = 4_102_444_800  # 2100-01-01: in the future
SECOND = 1_000_000_000  # time.Duration

#: module-level fixed randomness for the nkeys cases
_RNG = random.Random(0x6E6B657973)  # "nkeys"


# --- helpers ----------------------------------------------------------------------------------------


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def payload_of(token: str) -> bytes:
    return b64url_decode(token.split(".")[1])


def _skip_string(buf: bytes, i: int) -> int:
    assert buf[i : i + 1] == b'"', (i, buf[i : i + 20])
    i += 1
    while True:
        c = buf[i : i + 1]
        if c == b"\\":
            i += 2
        elif c == b'"':
            return i + 1
        else:
            assert c, "unterminated string"
            i += 1


def _skip_value(buf: bytes, i: int) -> int:
    """End index (exclusive) of the compact JSON value starting at ``buf[i]``."""
    c = buf[i : i + 1]
    if c == b'"':
        return _skip_string(buf, i)
    if c in (b"{", b"["):
        depth = 0
        while True:
            c = buf[i : i + 1]
            if c == b'"':
                i = _skip_string(buf, i)
                continue
            if c in (b"{", b"["):
                depth += 1
            elif c in (b"}", b"]"):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while buf[i : i + 1] not in (b",", b"}", b"]"):
        i += 1
    return i


def _object_members(buf: bytes, start: int) -> list[tuple[str, int, int]]:
    """(key, value start, value end) of the compact JSON object at ``buf[start]``."""
    assert buf[start : start + 1] == b"{"
    out: list[tuple[str, int, int]] = []
    i = start + 1
    if buf[i : i + 1] == b"}":
        return out
    while True:
        kend = _skip_string(buf, i)
        key = json.loads(buf[i:kend])
        assert buf[kend : kend + 1] == b":"
        vstart = kend + 1
        vend = _skip_value(buf, vstart)
        out.append((key, vstart, vend))
        if buf[vend : vend + 1] == b"}":
            return out
        assert buf[vend : vend + 1] == b","
        i = vend + 1


def _array_elements(buf: bytes, start: int) -> list[tuple[int, int]]:
    assert buf[start : start + 1] == b"["
    out: list[tuple[int, int]] = []
    i = start + 1
    if buf[i : i + 1] == b"]":
        return out
    while True:
        end = _skip_value(buf, i)
        out.append((i, end))
        if buf[end : end + 1] == b"]":
            return out
        assert buf[end : end + 1] == b","
        i = end + 1


def modernize_account_payload(go_payload: bytes) -> bytes:
    """Go v2.3.0 account payload → the bytes the modern library writes for the same claims.

    Inserts exactly ``"authorization":{}`` after ``default_permissions`` (or ``mappings`` when
    present) and ``"description":""`` at the end of every scoped signing key object.
    """
    top = _object_members(go_payload, 0)
    assert [k for k, _, _ in top][-1] == "nats", top
    _, nats_start, _ = top[-1]
    members = _object_members(go_payload, nats_start)
    keys = [k for k, _, _ in members]
    assert "authorization" not in keys
    anchor = "mappings" if "mappings" in keys else "default_permissions"
    idx = keys.index(anchor)
    following = keys[idx + 1 : idx + 2]
    # what may follow the authorization block in a v2.3.0 payload (trace/cluster_traffic don't exist)
    assert following and following[0] in ("description", "info_url", "tags", "type"), keys
    inserts: list[tuple[int, bytes]] = [(members[idx][2], b',"authorization":{}')]
    if "signing_keys" in keys:
        _, sk_start, _ = members[keys.index("signing_keys")]
        for estart, eend in _array_elements(go_payload, sk_start):
            if go_payload[estart : estart + 1] == b"{":
                scope_keys = [k for k, _, _ in _object_members(go_payload, estart)]
                assert scope_keys == ["kind", "key", "role", "template"], scope_keys
                inserts.append((eend - 1, b',"description":""'))
    out = go_payload
    for pos, text in sorted(inserts, reverse=True):
        out = out[:pos] + text + out[pos:]
    return out


def claims_json_for_go(claims: jwt.Claims) -> dict[str, Any]:
    """trustkit's payload as JSON for Go v2.3.0, minus exactly the documented modern-only keys.

    The result is encoded with ``strict=True``: Go refuses any key its structs don't know, so
    nothing trustkit writes can be silently dropped on the Go side.
    """
    payload = json.loads(claims.payload_bytes())
    if isinstance(claims, jwt.AccountClaims):
        nats = payload["nats"]
        assert nats.pop("authorization") == {}
        for entry in nats.get("signing_keys", []):
            if isinstance(entry, dict):
                assert entry.pop("description") == ""
    return payload


def kind_of(claims: jwt.Claims) -> str:
    return claims.CLAIM_TYPE or "generic"


@dataclass
class Pair:
    go_token: str
    tk_token: str
    iat: int


def encode_both(go: GoChecker, claims: jwt.Claims, signer: KeyPair) -> Pair:
    """Encode in Go (iat = Go's now), then in trustkit at the same iat with the same signer."""
    go_token = go.encode(kind_of(claims), signer.seed, claims_json_for_go(claims), strict=True)
    iat = json.loads(payload_of(go_token))["iat"]
    tk_token = claims.encode(signer, iat=iat)
    return Pair(go_token, tk_token, iat)


def assert_no_go_issues(go: GoChecker, token: str, kind: str) -> dict[str, Any]:
    result = go.decode(token, kind)
    if kind != "generic":
        assert result["kind"] == kind
    assert result["errors"] == [], result
    assert result["warnings"] == [], result
    assert result["time_checks"] == [], result
    return result


def assert_no_tk_issues(claims: jwt.Claims) -> None:
    vr = claims.validate(now=int(time.time()))
    assert vr.errors == [], vr.issues
    assert vr.warnings == [], vr.issues
    assert vr.time_checks == [], vr.issues


def show(a: bytes, b: bytes) -> str:
    return f"\ntrustkit: {a.decode()}\nexpected: {b.decode()}"


# --- claim builders ---------------------------------------------------------------------------------


def activation_geo() -> jwt.ActivationClaims:
    return jwt.ActivationClaims(
        sub=ACCOUNT.public_key,
        name="geo.lookup",
        import_subject="geo.lookup",
        import_type="service",
    )


#: the activation token ACCOUNT's service import carries (trustkit-signed by the exporter)
GEO_ACTIVATION = activation_geo().encode(EXPORTER, iat=NBF)


def operator_full() -> jwt.OperatorClaims:
    return jwt.OperatorClaims(
        sub=OPERATOR.public_key,
        name="ACME Ops",
        signing_keys=[OP_SK1.public_key, OP_SK2.public_key, OP_SK3.public_key],
        account_server_url="https://accounts.example.com:9090/jwt/v1",
        operator_service_urls=["nats://nats1.example.com:4222", "tls://nats2.example.com:4443"],
        system_account=SYS_ACCOUNT.public_key,
        assert_server_version="2.10.7",
        strict_signing_key_usage=True,
        tags=["env:prod", "region:eu"],
    )


def operator_minimal() -> jwt.OperatorClaims:
    return jwt.OperatorClaims(sub=OPERATOR.public_key, name="dev")


def scoped_key() -> jwt.UserScope:
    return jwt.UserScope(
        role="service-writer",
        template=jwt.UserPermissionLimits(
            pub=jwt.Permission(allow=["orders.>", "billing.usage"], deny=["orders.internal.>"]),
            sub=jwt.Permission(allow=["_INBOX.>", "orders.replies.*"], deny=["admin.>"]),
            resp=jwt.ResponsePermission(max=5, ttl=30 * SECOND),
            src=["10.0.0.0/8"],
            subs=100,
            data=1 << 20,
            payload=64 * 1024,
            allowed_connection_types=["STANDARD", "WEBSOCKET"],
        ),
    )


def account_full() -> jwt.AccountClaims:
    acct = jwt.AccountClaims(
        sub=ACCOUNT.public_key,
        name="ORDERS",
        exp=EXP,
        nbf=NBF,
        description="Orders & billing <prod>",
        info_url="https://wiki.example.com/accounts/orders?tab=limits&lang=en",
        tags=["team:orders", "env:prod"],
        limits=jwt.AccountLimits(
            subs=1000,
            data=1 << 30,
            payload=1 << 20,
            imports=10,
            exports=10,
            wildcards=True,
            disallow_bearer=False,
            conn=100,
            leaf=5,
            mem_storage=1 << 30,
            disk_storage=10 << 30,
            streams=20,
            consumer=100,
            max_ack_pending=1000,
            mem_max_stream_bytes=256 << 20,
            disk_max_stream_bytes=1 << 30,
            max_bytes_required=True,
        ),
        default_permissions=jwt.Permissions(
            pub=jwt.Permission(allow=["public.>", "orders.>"], deny=["admin.>"]),
            sub=jwt.Permission(allow=["public.>", "_INBOX.>"], deny=["admin.secrets"]),
            resp=jwt.ResponsePermission(max=1, ttl=5 * SECOND),
        ),
        # deliberately not sorted by subject: both sides sort before encoding
        exports=[
            jwt.Export(
                name="Tenant events",
                subject="tenant.*.events.>",
                type="stream",
                token_req=True,
                account_token_position=2,
            ),
            jwt.Export(
                name="Billing usage",
                subject="billing.usage",
                type="service",
                response_type="Stream",
                response_threshold=2500 * 1_000_000,
                service_latency=jwt.ServiceLatency(sampling=50, results="latency.billing.usage"),
                advertise=True,
                description="Usage queries <per tenant>",
                info_url="https://docs.example.com/billing/usage",
            ),
            jwt.Export(
                name="Order events",
                subject="orders.>",
                type="stream",
                token_req=True,
                revocations={PARTNER.public_key: NBF + 3600},
                advertise=True,
                description="All order events",
                info_url="https://docs.example.com/orders",
            ),
            jwt.Export(
                name="Invoices",
                subject="billing.invoice.*",
                type="service",
                response_type="Chunked",
                service_latency=jwt.ServiceLatency(sampling=0, results="latency.billing.invoice"),
            ),
        ],
        imports=[
            jwt.Import(
                name="Geo lookup",
                subject="geo.lookup",
                account=EXPORTER.public_key,
                token=GEO_ACTIVATION,
                local_subject="svc.geo.lookup",
                type="service",
                share=True,
            ),
            jwt.Import(
                name="Exporter metrics",
                subject="metrics.>",
                account=EXPORTER.public_key,
                local_subject="ext.metrics.>",
                type="stream",
            ),
        ],
        mappings={
            "orders.new": [
                jwt.WeightedMapping(subject="orders.new.v1", weight=80),
                jwt.WeightedMapping(subject="orders.new.v2", weight=20),
            ],
            "svc.geo": [
                jwt.WeightedMapping(subject="svc.geo.east", weight=60, cluster="east"),
                jwt.WeightedMapping(subject="svc.geo.west", weight=40, cluster="west"),
            ],
        },
    )
    acct.add_signing_key(ACCOUNT_SK_SCOPED.public_key, scoped_key())
    acct.revoke(USER_REVOKED.public_key, NBF + 86400)
    acct.revoke("*", NBF)
    return acct


def account_tiered() -> jwt.AccountClaims:
    acct = jwt.AccountClaims(sub=EXPORTER.public_key, name="EXPORTER")
    acct.limits.tiered_limits = {
        "R3": jwt.JetStreamLimits(
            mem_storage=256 << 20,
            disk_storage=5 << 30,
            streams=5,
            consumer=25,
            max_ack_pending=500,
            disk_max_stream_bytes=1 << 30,
            max_bytes_required=True,
        ),
        "R1": jwt.JetStreamLimits(mem_storage=-1, disk_storage=-1, streams=-1, consumer=-1),
    }
    acct.exports = [
        jwt.Export(
            name="Geo",
            subject="geo.lookup",
            type="service",
            token_req=True,
            service_latency=jwt.ServiceLatency(sampling=0, results="latency.geo"),
        ),
        jwt.Export(name="Metrics", subject="metrics.>", type="stream"),
    ]
    return acct


def account_plain_signing_key() -> jwt.AccountClaims:
    acct = jwt.AccountClaims(sub=ACCOUNT.public_key, name="ORDERS")
    acct.add_signing_key(ACCOUNT_SK_PLAIN.public_key)
    return acct


def account_minimal() -> jwt.AccountClaims:
    return jwt.AccountClaims(sub=PARTNER.public_key, name="PARTNER")


def user_full() -> jwt.UserClaims:
    return jwt.UserClaims(
        sub=USER.public_key,
        name="Zoë <ops> & co",
        exp=EXP,
        nbf=NBF,
        issuer_account=ACCOUNT.public_key,
        pub=jwt.Permission(allow=["orders.>", "billing.usage"], deny=["orders.internal.>"]),
        sub_perms=jwt.Permission(allow=["_INBOX.>", "foo q1", "orders.events.>"], deny=["admin.>"]),
        resp=jwt.ResponsePermission(max=10, ttl=60 * SECOND),
        src=["192.168.1.0/24", "10.0.0.0/8", "2001:db8::/32"],
        times=[
            jwt.TimeRange(start="08:00:00", end="17:30:00"),
            jwt.TimeRange(start="20:00:00", end="22:00:00"),
        ],
        times_location="Europe/Berlin",
        subs=50,
        data=1 << 20,
        payload=64 * 1024,
        bearer_token=True,
        allowed_connection_types=["STANDARD", "WEBSOCKET", "MQTT"],
        tags=["dept:ops", "oncall"],
    )


def user_minimal() -> jwt.UserClaims:
    return jwt.UserClaims(sub=USER_MIN.public_key, name="bob")


def user_scoped() -> jwt.UserClaims:
    user = jwt.UserClaims(sub=USER_SCOPED.public_key, name="carol", issuer_account=ACCOUNT.public_key)
    user.set_scoped()
    return user


def activation_stream_by_signing_key() -> jwt.ActivationClaims:
    return jwt.ActivationClaims(
        sub=ACCOUNT.public_key,
        name="metrics feed",
        exp=EXP,
        import_subject="metrics.>",
        import_type="stream",
        issuer_account=EXPORTER.public_key,
        tags=["partner"],
    )


def generic_delete_request() -> jwt.GenericClaims:
    """nsc's resolver delete request: ``NewGenericClaims(operator)``, ``Data["accounts"] = [...]``."""
    return jwt.GenericClaims(
        sub=OPERATOR.public_key,
        data={"accounts": [PARTNER.public_key, EXPORTER.public_key]},
    )


@dataclass(frozen=True)
class Case:
    builder: Callable[[], jwt.Claims]
    signer: KeyPair
    #: decode class for trustkit
    cls: type[jwt.Claims]


CASES: dict[str, Case] = {
    "operator-full-self-signed": Case(operator_full, OPERATOR, jwt.OperatorClaims),
    "operator-minimal": Case(operator_minimal, OPERATOR, jwt.OperatorClaims),
    "account-full": Case(account_full, OP_SK1, jwt.AccountClaims),
    "account-jetstream-tiers": Case(account_tiered, OPERATOR, jwt.AccountClaims),
    "account-plain-signing-key": Case(account_plain_signing_key, OP_SK2, jwt.AccountClaims),
    "account-minimal": Case(account_minimal, OPERATOR, jwt.AccountClaims),
    "user-full-by-signing-key": Case(user_full, ACCOUNT_SK_PLAIN, jwt.UserClaims),
    "user-minimal": Case(user_minimal, ACCOUNT, jwt.UserClaims),
    "user-scoped": Case(user_scoped, ACCOUNT_SK_SCOPED, jwt.UserClaims),
    "activation-service": Case(activation_geo, EXPORTER, jwt.ActivationClaims),
    "activation-stream-by-signing-key": Case(
        activation_stream_by_signing_key, EXPORTER_SK, jwt.ActivationClaims
    ),
    "generic-delete-request": Case(generic_delete_request, OPERATOR, jwt.GenericClaims),
}
CASE_IDS = list(CASES)


def expected_tk_payload(claims: jwt.Claims, go_payload: bytes) -> bytes:
    """What trustkit must write, given Go v2.3.0's payload for the same claims."""
    if isinstance(claims, jwt.AccountClaims):
        return modernize_account_payload(go_payload)
    return go_payload


# --- trustkit → Go (byte equality) ------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_token_bytes_equal_go(go_checker: GoChecker, case_id: str) -> None:
    case = CASES[case_id]
    claims = case.builder()
    pair = encode_both(go_checker, claims, case.signer)
    go_payload, tk_payload = payload_of(pair.go_token), payload_of(pair.tk_token)
    expected = expected_tk_payload(claims, go_payload)
    assert tk_payload == expected, show(tk_payload, expected)
    assert pair.tk_token.split(".")[0] == pair.go_token.split(".")[0]
    if not isinstance(claims, jwt.AccountClaims):
        assert pair.tk_token == pair.go_token
    else:
        # the only differences are the documented modern-only constructs
        assert go_payload != tk_payload


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_go_decodes_and_validates_trustkit_token(go_checker: GoChecker, case_id: str) -> None:
    case = CASES[case_id]
    claims = case.builder()
    pair = encode_both(go_checker, claims, case.signer)
    result = assert_no_go_issues(go_checker, pair.tk_token, kind_of(claims))
    # Go's re-marshalling of trustkit's token is exactly what Go itself wrote for the same claims
    assert result["payload_json"].encode() == payload_of(pair.go_token)
    if isinstance(claims, jwt.GenericClaims):
        assert result["claims"]["nats"]["accounts"] == claims.data["accounts"]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_trustkit_decodes_validates_and_reencodes_go_token(go_checker: GoChecker, case_id: str) -> None:
    case = CASES[case_id]
    claims = case.builder()
    pair = encode_both(go_checker, claims, case.signer)  # claims now carry iss/iat/jti
    assert_no_go_issues(go_checker, pair.go_token, kind_of(claims))
    decoded = jwt.decode(pair.go_token, case.cls)
    assert type(decoded) is case.cls
    assert decoded.token == pair.go_token
    assert decoded == claims
    assert decoded.extra == {}
    if not isinstance(decoded, jwt.GenericClaims):  # generic keeps its nats map in .data (and nats_extra)
        assert decoded.nats_extra == {}
    assert_no_tk_issues(decoded)
    again = decoded.encode(case.signer, iat=decoded.iat)
    expected = expected_tk_payload(decoded, payload_of(pair.go_token))
    assert payload_of(again) == expected, show(payload_of(again), expected)
    if not isinstance(decoded, jwt.AccountClaims):
        assert again == pair.go_token
    assert again == pair.tk_token


def test_user_full_payload_exercises_escaping(go_checker: GoChecker) -> None:
    """Spot-check the interesting bytes (HTML escapes, raw UTF-8, queue entry) in both tokens."""
    pair = encode_both(go_checker, user_full(), ACCOUNT_SK_PLAIN)
    for token in (pair.go_token, pair.tk_token):
        raw = payload_of(token)
        assert '"name":"Zoë \\u003cops\\u003e \\u0026 co"'.encode() in raw
        assert b'"_INBOX.\\u003e","foo q1"' in raw
        assert b'"src":["192.168.1.0/24","10.0.0.0/8","2001:db8::/32"]' in raw
    assert pair.tk_token == pair.go_token


def test_account_full_payload_differs_only_as_documented(go_checker: GoChecker) -> None:
    """Show the exact modern-only bytes trustkit adds to Go v2.3.0's account payload."""
    pair = encode_both(go_checker, account_full(), OP_SK1)
    go_payload, tk_payload = payload_of(pair.go_token), payload_of(pair.tk_token)
    assert tk_payload.count(b'"authorization":{}') == 1
    assert tk_payload.count(b',"description":""}') == 1
    stripped = tk_payload.replace(b',"authorization":{}', b"").replace(b',"description":""}', b"}")
    assert stripped == go_payload, show(stripped, go_payload)
    # ordering facts the surgery relies on
    assert b'"mappings":{"orders.new":' in tk_payload
    assert b'"cluster":"west"}]},"authorization":{},"description":"Orders \\u0026 billing' in tk_payload


def test_account_several_signing_keys(go_checker: GoChecker) -> None:
    """v2.3.0 writes signing_keys in random map order: compare parsed lists, exact elsewhere."""
    acct = account_plain_signing_key()
    acct.add_signing_key(ACCOUNT_SK_EXTRA.public_key)
    acct.add_signing_key(ACCOUNT_SK_SCOPED.public_key, scoped_key())
    second = jwt.UserScope(
        role="reader", template=jwt.UserPermissionLimits(sub=jwt.Permission(allow=["public.>"]))
    )
    acct.add_signing_key(EXPORTER_SK.public_key, second)
    pair = encode_both(go_checker, acct, OPERATOR)
    go_nats = json.loads(payload_of(pair.go_token))["nats"]
    tk_nats = json.loads(payload_of(pair.tk_token))["nats"]

    def key_of(entry: Any) -> str:
        return entry if isinstance(entry, str) else entry["key"]

    tk_keys = [key_of(e) for e in tk_nats["signing_keys"]]
    assert tk_keys == sorted(tk_keys)  # modern Go sorts
    go_by_key = {key_of(e): e for e in go_nats["signing_keys"]}
    for entry in tk_nats["signing_keys"]:
        want = go_by_key.pop(key_of(entry))
        if isinstance(entry, dict):
            assert entry == {**want, "description": ""}
        else:
            assert entry == want
    assert go_by_key == {}
    # everything else identical once signing_keys is normalised
    for nats, add in ((go_nats, True), (tk_nats, False)):
        nats["signing_keys"] = sorted(nats["signing_keys"], key=key_of)
        if add:
            nats["authorization"] = {}
            for e in nats["signing_keys"]:
                if isinstance(e, dict):
                    e["description"] = ""
    assert tk_nats == go_nats
    decoded_go = jwt.decode(pair.go_token, jwt.AccountClaims)
    assert decoded_go.signing_keys == acct.signing_keys
    assert_no_tk_issues(decoded_go)
    result = assert_no_go_issues(go_checker, pair.tk_token, "account")
    assert sorted(map(key_of, result["claims"]["nats"]["signing_keys"])) == tk_keys


def test_operator_signing_keys_keep_their_order(go_checker: GoChecker) -> None:
    """Operator signing keys are a Go []string (not a map): order is kept exactly, no sorting."""
    op = operator_full()
    op.signing_keys = [OP_SK3.public_key, OP_SK1.public_key, OP_SK2.public_key]
    pair = encode_both(go_checker, op, OPERATOR)
    assert pair.tk_token == pair.go_token
    assert json.loads(payload_of(pair.tk_token))["nats"]["signing_keys"] == op.signing_keys


def test_go_v230_lacks_the_modern_only_keys(go_checker: GoChecker) -> None:
    """Sanity for the strict encode: v2.3.0 really lacks the documented modern-only keys."""
    payload = json.loads(account_minimal().payload_bytes())
    r = go_checker.call(
        {"op": "encode", "kind": "account", "seed": OPERATOR.seed, "claims": payload, "strict": True}
    )
    assert r == {"error": 'json: unknown field "authorization"'}
    user = json.loads(user_minimal().payload_bytes())
    user["nats"]["proxy_required"] = True
    r = go_checker.call(
        {"op": "encode", "kind": "user", "seed": ACCOUNT.seed, "claims": user, "strict": True}
    )
    assert r == {"error": 'json: unknown field "proxy_required"'}


# --- decoding fidelity: what Go reads from a token trustkit wrote -------------------------------------


def test_scope_template_without_limits_decodes_like_go(go_checker: GoChecker) -> None:
    """Go builds every scope with ``NewUserScope()`` (subs/data/payload = -1) *before* unmarshalling,
    so a template that omits them means -1 (unlimited) in Go. trustkit must read it the same way."""
    acct = account_plain_signing_key()
    scope = jwt.UserScope(role="bare", template=jwt.UserPermissionLimits.from_json({}))
    acct.add_signing_key(ACCOUNT_SK_SCOPED.public_key, scope)
    token = acct.encode(OPERATOR, iat=NBF)
    assert b'"template":{"pub":{},"sub":{}}' in payload_of(token)
    go_template = next(
        e
        for e in go_checker.decode(token, "account")["claims"]["nats"]["signing_keys"]
        if isinstance(e, dict)
    )["template"]
    assert (go_template["subs"], go_template["data"], go_template["payload"]) == (-1, -1, -1)
    tk_scope = jwt.decode(token, jwt.AccountClaims).signing_keys[ACCOUNT_SK_SCOPED.public_key]
    assert tk_scope is not None
    got = (tk_scope.template.subs, tk_scope.template.data, tk_scope.template.payload)
    assert got == (-1, -1, -1), f"trustkit decodes the omitted template limits as {got}, Go as (-1, -1, -1)"


# --- validation verdicts: where Go (v2.3.0 and upstream HEAD alike) errs or warns, trustkit must too ----


def _account(**kw: Any) -> jwt.AccountClaims:
    return jwt.AccountClaims(sub=ACCOUNT.public_key, name="ORDERS", **kw)


def _with_import(token: str, subject: str = "geo.lookup", local: str = "") -> jwt.AccountClaims:
    imp = jwt.Import(
        subject=subject, account=EXPORTER.public_key, token=token, local_subject=local, type="service"
    )
    return _account(imports=[imp])


_LONG_DESCRIPTION = ("Orders account: order intake, fulfilment events and billing usage. " * 30)[:2000]


@dataclass(frozen=True)
class Verdict:
    builder: Callable[[], jwt.Claims]
    signer: KeyPair
    go_errors: bool
    go_warnings: bool = False


VERDICTS: dict[str, Verdict] = {
    # Go's MaxInfoLength is 8 KiB (types.go), for accounts and exports alike
    "account-description-2000-bytes": Verdict(
        lambda: _account(description=_LONG_DESCRIPTION), OPERATOR, False
    ),
    "export-description-9000-bytes": Verdict(
        lambda: _account(
            exports=[jwt.Export(subject="billing.usage", type="service", description="d" * 9000)]
        ),
        OPERATOR,
        True,
    ),
    # Info.Validate: url.Parse + hostname and scheme required
    "account-info-url-without-host": Verdict(
        lambda: _account(info_url="mailto:ops@example.com"), OPERATOR, True
    ),
    "export-info-url-relative": Verdict(
        lambda: _account(
            exports=[jwt.Export(subject="billing.usage", type="service", info_url="docs/billing")]
        ),
        OPERATOR,
        True,
    ),
    "stream-export-with-response-threshold": Verdict(
        lambda: _account(exports=[jwt.Export(subject="orders.>", type="stream", response_threshold=SECOND)]),
        OPERATOR,
        True,
    ),
    # Import.Validate decodes the activation token and checks it against the import
    "import-token-from-another-account": Verdict(
        lambda: _with_import(activation_geo().encode(PARTNER, iat=NBF)), OPERATOR, True
    ),
    "import-token-not-a-jwt": Verdict(lambda: _with_import("not-a-token"), OPERATOR, True),
    # RenamingSubject.Validate: every * of the subject needs a * or $n in local_subject
    "import-local-subject-drops-wildcard": Verdict(
        lambda: _with_import("", subject="geo.*", local="geo.local"), OPERATOR, True
    ),
    # AccountClaims.Validate: self-signed + non-empty limits (NewAccountClaims' -1s count) warns
    "self-signed-account-default-limits": Verdict(account_minimal, PARTNER, False, True),
    "self-signed-account-zero-limits": Verdict(
        lambda: jwt.AccountClaims(sub=PARTNER.public_key, limits=jwt.AccountLimits.from_json({})),
        PARTNER,
        False,
    ),
    # controls: cases trustkit already agrees on
    "control-account-token-position-without-wildcard": Verdict(
        lambda: _account(exports=[jwt.Export(subject="a.b", type="service", account_token_position=1)]),
        OPERATOR,
        True,
    ),
    "control-latency-results-wildcard": Verdict(
        lambda: _account(
            exports=[
                jwt.Export(
                    subject="a.b",
                    type="service",
                    service_latency=jwt.ServiceLatency(sampling=50, results="lat.>"),
                )
            ]
        ),
        OPERATOR,
        True,
    ),
    "control-user-src-without-prefix-length": Verdict(
        lambda: jwt.UserClaims(sub=USER_MIN.public_key, src=["10.0.0.1"]), ACCOUNT, True
    ),
    "control-user-unknown-time-zone": Verdict(
        lambda: jwt.UserClaims(sub=USER_MIN.public_key, times_location="Mars/Olympus_Mons"), ACCOUNT, True
    ),
    "control-user-pub-with-queue": Verdict(
        lambda: jwt.UserClaims(sub=USER_MIN.public_key, pub=jwt.Permission(allow=["orders.new q1"])),
        ACCOUNT,
        True,
    ),
    "control-operator-version-not-semver": Verdict(
        lambda: jwt.OperatorClaims(sub=OPERATOR.public_key, assert_server_version="2.10"), OPERATOR, True
    ),
    "control-activation-subject-with-space": Verdict(
        lambda: jwt.ActivationClaims(
            sub=ACCOUNT.public_key, import_subject="geo lookup", import_type="service"
        ),
        EXPORTER,
        True,
    ),
}


@pytest.mark.parametrize("case_id", list(VERDICTS))
def test_validation_verdict_matches_go(go_checker: GoChecker, case_id: str) -> None:
    case = VERDICTS[case_id]
    claims = case.builder()
    token = claims.encode(case.signer, iat=NBF)
    go = go_checker.decode(token, kind_of(claims))
    assert (bool(go["errors"]), bool(go["warnings"])) == (case.go_errors, case.go_warnings), go
    vr = jwt.decode(token, type(claims)).validate(now=int(time.time()))
    tk = (bool(vr.errors), bool(vr.warnings))
    assert tk == (case.go_errors, case.go_warnings), (
        f"Go: errors={go['errors']} warnings={go['warnings']}; "
        f"trustkit: errors={vr.errors} warnings={vr.warnings}"
    )


# --- nkeys ------------------------------------------------------------------------------------------

NKEY_KINDS = {
    "operator": PrefixByte.OPERATOR,
    "account": PrefixByte.ACCOUNT,
    "user": PrefixByte.USER,
    "server": PrefixByte.SERVER,
    "cluster": PrefixByte.CLUSTER,
}
NKEY_SEEDS = {name: [_RNG.randbytes(32) for _ in range(20)] for name in NKEY_KINDS}
NKEY_MESSAGES = [_RNG.randbytes(_RNG.randrange(0, 300)) for _ in range(20)]


@pytest.mark.parametrize("kind_name", list(NKEY_KINDS))
def test_nkeys_match_go(go_checker: GoChecker, kind_name: str) -> None:
    kind = NKEY_KINDS[kind_name]
    for raw, msg in zip(NKEY_SEEDS[kind_name], NKEY_MESSAGES, strict=True):
        kp = KeyPair.generate(kind, rand=lambda n, raw=raw: raw[:n])
        assert kp.seed[:2] == "S" + kp.public_key[0]
        msg_b64 = base64.b64encode(msg).decode()
        go = go_checker.check({"op": "nkey", "seed": kp.seed, "sign_b64": msg_b64})
        assert go["public"] == kp.public_key
        assert go["private"] == kp.private_key
        assert go["seed"] == kp.seed
        tk_sig = kp.sign(msg)
        go_sig = base64.b64decode(go["sig_b64"])
        assert tk_sig == go_sig
        # each side verifies the other's signature; a flipped byte fails on both
        kp.verify(msg, go_sig)
        KeyPair.from_public_key(go["public"]).verify(msg, go_sig)
        ok = go_checker.check(
            {
                "op": "verify",
                "public": kp.public_key,
                "data_b64": msg_b64,
                "sig_b64": base64.b64encode(tk_sig).decode(),
            }
        )
        assert ok == {"ok": True}
        bad_sig = bytes([tk_sig[0] ^ 1]) + tk_sig[1:]
        bad = go_checker.check(
            {
                "op": "verify",
                "public": kp.public_key,
                "data_b64": msg_b64,
                "sig_b64": base64.b64encode(bad_sig).decode(),
            }
        )
        assert bad == {"ok": False}
        assert KeyPair.from_seed(go["seed"]) == kp
        check = go_checker.check({"op": "nkey_check", "key": kp.public_key})
        assert check["valid_public"] is True and check["prefix"] == kind_name


# --- creds ------------------------------------------------------------------------------------------


def _user_token_and_seed() -> tuple[str, str]:
    return user_full().encode(ACCOUNT_SK_PLAIN, iat=NBF + 60), USER.seed


def test_creds_bytes_match_go(go_checker: GoChecker) -> None:
    from trustkit.creds import format_user_creds

    token, seed = _user_token_and_seed()
    go_creds = go_checker.check({"op": "creds", "jwt": token, "seed": seed})["creds"]
    tk_creds = format_user_creds(token, seed)
    assert isinstance(tk_creds, bytes)
    assert tk_creds == go_creds.encode()
    minimal = user_minimal().encode(ACCOUNT, iat=NBF)
    go_min = go_checker.check({"op": "creds", "jwt": minimal, "seed": USER_MIN.seed})["creds"]
    assert format_user_creds(minimal, USER_MIN.seed) == go_min.encode()


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
def test_creds_parse_each_others(go_checker: GoChecker, line_ending: str) -> None:
    from trustkit.creds import format_user_creds, parse_creds

    token, seed = _user_token_and_seed()
    go_creds = go_checker.check({"op": "creds", "jwt": token, "seed": seed})["creds"].replace(
        "\n", line_ending
    )
    tk_creds = format_user_creds(token, seed).decode().replace("\n", line_ending)
    for text in (go_creds, tk_creds):
        for data in (text, text.encode()):
            parsed = parse_creds(data)
            assert parsed.jwt == token
            assert parsed.seed == seed
        go = go_checker.check({"op": "parse_creds", "data": text})
        assert go == {"jwt": token, "seed": seed}
