"""``trustkit`` entry point: the typer app and its command groups.

Commands are registered by name and built on first use: typer turns a function into a click
command by evaluating its signature and annotations (about 1.5 ms per command), and it used to do
that for every command on every call. Here only the command that runs is imported and built
(``--help`` builds the ones it lists), so start-up time does not grow with the number of commands.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, ClassVar, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from trustkit.cli.output import fail
from trustkit.errors import TrustkitError, exit_status

__all__ = ["COMMANDS", "OPTIONAL_VALUE", "NscCommand", "app", "main", "optional_values"]

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(fn: F) -> F:
    """Turn library errors into one stderr line and the exit status of their class."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrustkitError as exc:
            fail(exc.message, exit_status(exc))

    return wrapper  # type: ignore[return-value]


#: group ("" = top level) → command name → (module in trustkit.cli, function)
COMMANDS: dict[str, dict[str, tuple[str, str]]] = {
    "": {
        "init": ("entities", "init_cmd"),
        "push": ("push", "push_cmd"),
        "pull": ("push", "pull_cmd"),
        "rotate": ("rotate", "rotate_cmd"),
        "env": ("context", "env_cmd"),
        "expirations": ("check", "expirations_cmd"),
        "validate": ("check", "validate_cmd"),
    },
    "add": {
        "operator": ("entities", "add_operator_cmd"),
        "account": ("entities", "add_account_cmd"),
        "user": ("entities", "add_user_cmd"),
        "signing-key": ("edit", "add_signing_key_cmd"),
        "export": ("sharing", "add_export_cmd"),
        "import": ("sharing", "add_import_cmd"),
        "mapping": ("sharing", "add_mapping_cmd"),
    },
    "edit": {
        "account": ("edit", "edit_account_cmd"),
        "export": ("sharing", "edit_export_cmd"),
        "operator": ("edit", "edit_operator_cmd"),
        "user": ("edit", "edit_user_cmd"),
        "signing-key": ("edit", "edit_signing_key_cmd"),
        "authcallout": ("edit", "edit_authcallout_cmd"),
    },
    "delete": {
        "account": ("edit", "delete_account_cmd"),
        "user": ("edit", "delete_user_cmd"),
        "export": ("sharing", "delete_export_cmd"),
        "import": ("sharing", "delete_import_cmd"),
        "mapping": ("sharing", "delete_mapping_cmd"),
    },
    "describe": {
        "jwt": ("describe", "describe_jwt_cmd"),
        "operator": ("describe", "describe_operator_cmd"),
        "account": ("describe", "describe_account_cmd"),
        "user": ("describe", "describe_user_cmd"),
    },
    "list": {
        "operators": ("listing", "list_operators_cmd"),
        "accounts": ("listing", "list_accounts_cmd"),
        "users": ("listing", "list_users_cmd"),
        "keys": ("listing", "list_keys_cmd"),
    },
    "generate": {
        "nkey": ("keys", "generate_nkey_cmd"),
        "creds": ("entities", "generate_creds_cmd"),
        "config": ("entities", "generate_config_cmd"),
        "activation": ("sharing", "generate_activation_cmd"),
    },
    "revocations": {
        "add-user": ("push", "revocations_add_user_cmd"),
        "list-users": ("push", "revocations_list_users_cmd"),
        "delete-user": ("push", "revocations_delete_user_cmd"),
        "add-activation": ("sharing", "revocations_add_activation_cmd"),
        "list-activations": ("sharing", "revocations_list_activations_cmd"),
        "delete-activation": ("sharing", "revocations_delete_activation_cmd"),
    },
    "keys": {
        "export": ("keys", "keys_export_cmd"),
        "import": ("keys", "keys_import_cmd"),
    },
    "select": {
        "operator": ("context", "select_operator_cmd"),
        "account": ("context", "select_account_cmd"),
    },
}

GROUP_HELP = {
    "add": "Add operators, accounts, users, scoped signing keys, exports, imports and mappings.",
    "edit": "Edit the operator, accounts, users, signing keys, auth callout and exports.",
    "delete": "Delete accounts, users (optionally revoking them), exports, imports and mappings.",
    "describe": "Describe JWTs: a file, or an operator, account or user of the store.",
    "list": "List operators, accounts, users and keys.",
    "generate": "Generate keys, creds, configs and activations.",
    "revocations": "Revoke users and activations, list and remove revocations.",
    "keys": "Export and import seeds (nsc export keys / import keys).",
    "select": "Set the current operator or account (the context).",
}

_BUILT: dict[tuple[str, str], Any] = {}

#: Options whose value is optional, as nsc declares them with cobra's ``NoOptDefVal``: the option
#: → the value the bare option stands for. Today only ``--allow-pub-response`` (nsc's default: 1
#: response), on ``add user``, ``edit user``, ``add signing-key`` and ``edit signing-key``.
OPTIONAL_VALUE: dict[str, str] = {"--allow-pub-response": "1"}


def optional_values(
    args: list[str], takes_value: Mapping[str, int], has_arguments: bool, ctx: Any = None
) -> list[str]:
    """``args`` with every bare option of :data:`OPTIONAL_VALUE` given its default value
    (``--allow-pub-response`` → ``--allow-pub-response=1``), for typer, which has no options
    with an optional value.

    This is pflag's rule for an option with ``NoOptDefVal``: only ``--opt=N`` sets the value;
    in ``--opt N`` the ``N`` is not its value but a positional argument. So ``nsc edit user -n
    bob --allow-pub-response 5`` allows 1 response, not 5 (nsc ignores the stray ``5``). A
    trustkit command without positional arguments refuses such a token with a hint to write
    ``--opt=N`` rather than give a count other than the one written. Tokens after ``--`` and
    tokens consumed as the value of another option (``takes_value``: option → how many values,
    e.g. ``--name --allow-pub-response`` names a user so) are left alone, as click and pflag
    both read them.
    """
    from typer._click.exceptions import UsageError

    out: list[str] = []
    skip = 0
    for i, arg in enumerate(args):
        if skip:
            skip -= 1
        elif arg == "--":
            out.extend(args[i:])
            break
        elif arg in OPTIONAL_VALUE:
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and (nxt == "-" or not nxt.startswith("-")) and not has_arguments:
                raise UsageError(
                    f"{arg} {nxt}: write {arg}={nxt} to give a value (as in nsc, a bare {arg} "
                    f"means {arg}={OPTIONAL_VALUE[arg]} and {nxt!r} is not its value)",
                    ctx=ctx,
                )
            arg = f"{arg}={OPTIONAL_VALUE[arg]}"
        elif arg.startswith("--"):
            skip = 0 if "=" in arg else takes_value.get(arg, 0)
        elif arg.startswith("-") and len(arg) > 1:  # -n bob, -nbob, -Jn bob
            for j, ch in enumerate(arg[1:], 2):
                if f"-{ch}" in takes_value:
                    skip = takes_value[f"-{ch}"] if j == len(arg) else 0
                    break
        out.append(arg)
    return out


class NscCommand(TyperCommand):
    """A typer command that reads options with an optional value as nsc does
    (:func:`optional_values`, applied before click parses the arguments)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value: dict[str, int] = {}
        has_arguments = False
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                has_arguments = True
            elif not getattr(param, "is_flag", False) and not getattr(param, "count", False):
                takes_value.update(dict.fromkeys([*param.opts, *param.secondary_opts], param.nargs))
        return super().parse_args(ctx, optional_values(args, takes_value, has_arguments, ctx))


def _build(name: str, module: str, attr: str) -> Any:
    """The click command for ``trustkit.cli.<module>.<attr>`` (imported and converted once; its
    option groups unfolded, see :class:`trustkit.cli.common.OptionGroup`)."""
    cmd = _BUILT.get((module, attr))
    if cmd is None:
        import importlib

        from trustkit.cli.common import unfold_option_groups

        fn = getattr(importlib.import_module(f"trustkit.cli.{module}"), attr)
        one = typer.Typer(add_completion=False)
        one.command(name, cls=NscCommand)(handles_errors(unfold_option_groups(fn)))
        cmd = _BUILT[(module, attr)] = typer.main.get_command(one)
    return cmd


class LazyGroup(TyperGroup):
    """A typer group whose commands (from :data:`COMMANDS`) are built when first asked for."""

    lazy: ClassVar[Mapping[str, tuple[str, str]]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            cmd = _build(cmd_name, *self.lazy[cmd_name])
            self.add_command(cmd, cmd_name)
        return cmd


def _lazy_group(group: str) -> type[TyperGroup]:
    return type(f"LazyGroup_{group or 'root'}", (LazyGroup,), {"lazy": COMMANDS[group]})


app = typer.Typer(
    name="trustkit",
    help="Decentralized NATS security: operators, accounts, users, keys and JWTs (nsc-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_lazy_group(""),
)
for _group, _help in GROUP_HELP.items():
    app.add_typer(
        typer.Typer(help=_help, no_args_is_help=True, cls=_lazy_group(_group)), name=_group, help=_help
    )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. A usage error (unknown option, missing argument…) is one line on stderr with
    exit status 2, like every other trustkit error, instead of click's boxed usage panel."""
    from typer._click.exceptions import ClickException, UsageError
    from typer.exceptions import Abort, Exit

    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="trustkit", standalone_mode=False)
    except Exit as exc:
        code = exc.exit_code
    except Abort:
        print("trustkit: aborted", file=sys.stderr)
        code = 1
    except UsageError as exc:
        if exc.__class__.__name__ != "NoArgsIsHelpError":  # its help text is already printed
            where = exc.ctx.command_path if exc.ctx is not None else "trustkit"
            message = " ".join(exc.format_message().split()).rstrip(".")
            print(f"{where}: {message[:1].lower()}{message[1:]} (see '{where} --help')", file=sys.stderr)
        code = exc.exit_code
    except ClickException as exc:
        print(f"trustkit: {' '.join(exc.format_message().split())}", file=sys.stderr)
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
