"""Two nsc flags typer cannot declare as they are: ``--allow-pub-response`` with an optional
value (nsc: cobra ``NoOptDefVal = "1"``) and ``keys export --include-jwts`` (nsc ``export keys``).

pflag reads an option with ``NoOptDefVal`` so: ``--opt`` is the default, ``--opt=N`` is N, and in
``--opt N`` the ``N`` is a positional argument, not the value. trustkit rewrites the bare option
before typer parses (``trustkit.cli.app.optional_values``); the commands have no positional
arguments, so ``--opt N`` is refused with a hint instead of giving a different count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer._click.exceptions import UsageError

from tests.cli.test_cli_more import STORE_ERR, USAGE, Home
from trustkit.cli.app import optional_values
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.store import KeyStore


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def flat(text: str) -> str:
    """Output without typer's error box and line wrapping (CliRunner runs ``app``, not ``main``)."""
    return " ".join(text.replace("│", " ").split())


def resp(h: Home, user: str) -> tuple[int, int] | None:
    r = h.user(user).resp
    return None if r is None else (r.max, r.ttl)


# --- optional_values: pflag's NoOptDefVal rule (pure) -------------------------------------------

TAKES = {"--name": 1, "-n": 1, "--response-ttl": 1, "--account": 1}
APR = "--allow-pub-response"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([APR], [f"{APR}=1"]),  # bare, last
        ([APR, "-n", "bob"], [f"{APR}=1", "-n", "bob"]),  # bare, then an option
        ([APR, "--response-ttl", "5s"], [f"{APR}=1", "--response-ttl", "5s"]),
        ([f"{APR}=5", "-n", "bob"], [f"{APR}=5", "-n", "bob"]),  # a value only with '='
        (["--name", APR], ["--name", APR]),  # the value of --name, not the option
        (["-n", APR, APR], ["-n", APR, f"{APR}=1"]),
        (["-nbob", APR], ["-nbob", f"{APR}=1"]),  # attached short value: nothing skipped
        (["-Jn", APR], ["-Jn", APR]),  # a cluster ending in a value option
        (["--name=x", APR], ["--name=x", f"{APR}=1"]),
        (["-n", "bob", "--", APR], ["-n", "bob", "--", APR]),  # after '--' all positional
        ([APR, "--", "3"], [f"{APR}=1", "--", "3"]),
        ([APR, "-5"], [f"{APR}=1", "-5"]),  # an option-like token stays an option
    ],
)
def test_optional_values_rewrites_only_the_bare_option(args: list[str], expected: list[str]) -> None:
    assert optional_values(args, TAKES, has_arguments=False) == expected


def test_optional_values_positional_after_the_bare_option() -> None:
    # with positional arguments the token is one (pflag): the bare option keeps its default
    assert optional_values(["-n", "bob", APR, "5"], TAKES, True) == ["-n", "bob", f"{APR}=1", "5"]
    # without: refused, naming the form that sets a value
    for nxt in ("5", "-", "x"):
        with pytest.raises(UsageError, match=f"write {APR}={nxt} to give a value"):
            optional_values(["-n", "bob", APR, nxt], TAKES, False)


# --- --allow-pub-response through the CLI -------------------------------------------------------


def test_add_user_allow_pub_response_forms(home: Home) -> None:
    home.ok("add", "user", "-n", "bare", "--allow-pub-response")
    assert resp(home, "bare") == (1, 0), "bare flag = nsc's default, 1 response"
    home.ok("add", "user", "--allow-pub-response", "-n", "first")
    assert resp(home, "first") == (1, 0), "bare flag followed by another option"
    home.ok("add", "user", "-n", "five", "--allow-pub-response=5", "--response-ttl", "2s")
    assert resp(home, "five") == (5, 2 * 10**9)
    home.ok("add", "user", "-n", "ttl", "--allow-pub-response", "--response-ttl", "500ms")
    assert resp(home, "ttl") == (1, 500 * 10**6), "bare flag paired with --response-ttl"
    home.ok("add", "user", "-n", "onlyttl", "--response-ttl", "1s")
    assert resp(home, "onlyttl") == (0, 10**9), "nsc: --response-ttl alone sets resp, max 0"
    home.ok("add", "user", "-n", "zero", "--allow-pub-response=0")
    assert resp(home, "zero") is None, "nsc: a count of 0 sets nothing"
    home.ok("add", "user", "-n", "plain")
    assert resp(home, "plain") is None


def test_allow_pub_response_with_a_separate_value_is_refused(home: Home) -> None:
    before = home.snapshot()
    for args in (
        ["add", "user", "-n", "bob", "--allow-pub-response", "5"],
        ["add", "user", "--allow-pub-response", "5", "-n", "bob"],
        ["add", "signing-key", "--role", "svc", "--allow-pub-response", "2"],
    ):
        result = home.run(*args)
        assert result.exit_code == USAGE, result.output
        assert "to give a value" in flat(result.output) and "not its value" in flat(result.output)
    assert home.snapshot() == before, "nothing written"


def test_edit_user_allow_pub_response_forms(home: Home) -> None:
    home.ok("add", "user", "-n", "bob")
    out = home.ok("edit", "user", "-n", "bob", "--allow-pub-response")
    assert resp(home, "bob") == (1, 0) and "resp.max=1" in out["changes"]
    home.ok("edit", "user", "--allow-pub-response=7", "-n", "bob")
    assert resp(home, "bob") == (7, 0)
    home.ok("edit", "user", "-n", "bob", "--response-ttl", "3s")
    assert resp(home, "bob") == (7, 3 * 10**9), "--response-ttl alone keeps the count"
    home.ok("edit", "user", "-n", "bob", "--allow-pub-response", "--response-ttl", "1s")
    assert resp(home, "bob") == (1, 10**9)
    home.refused("edit", "user", "-n", "bob", "--allow-pub-response=0", status=USAGE, needle="nothing")
    home.refused(
        "edit", "user", "-n", "bob", "--rm-response-perms", "--allow-pub-response",
        status=STORE_ERR, needle="contradicts",
    )  # fmt: skip
    before = home.snapshot()
    result = home.run("edit", "user", "-n", "bob", "--allow-pub-response", "9")
    assert result.exit_code == USAGE and "write --allow-pub-response=9" in flat(result.output)
    assert home.snapshot() == before and resp(home, "bob") == (1, 10**9)


def test_signing_key_templates_take_the_bare_flag(home: Home) -> None:
    key = home.ok("add", "signing-key", "--role", "svc", "--allow-pub-response")["public_key"]
    template = home.account().signing_keys[key]
    assert template is not None and template.template.resp is not None
    assert template.template.resp.max == 1
    home.ok("edit", "signing-key", "--sk", "svc", "--allow-pub-response=3", "--response-ttl", "2s")
    template = home.account().signing_keys[key]
    assert template is not None and template.template.resp is not None
    assert (template.template.resp.max, template.template.resp.ttl) == (3, 2 * 10**9)
    home.ok("edit", "signing-key", "--sk", "svc", "--allow-pub-response")
    template = home.account().signing_keys[key]
    assert template is not None and template.template.resp is not None
    assert template.template.resp.max == 1


def test_entry_point_reads_both_forms(home: Home) -> None:
    """The installed ``trustkit`` (``main``) applies the same rule; its refusal is one line."""
    exe = Path(sys.executable).parent / "trustkit"
    env = {"TRUSTKIT_HOME": str(home.root), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, env=env)

    assert run("add", "user", "-n", "a", "--allow-pub-response", "--json").returncode == 0
    assert run("add", "user", "-n", "b", "--allow-pub-response=4", "--json").returncode == 0
    assert (resp(home, "a"), resp(home, "b")) == ((1, 0), (4, 0))
    bad = run("add", "user", "-n", "c", "--allow-pub-response", "4")
    assert bad.returncode == USAGE and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("trustkit add user: ")
    assert "write --allow-pub-response=4 to give a value" in bad.stderr
    assert not (home.store / "accounts" / "acme" / "users" / "c.jwt").exists()


def test_help_shows_the_optional_value(home: Home) -> None:
    for group, cmd in (("add", "user"), ("edit", "user"), ("add", "signing-key"), ("edit", "signing-key")):
        out = home.run(group, cmd, "--help").output
        assert "--allow-pub-response" in out and "[=N]" in out, (group, cmd)


# --- keys export --include-jwts -----------------------------------------------------------------


def test_keys_export_include_jwts(home: Home, tmp_path: Path) -> None:
    home.ok("add", "user", "-n", "bob")
    sk = home.ok("edit", "account", "--sk", "generate")["signing_keys_added"][0]
    dest = tmp_path / "out"
    result = home.run("keys", "export", "--dir", str(dest), "--include-jwts", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    for seed in home.seeds():
        assert seed not in result.output, "no seed in the output"
    seeds = [r for r in rows if r["content"] == "seed"]
    jwts = [r for r in rows if r["content"] == "jwt"]
    assert rows == seeds + jwts, "as nsc: the seeds, then the JWTs"
    acme = home.account()
    op_key = json.loads(home.run("describe", "operator", "--json").stdout)["sub"]
    entity_files = {
        op_key: home.store / "acme.jwt",
        acme.sub: home.store / "accounts" / "acme" / "acme.jwt",
        home.user("acme").sub: home.store / "accounts" / "acme" / "users" / "acme.jwt",
        home.user("bob").sub: home.store / "accounts" / "acme" / "users" / "bob.jwt",
    }
    assert {r["public_key"] for r in jwts} == set(entity_files), "signing keys have no JWT"
    assert sk in {r["public_key"] for r in seeds}
    for r in jwts:
        f = Path(r["file"])
        assert f == dest / f"{r['public_key']}.jwt" and r["status"] == "exported"
        assert f.read_bytes() == entity_files[r["public_key"]].read_bytes(), "the JWT as stored"
        assert f.stat().st_mode & 0o777 == 0o600
    for r in seeds:
        assert Path(r["file"]).stat().st_mode & 0o777 == 0o600
    assert not list(dest.glob(".*")), "no temp files left"
    # again: everything unchanged; without the flag, no JWT rows
    again = home.ok("keys", "export", "--dir", str(dest), "--include-jwts")
    assert {r["status"] for r in again} == {"unchanged"} and len(again) == len(rows)
    assert all(r["content"] == "seed" for r in home.ok("keys", "export", "--dir", str(dest)))
    # kinds and the filter choose the JWTs too
    only_users = home.ok("keys", "export", "--dir", str(tmp_path / "u"), "--users", "--include-jwts")
    assert {(r["kind"], r["content"]) for r in only_users} == {("user", "seed"), ("user", "jwt")}
    assert len(only_users) == 2 * 3, "the users of acme and SYS, seed and JWT each"
    one = home.ok(
        "keys", "export", "--dir", str(tmp_path / "f"), "-A", "--include-jwts", "--filter", acme.sub
    )
    assert [(r["public_key"], r["content"]) for r in one] == [(acme.sub, "seed"), (acme.sub, "jwt")]
    # keys no entity uses have no JWT
    stray = KeyPair.generate(PrefixByte.USER)
    KeyStore(home.root / "keys").store_key(stray)
    (row,) = home.ok("keys", "export", "--dir", str(tmp_path / "n"), "--not-referenced", "--include-jwts")
    assert (row["public_key"], row["content"]) == (stray.public_key, "seed")


def test_keys_export_include_jwts_without_seed_conflict_and_remove(home: Home, tmp_path: Path) -> None:
    home.ok("add", "user", "-n", "bob")
    bob = home.user("bob")
    (home.root / "keys" / "keys" / bob.sub[0] / bob.sub[1:3] / f"{bob.sub}.nk").unlink()
    dest = tmp_path / "out"
    rows = home.ok("keys", "export", "--dir", str(dest), "--users", "--include-jwts")
    by = {(r["public_key"], r["content"]): r for r in rows}
    assert by[(bob.sub, "seed")]["status"] == "no-seed"
    assert by[(bob.sub, "jwt")]["status"] == "exported", "as nsc: the JWT even without a seed"
    # a JWT file holding something else is never overwritten, and nothing else is written
    jwt_file = dest / f"{bob.sub}.jwt"
    jwt_file.write_text("something else")
    home.refused(
        "keys", "export", "--dir", str(dest), "--include-jwts", status=STORE_ERR, needle=jwt_file.name
    )
    assert jwt_file.read_text() == "something else"
    # --remove moves the seeds; the store keeps its JWTs
    jwt_file.unlink()
    moved = home.ok("keys", "export", "--dir", str(dest), "--remove", "--users", "--include-jwts")
    user_jwt = home.store / "accounts" / "acme" / "users" / "acme.jwt"
    acme_user = home.user("acme").sub
    assert {(r["public_key"], r["content"], r["status"]) for r in moved} >= {
        (acme_user, "seed", "moved"),
        (acme_user, "jwt", "unchanged"),
        (bob.sub, "jwt", "exported"),
    }
    assert user_jwt.is_file() and (dest / f"{acme_user}.jwt").read_bytes() == user_jwt.read_bytes()
    assert acme_user not in {p.stem for p in (home.root / "keys" / "keys").rglob("*.nk")}
