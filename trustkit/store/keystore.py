"""The nsc keystore: seeds sharded by public key, creds by operator/account/user name.

Layout (nsc ``cmd/store/keys.go``), under the keys dir::

    .gitignore                       ignores **/*.nk and **/*.creds (unless disabled)
    keys/<K>/<XY>/<PUBKEY>.nk        K = 1st char of the public key, XY = 2nd and 3rd chars;
                                     content = the seed string, no newline
    creds/<Op>/<Acct>/<User>.creds   the ``.creds`` bytes

Directories 0700, files 0600, every write atomic (:mod:`trustkit.store.fsio`). A public key's
``.nk`` file is never overwritten with another seed: :meth:`KeyStore.store_key` is idempotent for
the same seed and refuses a different one (nsc: "key … already exists and is different").
"""

from __future__ import annotations

import os
from pathlib import Path

from trustkit import nkeys
from trustkit.creds import parse_creds
from trustkit.errors import CredsError, NKeyError, StoreError
from trustkit.nkeys import KeyPair
from trustkit.store import fsio
from trustkit.store.paths import check_name

__all__ = ["CREDS_DIR", "CREDS_EXT", "GITIGNORE", "KEYS_DIR", "NKEY_EXT", "KeyStore"]

KEYS_DIR = "keys"
CREDS_DIR = "creds"
NKEY_EXT = ".nk"
CREDS_EXT = ".creds"
#: The exact bytes nsc's ``AddGitIgnore`` writes (note the space after "nk files").
GITIGNORE = b"# ignore all nk files \n**/*.nk\n\n# ignore all creds files\n**/*.creds\n"


class KeyStore:
    """The keystore rooted at ``root`` (nsc ``--keystore-dir``; see :func:`resolve_dirs`).

    Nothing is created until something is written. ``gitignore=False`` mirrors
    ``$NSC_NO_GIT_IGNORE`` (see :func:`trustkit.store.paths.gitignore_enabled`).
    """

    def __init__(self, root: str | os.PathLike[str], *, gitignore: bool = True) -> None:
        self.root = Path(root)
        self.gitignore = gitignore

    def __repr__(self) -> str:
        return f"KeyStore({str(self.root)!r})"

    # --- layout -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        """nsc ``makeKeyStore``: ``keys/``, ``creds/`` and the ``.gitignore`` if missing."""
        fsio.ensure_dir(self.root / KEYS_DIR)
        fsio.ensure_dir(self.root / CREDS_DIR)
        ignore = self.root / ".gitignore"
        if self.gitignore and not ignore.exists():
            fsio.atomic_create(ignore, GITIGNORE)  # never replaces a user's own .gitignore

    def key_path(self, public_key: str) -> Path:
        """``<root>/keys/<K>/<XY>/<PUBKEY>.nk``. Raises StoreError unless a valid public key."""
        if not isinstance(public_key, str) or not nkeys.is_valid_public_key(public_key):
            raise StoreError(f"{public_key!r} is not a valid public nkey", code="store_name")
        return self.root / KEYS_DIR / public_key[0] / public_key[1:3] / (public_key + NKEY_EXT)

    def creds_path(self, operator: str, account: str, user: str) -> Path:
        """``<root>/creds/<operator>/<account>/<user>.creds`` (names checked)."""
        return (
            self.root
            / CREDS_DIR
            / check_name("operator", operator)
            / check_name("account", account)
            / (check_name("user", user) + CREDS_EXT)
        )

    # --- keys -------------------------------------------------------------------------------

    def store_key(self, kp: KeyPair) -> Path:
        """Save ``kp``'s seed; return the ``.nk`` path.

        Idempotent when the file already holds the same seed. Raises :class:`StoreError`
        (``store_key_conflict``) if it holds anything else, and (``store_no_seed``) for a
        public-only key pair. The write is exclusive, so two processes cannot race past the check.
        """
        if not kp.has_seed:
            raise StoreError(f"cannot store {kp.public_key}: the key pair has no seed", code="store_no_seed")
        path = self.key_path(kp.public_key)
        seed = kp.seed.encode("ascii")
        self._prepare()
        if fsio.atomic_create(path, seed):
            return path
        existing = fsio.read_bytes(path)
        if existing.strip() != seed:
            raise StoreError(f"key {path} already exists and is different", code="store_key_conflict")
        return path

    def get_key(self, public_key: str) -> KeyPair | None:
        """The key pair stored for ``public_key``, or ``None`` if there is no ``.nk`` file.

        Raises :class:`StoreError` naming the file if it is unreadable, not a seed, or the seed
        of another key.
        """
        path = self.key_path(public_key)
        data = fsio.try_read_bytes(path)
        if data is None:
            return None
        try:
            kp = KeyPair.from_seed(data.strip())
        except NKeyError as exc:
            raise StoreError(f"{path} does not hold a valid seed: {exc}", code="store_corrupt") from None
        if kp.public_key != public_key:
            raise StoreError(f"{path} holds the seed of another key ({kp.public_key})", code="store_corrupt")
        return kp

    def has_key(self, public_key: str) -> bool:
        """True if a ``.nk`` file exists for ``public_key`` (its content is not checked)."""
        return self.key_path(public_key).is_file()

    def all_keys(self) -> list[str]:
        """The public keys of every ``.nk`` file under ``keys/`` (sorted; contents not read)."""
        base = self.root / KEYS_DIR
        if not base.is_dir():
            return []
        found: list[str] = []
        for _dirpath, _dirs, files in os.walk(base):
            found.extend(name[: -len(NKEY_EXT)] for name in files if name.endswith(NKEY_EXT))
        return sorted(found)

    def remove_key(self, public_key: str) -> bool:
        """Delete the ``.nk`` file of ``public_key``; return whether it existed.

        The now-empty shard directory is removed too (nsc ``Remove``).
        """
        path = self.key_path(public_key)
        existed = fsio.remove_file(path, missing_ok=True)
        if existed:
            try:
                path.parent.rmdir()  # only succeeds when empty
            except OSError:
                pass
        return existed

    # --- creds ------------------------------------------------------------------------------

    def write_creds(self, operator: str, account: str, user: str, data: bytes) -> Path:
        """Atomically write a user's ``.creds`` file (0600); return its path.

        Like nsc's ``MaybeStoreUserCreds`` the data must hold a seed whose key is already in
        the keystore; trustkit also requires the seed to match the JWT's subject.
        Raises :class:`StoreError` (``store_creds``) otherwise.
        """
        path = self.creds_path(operator, account, user)
        try:
            creds = parse_creds(data)
            creds.check()
        except CredsError as exc:
            raise StoreError(f"cannot store {path}: {exc}", code="store_creds") from None
        kp = creds.keypair()
        if not self.has_key(kp.public_key):
            raise StoreError(
                f"cannot store {path}: the user's seed is not in the keystore (store the key first)",
                code="store_creds",
            )
        self._prepare()
        return fsio.atomic_write(path, data)

    def read_creds(self, operator: str, account: str, user: str) -> bytes:
        """The ``.creds`` bytes. Raises :class:`StoreError` (``store_not_found``) naming the file."""
        return fsio.read_bytes(self.creds_path(operator, account, user))

    def has_creds(self, operator: str, account: str, user: str) -> bool:
        return self.creds_path(operator, account, user).is_file()

    def delete_creds(self, operator: str, account: str, user: str) -> bool:
        """Remove a ``.creds`` file; return whether it existed."""
        return fsio.remove_file(self.creds_path(operator, account, user), missing_ok=True)
