"""``edit account|operator|user|signing-key|authcallout``, ``add signing-key``, ``delete user``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from trustkit.cli.common import (
    DIRS,
    PERMISSION_EDIT,
    SUBJECT_PERMISSION_EDIT,
    AccountName,
    AccountOpt,
    AllowPubResponse,
    DataOpt,
    DirOptions,
    ExpiryOpt,
    JsonFlag,
    OperatorOpt,
    OptionGroup,
    PermissionEditOptions,
    PermissionFlags,
    Strings,
    SubjectPermissionEditOptions,
    UserName,
    nothing_to_change,
    now,
    open_account,
    open_operator,
    parse_expiry,
    parse_size,
    split_values,
)
from trustkit.cli.output import emit

if TYPE_CHECKING:
    from trustkit.manage import ClaimEdit

AddSigningKeys = Annotated[
    Strings,
    typer.Option("--sk", help="Add a signing key: 'generate' (new key, seed stored) or a public key."),
]


def _signing_keys(sks: list[str]) -> dict[str, Any]:
    """``--sk`` values as edit keywords: each ``generate`` a new key, the others public keys."""
    return {
        "generate_signing_keys": sum(1 for k in sks if k == "generate"),
        "add_signing_keys": [k for k in sks if k != "generate"],
    }


def edit_account_cmd(
    name: AccountName = None,
    operator: OperatorOpt = None,
    conns: Annotated[
        str | None, typer.Option("--conns", help="Max client connections (-1 = unlimited).")
    ] = None,
    leaf_conns: Annotated[
        str | None, typer.Option("--leaf-conns", help="Max leafnode connections (-1 = unlimited).")
    ] = None,
    data: DataOpt = None,
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
    sk: AddSigningKeys = None,
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
    default_permissions: SubjectPermissionEditOptions = SUBJECT_PERMISSION_EDIT,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Change an account's limits, JetStream limits, signing keys and default permissions;
    re-signed by the operator.

    The --allow-*/--deny-*/--rm/--allow-pub-response/--response-ttl flags (as for `edit user`)
    edit the account's default permissions: what the server gives a user of the account whose
    own JWT carries no permissions."""
    from trustkit.manage import AccountEdit, edit_account

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
        **_signing_keys(sk or []),
        remove_signing_keys=rm_sk or [],
        default_permissions=default_permissions.edit(),
    )
    if edit.is_empty():
        nothing_to_change()
    ws, op, acct = open_account(dirs, operator, name)
    emit(edit_account(ws, op, acct, edit, now=now()).to_json(), as_json=as_json)


class TemplatePermissions(PermissionFlags):
    """The permission flags of ``add signing-key``: the template of the scoped key."""

    allow_pub: Annotated[
        Strings, typer.Option("--allow-pub", help="Template: subjects users may publish.")
    ] = None
    allow_sub: Annotated[
        Strings, typer.Option("--allow-sub", help="Template: subjects users may subscribe.")
    ] = None
    allow_pubsub: Annotated[Strings, typer.Option("--allow-pubsub", help="Template: both.")] = None
    deny_pub: Annotated[
        Strings, typer.Option("--deny-pub", help="Template: subjects denied for publish.")
    ] = None
    deny_sub: Annotated[
        Strings, typer.Option("--deny-sub", help="Template: subjects denied for subscribe.")
    ] = None
    deny_pubsub: Annotated[Strings, typer.Option("--deny-pubsub", help="Template: both.")] = None
    allow_pub_response: AllowPubResponse = None
    response_ttl: Annotated[
        str | None, typer.Option("--response-ttl", help="Template: how long responses may be sent.")
    ] = None
    bearer: Annotated[bool, typer.Option("--bearer", help="Template: users are bearer tokens.")] = False


TEMPLATE = TemplatePermissions()


def add_signing_key_cmd(
    role: Annotated[str, typer.Option("--role", help="Role name; `add user -K <role>` signs with the key.")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    template: TemplatePermissions = TEMPLATE,
    description: Annotated[str, typer.Option("--description", help="What the key is for.")] = "",
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Create a scoped signing key with a permission template, in one step.

    Generates the key, adds a user scope with this template (--allow-*/--deny-* as for users)
    and re-signs the account. Users signed with it (add user -K <role>) carry no permissions:
    the server applies the template."""
    from trustkit.manage import add_signing_key, permission_limits

    ws, op, acct = open_account(dirs, operator, account)
    template_limits = permission_limits(**template.args())
    report = add_signing_key(
        ws, op, acct, role=role, now=now(), template=template_limits, description=description
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
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Delete users from the store (--revoke: also revoke them in the account JWT).

    A revoked user's JWT stops working wherever it was copied once the account is pushed."""
    from trustkit.manage import delete_users

    ws, op, acct = open_account(dirs, operator, account)
    rows = delete_users(
        ws, op, acct, name, now=now(), revoke=revoke, remove_nkey=rm_nkey, remove_creds=rm_creds
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
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Delete an account and its users from the store (servers keep it until
    `trustkit push --account-removal <key>`)."""
    from trustkit.manage import delete_account

    ws, op, acct = open_account(dirs, operator, name)
    report = delete_account(ws, op, acct, now=now(), remove_nkeys=rm_nkey, remove_creds=rm_creds, force=force)
    emit(report.to_json(), as_json=as_json)


# --- edit operator | user | signing-key | authcallout ------------------------------------------


class ClaimEditOptions(OptionGroup):
    """nsc's ``GenericClaimsParams`` of ``edit operator`` and ``edit user``: tags and validity."""

    tag: Annotated[Strings, typer.Option("--tag", help="Add a tag (lower-cased).")] = None
    rm_tag: Annotated[Strings, typer.Option("--rm-tag", help="Remove a tag.")] = None
    start: Annotated[
        str | None,
        typer.Option("--start", help="Valid from: 0, yyyy-mm-dd, unix seconds or #s/#m/#h/#d/#w/#M/#y."),
    ] = None
    expiry: ExpiryOpt = None

    def edit(self) -> ClaimEdit:
        from trustkit.manage import ClaimEdit

        t = now()
        return ClaimEdit(
            tags=split_values(self.tag),
            rm_tags=split_values(self.rm_tag),
            start=None if self.start is None else parse_expiry(self.start, now=t),
            expiry=None if self.expiry is None else parse_expiry(self.expiry, now=t),
        )


CLAIM_EDIT = ClaimEditOptions()


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
    sk: AddSigningKeys = None,
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
    claim: ClaimEditOptions = CLAIM_EDIT,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Edit the operator: URLs, signing keys, strict mode, system account, tags, validity.

    Self-signed with the operator's identity key. Accounts issued by a removed signing key are
    re-signed with a key the operator still trusts."""
    from trustkit.manage import OperatorEdit, edit_operator

    edit = OperatorEdit(
        service_urls=split_values(service_url),
        rm_service_urls=split_values(rm_service_url),
        account_server_url=account_jwt_server_url,
        rm_account_server_url=rm_account_jwt_server_url,
        **_signing_keys(split_values(sk)),
        remove_signing_keys=split_values(rm_sk),
        require_signing_keys=require_signing_keys,
        system_account=system_account,
        claim=claim.edit(),
    )
    if edit.is_empty():
        nothing_to_change()
    ws, op = open_operator(dirs, operator)
    emit(edit_operator(ws, op, edit, now=now()).to_json(), as_json=as_json)


def edit_user_cmd(
    name: UserName,
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    permissions: PermissionEditOptions = PERMISSION_EDIT,
    claim: ClaimEditOptions = CLAIM_EDIT,
    signing_key: Annotated[
        str | None,
        typer.Option("--private-key", "-K", help="Re-sign with this signing key (public key or role)."),
    ] = None,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Edit a user's permissions, limits, tags and validity; its creds are rewritten.

    Re-signed by the key that issued it (or -K). A revoked user is refused: re-signing would
    lift the revocation."""
    from trustkit.manage import edit_user

    edit = permissions.edit()
    claim_edit = claim.edit()
    if edit.is_empty() and claim_edit.is_empty() and signing_key is None:
        nothing_to_change()
    ws, op, acct = open_account(dirs, operator, account)
    report = edit_user(ws, op, acct, name, edit, now=now(), claim_edit=claim_edit, signing_key=signing_key)
    emit(report.to_json(), as_json=as_json)


def edit_signing_key_cmd(
    sk: Annotated[str, typer.Option("--sk", help="The signing key: its public key or its role.")],
    account: AccountOpt = None,
    operator: OperatorOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Set the key's role.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the key is for.")] = None,
    permissions: PermissionEditOptions = PERMISSION_EDIT,
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Edit a scoped signing key's role and template, or make a signing key scoped.

    The template takes the flags of `edit user`. The account is re-signed by the operator; the
    server applies the template to the key's users once the account is pushed."""
    from trustkit.manage import edit_signing_key

    edit = permissions.edit()
    ws, op, acct = open_account(dirs, operator, account)
    report = edit_signing_key(ws, op, acct, sk, edit, now=now(), role=role, description=description)
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
    dirs: DirOptions = DIRS,
    as_json: JsonFlag = False,
) -> None:
    """Edit the account's auth callout: auth users, allowed accounts, curve key.

    Auth users are the callout service's own users; allowed accounts are where it may place
    users; requests are encrypted for the curve key. Re-signed by the operator."""
    from trustkit.manage import AuthCalloutEdit, edit_authcallout

    edit = AuthCalloutEdit(
        auth_users=split_values(auth_user),
        rm_auth_users=split_values(rm_auth_user),
        allowed_accounts=split_values(allowed_account),
        rm_allowed_accounts=split_values(rm_allowed_account),
        curve=curve,
        rm_curve=rm_curve,
        disable=disable,
    )
    if edit.is_empty():
        nothing_to_change()
    ws, op, acct = open_account(dirs, operator, account)
    emit(edit_authcallout(ws, op, acct, edit, now=now()).to_json(), as_json=as_json)
