"""``edit account``, ``add signing-key``, ``delete user``."""

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
    parse_size,
    permission_args,
    pick_account,
    pick_operator,
    workspace,
)
from trustkit.cli.output import emit, fail


def edit_account_cmd(
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Account (default: the context's).")
    ] = None,
    operator: OperatorOpt = None,
    conns: Annotated[
        str | None, typer.Option("--conns", help="Max client connections (-1 = unlimited).")
    ] = None,
    leaf_conns: Annotated[
        str | None, typer.Option("--leaf-conns", help="Max leafnode connections (-1 = unlimited).")
    ] = None,
    data: Annotated[str | None, typer.Option("--data", help="Max data bytes (-1 = unlimited; 1G…).")] = None,
    payload: Annotated[
        str | None, typer.Option("--payload", help="Max message payload bytes (-1 = unlimited).")
    ] = None,
    subscriptions: Annotated[
        str | None, typer.Option("--subscriptions", help="Max subscriptions (-1 = unlimited).")
    ] = None,
    imports: Annotated[str | None, typer.Option("--imports", help="Max imports (-1 = unlimited).")] = None,
    exports: Annotated[str | None, typer.Option("--exports", help="Max exports (-1 = unlimited).")] = None,
    disallow_bearer: Annotated[
        bool | None,
        typer.Option("--disallow-bearer/--allow-bearer", help="Refuse (or allow again) bearer-token users."),
    ] = None,
    sk: Annotated[
        list[str] | None,
        typer.Option("--sk", help="Add a signing key: 'generate' (new key, seed stored) or a public key."),
    ] = None,
    rm_sk: Annotated[list[str] | None, typer.Option("--rm-sk", help="Remove a signing key.")] = None,
    js_tier: Annotated[
        int | None,
        typer.Option(
            "--js-tier", help="Apply the --js-* limits to tier R<N> (0: the global block, the default)."
        ),
    ] = None,
    js_mem_storage: Annotated[
        str | None, typer.Option("--js-mem-storage", help="JetStream memory bytes (-1 = unlimited, 0 = off).")
    ] = None,
    js_disk_storage: Annotated[
        str | None, typer.Option("--js-disk-storage", help="JetStream disk bytes (-1 = unlimited, 0 = off).")
    ] = None,
    js_streams: Annotated[
        str | None, typer.Option("--js-streams", help="Max streams (-1 = unlimited).")
    ] = None,
    js_consumer: Annotated[
        str | None, typer.Option("--js-consumer", help="Max consumers (-1 = unlimited).")
    ] = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an account's limits, JetStream limits and signing keys; re-signed by the operator."""
    from trustkit.manage import AccountEdit, edit_account

    sks = sk or []
    edit = AccountEdit(
        conns=parse_size(conns),
        leaf_conns=parse_size(leaf_conns),
        data=parse_size(data),
        payload=parse_size(payload),
        subscriptions=parse_size(subscriptions),
        imports=parse_size(imports),
        exports=parse_size(exports),
        disallow_bearer=disallow_bearer,
        js_tier=js_tier,
        js_mem_storage=parse_size(js_mem_storage),
        js_disk_storage=parse_size(js_disk_storage),
        js_streams=parse_size(js_streams),
        js_consumer=parse_size(js_consumer),
        generate_signing_keys=sum(1 for k in sks if k == "generate"),
        add_signing_keys=[k for k in sks if k != "generate"],
        remove_signing_keys=rm_sk or [],
    )
    if edit.is_empty():
        fail("nothing to change: give at least one edit option (see --help)", 2)
    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    report = edit_account(ws, op, pick_account(ws, op, name), edit, now=now())
    emit(report.to_json(), as_json=as_json)


def add_signing_key_cmd(
    role: Annotated[str, typer.Option("--role", help="Role name; `add user -K <role>` signs with the key.")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    allow_pub: Annotated[
        list[str] | None, typer.Option("--allow-pub", help="Template: subjects users may publish.")
    ] = None,
    allow_sub: Annotated[
        list[str] | None, typer.Option("--allow-sub", help="Template: subjects users may subscribe.")
    ] = None,
    allow_pubsub: Annotated[list[str] | None, typer.Option("--allow-pubsub", help="Template: both.")] = None,
    deny_pub: Annotated[
        list[str] | None, typer.Option("--deny-pub", help="Template: subjects denied for publish.")
    ] = None,
    deny_sub: Annotated[
        list[str] | None, typer.Option("--deny-sub", help="Template: subjects denied for subscribe.")
    ] = None,
    deny_pubsub: Annotated[list[str] | None, typer.Option("--deny-pubsub", help="Template: both.")] = None,
    allow_pub_response: Annotated[
        int | None, typer.Option("--allow-pub-response", help="Template: allow N responses to requests.")
    ] = None,
    response_ttl: Annotated[
        str | None, typer.Option("--response-ttl", help="Template: how long responses may be sent.")
    ] = None,
    bearer: Annotated[bool, typer.Option("--bearer", help="Template: users are bearer tokens.")] = False,
    description: Annotated[str, typer.Option("--description", help="What the key is for.")] = "",
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a scoped signing key with a permission template, in one step.

    Generates the key, adds a user scope with this template (--allow-*/--deny-* as for users)
    and re-signs the account. Users signed with it (add user -K <role>) carry no permissions:
    the server applies the template."""
    from trustkit.manage import add_signing_key

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    report = add_signing_key(
        ws,
        op,
        pick_account(ws, op, account),
        role=role,
        now=now(),
        **permission_args(
            allow_pub,
            allow_sub,
            allow_pubsub,
            deny_pub,
            deny_sub,
            deny_pubsub,
            allow_pub_response,
            response_ttl,
            bearer,
        ),
        description=description,
    )
    emit(report.to_json(), as_json=as_json)


def delete_user_cmd(
    name: Annotated[list[str], typer.Option("--name", "-n", help="User name (repeat for several).")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    revoke: Annotated[
        bool, typer.Option("--revoke", "-R", help="Also revoke them in the account JWT (push it after).")
    ] = False,
    rm_nkey: Annotated[bool, typer.Option("--rm-nkey", "-D", help="Also delete their seeds.")] = False,
    rm_creds: Annotated[
        bool, typer.Option("--rm-creds", "-C", help="Also delete their creds files.")
    ] = False,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete users from the store (--revoke: also revoke them in the account JWT).

    A revoked user's JWT stops working wherever it was copied once the account is pushed."""
    from trustkit.manage import delete_users

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    rows = delete_users(
        ws,
        op,
        pick_account(ws, op, account),
        name,
        now=now(),
        revoke=revoke,
        remove_nkey=rm_nkey,
        remove_creds=rm_creds,
    )
    emit([r.to_json() for r in rows], as_json=as_json)
