"""nats-server's configuration syntax, read into nested dicts: the one reader of it.

``key: value``, ``key = value`` or ``key value``; ``{}`` maps; ``[]`` arrays; ``#`` and ``//``
comments; quoted or bare strings; booleans; integers with size units (``1MB``, ``64KiB``). Keys
are lower-cased, as nats-server matches them; :func:`written` gives a key as the file spells it
(for blocks whose keys are names, ``accounts { APP: ... }``).

``include FILE`` and ``$variables`` work as in nats-server's parser (conf/parse.go): an included
file (relative to the including file's directory) is parsed on its own and its keys are set in
the block that includes it; ``$NAME`` is the value of the key ``NAME`` (spelt exactly) in the
enclosing blocks, innermost first, else of the environment variable ``NAME`` read as a config
value; ``$2a$...`` is a bcrypt hash, not a variable. Anything unresolved is an error naming the
line.

trustkit-broker reads its config with it, and ``trustkit-callout doctor`` reads the server's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trustkit.errors import TrustkitError

__all__ = ["NatsConfError", "is_variable", "parse_conf", "parse_conf_file", "written"]


class NatsConfError(TrustkitError):
    """A nats-server config that cannot be read (``source:line: what``)."""

    code = "nats_conf"


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


class _ConfMap(dict[str, Any]):
    """A parsed block: keys lower-cased (nats-server matches them so); ``written`` keeps each key
    as the file spells it, for blocks whose keys are names (``accounts { APP: ... }``)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[str, str] = {}
        self.by_written: dict[str, Any] = {}  # for $variables, which match keys as spelt
        self.used: set[str] = set()  # keys (lower-cased) that a $variable refers to

    def put(self, key: str, value: Any) -> None:
        self[key.lower()] = value
        self.written[key.lower()] = key
        self.by_written[key] = value


def is_variable(block: dict[str, Any], key: str) -> bool:
    """True if a ``$variable`` refers to ``key`` (lower-cased) of ``block``: nats-server does not
    call such a key an unknown field (it is there to be referred to)."""
    return isinstance(block, _ConfMap) and key in block.used


def written(block: dict[str, Any], key: str) -> str:
    """``key`` (lower-cased) as the file spells it."""
    return block.written.get(key, key) if isinstance(block, _ConfMap) else key


_MAX_INCLUDE_DEPTH = 10
_BCRYPT_PREFIX = "2a$"  # nats-server: a bare $2a$... is a bcrypt hash, not a variable
_ENV_KEY = "pk"


class _Reader:
    def __init__(
        self,
        text: str,
        source: str,
        error: Callable[[str], Exception],
        base: Path | None,
        depth: int = 0,
        env_refs: frozenset[str] = frozenset(),
    ) -> None:
        self.s, self.i, self.source, self._error = text, 0, source, error
        self.base, self.depth, self.env_refs = base, depth, env_refs
        self.blocks: list[_ConfMap] = []  # the blocks being read, outermost first

    def error(self, message: str) -> Exception:
        line = self.s.count("\n", 0, self.i) + 1
        return self._error(f"{self.source}:{line}: {message}")

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
        out = _ConfMap()
        self.blocks.append(out)
        try:
            return self._map_body(out, closing)
        finally:
            self.blocks.pop()

    def _map_body(self, out: _ConfMap, closing: str | None) -> dict[str, Any]:
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
            bare = c not in "\"'"
            key = self.string_or_bare(key=True)
            if bare and key.lower() == "include" and self.peek() in " \t":
                self.include(out)
                continue
            self.skip(newlines=False)
            if self.peek() in (":", "="):
                self.i += 1
                self.skip(newlines=False)
            out.put(key, self.value())

    def include(self, out: _ConfMap) -> None:
        """``include FILE``: the file's keys are set here, as nats-server does."""
        self.skip(newlines=False)
        c = self.peek()
        if c in "\"'":
            end = self.s.find(c, self.i + 1)
            if end < 0:
                raise self.error("unterminated include")
            name, self.i = self.s[self.i + 1 : end], end + 1
        else:
            start = self.i
            while self.i < len(self.s) and self.s[self.i] not in " \t\r\n;,}'":
                self.i += 1
            name = self.s[start : self.i]
        if not name:
            raise self.error("include without a file")
        if self.base is None:
            raise self.error(f"include {name}: no directory to resolve it against")
        if self.depth >= _MAX_INCLUDE_DEPTH:
            raise self.error(f"include {name}: includes nested more than {_MAX_INCLUDE_DEPTH} deep")
        # Go's filepath.Join(dir, name): the name is always under the including file's directory
        path = self.base / name.lstrip("/")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self.error(f"include {name}: cannot read {path}: {exc.__class__.__name__}") from None
        sub = _Reader(text, str(path), self._error, path.parent, self.depth + 1, self.env_refs)
        included = sub.map_body(None)
        assert isinstance(included, _ConfMap)
        for key, value in included.by_written.items():
            out.put(key, value)
            if key.lower() in included.used:
                out.used.add(key.lower())

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
            return self.variable(word[1:])
        low = word.lower()
        if low in _BOOLS:
            return _BOOLS[low]
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        m = _SIZE.fullmatch(word)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).lower()]
        return word

    def variable(self, name: str) -> Any:
        """``$name``: a key of an enclosing block (innermost first), else the environment."""
        if name.startswith(_BCRYPT_PREFIX):
            return "$" + name
        for block in reversed(self.blocks):
            if name in block.by_written:
                block.used.add(name.lower())
                return block.by_written[name]
        if name in self.env_refs:
            raise self.error(f"variable reference cycle for '{name}'")
        value = os.environ.get(name)
        if value is None:
            raise self.error(f"variable reference for '{name}' can not be found")
        # nats-server parses the value as the config line "pk=<value>"
        refs = self.env_refs | {name}
        env = _Reader(f"{_ENV_KEY}={value}", f"${name}", self._error, None, self.depth, refs)
        return env.map_body(None).get(_ENV_KEY)

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


def parse_conf(
    text: str,
    source: str = "config",
    *,
    error: Callable[[str], Exception] = NatsConfError,
    base: Path | None = None,
) -> dict[str, Any]:
    """Parse nats-server config text into nested dicts (keys lower-cased). ``base`` is the
    directory ``include`` resolves against (the config file's; without it an include is an
    error). Raises ``error(message)`` (default :class:`NatsConfError`) naming the file and line."""
    return _Reader(text, source, error, base).map_body(None)


def parse_conf_file(
    path: str | Path, *, error: Callable[[str], Exception] = NatsConfError
) -> dict[str, Any]:
    """:func:`parse_conf` of a file, its includes resolved against its directory."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{p}: cannot read: {exc.__class__.__name__}") from None
    return parse_conf(text, str(p), error=error, base=p.parent)
