"""Where the config, the stores and the keys live — resolved like nsc, without reading globals.

Three directories (nsc ``home/home.go``, ``cmd/root.go``, ``cmd/defaults.go``):

* **config dir** — holds the context file ``nsc.json`` (current store root/operator/account).
* **stores dir** — nsc's "data dir" (``--data-dir``): one ``<Operator>/`` store per operator.
* **keys dir** — the keystore (``--keystore-dir``): ``keys/``, ``creds/``, ``.gitignore``.

Precedence, first match wins, per directory (empty environment values count as unset, as in nsc):

1. the explicit argument (``config_dir=``, ``stores_dir=``, ``keys_dir=``; the CLI's
   ``--config-dir``/``--data-dir``/``--keystore-dir``);
2. ``all_dirs=`` (nsc ``-H/--all-dirs``): the same directory for all three. Deviation: in nsc
   ``-H`` beats the per-directory flags; here the more specific argument wins;
3. ``$TRUSTKIT_HOME``: ``<home>/config``, ``<home>/stores``, ``<home>/keys`` (trustkit only);
4. ``$NSC_HOME`` for the config dir and ``$NKEYS_PATH`` for the keys dir (both deprecated in nsc;
   there is no variable for the stores dir);
5. the nsc defaults: config ``$XDG_CONFIG_HOME/nats/nsc`` (``~/.config/nats/nsc``), stores
   ``$XDG_DATA_HOME/nats/nsc/stores`` (``~/.local/share/nats/nsc/stores``), keys
   ``$XDG_DATA_HOME/nats/nsc/keys``; but, like nsc, the legacy location is used when the new one
   does not exist and the legacy one does: ``~/.nsc`` if it holds ``nsc.json`` (config),
   ``~/.nsc/nats`` (stores), ``~/.nkeys`` (keys).

Values from arguments and ``$NSC_HOME``/``$NKEYS_PATH``/``$TRUSTKIT_HOME`` have a leading ``~``
expanded with the mapping's ``HOME`` (nsc's ``homedir.Expand``) and are made absolute.

:func:`resolve_dirs` takes the environment as a mapping (callers pass ``os.environ``) and the
existence test as a function, so tests need neither a real home nor monkeypatching.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from trustkit.errors import StoreError

__all__ = [
    "ENV_NKEYS_PATH",
    "ENV_NO_GIT_IGNORE",
    "ENV_NSC_HOME",
    "ENV_TRUSTKIT_HOME",
    "StoreDirs",
    "check_name",
    "gitignore_enabled",
    "resolve_dirs",
]

ENV_TRUSTKIT_HOME = "TRUSTKIT_HOME"
ENV_NSC_HOME = "NSC_HOME"
ENV_NKEYS_PATH = "NKEYS_PATH"
#: nsc writes no keystore ``.gitignore`` when this is set (to anything, even empty).
ENV_NO_GIT_IGNORE = "NSC_NO_GIT_IGNORE"

#: Where each directory came from (``StoreDirs.*_source``).
SOURCES = ("argument", "all-dirs", ENV_TRUSTKIT_HOME, ENV_NSC_HOME, ENV_NKEYS_PATH, "default", "legacy")


@dataclass(frozen=True, slots=True)
class StoreDirs:
    """The three resolved (absolute) directories and which rule chose each."""

    config_dir: Path
    stores_dir: Path
    keys_dir: Path
    config_source: str
    stores_source: str
    keys_source: str


def _home(env: Mapping[str, str]) -> str:
    home = env.get("HOME") or env.get("USERPROFILE")
    if not home:
        raise StoreError(
            f"cannot find the home directory: set HOME or {ENV_TRUSTKIT_HOME}", code="store_config"
        )
    return home


def _expand(value: str | os.PathLike[str], env: Mapping[str, str]) -> Path:
    """``~`` and ``~/x`` expanded with the mapping's home (not ``~user``), then made absolute."""
    text = os.fspath(value)
    if text == "~" or text.startswith(("~/", "~" + os.sep)):
        text = _home(env) + text[1:]
    return Path(os.path.abspath(text))


def resolve_dirs(
    env: Mapping[str, str],
    *,
    config_dir: str | os.PathLike[str] | None = None,
    stores_dir: str | os.PathLike[str] | None = None,
    keys_dir: str | os.PathLike[str] | None = None,
    all_dirs: str | os.PathLike[str] | None = None,
    exists: Callable[[Path], bool] = os.path.exists,
) -> StoreDirs:
    """Resolve the config, stores and keys directories (precedence in the module docstring).

    ``env`` is the environment to consult (pass ``os.environ``); ``exists`` tests a path for the
    legacy-location rule. Nothing is created. Raises :class:`StoreError` (``store_config``) when
    a default is needed and the mapping has no ``HOME``.
    """
    trustkit_home = env.get(ENV_TRUSTKIT_HOME) or None
    nsc_home = env.get(ENV_NSC_HOME) or None
    nkeys_path = env.get(ENV_NKEYS_PATH) or None

    def pick(
        explicit: str | os.PathLike[str] | None,
        home_sub: str,
        env_name: str | None,
        env_value: str | None,
        default: Callable[[], tuple[Path, str]],
    ) -> tuple[Path, str]:
        if explicit is not None and os.fspath(explicit) != "":
            return _expand(explicit, env), "argument"
        if all_dirs is not None and os.fspath(all_dirs) != "":
            return _expand(all_dirs, env), "all-dirs"
        if trustkit_home is not None:
            return _expand(trustkit_home, env) / home_sub, ENV_TRUSTKIT_HOME
        if env_name is not None and env_value is not None:
            return _expand(env_value, env), env_name
        return default()

    def xdg(name: str, fallback: tuple[str, ...]) -> Path:
        value = env.get(name)
        if value:
            return Path(os.path.abspath(value))
        return Path(_home(env), *fallback)

    def default_config() -> tuple[Path, str]:
        new = xdg("XDG_CONFIG_HOME", (".config",)) / "nats" / "nsc"
        old = Path(_home(env), ".nsc")
        if not exists(new / "nsc.json") and exists(old / "nsc.json"):
            return old, "legacy"
        return new, "default"

    def default_data(sub: str, legacy: tuple[str, ...]) -> Callable[[], tuple[Path, str]]:
        def resolve() -> tuple[Path, str]:
            new = xdg("XDG_DATA_HOME", (".local", "share")) / "nats" / "nsc" / sub
            old = Path(_home(env), *legacy)
            if not exists(new) and exists(old):
                return old, "legacy"
            return new, "default"

        return resolve

    cfg, cfg_src = pick(config_dir, "config", ENV_NSC_HOME, nsc_home, default_config)
    sto, sto_src = pick(stores_dir, "stores", None, None, default_data("stores", (".nsc", "nats")))
    key, key_src = pick(keys_dir, "keys", ENV_NKEYS_PATH, nkeys_path, default_data("keys", (".nkeys",)))
    return StoreDirs(cfg, sto, key, cfg_src, sto_src, key_src)


def gitignore_enabled(env: Mapping[str, str]) -> bool:
    """False when ``$NSC_NO_GIT_IGNORE`` is present (nsc checks presence, not value)."""
    return ENV_NO_GIT_IGNORE not in env


_FORBIDDEN = frozenset("/\\\0")


def check_name(what: str, name: str) -> str:
    """Return ``name`` if it is usable as one path component for an entity; else StoreError.

    nsc names directories and files after entity names (``accounts/<A>/<A>.jwt``), so a name
    must not be empty, ``.``/``..``, contain ``/``, ``\\`` or NUL, or have leading/trailing
    whitespace (nsc trims the file name but not the directory name — refusing avoids the split).
    """
    if not isinstance(name, str) or name == "":
        raise StoreError(f"{what} name is empty", code="store_name")
    if name in (".", "..") or any(ch in _FORBIDDEN for ch in name):
        raise StoreError(f"{what} name {name!r} cannot be used as a file name", code="store_name")
    if name != name.strip():
        raise StoreError(f"{what} name {name!r} has leading or trailing whitespace", code="store_name")
    return name
