"""``env`` and ``select operator|account``: where things are, and the current selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from trustkit.cli.common import (
    ConfigDir,
    DataDir,
    JsonFlag,
    KeystoreDir,
    OperatorOpt,
    pick_operator,
    workspace,
)
from trustkit.cli.output import emit

if TYPE_CHECKING:
    from trustkit.store import Context


def env_cmd(
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Where the config, stores and keys are, the context, and the default operator/account.

    Each directory comes with the rule that chose it (argument, TRUSTKIT_HOME, NSC_HOME, …)."""
    from trustkit.inventory import environment_report
    from trustkit.manage import environment

    ws = workspace(config_dir, data_dir, keystore_dir)
    emit(environment_report(ws, environment()), as_json=as_json, title="trustkit env")


def _ctx_json(ctx: Context) -> dict[str, str]:
    return {"store_root": ctx.store_root, "operator": ctx.operator, "account": ctx.account}


def select_operator_cmd(
    name: Annotated[str, typer.Argument(help="Operator name.")],
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Make NAME the current operator (written to the context file)."""
    from trustkit.manage import select_operator

    ws = workspace(config_dir, data_dir, keystore_dir)
    emit(_ctx_json(select_operator(ws, name)), as_json=as_json, title="context")


def select_account_cmd(
    name: Annotated[str, typer.Argument(help="Account name.")],
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Make NAME the current account (and its operator the current operator)."""
    from trustkit.manage import select_account

    ws = workspace(config_dir, data_dir, keystore_dir)
    emit(_ctx_json(select_account(ws, pick_operator(ws, operator), name)), as_json=as_json, title="context")
