"""Sharing between accounts through the CLI (typer's CliRunner, in-process): exports, imports,
mappings, activations and their revocations, and their errors.

Every refused command must print one stderr line, exit with the status of its error class
(:data:`trustkit.errors.EXIT_STATUS`) and leave the store, keystore and context untouched. Every
accepted change must leave an account JWT signed by the operator with a later ``iat``.
The same flows run on the real nats-server in tests/conformance/test_sharing.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from trustkit import jwt
from trustkit.cli.app import app
from trustkit.creds import parse_decorated_jwt
from trustkit.errors import ClaimsInvalidError, StoreError, exit_status
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.sharing import _mapping_problem, parse_sampling

runner = CliRunner()
STORE_ERR = exit_status(StoreError("x"))  # 3
CLAIMS_ERR = exit_status(ClaimsInvalidError("x"))  # 4
USAGE = 2


class Home:
    """A TRUSTKIT_HOME with ``init -n op`` (accounts SYS and op) and accounts B and C."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {"TRUSTKIT_HOME": str(root)}
        self.ok("init", "-n", "op")
        self.ok("add", "account", "-n", "B")
        self.ok("add", "account", "-n", "C")

    def run(self, *args: str) -> Any:
        return runner.invoke(app, list(args), env=self.env)

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.exit_code == 0, f"trustkit {' '.join(args)} -> {result.exit_code}\n{result.output}"
        out = result.stdout.strip()
        return json.loads(out) if out.startswith(("{", "[")) else out

    @property
    def store(self) -> Path:
        return self.root / "stores" / "op"

    def account(self, name: str) -> jwt.AccountClaims:
        return jwt.decode((self.store / "accounts" / name / f"{name}.jwt").read_text(), jwt.AccountClaims)

    def key(self, name: str) -> str:
        return self.account(name).sub

    def operator_key(self) -> str:
        return jwt.decode((self.store / "op.jwt").read_text(), jwt.OperatorClaims).sub

    def seeds(self) -> list[str]:
        return [p.read_text().strip() for p in (self.root / "keys" / "keys").rglob("*.nk")]

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        out: dict[str, tuple[int, bytes]] = {}
        for p in sorted(self.root.rglob("*")):
            out[str(p.relative_to(self.root))] = (p.stat().st_mode, b"" if p.is_dir() else p.read_bytes())
        return out

    def refused(self, *args: str, status: int, needle: str = "") -> str:
        """Run a command that must fail: one stderr line, ``status``, nothing written."""
        before = self.snapshot()
        result = self.run(*args)
        assert result.exit_code == status, f"{args}: {result.exit_code}\n{result.output}"
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("trustkit: error: "), result.stderr
        assert needle.lower() in result.stderr.lower(), result.stderr
        assert self.snapshot() == before, f"trustkit {' '.join(args)} wrote something"
        return str(result.stderr)

    def changed(self, account: str, *args: str) -> tuple[Any, jwt.AccountClaims]:
        """Run a command that changes ``account``: it must be re-signed by the operator, later."""
        before = self.account(account)
        out = self.ok(*args)
        after = self.account(account)
        assert after.iss == self.operator_key() and after.iat > before.iat
        return out, after

    def activation(self, *args: str) -> str:
        """``generate activation`` to stdout: the decorated token, as nsc prints it."""
        text = self.ok("generate", "activation", *args)
        assert text.startswith("-----BEGIN NATS ACTIVATION JWT-----")
        return parse_decorated_jwt(text)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


# --- pure helpers -------------------------------------------------------------------------------


def test_parse_sampling() -> None:
    assert parse_sampling("header") == parse_sampling("Headers") == 0
    assert parse_sampling("1") == 1 and parse_sampling("100") == 100
    for bad in ("0", "101", "-5", "x", ""):
        with pytest.raises(StoreError, match="sampling"):
            parse_sampling(bad)


def test_mapping_references_must_name_existing_wildcards() -> None:
    assert _mapping_problem("a.*.*", "b.$2.$1") is None
    assert _mapping_problem("a.*", "b.{{wildcard(1)}}") is None
    assert _mapping_problem("a.*", "b.{{ Wildcard( 1 ) }}") is None
    assert _mapping_problem("a", "b") is None
    assert "wildcard '2'" in str(_mapping_problem("a.*", "b.$2"))
    assert "wildcard '3'" in str(_mapping_problem("a.*.*", "{{wildcard(3)}}"))
    assert _mapping_problem("a.>", "b.$1") is not None  # '>' is not a numbered wildcard


# --- exports ------------------------------------------------------------------------------------


def test_add_export_stream_and_service(home: Home) -> None:
    out, acct = home.changed("op", "add", "export", "-a", "op", "--subject", "orders.>")
    assert out["kind"] == "export" and out["action"] == "added" and out["account"] == "op"
    assert out["export"] == {"name": "orders.>", "subject": "orders.>", "type": "stream"}
    assert [e.to_json() for e in acct.exports] == [out["export"]]
    out, acct = home.changed(
        "op", "add", "export", "-a", "op", "-s", "svc.*", "--service", "-n", "svc", "--private",
        "--response-type", "Stream", "--response-threshold", "2s", "--latency", "lat.svc",
        "--sampling", "25", "--description", "the service", "--info-url", "https://example.com/svc",
        "--allow-trace",
    )  # fmt: skip
    assert out["export"] == {
        "name": "svc",
        "subject": "svc.*",
        "type": "service",
        "token_req": True,
        "response_type": "Stream",
        "response_threshold": 2_000_000_000,
        "service_latency": {"sampling": 25, "results": "lat.svc"},
        "allow_trace": True,
        "description": "the service",
        "info_url": "https://example.com/svc",
    }
    assert [e.subject for e in acct.exports] == ["orders.>", "svc.*"]
    # a service defaults to Singleton (nsc writes it); latency without --sampling is "headers"
    out = home.ok("add", "export", "-a", "op", "-s", "q.x", "--service", "--latency", "lat.q")
    assert out["export"]["response_type"] == "Singleton"
    assert out["export"]["service_latency"] == {"sampling": "headers", "results": "lat.q"}
    # the same subject may be exported as both kinds
    home.ok("add", "export", "-a", "op", "-s", "q.x")
    # an account token position on a public wildcard export
    out = home.ok("add", "export", "-a", "op", "-s", "acct.*.events", "--account-token-position", "2")
    assert out["export"]["account_token_position"] == 2
    assert home.account("op").validate(now=acct.iat).errors == []


def test_add_export_errors(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "orders.>")
    home.refused("add", "export", "-a", "op", "-s", "orders.eu", status=CLAIMS_ERR, needle="overlapping")
    home.refused("add", "export", "-a", "op", "-s", "orders.>", status=CLAIMS_ERR, needle="overlapping")
    home.refused(
        "add", "export", "-a", "op", "-s", "a.*", "--private", "--account-token-position", "2",
        status=STORE_ERR, needle="only valid for public exports",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.*", "--account-token-position", "1",
        "--account-token-position", "3", status=CLAIMS_ERR, needle="exceeds length",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--response-type", "Stream",
        status=STORE_ERR, needle="service",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--service", "--response-type", "Many",
        status=STORE_ERR, needle="unknown response type",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--service", "--sampling", "5",
        status=STORE_ERR, needle="--latency",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--service", "--latency", "l", "--sampling", "500",
        status=STORE_ERR, needle="1 to 100",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--latency", "lat", status=CLAIMS_ERR,
        needle="only permitted for services",
    )  # fmt: skip
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--service", "--latency", "lat.>",
        status=CLAIMS_ERR, needle="wildcards",
    )  # fmt: skip
    home.refused("add", "export", "-a", "op", "-s", "a..b", status=STORE_ERR, needle="empty token")
    home.refused("add", "export", "-a", "op", "-s", "a.b", "--allow-trace", status=CLAIMS_ERR, needle="trace")
    home.refused("add", "export", "-a", "nope", "-s", "a.b", status=STORE_ERR, needle="nope")
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--info-url", "nohost", status=CLAIMS_ERR, needle="info url"
    )
    home.refused(
        "add", "export", "-a", "op", "-s", "a.b", "--service", "--response-threshold", "soon",
        status=USAGE, needle="duration",
    )  # fmt: skip


def test_edit_export_keeps_what_is_not_named(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "svc.>", "--service", "--private", "--latency", "lat.s")
    home.ok("revocations", "add-activation", "-a", "op", "-s", "svc.>", "-t", "B", "--at", "1000")
    out, acct = home.changed(
        "op", "edit", "export", "-a", "op", "-s", "svc.>", "-n", "renamed", "--description", "d",
        "--response-type", "Chunked", "--sampling", "10",
    )  # fmt: skip
    exp = acct.exports[0]
    assert (exp.name, exp.description, exp.response_type, exp.token_req) == ("renamed", "d", "Chunked", True)
    assert exp.service_latency is not None and (
        exp.service_latency.sampling,
        exp.service_latency.results,
    ) == (
        10,
        "lat.s",
    )
    assert exp.revocations == {home.key("B"): 1000}  # nsc loses these on edit; trustkit keeps them
    assert "name=renamed" in out["changes"] and out["warnings"] == []
    out, acct = home.changed("op", "edit", "export", "-a", "op", "--public")  # the only export
    assert acct.exports[0].token_req is False and "public" in out["warnings"][0]
    out, acct = home.changed("op", "edit", "export", "-a", "op", "-s", "svc.>", "--stream")
    exp = acct.exports[0]
    assert exp.type == "stream" and exp.response_type == "" and exp.service_latency is None
    assert "removed service_latency (services only)" in out["changes"]
    out, acct = home.changed("op", "edit", "export", "-a", "op", "-s", "svc.>", "--service")
    assert acct.exports[0].response_type == "Singleton"
    out, acct = home.changed("op", "edit", "export", "-a", "op", "-s", "svc.>", "--latency", "lat.t")
    assert acct.exports[0].service_latency is not None and acct.exports[0].service_latency.sampling == 0
    out, acct = home.changed("op", "edit", "export", "-a", "op", "-s", "svc.>", "--rm-latency-sampling")
    assert acct.exports[0].service_latency is None and out["changes"] == ["removed service_latency"]


def test_edit_export_errors(home: Home) -> None:
    home.refused("edit", "export", "-a", "op", "-s", "x", "-n", "y", status=STORE_ERR, needle="no export")
    home.ok("add", "export", "-a", "op", "-s", "s.a")
    home.ok("add", "export", "-a", "op", "-s", "s.b", "--service")
    home.refused("edit", "export", "-a", "op", "-s", "s.a", status=USAGE, needle="nothing to change")
    home.refused("edit", "export", "-a", "op", "-n", "y", status=STORE_ERR, needle="its subject")
    home.refused("edit", "export", "-a", "op", "-s", "s.zz", "-n", "y", status=STORE_ERR, needle="s.zz")
    home.refused("edit", "export", "-a", "op", "-s", "s.a", "-n", "s.a", status=STORE_ERR, needle="already")
    home.refused(
        "edit", "export", "-a", "op", "-s", "s.a", "--latency", "l", status=STORE_ERR, needle="services only"
    )
    home.refused(
        "edit", "export", "-a", "op", "-s", "s.b", "--rm-latency-sampling", status=STORE_ERR, needle="latency"
    )
    home.refused(
        "edit", "export", "-a", "op", "-s", "s.b", "--sampling", "5", status=STORE_ERR, needle="--latency"
    )
    home.refused(
        "edit", "export", "-a", "op", "-s", "s.a", "--private", "--account-token-position", "1",
        status=STORE_ERR, needle="public exports",
    )  # fmt: skip


def test_delete_export(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "orders.>")
    home.ok("add", "export", "-a", "op", "-s", "orders.>", "--service")
    home.ok("add", "import", "-a", "B", "--src-account", "op", "--remote-subject", "orders.eu")
    home.refused("delete", "export", "-a", "op", "-s", "orders.>", status=STORE_ERR, needle="--service")
    home.refused("delete", "export", "-a", "op", "-s", "orders", status=STORE_ERR, needle="no export")
    out, acct = home.changed("op", "delete", "export", "-a", "op", "-s", "orders.>", "--service")
    assert out["export"]["type"] == "service" and out["warnings"] == []
    out, acct = home.changed("op", "delete", "export", "-a", "op", "-s", "orders.>")  # the only one left
    assert out["action"] == "deleted" and out["export"]["type"] == "stream" and acct.exports == []
    assert out["warnings"] == ["account 'B' imports this export: its import stops working"]
    home.refused("delete", "export", "-a", "op", status=STORE_ERR, needle="no exports")


# --- imports ------------------------------------------------------------------------------------


def test_add_public_imports(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "orders.>")
    home.ok("add", "export", "-a", "op", "-s", "svc.echo", "--service")
    out, acct = home.changed(
        "B", "add", "import", "-a", "B", "--src-account", "op", "--remote-subject", "orders.>",
        "--local-subject", "in.orders.>", "--allow-trace",
    )  # fmt: skip
    assert out["import"] == {
        "name": "orders.>",
        "subject": "orders.>",
        "account": home.key("op"),
        "local_subject": "in.orders.>",
        "type": "stream",
        "allow_trace": True,
    }
    assert out["warnings"] == []
    # the source account by public key, a service, a subject inside a wildcard export, --share
    out, acct = home.changed(
        "C", "add", "import", "-a", "C", "--src-account", home.key("op"), "--remote-subject", "svc.echo",
        "--service", "-n", "echo", "--share", "-s", "echo",
    )  # fmt: skip
    assert out["import"]["type"] == "service" and out["import"]["name"] == "echo"
    assert out["import"]["share"] is True and acct.imports[0].local_subject == "echo"
    home.changed("C", "add", "import", "-a", "C", "--src-account", "op", "--remote-subject", "orders.us")
    assert [i.subject for i in home.account("C").imports] == ["orders.us", "svc.echo"]


def test_import_from_an_account_outside_the_store_is_unchecked(home: Home) -> None:
    foreign = KeyPair.generate(PrefixByte.ACCOUNT).public_key
    out = home.ok("add", "import", "-a", "B", "--src-account", foreign, "--remote-subject", "x.y")
    assert "could not be checked" in out["warnings"][0]


def test_import_errors(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "orders.>")
    home.ok("add", "export", "-a", "op", "-s", "svc.echo", "--service")
    home.ok("add", "export", "-a", "op", "-s", "svc.private", "--service", "--private")
    imp = ("add", "import", "-a", "B", "--src-account", "op", "--remote-subject")
    home.refused(*imp, "billing.>", status=CLAIMS_ERR, needle="no stream export containing 'billing.>'")
    home.refused(*imp, "orders.>", "--service", status=CLAIMS_ERR, needle="as a stream (drop --service)")
    home.refused(*imp, "svc.echo", status=CLAIMS_ERR, needle="as a service (add --service)")
    home.refused(
        *imp, "svc.private", "--service", status=CLAIMS_ERR, needle="is private: import it with --token"
    )
    home.refused(*imp, "orders.x", "--share", status=STORE_ERR, needle="only service imports")
    home.refused(*imp, "svc.echo", "--service", "--allow-trace", status=STORE_ERR, needle="stream imports")
    home.refused(*imp, "orders x", status=STORE_ERR, needle="white space")
    home.refused(
        "add", "import", "-a", "op", "--src-account", "op", "--remote-subject", "orders.>",
        status=STORE_ERR, needle="cannot import from itself",
    )  # fmt: skip
    home.refused(
        "add", "import", "-a", "B", "--src-account", "nope", "--remote-subject", "a",
        status=STORE_ERR, needle="'nope' is neither",
    )  # fmt: skip
    home.refused("add", "import", "-a", "B", "--src-account", "op", status=USAGE, needle="--remote-subject")
    home.ok(*imp, "orders.>", "--local-subject", "in.>")
    home.refused(*imp, "orders.>", status=STORE_ERR, needle="already imports")
    # service imports from one account must not overlap (Go validation)
    home.ok("add", "export", "-a", "op", "-s", "svc.all.>", "--service")
    home.ok(*imp, "svc.all.>", "--service")
    home.refused(*imp, "svc.all.x", "--service", status=CLAIMS_ERR, needle="overlapping")
    home.refused(*imp, "orders.*", "--local-subject", "in.x", status=CLAIMS_ERR, needle="wildcards")


def test_account_token_position_is_filled_with_the_importer_key(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "acct.*.events", "--account-token-position", "2")
    b = home.key("B")
    out = home.ok("add", "import", "-a", "B", "--src-account", "op", "--remote-subject", "acct.*.events")
    assert out["import"]["subject"] == f"acct.{b}.events" and out["changes"]
    home.ok(
        "add", "import", "-a", "C", "--src-account", "op", "--remote-subject", f"acct.{home.key('C')}.events"
    )
    home.refused(
        "add", "import", "-a", "C", "--src-account", "op", "--remote-subject", f"acct.{b}.events",
        status=CLAIMS_ERR, needle="its own key at token 2",
    )  # fmt: skip


def test_private_import_with_activation(home: Home, tmp_path: Path) -> None:
    home.ok("add", "export", "-a", "op", "-s", "svc.>", "--service", "--private")
    token = home.activation("-a", "op", "-s", "svc.time", "-t", "B")
    act = jwt.decode(token, jwt.ActivationClaims)
    assert (act.sub, act.iss, act.import_subject, act.import_type) == (
        home.key("B"),
        home.key("op"),
        "svc.time",
        "service",
    )
    assert act.issuer_account == "" and act.name == "svc.time" and act.exp == 0
    # --token as the JWT itself: source, subject and kind come from the token
    out, _ = home.changed("B", "add", "import", "-a", "B", "--token", token, "-s", "time")
    assert out["import"] == {
        "name": "svc.time",
        "subject": "svc.time",
        "account": home.key("op"),
        "token": token,
        "local_subject": "time",
        "type": "service",
    }
    # --token as a file written by -o (decorated, 0600), with the same explicit values
    path = tmp_path / "c.jwt"
    report = home.ok("generate", "activation", "-a", "op", "-s", "svc.>", "-t", "C", "-o", str(path))
    assert report["file"] == str(path) and path.stat().st_mode & 0o777 == 0o600
    assert report["target_name"] == "C" and report["type"] == "service"
    out = home.ok(
        "add", "import", "-a", "C", "--token", str(path), "--src-account", "op", "--remote-subject", "svc.x",
        "--service",
    )  # fmt: skip
    assert out["import"]["subject"] == "svc.x" and out["import"]["local_subject"] == "svc.x"
    assert out["import"]["token"] == path.read_text().split("\n")[1]


def test_activation_errors_on_import(home: Home, tmp_path: Path) -> None:
    home.ok("add", "export", "-a", "op", "-s", "svc.>", "--service", "--private")
    home.ok("add", "export", "-a", "op", "-s", "feed.>", "--private")
    for_b = home.activation("-a", "op", "-s", "svc.time", "-t", "B")
    imp = ("add", "import", "-a", "C")
    home.refused(*imp, "--token", for_b, status=CLAIMS_ERR, needle=f"is for account {home.key('B')}")
    home.refused(
        "add", "import", "-a", "B", "--token", for_b, "--remote-subject", "svc.other", "--src-account", "op",
        status=CLAIMS_ERR, needle="does not contain 'svc.other'",
    )  # fmt: skip
    home.refused(
        "add", "import", "-a", "B", "--token", for_b, "--src-account", "C",
        status=CLAIMS_ERR, needle="not by",
    )  # fmt: skip
    stream = home.activation("-a", "op", "-s", "feed.>", "-t", "B")
    home.refused(
        "add",
        "import",
        "-a",
        "B",
        "--token",
        stream,
        "--service",
        status=CLAIMS_ERR,
        needle="grants a stream",
    )
    expired = home.activation("-a", "op", "-s", "svc.time", "-t", "B", "--expiry", "100")
    home.refused("add", "import", "-a", "B", "--token", expired, status=CLAIMS_ERR, needle="expired")
    forged = for_b[:-4] + ("AAAA" if not for_b.endswith("AAAA") else "BBBB")
    home.refused("add", "import", "-a", "B", "--token", forged, status=CLAIMS_ERR, needle="not valid")
    home.refused(
        "add", "import", "-a", "B", "--token", str(tmp_path / "none.jwt"), status=STORE_ERR, needle="none.jwt"
    )
    # an activation signed for op by a key that is not op's signing key
    stray = KeyPair.generate(PrefixByte.ACCOUNT)
    bogus = jwt.ActivationClaims(
        sub=home.key("B"), import_subject="svc.time", import_type="service", issuer_account=home.key("op")
    ).encode(stray, iat=1_800_000_000)
    home.refused("add", "import", "-a", "B", "--token", bogus, status=CLAIMS_ERR, needle="not a signing key")
    # a revoked activation
    home.ok("revocations", "add-activation", "-a", "op", "-s", "svc.>", "-t", "B")
    home.refused("add", "import", "-a", "B", "--token", for_b, status=CLAIMS_ERR, needle="revoked")


def test_activation_signed_by_a_signing_key(home: Home) -> None:
    home.ok("edit", "account", "-n", "op", "--sk", "generate")
    sk = next(iter(home.account("op").signing_keys))
    home.ok("add", "export", "-a", "op", "-s", "feed.>", "--private")
    token = home.activation("-a", "op", "-s", "feed.a", "-t", home.key("B"), "-K", sk, "--expiry", "1d")
    act = jwt.decode(token, jwt.ActivationClaims)
    assert (act.iss, act.issuer_account, act.import_type) == (sk, home.key("op"), "stream")
    assert act.exp - act.iat == 86400
    out = home.ok("add", "import", "-a", "B", "--token", token)
    assert out["import"]["account"] == home.key("op") and "local_subject" not in out["import"]


def test_delete_import(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "orders.>")
    home.ok("add", "export", "-a", "C", "-s", "orders.>")
    home.ok("add", "import", "-a", "B", "--src-account", "op", "--remote-subject", "orders.>", "-s", "op.>")
    home.ok("add", "import", "-a", "B", "--src-account", "C", "--remote-subject", "orders.>", "-s", "c.>")
    home.refused("delete", "import", "-a", "B", "-s", "orders.>", status=STORE_ERR, needle="--src-account")
    home.refused("delete", "import", "-a", "B", "-s", "nope", status=STORE_ERR, needle="no import 'nope'")
    out, acct = home.changed("B", "delete", "import", "-a", "B", "-s", "orders.>", "--src-account", "C")
    assert out["import"]["account"] == home.key("C") and [i.account for i in acct.imports] == [home.key("op")]
    out, acct = home.changed("B", "delete", "import", "-a", "B", "-s", "op.>")  # by local subject
    assert acct.imports == []
    home.refused("delete", "import", "-a", "B", status=STORE_ERR, needle="0 imports")


# --- mappings -----------------------------------------------------------------------------------


def test_mappings(home: Home) -> None:
    out, acct = home.changed(
        "op", "add", "mapping", "-a", "op", "--from", "q.*", "--to", "r.$1", "--weight", "60"
    )
    assert out["mapping"] == {"from": "q.*", "to": [{"subject": "r.$1", "weight": 60}]}
    out, acct = home.changed("op", "add", "mapping", "-a", "op", "-f", "q.*", "-t", "s.$1", "--weight", "40")
    assert [(w.subject, w.weight) for w in acct.mappings["q.*"]] == [("r.$1", 60), ("s.$1", 40)]
    # the same destination again changes its weight
    out, acct = home.changed("op", "add", "mapping", "-a", "op", "-f", "q.*", "-t", "r.$1", "--weight", "10")
    assert out["action"] == "edited" and [w.weight for w in acct.mappings["q.*"]] == [10, 40]
    # per cluster totals are separate; no weight means 100 (omitted in the JWT)
    home.ok("add", "mapping", "-a", "op", "-f", "q.*", "-t", "w.$1", "--cluster", "west")
    home.ok("add", "mapping", "-a", "op", "-f", "plain", "-t", "other")
    acct = home.account("op")
    assert acct.mappings["plain"][0].to_json() == {"subject": "other"}
    assert acct.mappings["q.*"][-1].to_json() == {"subject": "w.$1", "cluster": "west"}
    out, acct = home.changed("op", "delete", "mapping", "-a", "op", "-f", "q.*", "-t", "s.$1")
    assert out["mapping"] == {"from": "q.*", "to": [{"subject": "s.$1", "weight": 40}]}
    assert [w.subject for w in acct.mappings["q.*"]] == ["r.$1", "w.$1"]
    out, acct = home.changed("op", "delete", "mapping", "-a", "op", "-f", "q.*", "--cluster", "west")
    assert [w.subject for w in acct.mappings["q.*"]] == ["r.$1"]
    out, acct = home.changed("op", "delete", "mapping", "-a", "op", "-f", "q.*")
    assert set(acct.mappings) == {"plain"}


def test_mapping_errors(home: Home) -> None:
    home.ok("add", "mapping", "-a", "op", "-f", "a", "-t", "b", "--weight", "70")
    home.refused(
        "add", "mapping", "-a", "op", "-f", "a", "-t", "c", "--weight", "40",
        status=CLAIMS_ERR, needle="would add up to 110% (b 70% + c 40%)",
    )  # fmt: skip
    home.refused("add", "mapping", "-a", "op", "-f", "a", "-t", "c", status=CLAIMS_ERR, needle="170%")
    for weight in ("0", "101", "-3"):
        home.refused(
            "add", "mapping", "-a", "op", "-f", "a", "-t", "c", "--weight", weight,
            status=CLAIMS_ERR, needle="from 1 to 100",
        )  # fmt: skip
    home.refused(
        "add", "mapping", "-a", "op", "-f", "a.*", "-t", "b.$2", status=CLAIMS_ERR, needle="wildcard"
    )
    home.refused("add", "mapping", "-a", "op", "-f", "a b", "-t", "b", status=STORE_ERR, needle="white space")
    home.refused("delete", "mapping", "-a", "op", "-f", "x", status=STORE_ERR, needle="no mapping from 'x'")
    home.refused("delete", "mapping", "-a", "op", "-f", "a", "-t", "zz", status=STORE_ERR, needle="to 'zz'")


# --- activations and their revocations ----------------------------------------------------------


def test_generate_activation_json_and_errors(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "svc.>", "--service", "--private", "-n", "svc")
    home.ok("add", "export", "-a", "op", "-s", "pub.>")
    out = home.ok(
        "generate", "activation", "-a", "op", "-s", "svc.a", "-t", "B", "--json", "--start", "1h"
    )  # fmt: skip
    act = jwt.decode(out["token"], jwt.ActivationClaims)
    assert (
        out["export"] == "svc" and out["target_account"] == home.key("B") and out["issuer"] == home.key("op")
    )
    assert out["hash_id"] == act.hash_id() and act.nbf == out["not_before"] > act.iat
    for text in (out["token"], json.dumps(out)):
        assert not any(seed in text for seed in home.seeds())
    gen = ("generate", "activation", "-a", "op")
    home.refused(*gen, "-s", "pub.a", "-t", "B", status=STORE_ERR, needle="is public")
    home.refused(
        *gen, "-s", "nope", "-t", "B", status=STORE_ERR, needle="no private export containing 'nope'"
    )
    home.refused(*gen, "-s", "svc.a", "-t", "op", status=STORE_ERR, needle="its own export")
    home.refused(*gen, "-s", "svc.a", "-t", "nobody", status=STORE_ERR, needle="nobody")
    home.refused(*gen, "-s", "svc.a", "-t", "B", "-K", "nokey", status=STORE_ERR, needle="nokey")
    home.refused(*gen, "-s", "svc.a", "-t", "B", "--stream", status=STORE_ERR, needle="no private export")


def test_revocations_of_activations(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "svc.>", "--service", "--private")
    b = home.key("B")
    start = int(time.time())
    out, acct = home.changed("op", "revocations", "add-activation", "-a", "op", "-s", "svc.>", "-t", "B")
    assert out["activation_revocation"]["public_key"] == b and out["activation_revocation"]["account"] == "B"
    assert start <= acct.exports[0].revocations[b] <= time.time()  # --at 0 (default): now
    # an earlier time does not move an existing revocation back (Go RevokeAt keeps the later one)
    home.ok("revocations", "add-activation", "-a", "op", "-s", "svc.x", "-t", b, "--at", "1000")
    assert home.account("op").exports[0].revocations[b] == acct.exports[0].revocations[b]
    home.ok(
        "revocations", "add-activation", "-a", "op", "-s", "svc.>", "-t", "*", "--at", "2030-01-02T03:04:05Z"
    )
    rows = home.ok("revocations", "list-activations", "-a", "op")
    assert [(r["public_key"], r["account"]) for r in rows] == sorted([("*", "*"), (b, "B")])
    star = next(r for r in rows if r["public_key"] == "*")
    assert (star["revoked_at"], star["revoked_at_utc"]) == (1893553445, "2030-01-02T03:04:05Z")
    assert home.ok("revocations", "list-activations", "-a", "op", "-s", "svc.q") == rows
    home.changed("op", "revocations", "delete-activation", "-a", "op", "-s", "svc.>", "-t", "*")
    home.changed("op", "revocations", "delete-activation", "-a", "op", "-s", "svc.>", "-t", "B")
    assert home.account("op").exports[0].revocations == {}
    assert home.ok("revocations", "list-activations", "-a", "op") == []


def test_activation_revocation_errors(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "svc.>", "--service", "--private")
    home.ok("add", "export", "-a", "op", "-s", "pub.>")
    rev = ("revocations", "add-activation", "-a", "op")
    home.refused(*rev, "-s", "pub.>", "-t", "B", status=STORE_ERR, needle="is public")
    home.refused(*rev, "-s", "nope", "-t", "B", status=STORE_ERR, needle="no export containing 'nope'")
    home.refused(*rev, "-s", "svc.>", "-t", "nobody", status=STORE_ERR, needle="nobody")
    home.refused(*rev, "-s", "svc.>", "-t", "B", "--at", "yesterday", status=USAGE, needle="RFC 3339")
    home.refused(
        "revocations", "delete-activation", "-a", "op", "-s", "svc.>", "-t", "B",
        status=STORE_ERR, needle="no revocation",
    )  # fmt: skip
    home.refused("revocations", "list-activations", "-a", "op", "-s", "x.y", status=STORE_ERR, needle="x.y")


def test_sharing_commands_are_listed_and_lazy() -> None:
    for group, names in (
        ("add", ("export", "import", "mapping")),
        ("edit", ("export",)),
        ("delete", ("export", "import", "mapping")),
        ("generate", ("activation",)),
        ("revocations", ("add-activation", "delete-activation", "list-activations")),
    ):
        out = runner.invoke(app, [group, "--help"]).stdout
        assert all(n in out for n in names), out
    code = (
        "import sys, trustkit.cli.app as a; from typer.main import get_command;"
        "get_command(a.app).get_command(None, 'init');"
        "print([m for m in ('trustkit.sharing', 'trustkit.cli.sharing') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_edit_export_of_a_subject_exported_as_both_kinds(home: Home) -> None:
    home.ok("add", "export", "-a", "op", "-s", "both.>")
    home.ok("add", "export", "-a", "op", "-s", "both.>", "--service")
    home.refused(
        "edit", "export", "-a", "op", "-s", "both.>", "-n", "x", status=STORE_ERR, needle="--service"
    )
    out, acct = home.changed("op", "edit", "export", "-a", "op", "-s", "both.>", "--service", "-n", "svc")
    assert out["export"]["type"] == "service" and out["changes"] == ["name=svc"]
    assert [(e.type, e.name) for e in acct.exports] == [("stream", "both.>"), ("service", "svc")]


def test_the_walkthrough_in_docs_sharing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re
    import shlex

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sharing.md").read_text()
    block = re.search(r"```sh\n(.*?)```", doc, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.startswith("trustkit ")]
    assert len(commands) >= 12
    monkeypatch.chdir(tmp_path)
    env = {"TRUSTKIT_HOME": str(tmp_path / "home")}
    for line in commands:
        result = runner.invoke(app, shlex.split(line)[1:], env=env)
        assert result.exit_code == 0, f"{line}\n{result.output}"
    accounts = tmp_path / "home" / "stores" / "acme" / "accounts"
    acme = jwt.decode((accounts / "acme" / "acme.jwt").read_text(), jwt.AccountClaims)
    shop = jwt.decode((accounts / "shop" / "shop.jwt").read_text(), jwt.AccountClaims)
    assert [(e.subject, e.type, e.token_req) for e in acme.exports] == [
        ("orders.>", "stream", False),
        ("svc.billing.>", "service", True),
        ("svc.echo", "service", False),
    ]
    assert set(acme.exports[1].revocations) == {shop.sub}
    assert [(i.subject, i.local_subject, bool(i.token)) for i in shop.imports] == [
        ("orders.>", "acme.orders.>", False),
        ("svc.billing.>", "billing.>", True),
        ("svc.echo", "echo", False),
    ]
    assert [(w.subject, w.weight) for w in shop.mappings["tasks.*"]] == [
        ("tasks.$1.fast", 80),
        ("tasks.$1.slow", 20),
    ]
