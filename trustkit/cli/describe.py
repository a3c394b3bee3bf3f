"""``describe jwt|operator|account|user``: verified claims, never seeds."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trustkit.cli.common import (
    AccountOpt,
    ConfigDir,
    DataDir,
    JsonFlag,
    KeystoreDir,
    OperatorOpt,
    now,
    pick_account,
    pick_operator,
    workspace,
)
from trustkit.cli.output import emit, fail, wants_json

if TYPE_CHECKING:
    from trustkit.inventory import Described

RawFlag = Annotated[bool, typer.Option("--raw", "-R", help="Print the token itself.")]
FieldOpt = Annotated[
    str | None, typer.Option("--field", "-F", help="Print one field of the payload (dotted path).")
]


def _flat(payload: dict[str, Any]) -> dict[str, Any]:
    """For a terminal: ``nats`` fields as their own rows (``nats.limits``…)."""
    out = {k: v for k, v in payload.items() if k != "nats"}
    out.update((f"nats.{k}", v) for k, v in payload.get("nats", {}).items())
    return out


def describe_jwt_cmd(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="A JWT, decorated JWT or creds file ('-': stdin).")
    ],
    raw: RawFlag = False,
    field: FieldOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify and describe a JWT: its claims, and validation errors, warnings and time checks."""
    from trustkit.creds import parse_decorated_jwt
    from trustkit.inventory import select_field
    from trustkit.jwt import decode

    data = sys.stdin.read() if str(file) == "-" else _read(file)
    token = parse_decorated_jwt(data)
    claims = decode(token)
    if raw:
        sys.stdout.write(token + "\n")
        return
    payload = claims.payload_json()
    if field is not None:
        emit({field: select_field(payload, field)}, as_json=as_json)
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


def _show(described: Described, *, raw: bool, field: str | None, as_json: bool) -> None:
    from trustkit.inventory import select_field

    if raw:
        sys.stdout.write(described.token + "\n")
        return
    payload = described.payload()
    if field is not None:
        emit({field: select_field(payload, field)}, as_json=as_json)
        return
    emit(
        payload if wants_json(as_json) else _flat(payload),
        as_json=as_json,
        title=f"{described.kind} {described.name}",
    )


def describe_operator_cmd(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Operator (default: the context's).")
    ] = None,
    raw: RawFlag = False,
    field: FieldOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """The operator's verified claims (JSON: the decoded JWT payload)."""
    from trustkit.inventory import describe

    ws = workspace(config_dir, data_dir, keystore_dir)
    _show(describe(ws, pick_operator(ws, name), "operator"), raw=raw, field=field, as_json=as_json)


def describe_account_cmd(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Account (default: the context's).")
    ] = None,
    operator: OperatorOpt = None,
    raw: RawFlag = False,
    field: FieldOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """An account's verified claims (JSON: the decoded JWT payload)."""
    from trustkit.inventory import describe

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    described = describe(ws, op, "account", account=pick_account(ws, op, name))
    _show(described, raw=raw, field=field, as_json=as_json)


def describe_user_cmd(
    name: Annotated[str, typer.Option("--name", "-n", help="User name.")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    raw: RawFlag = False,
    field: FieldOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """A user's verified claims (JSON: the decoded JWT payload; the seed is never shown)."""
    from trustkit.inventory import describe

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    described = describe(ws, op, "user", account=pick_account(ws, op, account), name=name)
    _show(described, raw=raw, field=field, as_json=as_json)
