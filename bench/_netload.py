"""Raw-socket NATS load for bench/broker.py: pipelined clients that cost less than the server.

No client library: frames are prepared before the clock starts, replies are counted by their
``MSG <prefix>`` marker with a C-level ``bytes.count`` (payloads are ``x`` bytes, so a marker
can only be a message header), and every -ERR a server sends stops the benchmark with its text.
Everything is loopback; every socket opened here is closed before a function returns (the idle
connections of :func:`connect_many` are handed to the caller, who closes them).
"""

from __future__ import annotations

import base64
import json
import random
import select
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from trustkit.nkeys import KeyPair
from trustkit.trust import sign_nonce

HOST = "127.0.0.1"
#: how long a benchmark waits with no progress before it reports a stall
IDLE_TIMEOUT = 10.0
_X = b"x" * 1024


@dataclass(frozen=True)
class Auth:
    """A user's JWT and key pair: what a creds file holds."""

    token: str
    key: KeyPair


class ServerError(RuntimeError):
    """The server refused something (an -ERR line) or went away."""


def connect_frame(info_line: bytes, auth: Auth | None, name: str = "bench") -> bytes:
    """CONNECT (as nats-py sends it) + PING, answering the INFO line's nonce when ``auth``."""
    if auth is None:
        return _connect_frame(None, None, name)
    nonce = json.loads(info_line[5:])["nonce"]
    return _connect_frame(auth.token, sign_nonce(auth.key, nonce), name)


def _connect_frame(token: str | None, sig: str | None, name: str) -> bytes:
    body: dict[str, object] = {
        "verbose": False,
        "pedantic": False,
        "protocol": 1,
        "headers": True,
        "no_responders": True,
        "lang": "python3",
        "version": "bench",
        "name": name,
    }
    if token is not None:
        body["jwt"] = token
        body["sig"] = sig  # the last field (_connect_head)
    return b"CONNECT " + json.dumps(body, separators=(",", ":")).encode() + b"\r\nPING\r\n"


def _err(data: bytes) -> str | None:
    i = data.find(b"-ERR")
    if i < 0:
        return None
    return data[i : data.find(b"\r\n", i) if b"\r\n" in data[i:] else i + 200].decode(errors="replace")


def wait_pong(s: socket.socket, buf: bytes = b"") -> None:
    """Read until PONG; raise :class:`ServerError` on -ERR or close."""
    while b"PONG\r\n" not in buf:
        err = _err(buf)
        if err:
            raise ServerError(err)
        chunk = s.recv(65536)
        if not chunk:
            raise ServerError(f"connection closed before PONG: {buf[-200:]!r}")
        buf += chunk
    err = _err(buf)
    if err:
        raise ServerError(err)


def open_conn(
    port: int, auth: Auth | None = None, *, name: str = "bench", timeout: float = 15.0
) -> socket.socket:
    """A connected, CONNECTed (and authenticated when ``auth``) blocking socket."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ServerError("closed before INFO")
            buf += chunk
        line, rest = buf.split(b"\r\n", 1)
        s.sendall(connect_frame(line, auth, name))
        wait_pong(s, rest)
    except BaseException:
        s.close()
        raise
    return s


def subscribe(s: socket.socket, *subjects: str, sid: int = 1) -> None:
    frames = b"".join(b"SUB %s %d\r\n" % (subj.encode(), sid + i) for i, subj in enumerate(subjects))
    s.sendall(frames + b"PING\r\n")
    wait_pong(s)


class Counter:
    """Counts ``marker`` in a byte stream read in arbitrary pieces, each occurrence once."""

    __slots__ = ("carry", "count", "keep", "marker")

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.keep = len(marker) - 1
        self.carry = b""
        self.count = 0

    def feed(self, chunk: bytes) -> int:
        m, k = self.marker, self.keep
        n = chunk.count(m)
        if self.carry:  # a marker straddling the previous piece and this one
            n += (self.carry + chunk[:k]).count(m)
        self.carry = chunk[-k:] if len(chunk) >= k else (self.carry + chunk)[-k:]
        self.count += n
        return n


# --- traffic ----------------------------------------------------------------------------------


def subjects(prefix: str, count: int = 1000) -> list[bytes]:
    """``prefix.<i % 37>.<i>``: 1,000 subjects over 37 second-level tokens."""
    return [f"{prefix}.{i % 37}.{i}".encode() for i in range(count)]


@dataclass(frozen=True)
class Traffic:
    """``n`` PUB frames in batches of ``batch`` messages (the last may be shorter)."""

    batches: list[bytes]
    batch: int
    n: int
    payload_bytes: int


def traffic(n: int, seed: int = 7, batch: int = 10_000) -> Traffic:
    """``n`` PUB frames over 1,000 subjects in random order, payloads of 16 B - 1 KiB."""
    rng = random.Random(seed)
    subj = subjects("bench")
    batches = []
    total = 0
    for start in range(0, n, batch):
        parts = []
        for _ in range(min(batch, n - start)):
            size = rng.randint(16, 1024)
            total += size
            parts.append(b"PUB %s %d\r\n%s\r\n" % (rng.choice(subj), size, _X[:size]))
        batches.append(b"".join(parts))
    return Traffic(batches, batch, n, total)


def requests(n: int, inbox: bytes, seed: int) -> list[bytes]:
    """``n`` request frames to ``req.<i % 37>.<i>``, each with its own reply subject."""
    rng = random.Random(seed)
    subj = subjects("req")
    out = []
    for i in range(n):
        size = rng.randint(16, 1024)
        out.append(b"PUB %s %s.%d %d\r\n%s\r\n" % (rng.choice(subj), inbox, i, size, _X[:size]))
    return out


# --- message throughput -----------------------------------------------------------------------


def _read_counting(socks: Sequence[socket.socket], marker: bytes, want: int, progress: list[int]) -> None:
    """Read every socket until ``want`` markers in total arrived (``progress[0]`` counts them);
    stop after IDLE_TIMEOUT without data."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ, Counter(marker))
    total = 0
    try:
        while total < want:
            events = sel.select(IDLE_TIMEOUT)
            if not events:
                break
            for key, _ in events:
                chunk = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                if not chunk:
                    raise ServerError(
                        f"a subscriber was closed by the server after {total} of {want} deliveries"
                        " (a slow consumer?)"
                    )
                if b"-" in chunk and b"-ERR" in chunk:  # memchr first: payloads are "x" bytes
                    raise ServerError(_err(chunk) or "-ERR")
                total += key.data.feed(chunk)
                progress[0] = total
    finally:
        sel.close()


def deliver(
    port: int,
    traffic: Traffic,
    *,
    subscribers: int = 1,
    pub: Auth | None = None,
    sub: Auth | None = None,
    ahead: int = 4,
) -> float:
    """Publish ``traffic`` to ``subscribers`` wildcard subscribers; deliveries/s.

    The publisher stays at most ``ahead`` batches ahead of the slowest reader (about 20 MiB
    per subscriber), so no subscriber nears the servers' 64 MiB slow-consumer limit while the
    pipeline stays full."""
    subs: list[socket.socket] = []
    pub_sock: socket.socket | None = None
    try:
        for i in range(subscribers):
            s = open_conn(port, sub, name=f"sub{i}")
            subscribe(s, "bench.>")
            s.setblocking(False)
            subs.append(s)
        pub_sock = open_conn(port, pub, name="pub")
        want = traffic.n * subscribers
        progress = [0]
        failure: list[BaseException] = []
        finished = threading.Event()

        def reader() -> None:
            try:
                _read_counting(subs, b"MSG bench.", want, progress)
            except BaseException as exc:
                failure.append(exc)
            finally:
                finished.set()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t0 = time.perf_counter()
        for k, batch in enumerate(traffic.batches):
            floor = (k - ahead) * traffic.batch * subscribers
            while progress[0] < floor and not finished.is_set():
                time.sleep(0.0005)
            if finished.is_set():
                break
            pub_sock.sendall(batch)
        t.join()
        elapsed = time.perf_counter() - t0
        if failure:
            raise failure[0]
        if progress[0] < want:
            pub_sock.sendall(b"PING\r\n")
            wait_pong(pub_sock)  # surfaces a publish -ERR, if that is why
            raise ServerError(f"only {progress[0]} of {want} deliveries arrived")
        return want / elapsed
    finally:
        for s in subs:
            s.close()
        if pub_sock is not None:
            pub_sock.close()


def publish_only(port: int, traffic: Traffic, *, pub: Auth | None = None) -> float:
    """Publish with no subscriber; the server has parsed everything when PING's PONG returns."""
    s = open_conn(port, pub, name="pub")
    try:
        t0 = time.perf_counter()
        for batch in traffic.batches:
            s.sendall(batch)
        s.sendall(b"PING\r\n")
        tail = b""
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ServerError("closed during publish")
            tail = tail[-8:] + chunk
            err = _err(tail)
            if err:
                raise ServerError(err)
            if b"PONG\r\n" in tail:
                break
        return traffic.n / (time.perf_counter() - t0)
    finally:
        s.close()


# --- request-reply ----------------------------------------------------------------------------


def _answers(buf: bytes, out: list[bytes]) -> bytes:
    """Responder: one ``PUB <reply>`` per complete ``MSG <subj> <sid> <reply> <size>`` in
    ``buf`` (echoing the payload); returns the incomplete rest."""
    pos = 0
    end = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            break
        if buf.startswith(b"MSG ", pos):
            parts = buf[pos + 4 : eol].split(b" ")
            if len(parts) != 4:
                raise ServerError(f"request without reply subject: {buf[pos:eol]!r}")
            stop = eol + 4 + int(parts[3])
            if stop > end:
                break
            out.append(b"PUB %s %s\r\n" % (parts[2], parts[3]))
            out.append(buf[eol + 2 : stop])
            pos = stop
            continue
        line = buf[pos:eol]
        if line == b"PING":
            out.append(b"PONG\r\n")
        elif line.startswith(b"-ERR"):
            raise ServerError(f"responder: {line.decode(errors='replace')}")
        pos = eol + 2
    return buf[pos:]


class _Peer:
    __slots__ = ("counter", "frames", "next", "out", "pending", "sock")

    def __init__(self, sock: socket.socket, frames: list[bytes] | None) -> None:
        self.sock = sock
        self.frames = frames or []
        self.next = 0
        self.out = bytearray()
        self.pending = b""
        self.counter = Counter(b"MSG _INBOX.")


def request_reply(
    port: int,
    n: int,
    *,
    requesters: int = 10,
    window: int = 20,
    requester: Auth | None = None,
    responder: Auth | None = None,
) -> float:
    """``requesters`` connections keep ``window`` requests each in flight to one raw responder
    subscribed to ``req.>`` that echoes each request to its reply subject; round trips/s."""
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    try:
        resp_sock = open_conn(port, responder, name="responder")
        socks.append(resp_sock)
        subscribe(resp_sock, "req.>")
        peers: list[_Peer] = []
        per = [n // requesters + (1 if i < n % requesters else 0) for i in range(requesters)]
        for i in range(requesters):
            s = open_conn(port, requester, name=f"requester{i}")
            socks.append(s)
            inbox = f"_INBOX.bench{i}x{random.getrandbits(40):x}"
            subscribe(s, inbox + ".*")
            peers.append(_Peer(s, requests(per[i], inbox.encode(), seed=100 + i)))
        resp = _Peer(resp_sock, None)
        for p in [resp, *peers]:
            p.sock.setblocking(False)
            sel.register(p.sock, selectors.EVENT_READ, p)

        def write(p: _Peer, data: bytes) -> None:
            if p.out:
                p.out += data
                return
            try:
                sent = p.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                p.out += data[sent:]
                sel.modify(p.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, p)

        done = 0
        t0 = time.perf_counter()
        for p in peers:
            p.next = min(window, len(p.frames))
            write(p, b"".join(p.frames[: p.next]))
        while done < n:
            events = sel.select(IDLE_TIMEOUT)
            if not events:
                raise ServerError(f"request-reply stalled: {done} of {n} replies")
            for key, mask in events:
                p = key.data
                if mask & selectors.EVENT_WRITE:
                    sent = p.sock.send(p.out)
                    del p.out[:sent]
                    if not p.out:
                        sel.modify(p.sock, selectors.EVENT_READ, p)
                if not mask & selectors.EVENT_READ:
                    continue
                chunk = p.sock.recv(1 << 20)
                if not chunk:
                    raise ServerError("request-reply: a connection was closed")
                if p is resp:
                    out: list[bytes] = []
                    p.pending = _answers(p.pending + chunk if p.pending else chunk, out)
                    if out:
                        write(p, b"".join(out))
                    continue
                if b"-" in chunk and b"-ERR" in chunk:
                    raise ServerError(_err(chunk) or "-ERR")
                got = p.counter.feed(chunk)
                if got:
                    done += got
                    start = p.next
                    p.next = min(start + got, len(p.frames))
                    if p.next > start:
                        write(p, b"".join(p.frames[start : p.next]))
        return n / (time.perf_counter() - t0)
    finally:
        sel.close()
        for s in socks:
            s.close()


# --- connections ------------------------------------------------------------------------------


class _Dial:
    __slots__ = ("auth", "buf", "head", "sent", "sock")

    def __init__(self, sock: socket.socket, auth: Auth | None, head: bytes) -> None:
        self.sock = sock
        self.auth = auth
        self.head = head
        self.buf = b""
        self.sent = False


def _connect_head(auth: Auth | None) -> bytes:
    """:func:`connect_frame`'s bytes up to the value of ``sig`` (its last field); without
    ``auth``, the whole frame."""
    if auth is None:
        return _connect_frame(None, None, "flood")
    frame = _connect_frame(auth.token, "", "flood")
    return frame[: frame.rindex(b'"sig":""') + 7]


def _nonce(info_line: bytes) -> bytes:
    at = info_line.index(b'"nonce":"') + 9
    return info_line[at : info_line.index(b'"', at)]


def connect_many(
    port: int, auths: Sequence[Auth | None], *, inflight: int = 64, keep: bool = False
) -> tuple[float, list[socket.socket]]:
    """One connection per entry of ``auths``: INFO → CONNECT (jwt + nonce signature) → PING →
    PONG, ``inflight`` at a time. Returns connections/s and, when ``keep``, the open sockets
    (else each is closed at its PONG). Raises :class:`ServerError` on any refusal.

    Each CONNECT is prepared up to its ``sig`` before the clock starts; per connection the
    client only reads the nonce from INFO, signs it and sends (the client must cost far less
    than the server it measures)."""
    heads = [_connect_head(auth) for auth in auths]
    tail = b'"}\r\nPING\r\n'
    ep = select.epoll()
    kept: list[socket.socket] = []
    live: dict[int, _Dial] = {}
    nxt = 0
    done = 0
    total = len(auths)

    def start() -> None:
        nonlocal nxt
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        live[s.fileno()] = _Dial(s, auths[nxt], heads[nxt])
        nxt += 1
        s.setblocking(False)
        s.connect_ex((HOST, port))
        ep.register(s.fileno(), select.EPOLLIN)

    try:
        t0 = time.perf_counter()
        while nxt < total and len(live) < inflight:
            start()
        while done < total:
            events = ep.poll(IDLE_TIMEOUT)
            if not events:
                raise ServerError(f"connect flood stalled: {done} of {total} connected")
            for fd, _ in events:
                dial = live[fd]
                s = dial.sock
                try:
                    chunk = s.recv(65536)
                except ConnectionError as exc:
                    raise ServerError(f"connection {done + len(live)} failed: {exc}") from None
                if not chunk:
                    raise ServerError(f"closed during CONNECT after {done} connections: {dial.buf!r}")
                buf = dial.buf + chunk
                if not dial.sent:
                    if b"\r\n" not in buf:
                        dial.buf = buf
                        continue
                    line, buf = buf.split(b"\r\n", 1)
                    auth = dial.auth
                    if auth is None:
                        s.send(dial.head)
                    else:
                        sig = base64.urlsafe_b64encode(auth.key.sign(_nonce(line))).rstrip(b"=")
                        s.send(dial.head + sig + tail)
                    dial.sent = True
                err = _err(buf)
                if err:
                    raise ServerError(err)
                if b"PONG\r\n" not in buf:
                    dial.buf = buf
                    continue
                ep.unregister(fd)
                del live[fd]
                done += 1
                if keep:
                    kept.append(s)
                else:
                    s.close()
                if nxt < total:
                    start()
        rate = total / (time.perf_counter() - t0)
    except BaseException:
        for s in kept:
            s.close()
        raise
    finally:
        ep.close()
        for dial in live.values():
            dial.sock.close()
    return rate, kept


def revoke_and_wait(
    system: socket.socket, victim: socket.socket, account_jwt: str, seq: int
) -> tuple[float, bytes]:
    """Send ``$SYS.REQ.CLAIMS.UPDATE`` with ``account_jwt`` on the system user's connection and
    read ``victim`` until the server closes it. Returns (seconds from the send to the close,
    what the victim received); the update's reply is read afterwards by :func:`update_reply`."""
    body = account_jwt.encode()
    frame = b"PUB $SYS.REQ.CLAIMS.UPDATE _INBOX.rev.%d %d\r\n%s\r\n" % (seq, len(body), body)
    victim.settimeout(IDLE_TIMEOUT)
    got = b""
    t0 = time.perf_counter()
    system.sendall(frame)
    try:
        while True:
            chunk = victim.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise ServerError(f"revoked client not closed after {IDLE_TIMEOUT}s (got {got!r})") from None
    return time.perf_counter() - t0, got


def update_reply(system: socket.socket, seq: int) -> bytes:
    """The payload of the server's reply to update ``seq``."""
    buf = b""
    marker = b"MSG _INBOX.rev.%d " % seq
    while True:
        head = buf.find(marker)
        eol = buf.find(b"\r\n", head) if head >= 0 else -1
        if eol >= 0:
            size = int(buf[head:eol].split(b" ")[-1])
            if len(buf) >= eol + 2 + size:
                return buf[eol + 2 : eol + 2 + size]
        chunk = system.recv(65536)
        if not chunk:
            raise ServerError("system connection closed")
        buf += chunk
