"""``list operators|accounts|users|keys``."""

from __future__ import annotations

from typing import Annotated

import typer

from trustkit.cli.common import (
    ACCOUNT,
    DIRS,
    OPERATOR,
    AccountOptions,
    DirOptions,
    JsonFlag,
    OperatorOptions,
)
from trustkit.cli.output import emit


def list_operators_cmd(dirs: DirOptions = DIRS, as_json: JsonFlag = False) -> None:
    """The operator stores in the stores dir."""
    from trustkit.inventory import list_operator_rows

    emit([r.to_json() for r in list_operator_rows(dirs.workspace())], as_json=as_json, title="operators")


def list_accounts_cmd(where: OperatorOptions = OPERATOR, as_json: JsonFlag = False) -> None:
    """The operator's accounts."""
    from trustkit.inventory import list_account_rows

    ws, op = where.open()
    emit([r.to_json() for r in list_account_rows(ws, op)], as_json=as_json, title=f"accounts of {op}")


def list_users_cmd(where: AccountOptions = ACCOUNT, as_json: JsonFlag = False) -> None:
    """The account's users (role: the scoped signing key that issued one)."""
    from trustkit.inventory import list_user_rows

    ws, op, acct = where.open()
    emit([r.to_json() for r in list_user_rows(ws, op, acct)], as_json=as_json, title=f"users of {acct}")


def list_keys_cmd(
    show_seeds: Annotated[
        bool, typer.Option("--show-seeds", "-S", help="Also print the seeds (secrets).")
    ] = False,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Public keys in the keystore or used by entities: kind, users, whether the seed is stored.

    Seeds are printed only with --show-seeds."""
    from trustkit.inventory import list_keys

    ws = dirs.workspace()
    emit([r.to_json() for r in list_keys(ws, show_seeds=show_seeds)], as_json=as_json, title="keys")
