"""The NATS client protocol, sans-I/O: a parser for what a client sends and builders for what the
server sends back.

``Parser.feed(bytes) -> list[op]`` turns whatever a socket read returned into operations and keeps a
partial operation for the next read. It opens no socket and reads no clock; the broker owns the I/O
(STYLE rule 9). It mirrors nats-server's client parser (``server/parser.go``, ``server/client.go``):

* Verbs are case-insensitive; a space or tab must follow ``PUB``, ``HPUB``, ``SUB``, ``UNSUB`` and
  ``-ERR``; any run of spaces and tabs separates arguments.
* A control line ends at ``\\n``; a ``\\r`` before it is dropped, so a bare ``\\n`` is accepted as in
  nats-server. A payload must be followed by exactly ``\\r\\n``.
* Limits are checked before anything is buffered: a control line whose arguments are longer than
  ``max_control_line`` fails as soon as that many bytes arrived without a newline, and a declared
  payload size above ``max_payload`` fails before one payload byte is read.
* Errors are :class:`ProtocolError`. nats-server closes the connection on every one of them;
  ``err_text`` is the ``-ERR`` text it sends first, or None where it closes without one (bad
  ``PUB``/``SUB``/``UNSUB`` arguments, bad ``CONNECT`` JSON: those are only logged).

Where nats-server's behaviour depends on how the bytes were split into reads, the parser follows
the single-read behaviour, so its result never depends on the split. ``HMSG`` from a client is
refused (nats-server half-parses it as a routed message: a quirk, not a protocol).

Subjects, reply subjects, queue groups and sids are ``str`` (UTF-8, undecodable bytes kept as
surrogate escapes so they round-trip); payloads and headers are ``bytes``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from trustkit.errors import BrokerError

__all__ = [
    "ERR_AUTHORIZATION",
    "ERR_MAX_CONTROL_LINE",
    "ERR_MAX_PAYLOAD",
    "ERR_UNKNOWN_PROTOCOL",
    "MAX_CONTROL_LINE",
    "MAX_PAYLOAD",
    "OK_FRAME",
    "PING_FRAME",
    "PONG_FRAME",
    "Connect",
    "HPub",
    "Op",
    "Parser",
    "Ping",
    "Pong",
    "ProtocolError",
    "Pub",
    "Sink",
    "Sub",
    "Unsub",
    "err",
    "hmsg",
    "info",
    "msg",
]

MAX_CONTROL_LINE = 4096  # const.go MAX_CONTROL_LINE_SIZE
MAX_PAYLOAD = 1024 * 1024  # const.go MAX_PAYLOAD_SIZE

# -ERR texts exactly as nats-server sends them.
ERR_UNKNOWN_PROTOCOL = "Unknown Protocol Operation"  # parser.go parseErr
ERR_MAX_CONTROL_LINE = "maximum control line exceeded"  # errors.go ErrMaxControlLine (errCtx prints no ctx)
ERR_MAX_PAYLOAD = "Maximum Payload Violation"  # client.go maxPayloadViolation
ERR_AUTHORIZATION = "Authorization Violation"  # client.go authViolation

PING_FRAME = b"PING\r\n"
PONG_FRAME = b"PONG\r\n"
OK_FRAME = b"+OK\r\n"


class ProtocolError(BrokerError):
    """A client broke the protocol; the connection must be closed.

    ``err_text`` is the ``-ERR`` text to send before closing, or None where nats-server closes
    without one. ``close`` says whether the connection closes (always True for parser errors).
    ``ops`` holds the operations parsed from the same ``feed`` before the error, in order: nats-server
    processes them before it fails, so the broker should too. The message is for the log.
    """

    code = "protocol"

    def __init__(self, message: str, *, err_text: str | None = None, close: bool = True) -> None:
        super().__init__(message)
        self.err_text = err_text
        self.close = close
        self.ops: list[Op] = []

    @property
    def frame(self) -> bytes:
        """The ``-ERR`` frame to send, or ``b""``."""
        return err(self.err_text) if self.err_text is not None else b""


# --- operations (client -> server) ------------------------------------------------------------


@dataclass(slots=True)
class Connect:
    """``CONNECT {json}``. ``opts`` holds the JSON object's members; the ClientOpts fields
    (client.go ``ClientOpts``) were type-checked and renamed to their canonical lower-case names
    (Go matches JSON names case-insensitively), and null members of those fields were dropped (Go
    leaves such a field unchanged). Missing fields take nats-server's defaults in the broker:
    ``verbose``, ``pedantic`` and ``echo`` default to true (client.go ``defaultOpts``).
    ``implicit``: no CONNECT was sent; another operation came first and logs the client in as
    the ``no_auth_user`` (see :class:`Parser`)."""

    opts: dict[str, Any]
    implicit: bool = False


@dataclass(slots=True)
class Pub:
    """``PUB <subject> [reply] <size>`` and its payload."""

    subject: str
    reply: str | None
    payload: bytes


@dataclass(slots=True)
class HPub:
    """``HPUB <subject> [reply] <header size> <total size>``: ``headers`` is the first part of the
    body (``NATS/1.0\\r\\n...\\r\\n\\r\\n``, not validated here), ``payload`` the rest."""

    subject: str
    reply: str | None
    headers: bytes
    payload: bytes


@dataclass(slots=True)
class Sub:
    """``SUB <subject> [queue] <sid>`` (the subject is not validated here: nats-server answers an
    invalid one with a non-fatal ``-ERR 'Invalid Subject'``)."""

    subject: str
    queue: str | None
    sid: str


@dataclass(slots=True)
class Unsub:
    """``UNSUB <sid> [max]``. ``max`` is None when absent or not a valid size; nats-server then
    removes the subscription at once, as it does for ``max`` not above the delivered count."""

    sid: str
    max: int | None


@dataclass(slots=True)
class Ping:
    """``PING`` (anything after the verb up to the newline is ignored, as in nats-server)."""


@dataclass(slots=True)
class Pong:
    """``PONG``."""


Op = Connect | Pub | HPub | Sub | Unsub | Ping | Pong

_PING = Ping()
_PONG = Pong()


class Sink(Protocol):
    """Where :meth:`Parser.feed` hands operations as they are parsed, in order (the broker's
    connection). Once the sink says stop, the parser keeps parsing and the rest of that ``feed``
    comes back as a list of operations, as without a sink."""

    def pubs(self, batch: list[tuple[bytes, bytes | None, bytes]]) -> int | None:
        """A run of ``PUB``s in their canonical spelling, as (subject, reply, payload) bytes (no
        :class:`Pub` is built). Returns None, or the number of them it handled before saying stop."""
        ...

    def op(self, op: Op) -> bool:
        """Any other operation (a ``PUB`` spelled otherwise arrives here as a :class:`Pub`);
        True to stop."""
        ...


# --- frames (server -> client) ----------------------------------------------------------------


def _b(x: str | bytes) -> bytes:
    return x if type(x) is bytes else x.encode("utf-8", "surrogateescape")  # type: ignore[union-attr]


def info(fields: Mapping[str, Any]) -> bytes:
    """``INFO {json}\\r\\n`` with compact JSON."""
    return b"INFO " + orjson.dumps(dict(fields)) + b"\r\n"


def msg(subject: str | bytes, sid: str | bytes, reply: str | bytes | None, payload: bytes) -> bytes:
    """``MSG <subject> <sid> [reply] <size>\\r\\n<payload>\\r\\n``."""
    if reply:
        return b"MSG %b %b %b %d\r\n%b\r\n" % (_b(subject), _b(sid), _b(reply), len(payload), payload)
    return b"MSG %b %b %d\r\n%b\r\n" % (_b(subject), _b(sid), len(payload), payload)


def hmsg(
    subject: str | bytes, sid: str | bytes, reply: str | bytes | None, headers: bytes, payload: bytes
) -> bytes:
    """``HMSG <subject> <sid> [reply] <header size> <total size>\\r\\n<headers><payload>\\r\\n``."""
    hl = len(headers)
    total = hl + len(payload)
    if reply:
        return b"HMSG %b %b %b %d %d\r\n%b%b\r\n" % (
            _b(subject),
            _b(sid),
            _b(reply),
            hl,
            total,
            headers,
            payload,
        )
    return b"HMSG %b %b %d %d\r\n%b%b\r\n" % (_b(subject), _b(sid), hl, total, headers, payload)


def err(text: str) -> bytes:
    """``-ERR '<text>'\\r\\n`` (client.go ``errProto``). Raises :class:`BrokerError` if ``text``
    holds a CR or LF, which would let it forge frames."""
    if "\r" in text or "\n" in text:
        raise BrokerError(f"-ERR text cannot contain CR or LF: {text!r}")
    return b"-ERR '" + text.encode("utf-8", "surrogateescape") + b"'\r\n"


# --- parser -----------------------------------------------------------------------------------

# Verb kinds.
_PUB, _HPUB, _SUB, _UNSUB, _CONNECT, _INFO, _MERR, _PINGV, _PONGV, _OKV = range(10)

# (upper-case verb, kind, what follows): "sep" = a space or tab must follow, then the argument;
# "arg" = optional spaces/tabs, then the argument; "skip" = everything up to the newline is ignored.
_VERBS: tuple[tuple[bytes, int, str], ...] = (
    (b"PUB", _PUB, "sep"),
    (b"HPUB", _HPUB, "sep"),
    (b"SUB", _SUB, "sep"),
    (b"UNSUB", _UNSUB, "sep"),
    (b"CONNECT", _CONNECT, "arg"),
    (b"INFO", _INFO, "arg"),
    (b"-ERR", _MERR, "sep"),
    (b"PING", _PINGV, "skip"),
    (b"PONG", _PONGV, "skip"),
    (b"+OK", _OKV, "skip"),
)
_VERB_BY_KIND = {kind: (verb, mode) for verb, kind, mode in _VERBS}
_MAX_VERB = max(len(v) for v, _, _ in _VERBS)

_WS = re.compile(rb"[ \t]*")
# Fast paths: the canonical form clients send (upper-case verb, single spaces, CRLF). Anything else
# takes the general path, which gives the same result for these lines.
# PUB: printable ASCII subject and reply (other bytes take the general path); the size-only form is
# tried first, so the common PUB without a reply needs no backtracking.
_FAST_PUB = re.compile(rb"PUB ([!-~]+) (?:([0-9]{1,9})|([!-~]+) ([0-9]{1,9}))\r\n")
_FAST_HPUB = re.compile(rb"HPUB ([^ \t\r\n]+) (?:([^ \t\r\n]+) )?([0-9]{1,9}) ([0-9]{1,9})\r\n")
_FAST_SUB = re.compile(rb"SUB ([^ \t\r\n]+) (?:([^ \t\r\n]+) )?([^ \t\r\n]+)\r\n")
_FAST_UNSUB = re.compile(rb"UNSUB ([^ \t\r\n]+)(?: ([0-9]{1,9}))?\r\n")
_PUB_ARGS = re.compile(rb"[^ \t]+")  # client.go processPub / processHeaderPub split on space, tab
_SUB_ARGS = re.compile(rb"[^ \t\r\n]+")  # client.go splitArg (SUB, UNSUB)
_SURROGATE = re.compile("[\ud800-\udfff]")

# client.go ClientOpts: JSON name -> accepted Python type ("perm" = SubjectPermission).
_CONNECT_FIELDS: dict[str, Any] = {
    "echo": bool,
    "verbose": bool,
    "pedantic": bool,
    "tls_required": bool,
    "nkey": str,
    "jwt": str,
    "sig": str,
    "auth_token": str,
    "user": str,
    "pass": str,
    "name": str,
    "lang": str,
    "version": str,
    "protocol": int,
    "account": str,
    "new_account": bool,
    "headers": bool,
    "no_responders": bool,
    "import": "perm",
    "export": "perm",
    "remote_account": str,
    "proxy_sig": str,
}
# Go's encoding/json matches names like bytes.EqualFold: two non-ASCII runes fold onto ASCII letters
# of the field names above (KELVIN SIGN ~ k, LONG S ~ s). Checked against nats-server 2.15.1.
_GO_FOLD = str.maketrans({"\u212a": "k", "\u017f": "s"})

_START, _PAYLOAD, _SKIP = 0, 1, 2


def _size(b: bytes) -> int:
    """util.go parseSize: 1 to 9 ASCII digits, else -1."""
    return int(b) if 0 < len(b) <= 9 and b.isdigit() else -1


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _fail(message: str, err_text: str | None = None) -> ProtocolError:
    return ProtocolError(message, err_text=err_text)


def _unknown(buf: bytes, i: int) -> ProtocolError:
    return _fail(f"parser error at {buf[i : i + 32]!r}", ERR_UNKNOWN_PROTOCOL)


class _Obj(list):  # type: ignore[type-arg]
    """A JSON object as its (name, value) pairs in document order, duplicates included."""

    __slots__ = ()


def _json(arg: bytes, what: str) -> Any:
    """Decode like Go's encoding/json: invalid UTF-8 inside strings becomes U+FFFD; objects come
    back as :class:`_Obj` so duplicate names can be applied in order (Go: the last one wins)."""
    try:
        return json.loads(arg.decode("utf-8", "replace"), object_pairs_hook=_Obj, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise _fail(f"{what}: invalid JSON: {e}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _fold(name: str) -> str:
    return name.lower() if name.isascii() else name.translate(_GO_FOLD).lower()


def _perm_ok(v: Any) -> bool:
    """auth.go SubjectPermission: an object whose allow/deny are arrays of strings (or null)."""
    if not isinstance(v, _Obj):
        return False
    for k, lst in v:
        if _fold(k) in ("allow", "deny") and lst is not None:
            if type(lst) is not list or not all(e is None or type(e) is str for e in lst):
                return False
    return True


def _clean(s: str) -> str:
    """A lone surrogate escape (``"\\ud800"``) becomes U+FFFD, as in Go, so the string encodes."""
    return s if s.isascii() else _SURROGATE.sub("\ufffd", s)


def _to_py(v: Any) -> Any:
    """Plain dicts, lists and clean strings again (for an object, the last duplicate name wins)."""
    if isinstance(v, _Obj):
        return {_clean(k): _to_py(x) for k, x in v}
    if type(v) is list:
        return [_to_py(x) for x in v]
    if type(v) is str:
        return _clean(v)
    return v


# The plain fields (name -> type), for _connect_fast.
_CONNECT_PLAIN = {k: v for k, v in _CONNECT_FIELDS.items() if v != "perm"}


def _connect_fast(arg: bytes) -> dict[str, Any] | None:
    """What clients send: a JSON object of plain ClientOpts fields spelt exactly, each once, of
    the right types, without a backslash anywhere. Decoded with orjson; None for anything else,
    which the exact decoder decides. A dict would keep only the last value of a repeated name,
    where Go applies each in turn, and orjson refuses what Go repairs (invalid UTF-8), so all of
    that takes the exact way. Without a backslash every ``"`` delimits a string, so a repeated
    name shows as more quotes than the decoded names and string values account for."""
    if b"\\" in arg:
        return None
    try:
        doc = orjson.loads(arg)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        return None
    # A client sends the same names every time: their types are looked up once per set of names.
    names = tuple(doc)
    shape = _CONNECT_SHAPES.get(names)
    if shape is None:
        if names in _CONNECT_SHAPES:
            return None  # a name that is not a plain field
        if len(_CONNECT_SHAPES) >= _CONNECT_SHAPES_MAX:
            _CONNECT_SHAPES.clear()
        shape = _CONNECT_SHAPES[names] = _connect_shape(names)
        if shape is None:
            return None
    types, ints, strings = shape
    if tuple(map(type, doc.values())) != types:
        return _connect_nulls(arg, doc)  # a null among them, or a wrong type
    for name in ints:
        if not -(2**63) <= doc[name] < 2**63:
            return None
    if arg.count(b'"') != 2 * (len(types) + strings):
        return None
    return doc


_ConnectShape = tuple[tuple[type, ...], tuple[str, ...], int]
_CONNECT_SHAPES: dict[tuple[str, ...], _ConnectShape | None] = {}
_CONNECT_SHAPES_MAX = 256


def _connect_shape(names: tuple[str, ...]) -> _ConnectShape | None:
    """For :func:`_connect_fast`: the types a CONNECT with these names must have, the int ones,
    the number of strings; None if a name is not a plain ClientOpts field."""
    types = tuple(_CONNECT_PLAIN.get(name) for name in names)
    if None in types:
        return None
    ints = tuple(n for n, t in zip(names, types, strict=True) if t is int)
    return cast(tuple[type, ...], types), ints, sum(t is str for t in types)


def _connect_nulls(arg: bytes, doc: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`_connect_fast` when a value is null (the field is left as it is) or of a wrong type."""
    opts: dict[str, Any] = {}
    plain = _CONNECT_PLAIN
    strings = len(doc)
    for name, value in doc.items():
        if value is None:
            continue
        want = plain[name]
        if type(value) is not want or (want is int and not -(2**63) <= value < 2**63):
            return None
        if want is str:
            strings += 1
        opts[name] = value
    if arg.count(b'"') != 2 * strings:
        return None
    return opts


def _connect_opts(arg: bytes) -> dict[str, Any]:
    """client.go processConnect's json.Unmarshal into ClientOpts: an object (or null), known fields
    of the right type, else the connection is closed without an -ERR."""
    fast = _connect_fast(arg)
    return fast if fast is not None else _connect_exact(arg)


def _connect_exact(arg: bytes) -> dict[str, Any]:
    doc = _json(arg, "CONNECT")
    if doc is None:
        return {}
    if not isinstance(doc, _Obj):
        raise _fail(f"CONNECT: JSON is not an object: {arg[:64]!r}")
    opts: dict[str, Any] = {}
    for name, value in doc:
        field = name if name in _CONNECT_FIELDS else _fold(name)
        want = _CONNECT_FIELDS.get(field)
        if want is None:
            opts[_clean(name)] = _to_py(value)
            continue
        if value is None:
            continue
        if want == "perm":
            if not _perm_ok(value):
                raise _fail(f"CONNECT: {name!r} is not a subject permission")
            opts[field] = _to_py(value)
            continue
        if type(value) is not want or (want is int and not -(2**63) <= value < 2**63):
            raise _fail(f"CONNECT: {name!r} must be a JSON {want.__name__}")
        opts[field] = _clean(value) if want is str else value
    return opts


class Parser:
    """Incremental parser of the client -> server direction. One per connection.

    ``feed(data)`` returns the operations completed by ``data`` (possibly none) and keeps any partial
    operation, at most ``max_control_line + max_payload`` plus a few bytes (``buffered``). It raises
    :class:`ProtocolError` on the first violation, with the operations before it in ``.ops``; the
    parser is then dead and every later ``feed`` raises the same error.

    ``max_payload`` and ``require_connect`` may be changed between feeds (a user's lower payload
    limit applies from the next feed; operations after a ``Connect`` in the same feed were parsed
    with the limit in force before it), or by a sink (see :meth:`feed`) from the next operation on,
    as in nats-server, whose parser calls processConnect before it reads on. ``require_connect``
    mirrors nats-server while a client must still authenticate: any operation but ``CONNECT`` is
    an ``Authorization Violation``; a parsed ``Connect`` clears it (the broker closes the
    connection if authentication then fails). With ``no_auth_first`` (a ``no_auth_user`` that is
    a user/password user) another operation first is, as in nats-server's parser, preceded by an
    implicit empty :class:`Connect`.
    ``headers`` follows nats-server: ``HPUB`` is accepted only after a ``CONNECT`` with
    ``"headers": true``, and never when ``server_headers`` is False.
    """

    __slots__ = (
        "_buf",
        "_client_headers",
        "_error",
        "_pbuf",
        "_pending",
        "_skip",
        "_state",
        "max_control_line",
        "max_payload",
        "no_auth_first",
        "require_connect",
        "server_headers",
    )

    # Tests switch the fast paths off to check they agree with the general path.
    _fast = True

    def __init__(
        self,
        max_control_line: int = MAX_CONTROL_LINE,
        max_payload: int = MAX_PAYLOAD,
        *,
        require_connect: bool = False,
        server_headers: bool = True,
        no_auth_first: bool = False,
    ) -> None:
        self.max_control_line = max_control_line
        self.max_payload = max_payload
        self.require_connect = require_connect
        self.no_auth_first = no_auth_first
        self.server_headers = server_headers
        self._client_headers = False
        self._state = _START
        self._buf = b""  # partial control line (verb canonicalised, separators squeezed)
        self._pbuf = bytearray()  # partial payload
        self._pending: tuple[int, bytes, bytes | None, int, int] | None = None
        self._skip: Op | None = None
        self._error: ProtocolError | None = None

    @property
    def headers(self) -> bool:
        """Whether ``HPUB`` is accepted now (client.go ``c.headers``)."""
        return self.server_headers and self._client_headers

    @property
    def buffered(self) -> int:
        """Bytes held for a partial operation."""
        n = len(self._buf) + len(self._pbuf)
        if self._pending is not None:
            n += len(self._pending[1]) + len(self._pending[2] or b"")
        return n

    def feed(self, data: bytes, sink: Sink | None = None) -> list[Op]:
        """Parse ``data``; return the operations it completes. Raises :class:`ProtocolError`.

        With ``sink``, each operation goes to the sink as soon as it is parsed, in order, and only
        those after the sink said stop are returned (or, on an error, left in its ``ops``). The
        sink may change ``max_payload`` meanwhile (a CONNECT): it applies from the next operation.
        """
        if self._error is not None:
            e = self._error
            again = ProtocolError(str(e), err_text=e.err_text, close=e.close)
            raise again
        ops: list[Op] = []
        try:
            self._feed(bytes(data), ops, sink)
        except ProtocolError as e:
            e.ops = ops
            self._error = e
            self._buf, self._pbuf, self._pending = b"", bytearray(), None
            raise
        return ops

    # The hot loop: whole reads, one pass, fast paths for the canonical spelling of each operation.
    def _feed(self, data: bytes, ops: list[Op], sink: Sink | None) -> None:
        # ``live``: operations still go to the sink (until it says stop); otherwise into ``ops``.
        # With a sink, a run of canonical PUBs is collected in ``batch`` and handed over whole
        # before anything else is.
        live = sink is not None
        pos = 0
        state = self._state
        if state == _PAYLOAD:
            pos = self._more_payload(data, ops)
            if live and ops:
                live = self._drain(ops, sink)
            if pos < 0:
                return
        elif state == _SKIP:
            nl = data.find(b"\n")
            if nl < 0:
                return
            if self._skip is not None:
                ops.append(self._skip)
                if live:
                    live = self._drain(ops, sink)
            self._state = _START
            pos = nl + 1
        if self._buf:
            buf = self._buf + data[pos:]
            self._buf = b""
            pos = 0
        else:
            buf = data
        n = len(buf)
        pub_match = _FAST_PUB.match
        hpub_match = _FAST_HPUB.match
        sub_match = _FAST_SUB.match
        unsub_match = _FAST_UNSUB.match
        startswith = buf.startswith
        append = ops.append
        batch: list[tuple[bytes, bytes | None, bytes]] = []
        add = batch.append
        mcl = self.max_control_line
        maxp = self.max_payload
        fast = self._fast and not self.require_connect
        hdrs = self.server_headers and self._client_headers
        while pos < n:
            if fast:
                m = pub_match(buf, pos)
                if m is not None:
                    subject, sz, reply, rsz = m.groups()
                    start = m.end()
                    size = int(sz if sz is not None else rsz)
                    stop = start + size
                    if (
                        size <= maxp
                        and stop + 2 <= n
                        and buf[stop] == 13
                        and buf[stop + 1] == 10
                        and start - pos - 6 <= mcl
                    ):
                        pos = stop + 2
                        if live:
                            add((subject, reply, buf[start:stop]))
                        else:
                            append(
                                Pub(
                                    subject.decode("utf-8", "surrogateescape"),
                                    reply.decode("utf-8", "surrogateescape") if reply is not None else None,
                                    buf[start:stop],
                                )
                            )
                        continue
                if batch:  # something else follows: the PUBs before it go first
                    live = self._pubs(batch, ops, sink)
                c = buf[pos]
                if c == 72:  # H
                    m = hpub_match(buf, pos) if hdrs else None
                    if m is not None:
                        subject, reply, hb, sz = m.groups()
                        start = m.end()
                        size = int(sz)
                        hdr = int(hb)
                        stop = start + size
                        if (
                            start - pos - 7 <= mcl
                            and hdr <= size <= maxp
                            and stop + 2 <= n
                            and buf[stop] == 13
                            and buf[stop + 1] == 10
                        ):
                            hend = start + hdr
                            append(
                                HPub(
                                    subject.decode("utf-8", "surrogateescape"),
                                    reply.decode("utf-8", "surrogateescape") if reply is not None else None,
                                    buf[start:hend],
                                    buf[hend:stop],
                                )
                            )
                            pos = stop + 2
                            if live:
                                live = self._drain(ops, sink)
                            continue
                elif c == 83:  # S
                    m = sub_match(buf, pos)
                    if m is not None and m.end() - pos - 6 <= mcl:
                        subject, queue, sid = m.groups()
                        append(
                            Sub(
                                subject.decode("utf-8", "surrogateescape"),
                                queue.decode("utf-8", "surrogateescape") if queue is not None else None,
                                sid.decode("utf-8", "surrogateescape"),
                            )
                        )
                        pos = m.end()
                        if live:
                            live = self._drain(ops, sink)
                        continue
                elif c == 85:  # U
                    m = unsub_match(buf, pos)
                    if m is not None and m.end() - pos - 8 <= mcl:
                        sid, mx = m.groups()
                        append(Unsub(sid.decode("utf-8", "surrogateescape"), int(mx) if mx else None))
                        pos = m.end()
                        if live:
                            live = self._drain(ops, sink)
                        continue
                elif startswith(b"PING\r\n", pos):
                    append(_PING)
                    pos += 6
                    if live:
                        live = self._drain(ops, sink)
                    continue
                elif startswith(b"PONG\r\n", pos):
                    append(_PONG)
                    pos += 6
                    if live:
                        live = self._drain(ops, sink)
                    continue
            pos = self._one(buf, pos, ops)
            if live and ops:
                live = self._drain(ops, sink)
            if pos < 0:
                return
            # A CONNECT may have changed these (and, through a sink, max_payload).
            fast = self._fast and not self.require_connect
            hdrs = self.server_headers and self._client_headers
            maxp = self.max_payload
        if batch:
            self._pubs(batch, ops, sink)

    @staticmethod
    def _pubs(batch: list[tuple[bytes, bytes | None, bytes]], ops: list[Op], sink: Sink | None) -> bool:
        """Hand ``batch`` to ``sink`` (emptying it); False once it says stop, and the PUBs it did
        not take are then in ``ops``."""
        assert sink is not None
        done = sink.pubs(batch)
        if done is not None:
            for subject, reply, payload in batch[done:]:
                ops.append(
                    Pub(
                        subject.decode("utf-8", "surrogateescape"),
                        reply.decode("utf-8", "surrogateescape") if reply is not None else None,
                        payload,
                    )
                )
            batch.clear()
            return False
        batch.clear()
        return True

    @staticmethod
    def _drain(ops: list[Op], sink: Sink | None) -> bool:
        """Hand ``ops`` to ``sink`` in order; False once it says stop (the rest stay in ``ops``)."""
        assert sink is not None
        for i, op in enumerate(ops):
            if sink.op(op):
                del ops[: i + 1]
                return False
        ops.clear()
        return True


    def _one(self, buf: bytes, pos: int, ops: list[Op]) -> int:
        """Parse the operation at ``pos``, the general way. Returns the position after it, or -1
        after saving a partial operation (everything from ``pos`` to the end is then consumed)."""
        n = len(buf)
        if self.require_connect and buf[pos] not in b"Cc":
            # parser.go OP_START with authSet: the first byte of any other verb fails, unless the
            # no_auth_user may log in without a CONNECT ("telnet demos"): then it is judged
            # before the operation is even read (a bad one fails after the verdict).
            if not self.no_auth_first:
                raise _fail("operation before CONNECT", ERR_AUTHORIZATION)
            self.require_connect = False
            ops.append(Connect({}, implicit=True))
            return pos
        # The verb, letter by letter as parser.go's states: a wrong byte fails at once.
        if buf.startswith(b"CONNECT ", pos):  # what every client sends first
            kind = _CONNECT
        else:
            head = buf[pos : pos + _MAX_VERB].upper()
            kind = -1
            partial = False
            for verb, k, _mode in _VERBS:
                h = head[: len(verb)]
                if h == verb:
                    kind = k
                    break
                if len(h) < len(verb) and verb.startswith(h):
                    partial = True
            if kind < 0:
                if partial:
                    self._buf = head  # at most a few bytes
                    return -1
                # The log shows the bytes from the verb on (HMSG included: not a client operation).
                raise _unknown(buf, pos)
        verb, mode = _VERB_BY_KIND[kind]
        i = pos + len(verb)
        if mode == "skip":
            nl = buf.find(b"\n", i)
            op = _PING if kind == _PINGV else _PONG if kind == _PONGV else None
            if nl < 0:
                self._state, self._skip = _SKIP, op
                return -1
            if op is not None:
                ops.append(op)
            return nl + 1
        if mode == "sep":
            if i == n:
                self._buf = verb
                return -1
            if buf[i] not in b" \t":
                raise _unknown(buf, i)
            i += 1
        # Spaces and tabs before the argument are skipped without being kept.
        j = _WS.match(buf, i).end()  # type: ignore[union-attr]
        if j == n:
            self._buf = verb + b" "
            return -1
        # The argument starts at j whatever that byte is (even CR or LF, as in parser.go) and ends
        # at the next LF; any CR inside drops its last byte (parser.go's c.drop).
        nl = buf.find(b"\n", j + 1)
        mcl = self.max_control_line
        if nl < 0:
            size = n - j - (1 if buf.find(b"\r", j + 1) >= 0 else 0)
            if size > mcl:
                raise self._too_long(buf, j, size)
            self._buf = verb + b" " + buf[j:]
            return -1
        end = nl - 1 if buf.find(b"\r", j + 1, nl) >= 0 else nl
        if end - j > mcl:
            raise self._too_long(buf, j, end - j)
        arg = buf[j:end]
        if kind == _PUB:
            args = _PUB_ARGS.findall(arg)
            if len(args) == 2:
                subject, reply, szb = args[0], None, args[1]
            elif len(args) == 3:
                subject, reply, szb = args
            else:
                raise _fail(f"processPub Parse Error: {arg!r}")
            size = _size(szb)
            if size < 0:
                raise _fail(f"processPub Bad or Missing Size: {arg!r}")
            self._check_payload(size)
            return self._payload(buf, nl + 1, (_PUB, subject, reply, -1, size), ops)
        if kind == _HPUB:
            if not self.headers:
                raise _fail("message headers not supported")  # errors.go ErrMsgHeadersNotSupported
            args = _PUB_ARGS.findall(arg)
            if len(args) == 3:
                subject, reply, hdb, szb = args[0], None, args[1], args[2]
            elif len(args) == 4:
                subject, reply, hdb, szb = args
            else:
                raise _fail(f"processHeaderPub Parse Error: {arg!r}")
            hdr = _size(hdb)
            if hdr < 0:
                raise _fail(f"processHeaderPub Bad or Missing Header Size: {arg!r}")
            size = _size(szb)
            if size < 0:
                raise _fail(f"processHeaderPub Bad or Missing Total Size: {arg!r}")
            if hdr > size:
                raise _fail(f"processHeaderPub Header Size larger then TotalSize: {arg!r}")
            self._check_payload(size)
            return self._payload(buf, nl + 1, (_HPUB, subject, reply, hdr, size), ops)
        if kind == _SUB:
            args = _SUB_ARGS.findall(arg)
            if len(args) == 2:
                ops.append(Sub(_dec(args[0]), None, _dec(args[1])))
            elif len(args) == 3:
                ops.append(Sub(_dec(args[0]), _dec(args[1]), _dec(args[2])))
            else:
                raise _fail(f"processSub Parse Error: {arg!r}")
        elif kind == _UNSUB:
            args = _SUB_ARGS.findall(arg)
            if len(args) == 1:
                ops.append(Unsub(_dec(args[0]), None))
            elif len(args) == 2:
                mx = _size(args[1])
                ops.append(Unsub(_dec(args[0]), mx if mx >= 0 else None))
            else:
                raise _fail(f"processUnsub Parse Error: {arg!r}")
        elif kind == _CONNECT:
            opts = _connect_opts(arg)
            ops.append(Connect(opts))
            if "headers" in opts:
                self._client_headers = opts["headers"]
            self.require_connect = False
        elif kind == _INFO:
            # client.go processInfo: a client's INFO is decoded, then ignored.
            doc = _json(arg, "INFO")
            if doc is not None and not isinstance(doc, _Obj):
                raise _fail(f"INFO: JSON is not an object: {arg[:64]!r}")
        else:  # -ERR from a client: client.go processErr logs it and closes, sending nothing.
            raise _fail(f"Client Error {arg.decode('utf-8', 'replace')}")
        return nl + 1

    def _too_long(self, buf: bytes, j: int, size: int) -> ProtocolError:
        return _fail(
            f"maximum control line exceeded: max_control_line {self.max_control_line}, "
            f"length {size} (snip: {buf[j : j + 128]!r}...)",
            ERR_MAX_CONTROL_LINE,
        )

    def _check_payload(self, size: int) -> None:
        if size > self.max_payload:
            raise _fail(f"maximum payload exceeded: {size} vs {self.max_payload}", ERR_MAX_PAYLOAD)

    def _payload(
        self, buf: bytes, start: int, pending: tuple[int, bytes, bytes | None, int, int], ops: list[Op]
    ) -> int:
        size = pending[4]
        stop = start + size
        n = len(buf)
        if stop + 2 <= n:
            if buf[stop] != 13 or buf[stop + 1] != 10:
                raise _unknown(buf, stop)
            self._emit(pending, buf[start:stop], ops)
            return stop + 2
        if n > stop and buf[stop] != 13:
            raise _unknown(buf, stop)
        self._pending = pending
        self._pbuf = bytearray(memoryview(buf)[start:])
        self._state = _PAYLOAD
        return -1

    def _more_payload(self, data: bytes, ops: list[Op]) -> int:
        """Continue a partial payload; returns the position in ``data`` after it, or -1."""
        pending = self._pending
        assert pending is not None
        size = pending[4]
        pbuf = self._pbuf
        need = size + 2 - len(pbuf)
        take = need if need < len(data) else len(data)
        pbuf += memoryview(data)[:take]
        have = len(pbuf)
        if have > size and pbuf[size] != 13:
            raise _unknown(bytes(pbuf), size)
        if have < size + 2:
            return -1
        if pbuf[size + 1] != 10:
            raise _unknown(bytes(pbuf), size + 1)
        del pbuf[size:]
        self._emit(pending, bytes(pbuf), ops)
        self._pending, self._pbuf, self._state = None, bytearray(), _START
        return take

    @staticmethod
    def _emit(pending: tuple[int, bytes, bytes | None, int, int], body: bytes, ops: list[Op]) -> None:
        kind, subject, reply, hdr = pending[:4]
        r = _dec(reply) if reply is not None else None
        if kind == _PUB:
            ops.append(Pub(_dec(subject), r, body))
        else:
            ops.append(HPub(_dec(subject), r, body[:hdr], body[hdr:]))
