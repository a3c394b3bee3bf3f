"""Refusals that several commands share one piece of code for (signing-key edits of accounts and
operators, a role taken, the operator key a command needs, an edit without options, a user named
twice): each command still refuses with its own words and exit status, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli_more import STORE_ERR, USAGE, Home
from trustkit.errors import StoreError
from trustkit.manage import Workspace, add_account, operator_request_key
from trustkit.nkeys import KeyPair, PrefixByte


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


def test_signing_key_edits_refuse_with_the_entitys_words(home: Home) -> None:
    account_key = KeyPair.generate(PrefixByte.ACCOUNT).public_key
    operator_key = KeyPair.generate(PrefixByte.OPERATOR).public_key
    for entity, flag, key, needle in (
        ("account", "--sk", operator_key, f"{operator_key!r} is not an account public key"),
        ("operator", "--sk", account_key, f"{account_key!r} is not an operator public key"),
        ("account", "--rm-sk", account_key, f"{account_key} is not a signing key of account 'acme'"),
        ("operator", "--rm-sk", operator_key, f"{operator_key} is not a signing key of operator 'acme'"),
    ):
        home.refused("edit", entity, flag, key, status=STORE_ERR, needle=f"trustkit: error: {needle}\n")
    added = home.ok("edit", "account", "--sk", account_key)
    assert added["signing_keys_added"] == [account_key] and added["signing_keys_removed"] == []
    already = f"{account_key} is already a key of account 'acme'\n"
    home.refused("edit", "account", "--sk", account_key, status=STORE_ERR, needle=already)
    home.ok("edit", "operator", "--sk", operator_key)
    already = f"{operator_key} is already a key of operator 'acme'\n"
    home.refused("edit", "operator", "--sk", operator_key, status=STORE_ERR, needle=already)
    removed = home.ok("edit", "account", "--rm-sk", account_key)
    assert removed["signing_keys_removed"] == [account_key] and removed["kind"] == "account"


def test_a_role_names_one_scoped_key(home: Home) -> None:
    first = home.ok("add", "signing-key", "--role", "ops", "--allow-pub", "ops.>")["public_key"]
    second = home.ok("add", "signing-key", "--role", "dev")["public_key"]
    taken = f"account 'acme' already has a signing key with role 'ops' ({first})\n"
    home.refused("add", "signing-key", "--role", "ops", status=STORE_ERR, needle=taken)
    home.refused("edit", "signing-key", "--sk", second, "--role", "ops", status=STORE_ERR, needle=taken)
    home.ok("edit", "signing-key", "--sk", first, "--role", "ops", "--allow-sub", "x")  # its own role


def test_the_operator_key_is_named_for_what_it_is_needed_for(home: Home) -> None:
    ws = Workspace.from_env(home.env)
    op = ws.open("acme").operator_claims()
    assert operator_request_key(ws, "acme").public_key == op.sub
    ws.keystore.remove_key(op.sub)
    missing = "no key of operator 'acme' that may {} is in the keystore"
    with pytest.raises(StoreError, match=missing.format("delete accounts")):
        operator_request_key(ws, "acme")
    with pytest.raises(StoreError, match=missing.format("sign accounts")):
        add_account(ws, "acme", "other", now=1_800_000_000)


def test_edits_without_options_and_users_named_twice_are_usage_errors(home: Home) -> None:
    nothing = "nothing to change: give at least one edit option (see --help)\n"
    for command in (
        ("edit", "account"),
        ("edit", "operator"),
        ("edit", "user", "-n", "acme"),
        ("edit", "authcallout"),
        ("edit", "export", "-s", "a.b"),
    ):
        home.refused(*command, status=USAGE, needle=nothing)
    one = "name exactly one of --name or --user-public-key\n"
    home.refused("revocations", "add-user", status=USAGE, needle=one)
    home.refused("revocations", "delete-user", "-n", "acme", "-u", "*", status=USAGE, needle=one)
