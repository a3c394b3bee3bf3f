"""Sharing between accounts, as a library: exports, imports, mappings and activations.

``nsc add|edit|delete export``, ``add|delete import``, ``add|delete mapping``,
``generate activation`` and ``revocations add-activation|delete-activation|list-activations``.
Every function takes a :class:`~trustkit.manage.Workspace`, the operator and account names and
the time ``now`` (unix seconds), changes one account JWT in memory, validates it, re-signs it
with the operator key and stores it atomically (:func:`trustkit.manage._resign_account`). On
any error nothing is written.

An import is checked against the exporting account when that account is in the same store:
the subject must be exported (with the same kind), a private export needs an activation token,
and the token must be for this account, from that account, of that kind, cover the subject, be
unexpired and not revoked by the export. These are the checks nats-server makes when it adds
the import (``checkStreamImportAuthorized``, ``checkServiceImportAuthorized``,
``checkActivation``); here they fail loudly instead of leaving a silently incomplete import.

Errors: :class:`StoreError` (``store_usage`` bad option values or combinations,
``store_not_found`` no such export/import/mapping/revocation/account, ``store_exists`` the
import already exists) and :class:`ClaimsInvalidError` (the account would not be valid, or the
import would not be authorized: codes ``import_not_exported``, ``activation_required``,
``activation_invalid``, ``activation_mismatch``, ``activation_expired``, ``activation_revoked``,
``mapping_invalid``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trustkit import nkeys
from trustkit.creds import decorate_jwt
from trustkit.errors import ClaimsInvalidError, StoreError, TokenError
from trustkit.jwt.account import ALL_USERS, AccountClaims, is_revoked
from trustkit.jwt.activation import ActivationClaims
from trustkit.jwt.decoder import decode
from trustkit.jwt.types import (
    RESPONSE_TYPES,
    SERVICE,
    STREAM,
    Export,
    Import,
    ServiceLatency,
    WeightedMapping,
)
from trustkit.manage import Workspace, _resign_account, resolve_signing_key
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.store import Store
from trustkit.subject import _problem as subject_problem
from trustkit.subject import is_subset

__all__ = [
    "ActivationReport",
    "ActivationRevocationRow",
    "ExportEdit",
    "SharingReport",
    "add_export",
    "add_import",
    "add_mapping",
    "delete_activation_revocation",
    "delete_export",
    "delete_import",
    "delete_mapping",
    "edit_export",
    "generate_activation",
    "list_activation_revocations",
    "parse_sampling",
    "read_token",
    "revoke_activation",
]

DEFAULT_RESPONSE_TYPE = "Singleton"


# --- reports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharingReport:
    """What a sharing command changed in one account JWT (``entry``: the JSON as written)."""

    kind: str  # export | import | mapping | activation_revocation
    action: str  # added | edited | deleted
    account: str
    public_key: str
    path: str
    entry: dict[str, Any]
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "action": self.action,
            "account": self.account,
            "public_key": self.public_key,
            "jwt": self.path,
            self.kind: self.entry,
            "changes": self.changes,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class ActivationReport:
    """A generated activation token (not stored: it is handed to the importing account)."""

    token: str
    claims: ActivationClaims
    export_name: str
    account: str
    target_name: str
    warnings: list[str] = field(default_factory=list)

    @property
    def decorated(self) -> str:
        """The token in nsc's ``-----BEGIN NATS ACTIVATION JWT-----`` block."""
        return decorate_jwt(self.token)

    def to_json(self) -> dict[str, Any]:
        c = self.claims
        return {
            "kind": "activation",
            "account": self.account,
            "export": self.export_name,
            "subject": c.import_subject,
            "type": c.import_type,
            "target_account": c.sub,
            "target_name": self.target_name,
            "issuer": c.iss,
            "issuer_account": c.issuer_account,
            "issued_at": c.iat,
            "expires": c.exp,
            "not_before": c.nbf,
            "hash_id": c.hash_id(),
            "token": self.token,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class ActivationRevocationRow:
    export: str
    subject: str
    type: str
    public_key: str
    account: str
    revoked_at: int

    def to_json(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        return {
            "export": self.export,
            "subject": self.subject,
            "type": self.type,
            "public_key": self.public_key,
            "account": self.account,
            "revoked_at": self.revoked_at,
            "revoked_at_utc": datetime.fromtimestamp(self.revoked_at, UTC).isoformat().replace("+00:00", "Z"),
        }


# --- helpers ------------------------------------------------------------------------------------


def _usage(message: str) -> StoreError:
    return StoreError(message, code="store_usage")


def _not_found(message: str) -> StoreError:
    return StoreError(message, code="store_not_found")


def _kind(service: bool) -> str:
    return SERVICE if service else STREAM


def _check_subject(subject: str, what: str) -> None:
    problem = subject_problem(subject, True) if isinstance(subject, str) else "subject must be a string"
    if problem is not None:
        raise _usage(f"{what}: {problem}")


def _account_ref(store: Store, ref: str, what: str, *, allow_all: bool = False) -> tuple[str, str]:
    """(public key, name in the store or "") of an account given by public key or store name
    (nsc accepts both); ``*`` when ``allow_all``. Raises :class:`StoreError`."""
    if allow_all and ref == ALL_USERS:
        return ALL_USERS, ALL_USERS
    if nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT):
        return ref, store.find_account(ref) or ""
    try:
        known = bool(ref) and store.has_account(ref)
    except StoreError:
        known = False
    if not known:
        extra = " or '*'" if allow_all else ""
        raise _not_found(
            f"{what} {ref!r} is neither an account public key{extra} nor an account of operator "
            f"{store.name!r}"
        )
    return store.account_claims(ref).sub, ref


def _names_by_key(store: Store) -> dict[str, str]:
    names = {ALL_USERS: ALL_USERS}
    for account in store.list_accounts():
        try:
            names.setdefault(store.account_claims(account).sub, account)
        except StoreError:
            continue  # a name is a courtesy: an unreadable account JWT does not stop the listing
    return names


def parse_sampling(text: str) -> int:
    """Latency sampling as nsc reads it: ``header`` (also ``headers``) → 0, or ``1``..``100``."""
    t = text.strip().lower()
    if t in ("header", "headers"):
        return 0
    if t.isdigit() and 1 <= int(t) <= 100:
        return int(t)
    raise _usage(f"latency sampling {text!r} must be a percentage from 1 to 100 or 'header'")


def _describe_exports(claims: AccountClaims) -> str:
    if not claims.exports:
        return "it has no exports"
    return "its exports: " + ", ".join(f"{e.subject} ({e.type})" for e in claims.exports)


def _find_export(claims: AccountClaims, subject: str, kind: str | None, *, contained: bool) -> Export:
    """The export whose subject is ``subject`` (or, with ``contained``, contains it, as nsc's
    revocation commands look it up), of ``kind`` when given. Raises :class:`StoreError`."""
    candidates = [e for e in claims.exports if kind is None or e.type == kind]
    found = [e for e in candidates if e.subject == subject]
    if not found and contained:
        found = [e for e in candidates if is_subset(subject, e.subject)]
    if not found:
        what = f"{kind} export" if kind else "export"
        raise _not_found(
            f"account {claims.name!r} has no {what} {'containing' if contained else 'with subject'} "
            f"{subject!r} ({_describe_exports(claims)})"
        )
    if len({e.type for e in found}) > 1:
        raise _usage(
            f"account {claims.name!r} exports {subject!r} as a stream and as a service: "
            "say which (--service or --stream)"
        )
    return found[0]


def _export_json(exp: Export) -> dict[str, Any]:
    return exp.to_json()


def _report(
    kind: str,
    action: str,
    account: str,
    claims: AccountClaims,
    path: object,
    entry: dict[str, Any],
    changes: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> SharingReport:
    return SharingReport(kind, action, account, claims.sub, str(path), entry, list(changes), list(warnings))


def _importers(store: Store, exporter: AccountClaims, exp: Export) -> list[str]:
    """Store accounts that import from ``exp`` (same kind, subject inside the export)."""
    out: list[str] = []
    for name in store.list_accounts():
        try:
            claims = store.account_claims(name)
        except StoreError:
            continue  # the warning is a courtesy: an unreadable account does not block the delete
        if claims.sub == exporter.sub:
            continue
        if any(
            i.account == exporter.sub and i.type == exp.type and is_subset(i.subject, exp.subject)
            for i in claims.imports
        ):
            out.append(name)
    return out


# --- exports ------------------------------------------------------------------------------------


def add_export(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str,
    now: int,
    name: str = "",
    service: bool = False,
    private: bool = False,
    response_type: str | None = None,
    response_threshold_ns: int = 0,
    latency: str = "",
    sampling: str | None = None,
    account_token_position: int = 0,
    description: str = "",
    info_url: str = "",
    allow_trace: bool = False,
) -> SharingReport:
    """``nsc add export``: a stream (default) or service export of ``subject``.

    ``private`` exports need an activation per importing account (:func:`generate_activation`).
    Services get ``response_type`` (Singleton, Stream, Chunked; default Singleton, as nsc writes
    it), an optional latency subject with ``sampling`` (1..100 or ``header``), a response
    threshold and ``allow_trace``. ``account_token_position`` (public exports only) is the
    1-based token of a wildcard subject that must hold the importing account's key.

    Raises :class:`StoreError` (``store_usage``) for option combinations nsc refuses, and
    :class:`ClaimsInvalidError` when the account would not be valid (an export overlapping
    another of the same kind, a service-only option on a stream, a bad subject …).
    """
    _check_subject(subject, "export subject")
    if private and account_token_position:
        raise _usage("an account token position is only valid for public exports")
    if response_type is not None and not service:
        raise _usage("a response type can only be given for a service export (--service)")
    if sampling is not None and not latency:
        raise _usage("latency sampling needs a latency results subject (--latency)")
    if response_type is not None and response_type not in RESPONSE_TYPES:
        raise _usage(f"unknown response type {response_type!r} (Singleton, Stream or Chunked)")
    store = ws.open(operator)
    claims = store.account_claims(account)
    exp = Export(
        name=name or subject,
        subject=subject,
        type=_kind(service),
        token_req=private,
        account_token_position=account_token_position,
        allow_trace=allow_trace,
        description=description,
        info_url=info_url,
        response_threshold=response_threshold_ns,
    )
    if service:
        exp.response_type = response_type or DEFAULT_RESPONSE_TYPE
    if latency:
        exp.service_latency = ServiceLatency(
            sampling=parse_sampling(sampling) if sampling is not None else 0, results=latency
        )
    claims.exports.append(exp)
    path = _resign_account(ws, store, claims, now=now)
    visibility = "private" if private else "public"
    return _report("export", "added", account, claims, path, _export_json(exp), [f"{visibility} {exp.type}"])


@dataclass(frozen=True)
class ExportEdit:
    """What ``edit export`` changes; ``None`` (or False for the removals) keeps a value."""

    name: str | None = None
    service: bool | None = None
    private: bool | None = None
    response_type: str | None = None
    response_threshold_ns: int | None = None
    latency: str | None = None
    sampling: str | None = None
    rm_latency: bool = False
    account_token_position: int | None = None
    description: str | None = None
    info_url: str | None = None
    allow_trace: bool | None = None

    def is_empty(self) -> bool:
        return not self.rm_latency and all(
            getattr(self, f) is None
            for f in (
                "name",
                "service",
                "private",
                "response_type",
                "response_threshold_ns",
                "latency",
                "sampling",
                "account_token_position",
                "description",
                "info_url",
                "allow_trace",
            )
        )


def edit_export(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str | None,
    edit: ExportEdit,
    now: int,
) -> SharingReport:
    """``nsc edit export``: change the export whose subject is ``subject`` (may be omitted when
    the account has one export). Values not named in ``edit`` are kept, including the export's
    activation revocations and account token position (nsc drops both on edit). Turning a
    service into a stream drops its service-only settings (reported in ``changes``).

    Raises :class:`StoreError` (``store_usage``, ``store_not_found``) or
    :class:`ClaimsInvalidError` (the edited account would not be valid)."""
    if edit.is_empty():
        raise _usage("nothing to change: give at least one edit option")
    if edit.response_type is not None and edit.response_type not in RESPONSE_TYPES:
        raise _usage(f"unknown response type {edit.response_type!r} (Singleton, Stream or Chunked)")
    if edit.rm_latency and (edit.latency is not None or edit.sampling is not None):
        raise _usage("removing latency tracking and setting it are exclusive")
    store = ws.open(operator)
    claims = store.account_claims(account)
    if subject is None:
        if len(claims.exports) != 1:
            raise _usage(f"name the export to edit with its subject ({_describe_exports(claims)})")
        subject = claims.exports[0].subject
    both = [e for e in claims.exports if e.subject == subject]
    if len(both) > 1 and edit.service is not None:
        # the subject is a stream and a service export: --service/--stream picks one, then
        exp = _find_export(claims, subject, _kind(edit.service), contained=False)
    else:
        exp = _find_export(claims, subject, None, contained=False)
    changes: list[str] = []
    warnings: list[str] = []

    def change(attr: str, value: Any, label: str | None = None) -> None:
        if value is not None and getattr(exp, attr) != value:
            setattr(exp, attr, value)
            changes.append(f"{label or attr}={value}")

    change("name", edit.name)
    change("description", edit.description)
    change("info_url", edit.info_url)
    if edit.private is not None and exp.token_req != edit.private:
        exp.token_req = edit.private
        changes.append(f"token_req={str(edit.private).lower()}")
        warnings.append(
            "the export is now private: importers need an activation token"
            if edit.private
            else "the export is now public: any account may import it"
        )
    if edit.account_token_position is not None:
        change("account_token_position", edit.account_token_position)
    if exp.token_req and exp.account_token_position:
        raise _usage("an account token position is only valid for public exports")
    if edit.service is not None and (exp.type == SERVICE) != edit.service:
        exp.type = _kind(edit.service)
        changes.append(f"type={exp.type}")
        warnings.append(f"the export is now a {exp.type}: existing importers of it stop working")
        if exp.type == STREAM:
            dropped = [
                a
                for a, empty in (
                    ("response_type", ""),
                    ("response_threshold", 0),
                    ("service_latency", None),
                    ("allow_trace", False),
                )
                if getattr(exp, a) != empty
            ]
            exp.response_type, exp.response_threshold = "", 0
            exp.service_latency, exp.allow_trace = None, False
            changes.extend(f"removed {a} (services only)" for a in dropped)
        elif not exp.response_type:
            exp.response_type = DEFAULT_RESPONSE_TYPE
    service = exp.type == SERVICE
    if not service and (
        edit.response_type is not None
        or edit.response_threshold_ns
        or edit.latency is not None
        or edit.sampling is not None
        or edit.allow_trace
    ):
        raise _usage(
            f"export {exp.subject!r} is a stream: response type, threshold, latency and allow-trace "
            "are for services only"
        )
    change("response_type", edit.response_type)
    change("response_threshold", edit.response_threshold_ns)
    change("allow_trace", edit.allow_trace)
    if edit.rm_latency:
        if exp.service_latency is None:
            raise _not_found(f"export {exp.subject!r} does not track latency")
        exp.service_latency = None
        changes.append("removed service_latency")
    elif edit.latency is not None or edit.sampling is not None:
        if edit.latency is None and exp.service_latency is None:
            raise _usage("latency sampling needs a latency results subject (--latency)")
        old = exp.service_latency
        results = edit.latency if edit.latency is not None else (old.results if old else "")
        sampling = (
            parse_sampling(edit.sampling) if edit.sampling is not None else (old.sampling if old else 0)
        )
        new = ServiceLatency(sampling=sampling, results=results)
        if old is None or (old.sampling, old.results) != (new.sampling, new.results):
            exp.service_latency = new
            changes.append(f"service_latency={new.to_json()}")
    if not changes:
        raise _usage(f"export {exp.subject!r} already has these values: nothing to change")
    path = _resign_account(ws, store, claims, now=now)
    return _report("export", "edited", account, claims, path, _export_json(exp), changes, warnings)


def delete_export(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str | None,
    now: int,
    service: bool | None = None,
) -> SharingReport:
    """``nsc delete export``: remove the export with this subject (``service`` picks the kind
    when the subject is exported as both). Store accounts that import it are named in
    ``warnings``: their imports stop working once this account is pushed.

    Raises :class:`StoreError` (``store_not_found``, ``store_usage``)."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    if subject is None:
        if len(claims.exports) != 1:
            raise _usage(f"name the export to delete with its subject ({_describe_exports(claims)})")
        subject = claims.exports[0].subject
    exp = _find_export(claims, subject, None if service is None else _kind(service), contained=False)
    claims.exports.remove(exp)
    warnings = [
        f"account {name!r} imports this export: its import stops working"
        for name in _importers(store, claims, exp)
    ]
    path = _resign_account(ws, store, claims, now=now)
    return _report("export", "deleted", account, claims, path, _export_json(exp), [], warnings)


# --- imports ------------------------------------------------------------------------------------


def read_token(text: str) -> str:
    """An activation token given as a JWT, or as a file holding one (raw or decorated, as nsc
    writes it). Raises :class:`StoreError` when it is neither."""
    from pathlib import Path

    from trustkit.creds import parse_decorated_jwt
    from trustkit.store import fsio

    candidate = text.strip()
    if candidate.count(".") == 2 and candidate.startswith("eyJ") and "/" not in candidate:
        return candidate  # a JWT (base64url has no '/'), not a path
    return parse_decorated_jwt(fsio.read_text(Path(text)))


def _check_activation(
    act: ActivationClaims,
    *,
    importer: AccountClaims,
    src: str,
    kind: str,
    subject: str,
    now: int,
) -> None:
    """The checks nats-server makes on an import's token (Go ``Import.Validate`` and
    ``checkActivation``). Raises :class:`ClaimsInvalidError`."""

    def bad(message: str, code: str = "activation_mismatch") -> ClaimsInvalidError:
        return ClaimsInvalidError(message, code=code)

    if act.sub != importer.sub:
        raise bad(
            f"the activation token is for account {act.sub}, not for {importer.name!r} ({importer.sub})"
        )
    if src not in (act.iss, act.issuer_account):
        issuer = act.issuer_account or act.iss
        raise bad(f"the activation token was issued by account {issuer}, not by {src}")
    if act.import_type != kind:
        raise bad(f"the activation token grants a {act.import_type} import, not a {kind} import")
    if not is_subset(subject, act.import_subject):
        raise bad(f"the activation token grants {act.import_subject!r}, which does not contain {subject!r}")
    if act.is_expired(now):
        raise bad(f"the activation token expired at {act.exp}", "activation_expired")


def add_import(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    now: int,
    src_account: str | None = None,
    remote_subject: str | None = None,
    local_subject: str = "",
    service: bool | None = None,
    name: str = "",
    token: str | None = None,
    share: bool = False,
    allow_trace: bool = False,
) -> SharingReport:
    """``nsc add import``: import ``remote_subject`` from ``src_account`` (a public key or an
    account of this store), optionally seen locally as ``local_subject``.

    A private export is imported with ``token`` (the activation JWT); the source account, the
    subject and the kind then default to the token's. When the exporting account is in the
    store, the import is checked against it (see the module docstring); for a public export
    with an account token position, a ``*`` at that position is replaced with this account's
    key. Raises :class:`StoreError` (``store_usage``, ``store_not_found``, ``store_exists``) or
    :class:`ClaimsInvalidError` (codes in the module docstring); nothing is written on error.
    """
    store = ws.open(operator)
    importer = store.account_claims(account)
    act: ActivationClaims | None = None
    if token is not None:
        token = token.strip()
        try:
            act = decode(token, ActivationClaims)
        except TokenError as exc:
            raise ClaimsInvalidError(
                f"the activation token is not valid: {exc}", code="activation_invalid"
            ) from None
    elif src_account is None or remote_subject is None:
        raise _usage(
            "an import needs --src-account and --remote-subject (public export) or --token (private export)"
        )
    if src_account is not None:
        src, _ = _account_ref(store, src_account, "source account")
    else:
        assert act is not None
        src = act.issuer_account or act.iss
    if src == importer.sub:
        raise _usage(f"account {account!r} cannot import from itself")
    kind = _kind(service) if service is not None else (act.import_type if act else STREAM)
    remote = remote_subject if remote_subject is not None else (act.import_subject if act else "")
    _check_subject(remote, "import subject")
    if local_subject:
        _check_subject(local_subject, "local subject")
    if share and kind != SERVICE:
        raise _usage("only service imports can share latency tracking data (--share)")
    if allow_trace and kind != STREAM:
        raise _usage("allow-trace is only valid for stream imports")
    changes: list[str] = []
    warnings: list[str] = []
    if act is not None:
        _check_activation(act, importer=importer, src=src, kind=kind, subject=remote, now=now)
        if act.is_not_yet_valid(now):
            warnings.append(f"the activation token is not valid before {act.nbf}")
    exporter_name = store.find_account(src)
    if exporter_name is not None:
        exporter = store.account_claims(exporter_name)
        exp = _matching_export(exporter, exporter_name, remote, kind)
        pos = exp.account_token_position
        if pos:
            toks = remote.split(".")
            if pos > len(toks):
                raise ClaimsInvalidError(
                    f"export {exp.subject!r} needs the importing account's key at token {pos} of "
                    f"the subject, and {remote!r} has only {len(toks)} tokens",
                    code="import_not_exported",
                )
            if toks[pos - 1] == "*":
                toks[pos - 1] = importer.sub
                remote = ".".join(toks)
                changes.append(f"subject={remote} (this account's key at token {pos})")
            elif toks[pos - 1] != importer.sub:
                raise ClaimsInvalidError(
                    f"export {exp.subject!r} of account {exporter_name!r} only lets an account import "
                    f"subjects with its own key at token {pos}: use {importer.sub} (or '*') there",
                    code="import_not_exported",
                )
        if exp.token_req and act is None:
            raise ClaimsInvalidError(
                f"export {exp.subject!r} of account {exporter_name!r} is private: import it with "
                f"--token (trustkit generate activation --account {exporter_name} --subject "
                f"{exp.subject} --target-account {importer.sub})",
                code="activation_required",
            )
        if act is not None:
            if not exp.token_req:
                warnings.append(f"export {exp.subject!r} is public: the activation token is not needed")
            if act.issuer_account and act.iss not in exporter.signing_keys:
                raise ClaimsInvalidError(
                    f"the activation token is signed by {act.iss}, which is not a signing key of "
                    f"account {exporter_name!r}",
                    code="activation_mismatch",
                )
            if is_revoked(exp.revocations, importer.sub, act.iat):
                at = exp.revocations.get(importer.sub, exp.revocations.get(ALL_USERS))
                raise ClaimsInvalidError(
                    f"account {exporter_name!r} revoked activations of export {exp.subject!r} for "
                    f"this account issued at or before {at}: ask for a new token",
                    code="activation_revoked",
                )
    else:
        warnings.append(
            f"account {src} is not in operator {operator!r}'s store: the import could not be "
            "checked against its exports"
        )
    for other in importer.imports:
        if other.account == src and other.subject == remote and other.type == kind:
            raise StoreError(
                f"account {account!r} already imports {kind} {remote!r} from {src}", code="store_exists"
            )
    if act is not None and kind == SERVICE and not local_subject:
        local_subject = remote  # as nsc does for a token's service import
    imp = Import(
        name=name or (act.name if act and act.name else remote),
        subject=remote,
        account=src,
        token=token or "",
        local_subject=local_subject,
        type=kind,
        share=share,
        allow_trace=allow_trace,
    )
    importer.imports.append(imp)
    path = _resign_account(ws, store, importer, now=now)
    return _report("import", "added", account, importer, path, imp.to_json(), changes, warnings)


def _matching_export(exporter: AccountClaims, exporter_name: str, subject: str, kind: str) -> Export:
    """The export nats-server would authorize ``subject`` against: the one with exactly this
    subject, else one containing it (``isSubsetMatch``). Raises :class:`ClaimsInvalidError`."""
    for exact in (True, False):
        for exp in exporter.exports:
            if exp.type == kind and (exp.subject == subject if exact else is_subset(subject, exp.subject)):
                return exp
    others = [e for e in exporter.exports if e.type != kind and is_subset(subject, e.subject)]
    hint = ""
    if others:
        hint = f": it exports {others[0].subject!r} as a {others[0].type}" + (
            " (add --service)" if others[0].type == SERVICE else " (drop --service)"
        )
    else:
        hint = f" ({_describe_exports(exporter)})"
    raise ClaimsInvalidError(
        f"account {exporter_name!r} has no {kind} export containing {subject!r}{hint}",
        code="import_not_exported",
    )


def delete_import(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str | None,
    now: int,
    src_account: str | None = None,
    service: bool | None = None,
) -> SharingReport:
    """``nsc delete import``: remove the import of ``subject`` (its remote subject; if no import
    has it, its local subject). ``src_account`` / ``service`` choose when several match.

    Raises :class:`StoreError` (``store_not_found``, ``store_usage``)."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    if subject is None:
        if len(claims.imports) != 1:
            raise _usage(
                f"name the import to delete with its subject (account {account!r} has "
                f"{len(claims.imports)} imports)"
            )
        subject = claims.imports[0].subject
    src = _account_ref(store, src_account, "source account")[0] if src_account is not None else None

    def fits(i: Import) -> bool:
        return (src is None or i.account == src) and (service is None or i.type == _kind(service))

    found = [i for i in claims.imports if i.subject == subject and fits(i)]
    if not found:
        found = [i for i in claims.imports if i.local_subject == subject and fits(i)]
    if not found:
        have = ", ".join(f"{i.subject} ({i.type} from {i.account})" for i in claims.imports) or "none"
        raise _not_found(f"account {account!r} has no import {subject!r} (its imports: {have})")
    if len(found) > 1:
        raise _usage(
            f"{len(found)} imports of {subject!r} in account {account!r}: choose with --src-account "
            f"({', '.join(sorted({i.account for i in found}))}) or --service/--stream"
        )
    imp = found[0]
    claims.imports.remove(imp)
    path = _resign_account(ws, store, claims, now=now)
    return _report("import", "deleted", account, claims, path, imp.to_json())


# --- mappings -----------------------------------------------------------------------------------

_WILDCARD_FN_RE = re.compile(r"\{\{\s*[wW]ildcard\s*\((.*?)\)\s*\}\}")
_REF_RE = re.compile(r"\$(\d+)")


def _mapping_problem(source: str, dest: str) -> str | None:
    """A destination that refers to a wildcard the source does not have (nats-server refuses
    the mapping: ``ErrMappingDestinationIndexOutOfRange``)."""
    wildcards = source.split(".").count("*")
    for tok in dest.split("."):
        refs = [m.group(1) for m in _WILDCARD_FN_RE.finditer(tok)]
        if (m := _REF_RE.fullmatch(tok)) is not None:
            refs.append(m.group(1))
        for ref in refs:
            ref = ref.strip()
            if not ref.isdigit() or not 1 <= int(ref) <= wildcards:
                return (
                    f"mapping destination {dest!r} refers to wildcard {ref!r}, but {source!r} has "
                    f"{wildcards} '*' wildcard(s)"
                )
    return None


def _mapping_json(source: str, entries: Sequence[WeightedMapping]) -> dict[str, Any]:
    return {"from": source, "to": [w.to_json() for w in entries]}


def add_mapping(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    source: str,
    dest: str,
    now: int,
    weight: int | None = None,
    cluster: str = "",
) -> SharingReport:
    """``nsc add mapping``: map publishes to ``source`` onto ``dest`` with ``weight`` percent
    (omitted: 100), optionally only in ``cluster``. An entry with the same destination and
    cluster is replaced (that is how a weight is changed). The weights of one source (per
    cluster) may add up to at most 100, as Go validates.

    Raises :class:`StoreError` (``store_usage``) or :class:`ClaimsInvalidError`
    (``mapping_invalid``: weight outside 1..100, total over 100, wildcard reference out of range).
    """
    _check_subject(source, "mapping source")
    _check_subject(dest, "mapping destination")
    if weight is not None and not 1 <= weight <= 100:
        raise ClaimsInvalidError(
            f"mapping weight {weight} of {source!r} -> {dest!r} must be from 1 to 100 (omit it for 100)",
            code="mapping_invalid",
        )
    problem = _mapping_problem(source, dest)
    if problem:
        raise ClaimsInvalidError(problem, code="mapping_invalid")
    store = ws.open(operator)
    claims = store.account_claims(account)
    entries = claims.mappings.setdefault(source, [])
    new = WeightedMapping(subject=dest, weight=weight or 0, cluster=cluster)
    action = "added"
    for i, old in enumerate(entries):
        if old.subject == dest and old.cluster == cluster:
            entries[i] = new
            action = "edited"
            break
    else:
        entries.append(new)
    total = sum(w.effective_weight() for w in entries if w.cluster == cluster)
    if total > 100:
        where = f" in cluster {cluster!r}" if cluster else ""
        parts = " + ".join(f"{w.subject} {w.effective_weight()}%" for w in entries if w.cluster == cluster)
        raise ClaimsInvalidError(
            f"the mappings of {source!r}{where} would add up to {total}% ({parts}); at most 100% "
            "(give --weight to each destination)",
            code="mapping_invalid",
        )
    path = _resign_account(ws, store, claims, now=now)
    return _report("mapping", action, account, claims, path, _mapping_json(source, entries))


def delete_mapping(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    source: str,
    now: int,
    dest: str | None = None,
    cluster: str | None = None,
) -> SharingReport:
    """``nsc delete mapping``: remove the mapping of ``source`` to ``dest`` (in ``cluster``),
    or, without ``dest``, all of ``source``'s mappings (of ``cluster`` when given).

    Raises :class:`StoreError` (``store_not_found``) when there is no such mapping."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    entries = claims.mappings.get(source)
    if not entries:
        have = ", ".join(sorted(claims.mappings)) or "none"
        raise _not_found(f"account {account!r} has no mapping from {source!r} (its mappings: {have})")
    if dest is not None:
        removed = [w for w in entries if w.subject == dest and w.cluster == (cluster or "")]
    else:
        removed = [w for w in entries if cluster is None or w.cluster == cluster]
    if not removed:
        target = f" to {dest!r}" if dest is not None else ""
        where = f" in cluster {cluster!r}" if cluster else ""
        raise _not_found(f"account {account!r} has no mapping from {source!r}{target}{where}")
    kept = [w for w in entries if w not in removed]
    if kept:
        claims.mappings[source] = kept
    else:
        del claims.mappings[source]
    path = _resign_account(ws, store, claims, now=now)
    return _report("mapping", "deleted", account, claims, path, _mapping_json(source, removed))


# --- activations --------------------------------------------------------------------------------


def _account_signer(ws: Workspace, claims: AccountClaims, ref: str | None) -> KeyPair:
    """``ref`` (a signing key or a scoped key's role), else the identity key, else the first
    signing key of the account whose seed is in the keystore."""
    if ref:
        return ws.key(resolve_signing_key(claims, ref), f"account {claims.name!r} signing")
    unscoped = sorted(k for k, s in claims.signing_keys.items() if s is None)
    scoped = sorted(k for k, s in claims.signing_keys.items() if s is not None)
    for key in (claims.sub, *unscoped, *scoped):
        kp = ws.keystore.get_key(key)
        if kp is not None:
            return kp
    raise StoreError(f"no key of account {claims.name!r} that may sign activations is in the keystore")


def generate_activation(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str,
    target_account: str,
    now: int,
    expiry: int = 0,
    start: int = 0,
    signing_key: str | None = None,
    service: bool | None = None,
) -> ActivationReport:
    """``nsc generate activation``: a token that lets ``target_account`` (public key or store
    name) import ``subject`` of a private export of ``account``. Signed by the account's key or
    by ``signing_key`` (then with ``issuer_account``). Nothing is written.

    Raises :class:`StoreError` (``store_not_found`` no private export contains the subject,
    ``store_usage`` the export is public or the target is this account)."""
    _check_subject(subject, "activation subject")
    store = ws.open(operator)
    claims = store.account_claims(account)
    kind = None if service is None else _kind(service)
    private = [e for e in claims.exports if e.token_req and (kind is None or e.type == kind)]
    matching = [e for e in private if e.subject == subject] or [
        e for e in private if is_subset(subject, e.subject)
    ]
    if not matching:
        public = [e for e in claims.exports if not e.token_req and is_subset(subject, e.subject)]
        if public:
            raise _usage(
                f"export {public[0].subject!r} of account {account!r} is public: importers need no "
                "activation (make it private with `trustkit edit export --private`)"
            )
        raise _not_found(
            f"account {account!r} has no private export containing {subject!r} ({_describe_exports(claims)})"
        )
    if len({e.type for e in matching}) > 1:
        raise _usage(f"{subject!r} is a private stream and service export: say which (--service or --stream)")
    exp = matching[0]
    target, target_name = _account_ref(store, target_account, "target account")
    if target == claims.sub:
        raise _usage(f"account {account!r} does not need an activation for its own export")
    signer = _account_signer(ws, claims, signing_key)
    act = ActivationClaims(
        sub=target,
        name=subject,
        import_subject=subject,
        import_type=exp.type,
        issuer_account=claims.sub if signer.public_key != claims.sub else "",
        exp=expiry,
        nbf=start,
    )
    token = act.encode(signer, iat=now)
    errors = act.validate(now=now).errors
    if errors:
        raise ClaimsInvalidError(f"the activation would not be valid: {'; '.join(errors)}")
    warnings: list[str] = []
    if is_revoked(exp.revocations, target, now):
        at = exp.revocations.get(target, exp.revocations.get(ALL_USERS))
        warnings.append(
            f"export {exp.subject!r} revokes this account's activations issued at or before {at}: "
            "this token is revoked too until that revocation is deleted"
        )
    return ActivationReport(token, act, exp.name, account, target_name, warnings)


def _revocation_target(claims: AccountClaims, subject: str, kind: str | None) -> Export:
    exp = _find_export(claims, subject, kind, contained=True)
    if not exp.token_req:
        raise _usage(
            f"export {exp.subject!r} of account {claims.name!r} is public: it has no activations to "
            "revoke (make it private with `trustkit edit export --private`)"
        )
    return exp


def revoke_activation(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str,
    target_account: str,
    at: int,
    now: int,
    service: bool | None = None,
) -> SharingReport:
    """``nsc revocations add-activation``: the private export of ``account`` containing
    ``subject`` refuses activations for ``target_account`` (public key, store name or ``*``)
    issued at or before ``at`` (a later existing revocation is kept, as Go's ``RevokeAt``).
    Pushing the account applies it live: nats-server drops the import.

    Raises :class:`StoreError` (``store_not_found``, ``store_usage``)."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    exp = _revocation_target(claims, subject, None if service is None else _kind(service))
    target, name = _account_ref(store, target_account, "target account", allow_all=True)
    exp.revocations[target] = max(at, exp.revocations.get(target, at))
    path = _resign_account(ws, store, claims, now=now)
    row = ActivationRevocationRow(exp.name, exp.subject, exp.type, target, name, exp.revocations[target])
    return _report("activation_revocation", "added", account, claims, path, row.to_json())


def delete_activation_revocation(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str,
    target_account: str,
    now: int,
    service: bool | None = None,
) -> SharingReport:
    """``nsc revocations delete-activation``: remove ``target_account``'s revocation from the
    export containing ``subject``. Raises :class:`StoreError` (``store_not_found``)."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    exp = _find_export(claims, subject, None if service is None else _kind(service), contained=True)
    target, name = _account_ref(store, target_account, "target account", allow_all=True)
    if target not in exp.revocations:
        raise _not_found(
            f"export {exp.subject!r} of account {account!r} has no revocation for {name or target}"
            + (f" ({target})" if name and name != target else "")
        )
    row = ActivationRevocationRow(exp.name, exp.subject, exp.type, target, name, exp.revocations.pop(target))
    path = _resign_account(ws, store, claims, now=now)
    return _report("activation_revocation", "deleted", account, claims, path, row.to_json())


def list_activation_revocations(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    subject: str | None = None,
    service: bool | None = None,
) -> list[ActivationRevocationRow]:
    """``nsc revocations list-activations``: the activation revocations of every export of
    ``account`` (or of the export containing ``subject``), one row per revoked account."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    kind = None if service is None else _kind(service)
    if subject is not None:
        exports = [_find_export(claims, subject, kind, contained=True)]
    else:
        exports = [e for e in claims.exports if kind is None or e.type == kind]
    names = _names_by_key(store)
    return [
        ActivationRevocationRow(e.name, e.subject, e.type, key, names.get(key, ""), ts)
        for e in sorted(exports, key=lambda e: (e.subject, e.type))
        for key, ts in sorted(e.revocations.items())
    ]
