"""``expirations`` and ``validate``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from trustkit.cli.common import (
    OPERATOR,
    AccountOpt,
    JsonFlag,
    OperatorOptions,
    now,
    parse_duration_s,
    pick_account,
)
from trustkit.cli.output import emit


def expirations_cmd(
    within: Annotated[
        str, typer.Option("--within", "-e", help="Window: #s/#m/#h/#d/#w/#M/#y (M = 30 days).")
    ] = "1M",
    all_entities: Annotated[
        bool, typer.Option("--all", help="List every entity, also those not expiring.")
    ] = False,
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """Operator, accounts and users that have expired or expire within the window."""
    from trustkit.audit import expirations

    window = parse_duration_s(within)
    ws, op = where.open()
    rows = expirations(ws, op, now=now(), within=window, include_all=all_entities)
    emit([r.to_json() for r in rows], as_json=as_json, title=f"expirations within {within}")


def validate_cmd(
    account: AccountOpt = None,
    all_accounts: Annotated[
        bool, typer.Option("--all", "-A", "--all-accounts", help="Every account of the operator.")
    ] = False,
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """Verify and validate the store's JWTs and the chain of trust between them.

    Checks the operator, the account (--account, the context's) or every account (--all), and
    their users. Exit status 4 if any JWT has an error."""
    from trustkit.audit import validate_store
    from trustkit.errors import ClaimsInvalidError, exit_status

    ws, op = where.open()
    accounts = None if all_accounts else [pick_account(ws, op, account)]
    report = validate_store(ws, op, now=now(), accounts=accounts)
    emit(report.to_json(), as_json=as_json, title=f"validate {op}")
    if report.errors:
        sys.stderr.write(f"trustkit: error: {report.errors} validation error(s) in the store of {op!r}\n")
        raise typer.Exit(exit_status(ClaimsInvalidError("validation")))
