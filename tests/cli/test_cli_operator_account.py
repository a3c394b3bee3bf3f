"""``add operator`` and ``delete account`` (nsc's flags and semantics)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli_more import STORE_ERR, Home
from trustkit import jwt
from trustkit.manage import Workspace


def test_add_operator_with_system_account_and_signing_key(tmp_path: Path) -> None:
    h = Home(tmp_path / "home")  # "acme" exists already
    report = h.ok("add", "operator", "-n", "edge", "--sys", "--generate-signing-key", "--expiry", "1y")
    kinds = [(e["kind"], e["name"]) for e in report["entities"]]
    assert kinds == [("operator", "edge"), ("signing-key", "edge"), ("account", "SYS"), ("user", "sys")]
    store = tmp_path / "home" / "stores" / "edge"
    op = jwt.decode((store / "edge.jwt").read_text(), jwt.OperatorClaims)
    sk = report["entities"][1]["public_key"]
    assert op.signing_keys == [sk] and op.exp > op.iat
    sys_claims = jwt.decode((store / "accounts" / "SYS" / "SYS.jwt").read_text(), jwt.AccountClaims)
    assert op.system_account == sys_claims.sub
    assert sys_claims.iss == sk, "SYS is signed by the operator's signing key, as nsc does"
    assert sorted(e.subject for e in sys_claims.exports) == ["$SYS.ACCOUNT.*.>", "$SYS.REQ.ACCOUNT.*.*"]
    assert Workspace.from_env({"TRUSTKIT_HOME": str(tmp_path / "home")}).context().operator == "edge"
    # every key is in the keystore, 0600
    for e in report["entities"]:
        key = e["public_key"]
        path = next((tmp_path / "home" / "keys" / "keys").rglob(f"{key}.nk"))
        assert path.stat().st_mode & 0o777 == 0o600
    rows = h.ok("validate", "--all", "--operator", "edge")
    assert rows["errors"] == 0


def test_add_operator_plain_and_refusals(tmp_path: Path) -> None:
    h = Home(tmp_path / "home")
    report = h.ok("add", "operator", "-n", "bare")
    assert [e["kind"] for e in report["entities"]] == ["operator"]
    op = jwt.decode((tmp_path / "home" / "stores" / "bare" / "bare.jwt").read_text(), jwt.OperatorClaims)
    assert not op.system_account and not op.signing_keys and op.exp == 0
    h.refused("add", "operator", "-n", "bare", status=STORE_ERR, needle="already exists")
    h.refused("add", "operator", "-n", "a/b", status=STORE_ERR, needle="a/b")


def test_delete_account_removes_users_keys_and_creds(tmp_path: Path) -> None:
    h = Home(tmp_path / "home")
    h.ok("add", "account", "-n", "shop", "--sk")
    h.ok("add", "user", "-n", "ann", "-a", "shop")
    h.ok("add", "user", "-n", "ben", "-a", "shop")
    shop = h.account("shop")
    users = {n: h.user(n, "shop").sub for n in ("ann", "ben")}
    creds = tmp_path / "home" / "keys" / "creds" / "acme" / "shop"
    assert sorted(p.name for p in creds.iterdir()) == ["ann.creds", "ben.creds"]
    # without --rm-nkey/--rm-creds the keystore keeps seeds and creds
    out = h.ok("delete", "account", "-n", "shop")
    assert out["account"] == "shop" and out["public_key"] == shop.sub
    assert sorted(u["name"] for u in out["users"]) == ["ann", "ben"] and out["nkeys_removed"] == []
    assert shop.sub in out["hint"] and "--account-removal" in out["hint"]
    assert not (h.store / "accounts" / "shop").exists()
    keys = {p.stem for p in (tmp_path / "home" / "keys" / "keys").rglob("*.nk")}
    assert {shop.sub, *shop.signing_keys, *users.values()} <= keys
    # again, with everything removed
    h.ok("add", "account", "-n", "shop2", "--sk")
    h.ok("add", "user", "-n", "cat", "-a", "shop2")
    shop2, cat = h.account("shop2"), h.user("cat", "shop2").sub
    out = h.ok("delete", "account", "-n", "shop2", "--rm-nkey", "--rm-creds")
    assert sorted(out["nkeys_removed"]) == sorted([shop2.sub, *shop2.signing_keys])
    assert out["users"][0]["nkey_removed"] and out["users"][0]["creds_removed"]
    keys = {p.stem for p in (tmp_path / "home" / "keys" / "keys").rglob("*.nk")}
    assert not {shop2.sub, *shop2.signing_keys, cat} & keys
    assert not (tmp_path / "home" / "keys" / "creds" / "acme" / "shop2" / "cat.creds").exists()


def test_delete_account_refusals(tmp_path: Path) -> None:
    h = Home(tmp_path / "home")
    h.refused("delete", "account", "-n", "nope", status=STORE_ERR, needle="nope")
    h.refused("delete", "account", "-n", "SYS", status=STORE_ERR, needle="system account")
    assert h.ok("delete", "account", "-n", "SYS", "--force")["account"] == "SYS"


def test_add_operator_imports_a_managed_operator(tmp_path: Path) -> None:
    """-u FILE: the store holds the JWT only (nsc's managed operator); accounts can be added
    under it, signed by nobody here until the operator's owner signs them."""
    from trustkit.nkeys import KeyPair, PrefixByte

    h = Home(tmp_path / "home")
    owner = KeyPair.generate(PrefixByte.OPERATOR)
    token = jwt.OperatorClaims(sub=owner.public_key, name="saas").encode(owner, iat=1_800_000_000)
    decorated = f"-----BEGIN NATS OPERATOR JWT-----\n{token}\n------END NATS OPERATOR JWT------\n"
    (tmp_path / "saas.jwt").write_text(decorated)
    report = h.ok("add", "operator", "-u", str(tmp_path / "saas.jwt"))
    assert [(e["kind"], e["name"], e["public_key"]) for e in report["entities"]] == [
        ("operator", "saas", owner.public_key)
    ]
    assert (tmp_path / "home" / "stores" / "saas" / "saas.jwt").read_text().strip() == token
    keys = {p.stem for p in (tmp_path / "home" / "keys" / "keys").rglob("*.nk")}
    assert owner.public_key not in keys, "an imported operator's key is not ours"
    # refusals: not an operator JWT, a missing file, --sys with -u
    acct = KeyPair.generate(PrefixByte.ACCOUNT)
    (tmp_path / "acct.jwt").write_text(jwt.AccountClaims(sub=acct.public_key, name="x").encode(owner, iat=1))
    assert h.run("add", "operator", "-u", str(tmp_path / "acct.jwt")).exit_code == 4
    h.refused("add", "operator", "-u", str(tmp_path / "nope.jwt"), status=STORE_ERR, needle="nope.jwt")
    assert h.run("add", "operator", "-u", str(tmp_path / "saas.jwt"), "--sys").exit_code == 2
