"""The CLI flow against the real nats-server: init → config → push → connect → revoke → push."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from tests.servers import SERVER_KINDS, make_server

pytestmark = pytest.mark.real

EXE = str(Path(sys.executable).parent / "trustkit")


class Cli:
    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "TRUSTKIT_HOME": str(home)}
        self.times: dict[str, float] = {}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        t0 = time.perf_counter()
        out = subprocess.run([EXE, *args], env=self.env, capture_output=True, text=True, timeout=60)
        self.times[" ".join(args[:2])] = time.perf_counter() - t0
        if ok:
            assert out.returncode == 0, f"trustkit {' '.join(args)} failed:\n{out.stderr}"
        return out

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_init_config_push_connect_revoke(tmp_path: Path, kind: str) -> None:
    cli = Cli(tmp_path / "home")
    cli("init", "-n", "acme")
    cli(
        "add",
        "user",
        "-n",
        "bob",
        "--allow-pub",
        "orders.>",
        "--allow-sub",
        "_INBOX.>",
        "--allow-sub",
        "orders.>",
    )
    jwt_dir = tmp_path / "jwt"
    jwt_dir.mkdir()
    conf = tmp_path / "server.conf"
    cli("generate", "config", "--nats-resolver", "--dir", str(jwt_dir), "--config-file", str(conf))
    assert conf.stat().st_mode & 0o777 == 0o600
    creds = tmp_path / "bob.creds"
    cli("generate", "creds", "-n", "bob", "-o", str(creds))
    assert creds.read_text().startswith("-----BEGIN NATS USER JWT-----\n")
    with make_server(kind, conf.read_text(), tmp_path / kind) as server:
        rows = cli.json("push", "--all", "-u", server.url, "--servers", "1")
        assert sorted((r["account"], r["code"]) for r in rows) == [("SYS", 200), ("acme", 200)]  # type: ignore[index, union-attr]

        async def connect_then_revoke() -> tuple[list[str], str, float]:
            errors: list[str] = []
            closed = asyncio.Event()

            async def on_error(e: Exception) -> None:
                errors.append(str(e))

            async def on_closed() -> None:
                closed.set()

            nc = await nats.connect(
                server.url,
                user_credentials=str(creds),
                error_cb=on_error,
                closed_cb=on_closed,
                allow_reconnect=False,
            )
            sub = await nc.subscribe("orders.>")
            await nc.flush()
            await nc.publish("orders.1", b"pizza")
            assert (await sub.next_msg(timeout=2)).data == b"pizza"
            await nc.publish("payments.1", b"refund")
            await nc.flush()
            for _ in range(40):
                if errors:
                    break
                await asyncio.sleep(0.05)
            assert nc.is_connected
            await asyncio.sleep(1.1)  # the revocation must be later than bob's iat (second resolution)
            await asyncio.to_thread(cli, "revocations", "add-user", "-n", "bob")
            t0 = time.perf_counter()
            await asyncio.to_thread(cli, "push", "-a", "acme", "-u", server.url, "--servers", "1")
            await asyncio.wait_for(closed.wait(), 10)
            elapsed = time.perf_counter() - t0
            errors.append(str(nc.last_error))
            again = ""
            try:
                nc2 = await nats.connect(
                    server.url,
                    user_credentials=str(creds),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    connect_timeout=2,
                )
                await nc2.close()
            except Exception as exc:
                again = str(exc) or type(exc).__name__
            return errors, again, elapsed

        errors, again, elapsed = asyncio.run(connect_then_revoke())
    assert any('permissions violation for publish to "payments.1"' in e.lower() for e in errors), errors
    assert any("user authentication revoked" in e.lower() for e in errors), errors
    assert again, "a revoked user must not reconnect"
    print(
        f"\n[{kind}] `trustkit push` start -> revoked closed: {elapsed * 1000:.0f} ms (incl. CLI start)"
    )
    print("CLI wall times:", {k: f"{v * 1000:.0f} ms" for k, v in cli.times.items()})


def test_errors_are_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    out = cli("add", "user", "-n", "x", ok=False)
    assert out.returncode == 3 and out.stderr.count("\n") == 1, out.stderr
    cli("init", "-n", "acme")
    before = sorted(p for p in (tmp_path / "home").rglob("*"))
    out = cli("add", "user", "-n", "bob", "-a", "nope", ok=False)
    assert out.returncode == 3 and "nope" in out.stderr and out.stderr.count("\n") == 1
    out = cli("push", "--all", "-u", "nats://127.0.0.1:1", ok=False)
    assert out.returncode == 7 and "127.0.0.1:1" in out.stderr, out.stderr
    assert sorted(p for p in (tmp_path / "home").rglob("*")) == before
    # a corrupt account JWT names its file
    jwt_file = tmp_path / "home" / "stores" / "acme" / "accounts" / "acme" / "acme.jwt"
    jwt_file.write_text("not.a.jwt")
    out = cli("add", "user", "-n", "carol", "-a", "acme", ok=False)
    assert out.returncode == 3 and "acme.jwt" in out.stderr, out.stderr
    # seeds never reach the terminal unasked
    out = cli("generate", "creds", "-n", "acme", "-a", "SYS", ok=False)
    assert "SU" not in out.stdout
