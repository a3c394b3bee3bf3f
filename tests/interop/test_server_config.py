"""Generated server configs start the real nats-server unmodified, and work as configured."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
import pytest

from tests.natsserver import NatsServer
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config, nats_resolver_config

pytestmark = pytest.mark.real


class Hierarchy:
    def __init__(self, tmp: Path, *, odd_names: bool = False) -> None:
        now = int(time.time()) - 5
        self.op = KeyPair.generate(PrefixByte.OPERATOR)
        self.sys = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        op_name = 'op "quoted"\nnewline }' if odd_names else "op"
        self.op_jwt = jwt.OperatorClaims(
            sub=self.op.public_key, name=op_name, system_account=self.sys.public_key
        ).encode(self.op, iat=now)
        self.sys_jwt = jwt.AccountClaims(sub=self.sys.public_key, name="SYS").encode(self.op, iat=now)
        self.app_jwt = jwt.AccountClaims(sub=self.app.public_key, name="APP // x").encode(self.op, iat=now)
        self.creds = {}
        for name, acct in (("sys", self.sys), ("app", self.app)):
            user = KeyPair.generate(PrefixByte.USER)
            token = jwt.UserClaims(sub=user.public_key, name=f"{name}-user").encode(acct, iat=now)
            path = tmp / f"{name}.creds"
            path.write_bytes(format_user_creds(token, user.seed))
            self.creds[name] = path


async def _round_trip(url: str, creds: Path) -> bytes:
    nc = await nats.connect(url, user_credentials=str(creds), allow_reconnect=False, connect_timeout=3)
    try:
        sub = await nc.subscribe("hello")
        await nc.flush()
        await nc.publish("hello", b"world")
        return bytes((await sub.next_msg(timeout=2)).data)
    finally:
        await nc.close()


@pytest.mark.parametrize("odd_names", [False, True])
def test_mem_resolver_config_starts_and_serves(tmp_path: Path, odd_names: bool) -> None:
    h = Hierarchy(tmp_path, odd_names=odd_names)
    text = mem_resolver_config(h.op_jwt, [h.app_jwt, h.sys_jwt])
    assert "resolver: MEMORY" in text
    assert text.index(min(h.app.public_key, h.sys.public_key)) < text.index(
        max(h.app.public_key, h.sys.public_key), text.index("resolver_preload")
    ), "accounts are preloaded sorted by public key"
    with NatsServer(text, tmp_path) as server:
        assert asyncio.run(_round_trip(server.url, h.creds["app"])) == b"world"


def test_full_resolver_accepts_a_push_then_the_account_works(tmp_path: Path) -> None:
    h = Hierarchy(tmp_path)
    (tmp_path / "jwt").mkdir()
    text = nats_resolver_config(h.op_jwt, h.sys_jwt, directory=str(tmp_path / "jwt"))
    with NatsServer(text, tmp_path) as server:

        async def push_then_use() -> tuple[dict[str, object], bytes]:
            nc = await nats.connect(server.url, user_credentials=str(h.creds["sys"]), allow_reconnect=False)
            try:
                reply = await nc.request("$SYS.REQ.CLAIMS.UPDATE", h.app_jwt.encode(), timeout=3)
            finally:
                await nc.close()
            return json.loads(reply.data), await _round_trip(server.url, h.creds["app"])

        reply, data = asyncio.run(push_then_use())
        assert reply["data"] == {"account": h.app.public_key, "code": 200, "message": "jwt updated"}
        assert data == b"world"
        assert (tmp_path / "jwt" / f"{h.app.public_key}.jwt").read_text() == h.app_jwt


def test_cache_resolver_config_starts(tmp_path: Path) -> None:
    h = Hierarchy(tmp_path)
    (tmp_path / "jwt").mkdir()
    text = nats_resolver_config(h.op_jwt, h.sys_jwt, cache=True, directory=str(tmp_path / "jwt"))
    assert "type: cache" in text and "ttl:" in text and "interval" not in text
    with NatsServer(text, tmp_path) as server:
        # the system account is preloaded: its user connects without any lookup
        assert asyncio.run(_round_trip(server.url, h.creds["sys"])) == b"world"
