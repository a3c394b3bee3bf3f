"""``trustkit`` entry point: the typer app and its command groups."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from trustkit.cli.output import emit, fail
from trustkit.errors import TrustkitError, exit_status

__all__ = ["app", "main"]

app = typer.Typer(
    name="trustkit",
    help="Decentralized NATS security: operators, accounts, users, keys and JWTs (nsc-compatible).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
generate_app = typer.Typer(help="Generate keys, creds and configs.", no_args_is_help=True)
describe_app = typer.Typer(help="Describe JWTs.", no_args_is_help=True)
add_app = typer.Typer(help="Add accounts and users.", no_args_is_help=True)
revocations_app = typer.Typer(help="Revoke users.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
app.add_typer(describe_app, name="describe")
app.add_typer(add_app, name="add")
app.add_typer(revocations_app, name="revocations")

F = TypeVar("F", bound=Callable[..., Any])

JsonFlag = Annotated[bool, typer.Option("--json", "-J", help="Machine-readable JSON on stdout.")]


def handles_errors(fn: F) -> F:
    """Turn library errors into one stderr line and the exit status of their class."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TrustkitError as exc:
            fail(exc.message, exit_status(exc))

    return wrapper  # type: ignore[return-value]


@generate_app.command("nkey")
@handles_errors
def generate_nkey(
    operator: Annotated[bool, typer.Option("--operator", "-o", help="An operator key (O…).")] = False,
    account: Annotated[bool, typer.Option("--account", "-a", help="An account key (A…).")] = False,
    user: Annotated[bool, typer.Option("--user", "-u", help="A user key (U…).")] = False,
    curve: Annotated[bool, typer.Option("--curve", "-x", help="A curve (xkey) key (X…).")] = False,
    server: Annotated[bool, typer.Option("--server", help="A server key (N…).")] = False,
    show_seeds: Annotated[
        bool, typer.Option("--show-seeds", "-S", help="Print the seed (a secret).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Generate an nkey. The seed is printed only with --show-seeds."""
    from trustkit.nkeys import KeyPair, PrefixByte

    chosen = [
        k
        for k, flag in (
            (PrefixByte.OPERATOR, operator),
            (PrefixByte.ACCOUNT, account),
            (PrefixByte.USER, user),
            (PrefixByte.CURVE, curve),
            (PrefixByte.SERVER, server),
        )
        if flag
    ]
    if len(chosen) != 1:
        fail("choose exactly one key kind: --operator, --account, --user, --curve or --server", 2)
    if not show_seeds:
        fail("refusing to generate a key whose seed would be lost: add --show-seeds to print it", 2)
    kp = KeyPair.generate(chosen[0])
    emit({"kind": kp.kind.label, "public_key": kp.public_key, "seed": kp.seed}, as_json=as_json)


@describe_app.command("jwt")
@handles_errors
def describe_jwt(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="A JWT, decorated JWT or creds file ('-': stdin).")
    ],
    raw: Annotated[bool, typer.Option("--raw", "-R", help="Print the token itself.")] = False,
    field: Annotated[str | None, typer.Option("--field", "-F", help="Print one field (dotted path).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify and describe a JWT: its claims, and validation errors, warnings and time checks."""
    from trustkit.creds import parse_decorated_jwt
    from trustkit.jwt import decode

    data = sys.stdin.read() if str(file) == "-" else _read(file)
    token = parse_decorated_jwt(data)
    claims = decode(token)
    if raw:
        sys.stdout.write(token + "\n")
        return
    payload = claims.payload_json()
    if field is not None:
        value: Any = payload
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                fail(f"field {field!r} not found", 4)
            value = value[part]
        emit({field: value}, as_json=as_json)
        return
    vr = claims.validate(now=int(time.time()))
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


def _register() -> None:
    from trustkit.cli import entities, push

    app.command("init")(handles_errors(entities.init_cmd))
    add_app.command("account")(handles_errors(entities.add_account_cmd))
    add_app.command("user")(handles_errors(entities.add_user_cmd))
    generate_app.command("creds")(handles_errors(entities.generate_creds_cmd))
    generate_app.command("config")(handles_errors(entities.generate_config_cmd))
    app.command("push")(handles_errors(push.push_cmd))
    revocations_app.command("add-user")(handles_errors(push.revocations_add_user_cmd))


_register()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
