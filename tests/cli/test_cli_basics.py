"""The trustkit CLI shell: output rules, exit statuses, secrets only when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from trustkit import jwt
from trustkit.cli.app import app
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte

runner = CliRunner()
IAT = 1_800_000_000


def _user_creds(tmp_path: Path) -> tuple[Path, str, str]:
    acct = KeyPair.generate(PrefixByte.ACCOUNT)
    user = KeyPair.generate(PrefixByte.USER)
    token = jwt.UserClaims(sub=user.public_key, name="bob", pub=jwt.Permission(allow=["a.>"])).encode(
        acct, iat=IAT
    )
    path = tmp_path / "bob.creds"
    path.write_bytes(format_user_creds(token, user.seed))
    return path, token, user.seed


def test_generate_nkey_refuses_to_lose_the_seed() -> None:
    result = runner.invoke(app, ["generate", "nkey", "--user"])
    assert result.exit_code == 2
    assert "--show-seeds" in result.output


def test_generate_nkey_json_when_piped() -> None:
    result = runner.invoke(app, ["generate", "nkey", "--account", "--show-seeds"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)  # CliRunner's stdout is not a TTY: JSON by default
    kp = KeyPair.from_seed(out["seed"])
    assert kp.public_key == out["public_key"] and kp.kind is PrefixByte.ACCOUNT


def test_describe_jwt_from_creds(tmp_path: Path) -> None:
    path, token, seed = _user_creds(tmp_path)
    result = runner.invoke(app, ["describe", "jwt", "-f", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["type"] == "user"
    assert out["claims"]["nats"]["pub"] == {"allow": ["a.>"]}
    assert out["errors"] == [] and out["time_checks"] == []
    assert seed not in result.output, "describe must never print the seed of a creds file"
    raw = runner.invoke(app, ["describe", "jwt", "-f", str(path), "--raw"])
    assert raw.stdout.strip() == token
    field = runner.invoke(app, ["describe", "jwt", "-f", str(path), "--field", "nats.pub.allow"])
    assert json.loads(field.stdout) == {"nats.pub.allow": ["a.>"]}


def test_describe_jwt_refuses_a_forged_token(tmp_path: Path) -> None:
    _, token, _ = _user_creds(tmp_path)
    head, payload, sig = token.split(".")
    forged = tmp_path / "forged.jwt"
    forged.write_text(f"{head}.{payload}.{'A' * len(sig)}")
    result = runner.invoke(app, ["describe", "jwt", "-f", str(forged)])
    assert result.exit_code == 4
    assert "signature" in result.stderr.lower()
    assert result.stderr.count("\n") == 1, "errors are one line"


def test_missing_file_is_one_line_with_exit_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["describe", "jwt", "-f", str(tmp_path / "nope.jwt")])
    assert result.exit_code == 3
    assert "nope.jwt" in result.stderr and result.stderr.count("\n") == 1


def test_entry_point_is_installed() -> None:
    exe = Path(sys.executable).parent / "trustkit"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "generate" in out.stdout and "describe" in out.stdout


def test_usage_errors_are_one_line_with_exit_2() -> None:
    """The installed program (``main``), not the typer runner: typer alone prints a boxed panel."""
    exe = str(Path(sys.executable).parent / "trustkit")
    cases = {
        ("add", "user", "--bogus"): (
            "trustkit add user: no such option: --bogus (see 'trustkit add user --help')"
        ),
        ("nosuch",): "trustkit: no such command 'nosuch' (see 'trustkit --help')",
    }
    for args, line in cases.items():
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 2, out
        assert out.stderr == line + "\n" and out.stdout == ""
    # a missing argument names the option; help without arguments still prints help (exit 2, as before)
    out = subprocess.run([exe, "add", "signing-key", "--role"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "'--role' requires an argument" in out.stderr
    out = subprocess.run([exe, "add"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "Usage" in out.stdout
