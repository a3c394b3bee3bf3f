"""Activation claims (Go ``activation_claims.go``): a private export granted to one account."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from trustkit import nkeys
from trustkit.jwt.claims import Claims
from trustkit.jwt.model import Field, S
from trustkit.jwt.types import SERVICE, STREAM, validate_subject
from trustkit.jwt.validation import ValidationResults
from trustkit.nkeys import PrefixByte

__all__ = ["ActivationClaims"]


@dataclass(slots=True, kw_only=True)
class ActivationClaims(Claims):
    """``sub`` is the importing account; ``iss`` the exporting account or its signing key."""

    import_subject: str = ""
    import_type: str = ""
    issuer_account: str = ""

    CLAIM_TYPE = "activation"
    SUBJECT_KIND = PrefixByte.ACCOUNT
    ISSUER_KINDS = frozenset({PrefixByte.ACCOUNT, PrefixByte.OPERATOR})
    NATS_FIELDS = (
        Field("subject", S, "import_subject"),
        Field("kind", S, "import_type"),
        Field("issuer_account", S),
    )

    def hash_id(self) -> str:
        """Go ``HashID``: padded base32 SHA-256 of ``iss.sub.subject-up-to-first-wildcard``."""
        toks: list[str] = []
        for tok in self.import_subject.split("."):
            if tok in ("*", ">"):
                if not toks:
                    toks.append("_")
                break
            toks.append(tok)
        cleaned = ".".join(toks)
        digest = hashlib.sha256(f"{self.iss}.{self.sub}.{cleaned}".encode()).digest()
        return base64.b32encode(digest).decode("ascii")

    def _validate(self, vr: ValidationResults) -> None:
        if not self.import_subject:
            vr.add_error("activation requires a subject")
        else:
            validate_subject(vr, self.import_subject, "activation subject")
        if self.import_type not in (STREAM, SERVICE):
            vr.add_error(f"invalid import type: {self.import_type!r}")
        if self.issuer_account and not nkeys.is_valid_public_key(self.issuer_account, PrefixByte.ACCOUNT):
            vr.add_error("account_id is not an account public key")
