"""describe / list / edit account / add signing-key / add user -K / delete user / revocations /
expirations / validate / env / select — through the CLI (typer's CliRunner, in-process), and one
real nats-server test: a user of a scoped signing key gets the template's permissions.

Every refused command must print one stderr line, exit with the status of its error class
(:data:`trustkit.errors.EXIT_STATUS`) and leave the store, keystore and context untouched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from trustkit import jwt
from trustkit.cli.app import app
from trustkit.errors import StoreError, TokenError, exit_status
from trustkit.nkeys import KeyPair, PrefixByte

runner = CliRunner()
STORE_ERR = exit_status(StoreError("x"))  # 3
TOKEN_ERR = exit_status(TokenError("x"))  # 4
USAGE = 2


# --- helpers ------------------------------------------------------------------------------------


class Home:
    """A TRUSTKIT_HOME with ``init -n acme`` done (operator acme, accounts SYS and acme)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {"TRUSTKIT_HOME": str(root)}
        self.ok("init", "-n", "acme")

    def run(self, *args: str) -> Any:
        return runner.invoke(app, list(args), env=self.env)

    def ok(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.exit_code == 0, f"trustkit {' '.join(args)} -> {result.exit_code}\n{result.output}"
        return json.loads(result.stdout) if result.stdout.strip() else None

    @property
    def store(self) -> Path:
        return self.root / "stores" / "acme"

    def account_jwt(self, account: str = "acme") -> str:
        return (self.store / "accounts" / account / f"{account}.jwt").read_text()

    def account(self, account: str = "acme") -> jwt.AccountClaims:
        return jwt.decode(self.account_jwt(account), jwt.AccountClaims)

    def user(self, name: str, account: str = "acme") -> jwt.UserClaims:
        return jwt.decode(
            (self.store / "accounts" / account / "users" / f"{name}.jwt").read_text(), jwt.UserClaims
        )

    def seeds(self) -> list[str]:
        return [p.read_text().strip() for p in (self.root / "keys" / "keys").rglob("*.nk")]

    def snapshot(self) -> dict[str, tuple[int, bytes]]:
        """Every file and directory under the home: mode and content."""
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


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def no_seed_in(text: str, h: Home) -> None:
    for seed in h.seeds():
        assert seed not in text, "a seed reached the output"


# --- describe -----------------------------------------------------------------------------------


def test_describe_operator_account_user_json_is_the_payload(home: Home) -> None:
    op_token = (home.store / "acme.jwt").read_text()
    out = home.ok("describe", "operator", "--json")
    assert out == jwt.decode(op_token).payload_json()
    assert home.ok("describe", "account", "-n", "SYS") == home.account("SYS").payload_json()
    user = home.ok("describe", "user", "-n", "acme", "-a", "acme")
    assert user == home.user("acme").payload_json() and user["nats"]["type"] == "user"
    # defaults come from the context (init selected acme/acme)
    assert home.ok("describe", "account")["name"] == "acme"
    raw = home.run("describe", "account", "--raw")
    assert raw.stdout.strip() == home.account_jwt()
    field = home.ok("describe", "account", "-n", "SYS", "--field", "nats.signing_keys.0")
    assert field == {"nats.signing_keys.0": next(iter(home.account("SYS").signing_keys))}
    assert home.ok("describe", "account", "-F", ".nats.limits.conn") == {".nats.limits.conn": -1}
    for args in (("describe", "operator"), ("describe", "user", "-n", "acme"), ("describe", "account")):
        no_seed_in(home.run(*args).output, home)


def test_describe_errors(home: Home) -> None:
    home.refused("describe", "user", "-n", "nope", status=STORE_ERR, needle="nope")
    home.refused("describe", "account", "-n", "nope", status=STORE_ERR, needle="nope")
    home.refused("describe", "operator", "-n", "nope", status=STORE_ERR, needle="nope")
    home.refused("describe", "account", "--field", "nats.nope", status=TOKEN_ERR, needle="nats.nope")


# --- list ---------------------------------------------------------------------------------------


def test_list_operators_accounts_users(home: Home) -> None:
    ops = home.ok("list", "operators")
    assert [(o["name"], o["accounts"], o["selected"]) for o in ops] == [("acme", 2, True)]
    accounts = {a["name"]: a for a in home.ok("list", "accounts")}
    assert accounts["SYS"]["system"] and not accounts["acme"]["system"]
    assert accounts["acme"]["users"] == 1 and accounts["acme"]["selected"]
    users = home.ok("list", "users", "-a", "SYS")
    assert [(u["name"], u["issuer"] in home.account("SYS").signing_keys) for u in users] == [("sys", True)]


def test_list_keys_seeds_only_when_asked(home: Home) -> None:
    result = home.run("list", "keys")
    rows = json.loads(result.stdout)
    stored = {Path(s).stem for s in map(str, (home.root / "keys" / "keys").rglob("*.nk"))}
    assert {r["public_key"] for r in rows if r["stored"]} == stored
    by_key = {r["public_key"]: r for r in rows}
    user = home.user("acme")
    assert by_key[user.sub]["kind"] == "user" and by_key[user.sub]["used_by"] == ["user acme/acme/acme"]
    assert by_key[home.account().sub]["used_by"] == ["account acme/acme"]
    assert all("seed" not in r for r in rows)
    no_seed_in(result.output, home)
    with_seeds = home.ok("list", "keys", "--show-seeds")
    for r in with_seeds:
        assert KeyPair.from_seed(r["seed"]).public_key == r["public_key"]


# --- edit account -------------------------------------------------------------------------------


def test_edit_account_limits_bearer_and_jetstream(home: Home) -> None:
    old = home.account()
    out = home.ok(
        "edit", "account", "--conns", "10", "--leaf-conns", "2", "--data", "1G", "--payload", "64K",
        "--subscriptions", "100", "--imports", "3", "--exports", "4", "--disallow-bearer",
        "--js-mem-storage", "512M", "--js-disk-storage", "-1", "--js-streams", "5", "--js-consumer", "50",
    )  # fmt: skip
    assert "limits.conn=10" in out["changes"] and "limits.disallow_bearer=true" in out["changes"]
    new = home.account()
    lim = new.limits
    assert (lim.conn, lim.leaf, lim.data, lim.payload, lim.subs, lim.imports, lim.exports) == (
        10, 2, 10**9, 64_000, 100, 3, 4,
    )  # fmt: skip
    assert lim.disallow_bearer
    assert (lim.mem_storage, lim.disk_storage, lim.streams, lim.consumer) == (512 * 10**6, -1, 5, 50)
    assert new.iat > old.iat, "servers keep the JWT with the larger iat"
    op = jwt.decode((home.store / "acme.jwt").read_text(), jwt.OperatorClaims)
    assert new.iss == op.sub and new.validate(now=new.iat).errors == []
    assert home.ok("describe", "account", "-F", "nats.limits.conn") == {"nats.limits.conn": 10}
    home.ok("edit", "account", "--allow-bearer")
    assert not home.account().limits.disallow_bearer


def test_edit_account_jetstream_tiers(home: Home) -> None:
    home.ok("edit", "account", "--js-tier", "3", "--js-disk-storage", "1G", "--js-streams", "-1")
    tier = home.account().limits.tiered_limits["R3"]
    assert (tier.disk_storage, tier.streams, tier.mem_storage) == (10**9, -1, 0)
    # global and tiered JetStream limits are mutually exclusive (Go jwt validation)
    home.refused("edit", "account", "--js-mem-storage", "1M", status=TOKEN_ERR, needle="mutually exclusive")


def test_edit_account_signing_keys(home: Home) -> None:
    added = home.ok("edit", "account", "--sk", "generate", "--sk", "generate")["signing_keys_added"]
    assert len(added) == 2 and set(added) == set(home.account().signing_keys)
    stored = {r["public_key"] for r in home.ok("list", "keys") if r["stored"]}
    assert set(added) <= stored, "generated signing key seeds are stored"
    outside = KeyPair.generate(PrefixByte.ACCOUNT).public_key
    home.ok("edit", "account", "--sk", outside, "--rm-sk", added[0])
    assert set(home.account().signing_keys) == {added[1], outside}
    # an unknown key to remove refuses the whole edit, even the key generation before it
    home.refused(
        "edit", "account", "--sk", "generate", "--rm-sk", added[0], status=STORE_ERR, needle=added[0]
    )
    home.refused("edit", "account", "--sk", "not-a-key", status=STORE_ERR, needle="not-a-key")
    home.refused("edit", "account", "-n", "nope", "--conns", "1", status=STORE_ERR, needle="nope")


def test_edit_account_usage_errors(home: Home) -> None:
    home.refused("edit", "account", status=USAGE, needle="nothing to change")
    before = home.snapshot()
    assert home.run("edit", "account", "--conns", "lots").exit_code == USAGE
    assert home.snapshot() == before


# --- scoped signing keys ------------------------------------------------------------------------


def test_add_signing_key_and_user_of_scoped_key(home: Home) -> None:
    sk = home.ok(
        "add", "signing-key", "-a", "acme", "--role", "svc", "--allow-pub", "svc.>", "--allow-sub",
        "_INBOX.>", "--deny-pub", "svc.admin.>", "--description", "service users",
    )  # fmt: skip
    acct = home.account()
    scope = acct.signing_keys[sk["public_key"]]
    assert scope is not None and scope.role == "svc" and scope.description == "service users"
    assert scope.template.pub.allow == ["svc.>"] and scope.template.pub.deny == ["svc.admin.>"]
    assert scope.template.sub.allow == ["_INBOX.>"] and scope.template.subs == -1
    assert sk["public_key"] in {Path(p).stem for p in map(str, (home.root / "keys").rglob("*.nk"))}

    home.ok("add", "user", "-n", "s1", "-K", "svc")
    user = home.user("s1")
    assert user.iss == sk["public_key"] and user.issuer_account == acct.sub
    assert user.has_empty_permissions(), "a scoped key's user carries no permissions"
    assert user.payload_json()["nats"]["pub"] == {} and "subs" not in user.payload_json()["nats"]
    assert acct.did_sign(user)
    assert [u["role"] for u in home.ok("list", "users") if u["name"] == "s1"] == ["svc"]
    # the same key named by its public key
    home.ok("add", "user", "-n", "s2", "-K", sk["public_key"])
    assert home.user("s2").iss == sk["public_key"]


def test_add_user_with_unscoped_signing_key_keeps_permissions(home: Home) -> None:
    key = home.ok("edit", "account", "--sk", "generate")["signing_keys_added"][0]
    home.ok("add", "user", "-n", "u1", "-K", key, "--allow-pub", "a.>")
    user = home.user("u1")
    assert user.iss == key and user.issuer_account == home.account().sub
    assert user.pub.allow == ["a.>"] and user.subs == -1


def test_signing_key_errors(home: Home) -> None:
    home.ok("add", "signing-key", "--role", "svc", "--allow-pub", "svc.>")
    home.refused("add", "signing-key", "--role", "svc", status=STORE_ERR, needle="role 'svc'")
    home.refused(
        "add", "signing-key", "--role", "bad", "--allow-pub", "a..b", status=TOKEN_ERR, needle="a..b"
    )
    home.refused("add", "user", "-n", "x", "-K", "svc", "--allow-pub", "y", status=STORE_ERR, needle="scoped")
    home.refused("add", "user", "-n", "x", "-K", "svc", "--bearer", status=STORE_ERR, needle="scoped")
    home.refused("add", "user", "-n", "x", "-K", "nosuchrole", status=STORE_ERR, needle="nosuchrole")
    home.refused("add", "user", "-n", "acme", "-K", "svc", status=STORE_ERR, needle="already exists")
    # a signing key whose seed is not in the keystore cannot sign
    foreign = KeyPair.generate(PrefixByte.ACCOUNT).public_key
    home.ok("edit", "account", "--sk", foreign)
    home.refused("add", "user", "-n", "x", "-K", foreign, status=STORE_ERR, needle="not in the keystore")


# --- delete user, revocations -------------------------------------------------------------------


def test_delete_user_with_revoke_and_revocations(home: Home) -> None:
    home.ok("add", "user", "-n", "bob")
    home.ok("add", "user", "-n", "carol")
    bob, carol = home.user("bob"), home.user("carol")
    creds = home.root / "keys" / "creds" / "acme" / "acme" / "bob.creds"
    assert creds.exists()
    rows = home.ok("delete", "user", "-n", "bob", "--revoke", "--rm-creds", "--rm-nkey")
    assert rows == [
        {
            "kind": "user",
            "name": "bob",
            "public_key": bob.sub,
            "jwt": str(home.store / "accounts" / "acme" / "users" / "bob.jwt"),
            "revoked": True,
            "nkey_removed": True,
            "creds_removed": True,
        }
    ]
    assert not creds.exists() and bob.sub not in {r["public_key"] for r in home.ok("list", "keys")}
    assert home.account().is_revoked(bob.sub, bob.iat)
    revs = home.ok("revocations", "list-users")
    assert [r["public_key"] for r in revs] == [bob.sub] and revs[0]["revoked_at"] >= bob.iat
    # revoking by name a user still in the store shows its name
    home.ok("revocations", "add-user", "-n", "carol")
    assert {r["user"] for r in home.ok("revocations", "list-users")} == {"", "carol"}
    home.ok("revocations", "delete-user", "-n", "carol")
    home.ok("revocations", "delete-user", "-u", bob.sub)
    assert home.account().revocations == {}
    assert not home.account().is_revoked(carol.sub, carol.iat)
    # delete without --revoke keeps the creds and seed
    home.ok("delete", "user", "-n", "carol")
    assert (home.root / "keys" / "creds" / "acme" / "acme" / "carol.creds").exists()
    assert [u["name"] for u in home.ok("list", "users")] == ["acme"]


def test_delete_and_revocation_errors(home: Home) -> None:
    home.ok("add", "user", "-n", "bob")
    # one unknown user refuses the whole command: bob is not deleted or revoked
    home.refused("delete", "user", "-n", "bob", "-n", "nope", "--revoke", status=STORE_ERR, needle="nope")
    home.refused("delete", "user", "-n", "nope", "-a", "SYS", status=STORE_ERR, needle="nope")
    home.refused("revocations", "delete-user", "-n", "bob", status=STORE_ERR, needle="not revoked")
    home.refused("revocations", "delete-user", "-u", "nope", status=STORE_ERR, needle="nope")
    home.refused("revocations", "delete-user", status=USAGE, needle="exactly one")
    home.refused("revocations", "list-users", "-a", "nope", status=STORE_ERR, needle="nope")


# --- expirations, validate ----------------------------------------------------------------------


def test_expirations(home: Home) -> None:
    home.ok("add", "user", "-n", "soon", "--expiry", "2d")
    home.ok("add", "user", "-n", "gone", "--expiry", "1000000000")  # 2001: already expired
    rows = home.ok("expirations", "--within", "1M")
    assert [(r["name"], r["status"]) for r in rows] == [("gone", "expired"), ("soon", "expiring")]
    assert rows[0]["expires"] == 1_000_000_000 and rows[0]["expires_at"] == "2001-09-09T01:46:40Z"
    assert [r["name"] for r in home.ok("expirations", "-e", "1d")] == ["gone"]
    everything = home.ok("expirations", "--all")
    assert {r["status"] for r in everything} == {"expired", "expiring", "never"}
    assert len(everything) == 1 + 2 + 4  # operator, 2 accounts, users sys + acme + soon + gone
    before = home.snapshot()
    assert home.run("expirations", "--within", "soon").exit_code == USAGE
    assert home.snapshot() == before


def test_validate_clean_store(home: Home) -> None:
    home.ok("add", "signing-key", "--role", "svc", "--allow-pub", "svc.>")
    home.ok("add", "user", "-n", "s1", "-K", "svc")
    out = home.ok("validate", "--all")
    assert out["errors"] == 0 and out["jwts"] == 1 + 2 + 3
    assert home.ok("validate", "-a", "SYS")["jwts"] == 1 + 1 + 1


def test_validate_reports_every_problem(home: Home) -> None:
    users = home.store / "accounts" / "acme" / "users"
    acct = home.account()
    # a user issued by a stranger's key, filed under acme
    stranger = KeyPair.generate(PrefixByte.ACCOUNT)
    u = KeyPair.generate(PrefixByte.USER)
    (users / "forged.jwt").write_text(
        jwt.UserClaims(sub=u.public_key, name="forged").encode(stranger, iat=10)
    )
    # a user of a scoped key that carries permissions (the server would refuse it)
    sk = home.ok("add", "signing-key", "--role", "svc", "--allow-pub", "svc.>")["public_key"]
    sk_seed = KeyPair.from_seed(
        (home.root / "keys" / "keys" / sk[0] / sk[1:3] / f"{sk}.nk").read_text().strip()
    )
    bad = jwt.UserClaims(
        sub=KeyPair.generate(PrefixByte.USER).public_key,
        name="greedy",
        issuer_account=acct.sub,
        pub=jwt.Permission(allow=[">"]),
    )
    (users / "greedy.jwt").write_text(bad.encode(sk_seed, iat=10))
    (users / "broken.jwt").write_text("not.a.jwt")
    home.ok("revocations", "add-user", "-n", "acme")
    before = home.snapshot()
    result = home.run("validate", "--all")
    assert result.exit_code == TOKEN_ERR
    assert result.stderr.count("\n") == 1 and "3 validation error(s)" in result.stderr
    assert home.snapshot() == before
    out = json.loads(result.stdout)
    problems = {r["name"]: r for r in out["results"]}
    assert "not a key of account 'acme'" in problems["forged"]["errors"][0]
    assert "scoped signing key of role 'svc'" in problems["greedy"]["errors"][0]
    assert "broken.jwt" in problems["broken"]["errors"][0]
    user_rows = [r for r in out["results"] if r["kind"] == "user" and r["name"] == "acme"]
    assert user_rows[0]["warnings"] == ["user is revoked"]
    assert out["errors"] == 3


def test_validate_flags_an_account_not_signed_by_the_operator(home: Home) -> None:
    stranger = KeyPair.generate(PrefixByte.OPERATOR)
    acct = home.account()
    (home.store / "accounts" / "acme" / "acme.jwt").write_text(acct.encode(stranger, iat=acct.iat))
    result = home.run("validate", "-a", "acme")
    assert result.exit_code == TOKEN_ERR
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)["results"]}
    assert "not a key of the operator" in rows[("account", "acme")]["errors"][0]
    home.refused("validate", "-a", "nope", status=STORE_ERR, needle="nope")


# --- env, select --------------------------------------------------------------------------------


def test_env_and_select(home: Home) -> None:
    env = home.ok("env")
    assert env["stores_dir"] == str(home.root / "stores") and env["stores_source"] == "TRUSTKIT_HOME"
    assert env["keys_dir"] == str(home.root / "keys") and env["config_dir"] == str(home.root / "config")
    assert env["context"]["operator"] == "acme" and env["default_account"] == "acme"
    assert env["env"] == {"TRUSTKIT_HOME": str(home.root)}
    ctx = home.ok("select", "account", "SYS")
    assert ctx["account"] == "SYS"
    on_disk = json.loads((home.root / "config" / "nsc.json").read_text())
    assert (on_disk["operator"], on_disk["account"]) == ("acme", "SYS")
    assert home.ok("describe", "account")["name"] == "SYS", "commands follow the selection"
    assert home.ok("select", "operator", "acme")["account"] == "SYS", "a valid account is kept"
    home.refused("select", "account", "nope", status=STORE_ERR, needle="nope")
    home.refused("select", "operator", "nope", status=STORE_ERR, needle="nope")


def test_select_operator_picks_the_only_account(tmp_path: Path) -> None:
    h = Home(tmp_path / "home")
    (h.root / "config" / "nsc.json").write_text('{"store_root":"","operator":"","account":""}')
    assert h.ok("select", "operator", "acme")["account"] == "acme"


# --- start-up cost ------------------------------------------------------------------------------


def test_the_cli_imports_stay_lazy() -> None:
    """`trustkit` must not pay for asyncio, rich or every command's module on each call."""
    code = (
        "import sys, trustkit.cli.app as a; from typer.main import get_command;"
        "get_command(a.app).get_command(None, 'init');"
        "print(sorted(m for m in ('asyncio', 'rich', 'nats', 'trustkit.cli.edit', 'trustkit.audit')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# --- the real server applies a scoped key's template -------------------------------------------


@pytest.mark.real
def test_scoped_signing_key_template_is_applied_by_nats_server(tmp_path: Path) -> None:
    import nats

    from tests.natsserver import NatsServer

    h = Home(tmp_path / "home")
    h.ok(
        "add", "signing-key", "--role", "svc", "--allow-pub", "svc.>", "--allow-sub", "svc.>",
        "--allow-sub", "_INBOX.>",
    )  # fmt: skip
    h.ok("add", "user", "-n", "worker", "-K", "svc")
    assert h.user("worker").has_empty_permissions()
    jwt_dir = tmp_path / "jwt"
    jwt_dir.mkdir()
    conf = tmp_path / "server.conf"
    h.ok("generate", "config", "--nats-resolver", "--dir", str(jwt_dir), "--config-file", str(conf))
    creds = tmp_path / "worker.creds"
    h.ok("generate", "creds", "-n", "worker", "-o", str(creds))
    with NatsServer(conf.read_text(), tmp_path) as server:
        rows = h.ok("push", "--all", "-u", server.url, "--servers", "1")
        assert sorted((r["account"], r["code"]) for r in rows) == [("SYS", 200), ("acme", 200)]

        async def scenario() -> list[str]:
            errors: list[str] = []

            async def on_error(e: Exception) -> None:
                errors.append(str(e))

            nc = await nats.connect(server.url, user_credentials=str(creds), error_cb=on_error)
            try:
                sub = await nc.subscribe("svc.>")
                await nc.flush()
                await nc.publish("svc.jobs", b"ok")
                assert (await sub.next_msg(timeout=2)).data == b"ok"
                await nc.publish("billing.jobs", b"nope")
                await nc.flush()
                for _ in range(40):
                    if errors:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await nc.close()
            return errors

        errors = asyncio.run(scenario())
    assert any('permissions violation for publish to "billing.jobs"' in e.lower() for e in errors), errors
