"""``edit operator``, ``edit user``, ``edit signing-key``, ``edit authcallout`` through the CLI
(typer's CliRunner), with nsc's flags and semantics, and one real nats-server test: an edited
user's new creds carry the new permissions.

Every refused command prints one stderr line, exits with the status of its error class and
leaves the store, keystore and context untouched (``Home.refused``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.cli.test_cli_more import STORE_ERR, TOKEN_ERR, USAGE, Home
from trustkit import jwt
from trustkit.creds import parse_creds
from trustkit.nkeys import KeyPair, PrefixByte


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def operator(h: Home) -> jwt.OperatorClaims:
    return jwt.decode((h.store / "acme.jwt").read_text(), jwt.OperatorClaims)


def creds_of(h: Home, user: str, account: str = "acme") -> str:
    data = (h.root / "keys" / "creds" / "acme" / account / f"{user}.creds").read_bytes()
    return parse_creds(data).jwt


# --- edit operator ------------------------------------------------------------------------------


def test_edit_operator_urls_tags_times_system_account(home: Home) -> None:
    before = operator(home)
    assert before.operator_service_urls == ["nats://localhost:4222"]
    out = home.ok(
        "edit", "operator", "--service-url", "nats://A.example:4222,tls://b.example:4443",
        "--rm-service-url", "nats://localhost:4222", "-u", "nats://127.0.0.1:1",
        "--tag", "Prod", "--tag", "eu", "--expiry", "2030-01-01", "--start", "1700000000",
    )  # fmt: skip
    op = operator(home)
    assert op.operator_service_urls == ["nats://a.example:4222", "tls://b.example:4443"], "lower-cased as nsc"
    assert op.account_server_url == "nats://127.0.0.1:1"
    assert op.tags == ["eu", "prod"] and op.exp == 1893456000 and op.nbf == 1700000000
    assert op.iss == op.sub == before.sub and "+tag prod" in out["changes"]
    # the account server URL is where push/pull go without -u (nsc)
    for cmd in ("push", "pull"):
        assert "cannot connect to nats://127.0.0.1:1" in home.run(cmd, "--all").stderr
    home.ok("edit", "operator", "--rm-account-jwt-server-url", "--rm-tag", "EU", "--expiry", "0")
    op = operator(home)
    assert op.account_server_url == "" and op.tags == ["prod"] and op.exp == 0
    # the system account by name; it may not have JetStream limits
    home.ok("add", "account", "-n", "ops")
    ops_key = home.account("ops").sub
    assert home.ok("edit", "operator", "--system-account", "ops")["changes"] == [f"system_account={ops_key}"]
    home.ok("edit", "account", "-n", "ops", "--js-mem-storage", "1M")
    home.ok("edit", "operator", "--system-account", home.account("SYS").sub)
    home.refused("edit", "operator", "--system-account", "ops", status=STORE_ERR, needle="JetStream")


def test_edit_operator_signing_keys_and_strict_mode(home: Home) -> None:
    # strict mode needs signing keys, and every account issued by one (nsc's checks)
    home.refused("edit", "operator", "--require-signing-keys", status=STORE_ERR, needle="at least one")
    added = home.ok("edit", "operator", "--sk", "generate")["signing_keys_added"]
    assert operator(home).signing_keys == added
    stored = {r["public_key"] for r in home.ok("list", "keys") if r["stored"]}
    assert added[0] in stored, "a generated seed is stored"
    home.refused(
        "edit", "operator", "--require-signing-keys", status=STORE_ERR, needle="issued by the operator"
    )
    # removing a signing key re-signs the accounts it issued with a key still trusted
    outside = KeyPair.generate(PrefixByte.OPERATOR).public_key
    out = home.ok("edit", "operator", "--sk", outside, "--rm-sk", added[0])
    assert out["signing_keys_removed"] == added and out["accounts_resigned"] == []
    assert operator(home).signing_keys == [outside]
    home.refused("edit", "operator", "--rm-sk", added[0], status=STORE_ERR, needle=added[0])
    home.refused("edit", "operator", "--sk", "OBAD", status=STORE_ERR, needle="OBAD")
    home.refused("edit", "operator", "--sk", outside, status=STORE_ERR, needle="already")
    home.refused("edit", "operator", status=USAGE, needle="nothing to change")
    home.refused("edit", "operator", "--service-url", "http://x:1", status=TOKEN_ERR, needle="protocol")


def test_removing_an_operator_signing_key_re_signs_its_accounts(home: Home) -> None:
    import shutil

    sk = home.ok("edit", "operator", "--sk", "generate")["signing_keys_added"][0]
    # nsc also wants users issued by signing keys: re-issue acme's user with one (edit user -K)
    acct_sk = home.ok("edit", "account", "--sk", "generate")["signing_keys_added"][0]
    home.ok("edit", "user", "-n", "acme", "-K", acct_sk)
    # make the operator identity unavailable for accounts: strict mode, after moving acme to sk
    sk_seed = KeyPair.from_seed((home.root / "keys" / "keys" / sk[0] / sk[1:3] / f"{sk}.nk").read_text())
    for name in ("SYS", "acme"):
        claims = home.account(name)
        (home.store / "accounts" / name / f"{name}.jwt").write_text(
            claims.encode(sk_seed, iat=claims.iat + 1)
        )
    home.ok("edit", "operator", "--require-signing-keys")
    assert operator(home).strict_signing_key_usage
    second = home.ok("edit", "operator", "--sk", "generate")["signing_keys_added"][0]
    out = home.ok("edit", "operator", "--rm-sk", sk)
    assert sorted(out["accounts_resigned"]) == ["SYS", "acme"]
    for name in ("SYS", "acme"):
        assert home.account(name).iss == second
    assert home.ok("validate", "--all")["errors"] == 0
    # no key left that may sign: refused, nothing written
    shutil.rmtree(home.root / "keys" / "keys" / second[0] / second[1:3])
    home.ok("edit", "operator", "--sk", KeyPair.generate(PrefixByte.OPERATOR).public_key)
    home.refused("edit", "operator", "--rm-sk", second, status=STORE_ERR, needle="no key of operator")
    # a key generated in the same edit signs them (the operator JWT is then written first)
    out = home.ok("edit", "operator", "--rm-sk", second, "--sk", "generate")
    (fresh,) = out["signing_keys_added"]
    assert sorted(out["accounts_resigned"]) == ["SYS", "acme"]
    assert {home.account(n).iss for n in ("SYS", "acme")} == {fresh}
    assert home.ok("validate", "--all")["errors"] == 0


# --- edit user ----------------------------------------------------------------------------------


def test_edit_user_permissions_limits_and_creds(home: Home) -> None:
    home.ok("add", "user", "-n", "bob", "--allow-pub", "a.>", "--allow-sub", "a.>")
    before = home.user("bob")
    out = home.ok(
        "edit", "user", "-n", "bob", "--allow-pub", "b.>,c.>", "--deny-pubsub", "x.>", "--rm", "a.>",
        "--allow-pub-response=3", "--response-ttl", "2s", "--source-network", "10.0.0.0/8",
        "--source-network", "192.168.1.0/24", "--time", "08:00:00-17:00:00", "--locale", "Europe/Paris",
        "--conn-type", "standard,websocket", "--subs", "10", "--data", "1M", "--payload", "64K",
        "--tag", "Blue", "--expiry", "2030-01-01",
    )  # fmt: skip
    u = home.user("bob")
    assert u.sub == before.sub and u.iss == home.account().sub
    assert (u.pub.allow, u.pub.deny, u.sub_perms.allow, u.sub_perms.deny) == (
        ["b.>", "c.>"],
        ["x.>"],
        [],
        ["x.>"],
    )
    assert u.resp is not None and (u.resp.max, u.resp.ttl) == (3, 2 * 10**9)
    assert u.src == ["10.0.0.0/8", "192.168.1.0/24"] and u.times_location == "Europe/Paris"
    assert [(t.start, t.end) for t in u.times] == [("08:00:00", "17:00:00")]
    assert u.allowed_connection_types == ["STANDARD", "WEBSOCKET"]
    assert (u.subs, u.data, u.payload, u.tags, u.exp) == (10, 10**6, 64_000, ["blue"], 1893456000)
    assert "-pub.allow a.>" in out["changes"] and out["creds"].endswith("bob.creds")
    assert creds_of(home, "bob") == (home.store / "accounts/acme/users/bob.jwt").read_text(), (
        "creds rewritten"
    )
    home.ok(
        "edit", "user", "-n", "bob", "--rm-response-perms", "--rm-source-network", "10.0.0.0/8",
        "--rm-time", "08:00:00", "--rm-conn-type", "WEBSOCKET", "--subs", "-1", "--rm-tag", "blue",
    )  # fmt: skip
    u = home.user("bob")
    assert u.resp is None and u.src == ["192.168.1.0/24"] and u.times == [] and u.tags == []
    assert u.allowed_connection_types == ["STANDARD"] and u.subs == -1


def test_edit_user_bearer_signing_key_and_refusals(home: Home) -> None:
    home.ok("add", "user", "-n", "bob")
    home.ok("edit", "user", "-n", "bob", "--bearer")
    assert home.user("bob").bearer_token
    home.ok("edit", "user", "-n", "bob", "--no-bearer")
    assert not home.user("bob").bearer_token
    # re-sign with an unscoped signing key: issuer_account set; later edits keep that issuer
    sk = home.ok("edit", "account", "--sk", "generate")["signing_keys_added"][0]
    home.ok("edit", "user", "-n", "bob", "-K", sk)
    u = home.user("bob")
    assert (u.iss, u.issuer_account) == (sk, home.account().sub)
    home.ok("edit", "user", "-n", "bob", "--allow-pub", "z")
    assert home.user("bob").iss == sk
    # refusals: nothing written
    home.ok("edit", "account", "--disallow-bearer")
    home.refused("edit", "user", "-n", "bob", "--bearer", status=STORE_ERR, needle="disallows bearer")
    home.refused(
        "edit", "user", "-n", "bob", "--conn-type", "CARRIER_PIGEON", status=STORE_ERR, needle="pigeon"
    )
    home.refused("edit", "user", "-n", "bob", "--time", "8-17", status=USAGE, needle="hh:mm:ss")
    home.refused("edit", "user", "-n", "bob", "--rm-time", "01:00:00", status=STORE_ERR, needle="01:00:00")
    home.refused("edit", "user", "-n", "bob", "--source-network", "nonsense", status=TOKEN_ERR, needle="cidr")
    home.refused("edit", "user", "-n", "bob", "--allow-pub", "a..b", status=TOKEN_ERR, needle="a..b")
    home.refused(
        "edit", "user", "-n", "bob", "--rm-response-perms", "--allow-pub-response",
        status=STORE_ERR, needle="contradicts",
    )  # fmt: skip
    home.refused("edit", "user", "-n", "nope", "--subs", "1", status=STORE_ERR, needle="nope")
    home.refused("edit", "user", "-n", "bob", status=USAGE, needle="nothing to change")


def test_edit_user_refuses_a_revoked_or_scoped_user(home: Home) -> None:
    home.ok("add", "user", "-n", "bob")
    home.ok("revocations", "add-user", "-n", "bob")
    # a later iat would lift the revocation
    home.refused("edit", "user", "-n", "bob", "--tag", "x", status=STORE_ERR, needle="revoked")
    home.ok("add", "signing-key", "--role", "svc", "--allow-pub", "svc.>")
    home.ok("add", "user", "-n", "worker", "-K", "svc")
    home.refused("edit", "user", "-n", "worker", "--allow-pub", "x", status=STORE_ERR, needle="scoped")
    home.ok("edit", "user", "-n", "worker", "--tag", "ok")  # tags are not permissions
    assert home.user("worker").has_empty_permissions() and home.user("worker").tags == ["ok"]


# --- edit signing-key ---------------------------------------------------------------------------


def test_edit_signing_key_template_role_and_promotion(home: Home) -> None:
    sk = home.ok("add", "signing-key", "--role", "svc", "--allow-pub", "svc.>")["public_key"]
    out = home.ok(
        "edit", "signing-key", "--sk", "svc", "--allow-sub", "svc.>,_INBOX.>", "--deny-pub", "svc.admin.>",
        "--rm", "svc.>", "--role", "service", "--description", "workers", "--subs", "5", "--bearer",
    )  # fmt: skip
    scope = home.account().signing_keys[sk]
    assert scope is not None and (scope.role, scope.description) == ("service", "workers")
    t = scope.template
    assert (t.pub.allow, t.pub.deny, t.sub.allow, t.subs, t.bearer_token) == (
        [], ["svc.admin.>"], ["_INBOX.>"], 5, True,
    )  # fmt: skip
    assert out["public_key"] == sk and out["role"] == "service"
    home.ok("edit", "signing-key", "--sk", sk, "--allow-pub", "p")  # by public key
    assert home.account().signing_keys[sk].template.pub.allow == ["p"]  # type: ignore[union-attr]
    # an unscoped key becomes scoped; users it signed that carry permissions are flagged
    plain = home.ok("edit", "account", "--sk", "generate")["signing_keys_added"][0]
    home.ok("add", "user", "-n", "u1", "-K", plain, "--allow-pub", "a")
    out = home.ok("edit", "signing-key", "--sk", plain, "--role", "second")
    assert out["changes"][0] == "scoped" and "'u1'" in out["warnings"][0]
    assert home.account().signing_keys[plain].role == "second"  # type: ignore[union-attr]
    # refusals
    home.refused("edit", "signing-key", "--sk", "svc", status=STORE_ERR, needle="svc")
    home.refused("edit", "signing-key", "--sk", sk, status=STORE_ERR, needle="nothing to change")
    home.refused("edit", "signing-key", "--sk", sk, "--role", "second", status=STORE_ERR, needle="second")
    home.refused(
        "edit", "signing-key", "--sk", home.account().sub, "--subs", "1", status=STORE_ERR, needle="identity"
    )
    home.refused("edit", "signing-key", "--sk", sk, "--allow-pub", "a..b", status=TOKEN_ERR, needle="a..b")


# --- edit authcallout ---------------------------------------------------------------------------


def test_edit_authcallout(home: Home) -> None:
    home.ok("add", "user", "-n", "svc")
    home.ok("add", "account", "-n", "app")
    svc, app = home.user("svc").sub, home.account("app").sub
    # allowed accounts need auth users (Go validation), refused before anything is written
    home.refused("edit", "authcallout", "--allowed-account", "app", status=TOKEN_ERR, needle="without users")
    out = home.ok(
        "edit", "authcallout", "--auth-user", "svc", "--allowed-account", "app", "--curve", "generate"
    )
    auth = home.account().authorization
    assert auth.auth_users == [svc] and auth.allowed_accounts == [app] and auth.xkey.startswith("X")
    assert auth.xkey in {r["public_key"] for r in home.ok("list", "keys") if r["stored"]}, "curve seed stored"
    assert out["authorization"]["xkey"] == auth.xkey
    other = KeyPair.generate(PrefixByte.USER).public_key
    home.ok(
        "edit", "authcallout", "--auth-user", other, "--rm-allowed-account", "app", "--allowed-account", "*"
    )
    auth = home.account().authorization
    assert auth.auth_users == [svc, other] and auth.allowed_accounts == ["*"]
    curve = KeyPair.generate(PrefixByte.CURVE).public_key
    home.ok("edit", "authcallout", "-x", curve, "--rm-auth-user", svc)
    assert (home.account().authorization.xkey, home.account().authorization.auth_users) == (curve, [other])
    home.ok("edit", "authcallout", "--rm-curve")
    assert home.account().authorization.xkey == ""
    home.refused("edit", "authcallout", "--disable", "--rm-curve", status=STORE_ERR, needle="exclusive")
    home.refused("edit", "authcallout", "--curve", "nope", status=STORE_ERR, needle="nope")
    home.refused("edit", "authcallout", "--auth-user", "nobody", status=STORE_ERR, needle="nobody")
    home.refused("edit", "authcallout", status=USAGE, needle="nothing to change")
    home.ok("edit", "authcallout", "--disable")
    assert home.account().authorization.is_zero()


# --- the real server applies an edited user's new creds ----------------------------------------


@pytest.mark.real
def test_edited_user_permissions_are_enforced_by_nats_server(tmp_path: Path) -> None:
    import nats

    from tests.natsserver import NatsServer

    h = Home(tmp_path / "home")
    h.ok("add", "user", "-n", "bob", "--allow-pub", "a.>", "--allow-sub", "_INBOX.>")
    h.ok("edit", "user", "-n", "bob", "--allow-pubsub", "b.>", "--rm", "a.>")
    jwt_dir = tmp_path / "jwt"
    jwt_dir.mkdir()
    conf = tmp_path / "server.conf"
    h.ok("generate", "config", "--nats-resolver", "--dir", str(jwt_dir), "--config-file", str(conf))
    creds = h.root / "keys" / "creds" / "acme" / "acme" / "bob.creds"  # rewritten by the edit
    with NatsServer(conf.read_text(), tmp_path) as server:
        h.ok("push", "--all", "-u", server.url, "--servers", "1")

        async def scenario() -> list[str]:
            errors: list[str] = []

            async def on_error(e: Exception) -> None:
                errors.append(str(e))

            nc = await nats.connect(server.url, user_credentials=str(creds), error_cb=on_error)
            try:
                sub = await nc.subscribe("b.>")
                await nc.flush()
                await nc.publish("b.1", b"ok")
                assert (await sub.next_msg(timeout=2)).data == b"ok"
                await nc.publish("a.1", b"no")
                await nc.flush()
                for _ in range(40):
                    if errors:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await nc.close()
            return errors

        errors = asyncio.run(scenario())
    assert any('permissions violation for publish to "a.1"' in e.lower() for e in errors), errors
