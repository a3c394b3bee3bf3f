"""Operator claims (Go ``operator_claims.go``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from trustkit import nkeys
from trustkit.jwt.claims import Claims
from trustkit.jwt.model import B, Field, L, S
from trustkit.jwt.validation import ValidationResults
from trustkit.nkeys import PrefixByte

__all__ = ["OperatorClaims"]

_VERSION_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
_SERVICE_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})


@dataclass(slots=True, kw_only=True)
class OperatorClaims(Claims):
    """An operator JWT: the root of trust, normally self-signed."""

    signing_keys: list[str] = field(default_factory=list)
    account_server_url: str = ""
    operator_service_urls: list[str] = field(default_factory=list)
    system_account: str = ""
    assert_server_version: str = ""
    strict_signing_key_usage: bool = False

    CLAIM_TYPE = "operator"
    SUBJECT_KIND = PrefixByte.OPERATOR
    ISSUER_KINDS = frozenset({PrefixByte.OPERATOR})
    NATS_FIELDS = (
        Field("signing_keys", L),
        Field("account_server_url", S),
        Field("operator_service_urls", L),
        Field("system_account", S),
        Field("assert_server_version", S),
        Field("strict_signing_key_usage", B),
    )

    def did_sign(self, claims: Claims) -> bool:
        """True if this operator (identity or signing key) issued ``claims`` (Go ``DidSign``).

        Under strict signing-key usage the identity key signs only the operator JWT itself.
        """
        if claims.iss == self.sub:
            return not self.strict_signing_key_usage or claims.sub == self.sub
        return claims.iss in self.signing_keys

    def trusted_keys(self) -> list[str]:
        """Keys that may sign accounts: signing keys, plus the identity unless strict."""
        keys = list(self.signing_keys)
        if not self.strict_signing_key_usage:
            keys.insert(0, self.sub)
        return keys

    def _validate(self, vr: ValidationResults) -> None:
        if self.account_server_url:
            parts = urlsplit(self.account_server_url)
            if not parts.scheme:
                vr.add_error(f"account server url {self.account_server_url!r} requires a protocol")
        for url in self.operator_service_urls:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in _SERVICE_SCHEMES:
                vr.add_error(f"operator service url {url!r} - protocol not supported (only 'nats' or 'tls')")
            if parts.username or parts.password:
                vr.add_error(f"operator service url {url!r} - credentials are not supported")
            if parts.path not in ("", "/"):
                vr.add_error(f"operator service url {url!r} - paths are not supported")
        for key in self.signing_keys:
            if not nkeys.is_valid_public_key(key, PrefixByte.OPERATOR):
                vr.add_error(f"{key!r} is not an operator public key")
        if self.system_account and not nkeys.is_valid_public_key(self.system_account, PrefixByte.ACCOUNT):
            vr.add_error(f"{self.system_account!r} is not an account public key")
        if self.assert_server_version and not _VERSION_RE.fullmatch(self.assert_server_version):
            vr.add_error("asserted server version must be of the form <major>.<minor>.<update>")
