"""``edit account`` with nsc's permission flags: the account's ``default_permissions``.

Through the CLI (typer's CliRunner, in-process): the flags as nsc parses them (comma lists,
repeated flags, ``--allow-pubsub``/``--deny-pubsub`` for both directions, bare
``--allow-pub-response`` = 1, ``--rm`` from every list), what ``describe account`` shows, the
account JWT byte for byte against Go's nats-io/jwt, and on both servers: a user whose JWT has no
permissions of its own is limited by the account's default permissions, a user with its own is
not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import realcomp
from tests.cli.test_cli_more import STORE_ERR, TOKEN_ERR, USAGE, Home
from tests.interop import gocheck
from tests.interop.test_go_interop import encode_both, modernize_account_payload, payload_of, show
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.cli.common import PermissionEditOptions, SubjectPermissionEditOptions
from trustkit.errors import StoreError
from trustkit.jwt.types import Permission, Permissions, ResponsePermission
from trustkit.manage import AccountEdit, PermissionEdit, Workspace, edit_account
from trustkit.store import KeyStore

SECOND = 1_000_000_000


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def defaults(h: Home, account: str = "acme") -> Permissions:
    return h.account(account).default_permissions


# --- the flags ----------------------------------------------------------------------------------


def test_flags_edit_default_permissions_as_nsc(home: Home) -> None:
    before = home.account()
    assert defaults(home) == Permissions(), "a new account has none"
    out = home.ok(
        "edit", "account", "--allow-pub", "b.*,a.>", "--allow-pub", "z", "--allow-sub", "_INBOX.>",
        "--allow-pubsub", "both.>", "--deny-pub", "a.secret", "--deny-sub", "x,y", "--deny-pubsub", "no.>",
        "--allow-pub-response", "--response-ttl", "2s",
    )  # fmt: skip
    perms = defaults(home)
    assert perms.pub == Permission(allow=["a.>", "b.*", "both.>", "z"], deny=["a.secret", "no.>"]), "sorted"
    assert perms.sub == Permission(allow=["_INBOX.>", "both.>"], deny=["no.>", "x", "y"])
    assert perms.resp == ResponsePermission(max=1, ttl=2 * SECOND), "bare --allow-pub-response is 1"
    assert out["changes"][:2] == [
        "default_permissions.resp.max=1",
        f"default_permissions.resp.ttl={2 * SECOND}",
    ]
    assert "+default_permissions.pub.allow both.>" in out["changes"]
    assert "+default_permissions.sub.deny no.>" in out["changes"]
    after = home.account()
    assert (after.sub, after.iss, after.limits) == (before.sub, before.iss, before.limits), "nothing else"
    # --allow-pub-response=N sets the count and keeps the TTL; adding a subject twice changes nothing
    out = home.ok("edit", "account", "--allow-pub-response=5", "--allow-pub", "z")
    assert out["changes"] == ["default_permissions.resp.max=5"]
    assert defaults(home).resp == ResponsePermission(max=5, ttl=2 * SECOND)
    # --rm takes a subject out of every allow and deny list; --rm-response-perms drops resp
    out = home.ok("edit", "account", "--rm", "both.>,no.>", "--rm", "x", "--rm-response-perms")
    perms = defaults(home)
    assert perms.pub == Permission(allow=["a.>", "b.*", "z"], deny=["a.secret"])
    assert perms.sub == Permission(allow=["_INBOX.>"], deny=["y"]) and perms.resp is None
    assert out["changes"][0] == "-default_permissions.resp"
    assert "-default_permissions.sub.deny no.>" in out["changes"]
    # as nsc: --response-ttl alone creates a response permission with max 0 (the server reads 1)
    home.ok("edit", "account", "--response-ttl", "500ms")
    assert defaults(home).resp == ResponsePermission(max=0, ttl=500_000_000)
    # the permission flags combine with the other edit options; other accounts are untouched
    home.ok("edit", "account", "--conns", "9", "--deny-pub", "late")
    assert home.account().limits.conn == 9 and defaults(home).pub.deny == ["a.secret", "late"]
    assert defaults(home, "SYS") == Permissions()


def test_bad_default_permission_edits_are_refused(home: Home) -> None:
    home.ok("edit", "account", "--allow-pub", "a.>")
    # subjects are checked as the Go library checks them; nothing is written
    home.refused("edit", "account", "--allow-pub", "a..b", status=TOKEN_ERR, needle="a..b")
    home.refused("edit", "account", "--deny-pub", "a b", status=TOKEN_ERR, needle="a b")
    home.refused("edit", "account", "--allow-sub", "a b c", status=TOKEN_ERR, needle="a b c")
    home.refused(
        "edit", "account", "--rm-response-perms", "--allow-pub-response",
        status=STORE_ERR, needle="contradicts",
    )  # fmt: skip
    before = home.snapshot()
    for args, needle in (
        (("--response-ttl", "soon"), "'soon' is not a duration"),
        # as pflag: in `--allow-pub-response 5` the 5 is no value of the option
        (("--allow-pub-response", "5"), "--allow-pub-response=5"),
        # an account has no user-only permission fields
        (("--bearer",), "No such option"),
        (("--source-network", "10.0.0.0/8"), "No such option"),
    ):
        result = home.run("edit", "account", *args)
        assert result.exit_code == USAGE and needle in result.stderr, (args, result.output)
    assert home.snapshot() == before
    # --allow-pub-response=0 alone changes nothing (nsc sets a count only when it is not 0)
    home.refused("edit", "account", "--allow-pub-response=0", status=USAGE, needle="nothing to change")
    assert defaults(home).pub.allow == ["a.>"]


def test_library_refuses_user_only_fields_for_default_permissions(home: Home) -> None:
    ws = Workspace.from_env(home.env)
    before = home.snapshot()
    for edit in (
        PermissionEdit(allow_pub=["a"], bearer=True),
        PermissionEdit(conn_types=["STANDARD"]),
        PermissionEdit(payload=10),
    ):
        with pytest.raises(StoreError) as info:
            edit_account(ws, "acme", "acme", AccountEdit(default_permissions=edit), now=2_000_000_000)
        assert info.value.code == "store_usage" and "default permissions" in info.value.message
    with pytest.raises(StoreError, match="nothing to change"):
        edit_account(ws, "acme", "acme", AccountEdit(default_permissions=PermissionEdit()), now=2_000_000_000)
    assert home.snapshot() == before


def test_one_home_for_the_permission_flags(home: Home) -> None:
    """``edit account`` declares nsc's PermissionsParams flags through the group that ``edit
    user`` and ``edit signing-key`` extend: same options, same help."""
    subject = SubjectPermissionEditOptions.options()
    assert issubclass(PermissionEditOptions, SubjectPermissionEditOptions)
    assert set(subject) < set(PermissionEditOptions.options())
    assert not set(subject) & set(vars(PermissionEditOptions)["__annotations__"]), "declared once"
    flags = (
        "--allow-pub ", "--allow-sub ", "--allow-pubsub", "--deny-pub ", "--deny-sub ", "--deny-pubsub",
        "--rm ", "--allow-pub-response", "--response-ttl", "--rm-response-perms",
    )  # fmt: skip
    for group, cmd in (("edit", "account"), ("edit", "user"), ("edit", "signing-key")):
        text = home.run(group, cmd, "--help").output
        assert all(f in text for f in flags), (cmd, text)
        assert "[=N]" in text
    assert "--bearer" not in home.run("edit", "account", "--help").output


# --- describe account ---------------------------------------------------------------------------


def test_describe_account_shows_default_permissions(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    home.ok("edit", "account", "--allow-pubsub", "orders.>", "--deny-sub", "orders.secret")
    home.ok("edit", "account", "--allow-pub-response=2", "--response-ttl", "1m")
    out = home.ok("describe", "account", "--json")
    assert out == home.account().payload_json()
    assert out["nats"]["default_permissions"] == {
        "pub": {"allow": ["orders.>"]},
        "sub": {"allow": ["orders.>"], "deny": ["orders.secret"]},
        "resp": {"max": 2, "ttl": 60 * SECOND},
    }
    assert home.ok("describe", "account", "-F", "nats.default_permissions.sub.deny") == {
        "nats.default_permissions.sub.deny": ["orders.secret"]
    }
    # for a terminal, as nsc's describe: a row per list, and the response permission or "not set"
    import trustkit.cli.describe
    import trustkit.cli.output

    for module in (trustkit.cli.describe, trustkit.cli.output):
        monkeypatch.setattr(module, "wants_json", lambda as_json: as_json)

    def rows() -> dict[str, str]:
        result = home.run("describe", "account")
        assert result.exit_code == 0, result.output
        cells = [line.split("│")[1:3] for line in result.stdout.splitlines() if line.count("│") == 3]
        return {k.strip(): v.strip() for k, v in cells if k.strip().startswith("nats.default_perm")}

    assert rows() == {
        "nats.default_permissions.pub.allow": '["orders.>"]',
        "nats.default_permissions.pub.deny": "[]",
        "nats.default_permissions.sub.allow": '["orders.>"]',
        "nats.default_permissions.sub.deny": '["orders.secret"]',
        "nats.default_permissions.resp": '{"max": 2, "ttl": 60000000000}',
    }
    # and removed again: the lists go, the response permission is "not set" (nsc's "Not Set")
    home.ok("edit", "account", "--rm-response-perms", "--rm", "orders.>,orders.secret", "--json")
    assert home.ok("describe", "account", "--json")["nats"]["default_permissions"] == {"pub": {}, "sub": {}}
    assert rows() == {"nats.default_permissions.resp": "not set"}


# --- byte for byte against Go's nats-io/jwt -----------------------------------------------------


@pytest.fixture(scope="module")
def go_checker() -> Iterator[gocheck.GoChecker]:
    """The Go reference checker (as tests/interop/conftest.py starts it)."""
    realcomp.require(gocheck.available(), gocheck.COMPONENT, gocheck.HOW_TO_GET)
    checker = gocheck.GoChecker().start()
    try:
        yield checker
    finally:
        checker.close()


@pytest.mark.real
def test_account_jwt_is_what_go_encodes(home: Home, go_checker: gocheck.GoChecker) -> None:
    home.ok(
        "edit", "account", "--allow-pub", "orders.>,svc.*", "--allow-sub", "_INBOX.>", "--deny-pubsub",
        "orders.secret", "--allow-pub-response=3", "--response-ttl", "1500ms",
    )  # fmt: skip
    token = home.account_jwt().strip()
    claims = jwt.decode(token, jwt.AccountClaims)
    # Go decodes and validates the CLI's token and re-marshals exactly its bytes (same iat and jti)
    result = go_checker.decode(token, "account")
    assert (result["errors"], result["warnings"]) == ([], []), result
    assert result["claims"]["nats"]["default_permissions"] == {
        "pub": {"allow": ["orders.>", "svc.*"], "deny": ["orders.secret"]},
        "sub": {"allow": ["_INBOX.>"], "deny": ["orders.secret"]},
        "resp": {"max": 3, "ttl": 1_500_000_000},
    }
    go_payload = modernize_account_payload(result["payload_json"].encode())
    assert payload_of(token) == go_payload, show(payload_of(token), go_payload)
    # Go signs the same claims with the same operator key: trustkit's token at Go's iat is equal
    signer = KeyStore(home.root / "keys").get_key(claims.iss)
    assert signer is not None
    assert claims.encode(signer, iat=claims.iat) == token, "the CLI wrote trustkit's encoding"
    pair = encode_both(go_checker, claims, signer)
    expected = modernize_account_payload(payload_of(pair.go_token))
    assert payload_of(pair.tk_token) == expected, show(payload_of(pair.tk_token), expected)
    assert pair.tk_token.split(".")[0] == pair.go_token.split(".")[0]


# --- the servers apply them ---------------------------------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_users_without_permissions_get_the_account_defaults(tmp_path: Path, kind: str) -> None:
    import nats

    h = Home(tmp_path / "home")
    h.ok("add", "user", "-n", "bob")  # no permissions of its own
    h.ok("add", "user", "-n", "carol", "--allow-pub", "other.>")
    assert h.user("bob").permission_limits.pub == Permission() and h.user("bob").sub_perms == Permission()
    h.ok(
        "edit", "account", "--allow-pub", "orders.>", "--allow-sub", "orders.*,_INBOX.>",
        "--deny-pub", "orders.secret",
    )  # fmt: skip
    jwt_dir = tmp_path / "jwt"
    jwt_dir.mkdir()
    conf = tmp_path / "server.conf"
    h.ok("generate", "config", "--nats-resolver", "--dir", str(jwt_dir), "--config-file", str(conf))
    creds = {u: h.root / "keys" / "creds" / "acme" / "acme" / f"{u}.creds" for u in ("bob", "carol")}
    with make_server(kind, conf.read_text(), tmp_path / kind) as server:
        h.ok("push", "--all", "-u", server.url, "--servers", "1")

        async def session(user: str, subscribe: str, publish: list[str]) -> tuple[list[bytes], list[str]]:
            errors: list[str] = []

            async def on_error(e: Exception) -> None:
                errors.append(str(e).lower())

            nc = await nats.connect(
                server.url, user_credentials=str(creds[user]), error_cb=on_error, allow_reconnect=False
            )
            try:
                sub = await nc.subscribe(subscribe)
                await nc.flush()
                for subject in publish:
                    await nc.publish(subject, subject.encode())
                await nc.flush()
                got: list[bytes] = []
                while True:
                    try:
                        got.append((await sub.next_msg(timeout=0.5)).data)
                    except nats.errors.TimeoutError:
                        break
                for _ in range(20):
                    if len(errors) >= len(publish) - len(got):
                        break
                    await asyncio.sleep(0.05)
            finally:
                await nc.close()
            return got, errors

        bob_got, bob_errors = asyncio.run(
            session("bob", "orders.*", ["orders.1", "orders.secret", "other.1"])
        )
        _, bob_sub_errors = asyncio.run(session("bob", "other.>", []))
        carol_got, carol_errors = asyncio.run(session("carol", "other.>", ["other.1", "orders.1"]))
    assert bob_got == [b"orders.1"], "the defaults allow orders.> and deny orders.secret"
    assert any('permissions violation for publish to "orders.secret"' in e for e in bob_errors), bob_errors
    assert any('permissions violation for publish to "other.1"' in e for e in bob_errors), bob_errors
    assert any('permissions violation for subscription to "other.>"' in e for e in bob_sub_errors), (
        bob_sub_errors
    )
    # carol has permissions of her own: the defaults do not apply to her (she may subscribe anywhere)
    assert carol_got == [b"other.1"], carol_errors
    assert any('permissions violation for publish to "orders.1"' in e for e in carol_errors), carol_errors
