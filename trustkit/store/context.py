"""The context file: the CLI's current store root, operator and account (nsc's ``nsc.json``).

It lives in the config dir (:func:`trustkit.store.paths.resolve_dirs`) and has nsc's shape, so
nsc and trustkit share one current selection::

    {"store_root":"…","operator":"O","account":"A","github_updates":"nats-io/nsc","last_update":1700000000}

Keys other than the first three (nsc's ``github_updates``/``last_update``, or anything else) are
kept and written back unchanged after them. Writes are atomic (0600 file, 0700 dir).

The context is only a default for interactive use: the store API takes explicit operator and
account names everywhere, so scripts running in parallel need not touch this file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustkit.errors import MalformedTokenError, StoreError
from trustkit.jwt.codec import go_json
from trustkit.store import fsio

__all__ = ["CONTEXT_FILE", "Context", "context_path", "read_context", "write_context"]

CONTEXT_FILE = "nsc.json"
_FIELDS = ("store_root", "operator", "account")


@dataclass(slots=True)
class Context:
    """The current selection; empty strings mean "not selected" (as in nsc)."""

    store_root: str = ""
    operator: str = ""
    account: str = ""
    #: other keys of the file, in file order, written back after the three above
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Compact JSON with Go's escaping, in nsc's field order, no trailing newline."""
        out: dict[str, Any] = {
            "store_root": self.store_root,
            "operator": self.operator,
            "account": self.account,
        }
        out.update((k, v) for k, v in self.extra.items() if k not in _FIELDS)
        try:
            return go_json(out)
        except MalformedTokenError as exc:
            raise StoreError(f"cannot encode the context: {exc}", code="store_io") from None

    @classmethod
    def from_json(cls, data: Any, *, source: str = "context") -> Context:
        """Build from parsed JSON. Raises :class:`StoreError` naming ``source`` if malformed."""
        if not isinstance(data, dict):
            raise StoreError(f"{source} is not a JSON object", code="store_corrupt")
        values = [data.get(k, "") for k in _FIELDS]
        if not all(isinstance(v, str) for v in values):
            raise StoreError(
                f"{source}: store_root, operator and account must be strings", code="store_corrupt"
            )
        extra = {k: v for k, v in data.items() if k not in _FIELDS}
        return cls(values[0], values[1], values[2], extra)


def context_path(config_dir: str | os.PathLike[str]) -> Path:
    """``<config_dir>/nsc.json``."""
    return Path(config_dir) / CONTEXT_FILE


def read_context(config_dir: str | os.PathLike[str]) -> Context:
    """The context in ``config_dir``; an empty :class:`Context` if there is no file yet.

    Raises :class:`StoreError` naming the file if it is unreadable or malformed.
    """
    path = context_path(config_dir)
    if not path.exists():
        return Context()
    return Context.from_json(fsio.read_json(path), source=str(path))


def write_context(config_dir: str | os.PathLike[str], context: Context) -> Path:
    """Atomically write ``context`` to ``<config_dir>/nsc.json``; return the path."""
    return fsio.atomic_write(context_path(config_dir), context.to_json())
