"""``trustkit-broker -c FILE [-a HOST] [-p PORT]`` — flags named as nats-server's."""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable

from broker.config import BrokerConfig
from trustkit.errors import TrustkitError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="trustkit-broker", description="trustkit's bundled NATS broker")
    ap.add_argument("-c", "--config", help="nats-server configuration file")
    ap.add_argument("-a", "--addr", "--net", dest="host", help="bind address (default 0.0.0.0)")
    ap.add_argument("-p", "--port", type=int, help="client port (default 4222; -1 for random)")
    ap.add_argument("-m", "--http_port", type=int, help="monitoring port (/healthz, /varz, /connz)")
    args = ap.parse_args(argv)
    try:
        cfg = BrokerConfig.from_file(args.config) if args.config else BrokerConfig()
    except TrustkitError as exc:
        print(f"trustkit-broker: {exc}", file=sys.stderr)
        return 1
    if args.host:
        cfg.host = args.host
    if args.port is not None:
        cfg.port = 0 if args.port == -1 else args.port
    if args.http_port is not None:
        cfg.http_port = 0 if args.http_port == -1 else args.http_port
    # A connection allocates a few hundred objects, none of them in reference cycles that matter
    # while it lives: the default young-generation threshold (700) ran a collection every couple
    # of connects (~12 us each). Everything imported so far is frozen out of later collections.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(cfg))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (``pip install trustkit[fast]``), unless
    ``TRUSTKIT_BROKER_UVLOOP=0``; otherwise asyncio's own."""
    if os.environ.get("TRUSTKIT_BROKER_UVLOOP", "1") == "0":
        return None
    try:
        uvloop = importlib.import_module("uvloop")  # optional: typed as Any without it installed
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve(cfg: BrokerConfig) -> int:
    from broker.server import Broker

    broker = Broker(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    await broker.start()
    mode = "operator mode" if cfg.operator_mode else "auth required" if cfg.auth_required else "no auth"
    print(f"trustkit-broker listening on {cfg.host}:{cfg.port} ({mode})", file=sys.stderr, flush=True)
    print("Server is ready", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
