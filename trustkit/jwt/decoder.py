"""Decoding is verifying: header, size, strict base64url, signature by ``iss``, issuer kind, type.

:func:`decode` is the only way to get claims from a token, except :func:`peek_unverified`, which
is named for what it does. v1 tokens are refused (trustkit writes and trusts JWT v2 only).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, overload

import orjson

from trustkit import nkeys
from trustkit.errors import (
    ClaimTypeError,
    IssuerError,
    MalformedTokenError,
    NKeyError,
    TokenSignatureError,
    UnsupportedVersionError,
)
from trustkit.jwt.claims import CLAIM_CLASSES, LIB_VERSION, Claims
from trustkit.jwt.codec import GO_ESCAPES_UTF8, HEADER_B64, MAX_TOKEN_SIZE, b64url_decode
from trustkit.jwt.generic import GenericClaims

__all__ = ["SIGNATURE_FAILED", "decode", "decode_with_deferred_signature", "peek_unverified", "split_token"]

C = TypeVar("C", bound=Claims)

_ALGS = frozenset({"ed25519", "ed25519-nkey"})
_CURVE = nkeys.PrefixByte.CURVE
#: the message of a failed signature check (TokenSignatureError), as Go's library words it
SIGNATURE_FAILED = "claim failed V2 signature verification"


def strict_json_loads(raw: bytes) -> Any:
    """Parse JSON the way Go's decoder accepts it (orjson, which is also 3x faster than json).

    Refused, as Go refuses them: NaN/Infinity literals, invalid UTF-8 and lone surrogates,
    integers beyond 64 bits, nesting deeper than 1024. Raises ``ValueError``.
    """
    return orjson.loads(raw)


def split_token(token: str) -> tuple[str, str, str]:
    if not isinstance(token, str):
        raise MalformedTokenError("token must be a string")
    if len(token) > MAX_TOKEN_SIZE:
        raise MalformedTokenError(f"token too large: {len(token)} bytes (max {MAX_TOKEN_SIZE})")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedTokenError(f"expected 3 chunks, got {len(parts)}")
    return parts[0], parts[1], parts[2]


def _check_header(h64: str) -> None:
    if h64 == HEADER_B64:  # the one header Go writes: skip parsing
        return
    try:
        header = strict_json_loads(b64url_decode(h64, "header"))
    except ValueError:
        raise MalformedTokenError("token header is not valid JSON") from None
    if not isinstance(header, dict):
        raise MalformedTokenError("token header is not a JSON object")
    typ, alg = header.get("typ"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise MalformedTokenError(f"not supported type {typ!r}")
    if not isinstance(alg, str) or alg.lower() not in _ALGS:
        raise MalformedTokenError(f"unexpected {alg!r} algorithm")
    if alg.lower() == "ed25519":
        raise UnsupportedVersionError(
            "JWT v1 tokens (alg ed25519) are not supported: re-issue it with a v2 tool"
        )


# how Go's encoder spells what orjson writes as is: HTML characters, and JS line separators
# (both start with the UTF-8 bytes E2 80)
_GO_ESCAPES = tuple(e for e in GO_ESCAPES_UTF8 if len(e[0]) == 1)
_GO_ESCAPES_E280 = tuple(e for e in GO_ESCAPES_UTF8 if e[0].startswith(b"\xe2\x80"))


def _check_no_duplicate_keys(raw: bytes, payload: dict[str, Any]) -> None:
    """Refuse a payload that repeats a key in any object.

    orjson keeps the last of repeated keys; Go merges a repeated struct into the first (so
    ``{"pub":{"allow":["a"]},"pub":{}}`` keeps ``allow`` in nats-server) — the two would read one
    token differently. No NATS tool writes repeated keys, so they are refused. The check is
    nearly free for what Go, JS and trustkit write: re-serialised compactly (with Go's escapes)
    the parsed payload gives back ``raw`` byte for byte, which a dropped duplicate cannot. Only
    other spellings (spaces, other escapes, number forms) pay for a second, pair-preserving parse.
    """
    out = orjson.dumps(payload)
    if out == raw:  # compact JSON as JS and orjson write it
        return
    for plain, escaped in _GO_ESCAPES:  # replace() of an absent byte costs less than a test
        out = out.replace(plain, escaped)
    if b"\xe2\x80" in out:
        for plain, escaped in _GO_ESCAPES_E280:
            out = out.replace(plain, escaped)
    if out == raw:  # as Go writes it
        return

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for k, v in items:
            if k in obj:
                raise MalformedTokenError(f"token payload repeats the key {k!r}")
            obj[k] = v
        return obj

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:
        raise MalformedTokenError("token payload is nested too deeply") from None


def _load_payload(p64: str) -> dict[str, Any]:
    raw = b64url_decode(p64, "payload")
    try:
        payload = orjson.loads(raw)  # strict_json_loads, without the call
    except ValueError:
        raise MalformedTokenError("token payload is not valid JSON") from None
    if payload.__class__ is not dict:
        raise MalformedTokenError("token payload is not a JSON object")
    _check_no_duplicate_keys(raw, payload)
    return payload


def _claim_class(payload: dict[str, Any]) -> type[Claims]:
    if "type" in payload:
        raise UnsupportedVersionError(
            "JWT v1 tokens (top-level 'type') are not supported: re-issue it with a v2 tool"
        )
    nats = payload.get("nats")
    if nats is None:
        return GenericClaims
    if not isinstance(nats, dict):
        raise MalformedTokenError("claim field 'nats' must be an object")
    ctype = nats.get("type")
    version = nats.get("version")
    cls = CLAIM_CLASSES.get(ctype) if isinstance(ctype, str) else None
    if version is not None and version.__class__ is not int:
        # Go reads it into an int: 2.0, 2.5, 1e400, "2" and true are all unmarshal errors
        raise MalformedTokenError("claim field 'nats.version' must be an integer")
    v = version or 0
    if v > LIB_VERSION:
        raise UnsupportedVersionError(f"JWT was generated by a newer version ({v})")
    if cls is None:
        return GenericClaims
    if v < LIB_VERSION:
        raise UnsupportedVersionError(f"library supports version {LIB_VERSION} or less - received {v}")
    return cls


@overload
def decode(token: str, expect: type[C]) -> C: ...
@overload
def decode(token: str, expect: None = None) -> Claims: ...


def decode(
    token: str,
    expect: type[Claims] | None = None,
) -> Claims:
    """Verify ``token`` and return its claims.

    Checks, in order: size (1 MiB), three chunks, header, strict base64url, payload JSON, v2,
    ``iss`` is a public key, the Ed25519 signature over ``header.payload`` by ``iss``, the issuer's
    key kind is allowed for the claim type, and (with ``expect``) the claim type. Time and content
    rules are *not* checked here: call ``claims.validate(now=...)``.

    Raises :class:`~trustkit.errors.TokenError` subclasses naming what is wrong.
    """
    return _decode(token, expect, None)


def decode_with_deferred_signature(
    token: str, expect: type[C], checks: nkeys.SignatureChecks
) -> C:
    """:func:`decode`, except that the signature check is recorded in ``checks`` instead of run:
    the claims are NOT verified until the caller has run ``checks`` and every one passed. Every
    other check happens here, in :func:`decode`'s order. For judging many CONNECTs at once with the
    signatures checked elsewhere (:func:`trustkit.trust.begin_authorization`); use :func:`decode`."""
    claims: C = _decode(token, expect, checks)  # type: ignore[assignment]
    return claims


def _decode(token: str, expect: type[Claims] | None, checks: nkeys.SignatureChecks | None) -> Claims:
    # Every CONNECT runs this once (the signature check dominates): the steps are the helpers
    # above, inlined where a call would cost as much as the step.
    h64, p64, s64 = split_token(token)
    if h64 != HEADER_B64:  # the one header Go writes needs no parsing
        _check_header(h64)
    payload = _load_payload(p64)
    cls = _claim_class(payload)
    if expect is not None and cls is not expect:
        got = cls.CLAIM_TYPE or "generic"
        raise ClaimTypeError(f"expected {expect.CLAIM_TYPE or 'generic'} claims, got {got} claims")
    iss = payload.get("iss")
    if iss.__class__ is not str or not iss:
        raise IssuerError("token has no issuer ('iss')")
    try:
        kind, issuer_raw = nkeys.decode_public(iss)
    except NKeyError as exc:
        raise IssuerError(f"issuer {iss!r} is not a valid public key: {exc}") from None
    if kind is _CURVE:
        raise IssuerError("issuer is a curve key, which cannot sign")
    sig = b64url_decode(s64, "signature")
    # the signing input is the token up to its last '.' (ASCII: b64url_decode checked it)
    signing_input = token[: len(token) - len(s64) - 1].encode("ascii")
    if checks is not None:
        checks.add(issuer_raw, signing_input, sig)
    else:
        try:
            nkeys.verify_raw(issuer_raw, signing_input, sig)
        except NKeyError:
            raise TokenSignatureError(SIGNATURE_FAILED) from None
    allowed = cls.ISSUER_KINDS  # empty only for generic claims, which any key may sign (as in Go)
    if allowed and kind not in allowed:
        names = ", ".join(sorted(k.label for k in allowed))
        raise IssuerError(
            f"{cls.CLAIM_TYPE or 'generic'} claims cannot be issued by a {kind.label} key (expected {names})"
        )
    claims = cls.from_payload(payload)
    claims.token = token
    return claims


def peek_unverified(token: str) -> Claims:
    """Parse a token WITHOUT checking its signature or issuer. Never use it to trust anything.

    For display (``describe jwt``) and for routing a token to the right verifier.
    """
    h64, p64, _ = split_token(token)
    _check_header(h64)
    payload = _load_payload(p64)
    claims = _claim_class(payload).from_payload(payload)
    claims.token = token
    return claims
