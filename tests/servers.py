"""One interface for both servers: the real nats-server and trustkit-broker, as processes.

Server-facing tests are written once and parametrized over ``SERVER_KINDS``: same config text,
same creds, same expected outcome and ``-ERR`` text.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.natsserver import NatsServer
from tests.realcomp import free_port

SERVER_KINDS = ("nats-server", "trustkit-broker")


class BrokerProcess:
    """trustkit-broker started exactly as a user would: ``trustkit-broker -c FILE``."""

    def __init__(self, config: str, workdir: Path, *, name: str = "broker") -> None:
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / f"{name}.conf"
        self.conf.write_text(f"host: 127.0.0.1\nport: {self.port}\n{config}\n")
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> BrokerProcess:
        exe = str(Path(sys.executable).parent / "trustkit-broker")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [exe, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"trustkit-broker exited ({self.proc.returncode}):\n{self.log.read_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4096).startswith(b"INFO "):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"trustkit-broker did not start in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_server(kind: str, config: str, workdir: Path) -> NatsServer | BrokerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "nats-server":
        return NatsServer(config, workdir)
    return BrokerProcess(config, workdir)
