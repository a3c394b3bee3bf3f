"""How the broker accepts connections: on asyncio's own loop it makes each transport itself
(Broker._accept); an accept error pauses accepting for a moment instead of spinning."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

import broker.server as server
from broker.config import BrokerConfig
from broker.server import Broker


async def _ping(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            await reader.readline()  # INFO
            writer.write(b"CONNECT {}\r\nPING\r\n")
            return await reader.readline()
    finally:
        writer.close()


def test_asyncio_loop_accepts_directly() -> None:
    async def scenario() -> tuple[bool, list[bytes]]:
        broker = Broker(BrokerConfig(host="127.0.0.1", port=0), log=lambda m: None)
        await broker.start()
        try:
            direct = server._direct_accept(asyncio.get_running_loop())
            answers = await asyncio.gather(*(_ping(broker.config.port) for _ in range(20)))
            return direct, list(answers)
        finally:
            await broker.close()

    direct, answers = asyncio.run(scenario())
    assert direct
    assert answers == [b"+OK\r\n"] * 20


class _Flaky:
    """A listening socket whose first accept fails as when the process is out of descriptors."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.failed = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        if not self.failed:
            self.failed += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.real.accept()


def test_an_accept_error_pauses_accepting_then_it_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "ACCEPT_RETRY", 0.3)
    logs: list[str] = []

    async def scenario() -> tuple[bool, bytes, float]:
        loop = asyncio.get_running_loop()
        broker = Broker(BrokerConfig(host="127.0.0.1", port=0), log=logs.append)
        await broker.start()
        try:
            (listener,) = broker._server._sockets  # type: ignore[union-attr]
            flaky = _Flaky(listener)
            loop.remove_reader(listener.fileno())
            loop.add_reader(listener.fileno(), broker._accept, loop, flaky)
            started = loop.time()
            answer = await _ping(broker.config.port)  # waits out the pause, then is served
            return flaky.failed == 1, answer, loop.time() - started
        finally:
            await broker.close()

    failed_once, answer, waited = asyncio.run(scenario())
    assert failed_once and answer == b"+OK\r\n"
    assert waited >= 0.25  # nothing accepted during the pause
    assert logs == ["accept error: [Errno 24] Too many open files"]
