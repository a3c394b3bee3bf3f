"""The broker's monitoring data, in nats-server's JSON shapes, and the HTTP port that serves it.

One builder per endpoint (server/monitor.go, server/events.go), used by both transports:
``/varz``, ``/connz``, ``/subsz``, ``/accountz``, ``/accstatz``, ``/healthz`` on the monitoring
port (``-m``), and the system account's ``$SYS.REQ.SERVER.PING.<KIND>`` and
``$SYS.REQ.ACCOUNT.<A>.<KIND>`` requests (broker/system.py), which wrap the same data in
nats-server's ``{"server", "data", "error"}`` envelope. Keys nats-server always writes are always
written (zero when the broker has nothing to count, such as routes); keys it leaves out when empty
are left out. Where the broker differs (what ``last_activity`` counts, subscription counts without
nats-server's internal ones, no match counts, the trustkit ``data`` counters) docs/broker.md says so.

Closed connections are kept as nats-server keeps them: the last :data:`MAX_CLOSED_CLIENTS`, each a
few plain values taken as it closed (:class:`ClosedClients`, ``Conn.connection_lost``); their JSON
is built only when asked.

The HTTP responder is a tiny HTTP/1.0 server on asyncio streams (no framework on the broker's
loop); GET only.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from broker.router import Router, Subscription
from broker.sharing import Latency, subjects_collide
from broker.tls import DEFAULT_TLS_TIMEOUT, tls_version
from trustkit.errors import TrustkitError
from trustkit.jwt.decoder import decode
from trustkit.jwt.user import UserClaims
from trustkit.subject import matches as subject_matches

if TYPE_CHECKING:
    from broker.server import Account, Broker, Conn, ConnSub

__all__ = [
    "ClosedClients",
    "ConnzOptions",
    "HealthzOptions",
    "MonitorError",
    "SubszOptions",
    "account_info",
    "account_stat",
    "account_statz",
    "accountz",
    "connz",
    "decode_options",
    "go_duration",
    "healthz",
    "idz",
    "rfc3339nano",
    "start_monitor",
    "statsz",
    "subsz",
    "varz",
]

GLOBAL_ACCOUNT = "$G"
#: nats-server's DefaultConnListSize: connections per /connz page unless ``limit`` says otherwise
DEFAULT_CONN_LIST_SIZE = 1024
#: ConnState (monitor.go): which connections /connz lists
CONN_OPEN, CONN_CLOSED, CONN_ALL = 0, 1, 2
SORT_OPTIONS = (
    "cid", "start", "subs", "pending", "msgs_to", "msgs_from", "bytes_to", "bytes_from",
    "last", "idle", "uptime", "stop", "reason", "rtt",
)  # fmt: skip


class MonitorError(Exception):
    """A request the builders refuse: ``status`` 400 (bad options) or 500 (nats-server's ``respf``
    errors), and the text nats-server gives where it has one."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- Go's formats ---------------------------------------------------------------------------------


def rfc3339nano(ns: int) -> str:
    """Go's ``time.Time`` JSON form (RFC 3339, UTC, trailing zeros of the nanoseconds trimmed)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def _ts(t: float) -> str:
    return rfc3339nano(int(t * 1e9))


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    width = len(str(unit)) - 1
    digits = f"{rest:0{width}d}".rstrip("0") if rest else ""
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``0s``, ``850ns``, ``425µs``, ``1.5ms``, ``2m3.5s``."""
    if ns < 0:
        return "-" + go_duration(-ns)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _frac(ns, 1_000) + "µs"
    if ns < 1_000_000_000:
        return _frac(ns, 1_000_000) + "ms"
    secs, rest = divmod(ns, 1_000_000_000)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    out = _frac(secs * 1_000_000_000 + rest, 1_000_000_000) + "s"
    if hours:
        return f"{hours}h{mins}m{out}"
    if mins:
        return f"{mins}m{out}"
    return out


def uptime(seconds: float) -> str:
    """monitor.go ``myUptime``: whole seconds as ``1y2d3h4m5s``, leading zero units left out."""
    secs = max(int(seconds), 0)
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    years = days // 365
    if years:
        return f"{years}y{days % 365}d{hours % 24}h{mins % 60}m{secs % 60}s"
    if days:
        return f"{days}d{hours % 24}h{mins % 60}m{secs % 60}s"
    if hours:
        return f"{hours}h{mins % 60}m{secs % 60}s"
    if mins:
        return f"{mins}m{secs % 60}s"
    return f"{secs}s"


# --- per-broker state: HTTP request counts, the CPU sample ----------------------------------------


class _State:
    __slots__ = ("cpu", "cpu_sample", "http_req_stats")

    def __init__(self) -> None:
        self.http_req_stats: dict[str, int] = {}
        self.cpu_sample = (time.monotonic(), time.process_time())
        self.cpu = 0.0


_STATES: weakref.WeakKeyDictionary[Broker, _State] = weakref.WeakKeyDictionary()


def _state(b: Broker) -> _State:
    st = _STATES.get(b)
    if st is None:
        st = _STATES[b] = _State()
    return st


def _cores() -> int:
    """``runtime.NumCPU``: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _rss() -> int:
    """Resident memory in bytes (nats-server's ``mem``): /proc where there is one, else the peak."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu(b: Broker) -> float:
    """Percent of one CPU the process used since the previous sample (nats-server samples its
    own usage once a second; a sample here is taken when asked, at most once a second)."""
    st = _state(b)
    wall, cpu = time.monotonic(), time.process_time()
    then_wall, then_cpu = st.cpu_sample
    if wall - then_wall >= 1.0:
        st.cpu = round(100.0 * (cpu - then_cpu) / (wall - then_wall), 1)
        st.cpu_sample = (wall, cpu)
    return st.cpu


# --- the builders ---------------------------------------------------------------------------------


def _traffic(b: Broker) -> tuple[int, int, int, int]:
    """in_msgs, in_bytes, out_msgs, out_bytes since start (closed connections included)."""
    t = b.closed_totals
    live = b.conns
    return (
        t[0] + sum(c.in_msgs for c in live),
        t[1] + sum(c.in_bytes for c in live),
        t[2] + sum(c.out_msgs for c in live),
        t[3] + sum(c.out_bytes for c in live),
    )


def _zero_stats() -> dict[str, int]:
    return {"clients": 0, "routes": 0, "gateways": 0, "leafs": 0}


def varz(b: Broker) -> dict[str, Any]:
    """nats-server's ``Varz`` for a single server without cluster, gateway, leaf node, MQTT,
    WebSocket or JetStream (their blocks are empty objects, as nats-server writes them)."""
    from broker.server import WRITE_DEADLINE  # (broker.server imports this module's users)

    cfg = b.config
    tls = cfg.tls
    in_msgs, in_bytes, out_msgs, out_bytes = _traffic(b)
    now = time.time()
    doc: dict[str, Any] = {
        "server_id": b.server_key.public_key,
        "server_name": b.info_base["server_name"],
        "version": b.info_base["version"],
        "proto": 1,
        "go": b.info_base["go"],
        "host": cfg.host,
        "port": cfg.port,
    }
    if cfg.auth_required:
        doc["auth_required"] = True
    if tls is not None:
        doc["tls_required"] = True
        if tls.verify:
            doc["tls_verify"] = True
    doc |= {
        "max_connections": cfg.max_connections,
        "ping_interval": int(cfg.ping_interval * 1e9),
        "ping_max": cfg.ping_max,
        "http_host": cfg.host if cfg.http_port is not None else "",
        "http_port": cfg.http_port or 0,
        "http_base_path": "",
        "https_port": 0,
        "auth_timeout": cfg.auth_timeout,
        "max_control_line": cfg.max_control_line,
        "max_payload": cfg.max_payload,
        "max_pending": cfg.max_pending,
        "cluster": {},
        "gateway": {},
        "leaf": {},
        "mqtt": {},
        "websocket": {},
        "jetstream": {},
        "tls_timeout": tls.timeout if tls is not None else DEFAULT_TLS_TIMEOUT,
        "write_deadline": int(WRITE_DEADLINE * 1e9),
        "start": _ts(b.started),
        "now": _ts(now),
        "uptime": uptime(now - b.started),
        "mem": _rss(),
        "cores": _cores(),
        "gomaxprocs": 0,  # no Go runtime
        "cpu": _cpu(b),
        "connections": len(b.conns),
        "total_connections": b.total_connections,
        "routes": 0,
        "remotes": 0,
        "leafnodes": 0,
        "in_msgs": in_msgs,
        "in_bytes": in_bytes,
        "in_client_msgs": in_msgs,
        "in_client_bytes": in_bytes,
        "out_msgs": out_msgs,
        "out_bytes": out_bytes,
        "out_client_msgs": out_msgs,
        "out_client_bytes": out_bytes,
        "slow_consumers": b.slow_consumers,
        "stale_connections": b.stale_connections,
        "stalled_clients": 0,  # the broker never stalls a producer
        "subscriptions": sum(len(c.subs) for c in b.conns),
        "http_req_stats": dict(_state(b).http_req_stats),
        "config_load_time": _ts(b.started),
        "config_digest": "",
    }
    if cfg.operator_jwts:
        doc["trusted_operators_jwt"] = list(cfg.operator_jwts)
        doc["trusted_operators_claim"] = [_claims_json(token) for token in cfg.operator_jwts]
    if cfg.system_account:
        doc["system_account"] = cfg.system_account
    doc["slow_consumer_stats"] = _zero_stats() | {"clients": b.slow_consumers}
    doc["stale_connection_stats"] = _zero_stats() | {"clients": b.stale_connections}
    doc["disk_io_wait_stats"] = {"waiters": 0, "waits": 0, "wait_time": 0, "max_wait_time": 0}
    return doc


def _claims_json(token: str) -> Any:
    """A JWT's claims as JSON (varz ``trusted_operators_claim``); the operator JWTs were verified
    when the config was read."""
    try:
        return decode(token).payload_json()
    except TrustkitError:
        return None


def statsz(b: Broker) -> dict[str, Any]:
    """nats-server's ``ServerStats`` (the ``statsz`` of ``$SYS.REQ.SERVER.PING``)."""
    in_msgs, in_bytes, out_msgs, out_bytes = _traffic(b)
    doc: dict[str, Any] = {
        "start": _ts(b.started),
        "mem": _rss(),
        "cores": _cores(),
        "cpu": _cpu(b),
        "connections": len(b.conns),
        "total_connections": b.total_connections,
        "active_accounts": sum(1 for a in b.accounts.values() if a.conns),
        "subscriptions": sum(len(c.subs) for c in b.conns),
        "sent": {"msgs": out_msgs, "bytes": out_bytes},
        "sent_to_clients": {"msgs": out_msgs, "bytes": out_bytes},
        "received": {"msgs": in_msgs, "bytes": in_bytes},
        "received_from_clients": {"msgs": in_msgs, "bytes": in_bytes},
        "slow_consumers": b.slow_consumers,
    }
    if b.slow_consumers:
        doc["slow_consumer_stats"] = _zero_stats() | {"clients": b.slow_consumers}
    if b.stale_connections:
        doc["stale_connections"] = b.stale_connections
        doc["stale_connection_stats"] = _zero_stats() | {"clients": b.stale_connections}
    doc["active_servers"] = 1
    return doc


def idz(b: Broker) -> dict[str, Any]:
    """``ServerID``: name, host, id."""
    return {"name": b.info_base["server_name"], "host": b.config.host, "id": b.server_key.public_key}


@dataclass
class HealthzOptions:
    """monitor.go ``HealthzOptions`` (the JetStream ones change nothing: the broker has none)."""

    js_enabled: bool = False
    js_enabled_only: bool = False
    js_server_only: bool = False
    js_meta_only: bool = False
    account: str = ""
    stream: str = ""
    consumer: str = ""
    details: bool = False


def healthz(b: Broker, opts: HealthzOptions | None = None) -> dict[str, Any]:
    """nats-server's ``healthz``: ``status`` and ``status_code`` (HTTP sends the code as the
    response status instead), with the same two bad-request checks. Without JetStream there is
    nothing else to check, so a running broker is healthy."""
    opts = opts or HealthzOptions()
    error = ""
    if opts.account == "" and opts.stream != "":
        error = '"account" must not be empty when checking stream health'
    elif opts.stream == "" and opts.consumer != "":
        error = '"stream" must not be empty when checking consumer health'
    if not error:
        return {"status": "ok", "status_code": 200}
    if opts.details:
        return {"status": "error", "status_code": 400, "errors": [{"type": "BAD_REQUEST", "error": error}]}
    return {"status": "error", "status_code": 400, "error": error}


@dataclass
class ConnzOptions:
    """monitor.go ``ConnzOptions``."""

    sort: str = ""
    auth: bool = False
    subscriptions: bool = False
    subscriptions_detail: bool = False
    offset: int = 0
    limit: int = 0
    cid: int = 0
    mqtt_client: str = ""
    state: int = CONN_OPEN
    user: str = ""
    acc: str = ""
    filter_subject: str = ""


def raw_auth_user(c: Conn) -> str:
    """client.go ``getRawAuthUser``: the CONNECT's ``nkey``, else its ``user``, else (with a
    ``jwt``) the user's public key, else ``[REDACTED]`` for a token, else nothing."""
    opts = c.connect_opts or {}
    for key in ("nkey", "user"):
        value = opts.get(key)
        if isinstance(value, str) and value:
            return value
    token = opts.get("jwt")
    if isinstance(token, str) and token:
        return c.grant.user_key if c.grant is not None else ""
    token = opts.get("auth_token")
    if isinstance(token, str) and token:
        return "[REDACTED]"
    return ""


def account_name_tag(b: Broker, key: str) -> str:
    """accounts.go ``getNameTag``: the account JWT's name, else the account's name."""
    acct = b.accounts.get(key)
    claims = acct.claims if acct is not None else b.lookup_account(key)
    return (claims.name if claims is not None and claims.name else "") or key


def account_known(b: Broker, key: str) -> bool:
    if key in b.accounts or key == GLOBAL_ACCOUNT:
        return True
    if b.config.operator_mode:
        return b.lookup_account(key) is not None
    return key in b.config.accounts


# --- closed connections (nats-server's closedRingBuffer) -------------------------------------------

#: nats-server's DEFAULT_MAX_CLOSED_CLIENTS: how many closed connections /connz keeps
MAX_CLOSED_CLIENTS = 10_000


class ClosedConn:
    """What ``/connz`` shows of a closed connection, taken as it closed (server.go
    ``saveClosedClient``): plain values only, no reference to the connection; the JSON is built
    when asked."""

    __slots__ = (
        "acc", "acc_data_limit", "acc_data_used", "cid", "data_limit", "data_used", "in_bytes",
        "in_msgs", "ip", "issuer", "jwt", "lang", "last_activity", "name", "out_bytes", "out_msgs",
        "pending", "port", "reason", "rtt", "started", "stop", "subs", "tags", "tls", "user",
        "user_name", "version",
    )  # fmt: skip

    def __init__(self, c: Conn, stop: float) -> None:
        t = c.transport
        peer = t.get_extra_info("peername") if t is not None else None
        self.cid = c.cid
        self.ip = c.client_ip
        self.port: int = peer[1] if peer and len(peer) > 1 else 0
        self.started = c.started
        self.last_activity = c.last_activity
        self.stop = stop
        self.reason = c.close_reason  # the -ERR it was closed with; None: the client went
        self.rtt = c.rtt
        self.pending = _pending(c)
        self.in_msgs, self.in_bytes = c.in_msgs, c.in_bytes
        self.out_msgs, self.out_bytes = c.out_msgs, c.out_bytes
        self.name, self.lang, self.version = c.name, c.lang, c.version
        self.tls: tuple[str, str] | None = None
        ssl_object = t.get_extra_info("ssl_object") if t is not None and not c.tls_pending else None
        if ssl_object is not None:
            cipher = ssl_object.cipher()
            self.tls = (tls_version(ssl_object), cipher[0] if cipher else "")
        self.user = raw_auth_user(c)
        acct = c.account
        # (nats-server keeps no account name for a client of $G: an ``acc`` filter of $G skips it)
        self.acc = acct.key if acct is not None and acct.key != GLOBAL_ACCOUNT else ""
        # SubDetail of each subscription: subject, queue, sid, msgs, max (which nats-server's
        # closed connections never show: their subscriptions are torn down first)
        subs = c.subs
        self.subs = tuple((s.subject, s.queue, s.sid, s.delivered, 0) for s in subs.values()) if subs else ()
        token = (c.connect_opts or {}).get("jwt")
        self.jwt: str = token if isinstance(token, str) else ""
        grant = c.grant
        self.issuer = grant.signing_key if grant is not None else ""
        self.tags: tuple[str, ...] = tuple(grant.user.tags) if grant is not None else ()
        self.user_name = grant.user.name if grant is not None and grant.signing_key else ""
        self.data_used, self.data_limit = c.data_used, c.data_limit
        self.acc_data_used = acct.data_used if acct is not None else 0
        self.acc_data_limit = acct.data_limit if acct is not None else -1


class ClosedClients:
    """The last :data:`MAX_CLOSED_CLIENTS` closed connections (``Broker.closed_clients``), and per
    account what its closed connections sent and received and how many were cut off as slow
    consumers (account ``STATZ``/``CONNS`` count those with the open ones)."""

    __slots__ = ("_slow", "accounts", "ring")

    def __init__(self, size: int = MAX_CLOSED_CLIENTS) -> None:
        from broker.system import SLOW_CONSUMER  # (broker.system imports this module)

        self.ring: deque[ClosedConn] = deque(maxlen=size)
        #: account key -> [in_msgs, in_bytes, out_msgs, out_bytes, slow consumers]
        self.accounts: dict[str, list[int]] = {}
        self._slow = SLOW_CONSUMER

    def record(self, c: Conn) -> None:
        """``Conn.connection_lost``: keep what ``/connz?state=closed`` shows of ``c``."""
        self.ring.append(ClosedConn(c, time.time()))
        acct = c.account
        if acct is not None:
            t = self.accounts.get(acct.key)
            if t is None:
                t = self.accounts[acct.key] = [0, 0, 0, 0, 0]
            t[0] += c.in_msgs
            t[1] += c.in_bytes
            t[2] += c.out_msgs
            t[3] += c.out_bytes
            if c.close_reason == self._slow:
                t[4] += 1


def closed_state(text: str | None) -> str:
    """nats-server's ``ClosedState`` text for a connection closed with the ``-ERR`` ``text``
    (None: the client closed it)."""
    from broker.system import CLOSED_STATES  # (broker.system imports this module)

    return "Client Closed" if text is None else CLOSED_STATES.get(text, "Protocol Violation")


# --- /connz ---------------------------------------------------------------------------------------

_Row = Any  # a Conn (open) or a ClosedConn


def _nsubs(r: _Row) -> int:
    return len(r.subs)


def _row_pending(r: _Row) -> int:
    return r.pending if isinstance(r, ClosedConn) else _pending(r)


def _sort_key(sort: str, now: float) -> tuple[Callable[[_Row], Any], bool] | None:
    """(key, descending) as monitor.go sorts (monitor_sort_opts.go), or None for the order by cid."""
    if sort in ("", "cid", "start"):
        return None

    def up(r: _Row) -> float:
        end: float = r.stop if isinstance(r, ClosedConn) else now
        started: float = r.started
        return end - started

    keys: dict[str, tuple[Callable[[_Row], Any], bool]] = {
        "subs": (_nsubs, True),
        "pending": (_row_pending, True),
        "msgs_to": (lambda r: r.out_msgs, True),
        "msgs_from": (lambda r: r.in_msgs, True),
        "bytes_to": (lambda r: r.out_bytes, True),
        "bytes_from": (lambda r: r.in_bytes, True),
        "last": (lambda r: r.last_activity, True),
        "idle": (lambda r: now - r.last_activity, True),
        "uptime": (up, False),
        "stop": (lambda r: r.stop, True),  # closed connections only
        "reason": (lambda r: closed_state(r.reason), False),
        "rtt": (lambda r: r.rtt, True),
    }
    return keys[sort]


def _pending(c: Conn) -> int:
    return c.transport.get_write_buffer_size() if c.transport else 0


def connz(b: Broker, opts: ConnzOptions | None = None) -> dict[str, Any]:
    """nats-server's ``Connz`` (monitor.go ``Connz``) of the open connections, the closed ones the
    broker keeps, or both (``state``), with its options: sort, paging, auth details,
    subscription lists, filters by cid, user, account and (open connections only) subject.
    Raises :class:`MonitorError` for what nats-server refuses."""
    opts = opts or ConnzOptions()
    sort = opts.sort
    if sort and sort not in SORT_OPTIONS:
        raise MonitorError(f"invalid sorting option: {sort}", 500)
    offset = max(opts.offset, 0)
    limit = opts.limit if opts.limit > 0 else DEFAULT_CONN_LIST_SIZE
    state = opts.state
    if sort == "stop" and state != CONN_CLOSED:
        raise MonitorError("sort by stop only valid on closed connections", 500)
    if sort == "reason" and state != CONN_CLOSED:
        raise MonitorError("sort by reason only valid on closed connections", 500)
    if opts.cid > 0:
        limit = 1
    flt = ""
    if opts.filter_subject not in ("", ">"):
        if not opts.acc:
            raise MonitorError("filter by subject only valid with account filtering", 500)
        flt = opts.filter_subject
    now = time.time()
    doc: dict[str, Any] = {
        "server_id": "",
        "now": _ts(now),
        "num_connections": 0,
        "total": 0,
        "offset": offset,
        "limit": limit,
        "connections": None,
    }
    if opts.acc and not account_known(b, opts.acc):
        return doc  # nats-server: lookupAccount failed, an empty answer
    sort_key = _sort_key(sort, now)
    doc["server_id"] = b.server_key.public_key
    want_open, want_closed = state in (CONN_OPEN, CONN_ALL), state in (CONN_CLOSED, CONN_ALL)
    conns = [c for c in b.conns if c.account is not None]
    if opts.acc:
        conns = [c for c in conns if c.account is not None and c.account.key == opts.acc]
    closed: list[ClosedConn] = list(b.closed_clients.ring) if want_closed else []
    if opts.acc:
        closed = [r for r in closed if r.acc == opts.acc]
    doc["total"] = (len(conns) if want_open else 0) + len(closed)
    opened: list[Conn] = []
    if opts.cid > 0:
        if want_open:
            opened = [c for c in b.conns if c.cid == opts.cid and c.account is not None]
        if opened:
            closed = []
        else:
            closed = [r for r in closed if r.cid == opts.cid][:1]
    else:
        if want_open:
            opened = conns
            if opts.user:
                opened = [c for c in opened if raw_auth_user(c) == opts.user]
        if opts.user:
            closed = [r for r in closed if r.user == opts.user]
        if opts.mqtt_client:
            opened, closed = [], []  # no MQTT clients
    if flt:
        opened = [c for c in opened if any(subjects_collide(flt, s.subject) for s in c.subs.values())]
    if not opened and not closed:
        doc["connections"] = []
        return doc
    rows: list[_Row] = [*opened, *closed]
    rows.sort(key=lambda r: r.cid)
    if sort_key is not None:
        key, descending = sort_key
        rows.sort(key=key, reverse=descending)
    lo = min(offset, len(rows))
    page = rows[lo : lo + min(limit, len(rows) - lo)]
    doc["connections"] = [
        _closed(b, r, opts) if isinstance(r, ClosedConn) else _conn(b, r, now, opts) for r in page
    ]
    doc["num_connections"] = len(page)
    return doc


def _conn(b: Broker, c: Conn, now: float, opts: ConnzOptions) -> dict[str, Any]:
    peer = c.transport.get_extra_info("peername") if c.transport else None
    out: dict[str, Any] = {
        "cid": c.cid,
        "kind": "Client",
        "type": "nats",
        "ip": c.client_ip,
        "port": peer[1] if peer and len(peer) > 1 else 0,
        "start": _ts(c.started),
        "last_activity": _ts(c.last_activity),
        "rtt": go_duration(c.rtt),
        "uptime": uptime(now - c.started),
        "idle": uptime(now - c.last_activity),
        "pending_bytes": _pending(c),
        "in_msgs": c.in_msgs,
        "out_msgs": c.out_msgs,
        "in_bytes": c.in_bytes,
        "out_bytes": c.out_bytes,
        "subscriptions": len(c.subs),
    }
    out["name"] = c.name  # (written even when empty, as the broker always has; nats-server omits it)
    for key, value in (("lang", c.lang), ("version", c.version)):
        if value:
            out[key] = value
    ssl_object = c.transport.get_extra_info("ssl_object") if c.transport and not c.tls_pending else None
    if ssl_object is not None:
        cipher = ssl_object.cipher()
        out["tls_version"] = tls_version(ssl_object)
        out["tls_cipher_suite"] = cipher[0] if cipher else ""
    # trustkit: the authorized user and the account are always shown (nats-server: with auth)
    user = raw_auth_user(c)
    if user:
        out["authorized_user"] = user
    acct = c.account
    if acct is not None and acct.key != GLOBAL_ACCOUNT:
        out["account"] = acct.key
    if c.subs:
        if opts.subscriptions_detail:
            out["subscriptions_list_detail"] = [
                _sub_detail(s.subject, s.queue, s.sid, s.delivered, s.max, c.cid) for s in c.subs.values()
            ]
        elif opts.subscriptions:
            out["subscriptions_list"] = [s.subject for s in c.subs.values()]
    if opts.auth and acct is not None:
        token = (c.connect_opts or {}).get("jwt")
        if isinstance(token, str) and token and not _bearer(token):
            out["jwt"] = token
        grant = c.grant
        if grant is not None and grant.signing_key:
            out["issuer_key"] = grant.signing_key
        out["name_tag"] = account_name_tag(b, acct.key)
        if grant is not None and grant.user.tags:
            out["tags"] = list(grant.user.tags)
    # trustkit's data limits (docs/broker.md): bytes counted against the user's and the
    # account's ``data`` limit; -1 is unlimited. in_bytes also counts refused publishes.
    out["data_used"] = c.data_used
    out["data_limit"] = c.data_limit
    out["account_data_used"] = acct.data_used if acct else 0
    out["account_data_limit"] = acct.data_limit if acct else -1
    return out


def _sub_detail(
    subject: str,
    queue: str | None,
    sid: str,
    msgs: int,
    mx: int,
    cid: int,
    acc: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """monitor.go ``SubDetail``: with ``acc`` (name, name tag) as ``newSubDetail`` writes it
    (/subsz, closed connections), else as ``newClientSubDetail`` (open connections)."""
    out: dict[str, Any] = {"account": acc[0], "account_tag": acc[1]} if acc else {}
    out["subject"] = subject
    if queue:
        out["qgroup"] = queue
    out["sid"] = sid
    out["msgs"] = msgs
    if mx:
        out["max"] = mx
    out["cid"] = cid
    return out


def _closed(b: Broker, r: ClosedConn, opts: ConnzOptions) -> dict[str, Any]:
    """A closed connection as monitor.go shows it: times, counts and ``reason`` as it closed;
    its JWT, issuer, tags and user JWT name always, the account's name tag with ``auth``."""
    out: dict[str, Any] = {
        "cid": r.cid,
        "kind": "Client",
        "type": "nats",
        "ip": r.ip if r.port else "",
        "port": r.port,
        "start": _ts(r.started),
        "last_activity": _ts(r.last_activity),
        "stop": _ts(r.stop),
        "reason": closed_state(r.reason),
        "rtt": go_duration(r.rtt),
        "uptime": uptime(r.stop - r.started),
        "idle": uptime(r.stop - r.last_activity),
        "pending_bytes": r.pending,
        "in_msgs": r.in_msgs,
        "out_msgs": r.out_msgs,
        "in_bytes": r.in_bytes,
        "out_bytes": r.out_bytes,
        "subscriptions": len(r.subs),
    }
    for key, value in (("name", r.name), ("lang", r.lang), ("version", r.version)):
        if value:
            out[key] = value
    if r.tls is not None:
        out["tls_version"], out["tls_cipher_suite"] = r.tls
    # trustkit: the authorized user and the account are always shown, as for open connections
    if r.user:
        out["authorized_user"] = r.user
    acc = r.acc
    if acc:
        out["account"] = acc
    if r.subs:
        if opts.subscriptions_detail:
            tag = (r.acc or GLOBAL_ACCOUNT, account_name_tag(b, r.acc or GLOBAL_ACCOUNT))
            out["subscriptions_list_detail"] = [_sub_detail(*s, r.cid, tag) for s in r.subs]
        elif opts.subscriptions:
            out["subscriptions_list"] = [s[0] for s in r.subs]
    if r.jwt and not _bearer(r.jwt):
        out["jwt"] = r.jwt
    if r.issuer:
        out["issuer_key"] = r.issuer
    name_tag = r.user_name
    if opts.auth and acc and account_known(b, acc):
        name_tag = account_name_tag(b, acc)
    if name_tag:
        out["name_tag"] = name_tag
    if r.tags:
        out["tags"] = list(r.tags)
    out["data_used"] = r.data_used
    out["data_limit"] = r.data_limit
    out["account_data_used"] = r.acc_data_used
    out["account_data_limit"] = r.acc_data_limit
    return out


def _bearer(token: str) -> bool:
    """monitor.go ``redactBearerJWT``: a bearer token's JWT is not shown."""
    try:
        return decode(token, UserClaims).bearer_token
    except TrustkitError:
        return False


# --- /subsz ---------------------------------------------------------------------------------------

#: nats-server's DefaultSubListSize: subscriptions per /subsz page unless ``limit`` says otherwise
DEFAULT_SUB_LIST_SIZE = 1024


@dataclass
class SubszOptions:
    """monitor.go ``SubszOptions``."""

    offset: int = 0
    limit: int = 0
    subscriptions: bool = False
    account: str = ""
    test: str = ""


def _go_number(value: float) -> float | int:
    """A Go ``float64`` as encoding/json writes it: a whole number without a fraction."""
    return int(value) if value == int(value) else value


def sublist_stats(routers: Iterable[Router]) -> dict[str, Any]:
    """sublist.go ``SublistStats`` of one or more routing tables, added up as ``SublistStats.add``
    does. ``num_matches`` and ``cache_hit_rate`` are 0: the broker does not count matches (that
    would cost every published message); the fan-outs are those of the cached results."""
    subs = cache = inserts = removes = total = cached = most = 0
    for r in routers:
        subs += r.count()
        cache += r.cache_len()
        inserts += r.inserts
        removes += r.removes
        for result in r.cached_results():
            fanout = len(result.plain) + len(result.queues)
            cached += 1
            total += fanout
            most = max(most, fanout)
    return {
        "num_subscriptions": subs,
        "num_cache": cache,
        "num_inserts": inserts,
        "num_removes": removes,
        "num_matches": 0,
        "cache_hit_rate": 0,
        "max_fanout": most,
        "avg_fanout": _go_number(total / cached) if total else 0,
    }


def _go_literal(subject: str) -> bool:
    """sublist.go ``IsValidLiteralSubject``: no empty token, no ``*`` or ``>`` token."""
    return all(t and t not in ("*", ">") for t in subject.split("."))


def _client_subs(b: Broker) -> Iterable[tuple[Account, Conn, Subscription, ConnSub]]:
    """Every client subscription with the account whose routing table holds it (the client's own
    account, and for a stream import's copy the exporter's) and the client's ``SUB`` it is."""
    for c in sorted(b.conns, key=lambda c: c.cid):
        acct = c.account
        if acct is None:
            continue
        for sub in c.subs.values():
            yield acct, c, sub, sub
            for shadow in sub.shadows or ():
                yield shadow.imp.exporter, c, shadow, sub


def subsz(b: Broker, opts: SubszOptions | None = None) -> dict[str, Any]:
    """nats-server's ``Subsz``: the routing tables' statistics (of one account with ``account``),
    and with ``subscriptions`` a page of the client subscriptions, those a message on ``test``
    would reach if given. Raises :class:`MonitorError` for a ``test`` that is not a publish subject."""
    opts = opts or SubszOptions()
    offset = max(opts.offset, 0)
    limit = opts.limit if opts.limit > 0 else DEFAULT_SUB_LIST_SIZE
    if opts.test and not _go_literal(opts.test):
        raise MonitorError(f"invalid test subject, must be valid publish subject: {opts.test}", 500)
    accounts = [a for key, a in b.accounts.items() if not opts.account or key == opts.account]
    doc: dict[str, Any] = {"server_id": b.server_key.public_key, "now": _ts(time.time())}
    doc |= sublist_stats(a.router for a in accounts)
    doc |= {"total": 0, "offset": offset, "limit": limit}
    if opts.subscriptions:
        tags: dict[str, tuple[str, str]] = {}
        details = []
        for acct, c, sub, orig in _client_subs(b):
            if opts.account and acct.key != opts.account:
                continue
            if opts.test and not subject_matches(sub.subject, opts.test):
                continue
            owner = c.account
            assert owner is not None
            tag = tags.get(owner.key)
            if tag is None:
                tag = tags[owner.key] = (owner.key, account_name_tag(b, owner.key))
            details.append(_sub_detail(sub.subject, sub.queue, sub.sid, orig.delivered, orig.max, c.cid, tag))
        lo = min(offset, len(details))
        page = details[lo : lo + min(limit, len(details) - lo)]
        if page:
            doc["subscriptions_list"] = page
        doc["total"] = len(details)
    return doc


# --- /accountz, account INFO, STATZ and CONNS -----------------------------------------------------


def account_names(b: Broker) -> list[str]:
    """The accounts the server has (nats-server's ``s.accounts``): ``$G``, the system account,
    config mode's accounts, and every account loaded since the start."""
    cfg = b.config
    names = dict.fromkeys([GLOBAL_ACCOUNT])
    if cfg.system_account:
        names[cfg.system_account] = None
    if not cfg.operator_mode:
        names.update(dict.fromkeys(cfg.accounts))
    names.update(dict.fromkeys(b.accounts))
    return list(names)


def accountz(b: Broker, account: str = "") -> dict[str, Any]:
    """nats-server's ``Accountz``: the account names, or with ``account`` its details
    (:func:`account_info`)."""
    doc: dict[str, Any] = {"server_id": b.server_key.public_key, "now": _ts(time.time())}
    if b.config.system_account:
        doc["system_account"] = b.config.system_account
    if not account:
        doc["accounts"] = account_names(b)
    else:
        doc["account_detail"] = account_info(b, account)
    return doc


#: what every account imports from the system account (events.go ``registerSystemImports``):
#: (local subject, the system account's subject with ``{}`` for the account, share)
SYSTEM_IMPORTS = (
    ("$SYS.REQ.USER.INFO", "$SYS.REQ.USER.{}.INFO", True),
    ("$SYS.REQ.ACCOUNT.PING.CONNZ", "$SYS.REQ.ACCOUNT.{}.CONNZ", False),
    ("$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.{}.CONNZ", False),
    ("$SYS.REQ.ACCOUNT.PING.STATZ", "$SYS.REQ.ACCOUNT.{}.STATZ", False),
)
_RESPONSE_TYPES = {"Singleton": "Singleton", "Stream": "Streamed", "Chunked": "Chunked"}


def _go_time(unix: int) -> str:
    return rfc3339nano(unix * 1_000_000_000)


def _latency(lat: Latency | None) -> dict[str, Any] | None:
    if lat is None:
        return None
    return {"sampling": lat.sampling or "headers", "results": lat.results}


def _ext_import(subject: str, account: str, local: str, *, service: bool, share: bool = False,
                tracking: bool = False, latency: Latency | None = None) -> dict[str, Any]:  # fmt: skip
    """monitor.go ``ExtImport`` (``jwt.Import`` as monitor.go fills it, then its own fields)."""
    out: dict[str, Any] = {"subject": subject, "account": account}
    if service:
        out["to"] = local
    out["local_subject"] = local
    out["type"] = "service" if service else "stream"
    out |= {"invalid": False, "share": share, "tracking": tracking}
    lat = _latency(latency)
    if lat is not None:
        out["latency"] = lat
    return out


def _revoked(revocations: Mapping[str, int]) -> dict[str, str]:
    return {k: _go_time(revocations[k]) for k in sorted(revocations)}


def _sharing(b: Broker, key: str, acct: Account | None) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(exports, imports, pending responses) as ``accountInfo`` lists them."""
    exports: list[Any] = []
    imports: list[Any] = []
    responses: dict[str, Any] = {}
    links = acct.links if acct is not None else None
    if links is not None:
        for subject, se in links.service_exports.items():
            e: dict[str, Any] = {"subject": subject, "type": "service"}
            if se.auth is not None and se.auth.token_req:
                e["token_req"] = True
            e["response_type"] = _RESPONSE_TYPES.get(se.resp_type, se.resp_type)
            lat = _latency(se.latency)
            if lat is not None:
                e["service_latency"] = lat
            if se.auth is not None and se.auth.revocations:
                e["revoked_activations"] = _revoked(se.auth.revocations)
            exports.append(e)
        for subject, auth in links.stream_exports.items():
            e = {"subject": subject, "type": "stream"}
            if auth is not None and auth.token_req:
                e["token_req"] = True
            if auth is not None and auth.revocations:
                e["revoked_activations"] = _revoked(auth.revocations)
            exports.append(e)
        for st in links.streams:
            imports.append(_ext_import(st.from_, st.exporter.key, st.to, service=False))
        for sis in links.services.values():
            for si in sis:
                share = bool(si.claim is not None and si.claim.share)
                track = si.track if isinstance(si.track, Latency) else None
                ext = _ext_import(si.to, si.acc.key, si.from_, service=True, share=share, latency=track)
                imports.append(ext)
        for reply in sorted(links.responses):
            rsi = links.responses[reply]
            # (a pending response is tracked when its request was sampled for latency)
            tracked = rsi.track is not None
            responses[reply] = _ext_import(rsi.to, rsi.acc.key, rsi.from_, service=True, tracking=tracked)
    sys_key = b.config.system_account
    if sys_key:
        for local, subject, share in SYSTEM_IMPORTS if key != sys_key else SYSTEM_IMPORTS[:1]:
            imports.append(_ext_import(subject.format(key), sys_key, local, service=True, share=share))
    return exports, imports, responses


def account_info(b: Broker, name: str) -> dict[str, Any]:
    """monitor.go ``AccountInfo`` of an account the server has; raises :class:`MonitorError`
    (``Account <name> does not exist``) for another."""
    if name not in account_names(b):
        raise MonitorError(f"Account {name} does not exist", 500)
    acct = b.accounts.get(name)
    claims = acct.claims if acct is not None else b.lookup_account(name)
    now = time.time()
    # (the broker does not note when it applied a JWT: the JWT's issue time stands for it)
    doc: dict[str, Any] = {
        "account_name": name,
        "update_time": _go_time(claims.iat) if claims is not None and claims.iat else _ts(b.started),
    }
    if name == b.config.system_account:
        doc["is_system"] = True
    doc |= {
        "expired": bool(claims is not None and claims.is_expired(int(now))),
        "complete": True,
        "jetstream_enabled": False,
        "leafnode_connections": 0,
        "client_connections": len(acct.conns) if acct is not None else 0,
        "subscriptions": acct.router.count() if acct is not None else 0,
    }
    mapper = acct.mapper if acct is not None else None
    if mapper is not None and mapper.entries:
        doc["mappings"] = {
            m.src: [{"subject": tr.dest, "weight": w} for tr, w in m.dests]
            for m in sorted(mapper.entries, key=lambda m: m.src)
        }
    exports, imports, responses = _sharing(b, name, acct)
    if exports:
        doc["exports"] = exports
    if imports:
        doc["imports"] = imports
    if claims is not None:
        if claims.token:
            doc["jwt"] = claims.token
        doc["issuer_key"] = claims.iss
    doc["name_tag"] = account_name_tag(b, name)
    if claims is not None:
        if claims.tags:
            doc["tags"] = list(claims.tags)
        doc["decoded_jwt"] = claims.payload_json()
        vr = claims.validate(now=int(now))
        if vr.issues:
            doc["validation_result_jwt"] = [
                {"description": i.description, "blocking": i.blocking, "time_check": i.time_check}
                for i in vr.issues
            ]
        if claims.revocations:
            doc["revoked_user"] = _revoked(claims.revocations)
    doc["sublist_stats"] = sublist_stats([acct.router] if acct is not None else [])
    if responses:
        doc["responses"] = responses
    return doc


def _data_stats(msgs: int, size: int) -> dict[str, Any]:
    """events.go ``DataStats``: the client counts, and none by gateways, routes or leaf nodes."""
    zero = {"msgs": 0, "bytes": 0}
    return {"msgs": msgs, "bytes": size, "gateways": zero, "routes": dict(zero), "leafs": dict(zero)}


def account_stat(b: Broker, key: str) -> dict[str, Any]:
    """events.go ``AccountStat`` (``Account.statz``): connections, subscriptions, and what the
    account's clients sent (``received``: published) and were sent (``sent``: delivered), closed
    connections included."""
    acct = b.accounts.get(key)
    conns = acct.conns if acct is not None else set()
    closed = b.closed_clients.accounts.get(key) or [0, 0, 0, 0, 0]
    in_msgs, in_bytes, out_msgs, out_bytes = closed[0], closed[1], closed[2], closed[3]
    for c in conns:
        in_msgs += c.in_msgs
        in_bytes += c.in_bytes
        out_msgs += c.out_msgs
        out_bytes += c.out_bytes
    return {
        "acc": key,
        "name": account_name_tag(b, key),
        "conns": len(conns),
        "leafnodes": 0,
        "total_conns": len(conns),
        "num_subscriptions": acct.router.count() if acct is not None else 0,
        "sent": _data_stats(out_msgs, out_bytes),
        "received": _data_stats(in_msgs, in_bytes),
        "slow_consumers": closed[4],
    }


def account_statz(b: Broker, accounts: Iterable[str] = (), include_unused: bool = False) -> dict[str, Any]:
    """monitor.go ``AccountStatz``: the :func:`account_stat` of the named accounts the server
    has (all with none named), those without connections only with ``include_unused``."""
    names = account_names(b)
    wanted = list(accounts)
    if wanted:
        have = set(names)
        names = [n for n in wanted if n in have]
    stats = []
    for key in names:
        acct = b.accounts.get(key)
        if include_unused or (acct is not None and acct.conns):
            stats.append(account_stat(b, key))
    return {"server_id": b.server_key.public_key, "now": _ts(time.time()), "account_statz": stats}


# --- options: JSON bodies ($SYS requests) and query strings (HTTP) --------------------------------

#: Go field types of the options structs, by JSON key
_GO_TYPES = {bool: "bool", int: "int", str: "string", dict: "struct"}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}" if isinstance(value, float) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def decode_options(body: bytes, struct: str, fields: Mapping[str, type]) -> dict[str, Any]:
    """A request body as Go's ``json.Unmarshal`` reads it into an options struct: keys matched
    case-insensitively, unknown keys ignored, ``null`` leaving a field as it was. ``fields``
    maps JSON keys to ``bool``, ``int``, ``str``, ``list`` (of strings) or ``dict`` (an object,
    not looked into). Raises
    :class:`MonitorError` (400) for what Go refuses: malformed JSON, or a value of the wrong type
    (with Go's ``cannot unmarshal`` wording)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MonitorError(f"invalid JSON: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise MonitorError(f"json: cannot unmarshal {_json_kind(doc)} into Go value of type server.{struct}")
    lowered = {k.lower(): k for k in fields}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = key if key in fields else lowered.get(key.lower())
        if name is None or value is None:
            continue
        want = fields[name]
        ok = (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
            if want is list
            else isinstance(value, int) and not isinstance(value, bool)
            if want is int
            else isinstance(value, want)
        )
        if not ok:
            go_type = "[]string" if want is list else _GO_TYPES[want]
            got, where = _json_kind(value), f"Go struct field {struct}.{name} of type {go_type}"
            raise MonitorError(f"json: cannot unmarshal {got} into {where}")
        out[name] = value
    return out


_CONNZ_FIELDS: dict[str, type] = {
    "sort": str,
    "auth": bool,
    "subscriptions": bool,
    "subscriptions_detail": bool,
    "offset": int,
    "limit": int,
    "cid": int,
    "mqtt_client": str,
    "state": int,
    "user": str,
    "acc": str,
    "filter_subject": str,
}
_HEALTHZ_FIELDS: dict[str, type] = {
    "js-enabled": bool,
    "js-enabled-only": bool,
    "js-server-only": bool,
    "js-meta-only": bool,
    "account": str,
    "stream": str,
    "consumer": str,
    "details": bool,
}
_SUBSZ_FIELDS: dict[str, type] = {
    "offset": int,
    "limit": int,
    "subscriptions": bool,
    "account": str,
    "test": str,
}
#: the JSON keys of each endpoint's options (their EventOptions structs add the filter keys);
#: STATZ and INFO are the account services'
OPTION_FIELDS: dict[str, dict[str, type]] = {
    "CONNZ": _CONNZ_FIELDS,
    "HEALTHZ": _HEALTHZ_FIELDS,
    "VARZ": {},
    "SUBSZ": _SUBSZ_FIELDS,
    "ACCOUNTZ": {"account": str},
    "STATZ": {"accounts": list, "include_unused": bool},
    "INFO": {},
}


def connz_options(values: Mapping[str, Any]) -> ConnzOptions:
    return ConnzOptions(**{k: v for k, v in values.items() if k in _CONNZ_FIELDS})


def subsz_options(values: Mapping[str, Any]) -> SubszOptions:
    return SubszOptions(**{k: v for k, v in values.items() if k in _SUBSZ_FIELDS})


def healthz_options(values: Mapping[str, Any]) -> HealthzOptions:
    return HealthzOptions(**{k.replace("-", "_"): v for k, v in values.items() if k in _HEALTHZ_FIELDS})


def _go_q(text: str) -> str:
    """Go's ``%q`` of a plain string."""
    return orjson.dumps(text).decode()


def _go_parse_bool(param: str, text: str) -> bool:
    """Go's ``strconv.ParseBool`` as monitor.go ``decodeBool`` uses it."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    why = f"strconv.ParseBool: parsing {_go_q(text)}: invalid syntax"
    raise MonitorError(f"Error decoding boolean for '{param}': {why}")


def _go_parse_int(param: str, text: str, *, unsigned: bool = False) -> int:
    kind = "uint64" if unsigned else "int"
    try:
        value = int(text, 10)
        if unsigned and (value < 0 or text.startswith(("+", "-"))):
            raise ValueError
    except ValueError:
        fn = "ParseUint" if unsigned else "Atoi"
        why = f"strconv.{fn}: parsing {_go_q(text)}: invalid syntax"
        raise MonitorError(f"Error decoding {kind} for '{param}': {why}") from None
    return value


def _query_connz(q: Mapping[str, str]) -> ConnzOptions:
    """monitor.go ``HandleConnz``'s query parameters."""
    opts = ConnzOptions(sort=q.get("sort", ""), user=q.get("user", ""), acc=q.get("acc", ""))
    opts.mqtt_client = q.get("mqtt_client", "")
    if q.get("auth"):
        opts.auth = _go_parse_bool("auth", q["auth"])
    subs = q.get("subs", "")
    if subs.lower() == "detail":
        opts.subscriptions_detail = True
    elif subs:
        opts.subscriptions = _go_parse_bool("subs", subs)
    if q.get("offset"):
        opts.offset = _go_parse_int("offset", q["offset"])
    if q.get("limit"):
        opts.limit = _go_parse_int("limit", q["limit"])
    if q.get("cid"):
        opts.cid = _go_parse_int("cid", q["cid"], unsigned=True)
    state = q.get("state", "")
    if state:
        states = {"open": CONN_OPEN, "closed": CONN_CLOSED, "any": CONN_ALL, "all": CONN_ALL}
        if state.lower() not in states:
            raise MonitorError(f"Error decoding state for {state}")
        opts.state = states[state.lower()]
    return opts


def _query_subsz(q: Mapping[str, str]) -> SubszOptions:
    """monitor.go ``HandleSubsz``'s query parameters."""
    opts = SubszOptions(account=q.get("acc", ""), test=q.get("test", ""))
    if q.get("subs"):
        opts.subscriptions = _go_parse_bool("subs", q["subs"])
    if q.get("offset"):
        opts.offset = _go_parse_int("offset", q["offset"])
    if q.get("limit"):
        opts.limit = _go_parse_int("limit", q["limit"])
    return opts


def _query_healthz(q: Mapping[str, str]) -> HealthzOptions:
    opts = HealthzOptions(account=q.get("account", ""), stream=q.get("stream", ""))
    opts.consumer = q.get("consumer", "")
    for param in ("js-enabled", "js-enabled-only", "js-server-only", "js-meta-only", "details"):
        if q.get(param):
            setattr(opts, param.replace("-", "_"), _go_parse_bool(param, q[param]))
    return opts


def _http(b: Broker, path: str, query: Mapping[str, str]) -> tuple[int, Any]:
    """(status, JSON document) for a GET; raises :class:`MonitorError` for bad parameters. The
    request is counted in ``http_req_stats`` where nats-server counts it (/connz only once its
    parameters decode)."""
    stats = _state(b).http_req_stats
    if path == "/connz":
        opts = _query_connz(query)
        stats[path] = stats.get(path, 0) + 1
        return 200, connz(b, opts)
    if path == "/subscriptionsz":  # nats-server's alias, counted as /subsz
        path = "/subsz"
    stats[path] = stats.get(path, 0) + 1
    if path == "/varz":
        return 200, varz(b)
    if path == "/subsz":
        return 200, subsz(b, _query_subsz(query))
    if path == "/accountz":
        return 200, accountz(b, query.get("acc", ""))
    if path == "/accstatz":
        unused = _go_parse_bool("unused", query["unused"]) if query.get("unused") else False
        return 200, account_statz(b, include_unused=unused)
    if path == "/healthz":
        doc = healthz(b, _query_healthz(query))
        status = doc.pop("status_code")  # monitor.go: the code is the HTTP status, not a key
        return status, doc
    raise KeyError(path)


ROUTES = ("/varz", "/connz", "/healthz", "/subsz", "/subscriptionsz", "/accountz", "/accstatz")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}


async def start_monitor(broker: Broker, host: str, port: int) -> asyncio.base_events.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            target = parts[1] if len(parts) >= 2 else ""
            path, _, qs = target.partition("?")
            path = path.rstrip("/") or "/"
            ctype = "application/json"
            if len(parts) < 2 or parts[0] != "GET" or path not in ROUTES:
                status, body = 404, orjson.dumps({"error": f"unknown endpoint {path!r}"})
            else:
                query = {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}
                try:
                    status, doc = _http(broker, path, query)
                    body = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
                except MonitorError as exc:
                    status, body, ctype = 400, exc.message.encode(), "text/plain; charset=utf-8"
            writer.write(
                f"HTTP/1.0 {status} {_REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
