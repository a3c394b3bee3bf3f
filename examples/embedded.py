"""The embedded default, end to end, with the trustkit CLI and trustkit-broker (no nats-server).

    .venv/bin/python examples/embedded.py [--workdir DIR]

1. ``trustkit init`` creates an operator, its SYS account and an account ``demo`` with a user
   ``demo``; ``trustkit add user`` adds ``bob``, who may publish only to ``orders.>``;
2. ``trustkit generate config --nats-resolver`` writes the server config, and
   ``trustkit-broker -c`` runs it on a free loopback port;
3. ``trustkit push --all`` sends the accounts; ``trustkit generate creds`` writes bob's creds;
4. demo and bob connect with nats-py: an order goes through; bob's publish to ``payments.42``
   is refused by the broker;
5. ``trustkit revocations add-user -n bob`` + ``trustkit push``: the broker disconnects bob live.

Every step is a real command a user would type; seeds stay in 0600 files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([str(BIN / "trustkit"), *args], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"trustkit {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def talk(url: str, demo_creds: Path, bob_creds: Path, revoke: object) -> list[str]:
    import nats

    report: list[str] = []
    errors: list[str] = []
    closed = asyncio.Event()

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    async def on_closed() -> None:
        closed.set()

    demo = await nats.connect(url, user_credentials=str(demo_creds), allow_reconnect=False)
    bob = await nats.connect(
        url, user_credentials=str(bob_creds), error_cb=on_error, closed_cb=on_closed, allow_reconnect=False
    )
    sub = await demo.subscribe("orders.>")
    await demo.flush()
    await bob.publish("orders.42", b"one pizza")
    msg = await sub.next_msg(timeout=2)
    report.append(f"demo received {msg.data.decode()!r} on {msg.subject} from bob")
    await bob.publish("payments.42", b"refund everything")
    await bob.flush()
    for _ in range(40):
        if errors:
            break
        await asyncio.sleep(0.05)
    report.append(f"broker refused bob: {errors[0] if errors else 'NO ERROR (unexpected)'}")
    t0 = time.perf_counter()
    await asyncio.to_thread(revoke)  # type: ignore[arg-type]
    await asyncio.wait_for(closed.wait(), 10)
    report.append(
        f"bob revoked and disconnected live: {bob.last_error} "
        f"({(time.perf_counter() - t0) * 1000:.0f} ms after 'trustkit revocations add-user' started)"
    )
    await demo.close()
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="where to keep the store and config (default: a temp dir)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="trustkit-embedded-"))
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**os.environ, "TRUSTKIT_HOME": str(work / "home")}

    run(env, "init", "-n", "demo")
    run(env, "add", "user", "-n", "bob", "--allow-pub", "orders.>", "--allow-sub", "_INBOX.>")
    print(f"store created under {work / 'home'} (trustkit init, trustkit add user)")
    (work / "jwt").mkdir(exist_ok=True)
    conf = work / "server.conf"
    run(env, "generate", "config", "--nats-resolver", "--dir", str(work / "jwt"), "--config-file", str(conf))
    port = free_port()
    conf.write_text(f"host: 127.0.0.1\nport: {port}\n" + conf.read_text())
    url = f"nats://127.0.0.1:{port}"
    log = (work / "broker.log").open("wb")
    broker = subprocess.Popen(
        [str(BIN / "trustkit-broker"), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or broker.poll() is not None:
                    print("trustkit-broker did not start; see", work / "broker.log", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        print(f"trustkit-broker listening on {url} (operator mode, config {conf})")
        print(
            "pushed:",
            run(env, "push", "--all", "-u", url, "--servers", "1", "--json").count('"code": 200'),
            "accounts accepted",
        )
        run(env, "generate", "creds", "-n", "demo", "-o", str(work / "demo.creds"))
        run(env, "generate", "creds", "-n", "bob", "-o", str(work / "bob.creds"))

        def revoke() -> None:
            run(env, "revocations", "add-user", "-n", "bob")
            run(env, "push", "-u", url, "--servers", "1")

        for line in asyncio.run(talk(url, work / "demo.creds", work / "bob.creds", revoke)):
            print(line)
    finally:
        broker.terminate()
        broker.wait(timeout=5)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
