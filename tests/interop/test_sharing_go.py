"""Golden check: account JWTs with exports, imports (with an activation token) and mappings, as
the trustkit CLI writes them, decode and validate in Go's nats-io/jwt, and Go reads the same
exports, imports and mappings back. The activation tokens validate in Go too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.interop.gocheck import GoChecker
from trustkit import jwt
from trustkit.cli.app import app
from trustkit.creds import parse_decorated_jwt

runner = CliRunner()


def _cli(env: dict[str, str], *args: str) -> Any:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, f"trustkit {' '.join(args)}\n{result.output}"
    out = result.stdout.strip()
    return json.loads(out) if out.startswith(("{", "[")) else out


def _no_issues(go: GoChecker, token: str, kind: str) -> dict[str, Any]:
    result = go.decode(token, kind)
    assert result["kind"] == kind
    assert (result["errors"], result["warnings"], result["time_checks"]) == ([], [], []), result
    return result


def test_export_import_pair_validates_in_go(go_checker: GoChecker, tmp_path: Path) -> None:
    env = {"TRUSTKIT_HOME": str(tmp_path / "home")}
    _cli(env, "init", "-n", "op")
    _cli(env, "add", "account", "-n", "B")
    _cli(env, "edit", "account", "-n", "op", "--sk", "generate")
    exports = (
        ("-s", "orders.>", "--description", "orders", "--info-url", "https://example.com/orders"),
        (
            "-s",
            "svc.echo",
            "--service",
            "--response-type",
            "Stream",
            "--latency",
            "lat.echo",
            "--sampling",
            "30",
        ),
        ("-s", "svc.private.>", "--service", "--private", "--response-threshold", "5s"),
        ("-s", "feed.private", "--private"),
        ("-s", "acct.*.events", "--account-token-position", "2"),
    )
    for args in exports:
        _cli(env, "add", "export", "-a", "op", *args)
    b_key = _cli(env, "describe", "account", "-n", "B")["sub"]
    op_claims = _cli(env, "describe", "account", "-n", "op")
    signing_key = op_claims["nats"]["signing_keys"][0]
    svc_token = parse_decorated_jwt(
        _cli(env, "generate", "activation", "-a", "op", "-s", "svc.private.>", "-t", "B")
    )
    feed_token = parse_decorated_jwt(
        _cli(env, "generate", "activation", "-a", "op", "-s", "feed.private", "-t", b_key, "-K", signing_key,
             "--expiry", "30d")
    )  # fmt: skip
    _cli(env, "revocations", "add-activation", "-a", "op", "-s", "svc.private.>", "-t", "*", "--at", "1000")
    imports = (
        ("--src-account", "op", "--remote-subject", "orders.>", "-s", "in.orders.>"),
        ("--src-account", "op", "--remote-subject", "svc.echo", "--service", "-s", "echo", "--share"),
        ("--token", svc_token, "-s", "private.>"),
        ("--token", feed_token),
        ("--src-account", "op", "--remote-subject", "acct.*.events"),
    )
    for args in imports:
        _cli(env, "add", "import", "-a", "B", *args)
    _cli(
        env, "add", "mapping", "-a", "B", "--from", "in.orders.*", "--to", "orders.$1.local", "--weight", "80"
    )
    _cli(
        env, "add", "mapping", "-a", "B", "--from", "in.orders.*", "--to", "orders.$1.audit", "--weight", "20"
    )
    # per-cluster weights are totalled apart by current Go (and trustkit); the checker's v2.3.0
    # still adds them to the others, so the cluster mapping gets a source of its own here
    _cli(env, "add", "mapping", "-a", "B", "--from", "west.*", "--to", "orders.$1.west", "--cluster", "w")

    store = tmp_path / "home" / "stores" / "op" / "accounts"
    for name, expect_exports, expect_imports in (("op", 5, 0), ("B", 0, 5)):
        token = (store / name / f"{name}.jwt").read_text()
        ours = jwt.decode(token, jwt.AccountClaims).payload_json()["nats"]
        go = _no_issues(go_checker, token, "account")["claims"]["nats"]
        assert (
            len(ours.get("exports", [])) == expect_exports and len(ours.get("imports", [])) == expect_imports
        )
        for key in ("exports", "imports", "mappings"):
            assert go.get(key) == ours.get(key), key  # Go reads back exactly what trustkit wrote
    for token in (svc_token, feed_token):
        _no_issues(go_checker, token, "activation")
    feed = go_checker.decode(feed_token, "activation")["claims"]
    assert feed["iss"] == signing_key and feed["nats"]["issuer_account"] == op_claims["sub"]
