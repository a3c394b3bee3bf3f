"""One interface for both servers: the real nats-server and trustkit-broker, as processes.

Server-facing tests are written once and parametrized over ``SERVER_KINDS``: same config text,
same creds, same expected outcome and ``-ERR`` text.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.natsserver import NatsServer, ServerProcess

SERVER_KINDS = ("nats-server", "trustkit-broker")


class BrokerProcess(ServerProcess):
    """trustkit-broker started exactly as a user would: ``trustkit-broker -c FILE``."""

    label = "trustkit-broker"

    def __init__(self, config: str, workdir: Path, *, name: str = "broker") -> None:
        super().__init__(config, workdir, name=name)

    def command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "trustkit-broker"), "-c", str(self.conf)]


def make_server(kind: str, config: str, workdir: Path) -> ServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "nats-server":
        return NatsServer(config, workdir)
    return BrokerProcess(config, workdir)
