"""Checking a store: ``expirations`` and ``validate`` as a library (read-only).

:func:`validate_store` decodes (verifies) and validates every JWT of an operator store and checks
the chain between them (operator → account → user, signing keys, scopes, revocations). Problems
are collected, never raised, so one corrupt file does not hide the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from trustkit.errors import StoreError
from trustkit.jwt.account import AccountClaims
from trustkit.jwt.claims import Claims
from trustkit.jwt.operator import OperatorClaims
from trustkit.manage import Workspace
from trustkit.store import Store

__all__ = ["Expiration", "JwtCheck", "ValidationReport", "expirations", "validate_store"]


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else ""


# --- expirations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expiration:
    kind: str
    name: str
    account: str
    public_key: str
    expires: int
    status: str  # "expired", "expiring", "ok" or "never"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "account": self.account,
            "public_key": self.public_key,
            "expires": self.expires,
            "expires_at": _iso(self.expires),
            "status": self.status,
        }


def _status(claims: Claims, now: int, within: int) -> str:
    if not claims.exp:
        return "never"
    if claims.is_expired(now):  # Go: now > exp
        return "expired"
    return "expiring" if claims.exp <= now + within else "ok"


def expirations(
    ws: Workspace, operator: str, *, now: int, within: int, include_all: bool = False
) -> list[Expiration]:
    """``nsc expirations``: the operator, accounts and users that have expired, or expire within
    ``within`` seconds of ``now`` (with ``include_all``: every entity, status ``ok``/``never``
    included). Sorted soonest first, entities that never expire last.

    Raises :class:`StoreError` naming a missing or corrupt JWT.
    """
    store = ws.open(operator)
    found: list[Expiration] = []
    op = store.operator_claims()
    found.append(Expiration("operator", operator, "", op.sub, op.exp, _status(op, now, within)))
    for account in store.list_accounts():
        acct = store.account_claims(account)
        found.append(Expiration("account", account, account, acct.sub, acct.exp, _status(acct, now, within)))
        for user in store.list_users(account):
            uc = store.user_claims(account, user)
            found.append(Expiration("user", user, account, uc.sub, uc.exp, _status(uc, now, within)))
    if not include_all:
        found = [e for e in found if e.status in ("expired", "expiring")]
    return sorted(found, key=lambda e: (e.expires == 0, e.expires, e.kind, e.account, e.name))


# --- validate -----------------------------------------------------------------------------------


@dataclass
class JwtCheck:
    """The problems of one JWT file."""

    kind: str
    name: str
    account: str
    path: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    time_checks: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "account": self.account,
            "jwt": self.path,
            "errors": self.errors,
            "warnings": self.warnings,
            "time_checks": self.time_checks,
        }


@dataclass
class ValidationReport:
    operator: str
    checks: list[JwtCheck] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(len(c.errors) for c in self.checks)

    @property
    def warnings(self) -> int:
        return sum(len(c.warnings) + len(c.time_checks) for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "jwts": len(self.checks),
            "errors": self.errors,
            "warnings": self.warnings,
            "results": [c.to_json() for c in self.checks],
        }


def _record(check: JwtCheck, claims: Claims, now: int) -> None:
    vr = claims.validate(now=now)
    check.errors += vr.errors
    check.warnings += vr.warnings
    check.time_checks += vr.time_checks


def validate_store(
    ws: Workspace, operator: str, *, now: int, accounts: Sequence[str] | None = None
) -> ValidationReport:
    """``nsc validate``: verify and validate the operator JWT and the JWTs of ``accounts`` (all
    accounts when ``None``) and of their users, and check the chain of trust between them:

    * an account must be signed by the operator's identity (not under strict signing-key usage)
      or one of its signing keys; the operator's system account should be in the store;
    * a user must be issued by its account or one of its signing keys (with ``issuer_account``);
      a user of a *scoped* key must carry no permissions (the server refuses it otherwise);
      a revoked user is a warning.

    Expired or not-yet-valid JWTs are reported as time checks, not errors. Unreadable or
    forged JWTs are errors of their row. Raises :class:`StoreError` only when the store itself
    cannot be opened or a named account does not exist.
    """
    store = ws.open(operator)
    names = store.list_accounts()
    if accounts is not None:
        for name in accounts:
            if name not in names:
                raise StoreError(
                    f"account {name!r} does not exist in operator {operator!r}", code="store_not_found"
                )
        names = list(dict.fromkeys(accounts))
    report = ValidationReport(operator)
    op_check = JwtCheck("operator", operator, "", str(store.operator_jwt_path()))
    report.checks.append(op_check)
    op: OperatorClaims | None = None
    try:
        op = store.operator_claims()
    except StoreError as exc:
        op_check.errors.append(exc.message)
    if op is not None:
        _record(op_check, op, now)
        if op.iss != op.sub and op.iss not in op.signing_keys:
            op_check.errors.append(
                f"operator JWT is signed by {op.iss}, not by the operator or its signing keys"
            )
        if op.system_account and store.find_account(op.system_account) is None:
            op_check.warnings.append(f"system account {op.system_account} is not in the store")
    for name in names:
        acct_check = JwtCheck("account", name, name, str(store.account_jwt_path(name)))
        report.checks.append(acct_check)
        acct: AccountClaims | None = None
        try:
            acct = store.account_claims(name)
        except StoreError as exc:
            acct_check.errors.append(exc.message)
        if acct is not None:
            _record(acct_check, acct, now)
            if op is not None and not op.did_sign(acct):
                if acct.iss == op.sub:
                    acct_check.errors.append(
                        "account is signed by the operator identity key, but the operator requires "
                        "signing keys (strict signing key usage)"
                    )
                else:
                    acct_check.errors.append(
                        f"account is signed by {acct.iss}, which is not a key of the operator"
                    )
        _validate_users(report, store, name, acct, now)
    return report


def _validate_users(
    report: ValidationReport, store: Store, account: str, acct: AccountClaims | None, now: int
) -> None:
    try:
        users = store.list_users(account)
    except StoreError:
        return  # the account row already says why
    for user in users:
        check = JwtCheck("user", user, account, str(store.user_jwt_path(account, user)))
        report.checks.append(check)
        try:
            uc = store.user_claims(account, user)
        except StoreError as exc:
            check.errors.append(exc.message)
            continue
        _record(check, uc, now)
        if acct is None:
            continue
        if not acct.did_sign(uc):
            if uc.iss in acct.signing_keys and uc.issuer_account != acct.sub:
                check.errors.append(
                    f"user is issued by signing key {uc.iss} but its issuer_account is not the account"
                )
            else:
                check.errors.append(f"user is issued by {uc.iss}, which is not a key of account {account!r}")
            continue
        scope = acct.signing_keys.get(uc.iss)
        if scope is not None and not uc.has_empty_permissions():
            check.errors.append(
                f"user is issued by the scoped signing key of role {scope.role!r} but carries its own "
                "permissions or limits (the server refuses such users)"
            )
        if acct.is_revoked(uc.sub, uc.iat):
            check.warnings.append("user is revoked")
