"""``init``, ``add account``, ``add user``, ``generate creds``, ``generate config``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trustkit.cli.common import (
    ACCOUNT,
    DIRS,
    OPERATOR,
    AccountOpt,
    AccountOptions,
    AllowPubResponse,
    DirOptions,
    ExpiryOpt,
    JsonFlag,
    OperatorOpt,
    OperatorOptions,
    PermissionFlags,
    ResponseTtl,
    Strings,
    UserName,
    now,
    open_account,
    open_operator,
    parse_expiry,
)
from trustkit.cli.output import emit, fail


def init_cmd(
    name: Annotated[str, typer.Option("--name", "-n", help="Operator name.")],
    service_url: Annotated[
        str, typer.Option("--url", "-u", help="Operator service URL.")
    ] = "nats://localhost:4222",
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Create an operator, its SYS account and user, and an account and user of the same name."""
    from trustkit.manage import init, select_operator

    ws = dirs.workspace()
    report = init(ws, name, now=now(), service_url=service_url)
    select_operator(ws, name)  # its one account besides SYS (named like it) becomes the current one
    emit(report.to_json(), as_json=as_json, title=f"operator {name}")


def add_operator_cmd(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Operator name (with -u: default the JWT's).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", "-u", help="Import a managed operator: its JWT from a file or http(s) URL."),
    ] = None,
    generate_signing_key: Annotated[
        bool, typer.Option("--generate-signing-key", help="Also create an operator signing key.")
    ] = False,
    sys_account: Annotated[
        bool,
        typer.Option("--sys", "-s", help="Also create the system account SYS and its user (as init does)."),
    ] = False,
    start: Annotated[
        str | None, typer.Option("--start", help="Valid from: 0, yyyy-mm-dd, unix seconds or a duration.")
    ] = None,
    expiry: ExpiryOpt = None,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Add an operator (a new store); --sys adds its system account, --generate-signing-key an
    operator signing key (which then signs SYS); --url imports a managed operator (its JWT only).
    Selects it as the current operator."""
    from trustkit.manage import add_operator, import_operator, select_operator

    ws = dirs.workspace()
    t = now()
    if url is not None:
        if sys_account or generate_signing_key or start or expiry:
            fail("--url imports an operator: --sys, --generate-signing-key, --start and --expiry do not apply", 2)
        report = import_operator(ws, url, name=name)
        name = report.entities[0].name
    elif not name:
        fail("name the operator with --name (or import one with --url)", 2)
    else:
        report = add_operator(
            ws,
            name,
            now=t,
            system_account=sys_account,
            signing_key=generate_signing_key,
            start=parse_expiry(start, now=t),
            expiry=parse_expiry(expiry, now=t),
        )
    assert name is not None
    select_operator(ws, name)
    emit(report.to_json(), as_json=as_json, title=f"operator {name}")


def add_account_cmd(
    name: Annotated[str, typer.Option("--name", "-n", help="Account name.")],
    operator: OperatorOpt = None,
    signing_key: Annotated[bool, typer.Option("--sk", help="Also create one signing key.")] = False,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Add an account signed by the operator."""
    from trustkit.manage import add_account

    ws, op = open_operator(dirs, operator)
    emit(add_account(ws, op, name, now=now(), signing_key=signing_key).to_json(), as_json=as_json)


class UserPermissions(PermissionFlags):
    """The permission flags of ``add user``."""

    allow_pub: Annotated[Strings, typer.Option("--allow-pub", help="Subjects the user may publish.")] = None
    allow_sub: Annotated[Strings, typer.Option("--allow-sub", help="Subjects the user may subscribe.")] = None
    allow_pubsub: Annotated[Strings, typer.Option("--allow-pubsub", help="Both.")] = None
    deny_pub: Annotated[Strings, typer.Option("--deny-pub", help="Subjects denied for publish.")] = None
    deny_sub: Annotated[Strings, typer.Option("--deny-sub", help="Subjects denied for subscribe.")] = None
    deny_pubsub: Annotated[Strings, typer.Option("--deny-pubsub", help="Both.")] = None
    allow_pub_response: AllowPubResponse = None
    response_ttl: ResponseTtl = None
    bearer: Annotated[
        bool, typer.Option("--bearer", help="No nonce signature needed (bearer token).")
    ] = False


USER_PERMISSIONS = UserPermissions()


def add_user_cmd(
    name: UserName,
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    permissions: UserPermissions = USER_PERMISSIONS,
    expiry: Annotated[
        str | None, typer.Option("--expiry", help="0, yyyy-mm-dd, or #s/#m/#h/#d/#w/#M/#y.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tags (lower-cased).")] = None,
    signing_key: Annotated[
        str | None,
        typer.Option(
            "--private-key",
            "-K",
            help="Sign with this account signing key: the role of a scoped key, or a public key.",
        ),
    ] = None,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Add a user issued by the account or a signing key (-K); its creds go to the keystore.

    A user signed by a scoped key (-K <role>) carries no permissions: the server applies the
    scope's template. The creds file is written 0600."""
    from trustkit.manage import add_user

    ws, op, acct = open_account(dirs, operator, account)
    t = now()
    report = add_user(
        ws,
        op,
        acct,
        name,
        now=t,
        **permissions.args(),
        expiry=parse_expiry(expiry, now=t),
        tags=tag or [],
        signing_key=signing_key,
    )
    emit(report.to_json(), as_json=as_json)


def generate_creds_cmd(
    name: UserName,
    output: Annotated[
        str, typer.Option("--output-file", "-o", help="File to write (0600), or '-' for stdout.")
    ],
    where: AccountOptions = ACCOUNT,
) -> None:
    """Write a user's creds file (its JWT and seed: a secret, written only where you say)."""
    from trustkit.manage import user_creds
    from trustkit.store.fsio import atomic_write

    ws, op, acct = where.open()
    data = user_creds(ws, op, acct, name)
    if output == "-":
        sys.stdout.write(data.decode())
    else:
        atomic_write(Path(output), data, mode=0o600)


def generate_config_cmd(
    mem_resolver: Annotated[
        bool, typer.Option("--mem-resolver", help="resolver: MEMORY with preloads.")
    ] = False,
    nats_resolver: Annotated[bool, typer.Option("--nats-resolver", help="nats-based full resolver.")] = False,
    nats_resolver_cache: Annotated[
        bool, typer.Option("--nats-resolver-cache", help="nats-based cache.")
    ] = False,
    config_file: Annotated[
        str | None, typer.Option("--config-file", help="Write here instead of stdout.")
    ] = None,
    jwt_dir: Annotated[str, typer.Option("--dir", help="Resolver directory.")] = "./jwt",
    where: OperatorOptions = OPERATOR,
) -> None:
    """nats-server configuration for the operator (the real nats-server starts it unmodified)."""
    from trustkit.manage import server_config
    from trustkit.store.fsio import atomic_write

    modes = [
        m for m, f in (("mem", mem_resolver), ("full", nats_resolver), ("cache", nats_resolver_cache)) if f
    ]
    if len(modes) != 1:
        fail("choose one of --mem-resolver, --nats-resolver, --nats-resolver-cache", 2)
    ws, op = where.open()
    text = server_config(ws, op, modes[0], directory=jwt_dir)
    if config_file:
        atomic_write(Path(config_file), text.encode(), mode=0o600)
    else:
        sys.stdout.write(text)
