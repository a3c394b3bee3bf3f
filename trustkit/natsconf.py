"""nats-server's configuration syntax, read into nested dicts: the one reader of it.

``key: value``, ``key = value`` or ``key value``; ``{}`` maps; ``[]`` arrays; ``#`` and ``//``
comments; quoted or bare strings; booleans; integers with size units (``1MB``, ``64KiB``). Keys
are lower-cased, as nats-server matches them; :func:`written` gives a key as the file spells it
(for blocks whose keys are names, ``accounts { APP: ... }``). ``include`` and ``$variables`` are
refused with an error naming the line, never silently dropped.

trustkit-broker reads its config with it, and ``trustkit-callout doctor`` reads the server's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from trustkit.errors import TrustkitError

__all__ = ["NatsConfError", "parse_conf", "written"]


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


def written(block: dict[str, Any], key: str) -> str:
    """``key`` (lower-cased) as the file spells it."""
    return block.written.get(key, key) if isinstance(block, _ConfMap) else key


class _Reader:
    def __init__(self, text: str, source: str, error: Callable[[str], Exception]) -> None:
        self.s, self.i, self.source, self._error = text, 0, source, error

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
                raise self.error("include is not supported")
            self.skip(newlines=False)
            if self.peek() in (":", "="):
                self.i += 1
                self.skip(newlines=False)
            out[key.lower()] = self.value()
            out.written[key.lower()] = key

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
            raise self.error(f"variables ({word}) are not supported")
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


def parse_conf(
    text: str, source: str = "config", *, error: Callable[[str], Exception] = NatsConfError
) -> dict[str, Any]:
    """Parse nats-server config text into nested dicts (keys lower-cased). Raises ``error(message)``
    (default :class:`NatsConfError`) naming ``source`` and the line."""
    return _Reader(text, source, error).map_body(None)
