"""``push`` and ``revocations``: apply store changes to running servers."""

from __future__ import annotations

import asyncio
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
        float, typer.Option("--timeout", help="Seconds to wait for replies per account.")
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
    from trustkit.push import push_accounts, temporary_push_user

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    store = ws.open(op)
    op_claims = store.operator_claims()
    target = url or (op_claims.operator_service_urls[0] if op_claims.operator_service_urls else None)
    if not target:
        fail("no server URL: pass -u nats://host:port or set the operator's service URL", 2)
    names = store.list_accounts() if all_accounts else [pick_account(ws, op, account)]
    sys_name = store.find_account(op_claims.system_account) if op_claims.system_account else None
    if sys_name is None:
        fail(f"operator {op!r} has no system account in the store: cannot push", 3)
    sys_claims = store.account_claims(sys_name)
    signer = None
    for key, scope in sorted(sys_claims.signing_keys.items()):
        if scope is None and (kp := ws.keystore.get_key(key)) is not None:
            signer = kp
            break
    if signer is None and not op_claims.strict_signing_key_usage:
        signer = ws.keystore.get_key(sys_claims.sub)
    if signer is None:
        fail("no unscoped system-account key in the keystore to mint the push user", 3)
    user_jwt, user_key = temporary_push_user(sys_claims.sub, signer, now=now())
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
