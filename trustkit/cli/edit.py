"""``edit account|operator|user|signing-key|authcallout``, ``add signing-key``, ``delete user``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from trustkit.cli.common import (
    AccountOpt,
    AllowPub,
    AllowPubResponse,
    AllowPubsub,
    AllowSub,
    Bearer,
    ConfigDir,
    ConnType,
    DataDir,
    DataOpt,
    DenyPub,
    DenyPubsub,
    DenySub,
    JsonFlag,
    KeystoreDir,
    Locale,
    OperatorOpt,
    PayloadOpt,
    ResponseTtl,
    RmConnType,
    RmPerm,
    RmResponsePerms,
    RmSourceNetwork,
    RmTime,
    SourceNetwork,
    SubsOpt,
    TimeOpt,
    now,
    parse_expiry,
    parse_size,
    permission_args,
    permission_edit,
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
    allow_pub_response: AllowPubResponse = None,
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


def delete_account_cmd(
    name: Annotated[str | None, typer.Option("--name", "-n", help="Account name.")] = None,
    operator: OperatorOpt = None,
    rm_nkey: Annotated[
        bool, typer.Option("--rm-nkey", "-D", help="Also delete the seeds of the account, its signing keys and users.")
    ] = False,
    rm_creds: Annotated[bool, typer.Option("--rm-creds", "-C", help="Also delete the users' creds files.")] = False,
    force: Annotated[bool, typer.Option("--force", "-F", help="Allow deleting the system account.")] = False,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete an account and its users from the store (servers keep it until
    `trustkit push --account-removal <key>`)."""
    from trustkit.manage import delete_account

    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    report = delete_account(
        ws, op, pick_account(ws, op, name), now=now(), remove_nkeys=rm_nkey, remove_creds=rm_creds, force=force
    )
    emit(report.to_json(), as_json=as_json)


# --- edit operator | user | signing-key | authcallout ------------------------------------------

TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Add a tag (lower-cased).")]
RmTagOpt = Annotated[list[str] | None, typer.Option("--rm-tag", help="Remove a tag.")]
StartOpt = Annotated[
    str | None,
    typer.Option("--start", help="Valid from: 0, yyyy-mm-dd, unix seconds or #s/#m/#h/#d/#w/#M/#y."),
]
ExpiryOpt = Annotated[
    str | None, typer.Option("--expiry", help="Expires: 0 (never), yyyy-mm-dd, unix seconds or a duration.")
]


def _claim_edit(
    tag: list[str] | None, rm_tag: list[str] | None, start: str | None, expiry: str | None
) -> Any:
    from trustkit.manage import ClaimEdit

    t = now()
    return ClaimEdit(
        tags=_split(tag),
        rm_tags=_split(rm_tag),
        start=None if start is None else parse_expiry(start, now=t),
        expiry=None if expiry is None else parse_expiry(expiry, now=t),
    )


def _split(values: list[str] | None) -> list[str]:
    """nsc's string-slice flags: repeatable, and each value may be a comma-separated list."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def edit_operator_cmd(
    operator: OperatorOpt = None,
    service_url: Annotated[
        list[str] | None, typer.Option("--service-url", "-n", help="Add a service URL (nats/tls/ws/wss).")
    ] = None,
    rm_service_url: Annotated[
        list[str] | None, typer.Option("--rm-service-url", help="Remove a service URL.")
    ] = None,
    account_jwt_server_url: Annotated[
        str | None, typer.Option("--account-jwt-server-url", "-u", help="Where push/pull go by default.")
    ] = None,
    rm_account_jwt_server_url: Annotated[
        bool, typer.Option("--rm-account-jwt-server-url", help="Clear the account server URL.")
    ] = False,
    sk: Annotated[
        list[str] | None,
        typer.Option("--sk", help="Add a signing key: 'generate' (new key, seed stored) or a public key."),
    ] = None,
    rm_sk: Annotated[
        list[str] | None,
        typer.Option("--rm-sk", help="Remove a signing key (accounts it issued are re-signed)."),
    ] = None,
    require_signing_keys: Annotated[
        bool | None,
        typer.Option(
            "--require-signing-keys/--no-require-signing-keys",
            help="Accounts and users must be issued by signing keys (strict signing key usage).",
        ),
    ] = None,
    system_account: Annotated[
        str | None, typer.Option("--system-account", help="The system account, by name or public key.")
    ] = None,
    tag: TagOpt = None,
    rm_tag: RmTagOpt = None,
    start: StartOpt = None,
    expiry: ExpiryOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Edit the operator: URLs, signing keys, strict mode, system account, tags, validity.

    Self-signed with the operator's identity key. Accounts issued by a removed signing key are
    re-signed with a key the operator still trusts."""
    from trustkit.manage import OperatorEdit, edit_operator

    sks = _split(sk)
    edit = OperatorEdit(
        service_urls=_split(service_url),
        rm_service_urls=_split(rm_service_url),
        account_server_url=account_jwt_server_url,
        rm_account_server_url=rm_account_jwt_server_url,
        generate_signing_keys=sum(1 for k in sks if k == "generate"),
        add_signing_keys=[k for k in sks if k != "generate"],
        remove_signing_keys=_split(rm_sk),
        require_signing_keys=require_signing_keys,
        system_account=system_account,
        claim=_claim_edit(tag, rm_tag, start, expiry),
    )
    if edit.is_empty():
        fail("nothing to change: give at least one edit option (see --help)", 2)
    ws = workspace(config_dir, data_dir, keystore_dir)
    emit(edit_operator(ws, pick_operator(ws, operator), edit, now=now()).to_json(), as_json=as_json)


def edit_user_cmd(
    name: Annotated[str, typer.Option("--name", "-n", help="User name.")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    allow_pub: AllowPub = None,
    allow_sub: AllowSub = None,
    allow_pubsub: AllowPubsub = None,
    deny_pub: DenyPub = None,
    deny_sub: DenySub = None,
    deny_pubsub: DenyPubsub = None,
    rm: RmPerm = None,
    allow_pub_response: AllowPubResponse = None,
    response_ttl: ResponseTtl = None,
    rm_response_perms: RmResponsePerms = False,
    bearer: Bearer = None,
    source_network: SourceNetwork = None,
    rm_source_network: RmSourceNetwork = None,
    time_range: TimeOpt = None,
    rm_time: RmTime = None,
    locale: Locale = None,
    conn_type: ConnType = None,
    rm_conn_type: RmConnType = None,
    subs: SubsOpt = None,
    data: DataOpt = None,
    payload: PayloadOpt = None,
    tag: TagOpt = None,
    rm_tag: RmTagOpt = None,
    start: StartOpt = None,
    expiry: ExpiryOpt = None,
    signing_key: Annotated[
        str | None,
        typer.Option("--private-key", "-K", help="Re-sign with this signing key (public key or role)."),
    ] = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Edit a user's permissions, limits, tags and validity; its creds are rewritten.

    Re-signed by the key that issued it (or -K). A revoked user is refused: re-signing would
    lift the revocation."""
    from trustkit.manage import edit_user

    edit = permission_edit(
        allow_pub, allow_sub, allow_pubsub, deny_pub, deny_sub, deny_pubsub, rm, allow_pub_response,
        response_ttl, rm_response_perms, bearer, source_network, rm_source_network, time_range, rm_time,
        locale, conn_type, rm_conn_type, subs, data, payload,
    )  # fmt: skip
    claim_edit = _claim_edit(tag, rm_tag, start, expiry)
    if edit.is_empty() and claim_edit.is_empty() and signing_key is None:
        fail("nothing to change: give at least one edit option (see --help)", 2)
    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    report = edit_user(
        ws,
        op,
        pick_account(ws, op, account),
        name,
        edit,
        now=now(),
        claim_edit=claim_edit,
        signing_key=signing_key,
    )
    emit(report.to_json(), as_json=as_json)


def edit_signing_key_cmd(
    sk: Annotated[str, typer.Option("--sk", help="The signing key: its public key or its role.")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Set the key's role.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the key is for.")] = None,
    allow_pub: AllowPub = None,
    allow_sub: AllowSub = None,
    allow_pubsub: AllowPubsub = None,
    deny_pub: DenyPub = None,
    deny_sub: DenySub = None,
    deny_pubsub: DenyPubsub = None,
    rm: RmPerm = None,
    allow_pub_response: AllowPubResponse = None,
    response_ttl: ResponseTtl = None,
    rm_response_perms: RmResponsePerms = False,
    bearer: Bearer = None,
    source_network: SourceNetwork = None,
    rm_source_network: RmSourceNetwork = None,
    time_range: TimeOpt = None,
    rm_time: RmTime = None,
    locale: Locale = None,
    conn_type: ConnType = None,
    rm_conn_type: RmConnType = None,
    subs: SubsOpt = None,
    data: DataOpt = None,
    payload: PayloadOpt = None,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Edit a scoped signing key's role and template, or make a signing key scoped.

    The template takes the flags of `edit user`. The account is re-signed by the operator; the
    server applies the template to the key's users once the account is pushed."""
    from trustkit.manage import edit_signing_key

    edit = permission_edit(
        allow_pub, allow_sub, allow_pubsub, deny_pub, deny_sub, deny_pubsub, rm, allow_pub_response,
        response_ttl, rm_response_perms, bearer, source_network, rm_source_network, time_range, rm_time,
        locale, conn_type, rm_conn_type, subs, data, payload,
    )  # fmt: skip
    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    report = edit_signing_key(
        ws, op, pick_account(ws, op, account), sk, edit, now=now(), role=role, description=description
    )
    emit(report.to_json(), as_json=as_json)


def edit_authcallout_cmd(
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    auth_user: Annotated[
        list[str] | None,
        typer.Option("--auth-user", help="Add a user (public key or name) that bypasses the callout."),
    ] = None,
    rm_auth_user: Annotated[
        list[str] | None, typer.Option("--rm-auth-user", help="Remove an auth user.")
    ] = None,
    allowed_account: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-account", help="Add an account (key, name or '*') the callout may place users in."
        ),
    ] = None,
    rm_allowed_account: Annotated[
        list[str] | None, typer.Option("--rm-allowed-account", help="Remove an allowed account.")
    ] = None,
    curve: Annotated[
        str | None,
        typer.Option("--curve", "-x", help="Encrypt requests for this curve key: 'generate' or an X… key."),
    ] = None,
    rm_curve: Annotated[bool, typer.Option("--rm-curve", help="Remove the curve key.")] = False,
    disable: Annotated[
        bool, typer.Option("--disable", help="Remove the whole callout configuration.")
    ] = False,
    config_dir: ConfigDir = None,
    data_dir: DataDir = None,
    keystore_dir: KeystoreDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Edit the account's auth callout: auth users, allowed accounts, curve key.

    Auth users are the callout service's own users; allowed accounts are where it may place
    users; requests are encrypted for the curve key. Re-signed by the operator."""
    from trustkit.manage import AuthCalloutEdit, edit_authcallout

    edit = AuthCalloutEdit(
        auth_users=_split(auth_user),
        rm_auth_users=_split(rm_auth_user),
        allowed_accounts=_split(allowed_account),
        rm_allowed_accounts=_split(rm_allowed_account),
        curve=curve,
        rm_curve=rm_curve,
        disable=disable,
    )
    if edit.is_empty():
        fail("nothing to change: give at least one edit option (see --help)", 2)
    ws = workspace(config_dir, data_dir, keystore_dir)
    op = pick_operator(ws, operator)
    emit(edit_authcallout(ws, op, pick_account(ws, op, account), edit, now=now()).to_json(), as_json=as_json)
