"""Smoke tests of the JS reference checker itself (no trustkit involved).

Vectors come from the reference notes (§1.7 deterministic keys, §2.13 one.creds token); the xkv1
seal format (§1.6) is checked against pynacl in both directions.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from nacl.public import Box, PrivateKey, PublicKey

from tests.interop.jscheck import JsChecker

pytestmark = pytest.mark.real

USER_SEED = "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y"
USER_PUB = "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK"
CURVE_SEED = "SXAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H74KM"
CURVE_PUB = "XCHUBRNNW2HSKYSK4WZBJ2TWPJXMSTMCTU6XWXQ22G5G6PRBHAUF76G7"
RAW_SEED = bytes(range(32))  # the 32 bytes inside both deterministic seeds

ONE_CREDS_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ."
    "eyJqdGkiOiJHRUNQVEpISE1TM01DTUtMVFBHWUdBTzQ1R1E2TjZRUFlXUTRHUExBRUIzM1ZDUkpOUlZRIiwiaWF0IjoxNjE2MjQ3"
    "MjMyLCJpc3MiOiJBQlZSWktKNlo3TklNUElZSlJDSEVZRlJVTzdFTk42TldPS1FERkxGREZWUFNNMzZVUFgyVUNQUCIsIm5hbWUi"
    "OiJvbmUiLCJzdWIiOiJVRENJQkdHR0hDSkJRUE9PNFNDSkpCSFpEUjM3TlFHR0NJV01ORzJEREFLSjZXTUtCTUFLWElNTyIsIm5h"
    "dHMiOnsicHViIjp7fSwic3ViIjp7fSwic3VicyI6LTEsImRhdGEiOi0xLCJwYXlsb2FkIjotMSwidHlwZSI6InVzZXIiLCJ2ZXJz"
    "aW9uIjoyfX0."
    "VLhSDtGZEF_jdvgmhgkdISXAt5wFMMZxxwm5w8UrsnlM1hkUvtxBlTe4IP0xJIf4xf8JOR2Bmf73xUGJKUZECQ"
)
ONE_CREDS_SUB = "UDCIBGGGHCJBQPOO4SCJJBHZDR37NQGGCIWMNG2DDAKJ6WMKBMAKXIMO"
ONE_CREDS_ISS = "ABVRZKJ6Z7NIMPIYJRCHEYFRUO7ENN6NWOKQDFLFDFVPSM36UPX2UCPP"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def payload(token: str) -> dict:
    chunk = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(chunk + "=" * (-len(chunk) % 4)))


def new_key(js: JsChecker, kind: str) -> dict:
    return js.ok({"op": "nkey_create", "type": kind})


# -- (a) deterministic key vectors -----------------------------------------------------------


def test_user_seed_vector(js_checker: JsChecker) -> None:
    r = js_checker.ok({"op": "nkey", "seed": USER_SEED})
    assert r == {"public": USER_PUB, "seed": USER_SEED}


def test_curve_seed_vector(js_checker: JsChecker) -> None:
    assert js_checker.ok({"op": "xkey_public", "seed": CURVE_SEED}) == {"public": CURVE_PUB}
    # and the same public key straight from pynacl (X25519 of the raw seed bytes)
    assert bytes(PrivateKey(RAW_SEED).public_key) == _curve_raw(CURVE_PUB)


def test_sign_and_verify(js_checker: JsChecker) -> None:
    msg = b"nonce-from-server"
    sig = unb64(js_checker.ok({"op": "nkey", "seed": USER_SEED, "sign_b64": b64(msg)})["sig_b64"])
    assert len(sig) == 64
    req = {"op": "verify", "public": USER_PUB, "data_b64": b64(msg), "sig_b64": b64(sig)}
    assert js_checker.ok(req) == {"ok": True}
    assert js_checker.ok({**req, "data_b64": b64(msg + b"!")}) == {"ok": False}
    # Ed25519 is deterministic: pynacl over the same raw seed gives the same signature
    from nacl.signing import SigningKey

    assert SigningKey(RAW_SEED).sign(msg).signature == sig


def test_bad_requests_keep_serving(js_checker: JsChecker) -> None:
    assert "error" in js_checker.call({"op": "no-such-op"})
    assert "error" in js_checker.call({"op": "nkey", "seed": USER_SEED[:-1] + "A"})
    assert "error" in js_checker.call({"op": "xkey_public", "seed": USER_SEED})
    assert js_checker.ok({"op": "ping"})["ok"] is True


# -- (b) decode verifies ---------------------------------------------------------------------


def test_decode_one_creds(js_checker: JsChecker) -> None:
    r = js_checker.ok({"op": "decode", "token": ONE_CREDS_JWT})
    assert r["verified"] is True
    assert r["header"] == {"typ": "JWT", "alg": "ed25519-nkey"}
    c = r["claims"]
    assert c["sub"] == ONE_CREDS_SUB
    assert c["iss"] == ONE_CREDS_ISS
    assert c["jti"] == "GECPTJHHMS3MCMKLTPGYGAO45GQ6N6QPYWQ4GPLAEB33VCRJNRVQ"
    assert c["nats"] == {
        "pub": {},
        "sub": {},
        "subs": -1,
        "data": -1,
        "payload": -1,
        "type": "user",
        "version": 2,
    }


@pytest.mark.parametrize("pos", [0, 10, 43, 85])
def test_decode_flipped_signature_char_fails(js_checker: JsChecker, pos: int) -> None:
    head, body, sig = ONE_CREDS_JWT.split(".")
    flipped = "B" if sig[pos] == "A" else "A"
    bad = f"{head}.{body}.{sig[:pos]}{flipped}{sig[pos + 1 :]}"
    r = js_checker.call({"op": "decode", "token": bad})
    assert "error" in r, r


def test_decode_tampered_payload_fails(js_checker: JsChecker) -> None:
    head, body, sig = ONE_CREDS_JWT.split(".")
    claims = payload(ONE_CREDS_JWT)
    claims["name"] = "two"
    raw = json.dumps(claims, separators=(",", ":")).encode()
    body2 = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert "error" in js_checker.call({"op": "decode", "token": f"{head}.{body2}.{sig}"})
    assert "error" in js_checker.call({"op": "decode", "token": f"{head}.{body}"})


# -- (c) xkv1 seal/open against pynacl -------------------------------------------------------


def _curve_raw(public: str) -> bytes:
    raw = base64.b32decode(public + "=" * (-len(public) % 8))
    assert len(raw) == 35 and raw[0] == 0xB8
    return raw[1:33]


def test_js_seal_pynacl_open(js_checker: JsChecker) -> None:
    recipient = js_checker.ok({"op": "xkey_create"})
    plaintext = b"authorization request jwt \x00\xff"
    sealed = unb64(
        js_checker.ok(
            {
                "op": "xkey_seal",
                "seed": CURVE_SEED,
                "recipient": recipient["public"],
                "data_b64": b64(plaintext),
            }
        )["sealed_b64"]
    )
    assert sealed[:4] == b"xkv1"
    assert len(sealed) == 4 + 24 + 16 + len(plaintext)
    recipient_priv = PrivateKey(_seed_raw(recipient["seed"]))
    assert bytes(recipient_priv.public_key) == _curve_raw(recipient["public"])
    box = Box(recipient_priv, PublicKey(_curve_raw(CURVE_PUB)))
    assert box.decrypt(sealed[28:], sealed[4:28]) == plaintext


def test_pynacl_seal_js_open(js_checker: JsChecker) -> None:
    recipient = js_checker.ok({"op": "xkey_create"})
    plaintext = b"authorization response jwt"
    nonce = os.urandom(24)
    box = Box(PrivateKey(RAW_SEED), PublicKey(_curve_raw(recipient["public"])))
    sealed = b"xkv1" + nonce + box.encrypt(plaintext, nonce).ciphertext
    r = js_checker.ok(
        {"op": "xkey_open", "seed": recipient["seed"], "sender": CURVE_PUB, "sealed_b64": b64(sealed)}
    )
    assert unb64(r["data_b64"]) == plaintext
    # a flipped ciphertext byte, a wrong version and a short input are all refused
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    for bad in (tampered, b"xkv2" + sealed[4:], sealed[:28]):
        r = js_checker.call(
            {"op": "xkey_open", "seed": recipient["seed"], "sender": CURVE_PUB, "sealed_b64": b64(bad)}
        )
        assert "error" in r, r


def test_seal_with_fixed_nonce_matches_pynacl(js_checker: JsChecker) -> None:
    recipient = js_checker.ok({"op": "xkey_create"})
    nonce = bytes(range(24))
    plaintext = b"deterministic"
    r = js_checker.ok(
        {
            "op": "xkey_seal",
            "seed": CURVE_SEED,
            "recipient": recipient["public"],
            "data_b64": b64(plaintext),
            "nonce_b64": b64(nonce),
        }
    )
    box = Box(PrivateKey(RAW_SEED), PublicKey(_curve_raw(recipient["public"])))
    assert unb64(r["sealed_b64"]) == b"xkv1" + nonce + box.encrypt(plaintext, nonce).ciphertext


def _seed_raw(seed: str) -> bytes:
    raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    return raw[2:34]


# -- (d) encode → decode ---------------------------------------------------------------------


def test_encode_user_decodes(js_checker: JsChecker) -> None:
    account = new_key(js_checker, "account")
    r = js_checker.ok(
        {
            "op": "encode",
            "kind": "user",
            "seed": account["seed"],
            "name": "bob",
            "sub": USER_PUB,
            "nats": {"pub": {"allow": ["a.>"]}},
            "opts": {"exp": 4102444800},
            "iat": 1700000000,
        }
    )
    token = r["token"]
    d = js_checker.ok({"op": "decode", "token": token})
    assert d["verified"] is True
    assert d["header"] == {"typ": "JWT", "alg": "ed25519-nkey"}
    c = d["claims"]
    assert c == payload(token)
    assert (c["iss"], c["sub"], c["name"], c["aud"], c["iat"], c["exp"]) == (
        account["public"],
        USER_PUB,
        "bob",
        "NATS",
        1700000000,
        4102444800,
    )
    assert c["nats"]["type"] == "user" and c["nats"]["version"] == 2
    assert c["nats"]["pub"] == {"allow": ["a.>"]}
    # fixed iat → fully deterministic token
    again = js_checker.ok(
        {
            "op": "encode",
            "kind": "user",
            "seed": account["seed"],
            "name": "bob",
            "sub": USER_PUB,
            "nats": {"pub": {"allow": ["a.>"]}},
            "opts": {"exp": 4102444800},
            "iat": 1700000000,
        }
    )
    assert again["token"] == token


def test_encode_user_with_signing_key(js_checker: JsChecker) -> None:
    account = new_key(js_checker, "account")
    signing = new_key(js_checker, "account")
    token = js_checker.ok(
        {
            "op": "encode",
            "kind": "user",
            "seed": signing["seed"],
            "issuer": account["public"],
            "sub": USER_PUB,
        }
    )["token"]
    c = js_checker.ok({"op": "decode", "token": token})["claims"]
    assert c["iss"] == signing["public"]
    assert c["nats"]["issuer_account"] == account["public"]


def test_encode_authorization_response_decodes(js_checker: JsChecker) -> None:
    account = new_key(js_checker, "account")
    server = new_key(js_checker, "server")
    token = js_checker.ok(
        {
            "op": "encode",
            "kind": "authorization_response",
            "seed": account["seed"],
            "sub": USER_PUB,
            "aud": server["public"],
            "nats": {"jwt": "eyJ..."},
        }
    )["token"]
    d = js_checker.ok({"op": "decode", "token": token})
    c = d["claims"]
    assert (c["iss"], c["sub"], c["aud"]) == (account["public"], USER_PUB, server["public"])
    assert c["nats"] == {"jwt": "eyJ...", "type": "authorization_response", "version": 2}


@pytest.mark.parametrize("kind", ["operator", "account", "activation", "authorization_request", "generic"])
def test_encode_other_kinds_decode(js_checker: JsChecker, kind: str) -> None:
    operator = new_key(js_checker, "operator")
    account = new_key(js_checker, "account")
    server = new_key(js_checker, "server")
    req: dict = {"op": "encode", "kind": kind, "name": kind}
    if kind == "operator":
        req |= {"seed": operator["seed"], "nats": {"system_account": account["public"]}}
        iss, sub = operator["public"], operator["public"]
    elif kind == "account":
        req |= {"seed": operator["seed"], "sub": account["public"]}
        iss, sub = operator["public"], account["public"]
    elif kind == "activation":
        req |= {
            "seed": account["seed"],
            "sub": account["public"],
            "nats": {"subject": "svc.>", "kind": "service"},
        }
        iss, sub = account["public"], account["public"]
    elif kind == "authorization_request":
        req |= {"seed": server["seed"], "sub": account["public"], "nats": {"user_nkey": USER_PUB}}
        iss, sub = server["public"], account["public"]
    else:
        req |= {"seed": operator["seed"], "nats": {"accounts": [account["public"]]}}
        iss, sub = operator["public"], operator["public"]
    token = js_checker.ok(req)["token"]
    c = js_checker.ok({"op": "decode", "token": token})["claims"]
    assert (c["iss"], c["sub"]) == (iss, sub)
    assert c["nats"]["version"] == 2
    assert c["nats"]["type"] == kind
