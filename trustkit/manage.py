"""What nsc does, as a library: create and change operators, accounts and users in a store.

Each function takes a :class:`Workspace` (the resolved directories, the keystore) and the time
``now`` (unix seconds), changes the store through :mod:`trustkit.store` (atomic writes, 0600
keys) and returns a small report object that the CLI renders. Seeds stay in the keystore; no
report contains one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit import nkeys
from trustkit.creds import format_user_creds
from trustkit.errors import ClaimsInvalidError, StoreError
from trustkit.jwt.account import ALL_USERS, AccountClaims
from trustkit.jwt.operator import OperatorClaims
from trustkit.jwt.types import (
    SERVICE,
    STREAM,
    Export,
    JetStreamLimits,
    Permission,
    ResponsePermission,
    UserPermissionLimits,
    UserScope,
)
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config, nats_resolver_config
from trustkit.store import (
    Context,
    KeyStore,
    Store,
    StoreDirs,
    check_name,
    gitignore_enabled,
    list_operators,
    read_context,
    resolve_dirs,
    write_context,
)

__all__ = [
    "AccountEdit",
    "DeletedUser",
    "EditReport",
    "EntityReport",
    "InitReport",
    "SigningKeyReport",
    "Workspace",
    "add_account",
    "add_signing_key",
    "add_user",
    "delete_revocation",
    "delete_users",
    "edit_account",
    "init",
    "push_user",
    "resolve_signing_key",
    "revoke_user",
    "select_account",
    "select_operator",
    "server_config",
    "user_creds",
]

SYSTEM_ACCOUNT_NAME = "SYS"
SYSTEM_USER_NAME = "sys"
DEFAULT_SERVICE_URL = "nats://localhost:4222"


@dataclass
class Workspace:
    """Where stores, keys and the context live (see :func:`trustkit.store.resolve_dirs`)."""

    dirs: StoreDirs
    keystore: KeyStore

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        config_dir: str | None = None,
        data_dir: str | None = None,
        keystore_dir: str | None = None,
    ) -> Workspace:
        dirs = resolve_dirs(env, config_dir=config_dir, stores_dir=data_dir, keys_dir=keystore_dir)
        return cls(dirs, KeyStore(dirs.keys_dir, gitignore=gitignore_enabled(env)))

    def store_path(self, operator: str) -> Path:
        return Path(self.dirs.stores_dir) / check_name("operator", operator)

    def open(self, operator: str) -> Store:
        return Store.open(self.store_path(operator))

    def key(self, public_key: str, what: str) -> KeyPair:
        kp = self.keystore.get_key(public_key)
        if kp is None:
            raise StoreError(f"the {what} key {public_key} is not in the keystore {self.keystore.root}")
        return kp

    def context(self) -> Context:
        """The context file (current operator/account); empty if there is none yet."""
        return read_context(self.dirs.config_dir)

    def default_operator(self, explicit: str | None = None) -> str:
        """``explicit``, else the context's operator, else the only operator in the stores dir.

        Raises :class:`StoreError` when none can be chosen.
        """
        if explicit:
            return explicit
        ctx = self.context()
        if ctx.operator:
            return ctx.operator
        ops = list_operators(self.dirs.stores_dir)
        if len(ops) == 1:
            return ops[0]
        raise StoreError(f"choose an operator with --operator (found {len(ops)} in {self.dirs.stores_dir})")

    def default_account(self, operator: str, explicit: str | None = None) -> str:
        """``explicit``, else the context's account (if it is of ``operator``), else the only
        account of the operator besides ``SYS``. Raises :class:`StoreError` when none can be chosen."""
        if explicit:
            return explicit
        ctx = self.context()
        if ctx.account and ctx.operator == operator:
            return ctx.account
        accounts = [a for a in self.open(operator).list_accounts() if a != SYSTEM_ACCOUNT_NAME]
        if len(accounts) == 1:
            return accounts[0]
        raise StoreError(f"choose an account with --account (operator {operator!r} has {len(accounts)})")


@dataclass(frozen=True)
class EntityReport:
    kind: str
    name: str
    public_key: str
    path: str
    creds: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "name": self.name,
            "public_key": self.public_key,
            "jwt": self.path,
            "creds": self.creds,
        }


@dataclass(frozen=True)
class InitReport:
    store: str
    entities: list[EntityReport] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"store": self.store, "entities": [e.to_json() for e in self.entities]}


def _new_key(ws: Workspace, kind: PrefixByte) -> KeyPair:
    kp = KeyPair.generate(kind)
    ws.keystore.store_key(kp)
    return kp


def init(ws: Workspace, name: str, *, now: int, service_url: str = DEFAULT_SERVICE_URL) -> InitReport:
    """``nsc init``: operator + ``SYS`` account (signing key, monitoring exports) + ``sys`` user
    (issued by the SYS signing key) + an account and a user named like the operator."""
    check_name("operator", name)
    if ws.store_path(name).exists():
        raise StoreError(f"operator {name!r} already exists at {ws.store_path(name)}")
    op = _new_key(ws, PrefixByte.OPERATOR)
    sys_acct = _new_key(ws, PrefixByte.ACCOUNT)
    sys_sk = _new_key(ws, PrefixByte.ACCOUNT)
    operator = OperatorClaims(
        sub=op.public_key,
        name=name,
        system_account=sys_acct.public_key,
        operator_service_urls=[service_url] if service_url else [],
    )
    store = Store.create(ws.dirs.stores_dir, operator.encode(op, iat=now), name)
    system = AccountClaims(sub=sys_acct.public_key, name=SYSTEM_ACCOUNT_NAME)
    system.add_signing_key(sys_sk.public_key)
    system.exports = [
        Export(
            name="account-monitoring-services",
            subject="$SYS.REQ.ACCOUNT.*.*",
            type=SERVICE,
            response_type="Stream",
            account_token_position=4,
            description="Per-account monitoring requests: SUBSZ, CONNZ, LEAFZ, JSZ and INFO",
        ),
        Export(
            name="account-monitoring-streams",
            subject="$SYS.ACCOUNT.*.>",
            type=STREAM,
            account_token_position=3,
            description="Per-account monitoring events",
        ),
    ]
    path = store.write_account_jwt(system.encode(op, iat=now))
    entities = [
        EntityReport("operator", name, op.public_key, str(store.operator_jwt_path())),
        EntityReport("account", SYSTEM_ACCOUNT_NAME, sys_acct.public_key, str(path)),
    ]
    entities.append(
        _issue_user(
            ws,
            store,
            SYSTEM_ACCOUNT_NAME,
            SYSTEM_USER_NAME,
            sys_sk,
            now=now,
            issuer_account=sys_acct.public_key,
        )
    )
    acct = add_account(ws, name, name, now=now)
    entities.append(acct)
    entities.append(add_user(ws, name, name, name, now=now))
    return InitReport(str(store.dir), entities)


def add_account(
    ws: Workspace, operator: str, name: str, *, now: int, signing_key: bool = False
) -> EntityReport:
    """``nsc add account``: a new account signed by the operator; optionally one signing key."""
    store = ws.open(operator)
    check_name("account", name)
    if store.has_account(name):
        raise StoreError(f"account {name!r} already exists in operator {operator!r}")
    op_claims = store.operator_claims()
    op_key = _operator_signer(ws, op_claims)
    acct = _new_key(ws, PrefixByte.ACCOUNT)
    claims = AccountClaims(sub=acct.public_key, name=name)
    if signing_key:
        claims.add_signing_key(_new_key(ws, PrefixByte.ACCOUNT).public_key)
    path = store.write_account_jwt(claims.encode(op_key, iat=now))
    return EntityReport("account", name, acct.public_key, str(path))


def _operator_signer(ws: Workspace, op: OperatorClaims) -> KeyPair:
    """The operator identity key, or (strict operators) the first signing key in the keystore."""
    candidates = ([] if op.strict_signing_key_usage else [op.sub]) + list(op.signing_keys)
    for key in candidates:
        kp = ws.keystore.get_key(key)
        if kp is not None:
            return kp
    raise StoreError(f"no key of operator {op.name!r} that may sign accounts is in the keystore")


def _check_new_user(store: Store, account: str, name: str) -> AccountClaims:
    check_name("user", name)
    acct = store.account_claims(account)
    if store.has_user(account, name):
        raise StoreError(f"user {name!r} already exists in account {account!r}", code="store_exists")
    return acct


def resolve_signing_key(claims: AccountClaims, ref: str) -> str:
    """The key of ``claims`` that ``ref`` names (``add user -K``): the account's identity key or one
    of its signing keys given as a public key, or the role of a scoped signing key.

    Raises :class:`StoreError` (``store_not_found``) when it names none, and (``store_ambiguous``)
    when a role names several keys.
    """
    if ref == claims.sub or ref in claims.signing_keys:
        return ref
    keys = [k for k, scope in sorted(claims.signing_keys.items()) if scope is not None and scope.role == ref]
    if len(keys) == 1:
        return keys[0]
    if keys:
        raise StoreError(
            f"role {ref!r} names {len(keys)} signing keys of account {claims.name!r}: pass a public key",
            code="store_ambiguous",
        )
    raise StoreError(
        f"{ref!r} is neither a signing key nor the role of a scoped signing key of account {claims.name!r}",
        code="store_not_found",
    )


def permission_limits(
    allow_pub: Sequence[str],
    allow_sub: Sequence[str],
    deny_pub: Sequence[str],
    deny_sub: Sequence[str],
    allow_pub_response: int | None,
    response_ttl_ns: int,
    bearer: bool,
) -> UserPermissionLimits:
    """The permission part of ``add user`` and of a scoped key's template (nsc's flags)."""
    return UserPermissionLimits(
        pub=Permission(allow=list(allow_pub), deny=list(deny_pub)),
        sub=Permission(allow=list(allow_sub), deny=list(deny_sub)),
        resp=None
        if allow_pub_response is None
        else ResponsePermission(max=allow_pub_response, ttl=response_ttl_ns),
        bearer_token=bearer,
    )


def add_user(
    ws: Workspace,
    operator: str,
    account: str,
    name: str,
    *,
    now: int,
    allow_pub: Sequence[str] = (),
    allow_sub: Sequence[str] = (),
    deny_pub: Sequence[str] = (),
    deny_sub: Sequence[str] = (),
    allow_pub_response: int | None = None,
    response_ttl_ns: int = 0,
    bearer: bool = False,
    expiry: int = 0,
    tags: Sequence[str] = (),
    signing_key: str | None = None,
) -> EntityReport:
    """``nsc add user``: a user of ``account`` with its creds file.

    Issued by the account key, or by ``signing_key`` (``-K``: a signing key's public key or the
    role of a scoped key; see :func:`resolve_signing_key`), then with ``issuer_account`` set.
    A scoped key's user carries no permissions or limits of its own (the server applies the
    scope's template), so permission and bearer arguments are refused for it
    (``scoped_with_permissions``). Raises :class:`StoreError`; nothing is written on error.
    """
    store = ws.open(operator)
    acct = _check_new_user(store, account, name)
    key = acct.sub if signing_key is None else resolve_signing_key(acct, signing_key)
    signer = ws.key(key, f"account {account!r} signing" if key != acct.sub else f"account {account!r}")
    scope = acct.signing_keys.get(key) if key != acct.sub else None
    perms = permission_limits(
        allow_pub, allow_sub, deny_pub, deny_sub, allow_pub_response, response_ttl_ns, bearer
    )
    if scope is not None and (not perms.pub.empty() or not perms.sub.empty() or perms.resp or bearer):
        raise StoreError(
            f"signing key {key} is scoped (role {scope.role!r}): its users carry no permissions of "
            "their own (the server applies the scope's template); drop the permission/bearer options",
            code="scoped_with_permissions",
        )
    return _issue_user(
        ws,
        store,
        account,
        name,
        signer,
        now=now,
        permissions=perms,
        scoped=scope is not None,
        issuer_account=acct.sub if key != acct.sub else "",
        exp=expiry,
        tags=[t.strip().lower() for t in tags if t.strip()],
    )


def _issue_user(
    ws: Workspace,
    store: Store,
    account: str,
    name: str,
    signer: KeyPair,
    *,
    now: int,
    permissions: UserPermissionLimits | None = None,
    scoped: bool = False,
    issuer_account: str = "",
    exp: int = 0,
    tags: Sequence[str] = (),
) -> EntityReport:
    """Sign and store a new user; ``scoped``: a scoped key's user (no permissions, no limits)."""
    user = KeyPair.generate(PrefixByte.USER)
    uc = UserClaims(sub=user.public_key, name=name, issuer_account=issuer_account, exp=exp, tags=list(tags))
    if scoped:
        uc.set_scoped()
    elif permissions is not None:
        uc.set_permission_limits(permissions)
    token = uc.encode(signer, iat=now)
    _refuse_invalid(uc, now, f"user {name!r}")
    ws.keystore.store_key(user)
    path = store.write_user_jwt(account, token)
    creds = ws.keystore.write_creds(store.name, account, name, format_user_creds(token, user.seed))
    return EntityReport("user", name, user.public_key, str(path), str(creds))


def _refuse_invalid(claims: AccountClaims | UserClaims, now: int, what: str) -> None:
    """Refuse to store claims that fail validation (errors only; warnings and time checks pass)."""
    errors = claims.validate(now=now).errors
    if errors:
        raise ClaimsInvalidError(f"{what} would not be valid: {'; '.join(errors)}")


def _resign_account(ws: Workspace, store: Store, claims: AccountClaims, *, now: int) -> Path:
    """Validate, re-sign with the operator (:func:`_operator_signer`) and store an account.

    ``iat`` is at least one second after the previous one: servers keep the JWT with the larger
    ``iat`` when they sync, so an edit in the same second must still win.
    """
    signer = _operator_signer(ws, store.operator_claims())
    _refuse_invalid(claims, now, f"account {claims.name!r}")
    return store.write_account_jwt(claims.encode(signer, iat=max(now, claims.iat + 1)))


def user_creds(ws: Workspace, operator: str, account: str, user: str) -> bytes:
    """``nsc generate creds``: the user's JWT from the store with its seed from the keystore."""
    store = ws.open(operator)
    token = store.read_user_jwt(account, user)
    claims = store.user_claims(account, user)
    kp = ws.key(claims.sub, f"user {user!r}")
    return format_user_creds(token, kp.seed)


def server_config(ws: Workspace, operator: str, mode: str, *, directory: str = "./jwt") -> str:
    """``nsc generate config``: ``mem`` (MEMORY resolver), ``full`` or ``cache`` (nats resolver)."""
    store = ws.open(operator)
    op = store.operator_claims()
    accounts = {a: store.read_account_jwt(a) for a in store.list_accounts()}
    if mode == "mem":
        return mem_resolver_config(store.read_operator_jwt(), accounts.values())
    sys_name = store.find_account(op.system_account) if op.system_account else None
    if sys_name is None:
        raise StoreError(f"operator {operator!r} has no system account in the store")
    if mode not in ("full", "cache"):
        raise StoreError(f"unknown resolver mode {mode!r} (mem, full or cache)")
    return nats_resolver_config(
        store.read_operator_jwt(), accounts[sys_name], cache=mode == "cache", directory=directory
    )


def _revocation_key(store: Store, account: str, user: str | None, public_key: str | None) -> str:
    if (user is None) == (public_key is None):
        raise StoreError("name exactly one of a user or a public key", code="store_usage")
    if user is not None:
        return store.user_claims(account, user).sub
    assert public_key is not None
    if public_key != ALL_USERS and not nkeys.is_valid_public_key(public_key, PrefixByte.USER):
        raise StoreError(f"{public_key!r} is not a user public key or '*'", code="store_usage")
    return public_key


def revoke_user(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    user: str | None = None,
    public_key: str | None = None,
    at: int,
    now: int,
) -> EntityReport:
    """``nsc revocations add-user``: revoke a user (by name or public key, or ``*``) issued at or
    before ``at``; re-signs and stores the account JWT (push it to apply it live)."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    key = _revocation_key(store, account, user, public_key)
    claims.revoke(key, at)
    path = _resign_account(ws, store, claims, now=now)
    return EntityReport("revocation", user or key, key, str(path))


def delete_revocation(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    user: str | None = None,
    public_key: str | None = None,
    now: int,
) -> EntityReport:
    """``nsc revocations delete-user``: remove a user's (or the ``*``) revocation and re-sign the
    account. Raises :class:`StoreError` (``store_not_found``) if there is no such revocation."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    key = _revocation_key(store, account, user, public_key)
    if key not in claims.revocations:
        raise StoreError(f"{user or key} is not revoked in account {account!r}", code="store_not_found")
    claims.clear_revocation(key)
    path = _resign_account(ws, store, claims, now=now)
    return EntityReport("revocation", user or key, key, str(path))


# --- signing keys and account edits -------------------------------------------------------------


@dataclass(frozen=True)
class SigningKeyReport:
    account: str
    public_key: str
    role: str
    description: str
    template: dict[str, Any]
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "signing_key",
            "account": self.account,
            "public_key": self.public_key,
            "role": self.role,
            "description": self.description,
            "template": self.template,
            "jwt": self.path,
        }


def add_signing_key(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    role: str,
    now: int,
    allow_pub: Sequence[str] = (),
    allow_sub: Sequence[str] = (),
    deny_pub: Sequence[str] = (),
    deny_sub: Sequence[str] = (),
    allow_pub_response: int | None = None,
    response_ttl_ns: int = 0,
    bearer: bool = False,
    description: str = "",
) -> SigningKeyReport:
    """A new *scoped* signing key for ``account`` in one step (nsc needs ``edit account --sk``
    then ``edit signing-key``, nsc #633): generate it, add a ``user_scope`` whose template holds
    the given permissions (limits unlimited), re-sign the account, store the seed.

    Users signed with it (``add_user(signing_key=role)``) get the template's permissions from the
    server. Raises :class:`StoreError` (``store_usage`` empty role, ``store_exists`` role taken)
    or :class:`ClaimsInvalidError` (e.g. an invalid subject); nothing is written on error.
    """
    if not role or role != role.strip():
        raise StoreError("a scoped signing key needs a role (no surrounding spaces)", code="store_usage")
    store = ws.open(operator)
    claims = store.account_claims(account)
    taken = [k for k, s in claims.signing_keys.items() if s is not None and s.role == role]
    if taken:
        raise StoreError(
            f"account {account!r} already has a signing key with role {role!r} ({taken[0]})",
            code="store_exists",
        )
    kp = KeyPair.generate(PrefixByte.ACCOUNT)
    template = permission_limits(
        allow_pub, allow_sub, deny_pub, deny_sub, allow_pub_response, response_ttl_ns, bearer
    )
    scope = UserScope(role=role, template=template, description=description)
    claims.add_signing_key(kp.public_key, scope)
    _refuse_invalid(claims, now, f"account {account!r}")
    ws.keystore.store_key(kp)
    path = _resign_account(ws, store, claims, now=now)
    return SigningKeyReport(account, kp.public_key, role, description, template.to_json(), str(path))


#: ``AccountEdit`` attribute → ``limits`` field (NATS and account limits)
_LIMIT_FIELDS = {
    "conns": "conn",
    "leaf_conns": "leaf",
    "data": "data",
    "payload": "payload",
    "subscriptions": "subs",
    "imports": "imports",
    "exports": "exports",
    "disallow_bearer": "disallow_bearer",
}
#: ``AccountEdit`` attribute → JetStream limit field (global block or a tier)
_JS_FIELDS = {
    "js_mem_storage": "mem_storage",
    "js_disk_storage": "disk_storage",
    "js_streams": "streams",
    "js_consumer": "consumer",
}


@dataclass(frozen=True)
class AccountEdit:
    """What ``edit account`` changes; ``None`` leaves a value as it is. Sizes are bytes, -1 means
    unlimited. JetStream values go to the global block (``js_tier`` None or 0, as nsc), or with
    ``js_tier=N`` to tier ``R<N>`` (the two are mutually exclusive in a JWT)."""

    conns: int | None = None
    leaf_conns: int | None = None
    data: int | None = None
    payload: int | None = None
    subscriptions: int | None = None
    imports: int | None = None
    exports: int | None = None
    disallow_bearer: bool | None = None
    js_tier: int | None = None
    js_mem_storage: int | None = None
    js_disk_storage: int | None = None
    js_streams: int | None = None
    js_consumer: int | None = None
    #: how many new (unscoped) signing keys to generate
    generate_signing_keys: int = 0
    #: existing public keys to add as (unscoped) signing keys
    add_signing_keys: Sequence[str] = ()
    remove_signing_keys: Sequence[str] = ()

    def is_empty(self) -> bool:
        values = [getattr(self, a) for a in (*_LIMIT_FIELDS, *_JS_FIELDS)]
        return (
            all(v is None for v in values)
            and not self.generate_signing_keys
            and not self.add_signing_keys
            and not self.remove_signing_keys
        )


@dataclass(frozen=True)
class EditReport:
    kind: str
    name: str
    public_key: str
    path: str
    changes: list[str]
    signing_keys_added: list[str]
    signing_keys_removed: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "public_key": self.public_key,
            "jwt": self.path,
            "changes": self.changes,
            "signing_keys_added": self.signing_keys_added,
            "signing_keys_removed": self.signing_keys_removed,
        }


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def edit_account(ws: Workspace, operator: str, account: str, edit: AccountEdit, *, now: int) -> EditReport:
    """``nsc edit account``: limits, ``disallow_bearer``, JetStream limits (global or per tier),
    signing keys added (generated or given) and removed; re-signed with the operator key.

    Raises :class:`StoreError` (``store_usage`` nothing to change or a bad tier,
    ``store_not_found`` removing a key the account does not have) or :class:`ClaimsInvalidError`
    (global and tiered JetStream limits together, …). Nothing is written on error; generated
    seeds are stored only once the new account JWT is known to be valid.
    """
    if edit.is_empty():
        raise StoreError("nothing to change: give at least one edit option", code="store_usage")
    if edit.js_tier is not None and edit.js_tier < 0:
        raise StoreError(f"JetStream tier {edit.js_tier} must be 0 (global) or more", code="store_usage")
    store = ws.open(operator)
    claims = store.account_claims(account)
    changes: list[str] = []
    for attr, key in _LIMIT_FIELDS.items():
        value = getattr(edit, attr)
        if value is not None and value != getattr(claims.limits, key):
            setattr(claims.limits, key, value)
            changes.append(f"limits.{key}={_show(value)}")
    js_values = {key: getattr(edit, attr) for attr, key in _JS_FIELDS.items()}
    if any(v is not None for v in js_values.values()):
        target: JetStreamLimits | Any
        if not edit.js_tier:  # nsc: tier 0 is the global block
            target, where = claims.limits, "limits"
        else:
            tier = f"R{edit.js_tier}"
            target = claims.limits.tiered_limits.setdefault(tier, JetStreamLimits())
            where = f"limits.tiered_limits.{tier}"
        for key, value in js_values.items():
            if value is not None:
                setattr(target, key, value)
                changes.append(f"{where}.{key}={_show(value)}")
    removed: list[str] = []
    for key in dict.fromkeys(edit.remove_signing_keys):
        if key not in claims.signing_keys:
            raise StoreError(f"{key} is not a signing key of account {account!r}", code="store_not_found")
        del claims.signing_keys[key]
        removed.append(key)
    new_keys = [KeyPair.generate(PrefixByte.ACCOUNT) for _ in range(edit.generate_signing_keys)]
    added: list[str] = []
    for key in [*edit.add_signing_keys, *(kp.public_key for kp in new_keys)]:
        if not nkeys.is_valid_public_key(key, PrefixByte.ACCOUNT):
            raise StoreError(f"{key!r} is not an account public key", code="store_usage")
        if key == claims.sub or key in claims.signing_keys:
            raise StoreError(f"{key} is already a key of account {account!r}", code="store_exists")
        claims.add_signing_key(key)
        added.append(key)
    _refuse_invalid(claims, now, f"account {account!r}")
    for kp in new_keys:
        ws.keystore.store_key(kp)
    path = _resign_account(ws, store, claims, now=now)
    return EditReport("account", account, claims.sub, str(path), changes, added, removed)


# --- deleting users -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletedUser:
    name: str
    public_key: str
    path: str
    revoked: bool
    nkey_removed: bool
    creds_removed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "user",
            "name": self.name,
            "public_key": self.public_key,
            "jwt": self.path,
            "revoked": self.revoked,
            "nkey_removed": self.nkey_removed,
            "creds_removed": self.creds_removed,
        }


def delete_users(
    ws: Workspace,
    operator: str,
    account: str,
    names: Sequence[str],
    *,
    now: int,
    revoke: bool = False,
    remove_nkey: bool = False,
    remove_creds: bool = False,
) -> list[DeletedUser]:
    """``nsc delete user``: remove users' JWTs from the store; with ``revoke`` first add a
    revocation for each (issued at or before ``now``) to the re-signed account JWT (push it to
    disconnect them), optionally remove their seeds and creds files from the keystore.

    Every user is checked before anything is written. Raises :class:`StoreError`
    (``store_not_found`` for an unknown user).
    """
    if not names:
        raise StoreError("name at least one user to delete", code="store_usage")
    store = ws.open(operator)
    account_claims = store.account_claims(account)
    users = {name: store.user_claims(account, name) for name in dict.fromkeys(names)}
    if revoke:
        for uc in users.values():
            account_claims.revoke(uc.sub, now)
        _resign_account(ws, store, account_claims, now=now)
    out: list[DeletedUser] = []
    for name, uc in users.items():
        path = store.user_jwt_path(account, name)
        store.delete_user(account, name)
        nkey = ws.keystore.remove_key(uc.sub) if remove_nkey else False
        creds = ws.keystore.delete_creds(store.name, account, name) if remove_creds else False
        out.append(DeletedUser(name, uc.sub, str(path), revoke, nkey, creds))
    return out


# --- push ---------------------------------------------------------------------------------------


def push_user(ws: Workspace, operator: str, *, now: int) -> tuple[str, KeyPair]:
    """A temporary system-account user for ``push`` (nsc's "temporary push user", valid 2 min),
    signed with the first unscoped system-account signing key in the keystore, else (operators
    without strict signing-key usage) with the system account's identity key.

    Raises :class:`StoreError` if the operator has no system account in the store or none of
    those keys is in the keystore.
    """
    from trustkit.push import temporary_push_user

    store = ws.open(operator)
    op = store.operator_claims()
    sys_name = store.find_account(op.system_account) if op.system_account else None
    if sys_name is None:
        raise StoreError(f"operator {operator!r} has no system account in the store: cannot push")
    sys_claims = store.account_claims(sys_name)
    signer = None
    for key, scope in sorted(sys_claims.signing_keys.items()):
        if scope is None and (kp := ws.keystore.get_key(key)) is not None:
            signer = kp
            break
    if signer is None and not op.strict_signing_key_usage:
        signer = ws.keystore.get_key(sys_claims.sub)
    if signer is None:
        raise StoreError("no unscoped system-account key in the keystore to mint the push user")
    return temporary_push_user(sys_claims.sub, signer, now=now)


# --- context ------------------------------------------------------------------------------------


def select_operator(ws: Workspace, name: str) -> Context:
    """``nsc select operator``: make ``name`` the context's operator. The selected account is
    kept if the operator has it, else the operator's only account besides ``SYS``, else none.
    Raises :class:`StoreError` if there is no such operator store."""
    store = ws.open(name)
    ctx = ws.context()
    accounts = store.list_accounts()
    account = ctx.account if ctx.account in accounts else ""
    if not account:
        others = [a for a in accounts if a != SYSTEM_ACCOUNT_NAME]
        account = others[0] if len(others) == 1 else ""
    new = Context(str(ws.dirs.stores_dir), name, account, ctx.extra)
    write_context(ws.dirs.config_dir, new)
    return new


def select_account(ws: Workspace, operator: str, name: str) -> Context:
    """``nsc select account``: make ``operator``/``name`` the context's operator and account.
    Raises :class:`StoreError` (``store_not_found``) if the account does not exist."""
    store = ws.open(operator)
    if not store.has_account(name):
        raise StoreError(
            f"account {name!r} does not exist in operator {operator!r} ({store.account_jwt_path(name)})",
            code="store_not_found",
        )
    new = Context(str(ws.dirs.stores_dir), operator, name, ws.context().extra)
    write_context(ws.dirs.config_dir, new)
    return new


def environment() -> Mapping[str, str]:
    """The process environment (only the CLI calls this; library callers pass their own)."""
    return os.environ
