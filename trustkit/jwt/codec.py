"""The JWT wire format: header, strict base64url, Go-compatible JSON, jti, signing.

Encoding reproduces the bytes Go's nats-io/jwt v2 writes for the same claims and ``iat``:
compact JSON in Go field order, Go's HTML escaping, sorted map keys, ``jti`` = unpadded base32
of SHA-512/256 over the standard claims. Decoding (in :mod:`trustkit.jwt.decoder`) is strict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from typing import Any

import pybase64

from trustkit.errors import MalformedTokenError

__all__ = [
    "HEADER_B64",
    "MAX_TOKEN_SIZE",
    "b64url_decode",
    "b64url_encode",
    "go_json",
    "jti_of",
    "sha512_256",
]

#: Go writes exactly ``{"typ":"JWT","alg":"ed25519-nkey"}``.
HEADER_JSON = b'{"typ":"JWT","alg":"ed25519-nkey"}'
HEADER_B64 = base64.urlsafe_b64encode(HEADER_JSON).rstrip(b"=").decode("ascii")

#: Go ``MaxTokenSize``: larger tokens are refused before any parsing.
MAX_TOKEN_SIZE = 1024 * 1024

_PADDING = ("", "", "==", "=")
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# last character of an unpadded segment: 2 chars left = 4 unused bits, 3 chars = 2 unused bits
_CANONICAL_LAST = {
    2: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if i & 0x0F == 0),
    3: frozenset(c for i, c in enumerate(_B64URL_ALPHABET) if i & 0x03 == 0),
}


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str = "segment") -> bytes:
    """Strict unpadded base64url: alphabet only, no padding, canonical trailing bits.

    Python's ``urlsafe_b64decode`` silently skips junk; this refuses it.
    """
    rem = len(text) % 4
    # pybase64 (SIMD; ~4x CPython's binascii on a user JWT's payload) with validate=True refuses
    # anything outside the url-safe alphabet and misplaced padding, except the standard
    # alphabet's '+' and '/', refused here with '=' (the padding is ours to add).
    if rem == 1 or "=" in text or "+" in text or "/" in text:
        raise MalformedTokenError(f"token {what} is not valid base64url")
    try:
        raw: bytes = pybase64.b64decode(text + _PADDING[rem], altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise MalformedTokenError(f"token {what} is not valid base64url") from None
    if rem and text[-1] not in _CANONICAL_LAST[rem]:
        # the unused low bits of the last character must be zero (one spelling per byte string)
        raise MalformedTokenError(f"token {what} is not canonical base64url")
    return raw


# --- Go-compatible JSON -------------------------------------------------------------------------

# encoding/json escapes these even inside strings (HTMLEscape + JS line separators).
_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
_NEEDS_GO_ESCAPE = re.compile("[<>&\u2028\u2029]")
#: the same table in UTF-8 bytes (the decoder re-spells orjson output as Go writes it)
GO_ESCAPES_UTF8 = tuple((ch.encode(), esc.encode("ascii")) for ch, esc in _GO_ESCAPES)

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _go_float(x: float) -> Any:
    """Go marshals float64 as the shortest repr, integral values without ``.0``."""
    if math.isnan(x) or math.isinf(x):
        raise MalformedTokenError("JSON cannot hold NaN or Inf")
    if x == int(x) and abs(x) < 1e21:
        return int(x)
    return x


def normalize_floats(value: Any) -> Any:
    """Rewrite floats as Go prints them (only needed for free-form data: generic claims, extras)."""
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return {k: normalize_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_floats(v) for v in value]
    return value


def _check_ints(value: Any) -> None:
    if value.__class__ is int:
        if not -(2**63) <= value <= 2**63 - 1:
            raise MalformedTokenError(f"integer {value} does not fit in 64 bits (Go cannot read it)")
    elif isinstance(value, dict):
        for v in value.values():
            _check_ints(v)
    elif isinstance(value, list):
        for v in value:
            _check_ints(v)


def go_json(value: Any) -> bytes:
    """Compact JSON with Go ``encoding/json`` escaping. Dict order is kept: callers order keys.

    Refuses what Go cannot read back: integers beyond int64, NaN/Inf, lone surrogates.
    """
    _check_ints(value)
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError) as exc:
        raise MalformedTokenError(f"claims cannot be encoded as JSON: {exc}") from None
    if _NEEDS_GO_ESCAPE.search(text):
        for ch, esc in _GO_ESCAPES:
            text = text.replace(ch, esc)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedTokenError("claims contain a string that is not valid Unicode") from None


def sort_map(value: dict[str, Any]) -> dict[str, Any]:
    """Go writes map keys sorted (byte order of the UTF-8 keys), in nested maps too.

    Code-point order equals UTF-8 byte order for valid text; a lone surrogate (which cannot be
    written) sorts somewhere and is refused by :func:`go_json` with a MalformedTokenError.
    """
    return {k: _sort_nested(value[k]) for k in sorted(value)}


def _sort_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return sort_map(value)
    if isinstance(value, list):
        return [_sort_nested(v) for v in value]
    return value


# --- jti ----------------------------------------------------------------------------------------


def sha512_256(data: bytes) -> bytes:
    """FIPS 180-4 SHA-512/256 (its own IV, not a truncated SHA-512)."""
    return hashlib.new("sha512_256", data).digest()


def jti_of(standard_claims_json: bytes) -> str:
    """``jti`` = unpadded base32 of SHA-512/256 over the JSON of the standard claims only."""
    return base64.b32encode(sha512_256(standard_claims_json)).decode("ascii").rstrip("=")
