"""Broker throughput beside the real nats-server, same machine, same run.

    .venv/bin/python bench/broker.py [--messages 200000]

Raw-socket pipelined clients (the client must not be the bottleneck). Traffic cannot be
short-cut: subjects spread over 1,000 names in random order, payloads 16 B - 1 KiB, received
through a wildcard subscription. Reports msgs/s for 1 → 1 and publish-only (no subscriber),
for both servers in open mode, and the ratio.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import SERVER_KINDS, make_server


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while b"\r\n" not in buf:
        buf += s.recv(4096)
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\nPING\r\n')
    buf = b""
    while b"PONG\r\n" not in buf:
        buf += s.recv(4096)
    return s


def _traffic(n: int, seed: int = 7) -> tuple[bytes, int]:
    rng = random.Random(seed)
    subjects = [f"bench.{i % 37}.{i}".encode() for i in range(1000)]
    parts = []
    total = 0
    for _ in range(n):
        size = rng.randint(16, 1024)
        total += size
        parts.append(b"PUB %s %d\r\n%s\r\n" % (rng.choice(subjects), size, b"x" * size))
    return b"".join(parts), total


def _drain_until_pong(s: socket.socket) -> None:
    s.sendall(b"PING\r\n")
    tail = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        tail = (tail + chunk)[-16:]
        if b"PONG\r\n" in tail:
            return


def one_to_one(port: int, data: bytes, n: int) -> float:
    sub = _connect(port)
    sub.sendall(b"SUB bench.> 1\r\nPING\r\n")
    buf = b""
    while b"PONG\r\n" not in buf:
        buf += sub.recv(4096)
    pub = _connect(port)
    received = 0
    done = threading.Event()

    def reader() -> None:
        nonlocal received
        carry = b""
        while received < n:
            chunk = sub.recv(1 << 20)
            if not chunk:
                break
            block = carry + chunk
            received += block.count(b"MSG bench.")
            carry = block[-10:]  # a marker split across reads is counted once, in the next block
            received -= carry.count(b"MSG bench.")
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t0 = time.perf_counter()
    pub.sendall(data)
    done.wait(120)
    elapsed = time.perf_counter() - t0
    pub.close()
    sub.close()
    if received < n:
        raise RuntimeError(f"only {received} of {n} messages arrived")
    return n / elapsed


def publish_only(port: int, data: bytes, n: int) -> float:
    pub = _connect(port)
    t0 = time.perf_counter()
    pub.sendall(data)
    _drain_until_pong(pub)
    elapsed = time.perf_counter() - t0
    pub.close()
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.messages
    data, payload_bytes = _traffic(n)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in SERVER_KINDS:
            srv = make_server(kind, "", Path(tmp) / kind)
            with srv:
                port = srv.port
                results[kind] = {
                    "1->1 msgs/s": max(one_to_one(port, data, n) for _ in range(args.rounds)),
                    "publish-only msgs/s": max(publish_only(port, data, n) for _ in range(args.rounds)),
                }
    print(f"# {n} messages, {payload_bytes / n:.0f} B mean payload, 1,000 subjects, wildcard subscriber")
    print(f"{'':24}{'nats-server':>14}{'trustkit-broker':>18}{'ratio':>8}")
    for metric in ("1->1 msgs/s", "publish-only msgs/s"):
        a, b = results["nats-server"][metric], results["trustkit-broker"][metric]
        print(f"{metric:24}{a:14,.0f}{b:18,.0f}{b / a:8.2f}")


if __name__ == "__main__":
    main()
