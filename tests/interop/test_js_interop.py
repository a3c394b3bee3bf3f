"""trustkit against the official NATS JS libraries (@nats-io/jwt 0.0.11, @nats-io/nkeys 2.0.3).

Driven through the ``js_checker`` fixture (tests/js/check.mjs). Covers, both ways:

1. tokens trustkit encodes decode *and verify* in JS, and JS reads exactly trustkit's payload;
2. tokens JS encodes decode and verify in trustkit into the right claim class, with the values
   that were asked for (JS's ``aud: "NATS"`` and base64 SHA-512 ``jti`` kept), validate cleanly,
   and keep the original token string;
3. JS tokens with one flipped character are refused by trustkit;
4. xkv1 seal/open interop, byte-identical with a fixed nonce;
5. nkeys: same public keys and identical, cross-verifying Ed25519 signatures;
6. a JS ``encodeAuthorizationResponse`` carrying a user JWT decodes in trustkit, inner JWT too.

Keys and payloads come from seeded ``random.Random`` instances, so every run is reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
from collections.abc import Callable
from typing import Any

import pytest

from tests.interop.jscheck import JsChecker
from trustkit import jwt
from trustkit.errors import MalformedTokenError, SealError, TokenError, TokenSignatureError
from trustkit.nkeys import KeyPair, PrefixByte

pytestmark = pytest.mark.real

IAT = 1_700_000_000
EXP = 4_102_444_800  # 2100-01-01
NOW = IAT + 60
HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}

ED_KINDS = [
    PrefixByte.OPERATOR,
    PrefixByte.ACCOUNT,
    PrefixByte.USER,
    PrefixByte.SERVER,
    PrefixByte.CLUSTER,
]
JS_TYPE = {
    PrefixByte.OPERATOR: "operator",
    PrefixByte.ACCOUNT: "account",
    PrefixByte.USER: "user",
    PrefixByte.SERVER: "server",
    PrefixByte.CLUSTER: "cluster",
}


# --- helpers ------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def payload_of(token: str) -> dict[str, Any]:
    chunk = token.split(".")[1]
    out = json.loads(base64.urlsafe_b64decode(chunk + "=" * (-len(chunk) % 4)))
    assert isinstance(out, dict)
    return out


def key(rng: random.Random, kind: PrefixByte) -> KeyPair:
    return KeyPair.generate(kind, rand=rng.randbytes)


def json_diff(got: Any, want: Any, path: str = "$") -> list[str]:
    """Field-by-field comparison of two parsed JSON values; returns the differing paths."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: got {got!r}, want an object"]
        out = [f"{path}.{k}: missing" for k in want if k not in got]
        out += [f"{path}.{k}: unexpected {got[k]!r}" for k in got if k not in want]
        for k in want:
            if k in got:
                out += json_diff(got[k], want[k], f"{path}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: got {got!r}, want {want!r}"]
        return [
            d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in json_diff(g, w, f"{path}[{i}]")
        ]
    # JSON has no int/bool distinction problems in Python except True == 1: compare types too
    if type(got) is not type(want) or got != want:
        return [f"{path}: got {got!r}, want {want!r}"]
    return []


def _json_zero(v: Any) -> bool:
    return v is None or v is False or (v == 0 and not isinstance(v, bool)) or v in ("", [], {})


def json_subset(js: Any, tk: Any, path: str = "$") -> list[str]:
    """Every value JS wrote is in trustkit's re-serialisation, equal (order of keys ignored).

    A JS zero value (``[]``, ``{}``, ``""``, ``0``, ``false``) may be absent on the trustkit side:
    that is Go's ``omitempty``, which trustkit mirrors.
    """
    if isinstance(js, dict):
        if not isinstance(tk, dict):
            return [f"{path}: trustkit has {tk!r}, JS wrote an object"]
        out: list[str] = []
        for k, v in js.items():
            if k not in tk:
                if not _json_zero(v):
                    out.append(f"{path}.{k}: dropped by trustkit (JS wrote {v!r})")
                continue
            out += json_subset(v, tk[k], f"{path}.{k}")
        return out
    if isinstance(js, list):
        if not isinstance(tk, list) or len(tk) != len(js):
            return [f"{path}: trustkit has {tk!r}, JS wrote {js!r}"]
        return [
            d for i, (j, t) in enumerate(zip(js, tk, strict=True)) for d in json_subset(j, t, f"{path}[{i}]")
        ]
    if type(js) is not type(tk) or js != tk:
        return [f"{path}: trustkit has {tk!r}, JS wrote {js!r}"]
    return []


def js_decode(js: JsChecker, token: str) -> dict[str, Any]:
    r = js.ok({"op": "decode", "token": token})
    assert r["verified"] is True
    assert r["header"] == HEADER
    assert r["sig_canonical"] is True
    claims = r["claims"]
    assert isinstance(claims, dict)
    return claims


def js_encode(js: JsChecker, req: dict[str, Any]) -> str:
    token = js.ok({"op": "encode", "iat": IAT, **req})["token"]
    assert isinstance(token, str)
    return token


def flip(text: str, pos: int, alphabet: str = string.ascii_letters + string.digits + "-_") -> list[str]:
    """All one-character variants of ``text`` at ``pos`` (over the base64url alphabet)."""
    return [text[:pos] + c + text[pos + 1 :] for c in alphabet if c != text[pos]]


# --- the cast -----------------------------------------------------------------------------------


class World:
    """Keys for one trust chain: operator (+ signing key), accounts (+ plain and scoped signing
    keys), users, a server, curve keys. Deterministic from ``seed``."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.operator = key(rng, PrefixByte.OPERATOR)
        self.operator_sk = key(rng, PrefixByte.OPERATOR)
        self.sys = key(rng, PrefixByte.ACCOUNT)
        self.account = key(rng, PrefixByte.ACCOUNT)
        self.account_sk = key(rng, PrefixByte.ACCOUNT)
        self.scoped_sk = key(rng, PrefixByte.ACCOUNT)
        self.other = key(rng, PrefixByte.ACCOUNT)
        self.user = key(rng, PrefixByte.USER)
        self.auth_user = key(rng, PrefixByte.USER)
        self.server = key(rng, PrefixByte.SERVER)
        self.xkey = key(rng, PrefixByte.CURVE)
        self.server_xkey = key(rng, PrefixByte.CURVE)


@pytest.fixture(scope="module")
def w() -> World:
    return World(20240601)


# --- 1. trustkit encodes -> JS decodes and verifies ---------------------------------------------


def tk_operator(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.OperatorClaims(
        sub=w.operator.public_key,
        name="ACME <root> & co",
        exp=EXP,
        nbf=IAT - 10,
        tags=["env:prod", "region:eu"],
        signing_keys=[w.operator_sk.public_key],
        account_server_url="http://localhost:9090/jwt/v1",
        operator_service_urls=["nats://localhost:4222", "tls://nats.example.com:4443"],
        system_account=w.sys.public_key,
        assert_server_version="2.10.0",
        strict_signing_key_usage=True,
    )
    return c, w.operator


def _activation_token(w: World) -> str:
    act = jwt.ActivationClaims(
        sub=w.account.public_key,
        name="their svc",
        import_subject="their.svc",
        import_type=jwt.SERVICE,
    )
    return act.encode(w.other, iat=IAT)


def tk_account(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.AccountClaims(
        sub=w.account.public_key,
        name="ACME",
        exp=EXP,
        tags=["team:a"],
        description="the <main> account & more",
        info_url="https://example.com/acme",
        limits=jwt.AccountLimits(
            subs=1000,
            data=1 << 30,
            payload=1 << 20,
            imports=10,
            exports=10,
            wildcards=True,
            disallow_bearer=True,
            conn=100,
            leaf=5,
            tiered_limits={
                "R1": jwt.JetStreamLimits(
                    mem_storage=1 << 30,
                    disk_storage=1 << 34,
                    streams=10,
                    consumer=100,
                    max_ack_pending=1000,
                    mem_max_stream_bytes=1 << 20,
                    disk_max_stream_bytes=1 << 30,
                    max_bytes_required=True,
                ),
                "R3": jwt.JetStreamLimits(mem_storage=-1, disk_storage=-1, streams=-1, consumer=-1),
            },
        ),
        exports=[
            jwt.Export(name="events", subject="events.>", type=jwt.STREAM, info_url="https://x.example"),
            jwt.Export(
                name="svc",
                subject="svc.*.req",
                type=jwt.SERVICE,
                token_req=True,
                revocations={w.other.public_key: IAT},
                response_type="Stream",
                response_threshold=5_000_000_000,
                service_latency=jwt.ServiceLatency(sampling=50, results="lat.svc"),
                account_token_position=2,
                advertise=True,
                allow_trace=True,
                description="a service",
            ),
            jwt.Export(
                name="hdr",
                subject="hdr.svc",
                type=jwt.SERVICE,
                service_latency=jwt.ServiceLatency(sampling=0, results="lat.hdr"),  # "headers"
            ),
        ],
        imports=[
            jwt.Import(
                name="their events",
                subject="their.events.>",
                account=w.other.public_key,
                local_subject="mine.events.>",
                type=jwt.STREAM,
                allow_trace=True,  # Go: allow_trace is valid on stream imports only
            ),
            jwt.Import(
                name="their svc",
                subject="their.svc",
                account=w.other.public_key,
                token=_activation_token(w),
                type=jwt.SERVICE,
                share=True,
            ),
        ],
        revocations={w.user.public_key: IAT, "*": IAT - 100},
        default_permissions=jwt.Permissions(
            pub=jwt.Permission(allow=["acme.>"], deny=["acme.secret.>"]),
            sub=jwt.Permission(allow=["acme.>", "_INBOX.>"]),
            resp=jwt.ResponsePermission(max=1, ttl=1_000_000_000),
        ),
        mappings={
            "orders.new": [
                jwt.WeightedMapping(subject="orders.v1", weight=80),
                jwt.WeightedMapping(subject="orders.v2", weight=20),
            ]
        },
        authorization=jwt.ExternalAuthorization(
            auth_users=[w.auth_user.public_key],
            allowed_accounts=[w.other.public_key],
            xkey=w.xkey.public_key,
        ),
        trace=jwt.MsgTrace(dest="trace.acme", sampling=10),
    )
    c.add_signing_key(w.account_sk.public_key)
    c.add_signing_key(
        w.scoped_sk.public_key,
        jwt.UserScope(
            role="ops",
            description="ops users",
            template=jwt.UserPermissionLimits(
                pub=jwt.Permission(allow=["ops.>"]),
                sub=jwt.Permission(allow=["ops.>"], deny=["ops.audit"]),
                resp=jwt.ResponsePermission(max=3, ttl=2_000_000_000),
                src=["10.0.0.0/8"],
                times=[jwt.TimeRange(start="06:00:00", end="18:00:00")],
                times_location="UTC",
                subs=50,
                data=1 << 20,
                payload=1 << 16,
                allowed_connection_types=["STANDARD"],
            ),
        ),
    )
    return c, w.operator_sk


def tk_user(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.UserClaims(
        sub=w.user.public_key,
        name="alice",
        exp=EXP,
        nbf=IAT - 10,
        tags=["dept:eng", "role:dev"],
        pub=jwt.Permission(allow=["acme.>", "_INBOX.>"], deny=["acme.secret.>"]),
        sub_perms=jwt.Permission(allow=["acme.*", "q.> workers"], deny=["acme.x"]),
        resp=jwt.ResponsePermission(max=5, ttl=60_000_000_000),
        src=["192.168.0.0/16", "10.1.2.3/32"],
        times=[
            jwt.TimeRange(start="08:00:00", end="12:00:00"),
            jwt.TimeRange(start="13:00:00", end="17:30:00"),
        ],
        times_location="Europe/Berlin",
        subs=100,
        data=1 << 20,
        payload=4096,
        allowed_connection_types=["STANDARD", "WEBSOCKET"],
        issuer_account=w.account.public_key,
    )
    return c, w.account_sk


def tk_scoped_user(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.UserClaims(
        sub=w.user.public_key,
        name="scoped",
        issuer_account=w.account.public_key,
        bearer_token=True,
    )
    c.set_scoped()
    return c, w.scoped_sk


def tk_activation(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.ActivationClaims(
        sub=w.other.public_key,
        name="events grant",
        exp=EXP,
        import_subject="events.>",
        import_type=jwt.STREAM,
        issuer_account=w.account.public_key,
        tags=["grant"],
    )
    return c, w.account_sk


def tk_user_token(w: World) -> str:
    c, signer = tk_user(w)
    return c.encode(signer, iat=IAT)


def tk_auth_request(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.AuthorizationRequestClaims(
        sub=w.server.public_key,
        aud=jwt.AUTH_REQUEST_AUDIENCE,
        exp=IAT + 120,
        server_id=jwt.ServerID(
            name="srv-1",
            host="127.0.0.1",
            id=w.server.public_key,
            version="2.10.14",
            cluster="c1",
            tags=["az:1"],
            xkey=w.server_xkey.public_key,
        ),
        user_nkey=w.user.public_key,
        client_info=jwt.ClientInformation(
            host="10.0.0.5",
            id=42,
            user="bob",
            name="app <1>",
            tags=["t1"],
            name_tag="tag",
            kind="Client",
            type="nats",
            mqtt_id="",
            nonce="bm9uY2U",
        ),
        connect_opts=jwt.ConnectOptions(
            jwt=tk_user_token(w),
            nkey=w.user.public_key,
            sig="c2ln",
            auth_token="tok&en",
            user="bob",
            password="p<a>ss",
            name="app",
            lang="python3",
            version="2.9.0",
            protocol=1,
        ),
        client_tls=jwt.ClientTLS(
            version="1.3",
            cipher="TLS_AES_128_GCM_SHA256",
            certs=["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
            verified_chains=[["leaf-pem", "ca-pem"]],
            server_name="nats.example.com",
        ),
        request_nonce="cmVxLW5vbmNl",
    )
    return c, w.server


def tk_auth_response(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.AuthorizationResponseClaims(
        sub=w.user.public_key,
        aud=w.server.public_key,
        exp=IAT + 120,
        jwt=tk_user_token(w),
    )
    return c, w.account


def tk_auth_response_sk(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.AuthorizationResponseClaims(
        sub=w.user.public_key,
        aud=w.server.public_key,
        error="not allowed: <bad> & worse",
        issuer_account=w.account.public_key,
    )
    return c, w.account_sk


def tk_generic(w: World) -> tuple[jwt.Claims, KeyPair]:
    c = jwt.GenericClaims(
        sub=w.operator.public_key,
        data={"type": "delete", "accounts": [w.other.public_key], "n": 1.5, "deep": {"b": [1, 2], "a": None}},
    )
    return c, w.operator


TK_BUILDERS: dict[str, Callable[[World], tuple[jwt.Claims, KeyPair]]] = {
    "operator": tk_operator,
    "account": tk_account,
    "user": tk_user,
    "scoped_user": tk_scoped_user,
    "activation": tk_activation,
    "authorization_request": tk_auth_request,
    "authorization_response": tk_auth_response,
    "authorization_response_sk": tk_auth_response_sk,
    "generic": tk_generic,
}


@pytest.mark.parametrize("kind", list(TK_BUILDERS))
def test_trustkit_token_decodes_and_verifies_in_js(js_checker: JsChecker, w: World, kind: str) -> None:
    claims, signer = TK_BUILDERS[kind](w)
    assert claims.validate(now=NOW).errors == [], "test data must be valid"
    token = claims.encode(signer, iat=IAT)

    js_claims = js_decode(js_checker, token)

    # JS reads exactly the JSON trustkit meant to write, field by field ...
    assert json_diff(js_claims, claims.payload_json()) == []
    # ... which is also what is in the token
    assert json_diff(js_claims, payload_of(token)) == []
    assert js_claims["iss"] == signer.public_key
    assert js_claims["iat"] == IAT
    assert js_claims["jti"] == claims.jti
    assert js_claims["nats"]["version"] == 2
    if kind != "generic":
        assert js_claims["nats"]["type"] == claims.CLAIM_TYPE
    # and trustkit reads its own token back the same
    back = jwt.decode(token, type(claims))
    assert back.payload_json() == claims.payload_json()


def test_trustkit_token_spot_checks_in_js(js_checker: JsChecker, w: World) -> None:
    """A few values named explicitly, so a shared serialisation bug cannot hide in json_diff."""
    acct, osk = tk_account(w)
    a = js_decode(js_checker, acct.encode(osk, iat=IAT))
    assert a["iss"] == w.operator_sk.public_key and a["sub"] == w.account.public_key
    assert a["nats"]["authorization"] == {
        "auth_users": [w.auth_user.public_key],
        "allowed_accounts": [w.other.public_key],
        "xkey": w.xkey.public_key,
    }
    assert a["nats"]["revocations"] == {w.user.public_key: IAT, "*": IAT - 100}
    assert a["nats"]["description"] == "the <main> account & more"  # HTML escaping undone by JSON.parse
    scoped = [s for s in a["nats"]["signing_keys"] if isinstance(s, dict)]
    assert [s["key"] for s in scoped] == [w.scoped_sk.public_key]
    assert scoped[0]["kind"] == "user_scope" and scoped[0]["role"] == "ops"
    assert w.account_sk.public_key in a["nats"]["signing_keys"]
    assert [e["subject"] for e in a["nats"]["exports"]] == ["events.>", "hdr.svc", "svc.*.req"]
    assert a["nats"]["exports"][1]["service_latency"] == {"sampling": "headers", "results": "lat.hdr"}
    assert a["nats"]["limits"]["tiered_limits"]["R1"]["max_bytes_required"] is True
    # the import's activation token verifies in JS too
    act = js_decode(js_checker, a["nats"]["imports"][1]["token"])
    assert (act["iss"], act["sub"], act["nats"]["kind"]) == (
        w.other.public_key,
        w.account.public_key,
        "service",
    )

    user, ask = tk_user(w)
    u = js_decode(js_checker, user.encode(ask, iat=IAT))
    assert u["iss"] == w.account_sk.public_key
    assert u["nats"]["issuer_account"] == w.account.public_key
    assert u["nats"]["sub"] == {"allow": ["acme.*", "q.> workers"], "deny": ["acme.x"]}
    assert u["nats"]["resp"] == {"max": 5, "ttl": 60_000_000_000}
    assert u["nats"]["src"] == ["192.168.0.0/16", "10.1.2.3/32"]
    assert u["nats"]["times"][1] == {"start": "13:00:00", "end": "17:30:00"}
    assert u["nats"]["tags"] == ["dept:eng", "role:dev"]

    req, server = tk_auth_request(w)
    r = js_decode(js_checker, req.encode(server, iat=IAT))
    assert r["iss"] == w.server.public_key and r["aud"] == "nats-authorization-request"
    assert r["nats"]["connect_opts"]["pass"] == "p<a>ss"
    assert r["nats"]["client_tls"]["verified_chains"] == [["leaf-pem", "ca-pem"]]
    inner = js_decode(js_checker, r["nats"]["connect_opts"]["jwt"])
    assert inner["sub"] == w.user.public_key


def test_js_refuses_tampered_trustkit_token(js_checker: JsChecker, w: World) -> None:
    """Control: the JS decode really verifies (a flipped signature char is refused)."""
    claims, signer = tk_user(w)
    token = claims.encode(signer, iat=IAT)
    h, p, s = token.split(".")
    bad_sig = flip(s, 20)[0]
    assert "error" in js_checker.call({"op": "decode", "token": f"{h}.{p}.{bad_sig}"})
    other, _ = tk_scoped_user(w)
    other_p = other.encode(w.scoped_sk, iat=IAT).split(".")[1]
    assert "error" in js_checker.call({"op": "decode", "token": f"{h}.{other_p}.{s}"})


# --- 2. JS encodes -> trustkit decodes, verifies, validates -------------------------------------


def js_operator(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "operator",
        "seed": w.operator.seed,
        "name": "OP",
        "nats": {
            "signing_keys": [w.operator_sk.public_key],
            "account_server_url": "http://localhost:9090/jwt/v1",
            "operator_service_urls": ["nats://localhost:4222"],
            "system_account": w.sys.public_key,
            "assert_server_version": "2.10.0",
            "strict_signing_key_usage": True,
            "tags": ["a", "b"],
        },
        "opts": {"exp": EXP},
    }
    return req, jwt.OperatorClaims, w.operator.public_key


def js_account(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    scope = {
        "kind": "user_scope",
        "key": w.scoped_sk.public_key,
        "role": "ops",
        "template": {
            "pub": {"allow": ["ops.>"]},
            "sub": {"allow": ["ops.>"], "deny": ["ops.audit"]},
            "subs": 10,
            "data": -1,
            "payload": -1,
        },
        "description": "ops users",
    }
    signing_keys = sorted(
        [w.account_sk.public_key, scope], key=lambda s: s if isinstance(s, str) else s["key"]
    )
    req = {
        "kind": "account",
        "seed": w.operator_sk.seed,  # signing key of the operator: JS opts.signer
        "sub": w.account.public_key,
        "name": "ACME",
        "nats": {
            "limits": {
                "subs": 100,
                "data": -1,
                "payload": 1024,
                "imports": -1,
                "exports": -1,
                "wildcards": True,
                "conn": 10,
                "leaf": -1,
                "mem_storage": 1 << 30,
                "disk_storage": -1,
                "streams": 5,
                "consumer": -1,
            },
            "exports": [
                {"name": "events", "subject": "events.>", "type": "stream"},
                {
                    "name": "svc",
                    "subject": "svc.*.req",
                    "type": "service",
                    "token_req": True,
                    "response_type": "Chunked",
                    "service_latency": {"sampling": "headers", "results": "lat.svc"},
                    "account_token_position": 2,
                },
            ],
            "imports": [
                {"name": "theirs", "subject": "their.>", "account": w.other.public_key, "type": "stream"},
                {
                    "name": "their svc",
                    "subject": "their.svc",
                    "account": w.other.public_key,
                    "local_subject": "mine.svc",
                    "type": "service",
                },
            ],
            "signing_keys": signing_keys,
            "revocations": {w.user.public_key: IAT, "*": IAT - 1},
            "default_permissions": {"pub": {"deny": ["secret.>"]}, "sub": {}},
            "mappings": {
                "orders.new": [{"subject": "orders.v1", "weight": 50}, {"subject": "orders.v2", "weight": 50}]
            },
            "authorization": {
                "auth_users": [w.auth_user.public_key],
                "allowed_accounts": ["*"],
                "xkey": w.xkey.public_key,
            },
            "description": "from JS",
            "info_url": "https://example.com",
            "tags": ["js"],
        },
        "opts": {"exp": EXP, "nbf": IAT - 5},
    }
    return req, jwt.AccountClaims, w.operator_sk.public_key


def js_account_self(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {"kind": "account", "seed": w.other.seed, "name": "self", "nats": {"description": "self-signed"}}
    return req, jwt.AccountClaims, w.other.public_key


def js_user(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "user",
        "seed": w.account.seed,
        "sub": w.user.public_key,
        "name": "bob",
        "nats": {
            "pub": {"allow": ["a.>"], "deny": ["a.b"]},
            "sub": {"allow": ["_INBOX.>", "q.* grp"]},
            "resp": {"max": 1, "ttl": 0},
            "src": ["127.0.0.0/8"],
            "times": [{"start": "00:00:00", "end": "23:59:59"}],
            "times_location": "UTC",
            "subs": 10,
            "bearer_token": True,
            "allowed_connection_types": ["STANDARD", "MQTT"],
            "tags": ["x"],
        },
        "opts": {"exp": EXP},
    }
    return req, jwt.UserClaims, w.account.public_key


def js_user_sk(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "user",
        "seed": w.account_sk.seed,
        "issuer": w.account.public_key,
        "sub": w.user.public_key,
        "name": "bob-sk",
        "nats": {"pub": {"allow": ["x.>"]}, "payload": 512},
    }
    return req, jwt.UserClaims, w.account_sk.public_key


def js_user_scoped(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "user",
        "seed": w.scoped_sk.seed,
        "issuer": w.account.public_key,
        "sub": w.user.public_key,
        "name": "scoped",
        "opts": {"scopedUser": True},
    }
    return req, jwt.UserClaims, w.scoped_sk.public_key


def js_activation(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "activation",
        "seed": w.account.seed,
        "sub": w.other.public_key,
        "name": "grant",
        "nats": {"subject": "svc.*.req", "kind": "service"},
        "opts": {"exp": EXP},
    }
    return req, jwt.ActivationClaims, w.account.public_key


def js_activation_sk(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "activation",
        "seed": w.account_sk.seed,
        "issuer": w.account.public_key,
        "sub": w.other.public_key,
        "name": "grant-sk",
        "nats": {"subject": "events.>", "kind": "stream"},
    }
    return req, jwt.ActivationClaims, w.account_sk.public_key


def js_auth_response(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "authorization_response",
        "seed": w.account.seed,
        "sub": w.user.public_key,
        "aud": w.server.public_key,
        "nats": {"jwt": tk_user_token(w)},
        "opts": {"exp": IAT + 120},
    }
    return req, jwt.AuthorizationResponseClaims, w.account.public_key


def js_auth_response_sk(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "authorization_response",
        "seed": w.account_sk.seed,
        "issuer": w.account.public_key,
        "sub": w.user.public_key,
        "aud": w.server.public_key,
        "nats": {"error": "denied"},
    }
    return req, jwt.AuthorizationResponseClaims, w.account_sk.public_key


def js_auth_request(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "authorization_request",
        "seed": w.server.seed,
        "sub": w.server.public_key,
        "nats": {
            "server_id": {
                "name": "srv",
                "host": "10.0.0.1",
                "id": w.server.public_key,
                "version": "2.10.14",
                "xkey": w.server_xkey.public_key,
            },
            "user_nkey": w.user.public_key,
            "client_info": {"host": "127.0.0.1", "id": 7, "user": "bob", "kind": "Client", "type": "nats"},
            "connect_opts": {
                "user": "bob",
                "pass": "secret",
                "lang": "go",
                "version": "1.31.0",
                "protocol": 1,
            },
            "client_tls": {"version": "1.3", "cipher": "TLS_AES_256_GCM_SHA384", "verified_chains": [["a"]]},
            "request_nonce": "abc",
        },
        "opts": {"exp": IAT + 120},
    }
    return req, jwt.AuthorizationRequestClaims, w.server.public_key


def js_generic(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {
        "kind": "generic",
        "seed": w.operator.seed,
        "name": "gen",
        "type": "generic",
        "nats": {"accounts": [w.other.public_key], "n": 1.5, "deep": {"z": [1, "two", None], "a": True}},
    }
    return req, jwt.GenericClaims, w.operator.public_key


def js_generic_custom_type(w: World) -> tuple[dict[str, Any], type[jwt.Claims], str]:
    req = {"kind": "generic", "seed": w.account.seed, "type": "my_custom", "nats": {"k": "v"}}
    return req, jwt.GenericClaims, w.account.public_key


JS_BUILDERS = {
    "operator": js_operator,
    "account": js_account,
    "account_self_signed": js_account_self,
    "user": js_user,
    "user_signing_key": js_user_sk,
    "user_scoped": js_user_scoped,
    "activation": js_activation,
    "activation_signing_key": js_activation_sk,
    "authorization_response": js_auth_response,
    "authorization_response_signing_key": js_auth_response_sk,
    "authorization_request": js_auth_request,
    "generic": js_generic,
    "generic_custom_type": js_generic_custom_type,
}


def js_jti(payload: dict[str, Any]) -> str:
    """JS's jti: standard base64 of SHA-512 over JSON.stringify(claim) before jti was added."""
    body = {k: v for k, v in payload.items() if k != "jti"}
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha512(raw).digest()).decode()


@pytest.mark.parametrize("case", list(JS_BUILDERS))
def test_js_token_decodes_in_trustkit(js_checker: JsChecker, w: World, case: str) -> None:
    req, cls, iss = JS_BUILDERS[case](w)
    asked = json.loads(json.dumps(req.get("nats", {})))  # the library mutates its own copy only
    token = js_encode(js_checker, req)
    payload = payload_of(token)

    c = jwt.decode(token, cls)

    assert type(c) is cls
    assert c.token == token  # the original string is kept, not a re-encoding
    # standard claims: what JS wrote, JS quirks kept
    assert c.iss == iss == payload["iss"]
    assert c.iat == IAT
    assert c.sub == payload["sub"]
    assert c.name == req.get("name", "")
    want_aud = req["aud"] if case.startswith("authorization_response") else "NATS"
    if case == "authorization_request":
        want_aud = jwt.AUTH_REQUEST_AUDIENCE
    assert c.aud == want_aud
    assert c.exp == req.get("opts", {}).get("exp", 0)
    assert c.nbf == req.get("opts", {}).get("nbf", 0)
    assert c.jti == payload["jti"] == js_jti(payload)
    assert len(base64.b64decode(c.jti, validate=True)) == 64
    assert c.tags == asked.get("tags", [])
    # every value JS wrote (incl. what it was asked for) survives in trustkit's model
    assert json_subset(payload, c.payload_json()) == []
    assert json_subset(asked, c.nats_json(), "$.nats") == []
    assert c.nats_json()["version"] == 2
    # content is valid: no errors, no time problems at NOW
    vr = c.validate(now=NOW)
    assert vr.errors == []
    assert vr.time_checks == []


def test_js_tokens_field_values(js_checker: JsChecker, w: World) -> None:
    """Explicit attribute checks on the decoded objects (not only via re-serialisation)."""
    op = jwt.decode(js_encode(js_checker, js_operator(w)[0]), jwt.OperatorClaims)
    assert op.sub == w.operator.public_key and op.is_self_signed()
    assert op.signing_keys == [w.operator_sk.public_key]
    assert op.system_account == w.sys.public_key
    assert op.strict_signing_key_usage is True
    assert op.operator_service_urls == ["nats://localhost:4222"]

    acct = jwt.decode(js_encode(js_checker, js_account(w)[0]), jwt.AccountClaims)
    assert acct.sub == w.account.public_key and acct.iss == w.operator_sk.public_key
    assert (acct.limits.subs, acct.limits.payload, acct.limits.conn, acct.limits.mem_storage) == (
        100,
        1024,
        10,
        1 << 30,
    )
    assert acct.limits.jetstream_enabled()
    assert acct.scope_of(w.account_sk.public_key) is None and w.account_sk.public_key in acct.signing_keys
    scope = acct.scope_of(w.scoped_sk.public_key)
    assert scope is not None and scope.role == "ops" and scope.description == "ops users"
    assert scope.template.pub.allow == ["ops.>"] and scope.template.subs == 10
    assert acct.is_revoked(w.user.public_key, IAT) and not acct.is_revoked(w.user.public_key, IAT + 1)
    assert acct.is_revoked(w.auth_user.public_key, IAT - 1)
    svc = acct.exports[1]
    assert svc.service_latency is not None and svc.service_latency.sampling == 0  # "headers"
    assert (svc.token_req, svc.response_type, svc.account_token_position) == (True, "Chunked", 2)
    assert acct.imports[1].local_subject == "mine.svc"
    assert [m.effective_weight() for m in acct.mappings["orders.new"]] == [50, 50]
    assert acct.callout_enabled()
    assert acct.authorization.xkey == w.xkey.public_key
    assert acct.authorization.allowed_accounts == ["*"]
    assert acct.default_permissions.pub.deny == ["secret.>"]

    u = jwt.decode(js_encode(js_checker, js_user(w)[0]), jwt.UserClaims)
    assert u.pub.allow == ["a.>"] and u.pub.deny == ["a.b"]
    assert u.sub_perms.allow == ["_INBOX.>", "q.* grp"]
    assert u.resp == jwt.ResponsePermission(max=1, ttl=0)
    assert (u.subs, u.data, u.payload) == (10, -1, -1)  # JS defaultUser fills data/payload
    assert u.bearer_token is True and u.issuer_account == ""
    assert u.times == [jwt.TimeRange(start="00:00:00", end="23:59:59")]

    usk = jwt.decode(js_encode(js_checker, js_user_sk(w)[0]), jwt.UserClaims)
    assert usk.iss == w.account_sk.public_key
    assert usk.issuer_account == w.account.public_key
    assert (usk.subs, usk.data, usk.payload) == (-1, -1, 512)

    scoped = jwt.decode(js_encode(js_checker, js_user_scoped(w)[0]), jwt.UserClaims)
    assert scoped.issuer_account == w.account.public_key
    assert scoped.has_empty_permissions()

    act = jwt.decode(js_encode(js_checker, js_activation_sk(w)[0]), jwt.ActivationClaims)
    assert (act.import_subject, act.import_type, act.issuer_account) == (
        "events.>",
        "stream",
        w.account.public_key,
    )
    assert act.sub == w.other.public_key

    areq = jwt.decode(js_encode(js_checker, js_auth_request(w)[0]), jwt.AuthorizationRequestClaims)
    assert areq.iss == w.server.public_key
    assert areq.user_nkey == w.user.public_key
    assert areq.server_id.xkey == w.server_xkey.public_key
    assert areq.client_info.id == 7
    assert areq.connect_opts.password == "secret" and areq.connect_opts.protocol == 1
    assert areq.client_tls is not None and areq.client_tls.verified_chains == [["a"]]
    assert areq.request_nonce == "abc"

    gen = jwt.decode(js_encode(js_checker, js_generic(w)[0]), jwt.GenericClaims)
    assert gen.data == {
        "accounts": [w.other.public_key],
        "n": 1.5,
        "deep": {"z": [1, "two", None], "a": True},
        "type": "generic",
    }
    assert gen.claim_type == "generic"
    custom = jwt.decode(js_encode(js_checker, js_generic_custom_type(w)[0]), jwt.GenericClaims)
    assert custom.claim_type == "my_custom" and custom.data["k"] == "v"


# --- 3. tampered JS tokens are refused ----------------------------------------------------------


@pytest.fixture(scope="module")
def js_user_token(js_checker: JsChecker, w: World) -> str:
    return js_encode(js_checker, js_user(w)[0])


def test_flipped_signature_chars_refused(js_user_token: str) -> None:
    h, p, s = js_user_token.split(".")
    assert len(s) == 86
    jwt.decode(js_user_token, jwt.UserClaims)  # the untouched token is fine
    for pos in range(len(s)):
        for bad in flip(s, pos):
            token = f"{h}.{p}.{bad}"
            if pos < len(s) - 1:
                with pytest.raises(TokenSignatureError, match="signature"):
                    jwt.decode(token, jwt.UserClaims)
            else:
                # the last char carries 4 padding bits: a non-canonical spelling is malformed,
                # a real bit change is a bad signature
                with pytest.raises((TokenSignatureError, MalformedTokenError)):
                    jwt.decode(token, jwt.UserClaims)


def test_flipped_payload_chars_refused(js_user_token: str) -> None:
    h, p, s = js_user_token.split(".")
    seen: set[type[TokenError]] = set()
    rng = random.Random(7)
    for pos in range(len(p)):
        for bad in rng.sample(flip(p, pos), 4):
            # decode checks in order: JSON, claim type/version, issuer key, signature. A flip that
            # lands in "type", "version" or "iss" is refused by that earlier check (ClaimTypeError,
            # UnsupportedVersionError, IssuerError): still a TokenError, never accepted.
            with pytest.raises(TokenError) as err:
                jwt.decode(f"{h}.{bad}.{s}", jwt.UserClaims)
            seen.add(type(err.value))
    assert {TokenSignatureError, MalformedTokenError} <= seen


def test_flipped_payload_char_kinds(js_user_token: str) -> None:
    """Deterministic examples of both refusals."""
    h, p, s = js_user_token.split(".")
    # first char: '{' becomes a non-JSON byte -> malformed before any signature check
    with pytest.raises(MalformedTokenError):
        jwt.decode(f"{h}.{'f' + p[1:]}.{s}", jwt.UserClaims)
    # a char inside the "name" value that keeps the JSON valid -> signature failure
    raw = base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))
    at = raw.index(b'"bob"') + 1
    # a base64 char whose 6 bits all fall inside the three bytes "bob"
    pos = next(i for i in range(len(p)) if 6 * i >= 8 * at and 6 * i + 6 <= 8 * (at + 3))
    found = False
    for bad in flip(p, pos):
        try:
            body = json.loads(base64.urlsafe_b64decode(bad + "=" * (-len(bad) % 4)))
        except (ValueError, UnicodeDecodeError):
            continue
        found = True
        assert body != payload_of(js_user_token)
        with pytest.raises(TokenSignatureError):
            jwt.decode(f"{h}.{bad}.{s}", jwt.UserClaims)
    assert found


# --- 4. xkv1 ------------------------------------------------------------------------------------


PLAINTEXTS = [b"", b"x", b"authorization request \x00\xff", bytes(range(256)) * 40]


@pytest.mark.parametrize("size", [len(x) for x in PLAINTEXTS])
def test_js_seals_trustkit_opens(js_checker: JsChecker, size: int) -> None:
    data = next(x for x in PLAINTEXTS if len(x) == size)
    sender = js_checker.ok({"op": "xkey_create"})
    recipient = KeyPair.generate(PrefixByte.CURVE)
    sealed = unb64(
        js_checker.ok(
            {
                "op": "xkey_seal",
                "seed": sender["seed"],
                "recipient": recipient.public_key,
                "data_b64": b64(data),
            }
        )["sealed_b64"]
    )
    assert sealed[:4] == b"xkv1" and len(sealed) == 4 + 24 + 16 + len(data)
    assert recipient.open(sealed, sender["public"]) == data
    # trustkit derives the JS sender's public key from its seed
    assert KeyPair.from_seed(sender["seed"]).public_key == sender["public"]


@pytest.mark.parametrize("size", [len(x) for x in PLAINTEXTS])
def test_trustkit_seals_js_opens(js_checker: JsChecker, size: int) -> None:
    data = next(x for x in PLAINTEXTS if len(x) == size)
    sender = KeyPair.generate(PrefixByte.CURVE)
    recipient = js_checker.ok({"op": "xkey_create"})
    sealed = sender.seal(data, recipient["public"])
    r = js_checker.ok(
        {"op": "xkey_open", "seed": recipient["seed"], "sender": sender.public_key, "sealed_b64": b64(sealed)}
    )
    assert unb64(r["data_b64"]) == data
    assert js_checker.ok({"op": "xkey_public", "seed": sender.seed}) == {"public": sender.public_key}


def test_seal_fixed_nonce_identical_both_ways(js_checker: JsChecker) -> None:
    rng = random.Random(99)
    a = key(rng, PrefixByte.CURVE)
    b = key(rng, PrefixByte.CURVE)
    for i in range(5):
        nonce = rng.randbytes(24)
        data = rng.randbytes(rng.randrange(0, 300))
        for sender, recipient in ((a, b), (b, a)):
            tk = sender.seal(data, recipient.public_key, rand=lambda n, nonce=nonce: nonce)
            js = unb64(
                js_checker.ok(
                    {
                        "op": "xkey_seal",
                        "seed": sender.seed,
                        "recipient": recipient.public_key,
                        "data_b64": b64(data),
                        "nonce_b64": b64(nonce),
                    }
                )["sealed_b64"]
            )
            assert tk == js, f"round {i}: sealed bytes differ"
            assert tk[4:28] == nonce
            # each side opens the other's (identical) box
            assert recipient.open(js, sender.public_key) == data
            opened = js_checker.ok(
                {
                    "op": "xkey_open",
                    "seed": recipient.seed,
                    "sender": sender.public_key,
                    "sealed_b64": b64(tk),
                }
            )
            assert unb64(opened["data_b64"]) == data


def test_wrong_recipient_fails_both_sides(js_checker: JsChecker) -> None:
    rng = random.Random(5)
    sender, recipient, intruder = (key(rng, PrefixByte.CURVE) for _ in range(3))
    data = b"user jwt goes here"

    # JS seals for recipient; trustkit's intruder (or the right key with the wrong sender) fails
    js_sealed = unb64(
        js_checker.ok(
            {"op": "xkey_seal", "seed": sender.seed, "recipient": recipient.public_key, "data_b64": b64(data)}
        )["sealed_b64"]
    )
    with pytest.raises(SealError) as err:
        intruder.open(js_sealed, sender.public_key)
    assert str(err.value) == "nkeys: could not decrypt input"
    with pytest.raises(SealError, match=r"^nkeys: could not decrypt input$"):
        recipient.open(js_sealed, intruder.public_key)
    assert recipient.open(js_sealed, sender.public_key) == data

    # trustkit seals for recipient; JS with the intruder's seed (or the wrong sender) fails
    tk_sealed = sender.seal(data, recipient.public_key)
    for seed, claimed_sender in ((intruder.seed, sender.public_key), (recipient.seed, intruder.public_key)):
        r = js_checker.call(
            {"op": "xkey_open", "seed": seed, "sender": claimed_sender, "sealed_b64": b64(tk_sealed)}
        )
        assert "error" in r and "could not decrypt" in r["error"], r
    with pytest.raises(SealError, match=r"^nkeys: could not decrypt input$"):
        intruder.open(tk_sealed, sender.public_key)


# --- 5. nkeys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ED_KINDS, ids=lambda k: k.label)
def test_nkeys_agree_with_js(js_checker: JsChecker, kind: PrefixByte) -> None:
    rng = random.Random(1000 + int(kind))
    for _ in range(20):
        kp = key(rng, kind)
        msg = rng.randbytes(rng.randrange(0, 200))
        r = js_checker.ok({"op": "nkey", "seed": kp.seed, "sign_b64": b64(msg)})
        assert r["public"] == kp.public_key
        assert r["seed"] == kp.seed
        js_sig = unb64(r["sig_b64"])
        tk_sig = kp.sign(msg)
        assert js_sig == tk_sig  # Ed25519 is deterministic
        # cross-verify: JS verifies trustkit's, trustkit's verify-only key verifies JS's
        verify = {"op": "verify", "public": kp.public_key, "data_b64": b64(msg)}
        assert js_checker.ok({**verify, "sig_b64": b64(tk_sig)}) == {"ok": True}
        KeyPair.from_public_key(r["public"]).verify(msg, js_sig)
        # and both refuse a signature over other data
        assert js_checker.ok({**verify, "data_b64": b64(msg + b"!"), "sig_b64": b64(tk_sig)}) == {"ok": False}


def test_curve_keys_agree_with_js(js_checker: JsChecker) -> None:
    rng = random.Random(2000)
    for _ in range(20):
        kp = key(rng, PrefixByte.CURVE)
        assert js_checker.ok({"op": "xkey_public", "seed": kp.seed}) == {"public": kp.public_key}


@pytest.mark.parametrize("kind", ED_KINDS, ids=lambda k: k.label)
def test_js_created_keys_load_in_trustkit(js_checker: JsChecker, kind: PrefixByte) -> None:
    for _ in range(5):
        r = js_checker.ok({"op": "nkey_create", "type": JS_TYPE[kind]})
        kp = KeyPair.from_seed(r["seed"])
        assert kp.kind is kind
        assert kp.public_key == r["public"]
        assert kp.seed == r["seed"]
    x = js_checker.ok({"op": "xkey_create"})
    assert KeyPair.from_seed(x["seed"]).public_key == x["public"]


# --- 6. JS authorization response carrying a user JWT ------------------------------------------


@pytest.mark.parametrize("inner_by", ["js", "trustkit"])
@pytest.mark.parametrize("via_signing_key", [False, True], ids=["identity", "signing_key"])
def test_js_authorization_response_with_user_jwt(
    js_checker: JsChecker, w: World, inner_by: str, via_signing_key: bool
) -> None:
    if inner_by == "js":
        inner = js_encode(
            js_checker,
            {
                "kind": "user",
                "seed": w.account_sk.seed,
                "issuer": w.account.public_key,
                "sub": w.user.public_key,
                "name": "callout-user",
                "nats": {"pub": {"allow": ["app.>"]}, "sub": {"allow": ["_INBOX.>"]}},
                "opts": {"exp": IAT + 3600},
            },
        )
    else:
        inner = tk_user_token(w)
    req: dict[str, Any] = {
        "kind": "authorization_response",
        "seed": (w.account_sk if via_signing_key else w.account).seed,
        "sub": w.user.public_key,
        "aud": w.server.public_key,
        "nats": {"jwt": inner},
        "opts": {"exp": IAT + 120},
    }
    if via_signing_key:
        req["issuer"] = w.account.public_key
    token = js_encode(js_checker, req)

    resp = jwt.decode(token, jwt.AuthorizationResponseClaims)
    assert resp.token == token
    assert resp.sub == w.user.public_key and resp.aud == w.server.public_key
    assert resp.iss == (w.account_sk if via_signing_key else w.account).public_key
    assert resp.issuer_account == (w.account.public_key if via_signing_key else "")
    assert resp.jwt == inner and resp.error == ""
    assert resp.validate(now=NOW).errors == []
    assert resp.validate(now=IAT + 121).time_checks == ["claim is expired"]

    user = jwt.decode(resp.jwt, jwt.UserClaims)
    assert user.token == inner
    assert user.sub == resp.sub
    assert user.iss == w.account_sk.public_key and user.issuer_account == w.account.public_key
    assert user.validate(now=NOW).errors == []
    if inner_by == "js":
        assert user.aud == "NATS" and user.pub.allow == ["app.>"] and user.exp == IAT + 3600
    else:
        want, signer = tk_user(w)
        want.encode(signer, iat=IAT)
        assert user.payload_json() == want.payload_json()
        assert user.name == "alice" and user.times_location == "Europe/Berlin"
