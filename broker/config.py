"""The nats-server configuration the broker understands, read from the same file.

``parse_conf`` reads nats-server's config syntax (``key: value``, ``key = value`` or
``key value``; ``{}`` maps; ``[]`` arrays; ``#`` and ``//`` comments; quoted or bare strings;
booleans; integers with size units) — enough for every file ``trustkit generate config`` writes and
for hand-written ones. ``BrokerConfig.from_conf`` keeps what the broker supports and refuses
anything else with an error naming the key, so a config never silently means less than it says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.tls import TLSConfig, TLSConfigError, parse_tls
from trustkit.errors import BrokerError

__all__ = ["BrokerConfig", "ConfigError", "parse_conf"]


class ConfigError(BrokerError):
    code = "config"


_SIZE = re.compile(r"(\d+)\s*(k|kb|m|mb|g|gb|ki|kib|mi|mib|gi|gib)", re.IGNORECASE)
_UNITS = {
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
_BARE_END = set(" \t\r\n,;}]#")


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.s, self.i, self.source = text, 0, source

    def error(self, message: str) -> ConfigError:
        line = self.s.count("\n", 0, self.i) + 1
        return ConfigError(f"{self.source}:{line}: {message}")

    def skip(self, newlines: bool = True) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r" or (newlines and c in "\n,;"):
                self.i += 1
            elif c == "#" or s.startswith("//", self.i):
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            else:
                return

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def map_body(self, closing: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            self.skip()
            c = self.peek()
            if c == "":
                if closing:
                    raise self.error(f"missing {closing!r}")
                return out
            if closing and c == closing:
                self.i += 1
                return out
            key = self.string_or_bare(key=True)
            if key.startswith("include"):
                raise self.error("include is not supported by trustkit-broker")
            self.skip(newlines=False)
            if self.peek() in (":", "="):
                self.i += 1
                self.skip(newlines=False)
            out[key.lower()] = self.value()

    def value(self) -> Any:
        c = self.peek()
        if c == "{":
            self.i += 1
            return self.map_body("}")
        if c == "[":
            self.i += 1
            items: list[Any] = []
            while True:
                self.skip()
                if self.peek() == "]":
                    self.i += 1
                    return items
                if self.peek() == "":
                    raise self.error("missing ']'")
                items.append(self.value())
        if c in "\"'":
            return self.string_or_bare()
        word = self.string_or_bare()
        if word.startswith("$"):
            raise self.error(f"variables ({word}) are not supported by trustkit-broker")
        low = word.lower()
        if low in _BOOLS:
            return _BOOLS[low]
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        m = _SIZE.fullmatch(word)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).lower()]
        return word

    def string_or_bare(self, key: bool = False) -> str:
        s, c = self.s, self.peek()
        if c == '"':
            j = self.i + 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            if j >= len(s):
                raise self.error("unterminated string")
            text = json.loads(s[self.i : j + 1])
            self.i = j + 1
            return str(text)
        if c == "'":
            j = s.find("'", self.i + 1)
            if j < 0:
                raise self.error("unterminated string")
            text = s[self.i + 1 : j]
            self.i = j + 1
            return text
        start = self.i
        stops = _BARE_END | ({":", "=", "{", "["} if key else set())
        while self.i < len(s) and s[self.i] not in stops:
            if s.startswith("//", self.i):
                break
            self.i += 1
        if self.i == start:
            raise self.error(f"unexpected {self.peek()!r}")
        return s[start : self.i]


def parse_conf(text: str, source: str = "config") -> dict[str, Any]:
    """Parse nats-server config text into nested dicts (keys lower-cased)."""
    return _Reader(text, source).map_body(None)


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
    ping_interval: float = 120.0
    ping_max: int = 2
    auth_timeout: float = 2.0
    tls: TLSConfig | None = None

    @property
    def operator_mode(self) -> bool:
        return bool(self.operator_jwts)

    @classmethod
    def from_file(cls, path: str | Path) -> BrokerConfig:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
        return cls.from_conf(parse_conf(text, str(p)), base=p.parent)

    @classmethod
    def from_conf(cls, conf: dict[str, Any], *, base: Path | None = None) -> BrokerConfig:
        cfg = cls()
        for key, value in conf.items():
            handler = _KEYS.get(key)
            if handler is None:
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
        if cfg.tls is not None:
            cfg.auth_timeout = cfg.tls.timeout + 1.0  # nats-server getDefaultAuthTimeout
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
            if not isinstance(v, bool):
                raise ConfigError(f"resolver {k} must be true or false, got {v!r}")
            setattr(cfg, k, v)
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
        else:
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
    "ping_max": _set("ping_max", _int),
    "ping_interval": None,  # filled below
    "tls": _tls,
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
