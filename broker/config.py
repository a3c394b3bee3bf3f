"""The nats-server configuration the broker understands, read from the same file.

``parse_conf`` reads nats-server's config syntax (``key: value``, ``key = value`` or
``key value``; ``{}`` maps; ``[]`` arrays; ``#`` and ``//`` comments; quoted or bare strings;
booleans; integers with size units) — enough for every file ``trustkit generate config`` writes and
for hand-written ones. ``BrokerConfig.from_conf`` keeps what the broker supports and refuses
anything else with an error naming the key, so a config never silently means less than it says.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from broker.tls import TLSConfig, TLSConfigError, parse_tls
from trustkit import natsconf, nkeys
from trustkit.errors import BrokerError
from trustkit.jwt.types import CONNECTION_TYPES, Permission, ResponsePermission, UserPermissionLimits
from trustkit.nkeys import PrefixByte
from trustkit.trust import verify_nonce_signature

__all__ = [
    "AuthCalloutConfig",
    "BrokerConfig",
    "ConfigError",
    "ConfigLogin",
    "ConfigNkeyUser",
    "ConfigUser",
    "compare_passwords",
    "is_bcrypt",
    "parse_conf",
]

GLOBAL_ACCOUNT = "$G"
#: the only connection type the broker has (nats-server's ``jwt.ConnectionTypeStandard``)
STANDARD = "STANDARD"
#: nats-server's DEFAULT_ALLOW_RESPONSE_MAX_MSGS and DEFAULT_ALLOW_RESPONSE_EXPIRATION (const.go)
_RESPONSE_MAX = 1
_RESPONSE_TTL_NS = 2 * 60 * 1_000_000_000


class ConfigError(BrokerError):
    code = "config"


def parse_conf(text: str, source: str = "config", *, base: Path | None = None) -> dict[str, Any]:
    """Parse nats-server config text (:func:`trustkit.natsconf.parse_conf`, errors as
    :class:`ConfigError`); ``include`` resolves against ``base``."""
    return natsconf.parse_conf(text, source, error=ConfigError, base=base)


@dataclass(frozen=True, slots=True)
class ConfigUser:
    """A user/password user of ``authorization { users }`` (account ``$G``) or of
    ``accounts { A: { users } }``, with its optional ``permissions`` (publish/subscribe). The
    password is plain text or a bcrypt hash (:func:`compare_passwords`)."""

    name: str
    password: str = field(repr=False)
    account: str = GLOBAL_ACCOUNT
    permissions: UserPermissionLimits | None = None
    #: ``allowed_connection_types`` upper-cased (empty: any type)
    connection_types: tuple[str, ...] = ()
    #: ``proxy_required``: the user may only come through a trusted proxy (the broker has none)
    proxy_required: bool = False


@dataclass(frozen=True, slots=True)
class ConfigNkeyUser:
    """An nkey user (``users: [ { nkey: U… } ]``, in ``authorization {}`` or an account): it
    proves its key by signing the INFO ``nonce`` (CONNECT ``nkey`` + ``sig``)."""

    nkey: str
    account: str = GLOBAL_ACCOUNT
    permissions: UserPermissionLimits | None = None
    connection_types: tuple[str, ...] = ()
    proxy_required: bool = False


def _type_allowed(types: tuple[str, ...]) -> bool:
    """nats-server ``connectionTypeAllowed`` for the broker's only kind of client (STANDARD)."""
    return not types or STANDARD in types


@dataclass(frozen=True, slots=True)
class ConfigLogin:
    """A CONNECT matched to a config-mode identity (:meth:`BrokerConfig.match_login`).

    ``name`` is who it is (nats-server's raw auth user: the nkey, the user name, or
    ``[REDACTED]`` for a token). ``secret`` is the configured password or token still to be
    compared with ``given`` (:func:`compare_passwords`); None when nothing is left to compare
    (an nkey user whose signature was verified)."""

    name: str
    account: str
    permissions: UserPermissionLimits | None
    secret: str | None = field(default=None, repr=False)
    given: str = field(default="", repr=False)


# nats-server isBcrypt (auth.go validBcryptPrefix ``^\$2[abxy]\$\d{2}\$.*``): a configured
# password or token that looks like this is compared with bcrypt; anything else as plain text
# (``$2$10$…`` included)
_BCRYPT = re.compile(r"\$2[abxy]\$\d{2}\$")
#: bcrypt reads at most 72 bytes of a password (Go's CompareHashAndPassword ignores the rest)
_BCRYPT_MAX = 72


def is_bcrypt(secret: str) -> bool:
    """True if nats-server compares ``secret`` (a configured password or token) with bcrypt."""
    return _BCRYPT.match(secret) is not None


def compare_passwords(configured: str, given: str) -> bool:
    """nats-server ``comparePasswords``: bcrypt when ``configured`` is a bcrypt hash (50-100 ms
    at cost 10-11: call it off the event loop), otherwise a constant-time comparison. A hash
    bcrypt cannot read matches nothing."""
    if is_bcrypt(configured):
        import bcrypt  # only configs with bcrypt secrets need it

        try:
            return bcrypt.checkpw(given.encode()[:_BCRYPT_MAX], configured.encode())
        except ValueError:  # a malformed hash (Go: CompareHashAndPassword fails)
            return False
    return hmac.compare_digest(configured.encode(), given.encode())


@dataclass(frozen=True, slots=True)
class AuthCalloutConfig:
    """``authorization { auth_callout { ... } }`` (config mode), as nats-server's ``parseAuthCallout``
    reads it: ``issuer`` (account public key that signs the user JWTs), ``account`` (where the
    requests go, default ``$G``), ``auth_users`` (users that bypass the callout: the service's own),
    ``xkey`` (the service's public curve key: requests are sealed for it) and
    ``allowed_accounts`` (if given, only users of these accounts are delegated)."""

    issuer: str
    auth_users: tuple[str, ...]
    account: str = GLOBAL_ACCOUNT
    xkey: str = ""
    allowed_accounts: tuple[str, ...] = ()


@dataclass
class BrokerConfig:
    """What the broker runs with. Defaults are nats-server's (const.go)."""

    host: str = "0.0.0.0"  # noqa: S104 - nats-server's default; tests and docs pass 127.0.0.1
    port: int = 4222
    http_port: int | None = None
    server_name: str = ""
    operator_jwts: list[str] = field(default_factory=list)
    system_account: str | None = None
    resolver: str | None = None  # None (no auth), "memory", "full", "cache"
    resolver_dir: Path | None = None
    allow_delete: bool = False
    # the rest of the resolver block, read and checked as nats-server does (opts.go); a single
    # node has no peers to sync with or fetch from, so interval and timeout change nothing
    hard_delete: bool = False
    resolver_limit: int = 0  # full: 0 = unlimited; cache: 0 = 1000
    resolver_interval: float = 60.0
    resolver_timeout: float = 1.9
    preload: dict[str, str] = field(default_factory=dict)
    max_payload: int = 1024 * 1024
    max_control_line: int = 4096
    max_pending: int = 64 * 1024 * 1024
    max_connections: int = 64 * 1024
    #: how many closed connections ``/connz`` keeps (0: nats-server's default, 10,000)
    max_closed_clients: int = 0
    ping_interval: float = 120.0
    ping_max: int = 2
    auth_timeout: float = 2.0
    tls: TLSConfig | None = None
    #: ``authorization { timeout }`` in seconds; 0 means nats-server's default (2 s, TLS timeout + 1 s)
    authorization_timeout: float = 0.0
    #: config-mode user/password users by name (None: none at all)
    users: dict[str, ConfigUser] | None = None
    #: config-mode nkey users by public key (None: none at all)
    nkeys: dict[str, ConfigNkeyUser] | None = None
    #: ``authorization { user, password }``: the single user (no ``users`` anywhere), in ``$G``
    username: str = ""
    password: str = field(default="", repr=False)
    #: ``authorization { token }`` (CONNECT ``auth_token``), in ``$G``
    token: str = field(default="", repr=False)
    #: ``authorization { proxy_required }``: the token or single user only through a trusted proxy
    proxy_required: bool = False
    #: ``no_auth_user``: who a client that sends no credentials is (a user or nkey user)
    no_auth_user: str = ""
    #: config-mode accounts named in ``accounts {}`` (``$G`` always exists)
    accounts: list[str] = field(default_factory=list)
    auth_callout: AuthCalloutConfig | None = None
    #: what nats-server only logs at start-up (the broker logs it too)
    warnings: list[str] = field(default_factory=list)

    @property
    def operator_mode(self) -> bool:
        return bool(self.operator_jwts)

    @property
    def auth_required(self) -> bool:
        """nats-server ``configureAuthorization``: trusted operators, users or nkey users, a
        single user or a token (a password alone requires nothing)."""
        return self.operator_mode or bool(self.users or self.nkeys or self.username or self.token)

    @property
    def info_auth_required(self) -> bool:
        """INFO's ``auth_required``: as :attr:`auth_required`, but false with a ``no_auth_user``
        (nats-server ``createClient``; ``/varz`` still says true, the auth timer still runs)."""
        return self.auth_required and not self.no_auth_user

    @property
    def no_auth_first(self) -> bool:
        """nats-server's parser: with a ``no_auth_user`` that is a user/password user, a client
        may send another operation before (or instead of) a CONNECT, and is then judged as that
        user (an nkey ``no_auth_user`` still needs a CONNECT)."""
        return bool(self.no_auth_user) and self.no_auth_user in (self.users or {})

    @property
    def nonce_required(self) -> bool:
        """nats-server ``nonceRequired``: INFO carries a nonce with trusted operators or nkey users."""
        return self.operator_mode or bool(self.nkeys)

    def is_configured_user(self, name: str) -> bool:
        """True if ``name`` is a user of a users list, an nkey user's key or the single user."""
        if name in (self.users or {}) or name in (self.nkeys or {}):
            return True
        return bool(name) and name == self.username

    def no_auth_credentials(self, opts: Mapping[str, Any]) -> dict[str, str]:
        """What nats-server writes into the CONNECT of a client that sent no credentials when a
        ``no_auth_user`` is configured (``processClientOrLeafAuthentication``): the nkey user's
        key (then no signature is needed), or the user's name and configured password (then
        compared with itself, so a bcrypt-hashed no_auth_user is refused, as in nats-server).
        Empty when nothing is to be written. The caller merges it into the CONNECT, where the
        auth callout, ``/connz`` and ``$SYS.REQ.USER.INFO`` see it, as nats-server's ``c.opts``."""
        nau = self.no_auth_user
        if not nau:
            return {}

        def unset(key: str) -> bool:
            v = opts.get(key)
            return v is None or v == ""

        bare = unset("user") and unset("pass") and unset("auth_token")
        if self.nkeys:
            if bare and unset("nkey") and nau in self.nkeys:
                return {"nkey": nau}
            if not unset("nkey"):  # the nkey decides (a configured one or a refusal)
                return {}
        user = (self.users or {}).get(nau)
        if bare and user is not None:
            return {"user": user.name, "pass": user.password}
        return {}

    def match_login(self, opts: Mapping[str, Any], nonce: str) -> ConfigLogin | None:
        """Who a CONNECT (``opts``, with :meth:`no_auth_credentials` merged in) is in config
        mode, in nats-server's order (``processClientOrLeafAuthentication``): an nkey user (its
        ``sig`` over ``nonce`` is verified here, except for the ``no_auth_user``), else a user of
        a users list, else the token, else the single user. A user whose
        ``allowed_connection_types`` leave out STANDARD, or with ``proxy_required`` (the broker
        has no trusted proxies, so nats-server would refuse it too), is refused. None when
        refused already; the password or token comparison is left to the caller
        (:func:`compare_passwords`: bcrypt is slow)."""
        creds: dict[str, str] = {}
        for k in ("nkey", "sig", "user", "pass", "auth_token"):
            v = opts.get(k)
            if v is not None and not isinstance(v, str):  # nats-server cannot decode such a CONNECT
                return None
            creds[k] = v or ""
        if self.nkeys and creds["nkey"]:
            nk = self.nkeys.get(creds["nkey"])
            if nk is None or not _type_allowed(nk.connection_types) or nk.proxy_required:
                return None
            if nk.nkey != self.no_auth_user and (
                not creds["sig"] or not verify_nonce_signature(nk.nkey, nonce, creds["sig"])
            ):
                return None
            return ConfigLogin(nk.nkey, nk.account, nk.permissions)
        if self.users and creds["user"]:
            user = self.users.get(creds["user"])
            if user is None or not _type_allowed(user.connection_types) or user.proxy_required:
                return None
            return ConfigLogin(user.name, user.account, user.permissions, user.password, creds["pass"])
        if self.proxy_required and (self.token or self.username):
            return None
        if self.token:
            # nats-server registers no user for a token or the single user: no permissions
            return ConfigLogin("[REDACTED]", GLOBAL_ACCOUNT, None, self.token, creds["auth_token"])
        if self.username and creds["user"] == self.username:
            return ConfigLogin(self.username, GLOBAL_ACCOUNT, None, self.password, creds["pass"])
        return None

    @classmethod
    def from_file(cls, path: str | Path) -> BrokerConfig:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
        return cls.from_conf(parse_conf(text, str(p), base=p.parent), base=p.parent)

    @classmethod
    def from_conf(cls, conf: dict[str, Any], *, base: Path | None = None) -> BrokerConfig:
        cfg = cls()
        for key, value in conf.items():
            handler = _KEYS.get(key)
            if handler is None:
                if natsconf.is_variable(conf, key):  # defined to be referred to as $KEY
                    continue
                raise ConfigError(
                    f"configuration key {key!r} is not supported by trustkit-broker "
                    "(run nats-server for it; see docs/broker.md)"
                )
            handler(cfg, value, base or Path("."))
        if cfg.resolver in ("full", "cache") and cfg.resolver_dir is None:
            raise ConfigError("resolver: a nats-based resolver needs 'dir'")
        if cfg.preload and cfg.resolver is None:
            raise ConfigError("resolver_preload needs a resolver (MEMORY, full or cache)")
        if cfg.operator_mode and cfg.resolver is None:
            raise ConfigError("operator mode needs a resolver (resolver: MEMORY or a resolver block)")
        if cfg.max_payload > cfg.max_pending:  # nats-server validateOptions
            raise ConfigError(
                f"max_payload ({cfg.max_payload}) cannot be higher than max_pending ({cfg.max_pending})"
            )
        if cfg.authorization_timeout > 0:
            cfg.auth_timeout = cfg.authorization_timeout
        elif cfg.tls is not None:
            cfg.auth_timeout = cfg.tls.timeout + 1.0  # nats-server getDefaultAuthTimeout
        _check_auth(cfg)
        return cfg


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _operator(cfg: BrokerConfig, value: Any, base: Path) -> None:
    from trustkit.creds import parse_decorated_jwt

    values = value if isinstance(value, list) else [value]
    for v in values:
        text = str(v)
        if not text.startswith("eyJ"):  # a path to a (decorated) JWT file
            path = base / text
            try:
                text = parse_decorated_jwt(path.read_text())
            except OSError as exc:
                raise ConfigError(f"operator: cannot read {path}: {exc.strerror}") from None
        cfg.operator_jwts.append(text)


def _resolver(cfg: BrokerConfig, value: Any, base: Path) -> None:
    if isinstance(value, str):
        if value.upper() in ("MEMORY", "MEM"):
            cfg.resolver = "memory"
            return
        raise ConfigError(
            f"resolver {value!r} is not supported by trustkit-broker (MEMORY or a resolver block)"
        )
    if not isinstance(value, dict):
        raise ConfigError("resolver must be MEMORY or a block { type, dir, ... }")
    for k, v in value.items():
        if k == "type":
            t = str(v).lower()
            if t not in ("full", "cache", "mem", "memory"):
                raise ConfigError(f"resolver type {v!r} is not supported")
            cfg.resolver = "memory" if t.startswith("mem") else t
        elif k == "dir":
            cfg.resolver_dir = base / str(v)
        elif k in ("allow_delete", "hard_delete"):
            setattr(cfg, k, _bool(f"resolver {k}", v))
        elif k == "limit":
            cfg.resolver_limit = _int("resolver limit", v)
        elif k in ("interval", "timeout", "ttl"):
            seconds = _go_duration(f"resolver {k}", v)
            if k == "interval":
                cfg.resolver_interval = seconds if seconds > 0 else 60.0  # nats-server: <= 0 is 1m
            elif k == "timeout":
                if seconds <= 0:
                    raise ConfigError(f"resolver timeout must be positive, got {v!r}")
                cfg.resolver_timeout = seconds
        elif not natsconf.is_variable(value, k):
            raise ConfigError(f"resolver key {k!r} is not supported by trustkit-broker")
    # nats-server's per-type rules (opts.go parseAccountResolver)
    if cfg.resolver == "cache":
        if "interval" in value and _go_duration("resolver interval", value["interval"]) != 0:
            raise ConfigError("resolver: CACHE does not accept sync")
        for k in ("allow_delete", "hard_delete"):
            if k in value:
                raise ConfigError(f"resolver: CACHE does not accept {k}")
    elif cfg.resolver == "full":
        if "ttl" in value:
            raise ConfigError("resolver: FULL does not accept ttl")
        if "hard_delete" in value and not cfg.allow_delete:
            raise ConfigError("resolver: hard_delete has no effect without delete")


def _go_duration(key: str, value: Any) -> float:
    """A Go duration string (``time.ParseDuration``: ``1.9s``, ``2m``, ``1h30m``, ``500ms``) in seconds."""
    text = value.strip() if isinstance(value, str) else ""
    sign = -1.0 if text.startswith("-") else 1.0
    text = text[1:] if len(text) > 1 and text[0] in "+-" else text
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{key} must be a duration like \"2m\" or \"1.9s\", got {value!r}")
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sign * sum(float(n) * scale[u] for n, u in parts)


def _preload(cfg: BrokerConfig, value: Any, base: Path) -> None:
    if not isinstance(value, dict):
        raise ConfigError("resolver_preload must be a map of account key to JWT")
    cfg.preload.update({k.upper(): str(v) for k, v in value.items()})


def _tls(cfg: BrokerConfig, value: Any, base: Path) -> None:
    try:
        cfg.tls = parse_tls(value, base)
    except TLSConfigError as exc:
        raise ConfigError(exc.message) from None


# --- authorization {} and accounts {} (config mode) -------------------------------------------


def _str_list(key: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else None
    if items is None or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{key} must be an array of strings, got {value!r}")
    return list(items)


def _permission(key: str, value: Any) -> Permission:
    """One direction of nats-server's ``parseUserPermissions``: a subject, a list, or ``{allow, deny}``."""
    if isinstance(value, str):
        return Permission(allow=[value])
    if isinstance(value, list):
        return Permission(allow=_str_list(key, value))
    if isinstance(value, dict):
        perm = Permission()
        for k, v in value.items():
            if k in ("allow", "deny"):
                setattr(perm, k, [v] if isinstance(v, str) else _str_list(f"{key} {k}", v))
            elif not natsconf.is_variable(value, k):
                raise ConfigError(
                    f'Unknown field name "{k}" parsing subject permissions, '
                    "only 'allow' or 'deny' are permitted"
                )
        return perm
    raise ConfigError(f"{key} must be a subject, an array or {{ allow, deny }}, got {value!r}")


def _allow_responses(key: str, value: Any) -> ResponsePermission | None:
    """nats-server ``allow_responses`` (``parseUserPermissions``, ``parseAllowResponses``):
    ``true`` or ``{ max, expires }`` with its aliases; 0 (or unset) is the default (1 reply
    within 2 minutes), a negative value means no limit; ``false`` means none."""
    if isinstance(value, bool):
        return ResponsePermission(max=_RESPONSE_MAX, ttl=_RESPONSE_TTL_NS) if value else None
    if not isinstance(value, dict):
        raise ConfigError("error parsing response permissions, expected a boolean or a map")
    resp = ResponsePermission(max=_RESPONSE_MAX, ttl=_RESPONSE_TTL_NS)
    for k, v in value.items():
        if k in ("max", "max_msgs", "max_messages", "max_responses"):
            if isinstance(v, bool) or not isinstance(v, int):  # nats-server: a failed int64 assertion
                raise ConfigError(f"{key} {k} must be an integer, got {v!r}")
            resp.max = v or _RESPONSE_MAX
        elif k in ("expires", "expiration", "ttl"):
            if not isinstance(v, str):
                raise ConfigError("error parsing expires, not a duration string")
            try:
                ns = round(_go_duration(f"{key} {k}", v) * 1e9)
            except ConfigError:
                raise ConfigError(f"error parsing expires: time: invalid duration {json.dumps(v)}") from None
            resp.ttl = ns or _RESPONSE_TTL_NS
        elif not natsconf.is_variable(value, k):
            raise ConfigError(f'Unknown field "{k}" parsing permissions')
    return resp


def _user_permissions(who: str, value: Any) -> UserPermissionLimits:
    """nats-server ``parseUserPermissions``: ``publish`` (aliases ``pub``, ``import``),
    ``subscribe`` (``sub``, ``export``) and ``allow_responses`` (``publish_allow_responses``).
    A response permission turns off the blanket publish allow (``validateResponsePermissions``:
    without a publish allow list, only replies may be published), which
    :func:`trustkit.trust.compile_permissions` does for config and JWT users alike."""
    if not isinstance(value, dict):
        raise ConfigError(f"Expected permissions to be a map/struct, got {value!r}")
    upl = UserPermissionLimits()
    for k, v in value.items():
        if k in ("publish", "pub", "import"):
            upl.pub = _permission(f"{who} permissions {k}", v)
        elif k in ("subscribe", "sub", "export"):
            upl.sub = _permission(f"{who} permissions {k}", v)
        elif k in ("allow_responses", "publish_allow_responses"):
            upl.resp = _allow_responses(f"{who} permissions {k}", v)
        elif not natsconf.is_variable(value, k):
            raise ConfigError(f'Unknown field "{k}" parsing permissions')
    return upl


def _connection_types(value: Any) -> tuple[str, ...]:
    """nats-server ``parseAllowedConnectionTypes``: a string or an array of strings, matched
    without case; an unknown type fails the config."""
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        for v in value:
            if not isinstance(v, str):
                raise ConfigError(
                    f"error parsing allowed connection types: unsupported type in array {_go_type(v)}"
                )
        items = value
    else:
        raise ConfigError(f"error parsing allowed connection types: unsupported type {_go_type(value)}")
    upper = [v.upper() for v in items]
    unknown = [v for v in upper if v not in CONNECTION_TYPES]
    if unknown:  # Go's %q of a []string
        raise ConfigError("invalid connection types [" + " ".join(json.dumps(u) for u in unknown) + "]")
    return tuple(dict.fromkeys(upper))


def _go_type(value: Any) -> str:
    """The Go type nats-server's config parser gives a value (for its error texts)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "string"


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):  # nats-server: a type assertion that fails the config
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):  # nats-server: a type assertion that fails the config
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _parse_users(value: Any, account: str) -> tuple[list[ConfigUser], list[ConfigNkeyUser]]:
    """nats-server ``parseUsers``: user/password entries and nkey entries, each with optional
    ``permissions`` (aliases ``permission``, ``authorization``)."""
    if not isinstance(value, list):
        raise ConfigError(f"Expected users field to be an array, got {value!r}")
    users: list[ConfigUser] = []
    keys: list[ConfigNkeyUser] = []
    for entry in value:
        if not isinstance(entry, dict):
            raise ConfigError(f"Expected user entry to be a map/struct, got {entry!r}")
        name = password = nkey = ""
        perms: UserPermissionLimits | None = None
        types: tuple[str, ...] = ()
        proxy = False
        for k, v in entry.items():
            if k in ("user", "username"):
                name = _string(f"user {k}", v)
            elif k in ("pass", "password"):
                password = _string(f"user {name or '?'} {k}", v)
            elif k == "nkey":
                nkey = _string("user nkey", v)
            elif k in ("permission", "permissions", "authorization"):
                perms = _user_permissions(f"user {name or nkey or '?'}", v)
            elif k in ("allowed_connection_types", "connection_types", "clients"):
                types = _connection_types(v)
            elif k == "proxy_required":
                proxy = _bool("user proxy_required", v)
            elif not natsconf.is_variable(entry, k):
                raise ConfigError(f'unknown field "{k}"')
        if not name and not nkey:
            raise ConfigError("User entry requires a user")
        if nkey:
            if not nkeys.is_valid_public_key(nkey, PrefixByte.USER):
                raise ConfigError(f"Not a valid public nkey for a user: {nkey!r}")
            if name or password:
                raise ConfigError(f"Nkey users do not take usernames or passwords (nkey {nkey})")
            keys.append(ConfigNkeyUser(nkey, account, perms, types, proxy))
        else:
            users.append(ConfigUser(name, password, account, perms, types, proxy))
    return users, keys


def _add_users(
    cfg: BrokerConfig,
    users: list[ConfigUser],
    keys: list[ConfigNkeyUser],
    default: UserPermissionLimits | None,
) -> None:
    """Register parsed users: ``default`` (the block's default permissions) for those without
    their own (nats-server ``applyDefaultPermissions``); user names and nkeys are one namespace
    across all blocks."""
    by_name = cfg.users if cfg.users is not None else {}
    by_key = cfg.nkeys if cfg.nkeys is not None else {}
    for u in users:
        if u.name in by_name or u.name in by_key:
            raise ConfigError(f'Duplicate user "{u.name}" detected')
        if u.permissions is None and default is not None:
            u = replace(u, permissions=default)
        by_name[u.name] = u
    for nk in keys:
        if nk.nkey in by_name or nk.nkey in by_key:
            raise ConfigError(f'Duplicate nkey "{nk.nkey}" detected')
        if nk.permissions is None and default is not None:
            nk = replace(nk, permissions=default)
        by_key[nk.nkey] = nk
    # None while there is nobody: nats-server requires no auth for an empty users list
    cfg.users = by_name or cfg.users
    cfg.nkeys = by_key or cfg.nkeys


def _auth_callout(value: Any) -> AuthCalloutConfig:
    """nats-server ``parseAuthCallout``, with its aliases (``acc``, ``users``, ``key``) and texts."""
    if not isinstance(value, dict):
        raise ConfigError(f"Expected authorization callout to be a map/struct, got {value!r}")
    issuer, account, xkey = "", GLOBAL_ACCOUNT, ""
    auth_users: list[str] = []
    allowed: list[str] = []
    for k, v in value.items():
        if k == "issuer":
            issuer = str(v)
            if not nkeys.is_valid_public_key(issuer, PrefixByte.ACCOUNT):
                raise ConfigError(f'Expected callout user to be a valid public account nkey, got "{issuer}"')
        elif k in ("account", "acc"):
            account = str(v) or GLOBAL_ACCOUNT
        elif k in ("auth_users", "users"):
            if not isinstance(v, list):
                raise ConfigError(f"Expected auth_users field to be an array, got {v!r}")
            auth_users = [str(u) for u in v]
        elif k in ("xkey", "key"):
            xkey = str(v)
            if not nkeys.is_valid_public_key(xkey, PrefixByte.CURVE):
                raise ConfigError(f'Expected callout xkey to be a valid public xkey, got "{xkey}"')
        elif k == "allowed_accounts":
            if not isinstance(v, list):
                raise ConfigError(f"Expected allowed accounts field to be an array, got {v!r}")
            allowed = [str(a) for a in v]
        else:
            raise ConfigError(f'Unknown field "{k}" parsing authorization callout')
    if not issuer:
        raise ConfigError("Authorization callouts require an issuer to be specified")
    if not auth_users:
        raise ConfigError("Authorization callouts require authorized users to be specified")
    return AuthCalloutConfig(issuer, tuple(auth_users), account, xkey, tuple(allowed))


def _authorization(cfg: BrokerConfig, value: Any, base: Path) -> None:
    """nats-server ``parseAuthorization``: ``timeout``, ``users`` (user/password and nkey users),
    ``permissions`` (aliases ``default_permission(s)``: for the users listed here without their
    own), a single ``user``/``password``, a ``token``, ``proxy_required`` (for the token or the
    single user) and ``auth_callout`` (alias ``auth_hook``), with nats-server's rules on
    combining them (its texts)."""
    if not isinstance(value, dict):
        raise ConfigError("authorization must be a block { users, timeout, auth_callout }")
    user = password = token = ""
    listed: tuple[list[ConfigUser], list[ConfigNkeyUser]] | None = None
    default: UserPermissionLimits | None = None
    for k, v in value.items():
        if k == "timeout":
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                raise ConfigError("error parsing authorization config, 'timeout' wrong type")
            if isinstance(v, str):
                try:
                    seconds = float(v)
                except ValueError:
                    seconds = _go_duration("authorization timeout", v)
            else:
                seconds = float(v)
            if seconds < 0:
                raise ConfigError(f"authorization timeout must not be negative, got {v!r}")
            cfg.authorization_timeout = seconds
        elif k in ("user", "username"):
            user = _string(f"authorization {k}", v)
        elif k in ("pass", "password"):
            password = _string(f"authorization {k}", v)
        elif k == "token":
            token = _string("authorization token", v)
        elif k == "users":
            listed = _parse_users(v, GLOBAL_ACCOUNT)
        elif k in ("default_permission", "default_permissions", "permissions"):
            default = _user_permissions("authorization", v)
        elif k in ("auth_callout", "auth_hook"):
            cfg.auth_callout = _auth_callout(v)
        elif k == "proxy_required":
            cfg.proxy_required = _bool("authorization proxy_required", v)
        elif not natsconf.is_variable(value, k):
            raise ConfigError(f'unknown field "{k}"')
    # nats-server's rules (opts.go "authorization"); users of accounts {} read before count too
    if (user or password) and token:
        raise ConfigError("Cannot have a user/pass and token")
    if listed is not None or cfg.users or cfg.nkeys:
        if user:
            raise ConfigError("Can not have a single user/pass and a users array")
        if token:
            raise ConfigError("Can not have a token and a users array")
    if listed is not None:
        _add_users(cfg, *listed, default)
    cfg.username, cfg.password, cfg.token = user, password, token
    # what nats-server accepts and then ignores: said at start-up
    if default is not None and not (listed and (listed[0] or listed[1])):
        cfg.warnings.append(
            "authorization permissions apply to the users listed in its users array only: "
            "none is listed, so they apply to nobody (as in nats-server)"
        )
    if password and not user and not token:
        cfg.warnings.append(
            "authorization password without a user requires no authentication (as in nats-server)"
        )


def _accounts(cfg: BrokerConfig, value: Any, base: Path) -> None:
    """``accounts { A: { users: [...], default_permissions: {...} } }``: named accounts with
    user/password and nkey users (nats-server ``parseAccounts``)."""
    if not isinstance(value, dict):
        raise ConfigError("accounts must be a block { NAME: { users: [...] } }")
    for key, body in value.items():
        name = natsconf.written(value, key)  # account names are case-sensitive
        if name in cfg.accounts:
            raise ConfigError(f'Duplicate Account Entry: "{name}"')
        if not isinstance(body, dict):
            raise ConfigError(f"account {name!r} must be a block {{ users: [...] }}")
        cfg.accounts.append(name)
        users: list[ConfigUser] = []
        keys: list[ConfigNkeyUser] = []
        default: UserPermissionLimits | None = None
        for k, v in body.items():
            if k == "users":
                users, keys = _parse_users(v, name)
            elif k == "default_permissions":
                default = _user_permissions(f"account {name} default_permissions", v)
            elif not natsconf.is_variable(body, k):
                raise ConfigError(
                    f"account {name!r}: key {k!r} is not supported by trustkit-broker "
                    "(users, default_permissions)"
                )
        if users or keys:  # nats-server: against an authorization {} block read before
            if cfg.username:
                raise ConfigError("Can not have a single user/pass and accounts")
            if cfg.token:
                raise ConfigError("Can not have a token and accounts")
        _add_users(cfg, users, keys, default)


def _check_auth(cfg: BrokerConfig) -> None:
    """What nats-server validates across blocks (opts.go, jwt.go ``validateTrustedOperators``,
    auth.go ``validateNoAuthUser``)."""
    nau = cfg.no_auth_user
    if cfg.operator_mode:
        if cfg.accounts:
            raise ConfigError("operators do not allow Accounts to be configured directly")
        if cfg.users or cfg.nkeys:
            raise ConfigError("operators do not allow users to be configured directly")
        if cfg.auth_callout is not None:
            raise ConfigError("operators do not allow authorization callouts to be configured directly")
        if nau:
            raise ConfigError("no_auth_user not compatible with Trusted Operator")
        if cfg.username or cfg.token:  # nats-server accepts them and judges JWTs only
            cfg.warnings.append("authorization user/token is ignored in operator mode (as in nats-server)")
        return
    if nau:
        if cfg.users is None and cfg.nkeys is None:
            raise ConfigError(f'no_auth_user: "{nau}" present, but users/nkeys are not defined')
        if nau not in (cfg.users or {}) and nau not in (cfg.nkeys or {}):
            raise ConfigError(
                f'no_auth_user: "{nau}" not present as user or nkey in authorization block or '
                "account configuration"
            )
    ac = cfg.auth_callout
    if ac is None:
        return
    for name in ac.allowed_accounts:
        if name not in cfg.accounts:
            raise ConfigError(f'auth_callout allowed account "{name}" not found in configured accounts')
    # nats-server asks the callout for a proxy_required client and then refuses it whatever the
    # answer (auth_callout.go): the broker does not imitate that half, it refuses the config
    proxied = any(u.proxy_required for u in (cfg.users or {}).values()) or any(
        k.proxy_required for k in (cfg.nkeys or {}).values()
    )
    if cfg.proxy_required or proxied:
        raise ConfigError(
            "proxy_required together with auth_callout is not supported by trustkit-broker "
            "(run nats-server for it; see docs/broker.md)"
        )
    # nats-server logs these at start-up and then refuses every delegated login
    if ac.account != GLOBAL_ACCOUNT and ac.account not in cfg.accounts:
        cfg.warnings.append(f'Authorization callout account "{ac.account}" not valid')
    for u in ac.auth_users:
        if not cfg.is_configured_user(u):
            cfg.warnings.append(f'Authorization callout user "{u}" not valid')


def _set(name: str, conv: Any = None) -> Any:
    def handler(cfg: BrokerConfig, value: Any, base: Path) -> None:
        setattr(cfg, name, conv(name, value) if conv else value)

    return handler


_KEYS: dict[str, Any] = {
    "host": _set("host", lambda k, v: str(v)),
    "listen": None,  # filled below
    "port": _set("port", _int),
    "http_port": _set("http_port", _int),
    "http": _set("http_port", _int),
    "server_name": _set("server_name", lambda k, v: str(v)),
    "operator": _operator,
    "system_account": _set("system_account", lambda k, v: str(v).upper()),
    "resolver": _resolver,
    "resolver_preload": _preload,
    "max_payload": _set("max_payload", _int),
    "max_control_line": _set("max_control_line", _int),
    "max_pending": _set("max_pending", _int),
    "max_connections": _set("max_connections", _int),
    "max_closed_clients": _set("max_closed_clients", _int),
    "ping_max": _set("ping_max", _int),
    "ping_interval": None,  # filled below
    "tls": _tls,
    "authorization": _authorization,
    "accounts": _accounts,
    "no_auth_user": _set("no_auth_user", _string),
}


def _listen(cfg: BrokerConfig, value: Any, base: Path) -> None:
    host, _, port = str(value).rpartition(":")
    cfg.host = host or cfg.host
    cfg.port = _int("listen port", int(port)) if port.isdigit() else cfg.port


_KEYS["listen"] = _listen


def _duration_seconds(key: str, value: Any) -> float:
    """``2m``, ``30s``, ``1h``, ``500ms`` or a number of seconds (nats-server's duration forms)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value).strip())
    if not m:
        raise ConfigError(f"{key} must be a duration like 2m or 30s, got {value!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


_KEYS["ping_interval"] = _set("ping_interval", _duration_seconds)
