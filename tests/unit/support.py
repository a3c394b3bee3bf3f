"""Shared fixtures for the unit tests: Go-produced vectors and a raw token forger.

The forger builds tokens by hand (``header.payload`` signed with any key) so the negative decode
tests can produce what ``Claims.encode`` refuses to: wrong issuer kinds, bad JSON, v1 shapes.
"""

from __future__ import annotations

import json
from typing import Any

from trustkit.jwt.codec import HEADER_B64, b64url_encode
from trustkit.nkeys import KeyPair, PrefixByte

# --- Go-produced vectors (reference §1.7, §2.6, §2.13) ----------------------------------------

ONE_CREDS_SEED = "SUAPCDMU5TSHHLWUUZSOUABJXP2GXRCZVEOVWPSVM5XRSXYGQMRRFDYNMY"
ONE_CREDS_USER = "UDCIBGGGHCJBQPOO4SCJJBHZDR37NQGGCIWMNG2DDAKJ6WMKBMAKXIMO"
ONE_CREDS_ACCOUNT = "ABVRZKJ6Z7NIMPIYJRCHEYFRUO7ENN6NWOKQDFLFDFVPSM36UPX2UCPP"
ONE_CREDS_JTI = "GECPTJHHMS3MCMKLTPGYGAO45GQ6N6QPYWQ4GPLAEB33VCRJNRVQ"
ONE_CREDS_TOKEN = (
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ."
    "eyJqdGkiOiJHRUNQVEpISE1TM01DTUtMVFBHWUdBTzQ1R1E2TjZRUFlXUTRHUExBRUIzM1ZDUkpOUlZRIiwiaWF0IjoxNjE2MjQ3"
    "MjMyLCJpc3MiOiJBQlZSWktKNlo3TklNUElZSlJDSEVZRlJVTzdFTk42TldPS1FERkxGREZWUFNNMzZVUFgyVUNQUCIsIm5hbWUi"
    "OiJvbmUiLCJzdWIiOiJVRENJQkdHR0hDSkJRUE9PNFNDSkpCSFpEUjM3TlFHR0NJV01ORzJEREFLSjZXTUtCTUFLWElNTyIsIm5h"
    "dHMiOnsicHViIjp7fSwic3ViIjp7fSwic3VicyI6LTEsImRhdGEiOi0xLCJwYXlsb2FkIjotMSwidHlwZSI6InVzZXIiLCJ2ZXJz"
    "aW9uIjoyfX0."
    "VLhSDtGZEF_jdvgmhgkdISXAt5wFMMZxxwm5w8UrsnlM1hkUvtxBlTe4IP0xJIf4xf8JOR2Bmf73xUGJKUZECQ"
)
ONE_CREDS_PAYLOAD = (
    b'{"jti":"GECPTJHHMS3MCMKLTPGYGAO45GQ6N6QPYWQ4GPLAEB33VCRJNRVQ","iat":1616247232,'
    b'"iss":"ABVRZKJ6Z7NIMPIYJRCHEYFRUO7ENN6NWOKQDFLFDFVPSM36UPX2UCPP","name":"one",'
    b'"sub":"UDCIBGGGHCJBQPOO4SCJJBHZDR37NQGGCIWMNG2DDAKJ6WMKBMAKXIMO",'
    b'"nats":{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,"type":"user","version":2}}'
)
#: §2.3: the bytes hashed into the one.creds jti
ONE_CREDS_JTI_INPUT = (
    b'{"iat":1616247232,"iss":"ABVRZKJ6Z7NIMPIYJRCHEYFRUO7ENN6NWOKQDFLFDFVPSM36UPX2UCPP",'
    b'"name":"one","sub":"UDCIBGGGHCJBQPOO4SCJJBHZDR37NQGGCIWMNG2DDAKJ6WMKBMAKXIMO"}'
)

#: §2.13 account (operator-signed, one plain signing key)
ACCOUNT_PAYLOAD = (
    b'{"jti":"FTUQ32WXDCGEZ6WIUGEGCD3WRFRXGS2BJD6HPCOOI26Y2L6XHVVQ","iat":1719519727,'
    b'"iss":"OBUCG3RF44VB4WQYHEMTGJG3NMK36X24H4E5EFJZJYWYX3VV5L4JIJSB","name":"A",'
    b'"sub":"ABSMSCU7T4MJXN44NXZCAI52BY4QIL7SIKMSFL3LGRWMZLNCIGSTI7K7",'
    b'"nats":{"limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,'
    b'"conn":-1,"leaf":-1},"signing_keys":["ABQVKKW3Q5LRIVJUNDPLYVSRLKFIIGEKQGYZCPYRDVAYTSCUNCYRTT7X"],'
    b'"default_permissions":{"pub":{},"sub":{}},"authorization":{},"type":"account","version":2}}'
)
#: §2.13 user issued by that account's signing key (issuer_account, no name)
SIGNING_KEY_USER_PAYLOAD = (
    b'{"jti":"KO3LZXG3ADZDDGKJST4QBY2AORQOC7FKYLCIOM7FOHJJAO2ERWTQ","iat":1719519727,'
    b'"iss":"ABQVKKW3Q5LRIVJUNDPLYVSRLKFIIGEKQGYZCPYRDVAYTSCUNCYRTT7X",'
    b'"sub":"UA6KC6KBIPGNIC2N2FVJNQOWGHN3W2BHMKZIKBJUXEN5INIIZJFW25YF",'
    b'"nats":{"pub":{},"sub":{},"subs":-1,"data":-1,"payload":-1,'
    b'"issuer_account":"ABSMSCU7T4MJXN44NXZCAI52BY4QIL7SIKMSFL3LGRWMZLNCIGSTI7K7","type":"user","version":2}}'
)
#: §2.6 operator (nats-server test data)
OPERATOR_PAYLOAD = (
    b'{"jti":"3MRBKPQMMHR7NAQPSO45IVNY235LFT2LK4ZFEUMJYODYBWSDWZTA","iat":1726560200,'
    b'"iss":"OBLOGUBIUPJHFTM4F4ZLOBGPLJPIF4SGBCYEDEKEQSMYUZMQS2DFME2X","name":"op2",'
    b'"sub":"OBLOGUBIUPJHFTM4F4ZLOBGPLJPIF4SGBCYEDEKEQSMYUZMQS2DFME2X",'
    b'"nats":{"signing_keys":["ODKLLI6VZWV6M7WTZWB725HLOLTQQTDK4NQGVEGD4CO7J2L2UIZO5SGW"],'
    b'"system_account":"ACQTWVGSGHYVY3R6D2WMO3V6LV2MGK5B7G47E43BHJB6FQVY7EHNTMMG","type":"operator","version":2}}'
)

B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

# --- deterministic keys -----------------------------------------------------------------------


def key(kind: PrefixByte, n: int) -> KeyPair:
    """A deterministic key of ``kind``: the raw seed is 32 copies of byte ``n``."""
    return KeyPair.generate(kind, rand=lambda size: bytes([n % 256]) * size)


OPERATOR = key(PrefixByte.OPERATOR, 1)
OPERATOR2 = key(PrefixByte.OPERATOR, 2)
ACCOUNT = key(PrefixByte.ACCOUNT, 3)
ACCOUNT2 = key(PrefixByte.ACCOUNT, 4)
USER = key(PrefixByte.USER, 5)
USER2 = key(PrefixByte.USER, 6)
SERVER = key(PrefixByte.SERVER, 7)
CURVE = key(PrefixByte.CURVE, 8)
CURVE2 = key(PrefixByte.CURVE, 9)
CLUSTER = key(PrefixByte.CLUSTER, 10)

# --- raw token building -----------------------------------------------------------------------


def header_b64(header: dict[str, Any] | bytes) -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return b64url_encode(raw)


def forge(
    payload: dict[str, Any] | bytes,
    signer: KeyPair,
    *,
    header: str = HEADER_B64,
    v1: bool = False,
) -> str:
    """``header.payload.sig`` signed by ``signer`` over ``header.payload`` (or the payload only, v1)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    p64 = b64url_encode(raw)
    signing_input = p64 if v1 else header + "." + p64
    return header + "." + p64 + "." + b64url_encode(signer.sign(signing_input.encode("ascii")))


def user_payload(signer: KeyPair = ACCOUNT, **nats: Any) -> dict[str, Any]:
    """A minimal v2 user payload issued by ``signer``; ``nats`` keys override/extend."""
    body: dict[str, Any] = {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
    body.update(nats)
    body.setdefault("type", "user")
    body.setdefault("version", 2)
    return {"iat": 1700000000, "iss": signer.public_key, "name": "u", "sub": USER.public_key, "nats": body}


def account_payload(signer: KeyPair = OPERATOR, **nats: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "limits": {
            "subs": -1,
            "data": -1,
            "payload": -1,
            "imports": -1,
            "exports": -1,
            "wildcards": True,
            "conn": -1,
            "leaf": -1,
        },
        "default_permissions": {"pub": {}, "sub": {}},
        "authorization": {},
    }
    body.update(nats)
    body.setdefault("type", "account")
    body.setdefault("version", 2)
    return {"iat": 1700000000, "iss": signer.public_key, "name": "a", "sub": ACCOUNT.public_key, "nats": body}


def flip_trailing_bit(segment: str, alphabet: str = B64URL_ALPHABET) -> str:
    """Set the lowest bit of the last character: same decoded bytes, non-canonical spelling.

    Only meaningful when the segment's last character carries unused (trailing) bits.
    """
    v = alphabet.index(segment[-1])
    assert v & 1 == 0, "canonical encodings have zero trailing bits"
    return segment[:-1] + alphabet[v | 1]
