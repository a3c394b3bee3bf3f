"""Smoke tests for the Go reference checker itself (no trustkit imports)."""

from __future__ import annotations

import base64
import json

import pytest

from tests.interop.gocheck import GoChecker

pytestmark = pytest.mark.real

USER_SEED = "SUAPCDMU5TSHHLWUUZSOUABJXP2GXRCZVEOVWPSVM5XRSXYGQMRRFDYNMY"
USER_PUB = "UDCIBGGGHCJBQPOO4SCJJBHZDR37NQGGCIWMNG2DDAKJ6WMKBMAKXIMO"

# Test-only account key, generated once with nkeys.CreateAccount() (Go nkeys 0.3.0).
ACCOUNT_SEED = "SAAHX2KIG757KEREIU7LTMXHJNEUCEGKB2L36DGZ5SEMVMV7CK2UU5QIT4"
ACCOUNT_PUB = "AAPYEAQLRYRNTO66YW6RCT6SMN5HFSRE7BBJQBG7JJBWVPNZ2CFTWT3U"

# one.creds user JWT (reference doc §2.13), issued by ABVRZKJ6... on 2021-03-20.
ONE_CREDS_JWT = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ."
    "eyJqdGkiOiJHRUNQVEpISE1TM01DTUtMVFBHWUdBTzQ1R1E2TjZRUFlXUTRHUExBRUIzM1ZDUkpOUlZRIiwiaWF0IjoxNjE2MjQ3"
    "MjMyLCJpc3MiOiJBQlZSWktKNlo3TklNUElZSlJDSEVZRlJVTzdFTk42TldPS1FERkxGREZWUFNNMzZVUFgyVUNQUCIsIm5hbWUi"
    "OiJvbmUiLCJzdWIiOiJVRENJQkdHR0hDSkJRUE9PNFNDSkpCSFpEUjM3TlFHR0NJV01ORzJEREFLSjZXTUtCTUFLWElNTyIsIm5h"
    "dHMiOnsicHViIjp7fSwic3ViIjp7fSwic3VicyI6LTEsImRhdGEiOi0xLCJwYXlsb2FkIjotMSwidHlwZSI6InVzZXIiLCJ2ZXJz"
    "aW9uIjoyfX0."
    "VLhSDtGZEF_jdvgmhgkdISXAt5wFMMZxxwm5w8UrsnlM1hkUvtxBlTe4IP0xJIf4xf8JOR2Bmf73xUGJKUZECQ"
)


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_versions(go_checker: GoChecker) -> None:
    assert go_checker.call({"op": "version"}) == {"jwt": "2.3.0", "nkeys": "0.3.0"}


def test_user_seed_gives_known_public_key(go_checker: GoChecker) -> None:
    r = go_checker.call({"op": "nkey", "seed": USER_SEED})
    assert r["public"] == USER_PUB
    assert r["seed"] == USER_SEED
    assert r["private"].startswith("P") and len(r["private"]) == 108
    assert "sig_b64" not in r


def test_sign_and_verify(go_checker: GoChecker) -> None:
    data = base64.b64encode(b"hello nats").decode()
    r = go_checker.call({"op": "nkey", "seed": USER_SEED, "sign_b64": data})
    sig = r["sig_b64"]
    assert len(base64.b64decode(sig)) == 64
    ok = go_checker.call({"op": "verify", "public": USER_PUB, "data_b64": data, "sig_b64": sig})
    assert ok == {"ok": True}
    other = base64.b64encode(b"hello natS").decode()
    bad = go_checker.call({"op": "verify", "public": USER_PUB, "data_b64": other, "sig_b64": sig})
    assert bad == {"ok": False}
    assert "error" in go_checker.call({"op": "verify", "public": USER_SEED, "data_b64": data, "sig_b64": sig})


def test_nkey_check(go_checker: GoChecker) -> None:
    r = go_checker.call({"op": "nkey_check", "key": USER_PUB})
    assert r["valid_public"] is True
    assert r["prefix"] == "user"
    assert r["decode_seed_error"] == "nkeys: invalid seed"
    r = go_checker.call({"op": "nkey_check", "key": ACCOUNT_SEED})
    assert r["valid_public"] is False
    assert r["prefix"] == "seed"
    assert r["seed_type"] == "account"
    assert r["decode_seed_error"] == ""
    r = go_checker.call({"op": "nkey_check", "key": USER_PUB[:-1] + ("A" if USER_PUB[-1] != "A" else "B")})
    assert r["valid_public"] is False
    assert r["prefix"] == "unknown"


def test_decode_one_creds(go_checker: GoChecker) -> None:
    r = go_checker.decode(ONE_CREDS_JWT, kind="user")
    assert r["kind"] == "user"
    assert r["claims"]["name"] == "one"
    assert r["claims"]["sub"] == USER_PUB
    # Go re-marshals the decoded struct to exactly the bytes that were signed.
    assert r["payload_json"].encode() == b64url_decode(ONE_CREDS_JWT.split(".")[1])
    assert r["errors"] == [] and r["warnings"] == [] and r["time_checks"] == []
    assert go_checker.decode(ONE_CREDS_JWT)["kind"] == "user"
    assert go_checker.call({"op": "decode", "kind": "account", "token": ONE_CREDS_JWT}) == {
        "error": "not account claim"
    }


def test_encode_user_roundtrip(go_checker: GoChecker) -> None:
    claims = {
        "name": "smoke",
        "sub": USER_PUB,
        "nats": {"pub": {"allow": ["svc.>"]}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
    }
    token = go_checker.encode("user", ACCOUNT_SEED, claims)
    header, payload_b64, _sig = token.split(".")
    assert json.loads(b64url_decode(header)) == {"typ": "JWT", "alg": "ed25519-nkey"}
    payload = b64url_decode(payload_b64)
    r = go_checker.decode(token, kind="user")
    assert r["kind"] == "user"
    assert r["payload_json"].encode() == payload
    c = r["claims"]
    assert c["iss"] == ACCOUNT_PUB
    assert isinstance(c["iat"], int) and c["iat"] > 1_600_000_000
    assert isinstance(c["jti"], str) and len(c["jti"]) == 52
    assert c["nats"]["type"] == "user" and c["nats"]["version"] == 2
    assert c["nats"]["pub"] == {"allow": ["svc.>"]}
    assert b"svc.\\u003e" in payload  # Go's encoding/json HTML-escapes '>'
    assert r["errors"] == []


def test_encode_zero_value_struct_and_strict(go_checker: GoChecker) -> None:
    # Zero-value struct: nothing defaults to -1, absent limits stay absent.
    token = go_checker.encode("user", ACCOUNT_SEED, {"sub": USER_PUB})
    nats = json.loads(b64url_decode(token.split(".")[1]))["nats"]
    assert nats == {"pub": {}, "sub": {}, "type": "user", "version": 2}
    # Unknown keys are dropped silently, or rejected with strict.
    claims = {"sub": USER_PUB, "nats": {"not_a_field": True}}
    assert (
        "not_a_field"
        not in go_checker.decode(go_checker.encode("user", ACCOUNT_SEED, claims))["payload_json"]
    )
    r = go_checker.call(
        {"op": "encode", "kind": "user", "seed": ACCOUNT_SEED, "claims": claims, "strict": True}
    )
    assert r == {"error": 'json: unknown field "not_a_field"'}


def test_creds_roundtrip(go_checker: GoChecker) -> None:
    creds = go_checker.call({"op": "creds", "jwt": ONE_CREDS_JWT, "seed": USER_SEED})["creds"]
    assert creds.startswith(
        "-----BEGIN NATS USER JWT-----\n" + ONE_CREDS_JWT + "\n------END NATS USER JWT------\n"
    )
    assert "-----BEGIN USER NKEY SEED-----\n" + USER_SEED + "\n------END USER NKEY SEED------\n" in creds
    assert go_checker.call({"op": "parse_creds", "data": creds}) == {"jwt": ONE_CREDS_JWT, "seed": USER_SEED}
    r = go_checker.call({"op": "parse_creds", "data": "nothing here"})
    assert r == {"jwt": "nothing here", "seed": "", "seed_error": "no nkey seed found"}
    text = go_checker.call({"op": "decorate", "jwt": ONE_CREDS_JWT})["text"]
    assert text == f"-----BEGIN NATS USER JWT-----\n{ONE_CREDS_JWT}\n------END NATS USER JWT------\n\n"
    assert "error" in go_checker.call({"op": "creds", "jwt": ONE_CREDS_JWT, "seed": ACCOUNT_SEED})


@pytest.mark.parametrize(
    "request_",
    [
        {"op": "nope"},
        {"op": "nkey", "seed": "SUX"},
        {"op": "nkey", "seed": USER_PUB},
        {"op": "decode", "kind": "user", "token": "a.b"},
        {"op": "decode", "kind": "bogus", "token": ONE_CREDS_JWT},
        {"op": "encode", "kind": "user", "seed": ACCOUNT_SEED, "claims": {"sub": "not-a-key"}},
        {"op": "encode", "kind": "user", "seed": USER_SEED, "claims": {"sub": USER_PUB}},
        {"op": "encode", "kind": "user", "seed": ACCOUNT_SEED, "claims": {"sub": 5}},
        {"op": "encode", "kind": "user", "seed": ACCOUNT_SEED},
        {"op": "verify", "public": USER_PUB, "data_b64": "!!", "sig_b64": ""},
        {"op": "decorate", "jwt": "x"},
        {"op": 7},
    ],
)
def test_bad_input_is_an_error_and_process_survives(go_checker: GoChecker, request_: dict) -> None:
    r = go_checker.call(request_)
    assert set(r) == {"error"} and isinstance(r["error"], str) and r["error"]
    assert go_checker.call({"op": "nkey", "seed": USER_SEED})["public"] == USER_PUB


def test_go_panic_is_reported_not_fatal(go_checker: GoChecker) -> None:
    # An account "public key" with a valid CRC but a 5-byte payload: ed25519.Verify panics in Go.
    raw = bytes([0]) + b"short"
    crc = 0
    for byte in raw:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    short_key = base64.b32encode(raw + crc.to_bytes(2, "little")).decode().rstrip("=")
    r = go_checker.call({"op": "verify", "public": short_key, "data_b64": "", "sig_b64": ""})
    assert r["panic"] is True and "bad public key length" in r["error"]
    assert go_checker.call({"op": "version"})["jwt"] == "2.3.0"


def test_raw_garbage_line(go_checker: GoChecker) -> None:
    # Bypass json.dumps: the checker must answer a non-JSON line with an error object.
    proc = go_checker._proc
    assert proc is not None and proc.stdin is not None
    with go_checker._lock:
        proc.stdin.write("this is not json\n")
        proc.stdin.flush()
        answer = json.loads(go_checker._lines.get(timeout=10))
    assert answer["error"].startswith("bad request:")
    assert go_checker.call({"op": "version"})["nkeys"] == "0.3.0"
