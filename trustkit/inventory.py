"""What is in a workspace, read-only: ``describe``, ``list`` and ``env`` as a library.

Every function takes a :class:`~trustkit.manage.Workspace` and returns plain report objects
(``to_json()``) that the CLI renders. Nothing here writes a file, and no report holds a seed
except :func:`list_keys` when it is explicitly asked for them (``show_seeds=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trustkit import nkeys
from trustkit.errors import NKeyError, StoreError, TokenError
from trustkit.jwt.claims import Claims
from trustkit.manage import Workspace
from trustkit.store import (
    ENV_NKEYS_PATH,
    ENV_NO_GIT_IGNORE,
    ENV_NSC_HOME,
    ENV_TRUSTKIT_HOME,
    Store,
    context_path,
    list_operators,
)

__all__ = [
    "AccountRow",
    "Described",
    "KeyRow",
    "OperatorRow",
    "RevocationRow",
    "UserRow",
    "describe",
    "environment_report",
    "list_account_rows",
    "list_keys",
    "list_operator_rows",
    "list_revocations",
    "list_user_rows",
    "select_field",
]

KINDS = ("operator", "account", "user")


@dataclass(frozen=True)
class Described:
    """One entity's JWT as stored, and its verified claims."""

    kind: str
    name: str
    path: str
    token: str
    claims: Claims

    def payload(self) -> dict[str, Any]:
        """The decoded claims payload (exactly the JSON the token carries, in Go field order)."""
        return self.claims.payload_json()


def describe(
    ws: Workspace, operator: str, kind: str, *, account: str | None = None, name: str | None = None
) -> Described:
    """``nsc describe operator|account|user``: the entity's verified JWT.

    ``operator`` names the store; ``kind == "account"`` needs ``account``; ``kind == "user"``
    needs ``account`` and ``name``. Raises :class:`StoreError` (missing or corrupt JWT,
    ``store_usage`` for an unknown kind or a missing name).
    """
    store = ws.open(operator)
    if kind == "operator":
        return Described(
            kind, operator, str(store.operator_jwt_path()), store.read_operator_jwt(), store.operator_claims()
        )
    if not account:
        raise StoreError(f"describe {kind} needs an account", code="store_usage")
    if kind == "account":
        return Described(
            kind,
            account,
            str(store.account_jwt_path(account)),
            store.read_account_jwt(account),
            store.account_claims(account),
        )
    if kind == "user":
        if not name:
            raise StoreError("describe user needs a user name", code="store_usage")
        return Described(
            kind,
            name,
            str(store.user_jwt_path(account, name)),
            store.read_user_jwt(account, name),
            store.user_claims(account, name),
        )
    raise StoreError(f"unknown entity kind {kind!r} (operator, account or user)", code="store_usage")


def select_field(doc: Any, path: str) -> Any:
    """The value at a dotted ``path`` of a JSON document (``nats.limits.conn``; a leading ``.``
    is allowed, list items by index: ``nats.signing_keys.0.role``).

    Raises :class:`TokenError` (``field_not_found``) naming the path.
    """
    value = doc
    parts = path.lstrip(".").split(".") if path.strip(".") else []
    if not parts:
        raise TokenError("an empty field path", code="field_not_found")
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise TokenError(f"field {path!r} not found", code="field_not_found")
    return value


# --- lists --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorRow:
    name: str
    public_key: str
    accounts: int
    selected: bool
    store: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "accounts": self.accounts,
            "selected": self.selected,
            "store": self.store,
        }


def list_operator_rows(ws: Workspace) -> list[OperatorRow]:
    """``nsc list operators``: every operator store in the stores dir (sorted by name)."""
    selected = ws.context().operator
    rows = []
    for name in list_operators(ws.dirs.stores_dir):
        store = ws.open(name)
        rows.append(
            OperatorRow(
                name,
                store.operator_claims().sub,
                len(store.list_accounts()),
                name == selected,
                str(store.dir),
            )
        )
    return rows


@dataclass(frozen=True)
class AccountRow:
    name: str
    public_key: str
    system: bool
    signing_keys: int
    users: int
    selected: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "system": self.system,
            "signing_keys": self.signing_keys,
            "users": self.users,
            "selected": self.selected,
        }


def list_account_rows(ws: Workspace, operator: str) -> list[AccountRow]:
    """``nsc list accounts``: the operator's accounts (sorted by name)."""
    store = ws.open(operator)
    system = store.operator_claims().system_account
    ctx = ws.context()
    rows = []
    for name in store.list_accounts():
        claims = store.account_claims(name)
        rows.append(
            AccountRow(
                name,
                claims.sub,
                claims.sub == system,
                len(claims.signing_keys),
                len(store.list_users(name)),
                ctx.operator == operator and ctx.account == name,
            )
        )
    return rows


@dataclass(frozen=True)
class UserRow:
    name: str
    public_key: str
    issuer: str
    role: str
    expires: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "public_key": self.public_key,
            "issuer": self.issuer,
            "role": self.role,
            "expires": self.expires,
        }


def list_user_rows(ws: Workspace, operator: str, account: str) -> list[UserRow]:
    """``nsc list users``: the account's users; ``role`` names the scoped key that signed one."""
    store = ws.open(operator)
    acct = store.account_claims(account)
    rows = []
    for name in store.list_users(account):
        uc = store.user_claims(account, name)
        scope = acct.signing_keys.get(uc.iss)
        rows.append(UserRow(name, uc.sub, uc.iss, scope.role if scope is not None else "", uc.exp))
    return rows


@dataclass
class KeyRow:
    """A public key, who uses it and whether its seed is in the keystore."""

    public_key: str
    kind: str
    used_by: list[str] = field(default_factory=list)
    stored: bool = False
    seed: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "public_key": self.public_key,
            "kind": self.kind,
            "used_by": self.used_by,
            "stored": self.stored,
        }
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def _kind_of(key: str) -> str:
    try:
        return nkeys.prefix_of(key).label
    except NKeyError:
        return "unknown"


def _references(store: Store) -> list[tuple[str, str]]:
    """(public key, what uses it) for every key named in one operator store."""
    op = store.operator_claims()
    out = [(op.sub, f"operator {store.name}")]
    out += [(k, f"operator {store.name} signing key") for k in op.signing_keys]
    for account in store.list_accounts():
        acct = store.account_claims(account)
        where = f"{store.name}/{account}"
        out.append((acct.sub, f"account {where}"))
        for key, scope in sorted(acct.signing_keys.items()):
            role = f" (role {scope.role})" if scope is not None else ""
            out.append((key, f"account {where} signing key{role}"))
        if acct.authorization.xkey:
            out.append((acct.authorization.xkey, f"account {where} callout xkey"))
        for user in store.list_users(account):
            out.append((store.user_claims(account, user).sub, f"user {where}/{user}"))
    return out


def list_keys(ws: Workspace, *, show_seeds: bool = False) -> list[KeyRow]:
    """``nsc list keys --all``: every key in the keystore and every key an entity of any operator
    store uses, with its kind, its users and whether its seed is stored (sorted by kind, key).

    Seeds are read and returned only with ``show_seeds`` (STYLE rule 7). Raises
    :class:`StoreError` for a corrupt JWT or (with ``show_seeds``) a corrupt ``.nk`` file.
    """
    rows: dict[str, KeyRow] = {}
    for key in ws.keystore.all_keys():
        rows[key] = KeyRow(key, _kind_of(key), stored=True)
    for operator in list_operators(ws.dirs.stores_dir):
        for key, use in _references(ws.open(operator)):
            row = rows.get(key)
            if row is None:
                row = rows[key] = KeyRow(key, _kind_of(key), stored=ws.keystore.has_key(key))
            row.used_by.append(use)
    if show_seeds:
        for row in rows.values():
            kp = ws.keystore.get_key(row.public_key) if row.stored else None
            row.seed = kp.seed if kp is not None else ""
    order = {k: i for i, k in enumerate(("operator", "account", "user", "curve"))}
    return sorted(rows.values(), key=lambda r: (order.get(r.kind, 9), r.public_key))


@dataclass(frozen=True)
class RevocationRow:
    public_key: str
    user: str
    revoked_at: int

    def to_json(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        return {
            "public_key": self.public_key,
            "user": self.user,
            "revoked_at": self.revoked_at,
            "revoked_at_utc": datetime.fromtimestamp(self.revoked_at, UTC).isoformat().replace("+00:00", "Z"),
        }


def list_revocations(ws: Workspace, operator: str, account: str) -> list[RevocationRow]:
    """``nsc revocations list-users``: the account's user revocations (users issued at or before
    ``revoked_at`` are refused). ``user`` names the store's user with that key, ``*`` all users."""
    store = ws.open(operator)
    claims = store.account_claims(account)
    names: dict[str, str] = {"*": "*"}
    for user in store.list_users(account):
        names.setdefault(store.user_claims(account, user).sub, user)
    return [RevocationRow(key, names.get(key, ""), ts) for key, ts in sorted(claims.revocations.items())]


# --- env ----------------------------------------------------------------------------------------

_ENV_NAMES = (ENV_TRUSTKIT_HOME, ENV_NSC_HOME, ENV_NKEYS_PATH, ENV_NO_GIT_IGNORE)


def environment_report(ws: Workspace, env: Mapping[str, str]) -> dict[str, Any]:
    """``nsc env``: the resolved directories (and which rule chose each), the context file, the
    operator/account commands default to, and the environment variables that steer them."""
    ctx = ws.context()

    def default(fn: Any, *args: Any) -> str:
        try:
            return str(fn(*args))
        except StoreError:
            return ""

    operator = default(ws.default_operator)
    return {
        "config_dir": str(ws.dirs.config_dir),
        "config_source": ws.dirs.config_source,
        "stores_dir": str(ws.dirs.stores_dir),
        "stores_source": ws.dirs.stores_source,
        "keys_dir": str(ws.dirs.keys_dir),
        "keys_source": ws.dirs.keys_source,
        "context_file": str(context_path(ws.dirs.config_dir)),
        "context": {"store_root": ctx.store_root, "operator": ctx.operator, "account": ctx.account},
        "default_operator": operator,
        "default_account": default(ws.default_account, operator) if operator else "",
        "operators": list_operators(ws.dirs.stores_dir),
        "env": {name: env[name] for name in _ENV_NAMES if name in env},
    }
