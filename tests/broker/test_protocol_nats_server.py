"""broker.protocol against the real nats-server: the same bytes, the same verdict.

Mutated client streams (case flips, blanks, stray CR/LF, digits, random bytes, lines and payloads
around the limits) go to a nats-server with ``max_control_line`` and ``max_payload`` lowered; what it
sends back (its ``-ERR``, whether it closes, the messages echoed to a ``SUB >``, the PONGs) must be
what the parser's operations predict. Each worker connects as the user of its own account, so
workers do not see each other's messages.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from broker.protocol import PONG_FRAME, HPub, Parser, Ping, ProtocolError, Pub, Unsub, hmsg, msg
from tests.natsserver import NatsServer

pytestmark = pytest.mark.real

MCL, MAXP = 100, 100
WORKERS = 24
CASES = 600


def prefix(worker: int) -> bytes:
    connect = b'{"verbose":false,"pedantic":false,"headers":true,"user":"u%d","pass":"p"}' % worker
    return b"CONNECT " + connect + b"\r\nSUB > 1\r\n"


def predict(data: bytes) -> tuple[bytes, bool]:
    """What nats-server sends for ``data`` (after the prefix, before a final PING), and whether it
    closes: messages to sid 1, PONGs and the -ERR, from the parser's operations."""
    p = Parser(MCL, MAXP)
    try:
        ops, error = p.feed(prefix(0) + data + b"PING\r\n"), None
    except ProtocolError as e:
        ops, error = e.ops, e
    out, live, delivered, limit = [], True, 0, None
    for op in ops:
        if isinstance(op, Pub | HPub) and live and all(op.subject.split(".")):
            if isinstance(op, Pub):
                out.append(msg(op.subject, "1", op.reply, op.payload))
            else:
                out.append(hmsg(op.subject, "1", op.reply, op.headers, op.payload))
            delivered += 1
            live = limit is None or delivered < limit
        elif isinstance(op, Unsub) and op.sid == "1" and live:
            limit = op.max if op.max and op.max > delivered else None
            live = limit is not None
        elif isinstance(op, Ping):
            out.append(PONG_FRAME)
    if error is not None:
        out.append(error.frame)
    return b"".join(out), error is not None


def frames(out: bytes) -> list[tuple[object, ...]]:
    """Server output as frames: messages to sid 1, PONG, -ERR. Other sids, the non-fatal
    'Invalid Subject' of a SUB, and how sizes are spelled (nats-server echoes the client's digits,
    and sends an HPUB with an empty header as MSG) are the broker's business, not the parser's."""
    res: list[tuple[object, ...]] = []
    i = 0
    while i < len(out):
        e = out.find(b"\r\n", i)
        if e < 0:
            res.append((b"partial", out[i:]))
            break
        line = out[i:e]
        if line.startswith((b"MSG ", b"HMSG ")):
            parts = line.split(b" ")
            size = int(parts[-1])
            if parts[2] == b"1":
                body = out[e + 2 : e + 2 + size]
                hdr = int(parts[-2]) if parts[0] == b"HMSG" else 0
                reply = parts[3] if len(parts) == (6 if parts[0] == b"HMSG" else 5) else None
                res.append((parts[1], reply, body[:hdr], body[hdr:]))
            i = e + 2 + size + 2
            continue
        i = e + 2
        if line != b"-ERR 'Invalid Subject'":
            res.append((line,))
    return res


SUBJECTS = [b"foo", b"foo.bar", b"a.b.c", b"x"]


def frame(rng: random.Random) -> bytes:
    s = rng.choice(SUBJECTS) if rng.random() < 0.7 else b"long." * rng.randrange(18, 21) + b"x"
    p = rng.randbytes(rng.randrange(0, 8) if rng.random() < 0.8 else rng.randrange(90, 110))
    r = rng.random()
    if r < 0.3:
        return b"PUB %b %d\r\n%b\r\n" % (s, len(p), p)
    if r < 0.45:
        return b"PUB %b rep.ly %d\r\n%b\r\n" % (s, len(p), p)
    if r < 0.6:
        h = b"NATS/1.0\r\nA: b\r\n\r\n"
        return b"HPUB %b %d %d\r\n%b%b\r\n" % (s, len(h), len(h) + len(p), h, p)
    if r < 0.7:
        return b"SUB %b %d\r\n" % (s, rng.randrange(2, 9))
    if r < 0.75:
        return b"SUB %b q %d\r\n" % (s, rng.randrange(2, 9))
    if r < 0.8:
        return b"UNSUB %d %d\r\n" % (rng.randrange(2, 9), rng.randrange(0, 3))
    return rng.choice([b"PING\r\n", b"PING\r\n", b"PONG\r\n", b"+OK\r\n"])


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(b))
        m = rng.random()
        if m < 0.15 and chr(b[i]).isalpha():
            b[i] ^= 0x20
        elif m < 0.3:
            b.insert(i, rng.choice(b" \t"))
        elif m < 0.4:
            b.insert(i, 13)
        elif m < 0.5:
            b.insert(i, 10)
        elif m < 0.6 and len(b) > 1:
            del b[i]
        elif m < 0.7:
            b[i] = rng.choice(b"0123456789")
        elif m < 0.85:
            b.insert(i, rng.randrange(256))
        else:
            b[i] = rng.randrange(256)
    return bytes(b)


FIXED = [
    b"PUB foo 3\nabc\r\n",
    b"pub\tfoo  \t 3\r\nabc\r\n",
    b"PUB \nfoo 3\r\nabc\r\n",
    b"PUB foo\rbar 3\r\nabc\r\n",
    b"PUB foo\r 3\nabc\r\n",
    b"PUB foo 3\r\r\nabc\r\n",
    b"PUB foo 000000003\r\nabc\r\n",
    b"PUB foo 0000000003\r\nabc\r\n",
    b"PUB foo 101\r\n",
    b"HPUB foo 5 3\r\n",
    b"HPUB foo 0 3\r\nabc\r\n",
    b"PINGxyz\r\n+OKjunk\n",
    b"-ERR 'x'\r\n",
    b"INFO {}\r\n",
    b"INFO nope\r\n",
    b"SUB " + b"a" * 98 + b" 1\r\n",
    b"SUB " + b"a" * 99 + b" 1\r\n",
    b"UNSUB 1 x\r\n",
    b"UNSUB 1 2\r\nPUB a 1\r\nx\r\nPUB b 1\r\ny\r\nPUB c 1\r\nz\r\n",
]


async def exchange(port: int, worker: int, data: bytes, pongs: int, timeout: float) -> tuple[bytes, bool]:
    """Send, then read until the server closes, ``pongs`` PONGs came back, or ``timeout``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()  # INFO
        writer.write(prefix(worker) + data + b"PING\r\n")
        await writer.drain()
        out = b""
        while pongs == 0 or frames(out).count((b"PONG",)) < pongs:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                return out, True
            out += chunk
        return out, False
    except TimeoutError:
        return out, False
    except ConnectionResetError:
        return out, True
    finally:
        writer.close()


def test_parser_agrees_with_nats_server(tmp_path: Path) -> None:
    rng = random.Random(20260105)
    cases = list(FIXED)
    for _ in range(CASES):
        parts = [frame(rng) for _ in range(rng.randrange(1, 5))]
        k = rng.randrange(len(parts))
        if rng.random() < 0.9:
            parts[k] = mutate(rng, parts[k])
        cases.append(b"".join(parts))
    users = "".join(f"  A{i}: {{ users: [ {{user: u{i}, password: p}} ] }}\n" for i in range(WORKERS))
    config = f"max_control_line: {MCL}\nmax_payload: {MAXP}\naccounts: {{\n{users}}}"

    async def run(port: int) -> list[str]:
        queue = list(enumerate(cases))
        mismatches: list[str] = []

        async def worker(w: int) -> None:
            while queue:
                _, data = queue.pop()
                expected, closes = predict(data)
                # Open and without the final PONG, the server is waiting for more bytes: a short wait.
                pongs = 0 if closes else frames(expected).count((b"PONG",))
                timeout = 2.0 if closes or expected.endswith(PONG_FRAME) else 0.2
                out, closed = await exchange(port, w, data, pongs, timeout)
                if frames(out) != frames(expected) or closed != closes:
                    mismatches.append(
                        f"{data!r}\n  parser: {expected!r} {closes}\n  server: {out!r} {closed}"
                    )

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
        return mismatches

    with NatsServer(config, tmp_path) as server:
        mismatches = asyncio.run(run(server.port))
    assert not mismatches, "\n".join(mismatches[:10])
