"""``describe jwt|operator|account|user``: verified claims, never seeds."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trustkit.cli.common import (
    DIRS,
    AccountName,
    AccountOpt,
    DirOptions,
    JsonFlag,
    OperatorOpt,
    OptionGroup,
    UserName,
    now,
    open_account,
    open_operator,
)
from trustkit.cli.output import emit, fail, wants_json

if TYPE_CHECKING:
    from trustkit.inventory import Described


class Shown(OptionGroup):
    """``--raw`` and ``--field``: the token itself, or one field of its payload, instead of the
    whole description."""

    raw: Annotated[bool, typer.Option("--raw", "-R", help="Print the token itself.")] = False
    field: Annotated[
        str | None, typer.Option("--field", "-F", help="Print one field of the payload (dotted path).")
    ] = None

    def only(
        self, token: str, payload: Callable[[], dict[str, Any]], *, as_json: bool
    ) -> dict[str, Any] | None:
        """Print what ``--raw`` or ``--field`` asks for and return None; else the payload."""
        from trustkit.inventory import select_field

        if self.raw:
            sys.stdout.write(token + "\n")
            return None
        claims = payload()
        if self.field is not None:
            emit({self.field: select_field(claims, self.field)}, as_json=as_json)
            return None
        return claims


SHOWN = Shown()


def _flat(payload: dict[str, Any]) -> dict[str, Any]:
    """For a terminal: ``nats`` fields as their own rows (``nats.limits``…); an account's
    ``default_permissions`` as nsc's ``describe account`` shows them (:func:`_permission_rows`)."""
    out = {k: v for k, v in payload.items() if k != "nats"}
    for k, v in payload.get("nats", {}).items():
        if k == "default_permissions" and isinstance(v, dict):
            out.update(_permission_rows(f"nats.{k}", v))
        else:
            out[f"nats.{k}"] = v
    return out


def _permission_rows(prefix: str, perms: dict[str, Any]) -> dict[str, Any]:
    """nsc's ``AddPermissions``: the four allow/deny lists when any is set, then the response
    permission or ``not set``; rows named by their ``--field`` paths."""
    lists = {
        f"{prefix}.{direction}.{what}": (perms.get(direction) or {}).get(what) or []
        for direction in ("pub", "sub")
        for what in ("allow", "deny")
    }
    rows: dict[str, Any] = lists if any(lists.values()) else {}
    rows[f"{prefix}.resp"] = perms.get("resp") or "not set"
    return rows


def describe_jwt_cmd(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="A JWT, decorated JWT or creds file ('-': stdin).")
    ],
    shown: Shown = SHOWN,
    as_json: JsonFlag = False,
) -> None:
    """Verify and describe a JWT: its claims, and validation errors, warnings and time checks."""
    from trustkit.creds import parse_decorated_jwt
    from trustkit.jwt import decode

    data = sys.stdin.read() if str(file) == "-" else _read(file)
    token = parse_decorated_jwt(data)
    claims = decode(token)
    payload = shown.only(token, claims.payload_json, as_json=as_json)
    if payload is None:
        return
    vr = claims.validate(now=now())
    emit(
        {
            "type": claims.CLAIM_TYPE or "generic",
            "claims": payload,
            "errors": vr.errors,
            "warnings": vr.warnings,
            "time_checks": vr.time_checks,
        },
        as_json=as_json,
        title="JWT",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 3)


def _show(described: Described, shown: Shown, *, as_json: bool) -> None:
    payload = shown.only(described.token, described.payload, as_json=as_json)
    if payload is not None:
        emit(
            payload if wants_json(as_json) else _flat(payload),
            as_json=as_json,
            title=f"{described.kind} {described.name}",
        )


def describe_operator_cmd(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Operator (default: the context's).")
    ] = None,
    shown: Shown = SHOWN,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """The operator's verified claims (JSON: the decoded JWT payload)."""
    from trustkit.inventory import describe

    ws, op = open_operator(dirs, name)
    _show(describe(ws, op, "operator"), shown, as_json=as_json)


def describe_account_cmd(
    name: AccountName = None,
    operator: OperatorOpt = None,
    shown: Shown = SHOWN,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """An account's verified claims (JSON: the decoded JWT payload)."""
    from trustkit.inventory import describe

    ws, op, acct = open_account(dirs, operator, name)
    _show(describe(ws, op, "account", account=acct), shown, as_json=as_json)


def describe_user_cmd(
    name: UserName,
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    shown: Shown = SHOWN,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """A user's verified claims (JSON: the decoded JWT payload; the seed is never shown)."""
    from trustkit.inventory import describe

    ws, op, acct = open_account(dirs, operator, account)
    _show(describe(ws, op, "user", account=acct, name=name), shown, as_json=as_json)
