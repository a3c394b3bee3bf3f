"""CLI wall times: single commands, `push --all` of 100 accounts to a real nats-server, and where
the start-up time goes (``python -X importtime``).

    .venv/bin/python bench/cli.py [--runs 15] [--push-runs 3] [--accounts 100] [--no-bytecode]
                                  [--pythonpath DIR] [--json out.json]

Goals (issue #4): each single command < 150 ms wall; `push --all` of 100 accounts < 2 s.

* Every command runs as a user runs it: the installed ``trustkit`` script in a fresh process,
  in a fresh ``TRUSTKIT_HOME`` per run (``init`` first, untimed); the median of ``--runs``.
* Python normally caches bytecode (``__pycache__``): one untimed warm-up run writes it.
  ``--no-bytecode`` sets ``PYTHONDONTWRITEBYTECODE``: in a tree without ``__pycache__`` every
  run compiles trustkit's sources again (what a read-only checkout pays, and this sandbox).
* ``--pythonpath DIR`` runs another trustkit tree (e.g. ``git archive HEAD trustkit | tar -x -C
  DIR``) with the same interpreter and packages, for before/after numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.natsserver import NatsServer  # noqa: E402
from trustkit.manage import Workspace, add_account, server_config  # noqa: E402

EXE = str(Path(sys.executable).parent / "trustkit")
GOAL_SINGLE_MS = 150.0
GOAL_PUSH_MS = 2000.0


class Runner:
    def __init__(self, *, bytecode: bool, pythonpath: str | None) -> None:
        env = dict(os.environ)
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        if pythonpath:
            env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
        self.env = env

    def run(
        self, home: Path, *args: str, check: bool = True
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        env = {**self.env, "TRUSTKIT_HOME": str(home)}
        t0 = time.perf_counter()
        out = subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=120)
        ms = (time.perf_counter() - t0) * 1000
        if check and out.returncode != 0:
            raise SystemExit(f"trustkit {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
        return ms, out

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        # cwd elsewhere: `python -c` puts the cwd first on sys.path, which would hide --pythonpath
        return subprocess.run(
            [sys.executable, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=tempfile.gettempdir(),
        )


#: (label, arguments) timed after `init -n acme` and `add user -n u` in a fresh home
SINGLE = [
    ("add user", ("add", "user", "-n", "bench")),
    ("generate creds", ("generate", "creds", "-n", "u", "-o", "-")),
    ("describe account", ("describe", "account", "--json")),
    ("list keys", ("list", "keys", "--json")),
    ("edit account", ("edit", "account", "--conns", "100")),
    ("validate --all", ("validate", "--all", "--json")),
    ("env", ("env", "--json")),
]


def bench_single(r: Runner, runs: int, tmp: Path) -> dict[str, float]:
    times: dict[str, list[float]] = defaultdict(list)
    supported = {label for label, args in SINGLE}
    for i in range(runs + 1):  # run 0 is the warm-up (writes the bytecode cache)
        home = tmp / f"single{i}"
        r.run(home, "init", "-n", "acme")
        r.run(home, "add", "user", "-n", "u")
        for label, args in SINGLE:
            if label not in supported:
                continue
            ms, out = r.run(home, *args, check=False)
            if out.returncode != 0:
                supported.discard(label)  # an older tree without the command
                continue
            if i:
                times[label].append(ms)
    return {label: statistics.median(v) for label, v in times.items()}


def bench_push(r: Runner, runs: int, n_accounts: int, tmp: Path) -> dict[str, float]:
    home = tmp / "push"
    r.run(home, "init", "-n", "acme")
    ws = Workspace.from_env({"TRUSTKIT_HOME": str(home)})
    now = int(time.time())
    for i in range(n_accounts - 2):  # init made SYS and acme
        add_account(ws, "acme", f"a{i:03d}", now=now)
    jwt_dir = tmp / "jwt"
    jwt_dir.mkdir()
    config = server_config(ws, "acme", "full", directory=str(jwt_dir))
    results: dict[str, float] = {}
    with NatsServer(config, tmp) as server:
        for label, extra in (("push --all", ()), ("push --all --servers 1", ("--servers", "1"))):
            times = []
            for _ in range(runs):
                ms, out = r.run(home, "push", "--all", "-u", server.url, "--json", *extra)
                rows = json.loads(out.stdout)
                ok = sum(1 for row in rows if row["code"] == 200)
                if ok != n_accounts:
                    raise SystemExit(f"{label}: {ok} of {n_accounts} accounts pushed")
                times.append(ms)
            results[label] = statistics.median(times)
    stored = len(list(jwt_dir.glob("*.jwt")))
    if stored != n_accounts:
        raise SystemExit(f"the server stored {stored} account JWTs, expected {n_accounts}")
    return results


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def bench_imports(r: Runner, runs: int) -> tuple[float, list[tuple[str, float]], list[tuple[str, float]]]:
    """Median total of `import trustkit.cli.app` (ms), the biggest direct imports (cumulative ms)
    and self time by top-level package (ms), from ``python -X importtime``."""
    totals: list[float] = []
    direct: dict[str, float] = {}
    by_pkg: dict[str, float] = defaultdict(float)
    for i in range(runs + 1):
        err = r.python("-X", "importtime", "-c", "import trustkit.cli.app").stderr
        rows = [(int(m[1]), int(m[2]), len(m[3]) // 2, m[4]) for m in _LINE.finditer(err)]
        top = [row for row in rows if row[3] == "trustkit.cli.app"]
        if not top or not i:
            continue
        totals.append(top[-1][1] / 1000)
        if i == 1:
            # children of trustkit.cli.app: the rows at depth 1 just before it (importtime is post-order)
            start = rows.index(top[-1])
            for _self, cum_us, depth, name in reversed(rows[:start]):
                if depth == 0:
                    break
                if depth == 1:
                    direct[name] = cum_us / 1000
            for self_us, _cum, _depth, name in rows[: start + 1]:
                by_pkg[name.split(".")[0]] += self_us / 1000
    site = r.python("-X", "importtime", "-c", "pass").stderr
    interp = sum(int(m[1]) for m in _LINE.finditer(site)) / 1000
    by_pkg["(interpreter start-up: site, encodings…)"] = interp
    return (
        statistics.median(totals),
        sorted(direct.items(), key=lambda kv: -kv[1]),
        sorted(by_pkg.items(), key=lambda kv: -kv[1]),
    )


def bench_command_imports(r: Runner, tmp: Path) -> tuple[float, list[tuple[str, float]]]:
    """Everything ``trustkit add user`` imports (the app plus the command's modules and the
    library): total and self time by package (``trustkit.*`` by sub-package), in ms."""
    home = tmp / "imports"
    r.run(home, "init", "-n", "acme")
    env = {**r.env, "TRUSTKIT_HOME": str(home)}
    err = subprocess.run(
        [sys.executable, "-X", "importtime", EXE, "add", "user", "-n", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tempfile.gettempdir(),
    ).stderr
    groups: dict[str, float] = defaultdict(float)
    for m in _LINE.finditer(err):
        parts = m[4].split(".")
        key = ".".join(parts[:2]) if parts[0] == "trustkit" else parts[0]
        groups[key] += int(m[1]) / 1000
    return sum(groups.values()), sorted(groups.items(), key=lambda kv: -kv[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15, help="runs per single command (median)")
    ap.add_argument("--push-runs", type=int, default=3)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (cold compile)")
    ap.add_argument("--pythonpath", help="run the trustkit package found in this directory instead")
    ap.add_argument("--skip-push", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    bytecode = not args.no_bytecode
    r = Runner(bytecode=bytecode, pythonpath=args.pythonpath)
    where = r.python("-c", "import trustkit.cli.app as a; print(a.__file__)").stdout.strip()
    print(f"python {platform.python_version()} on {platform.machine()}; trustkit from {where}")
    cached = (Path(where).parent.parent / "__pycache__").is_dir()
    mode = "on" if bytecode else "not written" + (" (but a __pycache__ exists: it is read)" if cached else "")
    print(f"bytecode cache: {mode}")
    result: dict[str, object] = {"bytecode": bytecode, "trustkit": where}
    with tempfile.TemporaryDirectory(prefix="trustkit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        single = bench_single(r, args.runs, tmp)
        print(f"\nsingle commands, median of {args.runs} runs (goal < {GOAL_SINGLE_MS:.0f} ms each):")
        for label, ms in single.items():
            print(f"  trustkit {label:24} {ms:7.1f} ms  {'ok' if ms < GOAL_SINGLE_MS else 'OVER'}")
        result["single_ms"] = single
        if not args.skip_push:
            push = bench_push(r, args.push_runs, args.accounts, tmp)
            n, k = args.accounts, args.push_runs
            print(f"\npush of {n} accounts to nats-server (full resolver), median of {k} runs:")
            for label, ms in push.items():
                print(f"  trustkit {label:24} {ms:7.1f} ms  {'ok' if ms < GOAL_PUSH_MS else 'OVER'}")
            result["push_ms"] = push
    total, direct, by_pkg = bench_imports(r, 7)
    print(f"\nimport trustkit.cli.app: {total:.1f} ms (median of 7, python -X importtime)")
    print("  biggest direct imports (cumulative):")
    for name, ms in direct[:8]:
        print(f"    {name:40} {ms:6.1f} ms")
    print("  self time by top-level package:")
    for name, ms in by_pkg[:10]:
        print(f"    {name:40} {ms:6.1f} ms")
    result["import_ms"] = {"total": total, "direct": dict(direct), "by_package": dict(by_pkg)}
    with tempfile.TemporaryDirectory(prefix="trustkit-bench-") as tmp_name:
        cmd_total, cmd_groups = bench_command_imports(r, Path(tmp_name))
    print(f"\nall imports of `trustkit add user` (one run, incl. interpreter start-up): {cmd_total:.1f} ms")
    for name, ms in cmd_groups[:14]:
        print(f"    {name:40} {ms:6.1f} ms")
    result["add_user_imports_ms"] = {"total": cmd_total, "by_package": dict(cmd_groups)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
