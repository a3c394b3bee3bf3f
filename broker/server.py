"""trustkit-broker: an asyncio NATS-protocol server that judges every connection with trustkit.

One :class:`Conn` per client (an asyncio.Protocol: no stream wrappers on the hot path), one
:class:`Account` per account (its own subject space: a :class:`~broker.router.Router`). A
connection is judged once, at CONNECT, by :func:`trustkit.trust.authorize_user`; the resulting
Grant's compiled permissions are consulted per message, never the JWT, through verdict caches
shared by the connections with equal permissions. Each connection is its parser's sink: runs of
PUBs arrive as bytes and are routed inline (:meth:`Conn.pubs`), with every check answered from
caches or flags where it can be. Writes are batched: a connection's outbound frames are joined
and written once per loop turn (sooner after a large read).

Behaviour and ``-ERR`` texts mirror nats-server (server/client.go); the conformance tests run the
same scenarios against both.
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures
import heapq
import math
import os
import secrets
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson

from broker import protocol as P
from broker.callout_client import AuthWait, CalloutClient, local_grant
from broker.config import BrokerConfig, ConfigLogin, compare_passwords, is_bcrypt
from broker.monitor import MAX_CLOSED_CLIENTS, ClosedClients
from broker.router import Router, Subscription
from broker.sharing import Links, Mappings, ShadowSub, Sharing, subjects_collide
from broker.system import (
    ERR_ACCOUNT_LIMIT,
    READ_ERROR,
    SERVER_SHUTDOWN,
    SLOW_CONSUMER,
    TLS_HANDSHAKE_FAILED,
    SystemRequests,
    protocol_close_reason,
)
from broker.tls import TLSConfig
from broker.verifier import Verifier, wanted
from trustkit import subject as subjects
from trustkit.errors import AuthorizationError, TrustkitError
from trustkit.jwt.account import AccountClaims
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.resolver import MemoryResolver
from trustkit.trust import (
    CompiledPermissions,
    Grant,
    PendingGrant,
    SubjectPermission,
    TrustedOperators,
    begin_authorization,
)

__all__ = ["Broker"]

VERSION = "2.10.0-trustkit"
GLOBAL_ACCOUNT = "$G"
NO_LIMIT = -1
WRITE_DEADLINE = 10.0  # seconds, nats-server's default write_deadline
# Bounds of the per-message caches (each is emptied when full, as nats-server prunes its own):
SUBJECT_CACHE_MAX = 16384  # published subject bytes -> subject, shared by all connections
VERDICT_CACHE_MAX = 4096  # verdicts per distinct set of permissions (publish, or delivery deny)
PERMS_STATES_MAX = 1024  # distinct compiled permissions remembered by Broker.perms_state
CRLF = b"\r\n"
#: bytes read past a CONNECT awaiting its verdict before reading pauses until the verdict
HOLD_LIMIT = 64 * 1024
FLUSH_BACKLOG = 256  # messages published in one loop turn after which the outbound data is written
LISTEN_BACKLOG = 100  # the listening sockets' backlog (create_server's default)
EXPIRE_CHECK = 60.0  # seconds between removals of expired JWTs from the resolver dir (nats-server's)
ACCEPT_BACKLOG = 100  # connections accepted per readiness of a listening socket, as asyncio does
ACCEPT_RETRY = 1.0  # seconds without accepting after an accept error (EMFILE...), as asyncio does
# response permissions (allow_responses): the map of allowed replies is pruned of expired and used-up
# entries when a request is delivered and more than REPLY_PERM_LIMIT were added, or more than
# REPLY_PRUNE_TIME seconds went by, since the last prune (client.go replyPermLimit, replyPruneTime)
REPLY_PERM_LIMIT = 4096
REPLY_PRUNE_TIME = 1.0


def go_quote(s: str) -> str:
    """Go's ``%q`` (strconv.Quote) as nats-server uses it in permission errors."""
    out = ['"']
    for c in s:
        if c in ('"', "\\"):
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x80:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c, f"\\x{ord(c):02x}"))
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def _json_str(s: str) -> bytes:
    """``s`` as a JSON string (as orjson writes it in a whole INFO)."""
    return orjson.dumps(s)


_URLSAFE = bytes.maketrans(b"+/", b"-_")
NONCE_BATCH = 256  # nonces drawn from the system's random source at a time


def _reserved_reply(reply: str) -> bool:
    """nats-server ``isReservedReply``: clients may not use service-import (``_R_.``), JetStream
    ack (``$JS.ACK.``) or gateway (``_GR_.``) replies; the prefix must be followed by more."""
    return (
        (len(reply) > 3 and reply.startswith("_R_."))
        or (len(reply) > 8 and reply.startswith("$JS.ACK."))
        or (len(reply) > 5 and reply.startswith("_GR_."))
    )


def _queue_matches(queue: str, names: list[str]) -> bool:
    """client.go ``queueMatches``: the literal name first, then wildcard names as patterns."""
    return any(queue == q or (subjects.has_wildcards(q) and subjects.is_subset(queue, q)) for q in names)


def _direct_accept(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the broker accepts connections itself (:meth:`Broker._accept`): on asyncio's own
    selector loop, which makes its socket transports with ``_make_socket_transport``. uvloop
    (and any other loop) accepts with its own ``create_server``."""
    return isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop) and hasattr(
        loop, "_make_socket_transport"
    )


def _min_limit(*values: int) -> int:
    """nats-server ``minLimit``: -1 is unlimited, every other value (0 too) is a limit."""
    out = NO_LIMIT
    for v in values:
        if v != NO_LIMIT and (out == NO_LIMIT or v < out):
            out = v
    return out


def _deny_entries(perm: SubjectPermission) -> tuple[tuple[str, str | None], ...]:
    """The subscribe deny entries as (subject, queue): client.go ``darray``. ``perm.deny`` holds
    the plain subjects first, then the subjects of the queue entries (``deny_queues``)."""
    if not perm.deny:
        return ()
    plain = len(perm.deny) - len(perm.deny_queues)
    return tuple((d, None) for d in perm.deny[:plain]) + tuple(perm.deny_queues)


class Account:
    """One account's subject space and connections.

    ``data_used`` counts the payload bytes (headers included) its clients published since the
    broker started; ``data_limit`` is the account JWT's ``data`` limit, kept in step with
    ``claims`` so that a pushed JWT applies to the next publish.
    """

    __slots__ = ("_claims", "conns", "data_limit", "data_used", "key", "links", "mapper", "router")

    def __init__(self, key: str, claims: AccountClaims | None) -> None:
        self.key = key
        self.data_limit = NO_LIMIT
        self.data_used = 0
        self.claims = claims
        self.router = Router(admit_on_second=True)
        self.conns: set[Conn] = set()
        # sharing (broker/sharing.py): exports, imports, pending responses; the JWT's mappings
        self.links: Links | None = None
        self.mapper: Mappings | None = None

    @property
    def claims(self) -> AccountClaims | None:
        return self._claims

    @claims.setter
    def claims(self, claims: AccountClaims | None) -> None:
        self._claims = claims
        self.data_limit = claims.limits.data if claims is not None else NO_LIMIT


class ConnSub(Subscription):
    """A client subscription with its auto-unsubscribe counter (and its copies in exporters'
    routing tables for stream imports, broker/sharing.py)."""

    __slots__ = ("delivered", "max", "msg_sid", "shadows")

    def __init__(self, subject: str, sid: str, conn: Conn, queue: str | None) -> None:
        super().__init__(subject, sid, conn, queue)
        self.max = 0
        self.delivered = 0
        self.shadows: list[ShadowSub] | None = None
        # `` <sid> `` as it stands in every MSG/HMSG frame of this subscription
        self.msg_sid = b" " + sid.encode("utf-8", "surrogateescape") + b" "


class _Verdicts(dict[Any, bool]):
    """Verdicts of one set of permissions, shared by the connections that have equal ones (a
    weak value of :attr:`Broker.verdicts`): publish (subject -> allowed) or the delivery-time
    deny filter ((subject, queue) -> denied). Emptied when full."""

    __slots__ = ("__weakref__",)


class _PermsState:
    """What a connection takes from its compiled permissions, worked out once per distinct set
    (:meth:`Broker.perms_state`): the shared publish verdicts (held weakly: they go with the last
    connection that uses them, as before), the response permission, the subscribe deny entries."""

    __slots__ = ("darray", "perms", "resp_max", "resp_perms", "resp_ttl", "verdicts")

    def __init__(self, perms: CompiledPermissions, verdicts: _Verdicts) -> None:
        self.perms = perms  # kept: the cache is keyed by its id
        self.verdicts = weakref.ref(verdicts)
        self.resp_perms = perms.resp_max is not None
        self.resp_max = perms.resp_max or 0
        self.resp_ttl = (perms.resp_ttl_ns or 0) / 1e9
        self.darray = _deny_entries(perms.sub)


#: a CONNECT's verdict: the grant and the account, or (None, None) when refused
Verdict = tuple[Grant | None, "Account | None"]


class Conn(asyncio.Protocol):
    """One client connection: protocol state, grant, subscriptions, batched outbound frames."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        broker._cid += 1
        self.cid = broker._cid
        self.parser = P.Parser(
            broker.config.max_control_line,
            broker.config.max_payload,
            require_connect=broker.auth_required,  # nats-server: only when auth is required
            no_auth_first=broker.config.no_auth_first,
        )
        self.implicit_connect = False  # logged in by another operation than CONNECT (no_auth_user)
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.closed = False
        self.account: Account | None = None
        self.grant: Grant | None = None
        # the grant's publish verdicts (None: no grant, every subject may be published to), and
        # whether a delivered request opens a response permission (allow_responses)
        self.verdicts: _Verdicts | None = None
        self.resp_perms = False
        self.resp_max = 0  # allow_responses: replies per request (<= 0: any number)
        self.resp_ttl = 0.0  # allow_responses: seconds a reply stays allowed (<= 0: for ever)
        # nats-server's delivery-time subscribe deny filter (client.go mperms/darray): the
        # grant's subscribe deny entries (subject, queue), and once a wildcard or queue
        # subscription overlaps one of them, the cache of verdicts (subject, queue) -> denied
        self.darray: tuple[tuple[str, str | None], ...] = ()
        self.deny: _Verdicts | None = None  # subject (or (subject, queue)) -> denied
        self.subs: dict[str, ConnSub] = {}
        self.echo = True
        self.verbose = True  # nats-server defaultOpts, until a CONNECT says otherwise
        self.headers = False
        self.no_responders = False
        self.protocol = 0
        self.first_pong = False
        self.max_payload = broker.config.max_payload
        self.max_subs = NO_LIMIT
        self.nonce = ""
        self.client_ip = ""
        # allowed reply subject -> [replies sent, when the request was delivered] (client.go
        # c.replies), and when it was last pruned, and how many were added since
        self.replies: dict[str, list[float]] = {}
        self.replies_since_prune = 0
        self.last_reply_prune = -math.inf  # client.go: the zero time, so the first delivery prunes
        # its own loop timers (expiry, write deadline); the auth and ping timers are the broker's
        self.timers: list[asyncio.TimerHandle] = []
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.pings_out = 0
        self.name = ""
        self.lang = ""
        self.version = ""
        self.started = time.time()
        self.last_activity = self.started  # the last read from the socket (/connz last_activity, idle)
        self.rtt = 0  # ns: estimated at CONNECT, as nats-server does (service latency, broker/sharing.py)
        self.data_limit = NO_LIMIT  # the user JWT's ``data``: bytes this connection may publish
        self.data_used = 0
        self.lost = False
        # TLS upgrade after a plaintext INFO: until the handshake is done nothing the client sends
        # is parsed (bytes that arrive with the handshake's last flight are held, then parsed).
        self.tls_pending = False
        self.held = b""
        self.hold_paused = False  # reading paused: too much arrived while a verdict was awaited
        self.upgrade: asyncio.Task[None] | None = None
        self.connect_opts: dict[str, Any] | None = None
        self.expiry: asyncio.TimerHandle | None = None
        # set while an auth callout judges the CONNECT: nothing else is processed meanwhile
        self.auth_wait: AuthWait | None = None
        # why the server closed it (the -ERR text; "" without one), for the DISCONNECT advisory
        self.close_reason: str | None = None

    # --- connection lifecycle -------------------------------------------------------------
    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's do not derive from asyncio.Transport)
        self.transport = transport = cast(asyncio.Transport, base)
        peer = transport.get_extra_info("peername")
        self.client_ip = ip = peer[0] if peer else ""
        broker = self.broker
        cfg = broker.config
        # INFO: the server's fields, then client_id, client_ip and (operator mode, nkey users) the nonce
        if broker.nonce_required:
            nonce = broker.next_nonce()
            self.nonce = nonce.decode()
            ip_b = _json_str(ip)
            info = b'%b%d,"client_ip":%b,"nonce":"%b"}\r\n' % (broker.info_head, self.cid, ip_b, nonce)
        else:
            info = b'%b%d,"client_ip":%b}\r\n' % (broker.info_head, self.cid, _json_str(ip))
        broker.total_connections += 1
        if len(broker.conns) >= cfg.max_connections:
            # nats-server createClient: INFO first, then the refusal (client.go maxConnExceeded)
            self.send(info)
            self.error_close("maximum connections exceeded")
            return
        broker.conns.add(self)
        if not broker.auth_required:
            # no auth: the client is in $G at once and may work before (or without) a CONNECT
            self.account = broker.account(GLOBAL_ACCOUNT, None)
            self.account.conns.add(self)
        tls = cfg.tls
        if tls is not None and not tls.handshake_first:
            # nats-server: INFO in plaintext, then the server-side TLS handshake at once. Reading
            # stays paused until the handshake owns the socket, so a client that answers INFO in
            # plaintext is cut off by the failing handshake and its CONNECT is never parsed.
            transport.pause_reading()
            transport.write(info)
            self.tls_pending = True
            self.upgrade = asyncio.get_running_loop().create_task(self._upgrade(transport, tls))
            return
        transport.write(info)  # nothing can be pending before it
        broker.arm_timers(self)

    async def _upgrade(self, raw: asyncio.Transport, tls: TLSConfig) -> None:
        loop = asyncio.get_running_loop()
        transport: asyncio.Transport | None = None
        try:
            transport = await loop.start_tls(
                raw, self, tls.context(), server_side=True, ssl_handshake_timeout=tls.timeout
            )
        except asyncio.CancelledError:
            raw.close()
            self.connection_lost(None)
            raise
        except (OSError, EOFError) as exc:  # ssl.SSLError, resets and the handshake timeout
            reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else type(exc).__name__
            self.broker.log(f"cid:{self.cid} TLS handshake error: {reason}")
        if transport is None or transport.is_closing() or self.closed:
            raw.close()
            self.connection_lost(None)
            return
        self.transport = transport
        self.tls_pending = False
        self.broker.arm_timers(self)  # auth and ping timers start after the handshake, as in nats-server
        if self.out:
            self.flush()
        held, self.held = self.held, b""
        if held:
            self.data_received(held)

    def ping_timer(self) -> bool:
        """nats-server's ping timer (:meth:`Broker.arm_timers`): too many unanswered PINGs mean a
        stale connection. True if the timer is to fire again."""
        if self.closed:
            return False
        if self.pings_out + 1 > self.broker.config.ping_max:
            self.broker.stale_connections += 1  # /varz stale_connections
            self.error_close("Stale Connection")
            return False
        self.pings_out += 1
        self.send(P.PING_FRAME)
        return True

    def auth_timer(self) -> None:
        if self.connect_opts is None and not self.closed:
            self.error_close("Authentication Timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.closed = True
        if self.close_reason is None:
            if self.tls_pending:  # lost during the TLS handshake (nats-server: its handshake failed)
                self.close_reason = TLS_HANDSHAKE_FAILED
            elif exc is not None:  # reset by the client, not closed
                self.close_reason = READ_ERROR
        for t in self.timers:
            t.cancel()
        broker = self.broker
        broker.disarm_timers(self)
        if self.account is not None:
            self.account.router.remove_conn(self)
            self.account.conns.discard(self)
            if self.account.links is not None:
                broker.sharing.conn_closed(self.account, self)
        broker.conns.discard(self)
        broker.closed_stats(self)
        broker.closed_clients.record(self)  # for /connz?state=closed
        broker.system.disconnect_event(self)  # builds nothing unless the system account listens

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.time()  # once per read, never per message
        if self.tls_pending or self.auth_wait is not None:
            self.held += data
            transport = self.transport
            if len(self.held) > HOLD_LIMIT and not (self.hold_paused or self.tls_pending or not transport):
                # more than a CONNECT's worth arrived before its verdict: the rest waits in the
                # kernel (reading stays on otherwise: a verdict is usually a millisecond away)
                self.hold_paused = True
                transport.pause_reading()
            return
        # Each operation is handled as soon as it is parsed (this connection is the parser's
        # sink); what is left was parsed after a CONNECT went to the auth callout, or after a close.
        try:
            rest = self.parser.feed(data, self)
        except P.ProtocolError as e:
            if self.auth_wait is not None:  # after the auth callout, like the operations before it
                self.auth_wait.ops = e.ops
                self.auth_wait.error = e
                return
            if e.err_text is not None:
                self.send(e.frame)
            self.protocol_error(e)
            self.close()
            return
        if self.auth_wait is not None:  # nats-server reads nothing more until the callout ends
            self.auth_wait.ops = rest
        if self.broker.backlog >= FLUSH_BACKLOG:
            self.broker.flush_now()

    def _dispatch(self, ops: list[P.Op]) -> None:
        for i, op in enumerate(ops):
            if self.op(op):
                if self.auth_wait is not None:  # nats-server reads nothing more until the callout ends
                    self.auth_wait.ops = ops[i + 1 :]
                return

    def op(self, op: P.Op) -> bool:
        """Handle one operation (the parser's sink); True once nothing more may be handled now."""
        if self.closed:
            return True
        t = type(op)
        if t is P.Pub:
            self.on_pub(op.subject, op.reply, None, op.payload)  # type: ignore[union-attr]
        elif t is P.HPub:
            self.on_pub(op.subject, op.reply, op.headers, op.payload)  # type: ignore[union-attr]
        elif t is P.Sub:
            self.on_sub(op)  # type: ignore[arg-type]
        elif t is P.Unsub:
            self.on_unsub(op)  # type: ignore[arg-type]
        elif t is P.Ping:
            self.on_ping()
        elif t is P.Pong:
            self.pings_out = 0
        elif t is P.Connect:
            self.implicit_connect = op.implicit  # type: ignore[union-attr]
            self.on_connect(op.opts)  # type: ignore[union-attr]
        return self.closed or self.auth_wait is not None

    def pubs(self, batch: list[tuple[bytes, bytes | None, bytes]]) -> int | None:
        """``PUB``s straight from the parser (the sink), subjects and replies still bytes. Returns
        None, or the number handled once nothing more may be handled now.

        The common case is decided here from caches and flags, with the outcome of
        :meth:`on_pub` and its checks in its order: no mapping, no ``data`` limit, the payload
        within limits, a valid subject outside ``$SYS.`` (known in :attr:`Broker.subjects`, or
        learnt now), a reply that is not reserved, and a publish verdict cached as allowed (or
        a response permission); client subscriptions get the message inline. Anything else goes
        through :meth:`on_pub`, which fills the verdict cache.
        """
        account = self.account
        if account is None:
            return self._pubs_slow(batch, 0)
        broker = self.broker
        broker.backlog += len(batch)
        known = broker.subjects
        learn = broker.learn_subject
        cached = account.router.cached
        match = account.router.match
        grant = self.grant
        verdicts = self.verdicts
        mp = self.max_payload if self.max_payload != NO_LIMIT else 1 << 62
        echo = self.echo
        verbose = self.verbose
        plain_ok = account.mapper is None and self.data_limit == NO_LIMIT and account.data_limit == NO_LIMIT
        count = size = 0
        i = 0
        for subject, reply, payload in batch:
            n = len(payload)
            s = known.get(subject)
            if s is None:
                s = subject.decode("utf-8", "surrogateescape")
                new = True
                fast = plain_ok and n <= mp and learn(subject, s)
            else:
                new = False
                fast = plain_ok and n <= mp
            r: str | None = None
            if reply is not None:
                r = reply.decode("utf-8", "surrogateescape")
                if _reserved_reply(r):
                    fast = False
            if fast and verdicts is not None and verdicts.get(s) is not True:
                # checked last, as a response permission (allow_responses) counts a use; the
                # verdict of a subject seen for the first time is not cached (one-off replies)
                fast = self._may_publish(grant, s, cache=not new)  # type: ignore[arg-type]
            if not fast:
                self._count_in(account, count, size)
                count = size = 0
                if self._pub_slow(subject, reply, payload, s):
                    return i + 1
                # a message to $SYS may have changed the account (a pushed JWT)
                plain_ok = (
                    account.mapper is None and self.data_limit == NO_LIMIT and account.data_limit == NO_LIMIT
                )
                i += 1
                continue
            i += 1
            count += 1
            size += n
            if verbose:
                self.send(P.OK_FRAME)
            result = cached(s)
            if result is None:
                result = match(s)
            plain = result.plain
            delivered = False
            if plain or result.queues:
                for sub in plain:
                    if type(sub) is ConnSub:
                        conn: Conn = sub.conn
                        if conn.closed or (conn is self and not echo):
                            continue
                        deny = conn.deny
                        if deny is not None and (
                            deny.get(s) if sub.queue is None else None  # (see denied())
                        ) is not False and conn.denied(s, sub.queue):
                            continue
                        out = conn.out  # the frame P.msg builds, in pieces (see send_msg)
                        if reply is None:
                            out.append(b"MSG %b%b%d\r\n" % (subject, sub.msg_sid, n))
                        else:
                            out.append(b"MSG %b%b%b %d\r\n" % (subject, sub.msg_sid, reply, n))
                        out.append(payload)
                        out.append(CRLF)
                        if not conn.flush_scheduled:
                            conn.flush_scheduled = True
                            broker.to_flush.append(conn)
                            broker.schedule_flush()
                        conn.out_msgs += 1
                        conn.out_bytes += n
                        if r is not None and conn.resp_perms:
                            conn.note_reply(r)
                        sub.delivered += 1
                        if sub.max and sub.delivered >= sub.max:
                            conn._remove_sub(sub)
                        delivered = True
                    elif broker.sharing.deliver(sub, self, s, r, None, payload, False):
                        delivered = True
                if result.queues and broker.deliver_queues(result.queues, self, s, r, None, payload, False):
                    delivered = True
            if not delivered and r is not None and self.no_responders:
                self._no_responders(s, r)
        self._count_in(account, count, size)
        return None

    def _count_in(self, account: Account, count: int, size: int) -> None:
        self.in_msgs += count
        self.in_bytes += size
        self.data_used += size
        account.data_used += size

    def _pubs_slow(self, batch: list[tuple[bytes, bytes | None, bytes]], i: int) -> int | None:
        for subject, reply, payload in batch[i:]:
            i += 1
            if self._pub_slow(subject, reply, payload, None):
                return i
        return None

    def _pub_slow(self, subject: bytes, reply: bytes | None, payload: bytes, s: str | None) -> bool:
        if s is None:
            s = subject.decode("utf-8", "surrogateescape")
        self.on_pub(s, reply.decode("utf-8", "surrogateescape") if reply is not None else None, None, payload)
        return self.closed or self.auth_wait is not None

    # --- output ---------------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        self.out.append(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.broker.to_flush.append(self)
            self.broker.schedule_flush()

    def send_msg(self, head: bytes, headers: bytes | None, payload: bytes) -> None:
        """A MSG/HMSG frame as its pieces: ``head`` (the control line), headers, payload."""
        if self.closed:
            return
        out = self.out
        out.append(head)
        if headers is not None:
            out.append(headers)
        out.append(payload)
        out.append(CRLF)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.broker.to_flush.append(self)
            self.broker.schedule_flush()

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.tls_pending:
            return  # never a plaintext byte after INFO: kept until the TLS transport takes over
        if self.closed or not self.out or self.transport is None:
            self.out.clear()
            return
        data = b"".join(self.out)
        self.out.clear()
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.broker.config.max_pending:
            # slow consumer: nats-server closes without -ERR; everybody else keeps flowing. Abort:
            # a close would wait for a peer that does not read to drain what is pending.
            self.broker.slow_consumers += 1
            self.close_reason = SLOW_CONSUMER
            self.closed = True
            self.out.clear()
            self.transport.abort()

    def protocol_error(self, exc: P.ProtocolError) -> None:
        """Note why the connection is about to close for ``exc`` (the DISCONNECT advisory's
        reason), and for a CONNECT that did not decode the RTT nats-server estimates first."""
        if self.close_reason is None:
            self.close_reason = protocol_close_reason(exc)
        if not self.rtt and exc.message.startswith("CONNECT:"):  # client.go processConnect
            self.rtt = max(int((time.time() - self.started) * 1e9), 1)

    def error_close(self, text: str) -> None:
        if self.close_reason is None:
            self.close_reason = text
        self.send(P.err(text))
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        if self.close_reason is None:
            self.close_reason = ""
        if self.out and self.transport is not None and not self.tls_pending:
            self.transport.write(b"".join(self.out))
        self.out.clear()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
            # like nats-server's write deadline: a peer that never reads its last frames (the
            # -ERR) does not keep the connection, or a TLS shutdown, alive
            self.timers.append(asyncio.get_running_loop().call_later(WRITE_DEADLINE, self.transport.abort))

    # --- operations -----------------------------------------------------------------------
    def on_connect(self, opts: dict[str, Any]) -> None:
        self.rtt = max(int((time.time() - self.started) * 1e9), 1)  # client.go processConnect computeRTT
        if self.connect_opts is None:
            self.connect_opts = opts
        else:
            # A later CONNECT is a new login, as in nats-server's processConnect: its fields are
            # merged over the first's (Go json.Unmarshal into the same ClientOpts), every
            # subscription is dropped (clearAccountSubs), and the merged credentials are judged
            # again; a refusal closes the connection. The data count stays with the connection.
            self.connect_opts.update(opts)
            opts = self.connect_opts
            self._logout()
        # nats-server's defaultOpts: verbose, pedantic and echo are on unless the client says no
        get = opts.get
        self.verbose = bool(get("verbose", True))
        self.echo = bool(get("echo", True))
        self.headers = bool(get("headers", False))
        self.no_responders = bool(get("no_responders", False))
        proto = get("protocol", 0)
        self.protocol = proto if isinstance(proto, int) else -1  # checked once admitted (admit)
        self.name = str(get("name") or "")
        self.lang = str(get("lang") or "")
        self.version = str(get("version") or "")
        broker = self.broker
        if broker.verifier is not None and broker.operator_mode:
            jwt_text = opts.get("jwt")
            if not isinstance(jwt_text, str) or not jwt_text:
                self._judged(opts, None, None)
                return
            # every check but the Ed25519 ones here; those in the worker process (broker/verifier.py)
            pending = self._begin(opts, jwt_text)
            if pending.checks.items:
                self.hold()
                broker.verifier.submit(
                    pending.checks,
                    lambda results: self._verdict(opts, lambda: self._granted(opts, pending, results)),
                )
                return
            grant, account = self._granted(opts, pending, [])
        elif broker.config_auth:
            self._config_login(opts)
            return
        else:
            grant, account = self._login(opts)
        self._judged(opts, grant, account)

    def _config_login(self, opts: dict[str, Any]) -> None:
        """Judge a CONNECT against the config's users, nkey users, token or single user
        (:meth:`BrokerConfig.match_login`). A bcrypt comparison (50-100 ms) runs in a thread:
        until its verdict nothing else the client sent is handled, as while a callout decides.
        A client that sent no credentials is the ``no_auth_user``: nats-server writes that user's
        credentials into the CONNECT it keeps (the auth callout and monitoring see them), and so
        does the broker, before judging it like any other."""
        config = self.broker.config
        opts.update(config.no_auth_credentials(opts))
        login = config.match_login(opts, self.nonce)
        if login is None or login.secret is None or not is_bcrypt(login.secret):
            ok = login is not None and (login.secret is None or compare_passwords(login.secret, login.given))
            self._judged(opts, *self._config_grant(login if ok else None))
            return
        self.hold()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.broker.bcrypt_pool(), compare_passwords, login.secret, login.given)
        future.add_done_callback(lambda f: self._verdict(opts, lambda: self._compared(login, f)))

    def _compared(self, login: ConfigLogin, future: asyncio.Future[bool]) -> Verdict:
        """The bcrypt verdict for this CONNECT."""
        ok = not future.cancelled() and future.exception() is None and future.result()
        return self._config_grant(login if ok else None)

    def _config_grant(self, login: ConfigLogin | None) -> tuple[Grant | None, Account | None]:
        """The grant of an admitted config-mode login (None, None when refused)."""
        if login is None:
            return None, None
        grant = local_grant(login.name, login.account, login.permissions)
        return grant, self.broker.account(login.account, None)

    def hold(self) -> None:
        """Handle nothing more the client sends until its CONNECT's verdict (signature worker,
        bcrypt thread, auth callout): nats-server reads nothing more meanwhile."""
        self.auth_wait = AuthWait()

    def _verdict(self, opts: dict[str, Any], judge: Callable[[], Verdict]) -> None:
        """A held CONNECT's verdict has come (``judge`` gives the grant and account): admit or
        refuse, then handle what the client sent meanwhile, unless the auth callout takes over."""
        wait, self.auth_wait = self.auth_wait, None
        if self.closed or wait is None:
            return
        self._judged(opts, *judge())
        if self.auth_wait is not None:  # the auth callout has it now: it resumes the client
            self.auth_wait.ops, self.auth_wait.error = wait.ops, wait.error
            return
        self.auth_wait = wait
        self.resume_after_auth()

    def _begin(self, opts: dict[str, Any], jwt_text: str) -> PendingGrant:
        """The chain of trust for this CONNECT (trustkit.trust), its signature checks not run yet."""
        broker = self.broker
        return begin_authorization(
            jwt_text,
            nonce=self.nonce,
            signature=opts.get("sig") or None,
            resolver=broker.lookup_account,
            operators=broker.operators,
            now=int(time.time()),
            client_ip=self.client_ip,
        )

    def _granted(
        self, opts: dict[str, Any], pending: PendingGrant, results: list[bool]
    ) -> tuple[Grant | None, Account | None]:
        """:meth:`_login`'s verdict from a judgement whose signature checks ran in the worker."""
        broker = self.broker
        grant = self._finish(pending, results)
        if grant is None:
            return None, None
        if broker.lookup_account(grant.account.sub) is not grant.account:
            # a claims update (a revocation?) arrived while the signatures were checked: judge
            # again, here and now, against the account as it is now (never install the old claims)
            return self._login(opts)
        return grant, broker.account(grant.account.sub, grant.account)

    def _finish(self, pending: PendingGrant, results: list[bool]) -> Grant | None:
        try:
            return pending.finish(results)
        except AuthorizationError as exc:
            self.broker.log(f"cid:{self.cid} authorization refused: {exc.code}: {exc.message}")
            return None

    def _judged(self, opts: dict[str, Any], grant: Grant | None, account: Account | None) -> None:
        """The server's verdict on a CONNECT: the auth callout's turn, then admit or refuse."""
        callout = self.broker.callout
        if callout.active:
            if callout.delegate(self, opts, grant, account):
                return  # the auth callout decides (broker/callout_client.py): admit() or -ERR later
            if account is not None:
                grant = callout.harden(grant, account)
        if account is None:
            self.error_close(P.ERR_AUTHORIZATION)
            return
        self.admit(account, grant)

    def _login(self, opts: dict[str, Any]) -> tuple[Grant | None, Account | None]:
        """The server's own judgement of a CONNECT in operator mode or without auth (before any
        auth callout): the grant and the account, or (None, None) when refused."""
        broker = self.broker
        if broker.operator_mode:
            jwt_text = opts.get("jwt")
            if not isinstance(jwt_text, str) or not jwt_text:
                return None, None
            pending = self._begin(opts, jwt_text)
            grant = self._finish(pending, pending.checks.run())  # the checks run here, now
            if grant is None:
                return None, None
            return grant, broker.account(grant.account.sub, grant.account)
        # (config-mode credentials: _config_login)
        return None, broker.account(GLOBAL_ACCOUNT, None)

    def admit(self, account: Account, grant: Grant | None) -> None:
        """Register an authorized CONNECT: limits, expiry, the account, ``+OK``."""
        broker = self.broker
        if grant is not None:
            acct_limits = grant.account.limits
            if acct_limits.conn != NO_LIMIT and len(account.conns) >= acct_limits.conn:
                # nats-server has bound the client to the account before it checks the limit
                # (client.go registerWithAccount): its DISCONNECT advisory is the account's
                self.account = account
                self.error_close(ERR_ACCOUNT_LIMIT)
                return
            self.grant = grant
            perms = grant.permissions
            ps = broker.perms_state(perms)
            verdicts = ps.verdicts()
            if verdicts is None:  # nobody used them lately
                verdicts = broker.verdicts_for(("pub", perms.pub))
                ps.verdicts = weakref.ref(verdicts)
            self.verdicts = verdicts
            self.resp_perms = ps.resp_perms
            self.resp_max = ps.resp_max
            self.resp_ttl = ps.resp_ttl
            self.darray = ps.darray
            self.deny = None
            limits = grant.limits
            self.max_payload = _min_limit(limits.payload, acct_limits.payload, broker.config.max_payload)
            self.max_subs = _min_limit(limits.subs, acct_limits.subs)
            self.data_limit = limits.data
            if grant.expires_at is not None:
                delay = max(0.0, grant.expires_at - time.time())
                self.expiry = asyncio.get_running_loop().call_later(delay, self._expired)
                self.timers.append(self.expiry)
        self.account = account
        account.conns.add(self)
        broker.system.connect_event(self)  # builds nothing unless the system account listens
        # nats-server checks these once the client is in its account (client.go processConnect)
        if not 0 <= self.protocol <= 1:
            self.error_close("invalid client protocol")
            return
        if self.no_responders and not self.headers:
            self.error_close("no responders requires headers support")
            return
        self.parser.max_payload = (
            self.max_payload if self.max_payload != NO_LIMIT else broker.config.max_payload
        )
        if self.verbose and not self.implicit_connect:  # no +OK for a CONNECT never sent
            self.send(P.OK_FRAME)
        if self.max_subs == 0:  # nats-server: at the limit already; tell, then close ~20 ms later
            self.close_reason = "maximum subscriptions exceeded"
            self.send(P.err("maximum subscriptions exceeded"))
            self.timers.append(asyncio.get_running_loop().call_later(0.02, self.close))

    def resume_after_auth(self) -> None:
        """The auth callout admitted the client: process what it sent meanwhile, in order."""
        wait, self.auth_wait = self.auth_wait, None
        if wait is None or self.closed:
            return
        if self.hold_paused and self.transport is not None:
            self.hold_paused = False
            self.transport.resume_reading()
        self._dispatch(wait.ops)
        if self.auth_wait is not None:  # another CONNECT among them went to the callout
            self.auth_wait.error = wait.error
            return
        if wait.error is not None and not self.closed:
            if wait.error.err_text is not None:
                self.send(wait.error.frame)
            self.protocol_error(wait.error)
            self.close()
            return
        held, self.held = self.held, b""
        if held and not self.closed:
            self.data_received(held)

    def _logout(self) -> None:
        """Undo a CONNECT before the next one is judged."""
        for sub in list(self.subs.values()):
            self._remove_sub(sub)
        self.replies.clear()
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if self.account is not None:
            self.account.conns.discard(self)
            self.broker.system.conns_event(self.account)  # (as nats-server: its count drops)
        self.account = None
        self.grant = None
        self.verdicts = None
        self.resp_perms = False
        self.resp_max = 0
        self.resp_ttl = 0.0
        self.darray = ()
        self.deny = None
        self.max_payload = self.broker.config.max_payload
        self.max_subs = self.data_limit = NO_LIMIT

    def _expired(self) -> None:
        if not self.closed:
            self.error_close("User Authentication Expired")

    def on_ping(self) -> None:
        self.send(P.PONG_FRAME)
        if not self.first_pong and self.connect_opts is not None and self.account is not None:
            self.first_pong = True
            if self.protocol >= 1:
                # the INFO again, with client_id, client_ip, connect_info, remote_account, acc_is_sys
                broker = self.broker
                key = self.account.key
                self.send(
                    b'%b%d,"client_ip":%b,"connect_info":true,"remote_account":%b,"acc_is_sys":%b}\r\n'
                    % (
                        broker.info_head,
                        self.cid,
                        _json_str(self.client_ip),
                        _json_str(key),
                        b"true" if key == broker.config.system_account else b"false",
                    )
                )

    def on_sub(self, op: P.Sub) -> None:
        account = self.account
        assert account is not None
        if not subjects.is_valid(op.subject) or (op.queue is not None and not subjects.is_valid(op.queue)):
            self.send(P.err("Invalid Subject"))
            return
        grant = self.grant
        if grant is not None and not grant.permissions.can_subscribe(op.subject, op.queue):
            text = f"Permissions Violation for Subscription to {go_quote(op.subject)}"
            if op.queue:
                text += f" using queue {go_quote(op.queue)}"
            self.send(P.err(text))
            return
        if self.darray and self.deny is None and (op.queue or subjects.has_wildcards(op.subject)):
            # client.go loadMsgDenyFilterIfNeeded: deliveries are checked against the deny
            # entries from now on (for this connection's lifetime, as in nats-server)
            if any(subjects_collide(d, op.subject) for d, _ in self.darray):
                self.deny = self.broker.verdicts_for(("deny", self.darray))
        if op.sid in self.subs:
            if self.verbose:
                self.send(P.OK_FRAME)
            return
        if self.max_subs != NO_LIMIT and len(self.subs) >= self.max_subs:
            self.send(P.err("maximum subscriptions exceeded"))
            return
        sub = ConnSub(op.subject, op.sid, self, op.queue)
        account.router.insert(sub)
        self.subs[op.sid] = sub
        if account.links is not None:
            self.broker.sharing.subscribed(account, sub)  # stream imports: shadow subscriptions
        if self.verbose:
            self.send(P.OK_FRAME)

    def on_unsub(self, op: P.Unsub) -> None:
        sub = self.subs.get(op.sid)
        if sub is not None:
            if op.max is not None and op.max > sub.delivered:
                sub.max = op.max
            else:
                self._remove_sub(sub)
        if self.verbose:
            self.send(P.OK_FRAME)

    def _remove_sub(self, sub: ConnSub) -> None:
        self.subs.pop(sub.sid, None)
        if self.account is not None:
            self.account.router.remove(sub)
            if self.account.links is not None:
                self.broker.sharing.unsubscribed(self.account, sub)

    def on_pub(self, subject: str, reply: str | None, headers: bytes | None, payload: bytes) -> None:
        account = self.account
        assert account is not None
        size = len(payload) + (len(headers) if headers is not None else 0)
        self.in_msgs += 1
        self.in_bytes += size
        if self.max_payload != NO_LIMIT and size > self.max_payload:
            self.error_close(P.ERR_MAX_PAYLOAD)
            return
        if account.mapper is not None:  # the account's mappings, before permissions (nats-server)
            subject = account.mapper(subject)  # "" when a weighted mapping drops the message
        grant = self.grant
        if grant is not None and not self._may_publish(grant, subject):
            self.send(P.err(f"Permissions Violation for Publish to {go_quote(subject)}"))
            return
        if reply and _reserved_reply(reply):
            self.send(P.err(f"Permissions Violation for Publish with Reply of {go_quote(reply)}"))
            return
        if subject and not subjects.is_valid(subject, wildcards=False):
            if self.verbose:
                self.send(P.err("Invalid Publish Subject"))
            return
        # ``data`` limits (nats-server carries them but does not enforce them): a quota of
        # published bytes, per connection (user JWT) and per account (account JWT, all its
        # connections, since the broker started). Over it the message is dropped with the
        # publish refusal clients already treat as non-fatal; the connection stays.
        if (self.data_limit != NO_LIMIT and self.data_used + size > self.data_limit) or (
            account.data_limit != NO_LIMIT and account.data_used + size > account.data_limit
        ):
            self.send(P.err(f"Permissions Violation for Publish to {go_quote(subject)}"))
            return
        self.data_used += size
        account.data_used += size
        if self.verbose:
            self.send(P.OK_FRAME)
        broker = self.broker
        handled = False
        if subject.startswith("$SYS."):  # the system account's services (broker/system.py)
            handled = broker.system.handle(subject, reply, headers, payload, self)
        if broker.callout.pending and subject.startswith(broker.callout.inbox_prefix):
            handled = broker.callout.on_reply(account, subject, payload) or handled  # a callout's answer
        delivered = broker.deliver(account, self, subject, reply, headers, payload) or handled
        if not delivered and reply and self.no_responders:
            self._no_responders(subject, reply)

    def _no_responders(self, subject: str, reply: str) -> None:
        for sub in self.subs.values():
            if subjects.matches(sub.subject, reply):
                hdr_len = 32 + len(subject)
                self.send(
                    f"HMSG {reply} {sub.sid} {hdr_len} {hdr_len}\r\nNATS/1.0 503\r\n"
                    f"Nats-Subject: {subject}\r\n\r\n\r\n".encode()
                )
                break

    def _may_publish(self, grant: Grant, subject: str, *, cache: bool = True) -> bool:
        verdicts = self.verdicts
        ok = verdicts.get(subject) if verdicts is not None else None
        if ok is None:
            ok = grant.permissions.can_publish(subject)
            if verdicts is not None and cache:
                if len(verdicts) >= VERDICT_CACHE_MAX:
                    verdicts.clear()
                verdicts[subject] = ok
        if ok:
            return True
        return self._response_allowed(subject)

    def _response_allowed(self, subject: str) -> bool:
        """client.go ``responseAllowed``: a reply to a request this client got counts one use;
        over ``resp_max`` uses, or once ``resp_ttl`` has passed, it is refused and forgotten."""
        entry = self.replies.get(subject)
        if entry is None:
            return False
        entry[0] += 1
        if (self.resp_max > 0 and entry[0] > self.resp_max) or (
            self.resp_ttl > 0 and self.broker.clock() - entry[1] > self.resp_ttl
        ):
            del self.replies[subject]
            return False
        return True

    def denied(self, subject: str, queue: str | None) -> bool:
        """client.go ``checkDenySub``: may a message on ``subject`` not be delivered to this
        connection's subscription (in ``queue``)? Only called once :attr:`deny` is loaded."""
        deny = self.deny
        assert deny is not None
        key = subject if queue is None else (subject, queue)  # a str key for plain subscriptions
        verdict = deny.get(key)
        if verdict is None:
            verdict = any(q is None and subjects.matches(d, subject) for d, q in self.darray)
            if not verdict and queue:
                names = [q for d, q in self.darray if q is not None and subjects.matches(d, subject)]
                verdict = bool(names) and _queue_matches(queue, names)
            if len(deny) >= VERDICT_CACHE_MAX:
                deny.clear()
            deny[key] = verdict
        return verdict

    def note_reply(self, reply: str) -> None:
        """A request delivered to this client: allow responses to ``reply`` (allow_responses).

        As client.go ``deliverMsg``: unless publishing to ``reply`` is allowed already (by the
        permissions, or by a response permission, which then counts a use), the reply is
        allowed afresh; the map is pruned when enough were added or time went by since the
        last prune (:meth:`prune_replies`)."""
        grant = self.grant
        if grant is None or grant.permissions.resp_max is None:
            return
        if self._may_publish(grant, reply, cache=False):
            return
        now = self.broker.clock()
        self.replies[reply] = [0, now]
        self.replies_since_prune += 1
        if self.replies_since_prune > REPLY_PERM_LIMIT or now - self.last_reply_prune > REPLY_PRUNE_TIME:
            self.prune_replies(now)

    def prune_replies(self, now: float) -> None:
        """client.go ``pruneReplyPerms``: forget the replies that were used ``resp_max`` times or
        whose ``resp_ttl`` has passed."""
        mm, ttl = self.resp_max, self.resp_ttl
        self.replies = {
            k: e
            for k, e in self.replies.items()
            if not ((mm > 0 and e[0] >= mm) or (ttl > 0 and now - e[1] > ttl))
        }
        self.replies_since_prune = 0
        self.last_reply_prune = now


class Broker:
    """The server: listeners, accounts, connections, and the trust configuration."""

    def __init__(self, config: BrokerConfig, *, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        # the config's mode, read per connection (a config does not change under a running broker)
        self.operator_mode = config.operator_mode
        self.auth_required = config.auth_required
        self.nonce_required = config.nonce_required
        # config-mode credentials to check (users, nkey users, a token or a single user)
        self.config_auth = self.auth_required and not self.operator_mode
        self._bcrypt_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.log = log or (lambda msg: None)
        self.server_key = KeyPair.generate(PrefixByte.SERVER)
        self.accounts: dict[str, Account] = {}
        self.sharing = Sharing(self)  # imports, exports and mappings between accounts
        self.conns: set[Conn] = set()
        self._cid = 0
        self.to_flush: list[Conn] = []
        self._flush_pending = False
        self.backlog = 0  # messages published since the last flush
        # published subject bytes -> the subject, for valid literal subjects outside ``$SYS.``
        # (what Conn.pub may take its fast path with); emptied when full
        self.subjects: dict[bytes, str] = {}
        # publish verdicts per distinct set of publish permissions, shared by its connections
        self.verdicts: weakref.WeakValueDictionary[tuple[str, object], _Verdicts] = (
            weakref.WeakValueDictionary()
        )
        self._perms_states: dict[int, _PermsState] = {}
        self.slow_consumers = 0
        self.stale_connections = 0
        # the clock of response permissions (tests may set another)
        self.clock: Callable[[], float] = time.monotonic
        self.started = time.time()
        self.total_connections = 0
        self.closed_totals = [0, 0, 0, 0]  # in_msgs, in_bytes, out_msgs, out_bytes of closed conns
        # the last closed connections, for /connz
        self.closed_clients = ClosedClients(config.max_closed_clients or MAX_CLOSED_CLIENTS)
        self._monitor: asyncio.base_events.Server | None = None
        self.operators: TrustedOperators = TrustedOperators([])
        self.resolver: MemoryResolver | None = None
        if config.operator_mode:
            self.operators = TrustedOperators.from_jwts(config.operator_jwts)
            if config.system_account is None and len(self.operators.operators) == 1:
                config.system_account = self.operators.operators[0].system_account or None
            self.resolver = MemoryResolver(self.operators)
            for token in config.preload.values():
                self.resolver.store(token)
            if config.resolver_dir is not None and config.resolver_dir.is_dir():
                for path in sorted(config.resolver_dir.glob("*.jwt")):
                    try:
                        self.resolver.store(path.read_text().strip())
                    except (OSError, TrustkitError) as exc:
                        self.log(f"skipping {path.name}: {exc}")
        # the server side of auth callout (broker/callout_client.py); its curve key is INFO's xkey
        self.callout = CalloutClient(self)
        #: CONNECT signature checks in a worker process (operator mode; started by start())
        self.verifier: Verifier | None = None
        for warning in config.warnings:
            self.log(warning)
        self.info_base: dict[str, Any] = {
            "server_id": self.server_key.public_key,
            "server_name": config.server_name or self.server_key.public_key,
            "version": VERSION,
            "proto": 1,
            "go": "python",
            "host": config.host,
            "port": config.port,
            "headers": True,
            "auth_required": config.info_auth_required or None,  # false with a no_auth_user
            "tls_required": config.tls is not None or None,
            "tls_verify": (config.tls is not None and config.tls.verify) or None,
            "max_payload": config.max_payload,
            "xkey": self.callout.xkey.public_key,
        }
        self.info_base = {k: v for k, v in self.info_base.items() if v is not None}
        self.info_head = b""
        self.render_info()
        self._nonces: list[bytes] = []
        # the auth and ping timers of every connection: one heap of (when, kind, cid) and one
        # loop timer for its earliest entry (Broker.arm_timers); the connections by cid, while
        # their timers run (the heap holds no connection, so a closed one is freed at once)
        self.timers: list[tuple[float, int, int]] = []
        self.timed: dict[int, Conn] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self.timers_dead = 0  # connections lost since the heap was last compacted
        self._server: asyncio.base_events.Server | None = None
        self._expiring: asyncio.TimerHandle | None = None  # the resolver dir's expiry check
        # the system account's claims requests (UPDATE, LOOKUP, LIST, PACK, DELETE)
        self.system = SystemRequests(self)

    def render_info(self) -> None:
        """Render :attr:`info_base` (after any change to it) as the head of every INFO:
        ``INFO {<fields>,"client_id":`` (the connection's fields follow)."""
        head = orjson.dumps(self.info_base)[:-1]
        self.info_head = b"INFO " + head + (b',"client_id":' if len(head) > 1 else b'"client_id":')

    def next_nonce(self) -> bytes:
        """A fresh nonce as nats-server makes it: 11 random bytes, unpadded base64url (15 bytes).
        The random bytes are drawn in batches."""
        pool = self._nonces
        if not pool:
            raw = secrets.token_bytes(11 * NONCE_BATCH)
            b64 = binascii.b2a_base64
            pool.extend(
                b64(raw[i : i + 11], newline=False)[:15].translate(_URLSAFE) for i in range(0, len(raw), 11)
            )
        return pool.pop()

    # --- connection timers ----------------------------------------------------------------
    # Every connection has an auth timer (until CONNECT, when auth is required) and a ping timer.
    # Instead of two loop timers per connection, each is an entry in one heap, and one loop timer
    # fires for the earliest: each still fires at its own time (when its own timer would have).
    _AUTH, _PING = 0, 1

    def arm_timers(self, conn: Conn) -> None:
        """Start ``conn``'s auth timer (``auth_timeout``) and ping timer (``ping_interval``)."""
        cfg = self.config
        now = asyncio.get_running_loop().time()
        timers = self.timers
        cid = conn.cid
        self.timed[cid] = conn
        if self.auth_required:
            heapq.heappush(timers, (now + cfg.auth_timeout, self._AUTH, cid))
        if cfg.ping_interval > 0:
            heapq.heappush(timers, (now + cfg.ping_interval, self._PING, cid))
        if timers and timers[0][0] < self._sweep_at:
            self._arm_sweep()
        if self.timers_dead > 1024 and self.timers_dead * 2 > len(timers):
            # the entries of lost connections, dropped (as the loop drops cancelled timers)
            timed = self.timed
            timers[:] = [e for e in timers if e[2] in timed]
            heapq.heapify(timers)
            self.timers_dead = 0

    def disarm_timers(self, conn: Conn) -> None:
        """``conn`` is gone: its entries are skipped, and dropped later."""
        if self.timed.pop(conn.cid, None) is not None:
            self.timers_dead += 1

    def _arm_sweep(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._sweep_at = math.inf
        if self.timers:
            self._sweep_at = when = self.timers[0][0]
            self._sweep = asyncio.get_running_loop().call_at(when, self._run_timers)

    def _run_timers(self) -> None:
        self._sweep = None
        self._sweep_at = math.inf
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = now + getattr(loop, "_clock_resolution", 0.001)  # what the loop itself counts as due
        timers = self.timers
        timed = self.timed
        again: list[int] = []  # ping timers to fire again (after this sweep, however short the interval)
        try:
            while timers and timers[0][0] <= due:
                _, kind, cid = heapq.heappop(timers)
                conn = timed.get(cid)
                if conn is None:
                    continue
                if kind == self._AUTH:
                    conn.auth_timer()
                elif conn.ping_timer():
                    again.append(cid)
        finally:
            # (an error in one connection's timer is the loop's to report; the others still run)
            when = now + self.config.ping_interval
            for cid in again:
                heapq.heappush(timers, (when, self._PING, cid))
            self._arm_sweep()

    def learn_subject(self, subject_b: bytes, subject: str) -> bool:
        """Remember a published subject for :meth:`Conn.pubs`'s fast path if it may take it (a
        valid literal subject outside ``$SYS.``); False if not."""
        if subject.startswith("$SYS.") or not subjects.is_valid(subject, wildcards=False):
            return False
        cache = self.subjects
        if len(cache) >= SUBJECT_CACHE_MAX:
            cache.clear()
        cache[subject_b] = subject
        return True

    def perms_state(self, perms: CompiledPermissions) -> _PermsState:
        """The :class:`_PermsState` of ``perms``; equal users share their compiled permissions
        (trustkit.trust.compile_permissions), so this is looked up by identity."""
        ps = self._perms_states.get(id(perms))
        if ps is None or ps.perms is not perms:
            if len(self._perms_states) >= PERMS_STATES_MAX:
                self._perms_states.clear()
            ps = self._perms_states[id(perms)] = _PermsState(perms, self.verdicts_for(("pub", perms.pub)))
        return ps

    def verdicts_for(self, key: tuple[str, object]) -> _Verdicts:
        """The verdict cache shared by the connections with the permissions ``key``: ("pub",
        publish permissions) or ("deny", subscribe deny entries)."""
        v = self.verdicts.get(key)
        if v is None:
            v = self.verdicts[key] = _Verdicts()
        return v

    def next_cid(self) -> int:
        self._cid += 1
        return self._cid

    def lookup_account(self, key: str) -> AccountClaims | None:
        return self.resolver(key) if self.resolver is not None else None

    def account(self, key: str, claims: AccountClaims | None) -> Account:
        acct = self.accounts.get(key)
        if acct is None:
            acct = self.accounts[key] = Account(key, claims)
            self.sharing.load(acct, refresh=False)  # its mappings, exports and imports
        elif claims is not None and claims is not acct.claims:
            acct.claims = claims
            self.sharing.load(acct)
        return acct

    # --- message routing ------------------------------------------------------------------
    def deliver(
        self,
        account: Account,
        sender: Conn | None,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
        from_service: bool = False,
    ) -> bool:
        """Route a message in ``account``; True if anybody got it. ``from_service``: it came
        through a service import (then stream imports do not carry it on, as in nats-server)."""
        result = account.router.match(subject)
        if not result:
            return False
        delivered = False
        for sub in result.plain:
            if type(sub) is ConnSub:
                delivered |= self._deliver_one(sub, sender, subject, reply, headers, payload)
            else:  # an import's subscription (broker/sharing.py)
                delivered |= self.sharing.deliver(sub, sender, subject, reply, headers, payload, from_service)
        if result.queues:
            delivered |= self.deliver_queues(
                result.queues, sender, subject, reply, headers, payload, from_service
            )
        return delivered

    def deliver_queues(
        self,
        queues: Mapping[str, tuple[Subscription, ...]],
        sender: Conn | None,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
        from_service: bool,
    ) -> bool:
        """One member of each queue group gets the message; True if anybody got it. As in
        nats-server's processMsgResults, the members are tried from a random one on until one
        takes the message (one that is closed, the sender without echo, or denied by its
        subscribe deny filter does not)."""
        delivered = False
        for members in queues.values():
            n = len(members)
            start = secrets.randbelow(n) if n > 1 else 0
            for k in range(n):
                sub = members[(start + k) % n]
                if sub.conn.closed:
                    continue
                if type(sub) is ConnSub:
                    ok = self._deliver_one(sub, sender, subject, reply, headers, payload)
                else:
                    ok = self.sharing.deliver(sub, sender, subject, reply, headers, payload, from_service)
                if ok:
                    delivered = True
                    break
        return delivered

    def _deliver_one(
        self,
        sub: ConnSub,
        sender: Conn | None,
        subject: str,
        reply: str | None,
        headers: bytes | None,
        payload: bytes,
    ) -> bool:
        conn: Conn = sub.conn
        if conn.closed or (conn is sender and sender is not None and not sender.echo):
            return False
        if conn.deny is not None and conn.denied(subject, sub.queue):
            return False
        # the frames P.msg / P.hmsg build, in pieces: the payload is copied once, by the flush
        subject_b = subject.encode("utf-8", "surrogateescape")
        reply_b = reply.encode("utf-8", "surrogateescape") + b" " if reply else b""
        n = len(payload)
        if headers is None:
            conn.send_msg(b"MSG %b%b%b%d\r\n" % (subject_b, sub.msg_sid, reply_b, n), None, payload)
        else:
            hl = len(headers)
            if conn.headers:
                head = b"HMSG %b%b%b%d %d\r\n" % (subject_b, sub.msg_sid, reply_b, hl, hl + n)
                conn.send_msg(head, headers, payload)
            else:
                conn.send_msg(b"MSG %b%b%b%d\r\n" % (subject_b, sub.msg_sid, reply_b, n), None, payload)
            n += hl
        conn.out_msgs += 1
        conn.out_bytes += n
        if reply and conn.resp_perms:
            conn.note_reply(reply)
        sub.delivered += 1
        if sub.max and sub.delivered >= sub.max:
            conn._remove_sub(sub)
        return True

    def schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_pending = False
        self.flush_now()

    def flush_now(self) -> None:
        """Write what every connection has pending (once per loop turn, or sooner after a large
        read, so that subscribers get a long run of messages while it is still being parsed)."""
        self.backlog = 0
        conns, self.to_flush = self.to_flush, []
        for conn in conns:
            conn.flush()

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tls = self.config.tls
        first = tls is not None and tls.handshake_first
        direct = not first and _direct_accept(loop)
        self._server = await loop.create_server(
            self._new_conn,
            self.config.host,
            self.config.port,
            reuse_address=True,
            ssl=tls.context() if tls is not None and first else None,
            ssl_handshake_timeout=tls.timeout if tls is not None and first else None,
            backlog=LISTEN_BACKLOG,
            start_serving=not direct,
        )
        if direct:
            for listener in self._server._sockets or ():  # type: ignore[attr-defined]
                listener.listen(LISTEN_BACKLOG)  # what Server.start_serving would do
                loop.add_reader(listener.fileno(), self._accept, loop, listener)
        if self.operator_mode and wanted():
            self.verifier = Verifier(self.log)
            self.verifier.start()
        if self.system.store is not None:
            self._expiring = loop.call_later(EXPIRE_CHECK, self._expire_jwts)
        self.system.start_events()  # the statsz heartbeat, with a system account
        sock = self._server.sockets[0]
        self.config.port = sock.getsockname()[1]
        self.info_base["port"] = self.config.port
        self.render_info()
        if self.config.http_port is not None:
            from broker.monitor import start_monitor

            self._monitor = await start_monitor(self, self.config.host, self.config.http_port)
            self.config.http_port = self._monitor.sockets[0].getsockname()[1]

    def bcrypt_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads that compare bcrypt passwords and tokens (started on first use), apart
        from the loop's default executor so that a flood of logins does not delay other work."""
        if self._bcrypt_pool is None:
            self._bcrypt_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="bcrypt"
            )
        return self._bcrypt_pool

    def _accept(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
        """Accept what is waiting on ``listener`` and start each connection's transport at once
        (asyncio's own accept runs a task and a future per connection: ~15 us more per connect)."""
        make = loop._make_socket_transport  # type: ignore[attr-defined]
        for _ in range(ACCEPT_BACKLOG):
            try:
                sock, addr = listener.accept()
                sock.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # out of descriptors or memory: pause accepting a moment
                self.log(f"accept error: {exc}")
                loop.remove_reader(listener.fileno())
                loop.call_later(ACCEPT_RETRY, self._accept_again, loop, listener)
                return
            try:
                make(sock, Conn(self), None, extra={"peername": addr})
            except Exception as exc:  # one connection's failure ends only it
                self.log(f"cannot start a connection from {addr}: {exc}")
                sock.close()

    def _accept_again(self, loop: asyncio.AbstractEventLoop, listener: socket.socket) -> None:
        if listener.fileno() != -1:  # not closed meanwhile (Broker.close)
            loop.add_reader(listener.fileno(), self._accept, loop, listener)

    def _expire_jwts(self) -> None:
        self.system.expire_jwts()
        self._expiring = asyncio.get_running_loop().call_later(EXPIRE_CHECK, self._expire_jwts)

    def _new_conn(self) -> Conn:
        # registered in broker.conns by Conn.connection_made: with a TLS-first listener a failed
        # handshake never reaches the protocol, and must leave nothing behind
        return Conn(self)

    def closed_stats(self, conn: Conn) -> None:
        t = self.closed_totals
        t[0] += conn.in_msgs
        t[1] += conn.in_bytes
        t[2] += conn.out_msgs
        t[3] += conn.out_bytes

    async def close(self) -> None:
        # nats-server stops its events first (a SHUTDOWN event), then closes the connections
        self.system.shutdown_events()
        if self._expiring is not None:
            self._expiring.cancel()
            self._expiring = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.verifier is not None:
            self.verifier.close()
            self.verifier = None
        if self._bcrypt_pool is not None:
            self._bcrypt_pool.shutdown(wait=False, cancel_futures=True)
            self._bcrypt_pool = None
        if self._monitor is not None:
            self._monitor.close()
            await self._monitor.wait_closed()
        for conn in list(self.conns):
            if conn.close_reason is None:
                conn.close_reason = SERVER_SHUTDOWN
            conn.close()
