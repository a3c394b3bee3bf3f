"""The broker's monitoring data, in nats-server's JSON shapes, and the HTTP port that serves it.

One builder per endpoint (server/monitor.go, server/events.go), used by both transports:
``/varz``, ``/connz``, ``/healthz`` on the monitoring port (``-m``), and the system account's
``$SYS.REQ.SERVER.PING.<KIND>`` requests (broker/system.py), which wrap the same data in
nats-server's ``{"server", "data", "error"}`` envelope. Keys nats-server always writes are always
written (zero when the broker has nothing to count, such as routes); keys it leaves out when empty
are left out. Where the broker differs (no ``last_activity``/``idle``, no closed connections, the
trustkit ``data`` counters) docs/broker.md says so.

The HTTP responder is a tiny HTTP/1.0 server on asyncio streams (no framework on the broker's
loop); GET only.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from broker.sharing import subjects_collide
from broker.tls import DEFAULT_TLS_TIMEOUT, tls_version
from trustkit.errors import TrustkitError
from trustkit.jwt.decoder import decode
from trustkit.jwt.user import UserClaims

if TYPE_CHECKING:
    from broker.server import Broker, Conn

__all__ = [
    "ConnzOptions",
    "HealthzOptions",
    "MonitorError",
    "connz",
    "decode_options",
    "go_duration",
    "healthz",
    "idz",
    "rfc3339nano",
    "start_monitor",
    "statsz",
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


def _sort_key(sort: str, now: float) -> tuple[Callable[[Conn], Any], bool] | None:
    """(key, descending) as monitor.go sorts, or None for the order by cid."""
    if sort in ("", "cid", "start"):
        return None
    keys: dict[str, tuple[Callable[[Conn], Any], bool]] = {
        "subs": (lambda c: len(c.subs), True),
        "pending": (_pending, True),
        "msgs_to": (lambda c: c.out_msgs, True),
        "msgs_from": (lambda c: c.in_msgs, True),
        "bytes_to": (lambda c: c.out_bytes, True),
        "bytes_from": (lambda c: c.in_bytes, True),
        "uptime": (lambda c: now - c.started, False),
        "rtt": (lambda c: c.rtt, True),
    }
    if sort not in keys:
        # (last, idle) need each connection's last activity, which the broker does not track
        raise MonitorError(f"sorting by {sort} is not supported by trustkit-broker", 500)
    return keys[sort]


def _pending(c: Conn) -> int:
    return c.transport.get_write_buffer_size() if c.transport else 0


def connz(b: Broker, opts: ConnzOptions | None = None) -> dict[str, Any]:
    """nats-server's ``Connz`` of the open connections, with its options (sort, paging, auth
    details, subscription lists, filters by cid, user, account and subject). Raises
    :class:`MonitorError` for what nats-server refuses, and for closed connections (not kept)."""
    opts = opts or ConnzOptions()
    sort = opts.sort
    if sort and sort not in SORT_OPTIONS:
        raise MonitorError(f"invalid sorting option: {sort}", 500)
    offset = max(opts.offset, 0)
    limit = opts.limit if opts.limit > 0 else DEFAULT_CONN_LIST_SIZE
    if sort == "stop" and opts.state != CONN_CLOSED:
        raise MonitorError("sort by stop only valid on closed connections", 500)
    if sort == "reason" and opts.state != CONN_CLOSED:
        raise MonitorError("sort by reason only valid on closed connections", 500)
    if opts.state != CONN_OPEN:
        raise MonitorError("closed connections are not kept by trustkit-broker", 500)
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
    conns = [c for c in b.conns if c.account is not None]
    if opts.acc:
        conns = [c for c in conns if c.account is not None and c.account.key == opts.acc]
    doc["server_id"] = b.server_key.public_key
    doc["total"] = len(conns)
    if opts.cid > 0:
        conns = [c for c in b.conns if c.cid == opts.cid and c.account is not None]
    else:
        if opts.user:
            conns = [c for c in conns if raw_auth_user(c) == opts.user]
        if opts.mqtt_client:
            conns = []  # no MQTT clients
    if flt:
        conns = [c for c in conns if any(subjects_collide(flt, s.subject) for s in c.subs.values())]
    if not conns:
        doc["connections"] = []
        return doc
    conns.sort(key=lambda c: c.cid)
    if sort_key is not None:
        key, descending = sort_key
        conns.sort(key=key, reverse=descending)
    lo = min(offset, len(conns))
    page = conns[lo : lo + min(limit, len(conns) - lo)]
    doc["connections"] = [_conn(b, c, now, opts) for c in page]
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
        "rtt": go_duration(c.rtt),
        "uptime": uptime(now - c.started),
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
                {"subject": s.subject}
                | ({"qgroup": s.queue} if s.queue else {})
                | {"sid": s.sid, "msgs": s.delivered}
                | ({"max": s.max} if s.max else {})
                | {"cid": c.cid}
                for s in c.subs.values()
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


def _bearer(token: str) -> bool:
    """monitor.go ``redactBearerJWT``: a bearer token's JWT is not shown."""
    try:
        return decode(token, UserClaims).bearer_token
    except TrustkitError:
        return False


# --- options: JSON bodies ($SYS requests) and query strings (HTTP) --------------------------------

#: Go field types of the options structs, by JSON key
_GO_TYPES = {bool: "bool", int: "int", str: "string"}


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
    maps JSON keys to ``bool``, ``int``, ``str`` or ``list`` (of strings). Raises
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
#: the JSON keys of each endpoint's options (their EventOptions structs add the filter keys)
OPTION_FIELDS: dict[str, dict[str, type]] = {"CONNZ": _CONNZ_FIELDS, "HEALTHZ": _HEALTHZ_FIELDS, "VARZ": {}}


def connz_options(values: Mapping[str, Any]) -> ConnzOptions:
    return ConnzOptions(**{k: v for k, v in values.items() if k in _CONNZ_FIELDS})


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
    stats[path] = stats.get(path, 0) + 1
    if path == "/varz":
        return 200, varz(b)
    if path == "/healthz":
        doc = healthz(b, _query_healthz(query))
        status = doc.pop("status_code")  # monitor.go: the code is the HTTP status, not a key
        return status, doc
    raise KeyError(path)


ROUTES = ("/varz", "/connz", "/healthz")
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
