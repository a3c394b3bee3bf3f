"""``env`` and ``select operator|account``: where things are, and the current selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from trustkit.cli.common import DIRS, OPERATOR, DirOptions, JsonFlag, OperatorOptions
from trustkit.cli.output import emit

if TYPE_CHECKING:
    from trustkit.store import Context


def env_cmd(dirs: DirOptions = DIRS, as_json: JsonFlag = False) -> None:
    """Where the config, stores and keys are, the context, and the default operator/account.

    Each directory comes with the rule that chose it (argument, TRUSTKIT_HOME, NSC_HOME, …)."""
    from trustkit.inventory import environment_report
    from trustkit.manage import environment

    emit(environment_report(dirs.workspace(), environment()), as_json=as_json, title="trustkit env")


def _ctx_json(ctx: Context) -> dict[str, str]:
    return {"store_root": ctx.store_root, "operator": ctx.operator, "account": ctx.account}


def select_operator_cmd(
    name: Annotated[str, typer.Argument(help="Operator name.")],
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Make NAME the current operator (written to the context file)."""
    from trustkit.manage import select_operator

    emit(_ctx_json(select_operator(dirs.workspace(), name)), as_json=as_json, title="context")


def select_account_cmd(
    name: Annotated[str, typer.Argument(help="Account name.")],
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """Make NAME the current account (and its operator the current operator)."""
    from trustkit.manage import select_account

    ws, op = where.open()
    emit(_ctx_json(select_account(ws, op, name)), as_json=as_json, title="context")
