"""``include`` and ``$variables`` in the server config: nats-server and trustkit-broker read the
same file the same way (trustkit.natsconf, which ``trustkit-callout doctor`` uses too)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.servers import SERVER_KINDS, make_server

pytestmark = pytest.mark.real

CONFIG = """
LIMIT: 512
include "conf.d/users.conf"
authorization {
  include conf.d/perms.conf
  users: [ {user: alice, password: $PASS, permissions: {publish: $ALLOWED}} ]
}
max_payload: $LIMIT
"""


def _exchange(url: str, data: bytes) -> tuple[dict[str, object], list[bytes]]:
    host, port = url.removeprefix("nats://").split(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        buf = b""
        while b"\r\n" not in buf:
            buf += sock.recv(65536)
        line, buf = buf.split(b"\r\n", 1)
        info = json.loads(line[5:])
        sock.sendall(data + b"PING\r\n")
        deadline = time.monotonic() + 3
        while b"PONG\r\n" not in buf and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return info, [x for x in buf.split(b"\r\n") if x and not x.startswith(b"INFO ")]


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_include_and_variables(kind: str, tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "users.conf").write_text('PASS: "s3cret"\n')
    # an included file is read on its own: its variables are its own (ALLOWED), and it is
    # resolved against the including file's directory, whatever block includes it
    (tmp_path / "conf.d" / "perms.conf").write_text('ALLOWED: ["ok.>"]\n')
    with make_server(kind, CONFIG, tmp_path) as srv:
        connect = json.dumps({"user": "alice", "pass": "s3cret", "verbose": False, "protocol": 1})
        info, lines = _exchange(
            srv.url, f"CONNECT {connect}\r\nPUB ok.1 1\r\nx\r\nPUB no 1\r\nx\r\n".encode()
        )
        assert info["max_payload"] == 512
        assert lines == [b"-ERR 'Permissions Violation for Publish to \"no\"'", b"PONG"]
        wrong = json.dumps({"user": "alice", "pass": "$PASS", "verbose": False})
        _, lines = _exchange(srv.url, f"CONNECT {wrong}\r\n".encode())
        assert lines == [b"-ERR 'Authorization Violation'"]
