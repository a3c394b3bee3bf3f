"""Push to the real nats-server's full resolver, revoke a live user, and the 3-node scale-out path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import pytest

from tests.natsserver import NatsServer
from tests.realcomp import free_port
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.push import push_accounts, temporary_push_user
from trustkit.serverconfig import nats_resolver_config

pytestmark = pytest.mark.real


class World:
    def __init__(self, tmp: Path) -> None:
        self.now = int(time.time())
        self.op = KeyPair.generate(PrefixByte.OPERATOR)
        self.sys = KeyPair.generate(PrefixByte.ACCOUNT)
        self.sys_sk = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        self.user = KeyPair.generate(PrefixByte.USER)
        self.op_jwt = jwt.OperatorClaims(
            sub=self.op.public_key, name="op", system_account=self.sys.public_key
        ).encode(self.op, iat=self.now - 100)
        sys_claims = jwt.AccountClaims(sub=self.sys.public_key, name="SYS")
        sys_claims.add_signing_key(self.sys_sk.public_key)
        self.sys_jwt = sys_claims.encode(self.op, iat=self.now - 100)
        self.app_claims = jwt.AccountClaims(sub=self.app.public_key, name="APP")
        self.app_jwt = self.app_claims.encode(self.op, iat=self.now - 100)
        user_jwt = jwt.UserClaims(sub=self.user.public_key, name="alice").encode(self.app, iat=self.now - 100)
        self.creds = tmp / "alice.creds"
        self.creds.write_bytes(format_user_creds(user_jwt, self.user.seed))
        self.push_jwt, self.push_key = temporary_push_user(self.sys.public_key, self.sys_sk, now=self.now)

    def config(self, jwt_dir: Path) -> str:
        jwt_dir.mkdir(parents=True, exist_ok=True)
        return nats_resolver_config(self.op_jwt, self.sys_jwt, directory=str(jwt_dir))

    async def push(self, url: str, token: str, servers: int, timeout: float = 3.0) -> list[object]:
        return list(
            await push_accounts(
                url,
                [token],
                user_jwt=self.push_jwt,
                user_key=self.push_key,
                timeout=timeout,
                expected_servers=servers,
            )
        )


def test_push_then_live_revocation_disconnects_the_user(tmp_path: Path) -> None:
    w = World(tmp_path)
    with NatsServer(w.config(tmp_path / "jwt"), tmp_path) as server:

        async def scenario() -> tuple[list[str], float, str]:
            rows = await w.push(server.url, w.app_jwt, servers=1)
            assert [(r.code, r.message) for r in rows] == [(200, "jwt updated")]  # type: ignore[attr-defined]
            errors: list[str] = []
            closed = asyncio.Event()

            async def on_error(e: Exception) -> None:
                errors.append(str(e))

            async def on_closed() -> None:
                closed.set()

            nc = await nats.connect(
                server.url,
                user_credentials=str(w.creds),
                error_cb=on_error,
                closed_cb=on_closed,
                allow_reconnect=False,
            )
            sub = await nc.subscribe("ping")
            await nc.flush()
            await nc.publish("ping", b"1")
            assert (await sub.next_msg(timeout=2)).data == b"1"

            w.app_claims.revoke(w.user.public_key, w.now - 50)  # user was issued at now - 100
            revoked_jwt = w.app_claims.encode(w.op, iat=w.now)
            t0 = time.perf_counter()
            rows = await w.push(server.url, revoked_jwt, servers=1)
            await asyncio.wait_for(closed.wait(), 5)
            latency = time.perf_counter() - t0
            # nats-py keeps a closing server error in last_error (error_cb only sees permission errors)
            errors.append(str(nc.last_error))
            assert [r.code for r in rows] == [200]  # type: ignore[attr-defined]

            again = ""
            try:
                nc2 = await nats.connect(
                    server.url,
                    user_credentials=str(w.creds),
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    connect_timeout=2,
                )
                await nc2.close()
            except Exception as exc:
                again = str(exc) or type(exc).__name__
            return errors, latency, again

        errors, latency, again = asyncio.run(scenario())
        assert any("user authentication revoked" in e.lower() for e in errors), errors
        assert again, "a revoked user must not reconnect"
        print(f"\npush -> revoked client closed: {latency * 1000:.1f} ms (in-process push, warm)")
        assert latency < 3.0, "the push returned as soon as the server answered, not after a timeout"


def test_push_reaches_every_node_of_a_three_node_cluster(tmp_path: Path) -> None:
    w = World(tmp_path)
    ports = [free_port() for _ in range(3)]
    servers = []
    try:
        for i in range(3):
            routes = ", ".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(ports) if j != i)
            text = (
                f"server_name: n{i + 1}\n"
                f"cluster {{ name: c1, listen: 127.0.0.1:{ports[i]}, routes: [{routes}] }}\n"
                + w.config(tmp_path / f"jwt{i + 1}")
            )
            node_dir = tmp_path / f"n{i + 1}"
            node_dir.mkdir()
            servers.append(NatsServer(text, node_dir, name=f"n{i + 1}").start())

        async def push_until_three() -> list[object]:
            rows: list[object] = []
            for _ in range(40):  # routes form within a second or two on loopback
                rows = await w.push(servers[0].url, w.app_jwt, servers=3, timeout=0.5)
                if len(rows) == 3:
                    break
                await asyncio.sleep(0.25)
            return rows

        rows = asyncio.run(push_until_three())
        assert sorted(r.server for r in rows) == ["n1", "n2", "n3"]  # type: ignore[attr-defined]
        assert all(r.code == 200 for r in rows)  # type: ignore[attr-defined]
        for i in range(3):
            assert (tmp_path / f"jwt{i + 1}" / f"{w.app.public_key}.jwt").read_text() == w.app_jwt

        async def use_each_node() -> list[bytes]:
            out = []
            for s in servers:
                nc = await nats.connect(s.url, user_credentials=str(w.creds), allow_reconnect=False)
                sub = await nc.subscribe("x")
                await nc.flush()
                await nc.publish("x", s.url.encode())
                out.append(bytes((await sub.next_msg(timeout=2)).data))
                await nc.close()
            return out

        assert asyncio.run(use_each_node()) == [s.url.encode() for s in servers]
    finally:
        for s in servers:
            s.stop()
