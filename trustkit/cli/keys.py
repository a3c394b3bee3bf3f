"""``generate nkey``, ``keys export``, ``keys import``."""

from __future__ import annotations

from typing import Annotated

import typer

from trustkit.cli.common import DIRS, OPERATOR, DirOptions, JsonFlag, OperatorOptions, pick_account
from trustkit.cli.output import emit, fail


def generate_nkey_cmd(
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


def keys_export_cmd(
    directory: Annotated[
        str, typer.Option("--dir", "-d", help="Directory to write <PUB>.nk files to (0600).")
    ],
    all_keys: Annotated[
        bool,
        typer.Option(
            "--all", "-A", help="Operator, every account and every user (not just the current account)."
        ),
    ] = False,
    account: Annotated[str | None, typer.Option("--account", help="Only this account and its users.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user.")] = None,
    operators: Annotated[bool, typer.Option("--operators", "-o", help="Export operator keys.")] = False,
    accounts: Annotated[bool, typer.Option("--accounts", "-a", help="Export account keys.")] = False,
    users: Annotated[bool, typer.Option("--users", "-u", help="Export user keys.")] = False,
    curves: Annotated[bool, typer.Option("--curves", help="Export curve (xkey) keys.")] = False,
    key_filter: Annotated[str, typer.Option("--filter", "-f", help="Only keys containing this text.")] = "",
    not_referenced: Annotated[
        bool, typer.Option("--not-referenced", help="Keys of the keystore no entity of the operator uses.")
    ] = False,
    remove: Annotated[
        bool, typer.Option("--remove", "-R", help="Delete each seed from the keystore once exported.")
    ] = False,
    include_jwts: Annotated[
        bool,
        typer.Option(
            "--include-jwts", help="Also write the JWT of each operator, account and user as <PUB>.jwt."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-F", help="Overwrite files of the directory that hold something else.")
    ] = False,
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """Export seeds of the operator's entities to a directory (as `nsc export keys`).

    By default: the operator, the current account and its users; --all: every account.
    --operators/--accounts/--users/--curves choose kinds (then every account unless --account).
    A seed already exported is left as it is; a file holding anything else refuses the export
    (nothing is written) unless --force, which replaces it (0600).
    --include-jwts also copies the entities' JWTs (0600, as nsc; --remove leaves them in the
    store). The output names keys and files, never seeds."""
    from trustkit.errors import StoreError
    from trustkit.manage import export_keys

    ws, op = where.open()
    kinds = [
        k
        for k, on in (("operator", operators), ("account", accounts), ("user", users), ("curve", curves))
        if on
    ]
    if not kinds and not all_keys and account is None:
        try:  # nsc: no kind chosen = the current account's keys
            account = pick_account(ws, op, None)
        except StoreError:
            account = None
    rows = export_keys(
        ws,
        op,
        directory,
        account=account,
        user=user,
        kinds=kinds or ("operator", "account", "user", "curve"),
        not_referenced=not_referenced,
        key_filter=key_filter,
        remove=remove,
        include_jwts=include_jwts,
        force=force,
    )
    emit([r.to_json() for r in rows], as_json=as_json, title=f"keys exported to {directory}")


def keys_import_cmd(
    directory: Annotated[str, typer.Option("--dir", "-d", help="Directory holding .nk seed files.")],
    recurse: Annotated[bool, typer.Option("--recurse", "-R", help="Also read subdirectories.")] = False,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Import every .nk seed file of a directory into the keystore (as `nsc import keys`).

    Every file is checked before anything is stored; a stored key is never replaced by a
    different seed. The output names keys and files, never seeds."""
    from trustkit.manage import import_keys

    rows = import_keys(dirs.workspace(), directory, recurse=recurse)
    emit([r.to_json() for r in rows], as_json=as_json, title=f"keys imported from {directory}")
