"""The callout's audit trail: one :class:`AuditRecord` per decision, a JSON-lines log, an index.

Three sinks, all fed from :meth:`callout.service.CalloutService.handle` through its ``audit``
callback:

* :class:`AuditLog` appends every record as one JSON line to the audit log, and every *issued*
  user key as one line to the index (``<audit file>.index`` unless configured). Both files are
  created 0600 and only ever appended to (``O_APPEND``: one ``write`` of whole lines at a time, so
  several processes may share a file). Writing happens on a thread of its own: a slow disk never
  blocks the event loop (STYLE rule 11).
* :func:`read_index` / :func:`issued_to` read the index back: nats-server mints a fresh user key
  per connection and revokes callout users by that key, so revoking one person means finding
  every key issued to their identity (``trustkit-callout revoke --identity``).
* :class:`DecisionRing` keeps the most recent records in memory for ``/v1/decisions``.

A record never holds a password, token or seed: it is built from the verified request's
non-secret fields and the identity's subject.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from trustkit.errors import CalloutError

__all__ = [
    "AuditLog",
    "AuditRecord",
    "DecisionRing",
    "IssuedKey",
    "default_index_path",
    "issued_to",
    "read_index",
]

log = logging.getLogger("trustkit.callout")

FILE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One request's outcome. ``outcome``: ``issued``, ``refused`` (error sent) or ``dropped``.

    ``account`` is the target account as the policy named it (config mode: the name the user
    JWT's ``aud`` carries); ``account_key`` its public key (operator mode only). ``backend`` names
    the backend consulted and ``backend_seconds`` how long it took (None: no backend was asked).
    ``issued_at``/``expires_at`` are the issued user JWT's ``iat``/``exp``.
    """

    at: int
    outcome: str
    reason_code: str
    user_nkey: str = ""
    server_id: str = ""
    client_host: str = ""
    client_id: int = 0
    username: str = ""  # as presented in CONNECT (never the password)
    identity: str = ""  # Identity.subject
    source: str = ""  # Identity.source
    rule: str = ""
    account: str = ""
    account_key: str = ""
    issued_at: int = 0
    expires_at: int = 0
    encrypted: bool = False
    backend: str = ""
    backend_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """One index line: a user key the callout issued, to whom, into which account, when."""

    user_nkey: str
    identity: str
    source: str
    account: str
    account_key: str
    iat: int
    exp: int
    server_id: str = ""

    @classmethod
    def from_record(cls, record: AuditRecord) -> IssuedKey:
        return cls(
            user_nkey=record.user_nkey,
            identity=record.identity,
            source=record.source,
            account=record.account,
            account_key=record.account_key,
            iat=record.issued_at,
            exp=record.expires_at,
            server_id=record.server_id,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def live(self, now: int) -> bool:
        """False once the user JWT has expired: the server has closed its connection already."""
        return self.exp == 0 or self.exp > now


def default_index_path(audit_file: Path) -> Path:
    return audit_file.with_name(audit_file.name + ".index")


def _open_append(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    except OSError as exc:
        raise CalloutError(
            f"cannot open the audit file {path}: {exc.strerror or exc}", code="callout_audit"
        ) from None
    try:
        os.fchmod(fd, FILE_MODE)  # an existing file created with a looser mode is tightened
    except OSError:  # pragma: no cover - not the owner: keep going, the log still works
        log.warning("audit: cannot set mode 0600 on %s", path)
    return fd


_STOP = object()


class AuditLog:
    """Append-only JSON-lines audit log plus the issued-key index, written on a worker thread.

    :meth:`write` never blocks and never raises; a write error is logged (the decision stands).
    Once woken by a record, the thread waits ``linger`` seconds and writes everything queued by
    then in one go: under load it wakes (and competes for the GIL) once per batch instead of once
    per decision; a record reaches the file at most ``linger`` seconds after the decision.
    :meth:`close` writes what is queued and stops the thread. Raises :class:`CalloutError`
    (``callout_audit``) at construction if a file cannot be opened.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        index_path: str | os.PathLike[str] | None = None,
        *,
        linger: float = 0.02,
    ) -> None:
        self.path = Path(path)
        self.index_path = Path(index_path) if index_path is not None else default_index_path(self.path)
        self._fd = _open_append(self.path)
        try:
            self._index_fd = _open_append(self.index_path)
        except CalloutError:
            os.close(self._fd)
            raise
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.linger = linger
        self.errors = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="callout-audit", daemon=True)
        self._thread.start()

    def write(self, record: AuditRecord) -> None:
        if not self._closed:
            self._queue.put(record)

    __call__ = write

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        for fd in (self._fd, self._index_fd):
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is not _STOP and self.linger > 0:
                time.sleep(self.linger)  # let the burst this record belongs to arrive
            batch = [item]
            while item is not _STOP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
            lines, index = [], []
            for record in batch:
                if isinstance(record, AuditRecord):
                    # orjson writes a dataclass field by field, as to_json() (asdict) would
                    lines.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
                    if record.outcome == "issued" and record.user_nkey:
                        entry = IssuedKey.from_record(record)
                        index.append(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
            self._append(self._fd, lines)
            self._append(self._index_fd, index)
            if item is _STOP:
                return

    def _append(self, fd: int, lines: list[bytes]) -> None:
        """Whole lines, in one ``write`` (``O_APPEND``: never interleaved with another writer's)."""
        data = b"".join(lines)
        while data:
            try:
                written = os.write(fd, data)
            except OSError as exc:
                before, self.errors = self.errors, self.errors + len(lines)
                if before == 0 or before // 1000 != self.errors // 1000:
                    log.error("audit: cannot append to the audit log (%s); %d records lost", exc, self.errors)
                return
            data = data[written:]


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as f:
            yield from f
    except FileNotFoundError:
        raise CalloutError(f"no audit index at {path}", code="callout_audit") from None
    except OSError as exc:
        raise CalloutError(f"cannot read {path}: {exc.strerror or exc}", code="callout_audit") from None


def read_index(path: str | os.PathLike[str]) -> list[IssuedKey]:
    """Every entry of the index at ``path``, oldest first. A torn or foreign line is skipped.

    Raises :class:`CalloutError` (``callout_audit``) if the file cannot be read.
    """
    out: list[IssuedKey] = []
    fields = set(IssuedKey.__dataclass_fields__)
    for line in _lines(Path(path)):
        try:
            doc = orjson.loads(line)
            if not isinstance(doc, dict) or not fields.issuperset(doc):
                raise ValueError("not an index line")
            entry = IssuedKey(**doc)
            if not isinstance(entry.user_nkey, str) or not isinstance(entry.iat, int):
                raise ValueError("bad types")
        except (ValueError, TypeError):
            continue
        out.append(entry)
    return out


def issued_to(path: str | os.PathLike[str], identity: str, *, now: int) -> list[IssuedKey]:
    """The live (unexpired) keys issued to ``identity`` (exact ``Identity.subject``), one per key."""
    seen: dict[str, IssuedKey] = {}
    for entry in read_index(path):
        if entry.identity == identity and entry.live(now):
            seen[entry.user_nkey] = entry
    return list(seen.values())


class DecisionRing:
    """The last ``size`` decisions, in memory, for the admin endpoint (records hold no secrets)."""

    def __init__(self, size: int = 256) -> None:
        self._items: deque[AuditRecord] = deque(maxlen=max(1, size))

    def add(self, record: AuditRecord) -> None:
        self._items.append(record)

    __call__ = add

    def recent(self, limit: int | None = None) -> list[AuditRecord]:
        """Newest first, at most ``limit``."""
        items = list(reversed(self._items))
        return items if limit is None else items[: max(0, limit)]
