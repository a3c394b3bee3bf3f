"""``trustkit-callout`` configuration: one TOML file, every value overridable from the environment.

:func:`load_config` reads the file (``tomllib``), applies ``TRUSTKIT_CALLOUT_<SECTION>_<KEY>``
environment variables on top (``[backend.ldap] url`` → ``TRUSTKIT_CALLOUT_BACKEND_LDAP_URL``;
top-level ``mode`` → ``TRUSTKIT_CALLOUT_MODE``), checks every value's type and refuses any key
it does not know, in the file or in the environment, naming it. The whole list of keys is in
docs/callout.md.

Secrets (the NATS password, the issuer and xkey seeds, the admin token, backend passwords) are
never read from the file itself: the file names a file (``password_file = "/run/secrets/x"``) or
the environment carries them (``TRUSTKIT_CALLOUT_NATS_PASSWORD``, or ``…_PASSWORD_FILE`` for a
path). A :class:`Secret` only says where a secret comes from; it is read when revealed, and no
``repr`` of a config object shows one. Relative paths are relative to the config file.

Backends are wired by name through :data:`BACKENDS` and imported lazily: ``[backend.ldap]`` maps
onto ``callout.backends.ldap.LdapConfig`` field by field (secret fields are the ones declared
with ``repr=False``), and likewise ``[backend.oidc]`` and ``[backend.device]``. A configured
backend whose module is missing is a clear configuration error.

:func:`load_policy` reads the policy file (TOML, or JSON by extension) for
:meth:`callout.policy.Policy.from_dict`. Errors are :class:`CalloutError` with code
``callout_config`` (policy errors keep ``policy_invalid``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from callout.policy import Policy, PolicyError
from trustkit.errors import CalloutError

__all__ = [
    "BACKENDS",
    "CONFIG_ENV",
    "ENV_PREFIX",
    "AuditSettings",
    "BackendKind",
    "BackendSection",
    "CalloutConfig",
    "HttpSettings",
    "IssuerSettings",
    "LimitsSettings",
    "NatsSettings",
    "Secret",
    "env_name",
    "load_config",
    "load_policy",
]

ENV_PREFIX = "TRUSTKIT_CALLOUT_"
#: The config file's path, when ``-c`` is not given.
CONFIG_ENV = "TRUSTKIT_CALLOUT_CONFIG"
MODES = ("config", "operator")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _error(message: str) -> CalloutError:
    return CalloutError(message, code="callout_config")


def env_name(section: str, key: str) -> str:
    """``("backend.ldap", "url")`` → ``TRUSTKIT_CALLOUT_BACKEND_LDAP_URL``."""
    parts = [p for p in section.split(".") if p] + [key]
    return ENV_PREFIX + "_".join(parts).upper()


# --- secrets -----------------------------------------------------------------------------------


class Secret:
    """Where a secret comes from: a file (read on each :meth:`reveal`) or an environment value.

    ``repr`` and ``str`` say where from, never what. ``name`` is the config key (for messages).
    """

    __slots__ = ("_value", "file", "name", "origin")

    def __init__(
        self, name: str, *, file: Path | None = None, value: str | None = None, origin: str = ""
    ) -> None:
        if (file is None) == (value is None):
            raise ValueError("a Secret has exactly one of file or value")
        self.name = name
        self.file = file
        self._value = value
        self.origin = origin or (f"file {file}" if file is not None else "the environment")

    def reveal(self) -> str:
        """The secret text (a file's content without surrounding white space).

        Raises :class:`CalloutError` (``callout_config``) if the file cannot be read or the
        secret is empty; the message names the file, never the content.
        """
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise _error(f"{self.name}: cannot read {self.file}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise _error(f"{self.name}: {self.file} is not UTF-8 text") from None
        else:
            assert self._value is not None
            text = self._value.strip()
        if not text:
            raise _error(f"{self.name}: the secret from {self.origin} is empty")
        return text

    def __repr__(self) -> str:
        return f"Secret({self.name}: from {self.origin})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self.file, self._value, self.name) == (
            other.file,
            other._value,
            other.name,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.file))


# --- sections ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NatsSettings:
    """``[nats]``: how the service connects (as a user listed in ``auth_users``)."""

    url: str = ""
    creds_file: Path | None = None
    user: str | None = None
    password: Secret | None = field(default=None, repr=False)
    queue_group: str = "trustkit-callout"
    name: str = "trustkit-callout"
    connect_timeout: float = 5.0


@dataclass(frozen=True, kw_only=True)
class IssuerSettings:
    """``[issuer]``: the key that signs responses, and (operator mode) where target accounts are."""

    seed: Secret | None = field(default=None, repr=False)
    account: str | None = None  # operator mode: the callout account (name in the store, or A… key)
    operator: str | None = None  # operator mode: the operator in the store
    home: Path | None = None  # operator mode: TRUSTKIT_HOME of the store (default: the environment)


@dataclass(frozen=True, kw_only=True)
class XkeySettings:
    """``[xkey]``: the service's curve seed when the server has an xkey configured."""

    seed: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """``[server]``: pin the nats-server keys allowed to send requests (empty: any)."""

    allowed_keys: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PolicySettings:
    file: Path | None = None


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    """``[audit]``: the JSON-lines audit log, its issued-key index, the in-memory ring size."""

    file: Path | None = None
    index_file: Path | None = None
    ring_size: int = 256


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """``[http]``: the health/metrics/admin face; off unless ``port`` is set."""

    host: str = "127.0.0.1"
    port: int | None = None
    admin_token: Secret | None = field(default=None, repr=False)
    ready_cache: float = 5.0  # seconds a backend probe result is reused by /readyz


@dataclass(frozen=True, kw_only=True)
class LimitsSettings:
    backend_timeout: float = 1.5
    drop_refusals: bool = False
    max_in_flight: int = 256
    leeway: int = 2
    error_text: str = "not authorized"


@dataclass(frozen=True, kw_only=True)
class BackendRouting:
    """``[backend]`` own keys: which configured backend answers passwords, which tokens."""

    password_backend: str | None = None
    token_backend: str | None = None
    #: an ``auth_token`` of the form ``USER:PASSWORD`` is a password login (nats.py #999: nats-py
    #: sends only a token beside sentinel creds, never user/password)
    token_passwords: bool = False


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    level: str = "info"


# --- backends ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackendKind:
    """A backend known by name: ``module.backend_class(module.config_class(**section))``."""

    name: str
    module: str
    config_class: str
    backend_class: str

    def load(self) -> tuple[type[Any], type[Any]]:
        """(config class, backend class). Raises :class:`CalloutError` if the module is missing."""
        try:
            mod = importlib.import_module(self.module)
        except ImportError as exc:
            raise _error(
                f"backend {self.name!r} is not available: {self.module} cannot be imported ({exc})"
            ) from None
        try:
            return getattr(mod, self.config_class), getattr(mod, self.backend_class)
        except AttributeError:
            raise _error(
                f"backend {self.name!r} is not available: {self.module} has no "
                f"{self.config_class}/{self.backend_class}"
            ) from None


#: Every backend ``[backend.<name>]`` may configure.
BACKENDS: dict[str, BackendKind] = {
    "ldap": BackendKind("ldap", "callout.backends.ldap", "LdapConfig", "LdapBackend"),
    "oidc": BackendKind("oidc", "callout.backends.oidc", "OidcConfig", "OidcBackend"),
    "device": BackendKind("device", "callout.backends.device", "DeviceConfig", "DeviceBackend"),
}


@dataclass(frozen=True)
class BackendSection:
    """One ``[backend.<name>]``: checked values plus where its secrets come from.

    ``values`` holds no secret (secret fields are in ``secrets``). :meth:`build_config` reads the
    secrets and makes the backend's config object; :meth:`build` makes the backend.
    """

    name: str
    values: Mapping[str, Any]
    secrets: Mapping[str, Secret]
    checked: bool = True  # False: keys were not checked against the config class (``check``)

    def build_config(self) -> Any:
        config_cls, _ = BACKENDS[self.name].load()
        kwargs = dict(self.values)
        kwargs.update({k: s.reveal() for k, s in self.secrets.items()})
        try:
            return config_cls(**kwargs)
        except CalloutError as exc:
            raise _error(f"[backend.{self.name}]: {exc.message}") from None
        except (TypeError, ValueError) as exc:
            raise _error(f"[backend.{self.name}]: {exc}") from None

    def build(self) -> Any:
        _, backend_cls = BACKENDS[self.name].load()
        return backend_cls(self.build_config())


# --- the whole config --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CalloutConfig:
    """Everything ``trustkit-callout`` runs with (see the module docstring). Secrets are lazy."""

    source: str  # the file, or "environment"
    mode: str
    nats: NatsSettings
    issuer: IssuerSettings
    xkey: XkeySettings
    server: ServerSettings
    policy: PolicySettings
    audit: AuditSettings
    http: HttpSettings
    limits: LimitsSettings
    routing: BackendRouting
    log: LogSettings
    backends: Mapping[str, BackendSection]

    @property
    def policy_file(self) -> Path:
        if self.policy.file is None:
            raise _error(f"{self.source}: [policy] file is required")
        return self.policy.file

    def index_file(self) -> Path | None:
        if self.audit.index_file is not None:
            return self.audit.index_file
        if self.audit.file is None:
            return None
        from callout.audit import default_index_path

        return default_index_path(self.audit.file)

    def load_policy(self) -> Policy:
        return load_policy(self.policy_file)

    def backend_roles(self) -> tuple[str | None, str | None]:
        """(password backend name, token backend name), from ``[backend]`` or by elimination.

        A backend answers passwords if it has ``authenticate`` and tokens if it has
        ``authenticate_token``; when several could, ``[backend] password_backend`` /
        ``token_backend`` must choose. Raises :class:`CalloutError` when that is ambiguous or a
        chosen name is not configured. Imports the configured backends' modules.
        """
        names = list(self.backends)
        for role, chosen in (
            ("password_backend", self.routing.password_backend),
            ("token_backend", self.routing.token_backend),
        ):
            if chosen is not None and chosen not in self.backends:
                raise _error(f"[backend] {role} = {chosen!r} is not a configured backend ({names})")
        classes = {n: BACKENDS[n].load()[1] for n in names}

        def pick(role: str, chosen: str | None, method: str) -> str | None:
            if chosen is not None:
                if not hasattr(classes[chosen], method):
                    raise _error(f"[backend] {role} = {chosen!r}: that backend has no {method}()")
                return chosen
            able = [n for n in names if hasattr(classes[n], method)]
            if len(able) > 1:
                raise _error(f"backends {able} all accept {role[:-8]}s: choose one with [backend] {role}")
            return able[0] if able else None

        return (
            pick("password_backend", self.routing.password_backend, "authenticate"),
            pick("token_backend", self.routing.token_backend, "authenticate_token"),
        )


# --- parsing ----------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _is_path_name(name: str) -> bool:
    return name.endswith(("_file", "_path", "_dir")) or name in ("file", "home")


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # noqa: UP007 - built from a runtime tuple
    return tp, False


def _is_path_type(tp: Any) -> bool:
    """``Path``, or a union naming ``os.PathLike`` (``str | os.PathLike[str]``)."""
    inner, _ = _strip_optional(tp)
    if inner is Path:
        return True
    members = typing.get_args(inner) if typing.get_origin(inner) in (typing.Union, types.UnionType) else ()
    return any(m is Path or typing.get_origin(m) is os.PathLike or m is os.PathLike for m in members)


def _coerce(where: str, value: Any, tp: Any, *, from_env: bool, base: Path | None) -> Any:
    """``value`` (TOML value, or env text) as type ``tp``; raises a config error naming ``where``."""
    inner, optional = _strip_optional(tp)
    if from_env and optional and value == "":
        return None
    origin = typing.get_origin(inner)

    def wrong(expected: str) -> CalloutError:
        return _error(f"{where}: expected {expected}, got {value!r}")

    if inner is bool:
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise wrong("true or false")
    if inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise wrong("an integer")
    if inner is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise wrong("a number")
    if inner is str:
        if isinstance(value, str):
            return value
        raise wrong("a string")
    if inner is Path:
        if isinstance(value, str) and value:
            p = Path(value).expanduser()
            return p if p.is_absolute() or base is None else base / p
        raise wrong("a path")
    if origin is Literal:
        choices = typing.get_args(inner)
        if value in choices:
            return value
        raise wrong(" or ".join(map(repr, choices)))
    if origin in (tuple, list) or inner in (tuple, list):
        if from_env and isinstance(value, str):
            items: Any = [v.strip() for v in value.split(",") if v.strip()]
        else:
            items = value
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise wrong("a list of strings")
        return tuple(items) if (origin is tuple or inner is tuple) else list(items)
    if origin in (typing.Union, types.UnionType):
        # the first member the value fits (env text: str comes first, so one value, not a list)
        for member in typing.get_args(inner):
            try:
                return _coerce(where, value, member, from_env=from_env, base=base)
            except CalloutError:
                continue
        raise wrong(" or ".join(getattr(m, "__name__", str(m)) for m in typing.get_args(inner)))
    return value  # a type this loader does not know: passed on as given


@dataclass
class _Env:
    env: Mapping[str, str]
    used: set[str] = field(default_factory=set)

    def get(self, name: str) -> str | None:
        if name in self.env:
            self.used.add(name)
            return self.env[name]
        return None


def _parse_fields(
    section: str,
    raw: Mapping[str, Any],
    cls: type[Any],
    env: _Env,
    base: Path | None,
    *,
    resolve_str_paths: bool = False,
) -> tuple[dict[str, Any], dict[str, Secret]]:
    """Check one section against the dataclass ``cls``: (plain values, secrets)."""
    label = f"[{section}]" if section else "top level"
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    secret_names = {n for n, f in fields.items() if not f.repr}
    allowed = {n for n in fields if n not in secret_names} | {f"{n}_file" for n in secret_names}
    for key in raw:
        if key in secret_names:
            raise _error(
                f"{label} {key} is a secret: name a file ({key}_file = ...) or set "
                f"{env_name(section, key)} in the environment"
            )
        if key not in allowed:
            raise _error(f"{label}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")
    values: dict[str, Any] = {}
    secrets: dict[str, Secret] = {}
    for name in fields:
        where = f"{label} {name}"
        if name in secret_names:
            value_env, file_env = env_name(section, name), env_name(section, name) + "_FILE"
            ev, ef = env.get(value_env), env.get(file_env)
            if ev is not None and ef is not None:
                raise _error(f"set only one of {value_env} and {file_env}")
            key = f"{section}.{name}" if section else name
            if ev is not None:
                secrets[name] = Secret(key, value=ev, origin=f"${value_env}")
            elif ef is not None or f"{name}_file" in raw:
                from_env = ef is not None
                path = _coerce(
                    f"{label} {name}_file",
                    ef if from_env else raw[f"{name}_file"],
                    Path,
                    from_env=from_env,
                    base=None if from_env else base,
                )
                secrets[name] = Secret(key, file=path)
            continue
        ev = env.get(env_name(section, name))
        if ev is not None:
            value, from_env, where = ev, True, f"{env_name(section, name)}"
        elif name in raw:
            value, from_env = raw[name], False
        else:
            continue
        tp = hints.get(name, Any)
        is_path = _is_path_type(tp) or (_is_path_name(name) and _strip_optional(tp)[0] is str)
        if resolve_str_paths and is_path:
            tp = Path  # a backend's file setting: resolved like ours, handed over as text
            coerced = _coerce(where, value, tp, from_env=from_env, base=None if from_env else base)
            values[name] = None if coerced is None else str(coerced)
            continue
        values[name] = _coerce(where, value, tp, from_env=from_env, base=None if from_env else base)
    return values, secrets


def _table(where: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _error(f"{where} must be a table")
    return raw


_SECTIONS: dict[str, type[Any]] = {
    "nats": NatsSettings,
    "issuer": IssuerSettings,
    "xkey": XkeySettings,
    "server": ServerSettings,
    "policy": PolicySettings,
    "audit": AuditSettings,
    "http": HttpSettings,
    "limits": LimitsSettings,
    "log": LogSettings,
}


@dataclass(frozen=True, kw_only=True)
class _TopLevel:
    mode: str = "config"


def load_config(
    path: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    *,
    backends: bool = True,
) -> CalloutConfig:
    """Read ``path`` (TOML; None: environment only) with ``env`` overrides (default ``os.environ``).

    ``backends=False`` keeps backend sections unchecked (and their modules unimported): enough
    for ``check``, which only needs the policy. Raises :class:`CalloutError` (``callout_config``)
    naming the file and key of the first problem. Reads no secret.
    """
    environ = _Env(os.environ if env is None else env)
    if path is not None:
        p = Path(path)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise _error(f"cannot read the config file {p}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise _error(f"{p} is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise _error(f"{p}: not valid TOML: {exc}") from None
        base: Path | None = p.resolve().parent
        source = str(p)
    else:
        doc, base, source = {}, None, "environment"
    try:
        return _build(doc, environ, base, source, backends=backends)
    except CalloutError as exc:
        if exc.message.startswith(source):
            raise
        raise _error(f"{source}: {exc.message}") from None


def _build(
    doc: dict[str, Any], env: _Env, base: Path | None, source: str, *, backends: bool
) -> CalloutConfig:
    unknown = sorted(set(doc) - set(_SECTIONS) - {"mode", "backend"})
    if unknown:
        raise _error(f"unknown key {unknown[0]!r} (known: mode, backend, {', '.join(_SECTIONS)})")
    top, _ = _parse_fields("", {k: v for k, v in doc.items() if k == "mode"}, _TopLevel, env, base)
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        values, secrets = _parse_fields(name, _table(f"[{name}]", doc.get(name)), cls, env, base)
        sections[name] = cls(**values, **secrets)
    backend_doc = _table("[backend]", doc.get("backend"))
    own = {k: v for k, v in backend_doc.items() if not isinstance(v, dict)}
    routing_values, _ = _parse_fields("backend", own, BackendRouting, env, base)
    configured = {k for k, v in backend_doc.items() if isinstance(v, dict)}
    for name in BACKENDS:  # a backend may be configured from the environment alone
        prefix = env_name("backend", name) + "_"
        if any(k.startswith(prefix) for k in env.env):
            configured.add(name)
    sections_out: dict[str, BackendSection] = {}
    for name in sorted(configured):
        if name not in BACKENDS:
            raise _error(f"unknown backend [backend.{name}] (known: {', '.join(BACKENDS)})")
        raw = backend_doc.get(name, {})
        if not backends:
            sections_out[name] = BackendSection(name, dict(raw), {}, checked=False)
            continue
        config_cls, _ = BACKENDS[name].load()
        if not dataclasses.is_dataclass(config_cls):
            raise _error(f"backend {name!r}: {config_cls.__name__} is not a dataclass")
        values, secrets = _parse_fields(f"backend.{name}", raw, config_cls, env, base, resolve_str_paths=True)
        sections_out[name] = BackendSection(name, values, secrets)
    # everything under our prefix must have been understood
    for key in sorted(env.env):
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV or key in env.used:
            continue
        if not backends and key.startswith(ENV_PREFIX + "BACKEND_"):
            continue
        raise _error(f"unknown environment variable {key}")
    cfg = CalloutConfig(
        source=source,
        mode=top.get("mode", "config"),
        routing=BackendRouting(**routing_values),
        backends=sections_out,
        **sections,
    )
    _check(cfg)
    return cfg


def _check(cfg: CalloutConfig) -> None:
    if cfg.mode not in MODES:
        raise _error(f"mode must be 'config' or 'operator', not {cfg.mode!r}")
    n = cfg.nats
    if n.creds_file is not None and (n.user is not None or n.password is not None):
        raise _error("[nats]: give creds_file or user + password, not both")
    if n.user is not None and n.password is None:
        raise _error(f"[nats] user needs a password (password_file, or {env_name('nats', 'password')})")
    if n.password is not None and n.user is None:
        raise _error("[nats] password given without user")
    if cfg.mode == "operator" and n.user is not None:
        raise _error("[nats]: operator mode connects with a creds file (creds_file), not user/password")
    if n.connect_timeout <= 0:
        raise _error("[nats] connect_timeout must be > 0")
    if cfg.http.port is not None and not 0 <= cfg.http.port <= 65535:
        raise _error(f"[http] port must be 0..65535, not {cfg.http.port}")
    if cfg.http.ready_cache < 0:
        raise _error("[http] ready_cache must be >= 0")
    lim = cfg.limits
    if lim.backend_timeout <= 0 or lim.max_in_flight < 1 or lim.leeway < 0 or not lim.error_text:
        raise _error(
            "[limits]: backend_timeout must be > 0, max_in_flight >= 1, leeway >= 0, error_text non-empty"
        )
    if cfg.audit.ring_size < 1:
        raise _error("[audit] ring_size must be >= 1")
    if cfg.log.level.lower() not in LOG_LEVELS:
        raise _error(f"[log] level must be one of {', '.join(LOG_LEVELS)}, not {cfg.log.level!r}")
    if cfg.mode == "config" and (cfg.issuer.operator or cfg.issuer.home or cfg.issuer.account):
        raise _error(
            "[issuer] account/operator/home are for operator mode (config mode: the seed's account is "
            "auth_callout.issuer, and the policy names target accounts)"
        )


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """The policy in ``path`` (TOML; JSON if it ends in ``.json``).

    Raises :class:`~callout.policy.PolicyError` naming the file and the problem.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() == ".json":
            import orjson

            doc = orjson.loads(data)
        else:
            doc = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise PolicyError(f"{p}: cannot parse: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyError(f"{p}: the policy must be a table/object")
    try:
        return Policy.from_dict(doc)
    except PolicyError as exc:
        raise PolicyError(f"{p}: {exc.message}") from None
