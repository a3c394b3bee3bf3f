"""The nsc-compatible on-disk store: operator stores, the keystore, the context file, the paths.

The only code in trustkit that writes files (STYLE rule 15). Layouts and bytes mirror nsc
(``cmd/store/store.go``, ``cmd/store/keys.go``, ``home/home.go``), so a store written by one
tool opens in the other.
"""

from trustkit.store.context import CONTEXT_FILE, Context, context_path, read_context, write_context
from trustkit.store.keystore import GITIGNORE, KeyStore
from trustkit.store.paths import (
    ENV_NKEYS_PATH,
    ENV_NO_GIT_IGNORE,
    ENV_NSC_HOME,
    ENV_TRUSTKIT_HOME,
    StoreDirs,
    check_name,
    gitignore_enabled,
    resolve_dirs,
)
from trustkit.store.store import NSC_FILE, STORE_VERSION, Store, StoreInfo, list_operators

__all__ = [
    "CONTEXT_FILE",
    "ENV_NKEYS_PATH",
    "ENV_NO_GIT_IGNORE",
    "ENV_NSC_HOME",
    "ENV_TRUSTKIT_HOME",
    "GITIGNORE",
    "NSC_FILE",
    "STORE_VERSION",
    "Context",
    "KeyStore",
    "Store",
    "StoreDirs",
    "StoreInfo",
    "check_name",
    "context_path",
    "gitignore_enabled",
    "list_operators",
    "read_context",
    "resolve_dirs",
    "write_context",
]
