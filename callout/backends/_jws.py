"""Compact-JWS checks shared by the OIDC and device-key backends.

The order of the checks is the point (each step refuses with its own stable code):

1. size, before anything is decoded (:class:`TokenTooLarge`);
2. shape: three base64url segments, a JSON-object header without duplicate members or ``crit``,
   a JSON-object payload (:class:`TokenMalformed`; five segments are a JWE, which is refused);
3. ``alg`` against the caller's allow-list, *before* any key is looked up (:class:`TokenAlgorithm`);
   only asymmetric algorithms can ever be allowed: ``none`` and the HMAC family are refused when
   the configuration is built, so a token HMAC'd with a public key (the classic algorithm confusion)
   never reaches a verifier;
4. the key must fit the algorithm (RSA for ``RS*``/``PS*``, the exact curve for ``ES*``, Ed25519
   for ``EdDSA``/``Ed25519``) and the key's own ``alg`` if it names one (:class:`TokenAlgorithm`);
5. the signature, through joserfc's algorithm models (:class:`TokenSignature`);
6. the time claims against an explicit ``now`` (pure: no clock here).

joserfc (the successor of ``authlib.jose``, installed with Authlib) supplies key import and the
signature primitives; the parsing and the policy around them are ours so that every refusal has a
precise code and nothing is decided by a library default.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

try:
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
    from joserfc.jws import JWSRegistry
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the callout token backends need joserfc (Authlib >= 1.6 installs it): pip install joserfc"
    ) from e

from callout.identity import (
    BackendConfigError,
    InvalidInput,
    TokenAlgorithm,
    TokenClaims,
    TokenExpired,
    TokenMalformed,
    TokenNotYetValid,
    TokenSignature,
    TokenTooLarge,
)

PublicKey = RSAKey | ECKey | OKPKey

#: Every algorithm a backend may allow: asymmetric signatures only. ``alg`` → (kty, crv or None).
ASYMMETRIC_ALGORITHMS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),  # RFC 8037; only Ed25519 keys are accepted for it here
    "Ed25519": ("OKP", "Ed25519"),  # RFC 9864, the fully specified name
}
#: RSA keys shorter than this are refused (NIST SP 800-131A).
MIN_RSA_BITS = 2048

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_JSON_NUMBER = (int, float)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A compact JWS split and decoded, signature not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def check_algorithms(where: str, algorithms: Collection[str]) -> tuple[str, ...]:
    """A configured allow-list, validated. Raises :class:`BackendConfigError` for an empty list,
    ``none``, any HMAC algorithm or a name that is not a supported asymmetric JWS algorithm."""
    if isinstance(algorithms, str) or not algorithms:
        raise BackendConfigError(f"{where} must be a non-empty list of JWS algorithm names")
    out = []
    for alg in algorithms:
        if not isinstance(alg, str):
            raise BackendConfigError(f"{where}: algorithm names are strings")
        if alg.lower() == "none":
            raise BackendConfigError(f"{where}: 'none' (unsigned tokens) can never be allowed")
        if alg.upper().startswith("HS"):
            raise BackendConfigError(
                f"{where}: {alg} is an HMAC algorithm; only public-key algorithms can be allowed "
                "(HMAC with a published key is the algorithm-confusion attack)"
            )
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise BackendConfigError(
                f"{where}: unsupported algorithm {alg!r} (supported: {', '.join(ASYMMETRIC_ALGORITHMS)})"
            )
        if alg not in out:
            out.append(alg)
    return tuple(out)


def _b64decode(segment: str, what: str) -> bytes:
    if not _B64URL_RE.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenMalformed(f"the {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenMalformed(f"the {what} is not base64url") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            # two parsers could disagree on which "alg" (or "iss") counts: refuse the ambiguity
            raise TokenMalformed(f"duplicate member {k!r}")
        out[k] = v
    return out


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenMalformed(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenMalformed(f"the {what} is not a JSON object")
    return value


def parse(token: object, *, max_bytes: int) -> ParsedToken:
    """Split and decode a compact JWS (no signature check). Raises :class:`InvalidInput`,
    :class:`TokenTooLarge` or :class:`TokenMalformed`."""
    if not isinstance(token, str) or not token:
        raise InvalidInput("no token")
    if len(token) > max_bytes:  # characters ≥ bytes only for ASCII, which a JWS must be
        raise TokenTooLarge(f"token is longer than {max_bytes} bytes")
    if not token.isascii():
        raise TokenMalformed("token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) == 5:
        raise TokenMalformed("encrypted (JWE) tokens are not accepted")
    if len(parts) != 3:
        raise TokenMalformed("not a compact JWS (three dot-separated segments)")
    h64, p64, s64 = parts
    if not h64 or not p64:
        raise TokenMalformed("empty header or payload")
    header = _json_object(_b64decode(h64, "header"), "header")
    if not isinstance(header.get("alg"), str):
        raise TokenMalformed("the header has no 'alg'")
    if "crit" in header or header.get("b64") is not None:
        raise TokenMalformed("critical header extensions are not supported")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenMalformed("'kid' is not a string")
    claims = _json_object(_b64decode(p64, "payload"), "payload")
    signature = _b64decode(s64, "signature")
    return ParsedToken(header, claims, f"{h64}.{p64}".encode("ascii"), signature)


def check_alg(parsed: ParsedToken, allowed: Collection[str]) -> str:
    """The token's ``alg`` if allowed; raises :class:`TokenAlgorithm` otherwise (``none``, ``HS256``...)."""
    alg = parsed.alg
    if alg not in allowed or alg not in ASYMMETRIC_ALGORITHMS:
        raise TokenAlgorithm(f"algorithm {alg!r} is not allowed")
    return alg


def key_fits(alg: str, key: PublicKey) -> bool:
    """Whether ``key`` is of the type (and curve) ``alg`` needs and its own ``alg`` (if any) agrees."""
    kty, crv = ASYMMETRIC_ALGORITHMS[alg]
    if key.key_type != kty:
        return False
    if crv is not None and getattr(key, "curve_name", None) != crv:
        return False
    key_alg = key.get("alg")
    eddsa = ("EdDSA", "Ed25519")  # two names of one signature scheme
    return key_alg is None or key_alg == alg or (key_alg in eddsa and alg in eddsa)


def verify(parsed: ParsedToken, alg: str, key: PublicKey) -> None:
    """Check the signature of ``parsed`` with ``key`` under ``alg`` (already allowed by :func:`check_alg`).

    Raises :class:`TokenAlgorithm` if the key does not fit the algorithm, :class:`TokenSignature`
    if the signature does not verify.
    """
    if not key_fits(alg, key):
        raise TokenAlgorithm(f"algorithm {alg} does not fit the {key.key_type} key the token names")
    # "EdDSA" and "Ed25519" are the same signature over an Ed25519 key; joserfc marks the former
    # deprecated (a SecurityWarning per call), so both go through the fully specified model.
    model = JWSRegistry.algorithms["Ed25519" if alg == "EdDSA" else alg]
    try:
        ok = model.verify(parsed.signing_input, parsed.signature, key)
    except (JoseError, ValueError, TypeError):
        ok = False
    if not ok:
        raise TokenSignature("signature does not verify")


# --- keys ---------------------------------------------------------------------------------------

_PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}


def import_public_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """An RSA, EC or Ed25519 *public* key from a JWK (private members are ignored).

    Raises ``ValueError`` with a reason for symmetric (``oct``) keys, unknown types or curves,
    invalid values and RSA keys under :data:`MIN_RSA_BITS`.
    """
    kty = jwk.get("kty")
    if kty == "oct":
        raise ValueError("symmetric (oct) keys are never used for verification")
    if kty not in _PUBLIC_MEMBERS:
        raise ValueError(f"unsupported key type {kty!r}")
    data: dict[str, Any] = {"kty": kty}
    for member in _PUBLIC_MEMBERS[kty]:
        if not isinstance(jwk.get(member), str):
            raise ValueError(f"{kty} key without a string {member!r}")
        data[member] = jwk[member]
    for member in ("kid", "alg", "use"):
        if isinstance(jwk.get(member), str):
            data[member] = jwk[member]
    if kty == "OKP" and data["crv"] != "Ed25519":
        raise ValueError(f"unsupported OKP curve {data['crv']!r}")
    if kty == "RSA":  # checked before the import, which would only warn
        try:
            n = base64.urlsafe_b64decode(data["n"] + "=" * (-len(data["n"]) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("RSA modulus is not base64url") from None
        if int.from_bytes(n, "big").bit_length() < MIN_RSA_BITS:
            raise ValueError(f"RSA key of under {MIN_RSA_BITS} bits")
    try:
        key = JWKRegistry.import_key(data, kty)
    except (JoseError, ValueError, TypeError) as e:
        raise ValueError(f"invalid {kty} key: {e}") from None
    return _checked(key)


def import_public_pem(pem: str) -> PublicKey:
    """An EC (P-256/384/521), Ed25519 or RSA *public* key from PEM (``BEGIN PUBLIC KEY``).

    Raises ``ValueError`` for private keys (a registry must not hold them), other types and bad PEM.
    """
    data = pem.encode("ascii", errors="replace")
    if b"PRIVATE KEY" in data:
        raise ValueError("a private key: only public keys belong here")
    try:
        native = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a PEM public key: {e}") from None
    kty = (
        "EC"
        if isinstance(native, ec.EllipticCurvePublicKey)
        else "OKP"
        if isinstance(native, ed25519.Ed25519PublicKey)
        else "RSA"
        if isinstance(native, rsa.RSAPublicKey)
        else None
    )
    if kty is None:
        raise ValueError(f"unsupported key type {type(native).__name__}")
    if isinstance(native, rsa.RSAPublicKey) and native.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key of {native.key_size} bits (minimum {MIN_RSA_BITS})")
    try:
        key = JWKRegistry.import_key(data, kty)
    except (JoseError, ValueError, TypeError) as e:
        raise ValueError(f"invalid {kty} key: {e}") from None
    return _checked(key)


def _checked(key: Any) -> PublicKey:
    if not isinstance(key, RSAKey | ECKey | OKPKey):
        raise ValueError("unsupported key type")
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        raise ValueError(f"RSA key of {key.public_key.key_size} bits (minimum {MIN_RSA_BITS})")
    return key


def key_algorithms(key: PublicKey, allowed: Collection[str]) -> tuple[str, ...]:
    """The algorithms of ``allowed`` that ``key`` can verify."""
    return tuple(a for a in allowed if a in ASYMMETRIC_ALGORITHMS and key_fits(a, key))


# --- claims -------------------------------------------------------------------------------------


def numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    """A NumericDate claim as whole seconds (floored); raises :class:`TokenClaims` if missing or not
    a finite number (``true`` is not a number here, whatever Python thinks)."""
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenClaims(f"'{name}' is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, _JSON_NUMBER) or not math.isfinite(value):
        raise TokenClaims(f"'{name}' is not a number")
    return math.floor(value)


def check_times(
    claims: Mapping[str, Any], *, now: float, leeway: int, require_iat: bool = False
) -> tuple[int, int | None]:
    """Check ``exp`` (required), ``nbf`` and ``iat`` at ``now`` with ``leeway`` seconds of clock skew.

    Returns ``(exp, iat)``. Raises :class:`TokenClaims`, :class:`TokenExpired` or
    :class:`TokenNotYetValid`.
    """
    exp = numeric_date(claims, "exp", required=True)
    assert exp is not None
    nbf = numeric_date(claims, "nbf", required=False)
    iat = numeric_date(claims, "iat", required=require_iat)
    if now >= exp + leeway:
        raise TokenExpired("the token has expired")
    if nbf is not None and now + leeway < nbf:
        raise TokenNotYetValid("the token is not valid yet (nbf)")
    if iat is not None and now + leeway < iat:
        raise TokenNotYetValid("the token was issued in the future (iat)")
    return exp, iat


def audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """``aud`` as a tuple (a string or a list of strings); raises :class:`TokenClaims` otherwise."""
    aud = claims.get("aud")
    if aud is None:
        return ()
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise TokenClaims("'aud' is neither a string nor a list of strings")


__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MIN_RSA_BITS",
    "ParsedToken",
    "PublicKey",
    "audiences",
    "check_alg",
    "check_algorithms",
    "check_times",
    "import_public_jwk",
    "import_public_pem",
    "key_algorithms",
    "key_fits",
    "numeric_date",
    "parse",
    "verify",
]
