"""An nsc operator store: the operator's, accounts' and users' JWTs, by entity name.

Layout (nsc ``cmd/store/store.go``), under the stores dir (nsc's data dir)::

    <Op>/.nsc                              {"managed":false,"name":"Op","kind":"operator","version":"1"}
    <Op>/<Op>.jwt                          the operator JWT
    <Op>/accounts/<A>/<A>.jwt              an account JWT
    <Op>/accounts/<A>/users/<U>.jwt        a user JWT

JWT files hold the raw token exactly as given (no decoration, no newline), 0600; directories 0700.
Directories and files are named by entity *name*; the operator JWT is named after the store
(``.nsc`` ``name``), accounts and users after their claims' ``name``. An account is listed when
``accounts/<A>/<A>.jwt`` exists, a user for each ``*.jwt`` file in ``users/`` (as nsc lists them).

Every method takes the entity names it works on; nothing depends on a "current" operator or
account, so parallel scripts never race on shared state (the context file, in
:mod:`trustkit.store.context`, is only a default for the CLI). All writes are atomic
(:mod:`trustkit.store.fsio`); deleting an account moves its directory out of the way in one
rename before erasing it.

Errors are :class:`~trustkit.errors.StoreError` naming the file, with codes ``store_not_found``,
``store_exists``, ``store_invalid`` (not a store), ``store_version`` (v1 JWTs, unknown ``.nsc``
version), ``store_corrupt`` (unreadable JWT), ``store_token`` (a token refused on write),
``store_name`` and ``store_io``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from trustkit.errors import StoreError, TokenError, UnsupportedVersionError
from trustkit.jwt import AccountClaims, Claims, OperatorClaims, UserClaims, decode, peek_unverified
from trustkit.jwt.codec import go_json
from trustkit.store import fsio
from trustkit.store.paths import check_name

__all__ = [
    "ACCOUNTS_DIR",
    "JWT_EXT",
    "NSC_FILE",
    "STORE_VERSION",
    "USERS_DIR",
    "Store",
    "StoreInfo",
    "list_operators",
]

NSC_FILE = ".nsc"
STORE_VERSION = "1"
OPERATOR_KIND = "operator"
ACCOUNTS_DIR = "accounts"
USERS_DIR = "users"
JWT_EXT = ".jwt"
_NEW_PREFIX = ".trustkit-new-"

C = TypeVar("C", bound=Claims)


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """The ``.nsc`` file: Go ``store.Info`` (fields in Go order: managed, name, kind, version)."""

    name: str
    managed: bool = False
    kind: str = OPERATOR_KIND
    version: str = STORE_VERSION

    def to_json(self) -> bytes:
        """The bytes nsc writes: compact ``json.Marshal`` output, no trailing newline."""
        return go_json(
            {"managed": self.managed, "name": self.name, "kind": self.kind, "version": self.version}
        )

    @classmethod
    def load(cls, path: Path) -> StoreInfo:
        """Parse a ``.nsc`` file. Raises :class:`StoreError` naming it."""
        data = fsio.read_json(path)
        if not isinstance(data, dict):
            raise StoreError(f"{path} is not a JSON object", code="store_invalid")
        managed = data.get("managed", False)
        name, kind, version = (data.get(k, "") for k in ("name", "kind", "version"))
        if not isinstance(managed, bool) or not all(isinstance(v, str) for v in (name, kind, version)):
            raise StoreError(f"{path} has fields of the wrong type", code="store_invalid")
        return cls(name=name, managed=managed, kind=kind, version=version)


def _read_token(path: Path, what: str) -> str:
    """A JWT file's token: the text with surrounding whitespace removed (hand-edited files)."""
    try:
        return fsio.read_text(path).strip()
    except StoreError as exc:
        if exc.code == "store_not_found":
            raise StoreError(f"{what} does not exist ({path})", code="store_not_found") from None
        raise


def _decode_file(path: Path, token: str, expect: type[C]) -> C:
    try:
        return decode(token, expect=expect)
    except TokenError as exc:
        code = "store_version" if isinstance(exc, UnsupportedVersionError) else "store_corrupt"
        raise StoreError(f"{path}: {exc}", code=code) from None


def _decode_input(token: str, expect: type[C], what: str) -> C:
    if not isinstance(token, str):
        raise StoreError(f"the {what} JWT must be a string", code="store_token")
    try:
        return decode(token.strip(), expect=expect)
    except TokenError as exc:
        raise StoreError(f"refusing the {what} JWT: {exc}", code="store_token") from None


def _entity_name(claims: Claims, name: str | None, what: str) -> str:
    """The file name of an account/user: its claims' ``name`` (as nsc), or ``name`` if unnamed."""
    if name is None:
        if not claims.name:
            raise StoreError(f"the {what} JWT has no name: pass one", code="store_name")
        name = claims.name
    elif claims.name and claims.name != name:
        raise StoreError(f"the {what} JWT is named {claims.name!r}, not {name!r}", code="store_name")
    return check_name(what, name)


def list_operators(stores_dir: str | os.PathLike[str]) -> list[str]:
    """Names of the directories of ``stores_dir`` that hold a ``.nsc`` file (sorted, like nsc)."""
    base = Path(stores_dir)
    if not base.is_dir():
        return []
    return sorted(e.name for e in base.iterdir() if e.is_dir() and (e / NSC_FILE).is_file())


class Store:
    """One operator's store directory. Build with :meth:`create` or :meth:`open`."""

    def __init__(self, directory: str | os.PathLike[str], info: StoreInfo) -> None:
        self.dir = Path(directory)
        self.info = info

    def __repr__(self) -> str:
        return f"Store({str(self.dir)!r}, operator={self.info.name!r})"

    @property
    def name(self) -> str:
        """The operator (store) name from ``.nsc``."""
        return self.info.name

    @property
    def managed(self) -> bool:
        """True when the operator's keys live elsewhere (nsc "managed" stores)."""
        return self.info.managed

    # --- creating and opening ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        stores_dir: str | os.PathLike[str],
        operator_jwt: str,
        name: str | None = None,
        *,
        managed: bool = False,
    ) -> Store:
        """Create ``<stores_dir>/<name>/`` with ``.nsc``, ``<name>.jwt`` and ``accounts/``.

        ``name`` defaults to the operator JWT's ``name`` (nsc lets ``add operator -n`` differ).
        The JWT is verified first. The store is assembled in a hidden temporary directory and
        renamed into place, so it appears complete or not at all. Raises :class:`StoreError`:
        ``store_exists`` if ``<name>/`` exists and is not empty (nsc: "operator … already exists"),
        ``store_token`` for a JWT that is not a valid operator JWT, ``store_name``.
        """
        claims = _decode_input(operator_jwt, OperatorClaims, "operator")
        name = check_name("operator", name if name is not None else claims.name)
        base = Path(stores_dir)
        root = base / name
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise StoreError(f"operator {name!r} already exists in {base}", code="store_exists")
        fsio.ensure_dir(base)
        fsio.sweep_stale(base, _NEW_PREFIX)
        info = StoreInfo(name=name, managed=managed)
        try:
            staging = Path(tempfile.mkdtemp(prefix=_NEW_PREFIX, dir=base))
        except OSError as exc:
            raise StoreError(f"cannot create a store in {base}: {exc.strerror}", code="store_io") from None
        try:
            # staging/<name>/ is invisible to nsc (it looks for <stores>/<x>/.nsc only)
            work = fsio.ensure_dir(staging / name)
            fsio.atomic_write(work / (name + JWT_EXT), operator_jwt.strip().encode("ascii"))
            fsio.atomic_write(work / NSC_FILE, info.to_json())
            fsio.ensure_dir(work / ACCOUNTS_DIR)
            with contextlib.suppress(OSError):
                root.rmdir()  # an empty directory in the way (nsc accepts it too)
            try:
                os.rename(work, root)
            except OSError as exc:
                if root.exists():
                    raise StoreError(
                        f"operator {name!r} already exists in {base}", code="store_exists"
                    ) from None
                raise StoreError(f"cannot create {root}: {exc.strerror}", code="store_io") from None
            fsio.fsync_dir(base)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls(root, info)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        """Open the operator store at ``path`` (the directory holding ``.nsc``).

        Refuses (:class:`StoreError`): no ``.nsc`` (``store_invalid``: "not a valid data
        directory", as nsc), a ``.nsc`` that is not JSON, whose ``kind`` is not ``operator`` or
        has no name (``store_invalid``), whose ``version`` is not ``"1"`` (``store_version``), and a
        store whose operator JWT is a JWT v1 (or newer than v2) token (``store_version``; nsc
        refuses those too and points to ``nsc upgrade-jwt``).
        """
        root = Path(path)
        nsc = root / NSC_FILE
        if not nsc.is_file():
            raise StoreError(
                f"{root} is not a valid data directory: no {NSC_FILE} file", code="store_invalid"
            )
        info = StoreInfo.load(nsc)
        if info.kind != OPERATOR_KIND:
            raise StoreError(f"{nsc}: kind {info.kind!r} is not an operator store", code="store_invalid")
        if not info.name:
            raise StoreError(f"{nsc}: the store has no name", code="store_invalid")
        if info.version != STORE_VERSION:
            raise StoreError(
                f"{nsc}: store version {info.version!r} is not supported (expected {STORE_VERSION!r})",
                code="store_version",
            )
        store = cls(root, info)
        store._refuse_old_operator()
        return store

    def _refuse_old_operator(self) -> None:
        path = self.operator_jwt_path()
        data = fsio.try_read_bytes(path)
        if data is None:
            return
        try:
            peek_unverified(data.decode("utf-8", "replace").strip())
        except UnsupportedVersionError as exc:
            raise StoreError(
                f"{path}: {exc}. trustkit (like current nsc) only supports JWT v2 stores: upgrade "
                "this store with `nsc upgrade-jwt` (you need the operator key), or re-add the "
                "operator from your provider",
                code="store_version",
            ) from None
        except TokenError:
            return  # reported when the operator JWT is actually read

    # --- paths ------------------------------------------------------------------------------

    def operator_jwt_path(self) -> Path:
        return self.dir / (self.name + JWT_EXT)

    def account_dir(self, account: str) -> Path:
        return self.dir / ACCOUNTS_DIR / check_name("account", account)

    def account_jwt_path(self, account: str) -> Path:
        return self.account_dir(account) / (account + JWT_EXT)

    def user_jwt_path(self, account: str, user: str) -> Path:
        return self.account_dir(account) / USERS_DIR / (check_name("user", user) + JWT_EXT)

    # --- operator ---------------------------------------------------------------------------

    def read_operator_jwt(self) -> str:
        """The operator token as stored. Raises :class:`StoreError` (``store_not_found``)."""
        return _read_token(self.operator_jwt_path(), f"operator {self.name!r}")

    def operator_claims(self) -> OperatorClaims:
        """The operator claims, verified. Raises :class:`StoreError` naming the file if corrupt."""
        path = self.operator_jwt_path()
        return _decode_file(path, self.read_operator_jwt(), OperatorClaims)

    def write_operator_jwt(self, token: str) -> Path:
        """Replace the operator JWT (verified first; the file is named after the store)."""
        _decode_input(token, OperatorClaims, "operator")
        return fsio.atomic_write(self.operator_jwt_path(), token.strip().encode("ascii"))

    # --- accounts ---------------------------------------------------------------------------

    def has_account(self, account: str) -> bool:
        return self.account_jwt_path(account).is_file()

    def list_accounts(self) -> list[str]:
        """Account names: directories of ``accounts/`` holding ``<A>/<A>.jwt`` (sorted)."""
        base = self.dir / ACCOUNTS_DIR
        if not base.is_dir():
            return []
        return sorted(e.name for e in base.iterdir() if e.is_dir() and (e / (e.name + JWT_EXT)).is_file())

    def read_account_jwt(self, account: str) -> str:
        """The account token as stored. Raises :class:`StoreError` (``store_not_found``)."""
        return _read_token(self.account_jwt_path(account), f"account {account!r}")

    def account_claims(self, account: str) -> AccountClaims:
        """The account claims, verified. Raises :class:`StoreError` naming the file if corrupt."""
        return _decode_file(self.account_jwt_path(account), self.read_account_jwt(account), AccountClaims)

    def write_account_jwt(self, token: str, name: str | None = None) -> Path:
        """Write ``accounts/<name>/<name>.jwt`` (created or replaced); return its path.

        ``name`` defaults to the JWT's ``name`` (nsc names the files after it) and must equal it
        when the JWT has one. The token is verified (signature, claim type) before writing.
        """
        claims = _decode_input(token, AccountClaims, "account")
        account = _entity_name(claims, name, "account")
        fsio.ensure_dir(self.dir / ACCOUNTS_DIR)
        return fsio.atomic_write(self.account_jwt_path(account), token.strip().encode("ascii"))

    def find_account(self, public_key: str, *, signing_keys: bool = False) -> str | None:
        """The name of the account whose subject is ``public_key`` (or, with ``signing_keys``,
        which lists it as a signing key); ``None`` if none. Raises :class:`StoreError` if an
        account JWT on the way is corrupt."""
        for account in self.list_accounts():
            claims = self.account_claims(account)
            if claims.sub == public_key or (signing_keys and public_key in claims.signing_keys):
                return account
        return None

    def delete_account(self, account: str) -> None:
        """Delete the account directory with its users, in one atomic step for readers.

        Keys and creds in the keystore are not touched. Raises :class:`StoreError`
        (``store_not_found``) if there is no such account.
        """
        directory = self.account_dir(account)
        if not directory.is_dir():
            raise StoreError(f"account {account!r} does not exist ({directory})", code="store_not_found")
        fsio.remove_tree(directory, self.dir)

    # --- users ------------------------------------------------------------------------------

    def has_user(self, account: str, user: str) -> bool:
        return self.user_jwt_path(account, user).is_file()

    def list_users(self, account: str) -> list[str]:
        """User names of ``account``: ``users/*.jwt`` files (sorted). StoreError if no account."""
        if not self.has_account(account):
            raise StoreError(
                f"account {account!r} does not exist ({self.account_jwt_path(account)})",
                code="store_not_found",
            )
        base = self.account_dir(account) / USERS_DIR
        if not base.is_dir():
            return []
        return sorted(
            e.name[: -len(JWT_EXT)]
            for e in base.iterdir()
            if e.name.endswith(JWT_EXT) and not e.is_dir() and len(e.name) > len(JWT_EXT)
        )

    def read_user_jwt(self, account: str, user: str) -> str:
        """The user token as stored. Raises :class:`StoreError` (``store_not_found``)."""
        return _read_token(self.user_jwt_path(account, user), f"user {user!r} of account {account!r}")

    def user_claims(self, account: str, user: str) -> UserClaims:
        """The user claims, verified. Raises :class:`StoreError` naming the file if corrupt."""
        return _decode_file(self.user_jwt_path(account, user), self.read_user_jwt(account, user), UserClaims)

    def write_user_jwt(self, account: str, token: str, name: str | None = None) -> Path:
        """Write ``accounts/<account>/users/<name>.jwt`` (created or replaced); return its path.

        The token is verified, and must have been issued by ``account`` or one of its signing
        keys on its behalf (Go ``DidSign``: nsc files a user under the account that signed it).
        ``name`` defaults to the JWT's ``name`` and must equal it when the JWT has one.
        """
        claims = _decode_input(token, UserClaims, "user")
        user = _entity_name(claims, name, "user")
        account_claims = self.account_claims(account)
        if not account_claims.did_sign(claims):
            raise StoreError(
                f"user JWT issued by {claims.iss} was not signed by account {account!r} "
                f"({account_claims.sub}) or one of its signing keys",
                code="store_token",
            )
        return fsio.atomic_write(self.user_jwt_path(account, user), token.strip().encode("ascii"))

    def delete_user(self, account: str, user: str) -> None:
        """Delete one user JWT (an atomic unlink). Keys and creds are not touched.

        Raises :class:`StoreError` (``store_not_found``) if there is no such user.
        """
        path = self.user_jwt_path(account, user)
        if not path.is_file():
            raise StoreError(
                f"user {user!r} of account {account!r} does not exist ({path})", code="store_not_found"
            )
        fsio.remove_file(path)
