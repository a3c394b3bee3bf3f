"""``list operators|accounts|users|keys``."""

from __future__ import annotations

from typing import Annotated

import typer

from trustkit.cli.common import (
    AccountOpt,
    ConfigDir,
    DataDir,
    JsonFlag,
    KeystoreDir,
    OperatorOpt,
    pick_account,
    pick_operator,
    workspace,
)
from trustkit.cli.output import emit


def list_operators_cmd(
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """The operator stores in the stores dir."""
    from trustkit.inventory import list_operator_rows

    ws = workspace(config_dir, data_dir, keystore_dir)
    emit([r.to_json() for r in list_operator_rows(ws)], as_json=as_json, title="operators")


def list_accounts_cmd(
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """The operator's accounts."""
    from trustkit.inventory import list_account_rows

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    emit([r.to_json() for r in list_account_rows(ws, op)], as_json=as_json, title=f"accounts of {op}")


def list_users_cmd(
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """The account's users (role: the scoped signing key that issued one)."""
    from trustkit.inventory import list_user_rows

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    acct = pick_account(ws, op, account)
    emit([r.to_json() for r in list_user_rows(ws, op, acct)], as_json=as_json, title=f"users of {acct}")


def list_keys_cmd(
    show_seeds: Annotated[
        bool, typer.Option("--show-seeds", "-S", help="Also print the seeds (secrets).")
    ] = False,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Public keys in the keystore or used by entities: kind, users, whether the seed is stored.

    Seeds are printed only with --show-seeds."""
    from trustkit.inventory import list_keys

    ws = workspace(config_dir, data_dir, keystore_dir)
    emit([r.to_json() for r in list_keys(ws, show_seeds=show_seeds)], as_json=as_json, title="keys")
