"""Routing speed: broker.router's trie and match cache beside a linear scan, measured in the same run.

    .venv/bin/python bench/router.py [--seconds 1.0] [--rounds 3] [--sizes 1000,10000] [--json out.json]

For each table size, random subscriptions over a 4-level subject space (about 70% literal, 20%
with ``*``, 10% ending in ``>``, a fifth of them in queue groups) are matched against random
literal publish subjects. Prints ops/s for:

* ``linear scan``: every subscription tested with ``trustkit.subject.matches`` (what amqtt does);
* ``trie, no cache``: ``Router(cache_size=0).match`` — the cost of a cache miss;
* ``trie + cache, hot``: 256 subjects published to over and over (all cache hits);
* ``trie + cache, cold``: subjects drawn from the whole space (~160k), so mostly misses and sweeps;
* ``has_interest (no cache)``: the early-exit walk;
* ``sub+unsub literal`` / ``wildcard`` / ``leading *``: one insert and one remove with a warm
  cache (a wildcard change tests the cached subjects, as in nats-server; a literal prefix lets
  most of them be skipped, a leading ``*`` does not).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from broker.router import DEFAULT_CACHE_SIZE, Router, Subscription
from trustkit.subject import matches

LEVEL_TOKENS = 20  # tokens per level: 20**4 = 160k four-token subjects


def rate(fn: Callable[[], object], seconds: float) -> float:
    """ops/s of ``fn`` over about ``seconds`` (batches grow so the clock is read rarely)."""
    batch = 1
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)
        if now - start < seconds / 20:
            batch *= 2


def make_subject(rng: random.Random, vocab: list[list[str]], depth: int) -> str:
    return ".".join(rng.choice(vocab[i]) for i in range(depth))


def make_pattern(rng: random.Random, vocab: list[list[str]]) -> str:
    depth = rng.choice([2, 3, 3, 4, 4, 4])
    toks = [rng.choice(vocab[i]) for i in range(depth)]
    kind = rng.random()
    if kind < 0.2:
        toks[rng.randrange(depth)] = "*"
    elif kind < 0.3:
        toks[rng.randrange(1, depth)] = ">"
        toks = toks[: toks.index(">") + 1]
    return ".".join(toks)


class Conn:
    __slots__ = ()


def scan(subs: list[Subscription], subject: str) -> tuple[list[Subscription], dict[str, list[Subscription]]]:
    plain: list[Subscription] = []
    queues: dict[str, list[Subscription]] = {}
    for s in subs:
        if matches(s.subject, subject):
            if s.queue is None:
                plain.append(s)
            else:
                queues.setdefault(s.queue, []).append(s)
    return plain, queues


def bench_size(n: int, seconds: float, rounds: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    vocab = [[f"l{lv}t{i}" for i in range(LEVEL_TOKENS)] for lv in range(4)]
    conns = [Conn() for _ in range(max(1, n // 10))]
    subs = [
        Subscription(
            make_pattern(rng, vocab), str(i), conns[i % len(conns)], "q" if rng.random() < 0.2 else None
        )
        for i in range(n)
    ]
    cached = Router()
    uncached = Router(cache_size=0)
    for s in subs:
        cached.insert(s)
        uncached.insert(s)

    cold_subjects = [make_subject(rng, vocab, rng.choice([2, 3, 4, 4])) for _ in range(50_000)]
    hot_subjects = cold_subjects[:256]
    # sanity: the router and the scan agree on what they route
    for subject in cold_subjects[:200]:
        plain, queues = scan(subs, subject)
        r = uncached.match(subject)
        assert set(r.plain) == set(plain) and {q: set(m) for q, m in r.queues.items()} == {
            q: set(m) for q, m in queues.items()
        }
    avg_fanout = statistics.mean(len(scan(subs, s)[0]) for s in cold_subjects[:200])

    def cyc(seq: list[str]) -> Callable[[], str]:
        return itertools.cycle(seq).__next__

    nxt_scan, nxt_nc, nxt_cold, nxt_hi = (cyc(cold_subjects) for _ in range(4))
    nxt_hot = cyc(hot_subjects)
    for subject in hot_subjects:
        cached.match(subject)

    lit = Subscription(make_subject(rng, vocab, 4), "x", conns[0])
    wild = Subscription("l0t1.*.l2t3", "y", conns[0])
    lead_wild = Subscription("*.l1t1.l2t3", "z", conns[0])

    def churn(sub: Subscription) -> Callable[[], None]:
        def run() -> None:
            cached.insert(sub)
            cached.remove(sub)

        return run

    # fill the cache so churn pays the full invalidation scan
    cache_fill = cold_subjects[1000 : 1000 + DEFAULT_CACHE_SIZE // 2 - 256]

    def refill() -> None:
        for s in cache_fill:
            cached.match(s)

    ops: dict[str, Callable[[], object]] = {
        "linear scan": lambda: scan(subs, nxt_scan()),
        "trie, no cache": lambda: uncached.match(nxt_nc()),
        "trie + cache, hot": lambda: cached.match(nxt_hot()),
        "trie + cache, cold": lambda: cached.match(nxt_cold()),
        "has_interest (no cache)": lambda: uncached.has_interest(nxt_hi()),
        "sub+unsub literal": churn(lit),
        "sub+unsub wildcard": churn(wild),
        "sub+unsub leading *": churn(lead_wild),
    }
    samples: dict[str, list[float]] = {k: [] for k in ops}
    window = seconds / rounds
    for _ in range(rounds):
        for name, fn in ops.items():
            if name.startswith("sub+unsub"):
                refill()
            samples[name].append(rate(fn, window))
    out = {k: statistics.median(v) for k, v in samples.items()}
    out["avg plain fan-out"] = avg_fanout
    out["cache entries at churn"] = float(cached.cache_len())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0, help="total time per operation and size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"# broker.router benchmark — Python {platform.python_version()}, {platform.machine()}")
    print(f"# medians of {args.rounds} interleaved rounds, {args.seconds:.1f}s per operation and size")
    all_results: dict[str, dict[str, float]] = {}
    for n in sizes:
        res = bench_size(n, args.seconds, args.rounds, args.seed)
        all_results[str(n)] = res
        base = res["linear scan"]
        print(
            f"\n## {n:,} subscriptions (avg plain fan-out {res['avg plain fan-out']:.1f},"
            f" {res['cache entries at churn']:.0f} cached subjects after the churn runs)"
        )
        print(f"{'operation':28} {'ops/s':>12} {'vs scan':>9}")
        for name, value in res.items():
            if name in ("avg plain fan-out", "cache entries at churn"):
                continue
            ratio = f"{value / base:8.0f}x" if not name.startswith("sub+") else ""
            print(f"{name:28} {value:12,.0f} {ratio:>9}")
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=2) + "\n")


if __name__ == "__main__":
    main()
