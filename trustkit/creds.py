"""``.creds`` files and decorated JWTs (Go ``jwt.FormatUserConfig`` / ``ParseDecoratedJWT``).

The writer reproduces nsc's bytes exactly (5 dashes before BEGIN, 6 before END, LF endings).
The reader is lenient where real files differ: CRLF line endings, text around the blocks, a bare
JWT, a bare seed, or a JWT and a seed on their own lines. It never reads files itself: callers
pass the bytes (the store and the CLI do the I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trustkit import nkeys
from trustkit.errors import CredsError, NKeyError, TokenError
from trustkit.jwt.decoder import peek_unverified
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte

__all__ = [
    "Creds",
    "decorate_jwt",
    "decorate_seed",
    "format_user_creds",
    "parse_creds",
    "parse_decorated_jwt",
]

_BANNER = (
    "************************* IMPORTANT *************************\n"
    "NKEY Seed printed below can be used to sign and prove identity.\n"
    "NKEYs are sensitive and should be treated as secrets.\n\n"
)
_FOOTER = "*************************************************************\n"

# Go's userConfigRE, with RE2 semantics: ASCII \w, \z = end of text.
_BLOCK_RE = re.compile(r"\s*(?:(?:-{3,}.*-{3,}\r?\n)([\w\-.=]+)(?:\r?\n-{3,}.*-{3,}(\r?\n|\Z)))", re.ASCII)

_SEED_KINDS = {"SU": "USER", "SA": "ACCOUNT", "SO": "OPERATOR"}


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise CredsError("creds data is not UTF-8 text") from None
    if not isinstance(data, str):
        raise CredsError("creds data must be text")
    return data


def decorate_jwt(token: str) -> str:
    """``-----BEGIN NATS <KIND> JWT-----`` block + blank line (Go ``DecorateJWT``)."""
    try:
        claims = peek_unverified(token)
    except TokenError as exc:
        raise CredsError(f"cannot decorate: {exc}") from None
    kind = (claims.CLAIM_TYPE or "generic").upper()
    return f"-----BEGIN NATS {kind} JWT-----\n{token}\n------END NATS {kind} JWT------\n\n"


def decorate_seed(seed: str) -> str:
    """The IMPORTANT banner and ``BEGIN <KIND> NKEY SEED`` block (Go ``DecorateSeed``)."""
    kind = _SEED_KINDS.get(seed[:2])
    if kind is None:
        raise CredsError("seed is not an operator, account or user seed")
    return f"{_BANNER}-----BEGIN {kind} NKEY SEED-----\n{seed}\n------END {kind} NKEY SEED------\n\n{_FOOTER}"


def format_user_creds(token: str, seed: str) -> bytes:
    """The ``.creds`` bytes nsc writes for a user JWT and its ``SU…`` seed.

    Refuses a non-user JWT, a non-user seed, or a seed whose public key is not the JWT's ``sub``.
    """
    try:
        claims = peek_unverified(token)
    except TokenError as exc:
        raise CredsError(f"not a valid user JWT: {exc}") from None
    if not isinstance(claims, UserClaims):
        raise CredsError(f"{claims.CLAIM_TYPE or 'generic'} JWT is not a user JWT")
    if not seed.startswith("SU"):
        raise CredsError("nkey seed is not an user seed")
    try:
        kp = KeyPair.from_seed(seed)
    except NKeyError as exc:
        raise CredsError(f"invalid user seed: {exc}") from None
    if kp.public_key != claims.sub:
        raise CredsError("seed does not match the JWT subject")
    return (decorate_jwt(token) + decorate_seed(seed)).encode("ascii")


def parse_decorated_jwt(data: str | bytes) -> str:
    """The JWT inside a decorated block, or the whole (trimmed) text if there is no block."""
    text = _text(data)
    m = _BLOCK_RE.search(text)
    if m is None:
        return text.strip()
    return m.group(1)


@dataclass(frozen=True, slots=True)
class Creds:
    """A parsed creds file: the JWT (if any) and the seed (if any). ``repr`` hides the seed."""

    jwt: str | None
    seed: str | None

    def __repr__(self) -> str:
        return f"Creds(jwt={'…' if self.jwt else None}, seed={'<hidden>' if self.seed else None})"

    def keypair(self) -> KeyPair:
        if not self.seed:
            raise CredsError("creds contain no seed")
        try:
            return KeyPair.from_seed(self.seed)
        except NKeyError as exc:
            raise CredsError(f"creds seed is invalid: {exc}") from None

    def user_claims(self) -> UserClaims:
        """The user claims, *unverified* (the server verifies them; so does trustkit.trust)."""
        if not self.jwt:
            raise CredsError("creds contain no JWT")
        try:
            claims = peek_unverified(self.jwt)
        except TokenError as exc:
            raise CredsError(f"creds JWT is invalid: {exc}") from None
        if not isinstance(claims, UserClaims):
            raise CredsError("creds JWT is not a user JWT")
        return claims

    def check(self) -> None:
        """Raise :class:`CredsError` unless both parts exist and the seed belongs to the JWT."""
        claims = self.user_claims()
        kp = self.keypair()
        if kp.kind is not PrefixByte.USER:
            raise CredsError("creds seed is not a user seed")
        if kp.public_key != claims.sub:
            raise CredsError("creds seed does not match the JWT subject")


def parse_creds(data: str | bytes) -> Creds:
    """Parse a creds file, a decorated JWT, a bare JWT or a bare seed.

    Blocks are found with Go's pattern (so CRLF and surrounding text are fine); the seed falls
    back to the first line starting with ``SO``/``SA``/``SU``, the JWT to a line starting with
    ``eyJ``. Raises :class:`CredsError` when neither is found.
    """
    text = _text(data)
    blocks = [m.group(1) for m in _BLOCK_RE.finditer(text)]
    token: str | None = None
    seed: str | None = None
    for value in blocks:
        if value.startswith("eyJ") and token is None:
            token = value
        elif value[:2] in _SEED_KINDS and seed is None:
            seed = value
    for line in text.splitlines():
        line = line.strip()
        if token is None and line.startswith("eyJ") and line.count(".") == 2:
            token = line
        elif seed is None and line[:2] in _SEED_KINDS:
            seed = line
    if seed is not None:
        try:
            nkeys.decode_seed(seed)
        except NKeyError as exc:
            raise CredsError(f"creds seed is invalid: {exc}") from None
    if token is None and seed is None:
        raise CredsError("no JWT or nkey seed found in creds data")
    return Creds(token, seed)
