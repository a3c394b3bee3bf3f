"""What nsc does, as a library: create and change operators, accounts and users in a store.

Each function takes a :class:`Workspace` (the resolved directories, the keystore) and the time
``now`` (unix seconds), changes the store through :mod:`trustkit.store` (atomic writes, 0600
keys) and returns a small report object that the CLI renders. Seeds stay in the keystore; no
report contains one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trustkit import nkeys
from trustkit.creds import format_user_creds
from trustkit.errors import ClaimsInvalidError, NKeyError, StoreError, TokenError
from trustkit.jwt.account import ALL_USERS, AccountClaims
from trustkit.jwt.operator import OperatorClaims
from trustkit.jwt.types import (
    CONNECTION_TYPES,
    SERVICE,
    STREAM,
    Export,
    JetStreamLimits,
    Permission,
    Permissions,
    ResponsePermission,
    TimeRange,
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
    "AuthCalloutEdit",
    "ClaimEdit",
    "DeletedUser",
    "Edited",
    "EntityReport",
    "InitReport",
    "KeyFileRow",
    "OperatorEdit",
    "PermissionEdit",
    "PullReport",
    "PulledRow",
    "RotateReport",
    "RotatedUser",
    "SigningKeyReport",
    "Workspace",
    "account_public_key",
    "add_account",
    "add_signing_key",
    "add_user",
    "apply_permission_edit",
    "check_pushable",
    "delete_revocation",
    "delete_users",
    "edit_account",
    "edit_authcallout",
    "edit_operator",
    "edit_signing_key",
    "edit_user",
    "export_keys",
    "import_keys",
    "init",
    "operator_request_key",
    "prune_candidates",
    "push_user",
    "resolve_signing_key",
    "revoke_user",
    "rotate_signing_key",
    "select_account",
    "select_operator",
    "server_config",
    "server_url",
    "store_pulled",
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
    report = add_operator(ws, name, now=now, system_account=True, service_url=service_url)
    report.entities.append(add_account(ws, name, name, now=now))
    report.entities.append(add_user(ws, name, name, name, now=now))
    return report


def add_operator(
    ws: Workspace,
    name: str,
    *,
    now: int,
    system_account: bool = False,
    signing_key: bool = False,
    service_url: str = "",
    start: int = 0,
    expiry: int = 0,
) -> InitReport:
    """``nsc add operator``: a new operator store, its key in the keystore; optionally an
    operator signing key (``--generate-signing-key``) and the system account ``SYS`` with its
    signing key, the two monitoring exports and the ``sys`` user (``--sys``; signed by the
    operator's signing key when there is one, as nsc does)."""
    check_name("operator", name)
    if ws.store_path(name).exists():
        raise StoreError(f"operator {name!r} already exists at {ws.store_path(name)}", code="store_exists")
    op = _new_key(ws, PrefixByte.OPERATOR)
    op_sk = _new_key(ws, PrefixByte.OPERATOR) if signing_key else None
    sys_acct = _new_key(ws, PrefixByte.ACCOUNT) if system_account else None
    operator = OperatorClaims(
        sub=op.public_key,
        name=name,
        system_account=sys_acct.public_key if sys_acct is not None else "",
        operator_service_urls=[service_url] if service_url else [],
        signing_keys=[op_sk.public_key] if op_sk is not None else [],
        nbf=start,
        exp=expiry,
    )
    store = Store.create(ws.dirs.stores_dir, operator.encode(op, iat=now), name)
    entities = [EntityReport("operator", name, op.public_key, str(store.operator_jwt_path()))]
    if op_sk is not None:
        entities.append(EntityReport("signing-key", name, op_sk.public_key, str(store.operator_jwt_path())))
    if sys_acct is not None:
        entities += _add_system_account(ws, store, sys_acct, op_sk or op, now=now)
    return InitReport(str(store.dir), entities)


def import_operator(
    ws: Workspace, source: str, *, name: str | None = None, timeout: float = 10.0
) -> InitReport:
    """``nsc add operator -u``: a *managed* store from an operator JWT someone else signs (a
    file, or an ``http(s)://`` URL); its keys stay with them. The JWT (decorated or bare) must be
    a valid v2 operator JWT. Raises :class:`StoreError`, :class:`TokenError` or
    :class:`~trustkit.errors.NetworkError` naming the source."""
    from trustkit.creds import parse_decorated_jwt
    from trustkit.errors import NetworkError
    from trustkit.jwt.decoder import decode

    if source.lower().startswith(("http://", "https://")):
        import httpx

        try:
            resp = httpx.get(source, timeout=timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot fetch the operator JWT from {source}: {type(exc).__name__}") from None
        if resp.status_code != 200:
            raise NetworkError(f"{source} answered {resp.status_code} {resp.reason_phrase}")
        data = resp.content
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {source}: {exc.strerror}", code="store_not_found") from None
    token = parse_decorated_jwt(data)
    claims = decode(token, OperatorClaims)
    store = Store.create(ws.dirs.stores_dir, token, name or claims.name, managed=True)
    return InitReport(
        str(store.dir), [EntityReport("operator", store.name, claims.sub, str(store.operator_jwt_path()))]
    )


def _add_system_account(
    ws: Workspace, store: Store, sys_acct: KeyPair, signer: KeyPair, *, now: int
) -> list[EntityReport]:
    """The ``SYS`` account as nsc makes it: a signing key, the monitoring exports, and the ``sys``
    user issued by that signing key."""
    sys_sk = _new_key(ws, PrefixByte.ACCOUNT)
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
    path = store.write_account_jwt(system.encode(signer, iat=now))
    return [
        EntityReport("account", SYSTEM_ACCOUNT_NAME, sys_acct.public_key, str(path)),
        _issue_user(
            ws,
            store,
            SYSTEM_ACCOUNT_NAME,
            SYSTEM_USER_NAME,
            sys_sk,
            now=now,
            issuer_account=sys_acct.public_key,
        ),
    ]


@dataclass(frozen=True, slots=True)
class DeletedAccount:
    name: str
    public_key: str
    path: str
    users: list[DeletedUser]
    nkeys_removed: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.name,
            "public_key": self.public_key,
            "jwt": self.path,
            "users": [u.to_json() for u in self.users],
            "nkeys_removed": self.nkeys_removed,
            "hint": f"servers keep the account until: trustkit push --account-removal {self.public_key}",
        }


def delete_account(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    now: int,
    remove_nkeys: bool = False,
    remove_creds: bool = False,
    force: bool = False,
) -> DeletedAccount:
    """``nsc delete account``: remove an account and its users from the store; optionally their
    seeds (account, signing and user keys) and creds files.

    The operator's system account is refused unless ``force`` (servers need it for pushes). The
    JWT stays on servers that have it: ``push --account-removal <key>`` deletes it there (nsc's
    way, re-signing the account to expire in a minute, only reaches managed operators).
    Raises :class:`StoreError` (``store_not_found``, ``store_usage``).
    """
    store = ws.open(operator)
    claims = store.account_claims(account)
    if claims.sub == store.operator_claims().system_account and not force:
        raise StoreError(
            f"{account!r} is the operator's system account: pass --force to delete it anyway",
            code="store_usage",
        )
    path = str(store.account_jwt_path(account))
    users = store.list_users(account)
    user_rows = []
    if users:
        user_rows = delete_users(
            ws, operator, account, users, now=now, remove_nkey=remove_nkeys, remove_creds=remove_creds
        )
    store.delete_account(account)
    removed: list[str] = []
    if remove_nkeys:
        for key in [claims.sub, *claims.signing_keys]:
            if ws.keystore.remove_key(key):
                removed.append(key)
    return DeletedAccount(account, claims.sub, path, user_rows, removed)


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


def _operator_signer(
    ws: Workspace, op: OperatorClaims, *, purpose: str = "sign accounts", name: str | None = None
) -> KeyPair:
    """The operator identity key, or (strict operators) the first signing key in the keystore:
    the key that signs accounts and, as nsc's ``obtainRequestKey``, delete requests.
    Raises :class:`StoreError` naming the operator (``name``, else its JWT's) and the ``purpose``."""
    for key in op.trusted_keys():
        kp = ws.keystore.get_key(key)
        if kp is not None:
            return kp
    raise StoreError(f"no key of operator {name or op.name!r} that may {purpose} is in the keystore")


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


def _refuse_invalid(claims: AccountClaims | UserClaims | OperatorClaims, now: int, what: str) -> None:
    """Refuse to store claims that fail validation (errors only; warnings and time checks pass)."""
    errors = claims.validate(now=now).errors
    if errors:
        raise ClaimsInvalidError(f"{what} would not be valid: {'; '.join(errors)}")


def _resign_account(
    ws: Workspace, store: Store, claims: AccountClaims, *, now: int, operator: OperatorClaims | None = None
) -> Path:
    """Validate, re-sign with the operator (:func:`_operator_signer`) and store an account.

    ``operator``: the operator claims to pick the signer from (default: the stored ones).
    ``iat`` is at least one second after the previous one: servers keep the JWT with the larger
    ``iat`` when they sync, so an edit in the same second must still win.
    """
    signer = _operator_signer(ws, operator if operator is not None else store.operator_claims())
    _refuse_invalid(claims, now, f"account {claims.name!r}")
    return store.write_account_jwt(claims.encode(signer, iat=max(now, claims.iat + 1)))


def _store_seeds_and_resign(
    ws: Workspace, store: Store, claims: AccountClaims, account: str, seeds: Sequence[KeyPair], *, now: int
) -> Path:
    """Validate the edited ``account``, store the ``seeds`` of its new keys, then re-sign and
    store it (:func:`_resign_account`): a seed is stored only for claims that are valid."""
    _refuse_invalid(claims, now, f"account {account!r}")
    for kp in seeds:
        ws.keystore.store_key(kp)
    return _resign_account(ws, store, claims, now=now)


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


def _refuse_taken_role(claims: AccountClaims, account: str, role: str, *, key: str | None = None) -> None:
    """A role names one scoped signing key of an account (``key``: the one being edited)."""
    taken = [k for k, s in claims.signing_keys.items() if k != key and s is not None and s.role == role]
    if taken:
        raise StoreError(
            f"account {account!r} already has a signing key with role {role!r} ({taken[0]})",
            code="store_exists",
        )


def add_signing_key(
    ws: Workspace,
    operator: str,
    account: str,
    *,
    role: str,
    now: int,
    template: UserPermissionLimits,
    description: str = "",
) -> SigningKeyReport:
    """A new *scoped* signing key for ``account`` in one step (nsc needs ``edit account --sk``
    then ``edit signing-key``, nsc #633): generate it, add a ``user_scope`` with this
    ``template`` (nsc's permission flags: :func:`permission_limits`, limits unlimited), re-sign
    the account, store the seed.

    Users signed with it (``add_user(signing_key=role)``) get the template's permissions from the
    server. Raises :class:`StoreError` (``store_usage`` empty role, ``store_exists`` role taken)
    or :class:`ClaimsInvalidError` (e.g. an invalid subject); nothing is written on error.
    """
    if not role or role != role.strip():
        raise StoreError("a scoped signing key needs a role (no surrounding spaces)", code="store_usage")
    store = ws.open(operator)
    claims = store.account_claims(account)
    _refuse_taken_role(claims, account, role)
    kp = KeyPair.generate(PrefixByte.ACCOUNT)
    scope = UserScope(role=role, template=template, description=description)
    claims.add_signing_key(kp.public_key, scope)
    path = _store_seeds_and_resign(ws, store, claims, account, [kp], now=now)
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
    ``js_tier=N`` to tier ``R<N>`` (the two are mutually exclusive in a JWT).
    ``default_permissions`` edits what users without permissions of their own get (nsc's
    ``PermissionsParams`` of ``edit account``: subjects and the response permission only)."""

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
    default_permissions: PermissionEdit | None = None

    def is_empty(self) -> bool:
        values = [getattr(self, a) for a in (*_LIMIT_FIELDS, *_JS_FIELDS)]
        return (
            all(v is None for v in values)
            and not self.generate_signing_keys
            and not self.add_signing_keys
            and not self.remove_signing_keys
            and (self.default_permissions is None or self.default_permissions.is_empty())
        )


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def edit_account(ws: Workspace, operator: str, account: str, edit: AccountEdit, *, now: int) -> Edited:
    """``nsc edit account``: limits, ``disallow_bearer``, JetStream limits (global or per tier),
    signing keys added (generated or given) and removed, ``default_permissions`` (as
    :func:`apply_subject_permission_edit`); re-signed with the operator key.

    Raises :class:`StoreError` (``store_usage`` nothing to change, a bad tier or a user-only
    option in the default permissions edit,
    ``store_not_found`` removing a key the account does not have) or :class:`ClaimsInvalidError`
    (global and tiered JetStream limits together, …). Nothing is written on error; generated
    seeds are stored only once the new account JWT is known to be valid.
    """
    if edit.is_empty():
        raise StoreError("nothing to change: give at least one edit option", code="store_usage")
    if edit.js_tier is not None and edit.js_tier < 0:
        raise StoreError(f"JetStream tier {edit.js_tier} must be 0 (global) or more", code="store_usage")
    if edit.default_permissions is not None and edit.default_permissions.user_only():
        raise StoreError(
            "default permissions take subjects and a response permission only, not "
            + ", ".join(edit.default_permissions.user_only()),
            code="store_usage",
        )
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
    if edit.default_permissions is not None:
        changes += apply_subject_permission_edit(
            claims.default_permissions, edit.default_permissions, where="default_permissions."
        )
    new_keys, added, removed = _edit_signing_keys(
        edit,
        PrefixByte.ACCOUNT,
        f"account {account!r}",
        claims.sub,
        claims.signing_keys,
        add=claims.add_signing_key,
        remove=claims.signing_keys.__delitem__,
    )
    path = _store_seeds_and_resign(ws, store, claims, account, new_keys, now=now)
    details = {"signing_keys_added": added, "signing_keys_removed": removed}
    return Edited("account", account, claims.sub, str(path), changes, details)


def _edit_signing_keys(
    edit: AccountEdit | OperatorEdit,
    kind: PrefixByte,
    owner: str,
    identity: str,
    keys: Collection[str],
    *,
    add: Callable[[str], None],
    remove: Callable[[str], None],
) -> tuple[list[KeyPair], list[str], list[str]]:
    """nsc's ``--rm-sk`` then ``--sk`` of ``edit account`` and ``edit operator``: remove, then add
    the given public keys and ``generate_signing_keys`` new ones (of ``kind``) to ``keys``, the
    signing keys of ``owner`` (``add``/``remove`` change them). Returns (the generated key
    pairs, not yet stored; the keys added; the keys removed). Raises :class:`StoreError`
    (``store_not_found``, ``store_usage``, ``store_exists``)."""
    removed: list[str] = []
    for key in dict.fromkeys(edit.remove_signing_keys):
        if key not in keys:
            raise StoreError(f"{key} is not a signing key of {owner}", code="store_not_found")
        remove(key)
        removed.append(key)
    new_keys = [KeyPair.generate(kind) for _ in range(edit.generate_signing_keys)]
    added: list[str] = []
    for key in [*edit.add_signing_keys, *(kp.public_key for kp in new_keys)]:
        if not nkeys.is_valid_public_key(key, kind):
            raise StoreError(f"{key!r} is not an {kind.label} public key", code="store_usage")
        if key == identity or key in keys:
            raise StoreError(f"{key} is already a key of {owner}", code="store_exists")
        add(key)
        added.append(key)
    return new_keys, added, removed


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


def push_user(
    ws: Workspace,
    operator: str,
    *,
    now: int,
    system_account: str | None = None,
    system_user: str | None = None,
) -> tuple[str, KeyPair]:
    """The system-account user ``push``/``pull`` connect as: by default a temporary one (nsc's
    "temporary push user", valid 2 min) signed with the first unscoped system-account signing
    key in the keystore, else (operators without strict signing-key usage) with the system
    account's identity key; with ``system_user`` that user of the system account (its JWT and
    seed from the store and keystore). ``system_account`` (name or key) overrides the
    operator's system account.

    Raises :class:`StoreError` if there is no such system account in the store or none of
    those keys is in the keystore.
    """
    from trustkit.push import temporary_push_user

    store = ws.open(operator)
    op = store.operator_claims()
    ref = system_account or op.system_account
    if ref and nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT):
        sys_name = store.find_account(ref)
    else:
        sys_name = ref if ref and store.has_account(ref) else None
    if sys_name is None:
        what = f"system account {ref!r}" if ref else "system account"
        raise StoreError(f"operator {operator!r} has no {what} in the store: cannot connect")
    if system_user is not None:
        uc = store.user_claims(sys_name, system_user)
        return store.read_user_jwt(sys_name, system_user), ws.key(uc.sub, f"user {system_user!r}")
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


# --- shared edit pieces: tags and times, permissions and limits ---------------------------------
#
# The option and report classes below are plain dataclasses (no generated __eq__/__repr__, not
# frozen): every command imports this module, and each generated method costs start-up time.


@dataclass(repr=False, eq=False)
class ClaimEdit:
    """nsc's ``GenericClaimsParams``: ``--tag``/``--rm-tag``, ``--start``/``--expiry`` (``None``
    leaves a time as it is, 0 clears it)."""

    tags: Sequence[str] = ()
    rm_tags: Sequence[str] = ()
    start: int | None = None
    expiry: int | None = None

    def is_empty(self) -> bool:
        return not self.tags and not self.rm_tags and self.start is None and self.expiry is None


def _apply_claim_edit(claims: OperatorClaims | AccountClaims | UserClaims, edit: ClaimEdit) -> list[str]:
    """Times and tags as nsc changes them: tags are trimmed and lower-cased (Go ``TagList``),
    added once, removed, then sorted."""
    changes: list[str] = []
    if edit.start is not None and edit.start != claims.nbf:
        claims.nbf = edit.start
        changes.append(f"nbf={edit.start}")
    if edit.expiry is not None and edit.expiry != claims.exp:
        claims.exp = edit.expiry
        changes.append(f"exp={edit.expiry}")
    tags = list(claims.tags)
    for tag in (t.strip().lower() for t in edit.tags):
        if tag and tag not in tags:
            tags.append(tag)
            changes.append(f"+tag {tag}")
    for tag in (t.strip().lower() for t in edit.rm_tags):
        if tag in tags:
            tags.remove(tag)
            changes.append(f"-tag {tag}")
    claims.tags = sorted(tags)
    return changes


def _add_once(values: list[str], new: Sequence[str], *, label: str, changes: list[str]) -> None:
    """Go ``StringList.Add``: append what is not there yet, skip empty strings."""
    for v in new:
        if v and v not in values:
            values.append(v)
            changes.append(f"+{label} {v}")


def _remove_all(values: list[str], gone: Sequence[str], *, label: str, changes: list[str]) -> None:
    for v in gone:
        if v in values:
            values.remove(v)
            changes.append(f"-{label} {v}")


@dataclass(repr=False, eq=False)
class PermissionEdit:
    """nsc's ``UserPermissionLimits`` flags of ``edit user`` and ``edit signing-key``; empty or
    ``None`` leaves a value as it is.

    ``remove`` (``--rm``) takes a subject out of all four allow/deny lists. ``times`` are
    ``(start, end)`` as ``hh:mm:ss``; ``remove_times`` names ranges by their start. Sizes are
    numbers, -1 = unlimited.
    """

    allow_pub: Sequence[str] = ()
    allow_sub: Sequence[str] = ()
    deny_pub: Sequence[str] = ()
    deny_sub: Sequence[str] = ()
    remove: Sequence[str] = ()
    allow_pub_response: int | None = None
    response_ttl_ns: int | None = None
    remove_response: bool = False
    bearer: bool | None = None
    source_networks: Sequence[str] = ()
    remove_source_networks: Sequence[str] = ()
    times: Sequence[tuple[str, str]] = ()
    remove_times: Sequence[str] = ()
    locale: str | None = None
    conn_types: Sequence[str] = ()
    remove_conn_types: Sequence[str] = ()
    subs: int | None = None
    data: int | None = None
    payload: int | None = None

    def is_empty(self) -> bool:
        return all(
            not v
            for v in (
                self.allow_pub, self.allow_sub, self.deny_pub, self.deny_sub, self.remove,
                self.remove_response, self.source_networks, self.remove_source_networks,
                self.times, self.remove_times, self.conn_types, self.remove_conn_types,
            )
        ) and all(
            v is None
            for v in (
                self.allow_pub_response, self.response_ttl_ns, self.bearer, self.locale,
                self.subs, self.data, self.payload,
            )
        )  # fmt: skip

    def user_only(self) -> list[str]:
        """The fields set here that only a user (or a scoped key's template) has, not account
        default permissions: bearer, source networks, times, locale, connection types, limits."""
        return [
            name
            for name in (
                "bearer", "source_networks", "remove_source_networks", "times", "remove_times",
                "locale", "conn_types", "remove_conn_types", "subs", "data", "payload",
            )
            if getattr(self, name) not in (None, (), [])
        ]  # fmt: skip


def _conn_types(values: Sequence[str], what: str) -> list[str]:
    out = []
    for v in values:
        u = v.strip().upper()
        if u not in CONNECTION_TYPES:
            known = ", ".join(sorted(CONNECTION_TYPES))
            raise StoreError(f"unknown {what}connection type {v!r} (one of {known})", code="store_usage")
        out.append(u)
    return out


def apply_subject_permission_edit(
    perms: Permissions | UserPermissionLimits, edit: PermissionEdit, *, where: str = ""
) -> list[str]:
    """Change the subjects and response permission of ``perms`` (an account's default
    permissions, a user's permissions or a scoped key's template) as nsc's
    ``PermissionsParams.Run`` does; returns what changed, one line each, the fields named after
    ``where`` (e.g. ``default_permissions.``). Only those fields of ``edit`` are read.

    Allow/deny lists are appended to, ``--rm`` removes from all four, and each list is then
    sorted (as nsc). Raises :class:`StoreError` (``store_usage``) for contradicting response
    options; subjects are checked when the claims are validated.
    """
    if edit.remove_response and (edit.allow_pub_response is not None or edit.response_ttl_ns is not None):
        raise StoreError(
            "--rm-response-perms contradicts --allow-pub-response/--response-ttl", code="store_usage"
        )
    changes: list[str] = []
    if edit.remove_response and perms.resp is not None:
        perms.resp = None
        changes.append(f"-{where}resp")
    if edit.allow_pub_response is not None:
        perms.resp = perms.resp or ResponsePermission()
        perms.resp.max = edit.allow_pub_response
        changes.append(f"{where}resp.max={edit.allow_pub_response}")
    if edit.response_ttl_ns is not None:
        perms.resp = perms.resp or ResponsePermission()
        perms.resp.ttl = edit.response_ttl_ns
        changes.append(f"{where}resp.ttl={edit.response_ttl_ns}")
    for label, values, new in (
        ("pub.allow", perms.pub.allow, edit.allow_pub),
        ("pub.deny", perms.pub.deny, edit.deny_pub),
        ("sub.allow", perms.sub.allow, edit.allow_sub),
        ("sub.deny", perms.sub.deny, edit.deny_sub),
    ):
        _add_once(values, new, label=where + label, changes=changes)
        _remove_all(values, edit.remove, label=where + label, changes=changes)
        values.sort()
    return changes


def apply_permission_edit(upl: UserPermissionLimits, edit: PermissionEdit) -> list[str]:
    """Change ``upl`` (a user's permissions and limits, or a scoped key's template) as nsc's
    ``UserPermissionLimits.Run`` does; returns what changed, one line each.

    Subjects and the response permission as :func:`apply_subject_permission_edit`. Connection types
    are upper-cased and must be known; source networks are trimmed and lower-cased and sorted.
    Raises :class:`StoreError` (``store_usage``) for an unknown connection type or
    contradicting response options; subjects, CIDRs, times and the locale are checked when the
    claims are validated.
    """
    conn_add = _conn_types(edit.conn_types, "")
    conn_rm = _conn_types(edit.remove_conn_types, "rm ")
    changes = apply_subject_permission_edit(upl, edit)
    if edit.bearer is not None and edit.bearer != upl.bearer_token:
        upl.bearer_token = edit.bearer
        changes.append(f"bearer_token={_show(edit.bearer)}")
    _add_once(upl.allowed_connection_types, conn_add, label="conn_type", changes=changes)
    _remove_all(upl.allowed_connection_types, conn_rm, label="conn_type", changes=changes)
    src = list(upl.src)
    _add_once(src, [s.strip().lower() for s in edit.source_networks], label="src", changes=changes)
    _remove_all(src, [s.strip().lower() for s in edit.remove_source_networks], label="src", changes=changes)
    upl.src = sorted(src)
    if edit.locale is not None and edit.locale != upl.times_location:
        upl.times_location = edit.locale
        changes.append(f"times_location={edit.locale}")
    for start, end in edit.times:
        upl.times.append(TimeRange(start=start, end=end))
        changes.append(f"+time {start}-{end}")
    for start in edit.remove_times:
        for tr in upl.times:
            if tr.start == start:
                upl.times.remove(tr)
                changes.append(f"-time {tr.start}-{tr.end}")
                break
        else:
            raise StoreError(f"no time range starts at {start!r}", code="store_not_found")
    for attr in ("subs", "data", "payload"):
        value = getattr(edit, attr)
        if value is not None and value != getattr(upl, attr):
            setattr(upl, attr, value)
            changes.append(f"{attr}={value}")
    return changes


@dataclass(repr=False, eq=False)
class Edited:
    """What an ``edit`` command changed: the entity, its JWT file, one line per change, and
    details of the command (added keys, re-signed accounts, the creds file…)."""

    kind: str
    name: str
    public_key: str
    path: str
    changes: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "public_key": self.public_key,
            "jwt": self.path,
            "changes": self.changes,
            **self.details,
        }


# --- edit user ----------------------------------------------------------------------------------


def _refuse_revoked_reissue(acct: AccountClaims, uc: UserClaims, what: str) -> None:
    """Re-signing a revoked user gives it a later ``iat`` than its revocation, which would lift
    the revocation (Go ``IsClaimRevoked`` compares the revocation time with ``iat``)."""
    if acct.is_revoked(uc.sub, uc.iat):
        raise StoreError(
            f"{what} is revoked in account {acct.name!r}; re-signing it would lift the revocation "
            "(delete the revocation first, or add a new user)",
            code="store_revoked",
        )


def edit_user(
    ws: Workspace,
    operator: str,
    account: str,
    name: str,
    edit: PermissionEdit,
    *,
    now: int,
    claim_edit: ClaimEdit | None = None,
    signing_key: str | None = None,
) -> Edited:
    """``nsc edit user``: change a user's permissions, limits, tags and times, re-sign it and
    rewrite its creds (when its seed is in the keystore).

    Signed by ``signing_key`` (``-K``: public key or role, see :func:`resolve_signing_key`), else
    by the key that issued it. A user of a scoped key carries no permissions (``scoped_with_permissions``),
    a bearer user needs an account that allows bearer tokens, and a revoked user is not re-signed
    (``store_revoked``). Raises :class:`StoreError` or :class:`ClaimsInvalidError`; nothing is
    written on error.
    """
    if edit.is_empty() and (claim_edit is None or claim_edit.is_empty()) and signing_key is None:
        raise StoreError("nothing to change: give at least one edit option", code="store_usage")
    store = ws.open(operator)
    acct = store.account_claims(account)
    uc = store.user_claims(account, name)
    _refuse_revoked_reissue(acct, uc, f"user {name!r}")
    if signing_key is not None:
        key = resolve_signing_key(acct, signing_key)
    elif acct.did_sign(uc):
        key = uc.iss
    else:
        raise StoreError(
            f"user {name!r} was issued by {uc.iss}, no longer a key of account {account!r}: "
            "pass -K to choose the signing key",
            code="store_not_found",
        )
    signer = ws.key(key, f"account {account!r} signing" if key != acct.sub else f"account {account!r}")
    changes = _apply_claim_edit(uc, claim_edit or ClaimEdit())
    upl = uc.permission_limits
    changes += apply_permission_edit(upl, edit)
    uc.set_permission_limits(upl)
    scope = acct.signing_keys.get(key) if key != acct.sub else None
    if scope is not None and not uc.has_empty_permissions():
        raise StoreError(
            f"signing key {key} is scoped (role {scope.role!r}): its users carry no permissions of "
            "their own; edit the role's template with `edit signing-key` instead",
            code="scoped_with_permissions",
        )
    if uc.bearer_token and acct.limits.disallow_bearer:
        raise StoreError(f"account {account!r} disallows bearer tokens", code="store_usage")
    issuer_account = acct.sub if key != acct.sub else ""
    if key != uc.iss:
        changes.append(f"iss={key}")
    uc.issuer_account = issuer_account
    _refuse_invalid(uc, now, f"user {name!r}")
    token = uc.encode(signer, iat=max(now, uc.iat))
    path = store.write_user_jwt(account, token, name)
    user_kp = ws.keystore.get_key(uc.sub)
    creds = None
    if user_kp is not None:
        creds = str(
            ws.keystore.write_creds(store.name, account, name, format_user_creds(token, user_kp.seed))
        )
    return Edited("user", name, uc.sub, str(path), changes, {"issuer": key, "creds": creds})


# --- edit signing-key (a scoped key's template) -------------------------------------------------


def edit_signing_key(
    ws: Workspace,
    operator: str,
    account: str,
    key_ref: str,
    edit: PermissionEdit,
    *,
    now: int,
    role: str | None = None,
    description: str | None = None,
) -> Edited:
    """``nsc edit signing-key``: change a scoped signing key's role, description and template
    (the same flags as users), or make an unscoped signing key scoped; re-sign the account.

    ``key_ref`` is the signing key's public key or its role. Making a key scoped (or changing
    its template) changes what its users may do as soon as the account is pushed; users it
    signed that carry permissions of their own are listed in ``warnings`` (the server refuses
    them under a scope). Raises :class:`StoreError` (unknown key, the account's identity key,
    a role already taken) or :class:`ClaimsInvalidError`; nothing is written on error.
    """
    store = ws.open(operator)
    claims = store.account_claims(account)
    key = resolve_signing_key(claims, key_ref)
    if key == claims.sub:
        raise StoreError(
            f"{key} is the identity key of account {account!r}, not a signing key", code="store_usage"
        )
    scope = claims.signing_keys[key]
    changes: list[str] = []
    if scope is None:
        scope = UserScope(key=key)
        changes.append("scoped")
    elif edit.is_empty() and role is None and description is None:
        raise StoreError("nothing to change: give at least one edit option", code="store_usage")
    if role is not None:
        if not role or role != role.strip():
            raise StoreError("a role may not be empty or have surrounding spaces", code="store_usage")
        _refuse_taken_role(claims, account, role, key=key)
        if role != scope.role:
            scope.role = role
            changes.append(f"role={role}")
    if description is not None and description != scope.description:
        scope.description = description
        changes.append(f"description={description}")
    changes += [f"template.{c}" for c in apply_permission_edit(scope.template, edit)]
    claims.add_signing_key(key, scope)
    warnings = [
        f"user {user!r} carries permissions of its own: the server refuses it under a scoped key"
        for user in store.list_users(account)
        if (uc := store.user_claims(account, user)).iss == key and not uc.has_empty_permissions()
    ]
    path = _resign_account(ws, store, claims, now=now)
    return Edited(
        "signing_key",
        account,
        key,
        str(path),
        changes,
        {"account": account, "role": scope.role, "template": scope.template.to_json(), "warnings": warnings},
    )


# --- edit operator ------------------------------------------------------------------------------


@dataclass(repr=False, eq=False)
class OperatorEdit:
    """What ``edit operator`` changes (nsc's flags); empty or ``None`` leaves a value as it is."""

    service_urls: Sequence[str] = ()
    rm_service_urls: Sequence[str] = ()
    account_server_url: str | None = None
    rm_account_server_url: bool = False
    generate_signing_keys: int = 0
    add_signing_keys: Sequence[str] = ()
    remove_signing_keys: Sequence[str] = ()
    require_signing_keys: bool | None = None
    #: a system account by name (of this operator's store) or public key
    system_account: str | None = None
    claim: ClaimEdit = field(default_factory=ClaimEdit)

    def is_empty(self) -> bool:
        return (
            not self.service_urls
            and not self.rm_service_urls
            and self.account_server_url is None
            and not self.rm_account_server_url
            and not self.generate_signing_keys
            and not self.add_signing_keys
            and not self.remove_signing_keys
            and self.require_signing_keys is None
            and self.system_account is None
            and self.claim.is_empty()
        )


def _system_account_key(store: Store, ref: str) -> str:
    """An account name of the store or an account public key → the key; a system account may
    not have JetStream limits (nsc refuses them too)."""
    if nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT):
        name = store.find_account(ref)
        if name is None:
            return ref
    else:
        name = ref
    claims = store.account_claims(name)
    if claims.limits.tiered_limits or claims.limits.jetstream_global().to_json():
        raise StoreError(
            f"account {name!r} has JetStream limits: a system account may not (remove them first)",
            code="store_usage",
        )
    return claims.sub


def _check_strict(store: Store, op: OperatorClaims) -> None:
    """nsc's checks before requiring signing keys: no account issued by the operator identity,
    no user issued by its account's identity key."""
    for account in store.list_accounts():
        ac = store.account_claims(account)
        if ac.iss == op.sub:
            raise StoreError(
                f"account {account!r} is issued by the operator identity key: re-sign it with a "
                "signing key first",
                code="store_usage",
            )
        for user in store.list_users(account):
            if store.user_claims(account, user).iss == ac.sub:
                raise StoreError(
                    f"user {user!r} of account {account!r} is issued by the account identity key: "
                    "re-issue it with a signing key first",
                    code="store_usage",
                )


def edit_operator(ws: Workspace, operator: str, edit: OperatorEdit, *, now: int) -> Edited:
    """``nsc edit operator``: service URLs, account server URL, signing keys, strict signing-key
    usage, the system account, tags and times; self-signed with the operator's identity key.

    Beyond nsc (nsc #394): accounts issued by a removed signing key are re-signed with a key
    the edited operator still trusts (listed in ``accounts_resigned``), so none of them is left
    untrusted. Raises :class:`StoreError` or :class:`ClaimsInvalidError`; nothing is written on
    error.
    """
    if edit.is_empty():
        raise StoreError("nothing to change: give at least one edit option", code="store_usage")
    if edit.account_server_url is not None and edit.rm_account_server_url:
        raise StoreError(
            "--account-jwt-server-url contradicts --rm-account-jwt-server-url", code="store_usage"
        )
    store = ws.open(operator)
    op = store.operator_claims()
    old = store.operator_claims()  # a second copy: ``op`` is edited in place
    identity = ws.key(op.sub, f"operator {operator!r}")
    changes = _apply_claim_edit(op, edit.claim)
    for url in edit.service_urls:
        u = url.strip().lower()  # nsc lower-cases service URLs
        if u and u not in op.operator_service_urls:
            op.operator_service_urls.append(u)
            changes.append(f"+service_url {u}")
    for url in edit.rm_service_urls:
        u = url.strip().lower()
        if u not in op.operator_service_urls:
            raise StoreError(f"{url!r} is not a service URL of operator {operator!r}", code="store_not_found")
        op.operator_service_urls.remove(u)
        changes.append(f"-service_url {u}")
    if edit.account_server_url is not None and edit.account_server_url != op.account_server_url:
        op.account_server_url = edit.account_server_url.strip()
        changes.append(f"account_server_url={op.account_server_url}")
    if edit.rm_account_server_url and op.account_server_url:
        op.account_server_url = ""
        changes.append("-account_server_url")
    new_keys, added, removed = _edit_signing_keys(
        edit,
        PrefixByte.OPERATOR,
        f"operator {operator!r}",
        op.sub,
        op.signing_keys,
        add=op.signing_keys.append,
        remove=op.signing_keys.remove,
    )
    if edit.require_signing_keys is not None and edit.require_signing_keys != op.strict_signing_key_usage:
        op.strict_signing_key_usage = edit.require_signing_keys
        changes.append(f"strict_signing_key_usage={_show(edit.require_signing_keys)}")
    if op.strict_signing_key_usage:
        if not op.signing_keys:
            raise StoreError("an operator that requires signing keys needs at least one", code="store_usage")
        if not old.strict_signing_key_usage:
            _check_strict(store, op)
    if edit.system_account is not None:
        sys_key = _system_account_key(store, edit.system_account)
        if sys_key != op.system_account:
            op.system_account = sys_key
            changes.append(f"system_account={sys_key}")
    _refuse_invalid(op, now, f"operator {operator!r}")
    # accounts whose issuer the edited operator no longer trusts are re-signed
    stale = [
        (name, claims)
        for name in store.list_accounts()
        if not op.did_sign(claims := store.account_claims(name)) and old.did_sign(claims)
    ]
    signer = None
    if stale:  # chosen as _operator_signer will choose it, before anything is written
        fresh = {kp.public_key: kp for kp in new_keys}
        signer = next(
            (kp for key in op.trusted_keys() if (kp := fresh.get(key) or ws.keystore.get_key(key))), None
        )
        if signer is None:
            raise StoreError(f"no key of operator {operator!r} that may sign accounts is in the keystore")
    for kp in new_keys:
        ws.keystore.store_key(kp)
    token = op.encode(identity, iat=max(now, op.iat))
    # write in the order that never leaves an account untrusted by the stored operator: with a
    # signer the old operator trusts too, accounts first; with a brand-new signing key, operator first
    accounts_first = signer is not None and signer.public_key in old.trusted_keys()
    if not accounts_first:
        path = store.write_operator_jwt(token)
    resigned = []
    for name, claims in stale:
        _resign_account(ws, store, claims, now=now, operator=op)
        resigned.append(name)
    if accounts_first:
        path = store.write_operator_jwt(token)
    return Edited(
        "operator",
        operator,
        op.sub,
        str(path),
        changes,
        {"signing_keys_added": added, "signing_keys_removed": removed, "accounts_resigned": resigned},
    )


# --- edit authcallout ---------------------------------------------------------------------------


@dataclass(repr=False, eq=False)
class AuthCalloutEdit:
    """``edit authcallout`` (nsc ``editauthorization.go``). Users by public key or user name of
    the account; accounts by public key, account name or ``*``; ``curve`` is ``generate`` or an
    X… public key."""

    auth_users: Sequence[str] = ()
    rm_auth_users: Sequence[str] = ()
    allowed_accounts: Sequence[str] = ()
    rm_allowed_accounts: Sequence[str] = ()
    curve: str | None = None
    rm_curve: bool = False
    disable: bool = False

    def is_empty(self) -> bool:
        return (
            not self.auth_users
            and not self.rm_auth_users
            and not self.allowed_accounts
            and not self.rm_allowed_accounts
            and self.curve is None
            and not self.rm_curve
            and not self.disable
        )


def _user_key(store: Store, account: str, ref: str) -> str:
    if nkeys.is_valid_public_key(ref, PrefixByte.USER):
        return ref
    if store.has_user(account, ref):
        return store.user_claims(account, ref).sub
    raise StoreError(
        f"{ref!r} is neither a user public key nor a user of account {account!r}", code="store_usage"
    )


def _account_key(store: Store, ref: str) -> str:
    if ref == ALL_USERS or nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT):
        return ref
    if store.has_account(ref):
        return store.account_claims(ref).sub
    raise StoreError(
        f"{ref!r} is neither '*', an account public key nor an account of operator {store.name!r}",
        code="store_usage",
    )


def edit_authcallout(
    ws: Workspace, operator: str, account: str, edit: AuthCalloutEdit, *, now: int
) -> Edited:
    """``nsc edit authcallout``: the account's ``authorization`` block (auth callout): the users
    that bypass the callout (the service's own), the accounts it may place users in, the curve
    key requests are encrypted for (``generate``: a new one, its seed stored). ``disable`` clears
    the block and is exclusive of the rest. Re-signed by the operator.

    Raises :class:`StoreError` (``store_usage``) or :class:`ClaimsInvalidError` (e.g. allowed
    accounts without auth users); nothing is written on error.
    """
    if edit.is_empty():
        raise StoreError("nothing to change: give at least one edit option", code="store_usage")
    if edit.disable and not replace(edit, disable=False).is_empty():
        raise StoreError("--disable is exclusive of all other options", code="store_usage")
    if edit.curve is not None and edit.rm_curve:
        raise StoreError("--curve contradicts --rm-curve", code="store_usage")
    store = ws.open(operator)
    claims = store.account_claims(account)
    auth = claims.authorization
    changes: list[str] = []
    new_curve: KeyPair | None = None
    if edit.disable:
        if not auth.is_zero():
            changes.append("-authorization")
        claims.authorization = type(auth)()
    else:
        _add_once(
            auth.auth_users,
            [_user_key(store, account, u) for u in edit.auth_users],
            label="auth_user",
            changes=changes,
        )
        _remove_all(
            auth.auth_users,
            [_user_key(store, account, u) for u in edit.rm_auth_users],
            label="auth_user",
            changes=changes,
        )
        _add_once(
            auth.allowed_accounts,
            [_account_key(store, a) for a in edit.allowed_accounts],
            label="allowed_account",
            changes=changes,
        )
        _remove_all(
            auth.allowed_accounts,
            [_account_key(store, a) for a in edit.rm_allowed_accounts],
            label="allowed_account",
            changes=changes,
        )
        if edit.rm_curve and auth.xkey:
            changes.append(f"-xkey {auth.xkey}")
            auth.xkey = ""
        if edit.curve is not None:
            if edit.curve == "generate":
                new_curve = KeyPair.generate(PrefixByte.CURVE)
                xkey = new_curve.public_key
            elif nkeys.is_valid_public_key(edit.curve, PrefixByte.CURVE):
                xkey = edit.curve
            else:
                raise StoreError(
                    f"{edit.curve!r} is neither 'generate' nor a curve (X…) public key", code="store_usage"
                )
            if xkey != auth.xkey:
                auth.xkey = xkey
                changes.append(f"xkey={xkey}")
    seeds = [] if new_curve is None else [new_curve]
    path = _store_seeds_and_resign(ws, store, claims, account, seeds, now=now)
    details = {"authorization": claims.authorization.to_json()}
    return Edited("authcallout", account, claims.sub, str(path), changes, details)


# --- pull: verify account JWTs read from a server, then store them ------------------------------


@dataclass(repr=False, eq=False)
class PulledRow:
    """One account JWT a server gave: what happened to it (``added``, ``updated``,
    ``unchanged``, ``kept-local``: the stored one is as new or newer, ``refused``: not stored)."""

    account: str
    public_key: str
    status: str
    message: str
    iat: int = 0
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "public_key": self.public_key,
            "status": self.status,
            "message": self.message,
            "iat": self.iat,
            "jwt": self.path,
        }


@dataclass(repr=False, eq=False)
class PullReport:
    rows: list[PulledRow]

    @property
    def refused(self) -> list[PulledRow]:
        return [r for r in self.rows if r.status == "refused"]


def _verify_pulled(
    op: OperatorClaims, expected: str, token: str, now: int
) -> tuple[AccountClaims | None, str]:
    """(claims, "") for a JWT the operator vouches for, else (None, why it is refused)."""
    from trustkit.jwt.decoder import decode

    try:
        claims = decode(token.strip(), AccountClaims)
    except TokenError as exc:
        return None, f"not a valid account JWT: {exc.message}"
    if claims.sub != expected:
        return None, f"the server sent the JWT of {claims.sub} for {expected}"
    if not op.did_sign(claims):
        return None, f"issued by {claims.iss}, not by operator {op.name!r} or one of its signing keys"
    errors = claims.validate(now=now).errors
    if errors:
        return None, f"invalid: {'; '.join(errors)}"
    return claims, ""


def store_pulled(
    ws: Workspace,
    operator: str,
    tokens: Sequence[tuple[str, str]],
    *,
    now: int,
    overwrite_newer: bool = False,
) -> PullReport:
    """Store account JWTs read from a server (``pull``): ``tokens`` are unverified
    ``(account public key, JWT)`` pairs, several per account when several servers answered.

    Every JWT is verified first: a valid account JWT of that very key, issued by the operator
    or one of its signing keys, without validation errors. One that fails, or that would
    overwrite another account of the same name, is ``refused`` -- and then **nothing** is
    written (fail closed). Otherwise, per account, the newest JWT (by ``iat``) is written when
    it is newer than the stored one (``overwrite_newer``: also when it is older); files are
    named after the local account, or the JWT's name for a new one. One row per account.
    """
    store = ws.open(operator)
    op = store.operator_claims()
    local: dict[str, tuple[str, AccountClaims]] = {}
    for name in store.list_accounts():
        claims = store.account_claims(name)
        local[claims.sub] = (name, claims)
    by_name = {name: key for key, (name, _) in local.items()}
    best: dict[str, AccountClaims] = {}
    refused: dict[str, str] = {}
    for key, token in tokens:
        pulled, why = _verify_pulled(op, key, token, now)
        if pulled is None:
            refused.setdefault(key, why)
        elif key not in best or pulled.iat > best[key].iat:
            best[key] = pulled
    plan: list[tuple[str, AccountClaims, str]] = []  # (name, claims, status)
    rows: list[PulledRow] = []
    for key in dict.fromkeys(k for k, _ in tokens):
        local_name = local[key][0] if key in local else ""
        if key in refused:
            rows.append(PulledRow(local_name, key, "refused", refused[key]))
            continue
        claims = best[key]
        name = local_name or claims.name
        if not name:
            rows.append(
                PulledRow("", key, "refused", "the JWT has no name and the account is not in the store")
            )
            continue
        if claims.name and claims.name != name:
            rows.append(PulledRow(name, key, "refused", f"the server names account {name!r} {claims.name!r}"))
            continue
        if not local_name and by_name.get(name, key) != key:
            rows.append(
                PulledRow(
                    name, key, "refused", f"the store has another account named {name!r} ({by_name[name]})"
                )
            )
            continue
        if not local_name:
            plan.append((name, claims, "added"))
            continue
        mine = local[key][1]
        if mine.token == claims.token:
            rows.append(PulledRow(name, key, "unchanged", "same JWT as stored", claims.iat))
        elif claims.iat > mine.iat or overwrite_newer:
            plan.append((name, claims, "updated"))
        else:
            why = f"the stored JWT is as new or newer (iat {mine.iat} >= {claims.iat})"
            why += ": --overwrite-newer replaces it"
            rows.append(PulledRow(name, key, "kept-local", why, claims.iat))
    if any(r.status == "refused" for r in rows):
        rows += [PulledRow(n, c.sub, "not-written", "another JWT was refused", c.iat) for n, c, _ in plan]
        return PullReport(rows)
    for name, claims, status in plan:
        assert claims.token is not None
        path = store.write_account_jwt(claims.token, name)
        rows.append(PulledRow(name, claims.sub, status, f"stored (iat {claims.iat})", claims.iat, str(path)))
    order = {k: i for i, k in enumerate(dict.fromkeys(k for k, _ in tokens))}
    rows.sort(key=lambda r: order.get(r.public_key, len(order)))
    return PullReport(rows)


# --- push --prune / --account-removal -----------------------------------------------------------


def server_url(store: Store, explicit: str | None) -> str:
    """Where ``push``/``pull`` go: ``explicit`` (``-u``), else the operator's account server URL
    (a ``nats://``-style URL, or an ``http(s)://`` account server, as nsc), else its first service
    URL. Raises :class:`StoreError` (``store_usage``) when there is none."""
    if explicit:
        return explicit
    op = store.operator_claims()
    asu = op.account_server_url
    if asu and asu.split("://", 1)[0].lower() in ("nats", "tls", "ws", "wss", "http", "https"):
        return asu
    if op.operator_service_urls:
        return op.operator_service_urls[0]
    raise StoreError(
        "no server URL: pass -u nats://host:port or set the operator's account server or service URL",
        code="store_usage",
    )


def check_pushable(ws: Workspace, operator: str, accounts: Sequence[str], *, now: int) -> None:
    """nsc's check before a push (skipped with ``--force``): every account JWT is signed by the
    operator (or one of its signing keys) and has no validation error or failed time check.
    Raises :class:`ClaimsInvalidError` naming the first account that is not."""
    store = ws.open(operator)
    op = store.operator_claims()
    for name in accounts:
        claims = store.account_claims(name)
        problems = claims.validate(now=now).blocking_messages(include_time_checks=True)
        if problems:
            raise ClaimsInvalidError(
                f"unable to push account {name!r}: {'; '.join(problems)} (--force pushes it)"
            )
        if not store.managed and not op.did_sign(claims):
            raise ClaimsInvalidError(
                f"unable to push account {name!r}: not signed by operator {operator!r} (--force pushes it)"
            )


def account_public_key(ws: Workspace, operator: str, ref: str) -> str:
    """``push --account-removal``: an account name of the store, or an account public key.
    The operator's system account is refused (nats-server refuses to delete it too)."""
    store = ws.open(operator)
    key = ref if nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT) else store.account_claims(ref).sub
    if key == store.operator_claims().system_account:
        raise StoreError(f"{ref} is the system account: it cannot be removed", code="store_usage")
    return key


def prune_candidates(ws: Workspace, operator: str, server_accounts: Sequence[Sequence[str]]) -> list[str]:
    """``push --prune``: the account keys some server holds that are not in the store (never the
    system account), in the order first listed. ``server_accounts``: each server's LIST reply."""
    store = ws.open(operator)
    keep = {store.account_claims(name).sub for name in store.list_accounts()}
    keep.add(store.operator_claims().system_account)
    return list(dict.fromkeys(k for accounts in server_accounts for k in accounts if k not in keep))


def operator_request_key(ws: Workspace, operator: str) -> KeyPair:
    """The key that signs a delete request (nsc ``obtainRequestKey``): the operator identity key
    (unless it requires signing keys), else its first signing key in the keystore."""
    op = ws.open(operator).operator_claims()
    return _operator_signer(ws, op, purpose="delete accounts", name=operator)


# --- rotate an account signing key --------------------------------------------------------------


@dataclass(repr=False, eq=False)
class RotatedUser:
    name: str
    public_key: str
    status: str  # "re-signed" | "skipped"
    message: str
    path: str
    creds: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "status": self.status,
            "message": self.message,
            "jwt": self.path,
            "creds": self.creds,
        }


@dataclass(repr=False, eq=False)
class RotateReport:
    account: str
    old_key: str
    new_key: str
    role: str
    path: str
    users: list[RotatedUser]

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "old_key": self.old_key,
            "new_key": self.new_key,
            "role": self.role,
            "jwt": self.path,
            "users": [u.to_json() for u in self.users],
        }


def rotate_signing_key(
    ws: Workspace,
    operator: str,
    account: str,
    key_ref: str,
    *,
    now: int,
    on_user: Any = None,
) -> RotateReport:
    """Replace an account signing key (beyond nsc, nsc #394): a new key with the same scope
    (role, template) or none, every user the old key issued re-signed by the new one with its
    creds rewritten, the old key removed from the account.

    Steps, each write atomic, in an order where every intermediate state is valid: the new seed
    is stored; the account is re-signed holding both keys; each user is re-signed (JWT, then
    creds when the user's seed is in the keystore); the account is re-signed without the old
    key. A revoked user is ``skipped`` (a later ``iat`` would lift its revocation); it stops
    working once the account without the old key is pushed, like every user still holding a
    copy of old creds. The old seed stays in the keystore. ``on_user(done, total)`` is called
    after each user (progress). Raises :class:`StoreError` (unknown key, the identity key, a key whose
    seed is not needed but whose users are corrupt…) before anything is written.
    """
    store = ws.open(operator)
    claims = store.account_claims(account)
    old = resolve_signing_key(claims, key_ref)
    if old == claims.sub:
        raise StoreError(
            f"{old} is the identity key of account {account!r}: only signing keys are rotated",
            code="store_usage",
        )
    scope = claims.signing_keys[old]
    new = KeyPair.generate(PrefixByte.ACCOUNT)
    new_scope = None if scope is None else UserScope.from_json(scope.to_json())
    plan: list[tuple[str, UserClaims, str]] = []  # (name, claims, token or "")
    for name in store.list_users(account):
        uc = store.user_claims(account, name)
        if uc.iss != old:
            continue
        if claims.is_revoked(uc.sub, uc.iat):
            plan.append((name, uc, ""))
            continue
        uc.issuer_account = claims.sub
        _refuse_invalid(uc, now, f"user {name!r}")
        plan.append((name, uc, uc.encode(new, iat=now)))
    claims.add_signing_key(new.public_key, new_scope)
    _store_seeds_and_resign(ws, store, claims, account, [new], now=now)
    users: list[RotatedUser] = []
    for i, (name, uc, token) in enumerate(plan, 1):
        path = store.user_jwt_path(account, name)
        if not token:
            users.append(
                RotatedUser(
                    name, uc.sub, "skipped", "revoked: re-signing would lift the revocation", str(path), None
                )
            )
        else:
            store.write_user_jwt(account, token, name)
            kp = ws.keystore.get_key(uc.sub)
            creds = None
            if kp is not None:
                creds = str(
                    ws.keystore.write_creds(store.name, account, name, format_user_creds(token, kp.seed))
                )
            message = "re-signed" + (
                "" if creds else "; creds not rewritten: the user's seed is not in the keystore"
            )
            users.append(RotatedUser(name, uc.sub, "re-signed", message, str(path), creds))
        if on_user is not None:
            on_user(i, len(plan))
    del claims.signing_keys[old]
    path = _resign_account(ws, store, claims, now=now)
    return RotateReport(account, old, new.public_key, scope.role if scope else "", str(path), users)


# --- keys export / import -----------------------------------------------------------------------


@dataclass(repr=False, eq=False)
class KeyFileRow:
    """One file of ``keys export``/``keys import``: a key's seed file (never the seed itself),
    or with ``keys export --include-jwts`` an entity's JWT (``content`` ``"jwt"``)."""

    public_key: str
    kind: str
    entity: str
    file: str
    status: str
    content: str = "seed"

    def to_json(self) -> dict[str, str]:
        return {
            "public_key": self.public_key,
            "kind": self.kind,
            "entity": self.entity,
            "content": self.content,
            "file": self.file,
            "status": self.status,
        }


def _collect_keys(
    store: Store, account: str | None, user: str | None
) -> list[tuple[str, str, str, Path | None]]:
    """nsc's ``KeyCollectorParams``: (public key, kind, entity, JWT file) for the operator and
    its signing keys, then ``account`` (or every account) with its signing keys and callout
    curve key, and its users (or just ``user``). The JWT file is the entity's own (operator,
    account, user); signing and curve keys have none."""
    op = store.operator_claims()
    out: list[tuple[str, str, str, Path | None]] = [
        (op.sub, "operator", f"operator {store.name}", store.operator_jwt_path())
    ]
    out += [(k, "operator", f"operator {store.name} signing key", None) for k in op.signing_keys]
    for name in [account] if account else store.list_accounts():
        acct = store.account_claims(name)
        where = f"{store.name}/{name}"
        out.append((acct.sub, "account", f"account {where}", store.account_jwt_path(name)))
        out += [(k, "account", f"account {where} signing key", None) for k in sorted(acct.signing_keys)]
        if acct.authorization.xkey:
            out.append((acct.authorization.xkey, "curve", f"account {where} callout xkey", None))
        for u in [user] if user else store.list_users(name):
            uc = store.user_claims(name, u)
            out.append((uc.sub, "user", f"user {where}/{u}", store.user_jwt_path(name, u)))
    return out


def _kind_label(key: str) -> str:
    try:
        return nkeys.prefix_of(key).label
    except NKeyError:
        return "unknown"


def export_keys(
    ws: Workspace,
    operator: str,
    directory: str | os.PathLike[str],
    *,
    account: str | None = None,
    user: str | None = None,
    kinds: Sequence[str] = ("operator", "account", "user", "curve"),
    not_referenced: bool = False,
    key_filter: str = "",
    remove: bool = False,
    include_jwts: bool = False,
    force: bool = False,
) -> list[KeyFileRow]:
    """``nsc export keys``: copy seeds of the operator's entities to ``<directory>/<PUB>.nk``
    (0600, directory 0700): the operator, ``account`` (or every account) and its users (or just
    ``user``), keeping ``kinds`` and keys containing ``key_filter``; ``not_referenced``: the
    keystore's keys no entity of this operator uses instead.

    A file already there with the same seed is ``unchanged`` (nsc refuses it too; here a
    re-export is idempotent); one holding anything else refuses the whole export
    (``store_key_conflict``, nsc's "already exists - specify --force to overwrite") unless
    ``force`` (nsc ``--force``) replaces it atomically (0600, ``overwritten``). A key without a
    seed in the keystore is ``no-seed``. ``remove`` deletes each exported seed from the keystore
    once its copy is verified. Raises :class:`StoreError`; nothing is written on error.

    ``include_jwts`` (nsc ``--include-jwts``) also copies the JWT of every exported operator,
    account and user key, as stored, to ``<directory>/<PUB>.jwt`` (0600, as nsc), seed or not;
    signing keys, curve keys and ``not_referenced`` keys have no JWT. Their rows follow the
    seeds' rows (``content`` ``"jwt"``); the same overwrite rule applies, and ``remove``
    never touches the store's JWTs.
    """
    from trustkit.store import fsio

    store = ws.open(operator)
    found = _collect_keys(store, account, user)
    if not_referenced:  # against every entity of the operator, whatever account was chosen
        used = {k for k, _, _, _ in _collect_keys(store, None, None)}
        found = [
            (k, _kind_label(k), "not referenced", None) for k in ws.keystore.all_keys() if k not in used
        ]
    wanted = set(kinds)
    needle = key_filter.upper()
    keys = [row for row in dict.fromkeys(found) if row[1] in wanted and needle in row[0]]
    if not keys:
        raise StoreError("no keys found to export", code="store_not_found")
    dest = Path(directory)
    if dest.exists() and not dest.is_dir():
        raise StoreError(f"{dest} is not a directory", code="store_usage")
    jobs: list[tuple[str, str, str, Path, str, bool]] = []  # key, kind, entity, file, seed or "", force
    rows: list[KeyFileRow] = []
    jwt_jobs: list[tuple[KeyFileRow, bytes]] = []  # row, JWT bytes to write or b"" (unchanged)

    def refuse_overwrite(target: Path) -> None:
        if not force:
            raise StoreError(
                f"{target} already exists and holds something else - specify --force to overwrite",
                code="store_key_conflict",
            )

    seen: set[str] = set()
    for key, kind, entity, jwt_path in keys:
        if key in seen:
            continue
        seen.add(key)
        if include_jwts and jwt_path is not None:
            token = fsio.read_bytes(jwt_path)
            jwt_target = dest / f"{key}.jwt"
            there = fsio.try_read_bytes(jwt_target)
            differs = there is not None and there.strip() != token.strip()
            if differs:
                refuse_overwrite(jwt_target)
            status = "exported" if there is None else "overwritten" if differs else "unchanged"
            row = KeyFileRow(key, kind, entity, str(jwt_target), status, content="jwt")
            jwt_jobs.append((row, token if there is None or differs else b""))
        target = dest / f"{key}.nk"
        kp = ws.keystore.get_key(key)
        if kp is None:
            rows.append(KeyFileRow(key, kind, entity, "", "no-seed"))
            continue
        existing = fsio.try_read_bytes(target)
        replace_it = existing is not None and existing.strip() != kp.seed.encode()
        if replace_it:
            refuse_overwrite(target)
        seed = kp.seed if existing is None or replace_it else ""
        jobs.append((key, kind, entity, target, seed, replace_it))
    for key, kind, entity, target, seed, replace_it in jobs:
        status = "unchanged"
        if replace_it:  # --force
            fsio.atomic_write(target, seed.encode(), mode=0o600)
            status = "overwritten"
        elif seed:
            fsio.ensure_dir(dest)
            if not fsio.atomic_create(target, seed.encode(), mode=0o600):
                if fsio.read_bytes(target).strip() != seed.encode():  # written meanwhile by someone
                    raise StoreError(
                        f"{target} appeared meanwhile with other content", code="store_key_conflict"
                    )
            status = "exported"
        if remove:
            if fsio.read_bytes(target).strip() != ws.key(key, kind).seed.encode():
                raise StoreError(
                    f"{target} does not hold the seed of {key}: not removed", code="store_corrupt"
                )
            ws.keystore.remove_key(key)
            status = "moved"
        rows.append(KeyFileRow(key, kind, entity, str(target), status))
    for row, token in jwt_jobs:
        if row.status == "overwritten":  # --force
            fsio.atomic_write(row.file, token, mode=0o600)
        elif token:
            fsio.ensure_dir(dest)
            if not fsio.atomic_create(row.file, token, mode=0o600):
                if fsio.read_bytes(row.file).strip() != token.strip():  # written meanwhile
                    raise StoreError(
                        f"{row.file} appeared meanwhile with other content", code="store_key_conflict"
                    )
                row.status = "unchanged"
        rows.append(row)
    return rows


def import_keys(
    ws: Workspace, directory: str | os.PathLike[str], *, recurse: bool = False
) -> list[KeyFileRow]:
    """``nsc import keys``: store every ``*.nk`` seed file of ``directory`` (and its
    subdirectories with ``recurse``) in the keystore (0600).

    Every file is read and checked first: it must hold one seed, and a file named
    ``<PUB>.nk`` must hold that key's seed. A key already stored is ``unchanged``; a different
    seed is never overwritten. Raises :class:`StoreError` naming the file; nothing is written
    on error.
    """
    from trustkit.store import fsio

    src = Path(directory)
    if not src.is_dir():
        raise StoreError(f"{src} is not a directory", code="store_not_found")
    files = sorted(src.rglob("*.nk") if recurse else src.glob("*.nk"))
    files = [f for f in files if f.is_file()]
    if not files:
        raise StoreError(f"no nkey (.nk) files found in {src}", code="store_not_found")
    pairs: list[tuple[Path, KeyPair]] = []
    for f in files:
        data = fsio.read_bytes(f).strip()
        try:
            kp = KeyPair.from_seed(data)
        except NKeyError:
            raise StoreError(f"{f} does not hold a valid seed", code="store_corrupt") from None
        stem = f.name[: -len(".nk")]
        if nkeys.is_valid_public_key(stem) and stem != kp.public_key:
            raise StoreError(f"{f} holds the seed of another key ({kp.public_key})", code="store_corrupt")
        stored = ws.keystore.get_key(kp.public_key)  # raises for a corrupt stored file
        if stored is not None and stored.seed != kp.seed:
            raise StoreError(f"key {kp.public_key} is stored with another seed", code="store_key_conflict")
        pairs.append((f, kp))
    rows = []
    for f, kp in pairs:
        status = "unchanged" if ws.keystore.has_key(kp.public_key) else "imported"
        ws.keystore.store_key(kp)
        rows.append(KeyFileRow(kp.public_key, kp.kind.label, "", str(f), status))
    return rows
