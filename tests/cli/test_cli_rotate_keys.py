"""``rotate`` (an account signing key, beyond nsc), ``keys export``/``keys import`` (nsc's export
keys / import keys), and the progress bar helper.

The real-server test proves the point of ``rotate``: after rotating and pushing, the rewritten
creds connect, and a client still using the old key is disconnected.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_more import STORE_ERR, USAGE, Home
from tests.servers import SERVER_KINDS, make_server
from trustkit.cli.common import PROGRESS_MIN, Progress
from trustkit.creds import parse_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.store import KeyStore


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def creds_path(h: Home, user: str, account: str = "acme") -> Path:
    return h.root / "keys" / "creds" / "acme" / account / f"{user}.creds"


def user_file(h: Home, user: str, account: str = "acme") -> Path:
    return h.store / "accounts" / account / "users" / f"{user}.jwt"


def seed_file(h: Home, key: str) -> Path:
    return h.root / "keys" / "keys" / key[0] / key[1:3] / f"{key}.nk"


# --- rotate -------------------------------------------------------------------------------------


def test_rotate_a_scoped_key_re_signs_its_users(home: Home) -> None:
    old = home.ok(
        "add", "signing-key", "--role", "svc", "--allow-pub", "svc.>", "--description", "workers"
    )["public_key"]  # fmt: skip
    for name in ("s1", "s2", "s3"):
        home.ok("add", "user", "-n", name, "-K", "svc")
    home.ok("add", "user", "-n", "plain", "--allow-pub", "p")
    plain_before = user_file(home, "plain").read_bytes()
    before = {n: home.user(n) for n in ("s1", "s3")}
    home.ok("revocations", "add-user", "-n", "s2")
    seed_file(home, home.user("s3").sub).unlink()  # a user whose seed lives elsewhere
    out = home.ok("rotate", "--sk", "svc")
    new = out["new_key"]
    acct = home.account()
    assert out["old_key"] == old and out["role"] == "svc" and new != old
    assert old not in acct.signing_keys, "the old key is removed from the account"
    scope = acct.signing_keys[new]
    assert scope is not None and (scope.role, scope.description) == ("svc", "workers")
    assert scope.template.pub.allow == ["svc.>"], "same scope"
    assert seed_file(home, new).stat().st_mode & 0o777 == 0o600
    rows = {u["name"]: u for u in out["users"]}
    assert set(rows) == {"s1", "s2", "s3"}, "one row per user of the old key, no other"
    assert rows["s1"]["status"] == "re-signed" and rows["s1"]["creds"] == str(creds_path(home, "s1"))
    assert rows["s2"]["status"] == "skipped" and "revocation" in rows["s2"]["message"]
    assert (
        rows["s3"]["status"] == "re-signed"
        and rows["s3"]["creds"] is None
        and "seed" in rows["s3"]["message"]
    )
    for name in ("s1", "s3"):
        u = home.user(name)
        assert (u.sub, u.iss, u.issuer_account) == (before[name].sub, new, acct.sub)
        assert u.has_empty_permissions() and acct.did_sign(u)
    creds = parse_creds(creds_path(home, "s1").read_bytes())
    assert creds.jwt == user_file(home, "s1").read_text() and creds.keypair().public_key == before["s1"].sub
    assert home.user("s2").iss == old, "the revoked user is left as it was"
    assert user_file(home, "plain").read_bytes() == plain_before
    assert seed_file(home, old).exists(), "the old seed stays in the keystore"
    result = home.run("validate", "--all")
    problems = [r for r in json.loads(result.stdout)["results"] if r["errors"]]
    assert [r["name"] for r in problems] == ["s2"], "only the revoked user of the removed key"
    # the new key rotates by public key (unscoped keys too)
    plain_sk = home.ok("edit", "account", "--sk", "generate")["signing_keys_added"][0]
    home.ok("add", "user", "-n", "u1", "-K", plain_sk, "--allow-pub", "q")
    out = home.ok("rotate", "--sk", plain_sk)
    assert home.account().signing_keys[out["new_key"]] is None and home.user("u1").pub.allow == ["q"]
    assert home.user("u1").iss == out["new_key"]


def test_rotate_refusals_write_nothing(home: Home) -> None:
    home.refused("rotate", "--sk", home.account().sub, status=STORE_ERR, needle="identity key")
    home.refused("rotate", "--sk", "nosuchrole", status=STORE_ERR, needle="nosuchrole")
    home.refused("rotate", "--sk", "svc", "-a", "nope", status=STORE_ERR, needle="nope")
    home.ok("add", "signing-key", "--role", "svc")
    home.ok("add", "user", "-n", "s1", "-K", "svc")
    user_file(home, "s1").write_text("not.a.jwt")
    home.refused("rotate", "--sk", "svc", status=STORE_ERR, needle="s1.jwt")


@pytest.mark.real
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_rotated_creds_connect_and_the_old_key_is_cut_off(tmp_path: Path, kind: str) -> None:
    import nats

    h = Home(tmp_path / "home")
    h.ok("add", "signing-key", "--role", "svc", "--allow-pubsub", "svc.>", "--allow-sub", "_INBOX.>")
    h.ok("add", "user", "-n", "worker", "-K", "svc")
    old_creds = tmp_path / "old.creds"
    old_creds.write_bytes(creds_path(h, "worker").read_bytes())
    jwt_dir = tmp_path / "jwt"
    jwt_dir.mkdir()
    conf = tmp_path / "server.conf"
    h.ok("generate", "config", "--nats-resolver", "--dir", str(jwt_dir), "--config-file", str(conf))
    with make_server(kind, conf.read_text(), tmp_path / kind) as server:
        h.ok("push", "--all", "-u", server.url, "--servers", "1")

        async def scenario() -> tuple[bytes, bool]:
            closed = asyncio.Event()

            async def on_closed() -> None:
                closed.set()

            old = await nats.connect(
                server.url, user_credentials=str(old_creds), closed_cb=on_closed, allow_reconnect=False
            )
            await old.flush()
            await asyncio.to_thread(h.ok, "rotate", "--sk", "svc")
            await asyncio.to_thread(h.ok, "push", "-a", "acme", "-u", server.url, "--servers", "1")
            await asyncio.wait_for(closed.wait(), 10)
            new = await nats.connect(server.url, user_credentials=str(creds_path(h, "worker")))
            try:
                sub = await new.subscribe("svc.x")
                await new.flush()
                await new.publish("svc.x", b"rotated")
                data = (await sub.next_msg(timeout=2)).data
            finally:
                await new.close()
            return data, old.is_closed

        data, old_closed = asyncio.run(scenario())
    assert data == b"rotated", "the rewritten creds work, with the scope's permissions"
    assert old_closed, "the server closed the client of the removed key"


# --- keys export / import -----------------------------------------------------------------------


def stored_keys(h: Home) -> set[str]:
    return {p.stem for p in (h.root / "keys" / "keys").rglob("*.nk")}


def test_keys_export_default_all_kinds_and_filters(home: Home, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    rows = home.ok("keys", "export", "--dir", str(dest))
    acme, sys_acct = home.account(), home.account("SYS")
    op_key = json.loads(home.run("describe", "operator", "--json").stdout)["sub"]
    exported = {r["public_key"] for r in rows}
    assert exported == {op_key, acme.sub, home.user("acme").sub}, "operator + current account + its users"
    assert {r["status"] for r in rows} == {"exported"}
    assert dest.stat().st_mode & 0o777 == 0o700
    for r in rows:
        f = Path(r["file"])
        assert f.stat().st_mode & 0o777 == 0o600
        assert KeyPair.from_seed(f.read_text()).public_key == r["public_key"]
    text = home.run("keys", "export", "--dir", str(dest)).output
    for f in dest.iterdir():
        assert f.read_text() not in text, "no seed in the output"
    assert {r["status"] for r in json.loads(text)} == {"unchanged"}
    everything = {r["public_key"] for r in home.ok("keys", "export", "--dir", str(dest), "--all")}
    assert {sys_acct.sub, *sys_acct.signing_keys, home.user("sys", "SYS").sub} <= everything
    users = home.ok("keys", "export", "--dir", str(tmp_path / "u"), "--users")
    assert {r["kind"] for r in users} == {"user"} and len(users) == 2, "kinds alone: every account"
    one = home.ok("keys", "export", "--dir", str(tmp_path / "f"), "-A", "--filter", acme.sub[2:10].lower())
    assert [r["public_key"] for r in one] == [acme.sub]
    # a key no entity uses
    stray = KeyPair.generate(PrefixByte.USER)
    KeyStore(home.root / "keys").store_key(stray)
    (row,) = home.ok("keys", "export", "--dir", str(tmp_path / "n"), "--not-referenced")
    assert (row["public_key"], row["entity"]) == (stray.public_key, "not referenced")


def test_keys_export_never_overwrites_and_remove_moves(home: Home, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    rows = home.ok("keys", "export", "--dir", str(dest))
    victim = Path(rows[0]["file"])
    victim.write_text(KeyPair.generate(PrefixByte.OPERATOR).seed)
    home.refused("keys", "export", "--dir", str(dest), status=STORE_ERR, needle=victim.name)
    victim.unlink()
    moved = home.ok("keys", "export", "--dir", str(dest), "--remove", "--users", "--account", "acme")
    assert [r["status"] for r in moved] == ["moved"]
    assert moved[0]["public_key"] not in stored_keys(home) and Path(moved[0]["file"]).exists()
    home.refused(
        "keys", "export", "--dir", str(dest), "--filter", "ZZZZZZZZ", status=STORE_ERR, needle="no keys"
    )
    assert home.run("keys", "export").exit_code == USAGE, "--dir is required"


def test_keys_export_force_overwrites(home: Home, tmp_path: Path) -> None:
    """nsc ``export keys --force``: without it a file holding something else refuses the export
    (nothing written, nsc's message); with it the file is replaced atomically, 0600."""
    dest = tmp_path / "out"
    rows = home.ok("keys", "export", "--dir", str(dest), "--include-jwts")
    seeds = {r["public_key"]: Path(r["file"]) for r in rows if r["content"] == "seed"}
    jwts = {r["public_key"]: Path(r["file"]) for r in rows if r["content"] == "jwt"}
    key = home.account().sub
    stale_seed, stale_jwt = KeyPair.generate(PrefixByte.ACCOUNT).seed, "eyJ.stale.jwt"
    seeds[key].write_text(stale_seed)
    jwts[key].write_text(stale_jwt)
    for f in (seeds[key], jwts[key]):
        f.chmod(0o644)

    def files() -> dict[str, tuple[int, bytes]]:
        return {p.name: (p.stat().st_mode & 0o777, p.read_bytes()) for p in sorted(dest.iterdir())}

    before = files()
    err = home.refused(
        "keys", "export", "--dir", str(dest), "--include-jwts", status=STORE_ERR, needle="specify --force"
    )
    assert f"{key}.jwt" in err or f"{key}.nk" in err, err
    assert files() == before, "a refused export writes nothing"
    # each kind of file refuses on its own: the stale JWT with the right seed, and the stale seed
    right_seed = KeyStore(home.root / "keys").get_key(key)
    assert right_seed is not None
    seeds[key].write_text(right_seed.seed)
    home.refused(
        "keys", "export", "--dir", str(dest), "--include-jwts", status=STORE_ERR, needle=f"{key}.jwt"
    )
    seeds[key].write_text(stale_seed)
    home.refused("keys", "export", "--dir", str(dest), status=STORE_ERR, needle=f"{key}.nk")
    for flag in ("--force", "-F"):
        out = home.ok("keys", "export", "--dir", str(dest), "--include-jwts", flag)
        status = {(r["public_key"], r["content"]): r["status"] for r in out}
        expected = "overwritten" if flag == "--force" else "unchanged"
        assert status.pop((key, "seed")) == expected and status.pop((key, "jwt")) == expected
        assert set(status.values()) == {"unchanged"}, "files already right are left alone"
        assert KeyPair.from_seed(seeds[key].read_text()).public_key == key
        assert jwts[key].read_bytes() == home.account_jwt().encode()
        assert {mode for mode, _ in files().values()} == {0o600}
        assert not list(dest.glob(".*")), "no temp files left"
        assert stale_seed not in json.dumps(out)
    # --force --remove: the seed is overwritten, verified, then moved out of the keystore
    seeds[key].write_text(stale_seed)
    moved = home.ok("keys", "export", "--dir", str(dest), "--accounts", "--filter", key, "-F", "--remove")
    assert [(r["public_key"], r["status"]) for r in moved] == [(key, "moved")]
    assert key not in stored_keys(home) and KeyPair.from_seed(seeds[key].read_text()).public_key == key
    assert "--force" in home.run("keys", "export", "--help").output


def test_keys_import(home: Home, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    exported = home.ok("keys", "export", "--dir", str(dest), "--all")
    other = Home(tmp_path / "other")
    before = stored_keys(other)
    rows = other.ok("keys", "import", "--dir", str(dest))
    assert {r["public_key"] for r in rows} == {r["public_key"] for r in exported}
    assert {r["status"] for r in rows} == {"imported"}
    assert stored_keys(other) == before | {r["public_key"] for r in exported}
    for r in rows:
        assert seed_file(other, r["public_key"]).stat().st_mode & 0o777 == 0o600
    assert {r["status"] for r in other.ok("keys", "import", "--dir", str(dest))} == {"unchanged"}
    # subdirectories only with --recurse
    sub = tmp_path / "nested" / "deeper"
    sub.mkdir(parents=True)
    extra = KeyPair.generate(PrefixByte.ACCOUNT)
    (sub / f"{extra.public_key}.nk").write_text(extra.seed)
    other.refused("keys", "import", "--dir", str(tmp_path / "nested"), status=STORE_ERR, needle="no nkey")
    (row,) = other.ok("keys", "import", "--dir", str(tmp_path / "nested"), "--recurse")
    assert row["public_key"] == extra.public_key and extra.seed not in json.dumps(row)
    # a bad file refuses the whole import: nothing stored
    bad = tmp_path / "bad"
    bad.mkdir()
    good = KeyPair.generate(PrefixByte.USER)
    (bad / f"{good.public_key}.nk").write_text(good.seed)
    (bad / "broken.nk").write_text("SUnotaseed")
    other.refused("keys", "import", "--dir", str(bad), status=STORE_ERR, needle="broken.nk")
    (bad / "broken.nk").unlink()
    liar = KeyPair.generate(PrefixByte.USER)
    (bad / f"{liar.public_key}.nk").write_text(KeyPair.generate(PrefixByte.USER).seed)
    other.refused("keys", "import", "--dir", str(bad), status=STORE_ERR, needle="another key")
    other.refused("keys", "import", "--dir", str(tmp_path / "missing"), status=STORE_ERR, needle="missing")


# --- progress bars ------------------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_without_json() -> None:
    tty = Tty()
    with Progress("rotate", as_json=False, stream=tty) as bar:
        for i in range(1, PROGRESS_MIN + 1):
            bar(i, PROGRESS_MIN)
        assert bar.shown
    assert "rotate" in tty.getvalue()
    for stream, as_json, total in (
        (Tty(), True, 10),
        (io.StringIO(), False, 10),
        (Tty(), False, PROGRESS_MIN - 1),
    ):
        with Progress("push", as_json=as_json, stream=stream) as bar:
            bar(1, total)
            assert not bar.shown
        assert stream.getvalue() == ""
    with Progress("pull", as_json=False, stream=Tty()) as bar:
        bar(1)  # unknown total (a PACK stream): shown
        assert bar.shown


def test_new_commands_keep_start_up_light() -> None:
    """Importing the new command modules must not pull in nats, rich or asyncio."""
    code = (
        "import sys, trustkit.cli.push, trustkit.cli.rotate, trustkit.cli.keys, trustkit.cli.edit;"
        "print(sorted(m for m in ('asyncio', 'rich', 'rich.progress', 'nats') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
