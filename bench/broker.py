"""trustkit-broker beside the real nats-server: same machine, same run, same config and creds.

    .venv/bin/python bench/broker.py [--messages 200000] [--requests 50000] [--rounds 3]
        [--connects 2000] [--conns 10000] [--revocations 20] [--only NAME,...]
        [--modes open,operator] [--json out.json]

Names for ``--only``: one-to-one, publish, fanout, request-reply, permissions, connects,
revocation, rss (default: all). Goals are issue #5's "Speed" section.

* Clients are raw sockets with pipelining (``bench/_netload.py``), so the client is not the
  bottleneck. Traffic cannot be short-cut: 1,000 subjects in random order, payloads 16 B - 1 KiB,
  received through a wildcard subscription (``bench.>``).
* Both servers run at the same time, each idle while the other is measured; every round measures
  both back to back (alternating which goes first), and a ratio is the median of the per-round
  ratios broker / nats-server, which stays stable when the machine's speed drifts.
* ``open`` mode has no auth. ``operator`` mode is ``trustkit generate config --nats-resolver``'s
  config with the application account pushed as ``trustkit push`` does; its users carry wildcard
  allow and deny rules the traffic passes (``bench/_world.py``), so permissions are checked.
* permissions: the 1 → 1 run with 1,000 other subscriptions in the account, by users with the
  wildcard rules versus users without any permissions; the cost is 1 - median(rules / none).
* connects: distinct users, INFO → CONNECT (jwt + nonce signature) → PING → PONG, 64 in flight.
* revocation: a connected user; ``$SYS.REQ.CLAIMS.UPDATE`` with an account JWT revoking it is
  sent by a system user's raw connection; the time until the user's socket is closed.
* rss: a fresh server of each kind, ``--conns`` idle authenticated connections (distinct users),
  the server's VmRSS from /proc/<pid>/status before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _netload as net  # noqa: E402
from bench._world import World  # noqa: E402
from tests.natsserver import ServerProcess  # noqa: E402
from tests.realcomp import nats_server_binary  # noqa: E402
from tests.servers import SERVER_KINDS, make_server  # noqa: E402

NATS, BROKER = SERVER_KINDS
BENCHES = ("one-to-one", "publish", "fanout", "request-reply", "permissions", "connects", "revocation", "rss")
MODES = ("open", "operator")
SUBS_ELSEWHERE = 1000


class Servers:
    """One server of each kind with the same config, started together, stopped by ``stack``."""

    def __init__(self, stack: ExitStack, tmp: Path, mode: str, world: World | None) -> None:
        self.procs: dict[str, ServerProcess] = {}
        for kind in SERVER_KINDS:
            workdir = tmp / f"{mode}-{kind}"
            workdir.mkdir(parents=True, exist_ok=True)
            config = "" if world is None else world.config(workdir / "jwt")
            srv = make_server(kind, config, workdir)
            stack.enter_context(srv)
            if world is not None:
                world.push_app(srv.url)
            self.procs[kind] = srv

    def port(self, kind: str) -> int:
        return self.procs[kind].port

    def check(self, kind: str) -> str:
        """Why a measurement failed on the server side, if the process is gone."""
        srv = self.procs[kind]
        if srv.proc is None or srv.proc.poll() is None:
            return ""
        return f"; {kind} exited ({srv.proc.returncode}): {srv.log.read_text()[-800:]}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def paired(servers: Servers, rounds: int, measure: Callable[[str, int], float]) -> dict[str, Any]:
    """``measure(kind, port)`` for both kinds, ``rounds`` times, alternating which goes first."""
    samples: dict[str, list[float]] = {k: [] for k in SERVER_KINDS}
    errors: dict[str, str] = {}
    for r in range(rounds):
        order = SERVER_KINDS if r % 2 == 0 else SERVER_KINDS[::-1]
        for kind in order:
            if kind in errors:
                continue
            try:
                samples[kind].append(measure(kind, servers.port(kind)))
            except (net.ServerError, OSError) as exc:
                errors[kind] = f"{type(exc).__name__}: {exc}{servers.check(kind)}"
    out: dict[str, Any] = {"samples": samples}
    for kind in SERVER_KINDS:
        out[kind] = statistics.median(samples[kind]) if samples[kind] else None
    pairs = list(zip(samples[NATS], samples[BROKER], strict=False))
    out["ratio"] = statistics.median(b / a for a, b in pairs) if pairs else None
    if errors:
        out["errors"] = errors
    return out


@contextmanager
def other_subscriptions(port: int, world: World) -> Iterator[None]:
    """1,000 subscriptions the traffic never matches: 500 literal ``bench.<k>.<1000+i>`` beside
    the traffic's subjects and 500 ``other.<i>.>``, on one connection of the same account."""
    subjects = [f"bench.{i % 37}.{1000 + i}" for i in range(SUBS_ELSEWHERE // 2)]
    subjects += [f"other.{i}.>" for i in range(SUBS_ELSEWHERE - len(subjects))]
    s = net.open_conn(port, world.bystander, name="bystander")
    try:
        net.subscribe(s, *subjects)
        yield
    finally:
        s.close()


def run_permissions(servers: Servers, world: World, traffic: net.Traffic, rounds: int) -> dict[str, Any]:
    """1 → 1 with 1,000 other subscriptions: users with the wildcard rules vs users without."""
    samples: dict[str, dict[str, list[float]]] = {k: {"none": [], "rules": []} for k in SERVER_KINDS}
    errors: dict[str, str] = {}
    for kind in SERVER_KINDS:
        port = servers.port(kind)
        try:
            with other_subscriptions(port, world):
                for r in range(rounds):
                    order = ("none", "rules") if r % 2 == 0 else ("rules", "none")
                    for variant in order:
                        pub, sub = (
                            (world.plain, world.plain)
                            if variant == "none"
                            else (world.publisher, world.subscriber)
                        )
                        samples[kind][variant].append(net.deliver(port, traffic, pub=pub, sub=sub))
        except (net.ServerError, OSError) as exc:
            errors[kind] = f"{type(exc).__name__}: {exc}{servers.check(kind)}"
    out: dict[str, Any] = {"samples": samples}
    for kind in SERVER_KINDS:
        s = samples[kind]
        pairs = list(zip(s["none"], s["rules"], strict=False))
        out[kind] = {
            "none msgs/s": statistics.median(s["none"]) if s["none"] else None,
            "rules msgs/s": statistics.median(s["rules"]) if s["rules"] else None,
            "cost %": 100 * (1 - statistics.median(b / a for a, b in pairs)) if pairs else None,
        }
    if errors:
        out["errors"] = errors
    return out


def run_connects(servers: Servers, world: World, count: int, rounds: int, inflight: int) -> dict[str, Any]:
    """Authenticated CONNECTs/s; every connection (every round, every server) a distinct user."""
    users = [[world.member(r * count + i) for i in range(count)] for r in range(rounds)]
    done = dict.fromkeys(SERVER_KINDS, 0)

    def measure(kind: str, port: int) -> float:
        r = done[kind]
        done[kind] += 1
        rate, _ = net.connect_many(port, users[r], inflight=inflight)
        return rate

    return paired(servers, rounds, measure)


def run_revocation(servers: Servers, world: World, runs: int) -> dict[str, Any]:
    """Update → revoked client closed, ``runs`` times per server (alternating servers)."""
    out: dict[str, Any] = {}
    victims = [world.user(f"victim-{i}") for i in range(runs)]
    systems: dict[str, socket.socket] = {}
    samples: dict[str, list[float]] = {k: [] for k in SERVER_KINDS}
    errors: dict[str, str] = {}
    try:
        for kind in SERVER_KINDS:
            sysc = net.open_conn(servers.port(kind), world.system_user, name="system")
            systems[kind] = sysc
            net.subscribe(sysc, "_INBOX.rev.*")
        for i, victim in enumerate(victims):
            token = world.app_jwt([v.key.public_key for v in victims[: i + 1]], iat=int(time.time()))
            for kind in SERVER_KINDS:
                if kind in errors:
                    continue
                try:
                    v = net.open_conn(servers.port(kind), victim, name="victim")
                    try:
                        seconds, got = net.revoke_and_wait(systems[kind], v, token, i)
                    finally:
                        v.close()
                    reply = json.loads(net.update_reply(systems[kind], i))
                    data = reply.get("data", {})
                    if data.get("code") != 200:
                        raise net.ServerError(f"update refused: {reply}")
                    if b"User Authentication Revoked" not in got:
                        raise net.ServerError(f"closed without the revocation -ERR: {got!r}")
                    samples[kind].append(seconds * 1000)
                except (net.ServerError, OSError, ValueError) as exc:
                    errors[kind] = f"{type(exc).__name__}: {exc}{servers.check(kind)}"
    finally:
        for s in systems.values():
            s.close()
    for kind in SERVER_KINDS:
        ms = sorted(samples[kind])
        out[kind] = (
            {
                "median ms": statistics.median(ms),
                "p90 ms": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
                "max ms": ms[-1],
            }
            if ms
            else None
        )
    out["samples ms"] = samples
    if errors:
        out["errors"] = errors
    return out


def count_closed(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has closed (EOF or reset waiting to be read)."""
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            while s.recv(65536):
                pass
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def run_rss(tmp: Path, world: World, conns: int, inflight: int) -> dict[str, Any]:
    """A fresh operator-mode server of each kind; RSS before and with ``conns`` idle users."""
    users = [world.member(i) for i in range(conns)]
    out: dict[str, Any] = {}
    for kind in SERVER_KINDS:
        with ExitStack() as stack:
            workdir = tmp / f"rss-{kind}"
            workdir.mkdir(parents=True, exist_ok=True)
            srv = stack.enter_context(make_server(kind, world.config(workdir / "jwt"), workdir))
            world.push_app(srv.url)
            assert srv.proc is not None
            pid = srv.proc.pid
            time.sleep(0.5)
            before = rss_kib(pid)
            try:
                rate, socks = net.connect_many(srv.port, users, inflight=inflight, keep=True)
            except (net.ServerError, OSError) as exc:
                out[kind] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            try:
                time.sleep(1.0)  # let the server finish per-connection work (second INFO, timers)
                after = rss_kib(pid)
                alive = srv.proc.poll() is None
                dropped = count_closed(socks)
            finally:
                for s in socks:
                    s.close()
            out[kind] = {
                "connections": conns,
                "idle MiB": before / 1024,
                "loaded MiB": after / 1024,
                "KiB per connection": (after - before) / conns,
                "connects/s while filling": rate,
                "server alive": alive,
                "connections closed by the server": dropped,
            }
            if dropped or not alive:
                out[kind]["error"] = f"{dropped} connections closed by the server, server alive: {alive}"
    return out


# --- report -----------------------------------------------------------------------------------

Row = tuple[str, Any, Any, Any, str, Any]


def _fmt(v: Any) -> str:
    if v is None:
        return "error"
    if isinstance(v, float) and abs(v) < 1000:
        return f"{v:,.1f}"
    return f"{v:,.0f}"


def rows(results: dict[str, Any]) -> list[Row]:
    """(metric, nats-server, broker, ratio, goal text, goal met?)"""
    out: list[Row] = []
    goals = {"one-to-one": 0.5, "publish": 0.25}
    names = {
        "one-to-one": "1 → 1 msgs/s",
        "publish": "publish-only msgs/s",
        "fanout": "1 → 10 deliveries/s",
        "request-reply": "request-reply round trips/s",
    }
    for mode in MODES:
        for bench, label in names.items():
            r = results.get(f"{mode} {bench}")
            if r is None:
                continue
            goal = goals.get(bench)
            met = None if goal is None or r["ratio"] is None else r["ratio"] >= goal
            out.append(
                (f"{mode}: {label}", r[NATS], r[BROKER], r["ratio"], f">= {goal}x" if goal else "", met)
            )
    r = results.get("permissions")
    if r is not None:
        for variant in ("none msgs/s", "rules msgs/s"):
            a = r[NATS][variant] if r[NATS] else None
            b = r[BROKER][variant] if r[BROKER] else None
            label = f"operator: 1 → 1 + {SUBS_ELSEWHERE} subs, {variant.replace(' msgs/s', '')} msgs/s"
            out.append((label, a, b, b / a if a and b else None, "", None))
        a = r[NATS]["cost %"] if r[NATS] else None
        b = r[BROKER]["cost %"] if r[BROKER] else None
        out.append(("permission-check cost %", a, b, None, "< 10%", None if b is None else b < 10))
    r = results.get("connects")
    if r is not None:
        met = None if r["ratio"] is None else r["ratio"] >= 2
        out.append(("authenticated CONNECTs/s", r[NATS], r[BROKER], r["ratio"], ">= 2x", met))
    r = results.get("revocation")
    if r is not None:
        for stat in ("median ms", "p90 ms"):
            a = r[NATS][stat] if r[NATS] else None
            b = r[BROKER][stat] if r[BROKER] else None
            met = None if b is None or stat != "median ms" else b < 10
            out.append(
                (f"revocation → closed, {stat}", a, b, None, "< 10 ms" if stat == "median ms" else "", met)
            )
    r = results.get("rss")
    if r is not None:
        conns = r.get("connections")
        a = r[NATS].get("loaded MiB") if NATS in r else None
        b = r[BROKER].get("loaded MiB") if BROKER in r else None
        out.append(
            (f"RSS MiB, {conns:,} idle auth conns", a, b, None, "< 1024 MiB", None if b is None else b < 1024)
        )
        a = r[NATS].get("KiB per connection") if NATS in r else None
        b = r[BROKER].get("KiB per connection") if BROKER in r else None
        out.append(("RSS KiB per idle connection", a, b, None, "", None))
    return out


def print_table(results: dict[str, Any], header: str) -> None:
    print(header)
    print(f"{'':46}{'nats-server':>14}{'trustkit-broker':>17}{'ratio':>8}  {'goal':<11}met")
    for metric, a, b, ratio, goal, met in rows(results):
        ra = "" if ratio is None else f"{ratio:.2f}"
        m = "" if met is None else ("yes" if met else "NO")
        print(f"{metric:46}{_fmt(a):>14}{_fmt(b):>17}{ra:>8}  {goal:<11}{m}")
    for name, r in results.items():
        if isinstance(r, dict):
            for kind, err in (r.get("errors") or {}).items():
                print(f"! {name} on {kind}: {err}")
            for kind in SERVER_KINDS:
                if isinstance(r.get(kind), dict) and "error" in r[kind]:
                    print(f"! {name} on {kind}: {r[kind]['error']}")


def raise_nofile(need: int) -> int:
    """Raise this process's (and so the servers') soft RLIMIT_NOFILE as far as ``need``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, need))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--messages", type=int, default=200_000, help="messages per 1 → 1 / publish / fan-out run"
    )
    ap.add_argument("--requests", type=int, default=100_000, help="round trips per request-reply run")
    ap.add_argument("--rounds", type=int, default=3, help="paired rounds per measurement")
    ap.add_argument("--subscribers", type=int, default=10, help="fan-out subscribers")
    ap.add_argument("--requesters", type=int, default=10)
    ap.add_argument("--window", type=int, default=100, help="requests in flight per requester")
    ap.add_argument("--connects", type=int, default=2000, help="connections per CONNECT-rate round")
    ap.add_argument("--inflight", type=int, default=64, help="connections being set up at once")
    ap.add_argument("--revocations", type=int, default=20, help="revocation runs per server")
    ap.add_argument("--conns", type=int, default=10_000, help="idle connections for the RSS figure")
    ap.add_argument("--only", default=",".join(BENCHES), help=f"comma list of {', '.join(BENCHES)}")
    ap.add_argument("--modes", default=",".join(MODES), help="open, operator or both (throughput benches)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for name in only:
        if name not in BENCHES:
            ap.error(f"--only: unknown benchmark {name!r} (choose from {', '.join(BENCHES)})")
    for m in modes:
        if m not in MODES:
            ap.error(f"--modes: unknown mode {m!r} (open, operator)")

    nofile = raise_nofile(args.conns + 1000)
    if "rss" in only and args.conns + 100 > nofile:
        args.conns = nofile - 100
        print(f"# RLIMIT_NOFILE is {nofile}: --conns lowered to {args.conns}", file=sys.stderr)

    throughput = [b for b in ("one-to-one", "publish", "fanout", "request-reply") if b in only]
    n = args.messages
    uses_traffic = {"one-to-one", "publish", "fanout", "permissions"} & set(only)
    traffic = net.traffic(n if uses_traffic else 0)
    world = World()
    version = subprocess.run(
        [nats_server_binary() or "nats-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "nats-server": version,
        "cpus": os.cpu_count(),
        "loadavg at start": os.getloadavg(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    results: dict[str, Any] = {}

    def measure_for(bench: str, mode: str) -> Callable[[str, int], float]:
        pub = sub = req = resp = None
        if mode == "operator":
            pub, sub, req, resp = world.publisher, world.subscriber, world.publisher, world.responder
        if bench == "one-to-one":
            return lambda kind, port: net.deliver(port, traffic, pub=pub, sub=sub)
        if bench == "publish":
            return lambda kind, port: net.publish_only(port, traffic, pub=pub)
        if bench == "fanout":
            return lambda kind, port: net.deliver(
                port, traffic, subscribers=args.subscribers, pub=pub, sub=sub
            )
        return lambda kind, port: net.request_reply(
            port, args.requests, requesters=args.requesters, window=args.window, requester=req, responder=resp
        )

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmpdir:
        tmp = Path(tmpdir)
        for mode in modes:
            needs_operator = mode == "operator" and ({"permissions", "connects", "revocation"} & set(only))
            if not throughput and not needs_operator:
                continue
            with ExitStack() as stack:
                servers = Servers(stack, tmp, mode, world if mode == "operator" else None)
                for bench in throughput:
                    print(f"# {mode} {bench} ...", file=sys.stderr, flush=True)
                    results[f"{mode} {bench}"] = paired(servers, args.rounds, measure_for(bench, mode))
                if mode != "operator":
                    continue
                if "permissions" in only:
                    print("# permissions ...", file=sys.stderr, flush=True)
                    results["permissions"] = run_permissions(servers, world, traffic, args.rounds)
                if "connects" in only:
                    print("# connects ...", file=sys.stderr, flush=True)
                    results["connects"] = run_connects(
                        servers, world, args.connects, args.rounds, args.inflight
                    )
                if "revocation" in only:
                    print("# revocation ...", file=sys.stderr, flush=True)
                    results["revocation"] = run_revocation(servers, world, args.revocations)
        if "operator" not in modes and {"permissions", "connects", "revocation"} & set(only):
            print("# permissions/connects/revocation need --modes operator: skipped", file=sys.stderr)
        if "rss" in only:
            print(f"# rss with {args.conns} connections ...", file=sys.stderr, flush=True)
            rss = run_rss(tmp, world, args.conns, args.inflight)
            rss["connections"] = args.conns
            results["rss"] = rss
    meta["seconds"] = round(time.perf_counter() - t_start, 1)
    lines = [
        f"# {meta['date']}, {version}, Python {meta['python']}, {meta['cpus']} CPUs, "
        f"load {meta['loadavg at start'][0]:.2f} at start, {meta['seconds']} s; "
        f"{args.rounds} paired rounds, ratio = median of per-round broker / nats-server"
    ]
    if traffic.n:
        lines.append(
            f"# {n:,} messages per run, {traffic.payload_bytes / n:.0f} B mean payload, 1,000 subjects "
            f"in random order, wildcard subscribers ({args.subscribers} for fan-out)"
        )
    if "request-reply" in only:
        lines.append(
            f"# {args.requests:,} requests per run, {args.requesters} requesters x {args.window} in flight"
        )
    if "connects" in only:
        lines.append(
            f"# {args.connects:,} CONNECTs per round, {args.inflight} in flight, a distinct user each"
        )
    if "revocation" in only:
        lines.append(f"# {args.revocations} revocations per server")
    header = "\n".join(lines)
    print_table(results, header)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
