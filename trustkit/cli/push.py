"""``push`` and ``revocations``: apply store changes to running servers."""

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
    now,
    pick_account,
    pick_operator,
    workspace,
)
from trustkit.cli.output import emit, fail


def push_cmd(
    all_accounts: Annotated[bool, typer.Option("--all", "-A", help="Push every account.")] = False,
    account: AccountOpt = None,
    url: Annotated[str | None, typer.Option("--account-jwt-server-url", "-u", help="nats:// URL.")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Stop waiting for replies after this many seconds without one.")
    ] = 1.0,
    servers: Annotated[
        int | None, typer.Option("--servers", help="Stop waiting once this many servers answered.")
    ] = None,
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Push account JWTs to servers with a nats-based resolver; one row per server that answered."""
    import asyncio

    from trustkit.manage import push_user
    from trustkit.push import push_accounts

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    store = ws.open(op)
    op_claims = store.operator_claims()
    target = url or (op_claims.operator_service_urls[0] if op_claims.operator_service_urls else None)
    if not target:
        fail("no server URL: pass -u nats://host:port or set the operator's service URL", 2)
    names = store.list_accounts() if all_accounts else [pick_account(ws, op, account)]
    user_jwt, user_key = push_user(ws, op, now=now())
    tokens = [store.read_account_jwt(n) for n in names]
    rows = asyncio.run(
        push_accounts(
            target, tokens, user_jwt=user_jwt, user_key=user_key, timeout=timeout, expected_servers=servers
        )
    )
    by_key = {store.account_claims(n).sub: n for n in names}
    out = [
        {
            "account": by_key.get(r.account, r.account),
            "server": r.server,
            "code": r.code,
            "message": r.message,
        }
        for r in rows
    ]
    emit(out, as_json=as_json, title=f"push to {target}")
    if any(r.code != 200 for r in rows):
        raise typer.Exit(7)


def revocations_add_user_cmd(
    name: Annotated[str | None, typer.Option("--name", "-n", help="User name.")] = None,
    public_key: Annotated[str | None, typer.Option("--user-public-key", "-u", help="U… key or '*'.")] = None,
    at: Annotated[
        int, typer.Option("--at", help="Revoke what was issued at or before (unix s; 0 = now).")
    ] = 0,
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a user in its account JWT (then ``trustkit push`` applies it live)."""
    from trustkit.manage import revoke_user

    if (name is None) == (public_key is None):
        fail("name exactly one of --name or --user-public-key", 2)
    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    t = now()
    report = revoke_user(
        ws, op, pick_account(ws, op, account), user=name, public_key=public_key, at=at or t, now=t
    )
    emit(report.to_json(), as_json=as_json)


def revocations_list_users_cmd(
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """The account's user revocations: users issued at or before revoked_at are refused."""
    from trustkit.inventory import list_revocations

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    acct = pick_account(ws, op, account)
    emit(
        [r.to_json() for r in list_revocations(ws, op, acct)], as_json=as_json, title=f"revocations of {acct}"
    )


def revocations_delete_user_cmd(
    name: Annotated[str | None, typer.Option("--name", "-n", help="User name.")] = None,
    public_key: Annotated[str | None, typer.Option("--user-public-key", "-u", help="U… key or '*'.")] = None,
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Remove a user's revocation from its account JWT (then ``trustkit push`` applies it)."""
    from trustkit.manage import delete_revocation

    if (name is None) == (public_key is None):
        fail("name exactly one of --name or --user-public-key", 2)
    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    report = delete_revocation(
        ws, op, pick_account(ws, op, account), user=name, public_key=public_key, now=now()
    )
    emit(report.to_json(), as_json=as_json)
