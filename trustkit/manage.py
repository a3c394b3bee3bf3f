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

from trustkit.creds import format_user_creds
from trustkit.errors import StoreError
from trustkit.jwt.account import AccountClaims
from trustkit.jwt.operator import OperatorClaims
from trustkit.jwt.types import SERVICE, STREAM, Export, Permission, ResponsePermission
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config, nats_resolver_config
from trustkit.store import KeyStore, Store, StoreDirs, check_name, gitignore_enabled, resolve_dirs

__all__ = [
    "EntityReport",
    "InitReport",
    "Workspace",
    "add_account",
    "add_user",
    "init",
    "revoke_user",
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
) -> EntityReport:
    """``nsc add user``: a user of ``account`` issued by the account key, with its creds file."""
    store = ws.open(operator)
    check_name("user", name)
    if store.has_user(account, name):
        raise StoreError(f"user {name!r} already exists in account {account!r}")
    acct = store.account_claims(account)
    signer = ws.key(acct.sub, f"account {account!r}")
    return _issue_user(
        ws,
        store,
        account,
        name,
        signer,
        now=now,
        pub=Permission(allow=list(allow_pub), deny=list(deny_pub)),
        sub_perms=Permission(allow=list(allow_sub), deny=list(deny_sub)),
        resp=None
        if allow_pub_response is None
        else ResponsePermission(max=allow_pub_response, ttl=response_ttl_ns),
        bearer_token=bearer,
        exp=expiry,
        tags=[t.strip().lower() for t in tags if t.strip()],
    )


def _issue_user(
    ws: Workspace, store: Store, account: str, name: str, signer: KeyPair, *, now: int, **claims: object
) -> EntityReport:
    user = _new_key(ws, PrefixByte.USER)
    uc = UserClaims(sub=user.public_key, name=name, **claims)  # type: ignore[arg-type]
    token = uc.encode(signer, iat=now)
    path = store.write_user_jwt(account, token)
    creds = ws.keystore.write_creds(store.name, account, name, format_user_creds(token, user.seed))
    return EntityReport("user", name, user.public_key, str(path), str(creds))


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
    if user is not None:
        public_key = store.user_claims(account, user).sub
    if not public_key:
        raise StoreError("name a user or a public key to revoke")
    claims.revoke(public_key, at)
    op_key = _operator_signer(ws, store.operator_claims())
    path = store.write_account_jwt(claims.encode(op_key, iat=max(now, claims.iat + 1)))
    return EntityReport("revocation", user or public_key, public_key, str(path))


def environment() -> Mapping[str, str]:
    """The process environment (only the CLI calls this; library callers pass their own)."""
    return os.environ
