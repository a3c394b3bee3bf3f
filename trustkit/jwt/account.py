"""Account claims (Go ``account_claims.go``): limits, signing keys, revocations, imports/exports."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from trustkit import nkeys
from trustkit import subject as subjects
from trustkit.errors import TokenError
from trustkit.jwt.activation import ActivationClaims
from trustkit.jwt.claims import Claims
from trustkit.jwt.decoder import decode
from trustkit.jwt.model import INTMAP, Field, Obj, ObjList, ObjListMap, Ptr, S
from trustkit.jwt.types import (
    RESPONSE_TYPES,
    SERVICE,
    SIGNING_KEYS,
    STREAM,
    AccountLimits,
    Export,
    ExternalAuthorization,
    Import,
    MsgTrace,
    Permissions,
    UserScope,
    WeightedMapping,
    validate_permissions,
    validate_subject,
)
from trustkit.jwt.validation import ValidationResults
from trustkit.nkeys import PrefixByte

__all__ = ["ALL_USERS", "AccountClaims", "is_revoked"]

#: Revocation key that revokes every user (or activation) issued at or before its time.
ALL_USERS = "*"

#: Go ``MaxInfoLength``
MAX_INFO_LENGTH = 8 * 1024


def validate_info(vr: ValidationResults, description: str, info_url: str) -> None:
    """Go ``Info.Validate``: length limits, and an info URL needs a scheme and a host."""
    if len(description) > MAX_INFO_LENGTH:
        vr.add_error("Description is too long")
    if info_url:
        if len(info_url) > MAX_INFO_LENGTH:
            vr.add_error("Info URL is too long")
        try:
            parts = urlsplit(info_url)
            ok = bool(parts.scheme) and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            vr.add_error("error parsing info url: no hostname or scheme")


def _contained_in(subject: str, other: str) -> bool:
    """Go ``Subject.IsContainedIn`` (token-wise; ``*`` and a final ``>`` in ``other``)."""
    mine, theirs = subject.split("."), other.split(".")
    if len(mine) > len(theirs) and theirs[-1] != ">":
        return False
    if len(mine) < len(theirs):
        return False
    for i, tok in enumerate(theirs):
        if i == len(theirs) - 1 and tok == ">":
            return True
        if tok != mine[i] and tok != "*":
            return False
    return True


# Go strconv.Atoi: optional sign, ASCII digits only
_ATOI_RE = re.compile(r"[+-]?[0-9]+")


def _is_reference(tok: str) -> bool:
    return len(tok) > 1 and tok[0] == "$" and _ATOI_RE.fullmatch(tok[1:]) is not None


def _renaming_to_subject(local: str) -> str:
    """Go ``RenamingSubject.ToSubject``: ``$N`` references become ``*``."""
    if "$" not in local:
        return local
    return ".".join("*" if _is_reference(t) else t for t in local.split("."))


def _validate_renaming(vr: ValidationResults, local: str, source: str) -> None:
    """Go ``RenamingSubject.Validate``: same ``>`` suffix, one ``*``/``$N`` per source ``*``."""
    validate_subject(vr, _renaming_to_subject(local), "import local_subject")

    def ends_wild(s: str) -> bool:
        return s == ">" or s.endswith(".>")

    if ends_wild(local) != ends_wild(source):
        vr.add_error("both, renaming subject and subject, need to end or not end in >")
    source_wildcards = source.split(".").count("*")
    refs = 0
    for tok in local.split("."):
        if tok == "*":
            refs += 1
        elif _is_reference(tok):
            if int(tok[1:]) > source_wildcards:
                vr.add_error(f"Reference {tok} in {local!r} reference * in {source!r} that do not exist")
            else:
                refs += 1
    if refs != source_wildcards:
        vr.add_error("subject does not contain enough * or reference wildcards $[0-9]")


def is_revoked(revocations: dict[str, int], key: str, iat: int) -> bool:
    """Go ``isRevoked``: revoked iff ``rev[key] >= iat`` or ``rev["*"] >= iat`` (equality counts)."""
    ts = revocations.get(key)
    if ts is not None and ts >= iat:
        return True
    ts = revocations.get(ALL_USERS)
    return ts is not None and ts >= iat


@dataclass(slots=True, kw_only=True)
class AccountClaims(Claims):
    """An account JWT. Defaults mirror Go's ``NewAccountClaims`` (all NATS limits unlimited)."""

    imports: list[Import] = field(default_factory=list)
    exports: list[Export] = field(default_factory=list)
    limits: AccountLimits = field(default_factory=AccountLimits)
    #: signing key → its scope, or None for a plain (unscoped) signing key
    signing_keys: dict[str, UserScope | None] = field(default_factory=dict)
    revocations: dict[str, int] = field(default_factory=dict)
    default_permissions: Permissions = field(default_factory=Permissions)
    mappings: dict[str, list[WeightedMapping]] = field(default_factory=dict)
    authorization: ExternalAuthorization = field(default_factory=ExternalAuthorization)
    trace: MsgTrace | None = None
    cluster_traffic: str = ""
    description: str = ""
    info_url: str = ""

    CLAIM_TYPE = "account"
    SUBJECT_KIND = PrefixByte.ACCOUNT
    ISSUER_KINDS = frozenset({PrefixByte.ACCOUNT, PrefixByte.OPERATOR})
    NATS_FIELDS = (
        Field("imports", ObjList(Import)),
        Field("exports", ObjList(Export)),
        Field("limits", Obj(AccountLimits)),
        Field("signing_keys", SIGNING_KEYS),
        Field("revocations", INTMAP),
        Field("default_permissions", Obj(Permissions)),
        Field("mappings", ObjListMap(WeightedMapping)),
        Field("authorization", Obj(ExternalAuthorization)),
        Field("trace", Ptr(MsgTrace)),
        Field("cluster_traffic", S),
        Field("description", S),
        Field("info_url", S),
    )

    def _prepare(self) -> None:
        # Go sorts exports and imports by subject before encoding.
        # (code-point order = Go's byte order for valid UTF-8; invalid text fails in go_json)
        self.exports.sort(key=lambda e: e.subject)
        self.imports.sort(key=lambda i: i.subject)

    # --- signing keys ------------------------------------------------------------------------
    def add_signing_key(self, key: str, scope: UserScope | None = None) -> None:
        nkeys.decode_public(key, PrefixByte.ACCOUNT)
        if scope is not None:
            scope.key = key
        self.signing_keys[key] = scope

    def scope_of(self, key: str) -> UserScope | None:
        return self.signing_keys.get(key)

    def did_sign(self, claims: Claims) -> bool:
        """Go ``DidSign``: issued by this account, or by one of its signing keys on its behalf."""
        if claims.iss == self.sub:
            return True
        issuer_account = getattr(claims, "issuer_account", "")
        return issuer_account == self.sub and claims.iss in self.signing_keys

    # --- revocations -------------------------------------------------------------------------
    def revoke(self, key: str, at: int) -> None:
        """Revoke users of ``key`` (or ``*``) issued at or before ``at``; keeps the later time."""
        if key != ALL_USERS:
            nkeys.decode_public(key, PrefixByte.USER)
        self.revocations[key] = max(at, self.revocations.get(key, at))

    def clear_revocation(self, key: str) -> None:
        self.revocations.pop(key, None)

    def is_revoked(self, key: str, iat: int) -> bool:
        return is_revoked(self.revocations, key, iat)

    def maybe_compact(self) -> list[str]:
        """Drop entries already covered by the ``*`` revocation; returns the removed keys."""
        all_ts = self.revocations.get(ALL_USERS)
        if all_ts is None:
            return []
        removed = [k for k, ts in self.revocations.items() if k != ALL_USERS and ts <= all_ts]
        for k in removed:
            del self.revocations[k]
        return removed

    def callout_enabled(self) -> bool:
        return self.authorization.enabled()

    # --- validation --------------------------------------------------------------------------
    def _validate(self, vr: ValidationResults) -> None:
        self._validate_imports(vr)
        self._validate_exports(vr)
        self._validate_limits(vr)
        validate_permissions(vr, self.default_permissions.pub, self.default_permissions.sub)
        self._validate_mappings(vr)
        self._validate_authorization(vr)
        if self.trace is not None:
            if not self.trace.dest or subjects.has_wildcards(self.trace.dest):
                vr.add_error(f"the account Trace.Destination subject {self.trace.dest!r} is not valid")
            if not 0 <= self.trace.sampling <= 100:
                vr.add_error(f"the account Trace.Sampling value '{self.trace.sampling}' is not valid")
        lim = self.limits
        if lim.imports != -1 and len(self.imports) > lim.imports:
            vr.add_error("the account contains more imports than allowed by the operator")
        if lim.exports != -1:
            if len(self.exports) > lim.exports:
                vr.add_error("the account contains more exports than allowed by the operator")
            if not lim.wildcards and any(subjects.has_wildcards(e.subject) for e in self.exports):
                vr.add_error("the account contains wildcard exports that are not allowed by the operator")
        for key, scope in self.signing_keys.items():
            if not nkeys.is_valid_public_key(key, PrefixByte.ACCOUNT):
                vr.add_error(f"{key!r} is not an account public key")
            if scope is not None:
                if scope.role == "":
                    vr.add_warning(f"signing key {key} has a scope without a role")
                validate_permissions(vr, scope.template.pub, scope.template.sub)
        for key in self.revocations:
            if key != ALL_USERS and not nkeys.is_valid_public_key(key):
                vr.add_error(f"revocation key {key!r} is not a public key")
        validate_info(vr, self.description, self.info_url)
        if self.cluster_traffic not in ("", "system", "owner"):
            vr.add_error(f"unknown cluster traffic option: {self.cluster_traffic!r}")
        # Go warns when a self-signed account sets *any* limit (OperatorLimits.IsEmpty)
        if nkeys.is_valid_public_key(self.iss, PrefixByte.ACCOUNT) and not self.limits.is_zero():
            vr.add_warning("self-signed account JWTs shouldn't contain operator limits")

    def _validate_imports(self, vr: ValidationResults) -> None:
        """Go ``Imports.Validate`` + ``Import.Validate``, activation tokens included."""
        services_by_account: dict[str, list[str]] = {}
        for imp in self.imports:
            if imp.type == SERVICE:
                local = imp.to or _renaming_to_subject(imp.local_subject) or imp.subject
                seen = services_by_account.setdefault(imp.account, [])
                for other in seen:
                    if _contained_in(local, other) or _contained_in(other, local):
                        vr.add_error(
                            f"overlapping subject namespace for {local!r} and {other!r}"
                            f" in same account {imp.account!r}"
                        )
                seen.append(local)
            self._validate_import(vr, imp)

    def _validate_import(self, vr: ValidationResults, imp: Import) -> None:
        if imp.type not in (STREAM, SERVICE):
            vr.add_error(f"invalid import type: {imp.type!r}")
        if imp.type == SERVICE and imp.allow_trace:
            vr.add_error("AllowTrace only valid for stream import")
        if not imp.account:
            vr.add_error("account to import from is not specified")
        elif not nkeys.is_valid_public_key(imp.account, PrefixByte.ACCOUNT):
            vr.add_error(f"account to import from {imp.account!r} is not a valid account public key")
        if imp.to:
            vr.add_warning("the field to has been deprecated (use LocalSubject instead)")
        validate_subject(vr, imp.subject, "import subject")
        if imp.local_subject:
            _validate_renaming(vr, imp.local_subject, imp.subject)
            if imp.to:
                vr.add_error("Local Subject replaces To")
        if imp.share and imp.type != SERVICE:
            vr.add_error(
                f"sharing information (for latency tracking) is only valid for services: {imp.subject!r}"
            )
        if not imp.token:
            return
        try:
            act = decode(imp.token, ActivationClaims)
        except TokenError:
            vr.add_error(f"import {imp.subject!r} contains an invalid activation token")
            return
        if imp.account not in (act.iss, act.issuer_account):
            vr.add_error(f"activation token doesn't match account for import {imp.subject!r}")
        if act.sub != self.sub:
            vr.add_error(f"activation token doesn't match account it is being included in, {imp.subject!r}")
        if act.import_type != imp.type:
            vr.add_error(
                f"mismatch between token import type {act.import_type} and type of import {imp.type}"
            )
        act._validate_subject(vr)
        act._validate(vr)
        subj = imp.to if imp.type == SERVICE and imp.to else imp.subject
        if not _contained_in(subj, act.import_subject):
            vr.add_error(
                f"activation token import subject {act.import_subject!r} doesn't match import {imp.subject!r}"
            )

    def _validate_exports(self, vr: ValidationResults) -> None:
        """Go ``Exports.Validate`` + ``Export.Validate``."""
        seen: dict[str, list[str]] = {STREAM: [], SERVICE: []}
        for exp in self.exports:
            if exp.type in seen and exp.subject:
                for other in seen[exp.type]:
                    if _contained_in(exp.subject, other) or _contained_in(other, exp.subject):
                        vr.add_error(f"overlapping subject namespace for {exp.subject!r} and {other!r}")
                seen[exp.type].append(exp.subject)
            self._validate_export(vr, exp)

    def _validate_export(self, vr: ValidationResults, exp: Export) -> None:
        service, stream = exp.type == SERVICE, exp.type == STREAM
        if not service and not stream:
            vr.add_error(f"invalid export type: {exp.type!r}")
        if service and exp.response_type not in RESPONSE_TYPES | {""}:
            vr.add_error(f"invalid response type for service: {exp.response_type!r}")
        if stream:
            if exp.response_type:
                vr.add_error(f"invalid response type for stream: {exp.response_type!r}")
            if exp.allow_trace:
                vr.add_error("AllowTrace only valid for service export")
        lat = exp.service_latency
        if lat is not None:
            if not service:
                vr.add_error("latency tracking only permitted for services")
            if lat.sampling != 0 and not 1 <= lat.sampling <= 100:
                vr.add_error("sampling percentage needs to be between 1-100")
            validate_subject(vr, lat.results, "latency results subject")
            if subjects.has_wildcards(lat.results):
                vr.add_error("results subject can not contain wildcards")
        if exp.response_threshold < 0:
            vr.add_error("negative response threshold is invalid")
        if exp.response_threshold > 0 and not service:
            vr.add_error("response threshold only valid for services")
        validate_subject(vr, exp.subject, "export subject")
        pos = exp.account_token_position
        if pos > 0:
            toks = exp.subject.split(".")
            if not subjects.has_wildcards(exp.subject):
                vr.add_error(f"Account Token Position can only be used with wildcard subjects: {exp.subject}")
            elif pos > len(toks):
                vr.add_error(f"Account Token Position {pos} exceeds length of subject '{exp.subject}'")
            elif toks[pos - 1] != "*":
                vr.add_error(
                    f"Account Token Position {pos} matches '{toks[pos - 1]}'"
                    f" but must match a * in: {exp.subject}"
                )
        for key in exp.revocations:
            if key != ALL_USERS and not nkeys.is_valid_public_key(key, PrefixByte.ACCOUNT):
                vr.add_error(f"export revocation key {key!r} is not an account public key")
        validate_info(vr, exp.description, exp.info_url)

    def _validate_limits(self, vr: ValidationResults) -> None:
        lim = self.limits
        if lim.tiered_limits:
            if "" in lim.tiered_limits:
                vr.add_error("JetStream tiers may not have an empty name")
            if lim.jetstream_global().to_json():
                vr.add_error("JetStream Limits and tiered JetStream Limits are mutually exclusive")

    def _validate_mappings(self, vr: ValidationResults) -> None:
        for src, dests in self.mappings.items():
            validate_subject(vr, src, "mapping subject")
            totals: dict[str, int] = {}
            for wm in dests:
                validate_subject(vr, wm.subject, "mapping destination")
                if not 0 <= wm.weight <= 100:
                    vr.add_error(f"Mapping {src!r} has a weight outside 1..100")
                totals[wm.cluster] = totals.get(wm.cluster, 0) + wm.effective_weight()
            for cluster, total in totals.items():
                if total > 100:
                    where = f" in cluster {cluster!r}" if cluster else ""
                    vr.add_error(
                        f"Mapping {src!r} exceeds 100% among all of it's weighted to mappings{where}"
                    )

    def _validate_authorization(self, vr: ValidationResults) -> None:
        auth = self.authorization
        for user in auth.auth_users:
            if not nkeys.is_valid_public_key(user, PrefixByte.USER):
                vr.add_error(f"AuthUser {user!r} is not a valid user public key")
        if auth.allowed_accounts and not auth.auth_users:
            vr.add_error("External authorization cannot have accounts without users specified")
        if ALL_USERS in auth.allowed_accounts and len(auth.allowed_accounts) > 1:
            vr.add_error('AllowedAccounts can only be a list of accounts or "*"')
        for acct in auth.allowed_accounts:
            if acct != ALL_USERS and not nkeys.is_valid_public_key(acct, PrefixByte.ACCOUNT):
                vr.add_error(f"Account {acct!r} is not a valid account public key")
        if auth.xkey and not nkeys.is_valid_public_key(auth.xkey, PrefixByte.CURVE):
            vr.add_error(f"XKey {auth.xkey!r} is not a valid curve public key")
