"""The system account's claims requests, answered as nats-server answers them.

nats-server's account resolvers subscribe, in the system account, to (server/accounts.go,
server/events.go):

| subject | full | cache | MEMORY |
|---|---|---|---|
| ``$SYS.REQ.ACCOUNT.<A>.CLAIMS.UPDATE`` and legacy ``$SYS.ACCOUNT.<A>.CLAIMS.UPDATE`` | yes | yes | yes |
| ``$SYS.REQ.CLAIMS.UPDATE`` | yes | yes | |
| ``$SYS.REQ.ACCOUNT.<A>.CLAIMS.LOOKUP`` (the raw JWT, or an empty message) | yes | | |
| ``$SYS.REQ.CLAIMS.PACK`` (one ``<A>|<jwt>`` message per account, then an empty one) | yes | | |
| ``$SYS.REQ.CLAIMS.LIST`` (``{"data":[…],"server":{…}}``) | yes | yes | |
| ``$SYS.REQ.CLAIMS.DELETE`` (operator-signed generic JWT, ``allow_delete``) | yes | yes | |

:class:`SystemRequests` answers exactly that set, with the same reply bodies and texts; a subject
outside it gets no answer (a requester with headers then sees no-responders, as with
nats-server). :class:`JwtDir` is the resolver directory with ``DirJWTStore``'s rules
(server/dirstore.go): one ``<A>.jwt`` file per account, written atomically; a store hash that is the
XOR of the SHA-256 of every stored JWT (what ``PACK`` compares); deletes that rename to
``<A>.jwt.deleted`` or, with ``hard_delete``, remove the file.

It also answers the server's own services (server/events.go ``initEventTracking``), with the data
of broker/monitor.py in nats-server's ``{"server", "data", "error"}`` envelope:

- ``$SYS.REQ.USER.INFO``, from every account (nats-server imports it from the system account and
  shares the requester's details): the ``UserInfo`` of the requesting client;
- ``$SYS.REQ.USER.<A>.INFO`` (system account): ``UserInfo`` from the request's own
  ``Nats-Request-Info`` header;
- ``$SYS.REQ.SERVER.PING`` (system account): ``{"server", "statsz"}``;
- ``$SYS.REQ.SERVER.PING.<KIND>`` and ``$SYS.REQ.SERVER.<id>.<KIND>`` for IDZ (a bare
  ``ServerID``), STATSZ, VARZ, CONNZ, SUBSZ, ACCOUNTZ and HEALTHZ (system account);
- ``$SYS.REQ.ACCOUNT.<A>.CONNZ`` (system account): the envelope with ``<A>``'s connections; other
  accounts import it as ``$SYS.REQ.SERVER.PING.CONNZ`` and ``$SYS.REQ.ACCOUNT.PING.CONNZ``, for
  their own connections;
- ``$SYS.REQ.ACCOUNT.<A>.SUBSZ|INFO|STATZ`` (system account): ``<A>``'s subscriptions, its
  ``AccountInfo``, its ``AccountStatz``; ``$SYS.REQ.ACCOUNT.PING.STATZ`` for every account in use
  (other accounts import it for their own); ``$SYS.REQ.ACCOUNT.<A>.CONNS``: the
  ``AccountNumConns`` event as the reply.

And it publishes, in the system account, nats-server's events (events.go):

- ``$SYS.ACCOUNT.<A>.CONNECT`` when a client is admitted and ``$SYS.ACCOUNT.<A>.DISCONNECT`` (with
  ``sent``/``received`` counts and the ``ClosedState`` text as ``reason``) when it goes
  (``accountConnectEvent``, ``accountDisconnectEvent``); a client refused at CONNECT goes as a
  disconnect of ``$G``, as nats-server's clients start in the global account, one refused at its
  account's connection limit as a disconnect of that account;
- ``$SYS.ACCOUNT.<A>.SERVER.CONNS`` and the old ``$SYS.SERVER.ACCOUNT.<A>.CONNS``
  (``AccountNumConns``) when an account's connection count changes, and again every 30 s while it
  has connections (``accConnsUpdate``; never for ``$G``);
- ``$SYS.SERVER.<id>.CLIENT.AUTH.ERR`` for a client refused for its credentials
  (``sendAuthErrorEvent``);
- ``$SYS.SERVER.<id>.STATSZ`` on nats-server's statsz heartbeat, and ``$SYS.SERVER.<id>.SHUTDOWN``
  when the broker stops, after which no event is sent (``shutdownEventing``).

An event is built only when a system-account subscription matches its subject.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from broker import monitor
from broker import protocol as P
from broker.sharing import _Nuid
from trustkit import nkeys
from trustkit.errors import BrokerError, ClaimTypeError, TokenError, TokenSignatureError, TrustkitError
from trustkit.jwt.account import AccountClaims
from trustkit.jwt.decoder import decode
from trustkit.jwt.generic import GenericClaims
from trustkit.nkeys import PrefixByte
from trustkit.store.fsio import atomic_write, ensure_dir, fsync_dir, remove_file

if TYPE_CHECKING:
    from broker.server import Account, Broker, Conn

__all__ = ["JwtDir", "JwtStoreError", "SystemRequests", "apply_account_update"]

UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
LIST = "$SYS.REQ.CLAIMS.LIST"
PACK = "$SYS.REQ.CLAIMS.PACK"
DELETE = "$SYS.REQ.CLAIMS.DELETE"
USER_INFO = "$SYS.REQ.USER.INFO"
SERVER_PING = "$SYS.REQ.SERVER.PING"
#: what other accounts import from the system account (events.go registerSystemImports)
SERVER_PING_CONNZ = "$SYS.REQ.SERVER.PING.CONNZ"
ACCOUNT_PING_CONNZ = "$SYS.REQ.ACCOUNT.PING.CONNZ"
ACCOUNT_PING_STATZ = "$SYS.REQ.ACCOUNT.PING.STATZ"
#: the ``$SYS.REQ.SERVER.PING.<KIND>`` and ``$SYS.REQ.SERVER.<id>.<KIND>`` services answered here
SERVER_KINDS = ("IDZ", "STATSZ", "VARZ", "CONNZ", "SUBSZ", "ACCOUNTZ", "HEALTHZ")
#: the ``$SYS.REQ.ACCOUNT.<A>.<KIND>`` services answered here (events.go ``monAccSrvc``)
ACCOUNT_KINDS = ("CONNZ", "SUBSZ", "INFO", "STATZ", "CONNS")
REQUEST_INFO = b"Nats-Request-Info"
#: ``EventFilterOptions``: every request's body may carry them; a server they exclude stays silent
FILTER_FIELDS: dict[str, type] = {
    "server_name": str,
    "cluster": str,
    "host": str,
    "exact_match": bool,
    "tags": list,
    "domain": str,
}
_EVENT_OPTIONS = {
    "STATSZ": "StatszEventOptions",
    "VARZ": "VarzEventOptions",
    "CONNZ": "ConnzEventOptions",
    "SUBSZ": "SubszEventOptions",
    "ACCOUNTZ": "AccountzEventOptions",
    "HEALTHZ": "HealthzEventOptions",
    "INFO": "AccInfoEventOptions",
    "STATZ": "AccountStatzEventOptions",
}
NO_LIMIT = -1
_EXT = ".jwt"
#: What nats-server sends a client of a deleted account before closing it (client.go).
ERR_ACCOUNT_EXPIRED = "Account Authentication Expired"
#: ... and a client its account has no room for (client.go maxAccountConnExceeded)
ERR_ACCOUNT_LIMIT = "maximum account active connections exceeded"
CONNECT_EVENT = "io.nats.server.advisory.v1.client_connect"
DISCONNECT_EVENT = "io.nats.server.advisory.v1.client_disconnect"
CONNS_EVENT = "io.nats.server.advisory.v1.account_connections"
#: nats-server's statsz heartbeat (events.go startStatszTimer, heartbeatStatsz, limitStatsz): the
#: first after 250 ms, each interval twice the last up to ``statsHBInterval``, none within
#: ``statszRateLimit`` (or the current interval, if shorter) of the last; seconds
STATSZ_FIRST = 0.25
STATSZ_INTERVAL = 10.0
STATSZ_RATE_LIMIT = 1.0
#: how early a rate-limited statsz may come (the event loop runs a timer up to its clock
#: resolution early; Go's timers are never early)
STATSZ_SLACK = 0.005
#: ``eventsHBInterval``: an account's connection count is sent again this long after the last
#: time, while it has connections (events.go sendAccConnsUpdate); seconds
CONNS_INTERVAL = 30.0
#: a connection closed by the server without an -ERR because it did not read (Conn.flush)
SLOW_CONSUMER = "Slow Consumer"
#: a connection closed by Broker.close
SERVER_SHUTDOWN = "Server Shutdown"
#: a connection whose TLS handshake failed (or timed out)
TLS_HANDSHAKE_FAILED = "TLS Handshake Failure"
#: a connection the client reset (a read failed; an orderly close is "Client Closed")
READ_ERROR = "Read Error"
#: a connection closed because the client sent ``-ERR`` (client.go processErr: nothing is sent)
CLIENT_ERR = "-ERR"
#: the start of the parser's message for a client's ``-ERR`` (broker/protocol.py)
_CLIENT_ERROR_MESSAGE = "Client Error "
#: why the server closed a connection (``Conn.close_reason``: the ``-ERR`` text it sent, or one of
#: the names above) -> nats-server's ``ClosedState`` text (monitor.go)
CLOSED_STATES = {
    P.ERR_AUTHORIZATION: "Authentication Failure",
    "Authentication Timeout": "Authentication Timeout",
    "User Authentication Expired": "Authentication Expired",
    ERR_ACCOUNT_EXPIRED: "Authentication Expired",
    "User Authentication Revoked": "Credentials Revoked",
    "maximum connections exceeded": "Maximum Connections Exceeded",
    ERR_ACCOUNT_LIMIT: "Maximum Account Connections Exceeded",
    "maximum subscriptions exceeded": "Maximum Subscriptions Exceeded",
    P.ERR_MAX_PAYLOAD: "Maximum Message Payload Exceeded",
    P.ERR_MAX_CONTROL_LINE: "Maximum Control Line Exceeded",
    # client.go readLoop: a parser error other than these closes with ProtocolViolation
    P.ERR_UNKNOWN_PROTOCOL: "Protocol Violation",
    "Stale Connection": "Stale Connection",
    "invalid client protocol": "Bad Client Protocol Version",
    "no responders requires headers support": "No Responders Requires Headers",
    SLOW_CONSUMER: "Slow Consumer (Pending Bytes)",
    SERVER_SHUTDOWN: "Server Shutdown",
    TLS_HANDSHAKE_FAILED: "TLS Handshake Failure",
    READ_ERROR: "Read Error",
    CLIENT_ERR: "Parse Error",
    "": "Protocol Violation",  # closed by the server without an -ERR of its own: a protocol error
}


def protocol_close_reason(exc: P.ProtocolError) -> str:
    """``Conn.close_reason`` for a connection closed by a protocol error: the ``-ERR`` text it
    sends, :data:`CLIENT_ERR` for the client's own ``-ERR``, else ``""`` (closed without one)."""
    if exc.err_text is not None:
        return exc.err_text
    return CLIENT_ERR if exc.message.startswith(_CLIENT_ERROR_MESSAGE) else ""


class JwtStoreError(BrokerError):
    code = "jwt_store"


class JwtDir:
    """A resolver directory with nats-server's ``DirJWTStore`` rules (server/dirstore.go).

    The JWTs live in memory as well, so answering a request never reads the disk; every change
    is written through (atomically) before it is acknowledged. ``delete``: ``None`` (refused),
    ``"rename"`` or ``"hard"``. ``limit``: how many JWTs may be stored (0: unlimited); past it a
    new account is refused (``jwt store is full``), or, with ``evict`` (the cache resolver), the
    least recently written one is dropped.
    """

    def __init__(self, directory: Path, *, delete: str | None, limit: int = 0, evict: bool = False) -> None:
        self.directory = directory
        self.delete_mode = delete
        self.limit = limit
        self.evict = evict
        self._jwts: OrderedDict[str, bytes] = OrderedDict()
        self._exp: dict[str, int] = {}
        self._hash = bytearray(32)
        ensure_dir(directory)
        # nats-server indexes every *.jwt file at start (names need not be account keys)
        for path in sorted(directory.glob("*" + _EXT)):
            try:
                data = path.read_bytes()
            except OSError:
                continue
            self._track(path.name[: -len(_EXT)], data)

    # --- the index (hash, expiry) ---------------------------------------------------------
    def _track(self, key: str, data: bytes) -> None:
        old = self._jwts.pop(key, None)
        if old is not None:
            self._xor(old)
        self._jwts[key] = data
        self._xor(data)
        self._exp[key] = _expiry(data)

    def _untrack(self, key: str) -> None:
        old = self._jwts.pop(key, None)
        if old is not None:
            self._xor(old)
        self._exp.pop(key, None)

    def _xor(self, data: bytes) -> None:
        for i, b in enumerate(hashlib.sha256(data).digest()):
            self._hash[i] ^= b

    def hash(self) -> bytes:
        """XOR of the SHA-256 of every stored JWT (``DirJWTStore.Hash``); 32 zero bytes when empty."""
        return bytes(self._hash)

    def __contains__(self, key: object) -> bool:
        return key in self._jwts

    def load(self, key: str) -> bytes | None:
        """The stored JWT exactly as written, or None."""
        return self._jwts.get(key)

    def entries(self, now: int) -> list[tuple[str, str]]:
        """(key, JWT) in file-name order, as ``PackWalk`` yields them: empty and expired JWTs skipped."""
        out = []
        for key in sorted(self._jwts, key=lambda k: k + _EXT):
            data = self._jwts[key]
            exp = self._exp.get(key, 0)
            if not data or (exp > 0 and exp < now):
                continue
            out.append((key, data.decode("utf-8", "replace")))
        return out

    # --- changes --------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        if not nkeys.is_valid_public_key(key):
            raise JwtStoreError("invalid public key")
        return self.directory / (key + _EXT)

    def save(self, key: str, token: str) -> bool:
        """Store ``token`` (``DirJWTStore.save``): overwrite unless identical; True if it changed.

        Raises :class:`JwtStoreError` with nats-server's texts (``invalid public key``,
        ``invalid JWT``, ``jwt store is full``) or a write failure (then nothing is stored).
        """
        old = self._jwts.get(key)
        write = self.stage(key, token)
        if write is None:
            return False
        try:
            write()
        except JwtStoreError:
            if old is None:
                self._untrack(key)
            else:
                self._track(key, old)
            raise
        return True

    def stage(self, key: str, token: str) -> Callable[[], None] | None:
        """The in-memory half of :meth:`save`: the checks, and the index updated at once (LOOKUP,
        LIST and PACK answer from it). Returns the disk half (remove an evicted account's file,
        write this one atomically), to be run in order, off the event loop; None when ``token`` is
        stored already. Both halves raise :class:`JwtStoreError` as :meth:`save` does."""
        path = self._path(key)
        data = token.encode()
        if not data:
            raise JwtStoreError("invalid JWT")
        evicted: Path | None = None
        if key in self._jwts:
            if self._jwts[key] == data:
                return None
        elif self.limit > 0 and len(self._jwts) >= self.limit:
            if not self.evict:
                raise JwtStoreError("jwt store is full")
            oldest = next(iter(self._jwts))
            evicted = self.directory / (oldest + _EXT)
            self._untrack(oldest)
        self._track(key, data)

        def write() -> None:
            try:
                if evicted is not None:
                    remove_file(evicted, missing_ok=True)
                atomic_write(path, data)
            except TrustkitError as exc:
                raise JwtStoreError(exc.message) from None

        return write

    def save_if_newer(self, key: str, token: str) -> bool:
        """``DirJWTStore.saveIfNewer`` (preloads): keep the stored JWT if it has the same ``jti``
        or a later ``iat``. True if ``token`` was written. Raises :class:`JwtStoreError` for an
        undecodable ``token`` or one whose subject is not ``key``."""
        old = self._jwts.get(key)
        if old is not None:
            try:
                new_claims = decode(token)
            except TrustkitError as exc:
                raise JwtStoreError(exc.message) from None
            try:
                old_claims = decode(old.decode("utf-8", "strict"))
            except (TrustkitError, UnicodeDecodeError):
                old_claims = None  # an undecodable stored JWT is replaced
            if old_claims is not None:
                if old_claims.jti == new_claims.jti or old_claims.iat > new_claims.iat:
                    return False
                if new_claims.sub != key:
                    raise JwtStoreError("jwt subject nkey and provided nkey do not match")
                if old_claims.sub != new_claims.sub:
                    raise JwtStoreError("subject of existing and new jwt do not match")
        return self.save(key, token)

    def expire(self, now: int) -> Callable[[], None] | None:
        """Forget every JWT whose ``exp`` is at or before ``now`` (DirJWTStore's expiration
        tracker, which nats-server runs every minute) and return the disk half: remove their
        files, off the event loop, in order with the writes. None when nothing has expired."""
        gone = [key for key, exp in self._exp.items() if 0 < exp <= now]
        if not gone:
            return None
        paths = [self.directory / (key + _EXT) for key in gone]
        for key in gone:
            self._untrack(key)

        def remove() -> None:
            try:
                for path in paths:
                    remove_file(path, missing_ok=True)
            except TrustkitError as exc:
                raise JwtStoreError(exc.message) from None

        return remove

    def delete(self, key: str) -> bool:
        """Rename to ``<key>.jwt.deleted`` (or remove, ``hard``); True if an account was removed,
        False if none was stored. Raises :class:`JwtStoreError` when deletes are not enabled."""
        if self.delete_mode is None:
            raise JwtStoreError("store is not set up to for delete")  # sic, dirstore.go
        path = self._path(key)
        try:
            if self.delete_mode == "rename":
                os.replace(path, path.with_name(path.name + ".deleted"))
                fsync_dir(self.directory)
            else:
                path.unlink()
                fsync_dir(self.directory)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise JwtStoreError(f"cannot delete {path.name}: {exc.strerror}") from None
        self._untrack(key)
        return True


def _run(job: Callable[[], None] | None) -> str | None:
    """Run a store write on the writer thread: None, or what went wrong."""
    if job is None:
        return None
    try:
        job()
    except TrustkitError as exc:
        return exc.message
    except OSError as exc:
        return str(exc)
    return None


def _expiry(data: bytes) -> int:
    """``exp`` of a stored JWT, 0 if none or undecodable (``jwt.DecodeGeneric`` as dirstore.go uses)."""
    try:
        return decode(data.decode("utf-8", "strict")).exp or 0
    except (TokenError, UnicodeDecodeError):
        return 0


def _go_decode_error(token: str, exc: TrustkitError, *, account: bool) -> str:
    """The error text Go's ``jwt.Decode*`` gives for the common failures; trustkit's otherwise."""
    if len(token.split(".")) != 3:
        return "expected 3 chunks"
    if isinstance(exc, TokenSignatureError):
        return "claim failed V2 signature verification"
    if account and isinstance(exc, ClaimTypeError):
        return "not account claim"
    return exc.message


_rfc3339nano = monitor.rfc3339nano


def _request_info(headers: bytes | None) -> dict[str, Any] | None:
    """The ``Nats-Request-Info`` header's ``ClientInfo`` (``getRequestInfo``): {} when there is
    none, None when it is not a JSON object."""
    if not headers:
        return {}
    i = headers.find(b"\r\n" + REQUEST_INFO + b":")
    if i < 0:
        return {}
    end = headers.find(b"\r\n", i + 2)
    try:
        value = orjson.loads(headers[i + len(REQUEST_INFO) + 3 : end if end >= 0 else None].strip())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    # the string fields of ClientInfo: another JSON type fails Go's unmarshal
    if any(not isinstance(value.get(k, ""), str) for k in _CLIENT_INFO_STRINGS):
        return None
    return value


_CLIENT_INFO_STRINGS = (
    "start", "host", "acc", "svc", "user", "name", "lang", "ver", "server", "cluster", "stop", "jwt",
    "issuer_key", "name_tag", "kind", "client_type", "client_id", "nonce", "reply",
)  # fmt: skip


def public_permissions(conn: Conn) -> dict[str, Any] | None:
    """client.go ``publicPermissions``: the connection's permissions as nats-server reports them
    (subscribe entries with a queue as ``"<subject> <queue>"``; ``responses`` with the defaults
    applied), or None for a connection without permissions."""
    grant = conn.grant
    if grant is None or grant.permissions.unrestricted:
        return None
    perms = grant.permissions
    pub: dict[str, Any] = {}
    if perms.pub.allow:
        pub["allow"] = list(perms.pub.allow)
    if perms.pub.deny:
        pub["deny"] = list(perms.pub.deny)
    sub: dict[str, Any] = {}
    for kind, entries, queues in (
        ("allow", perms.sub.allow, perms.sub.allow_queues),
        ("deny", perms.sub.deny, perms.sub.deny_queues),
    ):
        if entries:
            plain = list(entries[: len(entries) - len(queues)])
            sub[kind] = plain + [f"{subject} {queue}" for subject, queue in queues]
    out: dict[str, Any] = {"publish": pub, "subscribe": sub}
    if perms.resp_max is not None:
        out["responses"] = {"max": perms.resp_max, "ttl": perms.resp_ttl_ns or 0}
    return out


def claim_expiration(conn: Conn, now: float) -> int:
    """client.go ``claimExpiration``: nanoseconds until the user's JWT (or time window) ends,
    truncated to whole seconds; 0 without one."""
    grant = conn.grant
    if grant is None or grant.expires_at is None:
        return 0
    return max(int(grant.expires_at - now), 0) * 1_000_000_000


def apply_account_update(broker: Broker, claims: AccountClaims) -> None:
    """Live effect of a new account JWT: revoked users are disconnected, limits re-applied, and
    its mappings, exports and imports rebuilt, with the imports of the accounts that import from
    it re-checked (broker/sharing.py: a revoked activation stops its import at once)."""
    acct = broker.accounts.get(claims.sub)
    if acct is None:
        broker.sharing.account_updated(claims.sub)  # not loaded, but maybe imported from
        return
    acct.claims = claims
    broker.sharing.account_updated(claims.sub)
    conns = sorted(acct.conns, key=lambda c: c.cid)
    limit = claims.limits.conn
    for i, conn in enumerate(conns):
        grant = conn.grant
        if grant is None:
            continue
        if grant.is_revoked_by(claims):
            conn.error_close("User Authentication Revoked")
        elif grant.limits.bearer_token and claims.limits.disallow_bearer:
            conn.error_close(P.ERR_AUTHORIZATION)
        elif grant.signing_key != claims.sub and grant.signing_key not in claims.signing_keys:
            conn.error_close(P.ERR_AUTHORIZATION)  # its signing key was removed
        elif limit != NO_LIMIT and i >= limit:
            conn.error_close("maximum account active connections exceeded")


class SystemRequests:
    """The broker's system-account responders for the claims requests (one per broker)."""

    def __init__(self, broker: Broker, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.broker = broker
        self.clock = clock
        self.seq = 0
        # JWT files are written by one thread, in request order, off the event loop (an fsync
        # would stall every connection); replies keep the request order behind those writes
        self._writer: ThreadPoolExecutor | None = None
        self._pending = 0
        self._ids: _Nuid | None = None  # advisory ids, made on first use
        # events (start_events, shutdown_events): off once the broker shuts down; the statsz
        # heartbeat's timer, interval and last send (loop time); each account's connection-count
        # heartbeat
        self._stopped = False
        self._statsz_timer: asyncio.TimerHandle | None = None
        self._cstatsz = STATSZ_FIRST
        self._last_statsz = -math.inf
        self._conns_timers: dict[str, asyncio.TimerHandle] = {}
        cfg = broker.config
        self.kind = cfg.resolver if cfg.operator_mode else None  # "memory" | "full" | "cache" | None
        self.store: JwtDir | None = None
        if self.kind in ("full", "cache") and cfg.resolver_dir is not None:
            full = self.kind == "full"
            delete = ("hard" if cfg.hard_delete else "rename") if (full and cfg.allow_delete) else None
            self.store = JwtDir(
                cfg.resolver_dir,
                delete=delete if full else "hard",  # the cache store always hard-deletes
                limit=cfg.resolver_limit if full else (cfg.resolver_limit or 1000),
                evict=not full,
            )
            # nats-server stores preloads in the directory too (saveIfNewer), so LIST and PACK
            # show them; whichever JWT wins is the one the resolver serves
            for key, token in cfg.preload.items():
                try:
                    if self.store.save_if_newer(key, token) and broker.resolver is not None:
                        broker.resolver.store(token)
                except TrustkitError as exc:
                    broker.log(f"preload {key}: {exc.message}")

    # --- dispatch -------------------------------------------------------------------------
    def handle(
        self, subject: str, reply: str | None, headers: bytes | None, payload: bytes, conn: Conn | None = None
    ) -> bool:
        """Answer a ``$SYS.`` request that ``conn`` published (None: the system account itself).
        True if nats-server has a responder for ``subject`` in the publisher's account (with or
        without a reply), False if nobody listens."""
        b = self.broker
        sys_key = b.config.system_account
        if not self.events_enabled():
            return False
        if conn is not None and conn.account is not None and conn.account.key != sys_key:
            return self._imported(subject, reply, headers, payload, conn, conn.account)
        account = conn.account if conn is not None else b.accounts.get(sys_key or "")
        services = subject.startswith(("$SYS.REQ.SERVER.", "$SYS.REQ.USER.", "$SYS.REQ.ACCOUNT."))
        if services and account is not None:
            if self._service(subject, reply, headers, payload, conn, account):
                return True
        kind = self.kind
        if kind is None:
            return False
        # as nats-server's handlers see a message: CLAIMS.UPDATE, DELETE and the MEMORY
        # resolver's account update strip the headers; the others get headers + payload as one
        raw = (headers or b"") + payload
        toks = subject.split(".")
        if len(toks) == 6 and toks[:3] == ["$SYS", "REQ", "ACCOUNT"] and toks[4] == "CLAIMS":
            if toks[5] == "UPDATE":
                self._account_update(toks[3], reply, raw if kind != "memory" else payload)
                return True
            if toks[5] == "LOOKUP" and kind == "full":
                self._lookup(toks[3], reply)
                return True
            return False
        if len(toks) == 5 and toks[:2] == ["$SYS", "ACCOUNT"] and toks[3:] == ["CLAIMS", "UPDATE"]:
            self._account_update(toks[2], reply, raw if kind != "memory" else payload)
            return True
        if kind == "memory":
            return False
        if subject == UPDATE:
            self._update(reply, payload)
        elif subject == LIST:
            self._list(reply)
        elif subject == DELETE:
            self._delete(reply, payload)
        elif subject == PACK and kind == "full":
            self._pack(reply, raw)
        else:
            return False
        return True

    # --- the server's services (events.go) ---------------------------------------------------
    def events_enabled(self) -> bool:
        """nats-server runs its system services when it has a system account: always in config
        mode (``$SYS``), and in operator mode when one is configured."""
        cfg = self.broker.config
        return not cfg.operator_mode or cfg.system_account is not None

    def _imported(
        self,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
        conn: Conn | None,
        account: Account,
    ) -> bool:
        """What every other account imports from the system account (``registerSystemImports``):
        ``USER.INFO`` (with the requester's details shared, so a ``Nats-Request-Info`` header the
        client sent is replaced), the two account-scoped CONNZ pings and the account STATZ ping
        (``$SYS.REQ.ACCOUNT.<its account>.CONNZ|STATZ``). The reply goes back in the requester's
        account."""
        if subject == USER_INFO:
            if reply:
                self._send_in(account, reply, self._user_info_reply(conn, self._client_info(conn, account)))
            return True
        if subject in (SERVER_PING_CONNZ, ACCOUNT_PING_CONNZ):
            self._z("CONNZ", reply, payload, account, scope=account.key)
            return True
        if subject == ACCOUNT_PING_STATZ:
            self._z("STATZ", reply, payload, account, scope=account.key)
            return True
        return False

    def _service(
        self,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
        conn: Conn | None,
        account: Account,
    ) -> bool:
        """The system account's own subscriptions for the server's services; False for a subject
        none of them takes."""
        toks = subject.split(".")
        if subject == USER_INFO:  # imported from itself, details shared, like any account
            return self._imported(subject, reply, headers, payload, conn, account)
        if len(toks) == 5 and toks[2] == "USER" and toks[4] == "INFO":  # ``$SYS.REQ.USER.*.INFO``
            if reply:
                info = _request_info(headers)  # a direct request: its own header, if any
                if info is None or not self._request_account_known(info):
                    body = orjson.dumps({"server": self.server_info(), "error": {"code": 400}})
                else:
                    body = self._user_info_reply(conn, info)
                self._send_in(account, reply, body)
            return True
        if subject == SERVER_PING:
            self._statsz(reply, payload, account)
            return True
        if subject == ACCOUNT_PING_STATZ:  # (``$SYS.REQ.ACCOUNT.*.STATZ`` leaves PING to this one)
            self._z("STATZ", reply, payload, account)
            return True
        if len(toks) == 5 and toks[2] == "ACCOUNT" and toks[4] in ACCOUNT_KINDS:
            if toks[4] == "CONNS":
                self._conns_request(toks[3], reply, payload, account)
            else:
                self._z(toks[4], reply, payload, account, scope=toks[3])
            return True
        if len(toks) == 5 and toks[2] == "SERVER" and toks[4] in SERVER_KINDS:
            if toks[3] != "PING" and toks[3] != self.broker.server_key.public_key:
                return False
            kind = toks[4]
            if kind == "STATSZ":
                self._statsz(reply, payload, account)
            elif kind == "IDZ":
                if reply:
                    self._send_in(account, reply, orjson.dumps(monitor.idz(self.broker)))
            else:
                self._z(kind, reply, payload, account)
            return True
        return False

    def _request_account_known(self, info: dict[str, Any]) -> bool:
        """``getRequestInfo``: a ``ClientInfo`` that names a service account (``svc``), else an
        account (``acc``), the server does not know is refused (``ErrMissingAccount``)."""
        for key in ("svc", "acc"):
            name = info.get(key)
            if name:
                return isinstance(name, str) and monitor.account_known(self.broker, name)
        return True

    def _client_info(self, conn: Conn | None, account: Account) -> dict[str, Any]:
        """The ``ClientInfo`` nats-server shares with an imported request (``getClientInfo``):
        the account, the raw auth user and the user JWT's name."""
        info: dict[str, Any] = {"acc": account.key}
        if conn is not None:
            info["user"] = monitor.raw_auth_user(conn)
            grant = conn.grant
            if grant is not None and grant.signing_key and grant.user.name:
                info["name_tag"] = grant.user.name  # a JWT user's name (config users have none)
        return info

    def _user_info_reply(self, conn: Conn | None, info: dict[str, Any]) -> bytes:
        """events.go ``userInfoReq``: ``UserInfo`` from the request's ``ClientInfo``, with the
        permissions and expiry of the connection that sent it."""
        acc = info.get("acc") if isinstance(info.get("acc"), str) else ""
        user = info.get("user") if isinstance(info.get("user"), str) else ""
        data: dict[str, Any] = {"user": user, "account": acc}
        if acc and monitor.account_known(self.broker, acc):
            data["account_name"] = monitor.account_name_tag(self.broker, acc)
        name_tag = info.get("name_tag")
        if isinstance(name_tag, str) and name_tag:
            data["user_name"] = name_tag
        if conn is not None:
            perms = public_permissions(conn)
            if perms is not None:
                data["permissions"] = perms
            expires = claim_expiration(conn, time.time())
            if expires:
                data["expires"] = expires
        return orjson.dumps({"server": self.server_info(), "data": data})

    def _options(self, kind: str, payload: bytes) -> dict[str, Any] | str | None:
        """A request body decoded into ``<KIND>EventOptions`` (an empty body: no options). A
        string is a 400 error's description; None means the filter excludes this server."""
        if not payload:
            return {}
        fields = FILTER_FIELDS | monitor.OPTION_FIELDS.get(kind, {})
        try:
            values = monitor.decode_options(payload, _EVENT_OPTIONS[kind], fields)
        except monitor.MonitorError as exc:
            return exc.message
        return None if self._filtered(values) else values

    def _filtered(self, values: dict[str, Any]) -> bool:
        """events.go ``filterRequest``: True if the request is not for this server (the broker
        is in no cluster and has no server tags and no JetStream domain)."""
        name, host, cluster = self.broker.info_base["server_name"], self.broker.config.host, ""
        pairs = (("server_name", name), ("host", host), ("cluster", cluster))
        want = [(values.get(k) or "", have) for k, have in pairs]
        if values.get("exact_match"):
            if any(w and w != have for w, have in want):
                return True
        elif any(w and w not in have for w, have in want):
            return True
        return bool(values.get("tags")) or bool(values.get("domain"))

    def _statsz(self, reply: str | None, payload: bytes, account: Account) -> None:
        """events.go ``statszReq``: ``{"server", "statsz"}``; without a reply it goes to the
        broadcast subject ``$SYS.SERVER.<id>.STATSZ``."""
        if not reply:
            reply = f"$SYS.SERVER.{self.broker.server_key.public_key}.STATSZ"
        values = self._options("STATSZ", payload)
        if values is None:
            return
        if isinstance(values, str):
            body = {"server": self.server_info(), "error": {"code": 400, "description": values}}
            self._send_in(account, reply, orjson.dumps(body))
            return
        doc = {"server": self.server_info(), "statsz": monitor.statsz(self.broker)}
        self._send_in(account, reply, orjson.dumps(doc))

    def _z(
        self, kind: str, reply: str | None, payload: bytes, account: Account, scope: str | None = None
    ) -> None:
        """events.go ``zReq``: ``{"server", "data"}``, or ``"error"`` with 400 (a body that does
        not decode) or 500 (the builder refused the options; ``data`` is then ``null``, as Go
        writes a nil result). ``scope``: the account of ``$SYS.REQ.ACCOUNT.<A>.<KIND>`` (or of an
        imported ping), whatever the options say. Some requests get no answer at all (an
        account STATZ with nothing to report)."""
        if not reply:
            return
        values = self._options(kind, payload)
        if values is None:
            return
        body: dict[str, Any]
        if isinstance(values, str):
            body = {"error": {"code": 400, "description": values}}
        else:
            try:
                data = self._build(kind, values, scope)
            except monitor.MonitorError as exc:
                body = {"data": None, "error": {"code": 500, "description": exc.message}}
            else:
                if data is None:
                    return
                body = {"data": data}
        self._send_in(account, reply, orjson.dumps({"server": self.server_info()} | body))

    def _build(self, kind: str, values: dict[str, Any], scope: str | None) -> dict[str, Any] | None:
        """The data of a ``zReq`` kind; None when nats-server answers nothing (``errSkipZreq``).
        Raises :class:`monitor.MonitorError` as the builders refuse."""
        b = self.broker
        if kind == "VARZ":
            return monitor.varz(b)
        if kind == "HEALTHZ":
            return monitor.healthz(b, monitor.healthz_options(values))
        if kind == "CONNZ":
            opts = monitor.connz_options(values)
            if scope is not None:
                opts.acc = scope
            return monitor.connz(b, opts)
        if kind == "SUBSZ":
            sopts = monitor.subsz_options(values)
            if scope is not None:  # the account service lists the account's subscriptions
                sopts.account, sopts.subscriptions = scope, True
            return monitor.subsz(b, sopts)
        if kind == "ACCOUNTZ":
            return monitor.accountz(b, values.get("account", ""))
        if kind == "INFO":
            assert scope is not None
            return monitor.account_info(b, scope)
        if kind == "STATZ":  # (``$SYS.REQ.ACCOUNT.PING.STATZ`` comes here without a scope)
            include_unused = bool(values.get("include_unused"))
            accounts = [scope] if scope is not None else values.get("accounts") or []
            stz = monitor.account_statz(b, accounts, include_unused)
            return stz if stz["account_statz"] or include_unused else None
        raise monitor.MonitorError(f"no {kind} service", 500)

    def _conns_request(self, key: str, reply: str | None, payload: bytes, account: Account) -> None:
        """``$SYS.REQ.ACCOUNT.<A>.CONNS`` (events.go ``connsRequest``): ``AccountNumConns`` of
        ``<A>`` when it is loaded and has connections; nothing otherwise, or for a body that is
        not an ``accNumConnsReq`` of the same account."""
        if not reply:
            return
        if payload:
            try:
                values = monitor.decode_options(payload, "accNumConnsReq", {"acc": str, "server": dict})
            except monitor.MonitorError:
                return
            if values.get("acc", key) != key:
                return
        acct = self.broker.accounts.get(key)
        if acct is None or not acct.conns:
            return
        doc = self._event_head(CONNS_EVENT, _rfc3339nano(self.clock()))
        doc["server"] = self.server_info()
        doc |= monitor.account_stat(self.broker, key)
        self._send_in(account, reply, orjson.dumps(doc))

    def _send_in(self, account: Account, reply: str, payload: bytes) -> None:
        self.broker.deliver(account, None, reply, None, None, payload)

    # --- events (events.go) -------------------------------------------------------------------
    # Every hook starts with the cheap test of _listening: nothing is built or timed unless the
    # system account has a subscription (a connect then costs a dict lookup).
    def _listening(self) -> Account | None:
        """The system account, if it has any subscription and events run; None otherwise."""
        b = self.broker
        sys_acct = b.accounts.get(b.config.system_account or "")
        if sys_acct is None or not sys_acct.router.count() or self._stopped or not self.events_enabled():
            return None
        return sys_acct

    def _event_subject(self, sys_acct: Account, conn: Conn, kind: str) -> tuple[str, str] | None:
        """(subject, account name) when a system-account subscription takes
        ``$SYS.ACCOUNT.<A>.<kind>``; None (nothing to build) otherwise."""
        acc = conn.account.key if conn.account is not None else monitor.GLOBAL_ACCOUNT
        subject = f"$SYS.ACCOUNT.{acc}.{kind}"
        if not sys_acct.router.has_interest(subject):
            return None
        return subject, acc

    def _event_client(self, conn: Conn, acc: str, stop: str = "") -> dict[str, Any]:
        """The ``ClientInfo`` of a connect advisory, or with ``stop`` of a disconnect one
        (``accountConnectEvent``, ``accountDisconnectEvent``), Go's ``omitempty`` applied."""
        info: dict[str, Any] = {
            "start": _rfc3339nano(int(conn.started * 1e9)),
            "host": conn.client_ip,
            "id": conn.cid,
            "acc": acc,
            "user": monitor.raw_auth_user(conn),
            "name": conn.name,
            "lang": conn.lang,
            "ver": conn.version,
        }
        if stop:
            info["rtt"] = conn.rtt
            info["stop"] = stop
        opts = conn.connect_opts or {}
        token = opts.get("jwt")
        if isinstance(token, str):
            info["jwt"] = token
        grant = conn.grant
        if grant is not None:  # issuerForClient: the key that signed the user JWT (none in config mode)
            info["issuer_key"] = grant.signing_key
            info["tags"] = list(grant.user.tags)
        info["name_tag"] = monitor.account_name_tag(self.broker, acc)
        info["kind"] = "Client"
        info["client_type"] = "nats"
        return {k: v for k, v in info.items() if v}

    def _publish_event(self, sys_acct: Account, subject: str, doc: dict[str, Any]) -> None:
        self.broker.deliver(sys_acct, None, subject, None, None, orjson.dumps(doc))

    def _event_head(self, type_: str, now: str) -> dict[str, Any]:
        """``TypedEvent``: type, a fresh id, the time."""
        if self._ids is None:
            self._ids = _Nuid()
        return {"type": type_, "id": self._ids.next(), "timestamp": now}

    def connect_event(self, conn: Conn) -> None:
        """A client was admitted (and added to its account): ``$SYS.ACCOUNT.<A>.SERVER.CONNS``
        (the account's new count), then ``$SYS.ACCOUNT.<A>.CONNECT``, if anybody listens."""
        sys_acct = self._listening()
        if sys_acct is None:
            return
        acct = conn.account
        if acct is not None:  # addClient's accConnsUpdate comes before the CONNECT advisory
            self._conns_changed(sys_acct, acct)
        target = self._event_subject(sys_acct, conn, "CONNECT")
        if target is None:
            return
        subject, acc = target
        doc = self._event_head(CONNECT_EVENT, _rfc3339nano(self.clock()))
        doc["server"] = self.server_info()
        doc["client"] = self._event_client(conn, acc)
        self._publish_event(sys_acct, subject, doc)

    def disconnect_event(self, conn: Conn) -> None:
        """A client connection went: if anybody listens, its account's new connection count,
        the auth-error advisory of a client closed with ``Authorization Violation``, and
        ``$SYS.ACCOUNT.<A>.DISCONNECT``: what it sent and received, and why it went
        (``Conn.close_reason``). That is nats-server's order (closeConnection removes the client
        from its account, authViolation then sends the auth error; the DISCONNECT comes from a
        goroutine of its own, usually last)."""
        sys_acct = self._listening()
        if sys_acct is None:
            return
        text = conn.close_reason
        acct = conn.account
        # a client refused at its account's connection limit was in the account (its advisory is
        # the account's) but never counted in it (client.go registerWithAccount)
        if acct is not None and not (text == ERR_ACCOUNT_LIMIT and conn.grant is None):
            self._conns_changed(sys_acct, acct)
        if text == P.ERR_AUTHORIZATION:  # client.go authViolation
            self._auth_error_event(sys_acct, conn)
        target = self._event_subject(sys_acct, conn, "DISCONNECT")
        if target is None:
            return
        subject, acc = target
        self._publish_event(sys_acct, subject, self._disconnect_doc(conn, acc))

    def _disconnect_doc(self, conn: Conn, acc: str) -> dict[str, Any]:
        """``DisconnectEventMsg`` (the DISCONNECT and auth-error advisories)."""
        now = _rfc3339nano(self.clock())
        reason = monitor.closed_state(conn.close_reason)
        doc = self._event_head(DISCONNECT_EVENT, now)
        doc["server"] = self.server_info()
        doc["client"] = self._event_client(conn, acc, now)
        doc["sent"] = {"msgs": conn.in_msgs, "bytes": conn.in_bytes}
        doc["received"] = {"msgs": conn.out_msgs, "bytes": conn.out_bytes}
        doc["reason"] = reason
        return doc

    def _auth_error_event(self, sys_acct: Account, conn: Conn) -> None:
        """``$SYS.SERVER.<id>.CLIENT.AUTH.ERR`` (events.go ``sendAuthErrorEvent``): the
        disconnect advisory of a client refused for its credentials, for the operator."""
        subject = f"$SYS.SERVER.{self.broker.server_key.public_key}.CLIENT.AUTH.ERR"
        if sys_acct.router.has_interest(subject):
            acc = conn.account.key if conn.account is not None else monitor.GLOBAL_ACCOUNT
            self._publish_event(sys_acct, subject, self._disconnect_doc(conn, acc))

    # --- an account's connection count (events.go accConnsUpdate, sendAccConnsUpdate) ----------
    def conns_event(self, acct: Account) -> None:
        """``acct`` lost a client that stays connected (a second CONNECT logs it out first, as
        nats-server's registerWithAccount removes it from its account): its new count."""
        sys_acct = self._listening()
        if sys_acct is not None:
            self._conns_changed(sys_acct, acct)

    def _conns_changed(self, sys_acct: Account, acct: Account) -> None:
        """``acct``'s connection count changed: send it if anybody listens (nats-server never
        does for ``$G``), and restart its heartbeat."""
        key = acct.key
        if key == monitor.GLOBAL_ACCOUNT:
            return
        if key in self._conns_timers or self._conns_wanted(sys_acct, key):
            self._send_conns(sys_acct, acct)

    @staticmethod
    def _conns_subjects(key: str) -> tuple[str, str]:
        """The old subject (``accConnsEventSubjOld``, kept by nats-server for compatibility) and
        the new one (``accConnsEventSubjNew``); nats-server sends both, in this order."""
        return f"$SYS.SERVER.ACCOUNT.{key}.CONNS", f"$SYS.ACCOUNT.{key}.SERVER.CONNS"

    def _conns_wanted(self, sys_acct: Account, key: str) -> bool:
        return any(sys_acct.router.has_interest(s) for s in self._conns_subjects(key))

    def _send_conns(self, sys_acct: Account | None, acct: Account) -> None:
        """``AccountNumConns`` to each subject somebody listens to (one event id for both), and
        the heartbeat re-armed while the account has connections, stopped when it has none."""
        key = acct.key
        timer = self._conns_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if sys_acct is not None:
            subjects = [s for s in self._conns_subjects(key) if sys_acct.router.has_interest(s)]
            if subjects:
                doc = self._event_head(CONNS_EVENT, _rfc3339nano(self.clock()))
                stat = monitor.account_stat(self.broker, key)
                for subject in subjects:
                    self._publish_event(sys_acct, subject, doc | {"server": self.server_info()} | stat)
        if acct.conns:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # driven by hand, without an event loop: no heartbeat
                return
            self._conns_timers[key] = loop.call_later(CONNS_INTERVAL, self._conns_heartbeat, key)

    def _conns_heartbeat(self, key: str) -> None:
        self._conns_timers.pop(key, None)
        acct = self.broker.accounts.get(key)
        if acct is not None and not self._stopped:
            self._send_conns(self._listening(), acct)

    # --- the statsz heartbeat and shutdown (events.go) -----------------------------------------
    def start_events(self) -> None:
        """Start the statsz heartbeat when the broker has a system account (``startStatszTimer``;
        the broker calls this once it listens)."""
        if not self.events_enabled() or self._stopped or self._statsz_timer is not None:
            return
        self._cstatsz = STATSZ_FIRST
        self._statsz_timer = asyncio.get_running_loop().call_later(self._cstatsz, self._heartbeat_statsz)

    def _heartbeat_statsz(self) -> None:
        """``heartbeatStatsz``: the next interval doubles up to :data:`STATSZ_INTERVAL`."""
        if self._stopped:
            return
        self._cstatsz = min(self._cstatsz * 2, STATSZ_INTERVAL)
        loop = asyncio.get_running_loop()
        self._statsz_timer = loop.call_later(self._cstatsz, self._heartbeat_statsz)
        # limitStatsz: too soon after the last one, this one waits until it is due (the timer
        # set for then doubles the interval again)
        now = loop.time()
        interval = min(STATSZ_RATE_LIMIT, self._cstatsz)
        due = self._last_statsz + interval
        if now + STATSZ_SLACK < due:
            self._statsz_timer.cancel()
            self._statsz_timer = loop.call_at(due, self._heartbeat_statsz)
            return
        self._last_statsz = now
        # sendStatsz: built only if a system-account subscription takes it
        sys_acct = self._listening()
        subject = f"$SYS.SERVER.{self.broker.server_key.public_key}.STATSZ"
        if sys_acct is not None and sys_acct.router.has_interest(subject):
            self._statsz(None, b"", sys_acct)  # (no reply: the broadcast subject)

    def shutdown_events(self) -> None:
        """The broker is shutting down (events.go ``shutdownEventing``, which nats-server runs
        before it closes any connection): ``$SYS.SERVER.<id>.SHUTDOWN`` (the ``server`` block), if
        anybody listens; then no more events, so the connections go without advisories."""
        sys_acct = self._listening()
        subject = f"$SYS.SERVER.{self.broker.server_key.public_key}.SHUTDOWN"
        if sys_acct is not None and sys_acct.router.has_interest(subject):
            self._publish_event(sys_acct, subject, self.server_info())
        self._stopped = True
        if self._statsz_timer is not None:
            self._statsz_timer.cancel()
            self._statsz_timer = None
        for timer in self._conns_timers.values():
            timer.cancel()
        self._conns_timers.clear()

    # --- replies --------------------------------------------------------------------------
    def server_info(self) -> dict[str, Any]:
        """nats-server's ``ServerInfo`` block (the ``server`` of every JSON reply)."""
        b = self.broker
        self.seq += 1
        return {
            "name": b.info_base["server_name"],
            "host": b.config.host,
            "id": b.server_key.public_key,
            "ver": b.info_base["version"],
            "jetstream": False,
            "flags": 0,
            "seq": self.seq,
            "time": _rfc3339nano(self.clock()),
        }

    def _send(self, reply: str | None, payload: bytes) -> None:
        b = self.broker
        sys_key = b.config.system_account
        if reply and sys_key and sys_key in b.accounts:
            b.deliver(b.accounts[sys_key], None, reply, None, None, payload)

    def respond(self, reply: str | None, account: str, message: str, error: str | None) -> None:
        """``respondToUpdate``: ``data`` {account, code 200, message} or ``error`` {account,
        code 500, description "<message> - <error>"}; an empty account is left out. While store
        writes are pending, the reply waits behind them (replies keep the request order)."""
        if self._pending:
            self._submit(None, lambda _: self._respond_now(reply, account, message, error))
        else:
            self._respond_now(reply, account, message, error)

    def _respond_now(self, reply: str | None, account: str, message: str, error: str | None) -> None:
        if error is None:
            self.broker.log(f"{message} - {account}" if account else message)
        else:
            self.broker.log(f"{message} - {account} - {error}" if account else f"{message} - {error}")
        if not reply:
            return
        body: dict[str, Any] = {"account": account} if account else {}
        doc: dict[str, Any] = {"server": self.server_info()}
        if error is None:
            doc["data"] = body | {"code": 200, "message": message}
        else:
            doc["error"] = body | {"code": 500, "description": f"{message} - {error}"}
        self._send(reply, orjson.dumps(doc))

    # --- UPDATE ---------------------------------------------------------------------------
    def _decode_account(self, body: bytes) -> tuple[str, AccountClaims | str]:
        token = body.decode("utf-8", "replace")
        try:
            return token, decode(token, AccountClaims)
        except TrustkitError as exc:
            return token, _go_decode_error(token, exc, account=True)

    @staticmethod
    def _validation_error(claims: AccountClaims) -> str | None:
        """``claimValidate``: blocking validation errors, time checks excluded."""
        vr = claims.validate(now=0)
        if vr.is_blocking(include_time_checks=False):
            return "validation errors: [" + " ".join(vr.blocking_messages(include_time_checks=False)) + "]"
        return None

    def _strict_operator_issued(self, claims: AccountClaims) -> bool:
        """nats-server refuses an account signed by the identity key of a strict operator
        (only the first trusted operator is consulted, as in ``getOperatorKeys``)."""
        ops = self.broker.operators.operators
        return bool(ops) and ops[0].strict_signing_key_usage and claims.iss == ops[0].sub

    def _loaded(self, key: str) -> bool:
        return key in self.broker.accounts

    def _account_update(self, key: str, reply: str | None, body: bytes) -> None:
        """``$SYS.REQ.ACCOUNT.<A>.CLAIMS.UPDATE`` in nats-server's order of checks per resolver."""
        kind = self.kind
        strict_err = "operator requires issuer to be a signing key"
        mismatch = "subject does not match jwt content"
        if kind == "memory":  # events.go accountClaimUpdate
            if not body:
                self.respond(reply, key, "jwt update error", "request body is empty")
                return
            token, claims = self._decode_account(body)
            if isinstance(claims, str):
                self.respond(reply, key, "jwt update resulted in error", claims)
            elif claims.sub != key:
                self.respond(reply, key, "jwt update resulted in error", mismatch)
            elif not self._loaded(key):
                self.respond(reply, key, "jwt update skipped", None)
            else:
                self._apply_or_respond(reply, key, token, "jwt update resulted in error", "jwt updated")
            return
        token, claims = self._decode_account(body)
        if kind == "cache":
            if isinstance(claims, str):
                self.respond(reply, key, "jwt update cache resulted in error", claims)
            elif claims.sub != key:
                self.respond(reply, key, "jwt update cache resulted in error", mismatch)
            elif self._strict_operator_issued(claims):
                self.respond(reply, key, "jwt update cache resulted in error", strict_err)
            elif not self._loaded(key):
                self.respond(reply, key, "jwt update cache skipped", None)
            elif (err := self._validation_error(claims)) is not None:
                self.respond(reply, claims.sub, "jwt update cache validation failed", err)
            else:
                self._save(reply, key, token, "jwt update cache resulted in error", "jwt updated cache")
            return
        if isinstance(claims, str):
            self.respond(reply, "n/a", "jwt update resulted in error", claims)
        elif (err := self._validation_error(claims)) is not None:
            self.respond(reply, claims.sub, "jwt validation failed", err)
        elif claims.sub != key:
            self.respond(reply, key, "jwt update resulted in error", mismatch)
        elif self._strict_operator_issued(claims):
            self.respond(reply, key, "jwt update resulted in error", strict_err)
        else:
            self._save(reply, key, token, "jwt update resulted in error", "jwt updated")

    def _update(self, reply: str | None, body: bytes) -> None:
        """``$SYS.REQ.CLAIMS.UPDATE`` (full and cache resolvers)."""
        cache = self.kind == "cache"
        failed = "jwt update cache resulted in error" if cache else "jwt update resulted in error"
        token, claims = self._decode_account(body)
        if isinstance(claims, str):
            self.respond(reply, "n/a", failed, claims)
        elif self._strict_operator_issued(claims):
            self.respond(reply, claims.sub, failed, "operator requires issuer to be a signing key")
        elif cache and not self._loaded(claims.sub):
            self.respond(reply, claims.sub, "jwt update cache skipped", None)
        elif (err := self._validation_error(claims)) is not None:
            msg = "jwt update cache validation failed" if cache else "jwt validation failed"
            self.respond(reply, claims.sub, msg, err)
        else:
            self._save(reply, claims.sub, token, failed, "jwt updated cache" if cache else "jwt updated")

    def _save(self, reply: str | None, key: str, token: str, failed: str, done: str) -> None:
        """Store a pushed JWT: it is live at once (the store's index and the accounts), the file is
        written off the event loop, and the reply goes out once it is on disk. A failed write is
        reported in the reply; the JWT stays live until the next push or restart."""
        assert self.store is not None
        try:
            write = self.store.stage(key, token)
        except TrustkitError as exc:
            self.respond(reply, key, failed, exc.message)
            return
        if write is None:
            self.respond(reply, key, done, None)
            return
        self._changed(key, token)
        self._submit(write, lambda err: self._respond_now(reply, key, failed if err else done, err))

    def expire_jwts(self) -> None:
        """Remove the resolver directory's expired JWTs (:meth:`JwtDir.expire`); the broker runs
        this every ``EXPIRE_CHECK`` seconds, as nats-server's full and cache resolvers do."""
        if self.store is None:
            return
        job = self.store.expire(int(time.time()))
        if job is not None:
            self._submit(job, self._expired_removed)

    def _expired_removed(self, error: str | None) -> None:
        if error is not None:
            self.broker.log(f"resolver dir: cannot remove an expired JWT: {error}")

    def _submit(self, job: Callable[[], None] | None, then: Callable[[str | None], None]) -> None:
        """Run ``job`` (or nothing) on the writer thread after every job before it, then ``then``
        on the event loop with the job's error text (None when it succeeded)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (the store driven by hand): in line
            then(_run(job))
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trustkit-jwt-store")
        self._pending += 1
        future = loop.run_in_executor(self._writer, _run, job)

        def finished(f: asyncio.Future[str | None]) -> None:
            self._pending -= 1
            then(f.result())

        future.add_done_callback(finished)

    def _changed(self, key: str, token: str) -> None:
        """The store's change callback: the resolver verifies the JWT (trusted issuer included)
        before it serves it; an untrusted or invalid JWT stays on disk, unused, as in nats-server."""
        resolver = self.broker.resolver
        if resolver is None:
            return
        try:
            claims = resolver.store(token)
        except TrustkitError as exc:
            self.broker.log(f"DirResolver - Update for account {key!r} resulted in error {exc.message}")
            return
        apply_account_update(self.broker, claims)

    def _apply_or_respond(self, reply: str | None, key: str, token: str, failed: str, done: str) -> None:
        """MEMORY resolver: no store; the account in memory takes the verified claims."""
        resolver = self.broker.resolver
        try:
            if resolver is None:
                raise JwtStoreError("no resolver configured")
            claims = resolver.store(token)
        except TrustkitError as exc:
            self.respond(reply, key, failed, exc.message)
            return
        apply_account_update(self.broker, claims)
        self.respond(reply, key, done, None)

    # --- LOOKUP, PACK, LIST ---------------------------------------------------------------
    def _lookup(self, key: str, reply: str | None) -> None:
        """The stored JWT, or an empty message if there is none; nothing for an invalid key."""
        if not reply or self.store is None:
            return
        if not nkeys.is_valid_public_key(key):
            self.broker.log(f"DirResolver - Error looking up account {key!r}: invalid public key")
            return  # nats-server: an error other than "not found" lets the requester time out
        token = self.store.load(key)
        self._send(reply, b"" if token is None else token)

    def _pack(self, reply: str | None, their_hash: bytes) -> None:
        """One ``<A>|<jwt>`` message per stored account and an empty one to end, or only the
        empty one when the requester's hash equals ours."""
        if not reply or self.store is None:
            return
        if their_hash != self.store.hash():
            for key, token in self.store.entries(self.clock() // 1_000_000_000):
                self._send(reply, f"{key}|{token}".encode())
        self._send(reply, b"")

    def _list(self, reply: str | None) -> None:
        """``{"data":[keys],"server":{…}}``: a Go map, so the keys come sorted."""
        if not reply or self.store is None:
            return
        keys = [key for key, _ in self.store.entries(self.clock() // 1_000_000_000)]
        self._send(reply, orjson.dumps({"data": keys, "server": self.server_info()}))

    # --- DELETE ---------------------------------------------------------------------------
    def _delete(self, reply: str | None, body: bytes) -> None:
        """``handleDeleteRequest``: a generic JWT with ``iss == sub`` = an operator key (the
        identity key unless strict, or a signing key), listing ``nats.accounts``."""
        if self._pending:  # after the pending writes, so that a deleted file is not written back
            self._submit(None, lambda _: self._delete(reply, body))
            return
        store = self.store
        assert store is not None
        sub = ""
        err: str | None = None
        keys: list[str] = []
        token = body.decode("utf-8", "replace")
        try:
            claims = decode(token)
        except TrustkitError as exc:
            err = _go_decode_error(token, exc, account=False)
        else:
            sub = claims.sub
            data = claims.data if isinstance(claims, GenericClaims) else {}
            accounts = data.get("accounts")
            if store.delete_mode is None:
                err = "delete must be enabled in server config"
            elif claims.sub != claims.iss:
                err = "not self signed"
            elif claims.iss not in self._operator_keys():
                err = "not trusted"
            elif not isinstance(accounts, list):
                err = "malformed request"
            else:
                for entry in accounts:
                    if not isinstance(entry, str) or not nkeys.is_valid_public_key(entry, PrefixByte.ACCOUNT):
                        err = "malformed request"
                        break
                    if entry == self.broker.config.system_account:
                        err = "not allowed to delete system account"
                        break
                keys = accounts
        if err is not None:
            self.respond(reply, "", f"delete accounts request by {sub} failed", err)
            return
        errors: list[str] = []
        for key in keys:
            try:
                if store.delete(key):
                    self._deleted(key)
            except TrustkitError as exc:
                errors.append(exc.message)
        passed = len(keys) - len(errors)
        if errors:
            msg = f"deleted {passed} accounts, failed for {len(errors)}"
            self.respond(reply, "", msg, "\n".join(errors))
        else:
            self.respond(reply, "", f"deleted {passed} accounts", None)

    def _operator_keys(self) -> set[str]:
        """``getOperatorKeys``: the first operator's identity key (unless strict) and signing keys."""
        ops = self.broker.operators.operators
        if not ops:
            return set()
        keys = set(ops[0].signing_keys)
        if not ops[0].strict_signing_key_usage:
            keys.add(ops[0].sub)
        return keys

    def _deleted(self, key: str) -> None:
        """``removeCb``: the account is gone for new connections, and its clients are closed
        with ``Account Authentication Expired``."""
        b = self.broker
        if b.resolver is not None:
            b.resolver.discard(key)
        b.sharing.account_updated(key)  # imports from it are gone
        acct = b.accounts.get(key)
        if acct is not None:
            for conn in sorted(acct.conns, key=lambda c: c.cid):
                conn.error_close(ERR_ACCOUNT_EXPIRED)
