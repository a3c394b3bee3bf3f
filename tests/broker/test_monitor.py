"""The broker's monitoring port and claims-update replies (in-process broker, real nats-py)."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import nats

from broker.config import BrokerConfig
from broker.server import Broker


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_healthz_varz_connz_count_real_traffic() -> None:
    async def run() -> None:
        broker = Broker(BrokerConfig(host="127.0.0.1", port=0, http_port=0))
        await broker.start()
        hp = broker.config.http_port
        assert hp
        try:
            url = f"nats://127.0.0.1:{broker.config.port}"
            a = await nats.connect(url, name="alpha")
            b = await nats.connect(url, name="beta")
            sub = await a.subscribe("m.>")
            await a.flush()
            for i in range(5):
                await b.publish(f"m.{i}", b"12345")
            for _ in range(5):
                await sub.next_msg(timeout=2)
            await b.flush()
            status, health = await asyncio.to_thread(_get, hp, "/healthz")
            assert (status, health) == (200, {"status": "ok"})
            _, varz = await asyncio.to_thread(_get, hp, "/varz")
            assert varz["connections"] == 2 and varz["subscriptions"] >= 1
            assert varz["in_msgs"] >= 5 and varz["out_msgs"] >= 5 and varz["in_bytes"] >= 25
            _, connz = await asyncio.to_thread(_get, hp, "/connz")
            names = {c["name"]: c for c in connz["connections"]}  # type: ignore[union-attr, index]
            assert names["beta"]["in_msgs"] >= 5 and names["alpha"]["out_msgs"] >= 5
            status, _ = await asyncio.to_thread(_get, hp, "/nope")
            assert status == 404
            await a.close()
            await b.close()
        finally:
            await broker.close()

    asyncio.run(run())
