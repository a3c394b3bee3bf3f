"""Parser speed: broker.protocol.Parser over a stream of mixed client operations.

    .venv/bin/python bench/protocol.py [--mb 32] [--read 65536] [--rounds 3] [--json out.json]

The stream is mostly PUBs (payloads of 16 B to 1 KiB, a third with a reply subject), with HPUBs,
SUB/UNSUB and PING mixed in, cut into reads of ``--read`` bytes as a socket would deliver them.
Prints MB/s and ops/s of ``Parser.feed`` (best of ``--rounds``) for that mix, for small PUBs
only (the per-operation cost) and for 64 KiB PUBs (the per-byte cost).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

from broker.protocol import Parser


def mixed(rng: random.Random, target: int) -> bytes:
    parts = [b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"name":"bench"}\r\n']
    size = len(parts[0])
    sid = 0
    while size < target:
        r = rng.random()
        subject = b"sensors.%d.%s" % (rng.randrange(1000), rng.choice([b"temp", b"power", b"state"]))
        if r < 0.80:
            payload = rng.randbytes(rng.choice([16, 64, 128, 512, 1024]))
            if rng.random() < 0.33:
                part = b"PUB %b _INBOX.abcdef.%d %d\r\n%b\r\n" % (subject, sid, len(payload), payload)
            else:
                part = b"PUB %b %d\r\n%b\r\n" % (subject, len(payload), payload)
        elif r < 0.90:
            hdr = b"NATS/1.0\r\nNats-Msg-Id: %d\r\n\r\n" % sid
            payload = rng.randbytes(128)
            part = b"HPUB %b %d %d\r\n%b%b\r\n" % (subject, len(hdr), len(hdr) + len(payload), hdr, payload)
        elif r < 0.95:
            sid += 1
            part = b"SUB %b q%d %d\r\n" % (subject, sid % 4, sid)
        elif r < 0.98:
            part = b"UNSUB %d 10\r\n" % sid
        else:
            part = b"PING\r\n"
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def small_pubs(target: int) -> bytes:
    one = b"PUB sensors.42.power 16\r\n0123456789abcdef\r\n"
    return one * (target // len(one))


def big_pubs(target: int) -> bytes:
    one = b"PUB bulk.data 65536\r\n" + bytes(65536) + b"\r\n"
    return one * max(1, target // len(one))


def run(stream: bytes, read: int, rounds: int) -> tuple[float, float, int]:
    chunks = [stream[i : i + read] for i in range(0, len(stream), read)]
    best = float("inf")
    nops = 0
    for _ in range(rounds):
        p = Parser()
        nops = 0
        t0 = time.perf_counter()
        for c in chunks:
            nops += len(p.feed(c))
        best = min(best, time.perf_counter() - t0)
    return len(stream) / best / 1e6, nops / best, nops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=32.0)
    ap.add_argument("--read", type=int, default=65536)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    target = int(a.mb * 1e6)
    rng = random.Random(5)
    results = {}
    print(f"python {platform.python_version()}, {a.mb:g} MB per stream, reads of {a.read} bytes")
    for name, stream in [
        ("mixed", mixed(rng, target)),
        ("small PUB (16 B)", small_pubs(target)),
        ("large PUB (64 KiB)", big_pubs(target)),
    ]:
        mbps, opss, nops = run(stream, a.read, a.rounds)
        results[name] = {"MB/s": round(mbps, 1), "ops/s": round(opss), "ops": nops}
        print(f"{name:20s} {mbps:9.1f} MB/s {opss:12,.0f} ops/s   ({nops:,} ops)")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
