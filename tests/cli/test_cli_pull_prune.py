"""``pull``, ``push --prune`` and ``push --account-removal`` against running servers with a full
nats-resolver (the real nats-server and trustkit-broker, same config and store).

What must hold: pulled JWTs are verified before anything is written (a forged or corrupt JWT
from the server refuses the whole pull with one stderr line, and the store is untouched); only
newer JWTs replace stored ones; pruning deletes exactly the accounts the store does not know and
disconnects their users; deletes need ``allow_delete: true`` on the server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.cli.test_cli_more import STORE_ERR, TOKEN_ERR, USAGE, Home
from tests.natsserver import ServerProcess
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.errors import NetworkError, exit_status
from trustkit.manage import Workspace, push_user
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.push import SystemClient
from trustkit.serverconfig import nats_resolver_config

pytestmark = pytest.mark.real

NET_ERR = exit_status(NetworkError("x"))  # 7


class Served:
    """A store (acme: SYS, acme, extra, gone) pushed to a running server."""

    def __init__(self, home: Home, server: ServerProcess, jwt_dir: Path) -> None:
        self.h, self.server, self.jwt_dir = home, server, jwt_dir

    @property
    def url(self) -> str:
        return self.server.url

    def run(self, *args: str) -> Any:
        return self.h.run(*args, "-u", self.url, "--servers", "1")

    def ok(self, *args: str) -> Any:
        return self.h.ok(*args, "-u", self.url, "--servers", "1")

    def listed(self) -> set[str]:
        """The accounts the server holds (by name when the store knows them): a pull that changes
        nothing lists them."""
        rows = self.ok("pull", "--all")
        return {r["account"] or r["public_key"] for r in rows}

    def forge(self, token: str) -> list[Any]:
        """Send any account JWT as an update (nats-server stores it without checking its issuer)."""
        ws = Workspace.from_env({"TRUSTKIT_HOME": str(self.h.root)})

        async def go() -> list[Any]:
            user_jwt, key = push_user(ws, "acme", now=jwt_now())
            async with SystemClient(self.url, user_jwt=user_jwt, user_key=key, expected_servers=1) as c:
                return list(await c.update([token]))

        return asyncio.run(go())


def jwt_now() -> int:
    return int(time.time())


def config(h: Home, jwt_dir: Path, *, allow_delete: bool) -> str:
    jwt_dir.mkdir(parents=True, exist_ok=True)
    return nats_resolver_config(
        (h.store / "acme.jwt").read_text(),
        h.account_jwt("SYS"),
        directory=str(jwt_dir),
        allow_delete=allow_delete,
    )


@pytest.fixture(params=SERVER_KINDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    h = Home(tmp_path / "home")
    h.ok("add", "account", "-n", "extra")
    h.ok("add", "account", "-n", "gone")
    jwt_dir = tmp_path / "jwt"
    with make_server(request.param, config(h, jwt_dir, allow_delete=True), tmp_path / request.param) as srv:
        s = Served(h, srv, jwt_dir)
        rows = s.ok("push", "--all")
        assert sorted((r["action"], r["account"], r["code"]) for r in rows) == [
            ("update", a, 200) for a in ("SYS", "acme", "extra", "gone")
        ]
        yield s


# --- pull ---------------------------------------------------------------------------------------


def test_pull_all_writes_only_what_is_new(served: Served) -> None:
    h = served.h
    rows = served.ok("pull", "--all")
    assert sorted((r["account"], r["status"]) for r in rows) == [
        (a, "unchanged") for a in ("SYS", "acme", "extra", "gone")
    ], "one row per account"
    # an account the store lost comes back, byte for byte
    on_server = h.account_jwt("extra")
    shutil.rmtree(h.store / "accounts" / "extra")
    rows = {r["account"]: r for r in served.ok("pull", "--all")}
    assert rows["extra"]["status"] == "added" and h.account_jwt("extra") == on_server
    assert (h.store / "accounts" / "extra" / "extra.jwt").stat().st_mode & 0o777 == 0o600
    # the server's JWT is newer than the stored one: updated
    old = h.account_jwt("acme")
    h.ok("edit", "account", "--conns", "7")
    newer = h.account_jwt("acme")
    served.ok("push", "-a", "acme")
    (h.store / "accounts" / "acme" / "acme.jwt").write_text(old)
    rows = {r["account"]: r for r in served.ok("pull", "--all")}
    assert rows["acme"]["status"] == "updated" and h.account_jwt("acme") == newer
    assert rows["SYS"]["status"] == "unchanged"


def test_pull_one_account_keeps_a_newer_local_jwt_unless_forced(served: Served) -> None:
    h = served.h
    pushed = h.account_jwt("acme")
    h.ok("edit", "account", "--conns", "3")
    local = h.account_jwt("acme")
    (row,) = served.ok("pull", "-a", "acme")
    assert (row["account"], row["status"]) == ("acme", "kept-local")
    assert "--overwrite-newer" in row["message"] and h.account_jwt("acme") == local
    (row,) = served.ok("pull", "-a", "acme", "--overwrite-newer")
    assert row["status"] == "updated" and h.account_jwt("acme") == pushed
    (row,) = served.ok("pull", "-a", h.account("extra").sub)  # by public key
    assert (row["account"], row["status"]) == ("extra", "unchanged")
    # as an existing system user instead of a temporary one
    (row,) = served.ok("pull", "-a", "extra", "--system-user", "sys", "--system-account", "SYS")
    assert row["status"] == "unchanged"
    h.refused(
        "pull", "-a", "extra", "--system-user", "nope", "-u", served.url, status=STORE_ERR, needle="nope"
    )


def test_pull_refuses_a_forged_jwt_and_writes_nothing(served: Served) -> None:
    h = served.h
    stranger = KeyPair.generate(PrefixByte.OPERATOR)
    forged_key = KeyPair.generate(PrefixByte.ACCOUNT)
    forged = jwt.AccountClaims(sub=forged_key.public_key, name="forged").encode(stranger, iat=jwt_now())
    assert [r.code for r in served.forge(forged)] == [200], "the full resolver stores it unchecked"
    # a lost account that would be added: it must not be written either
    shutil.rmtree(h.store / "accounts" / "extra")
    err = h.refused("pull", "--all", "-u", served.url, "--servers", "1", status=TOKEN_ERR, needle="refused")
    assert "nothing was written" in err and "not by operator 'acme'" in err
    assert not (h.store / "accounts" / "forged").exists() and not (h.store / "accounts" / "extra").exists()


# nats-server reads the resolver's file on every LOOKUP and PACK, so a file damaged on disk is what a
# broken server sends; trustkit-broker serves from memory, so this way cannot reach it
@pytest.mark.parametrize("served", ["nats-server"], indirect=True)
def test_pull_refuses_a_corrupt_jwt(served: Served) -> None:
    h = served.h
    key = h.account("extra").sub
    (served.jwt_dir / f"{key}.jwt").write_text("eyJ0eXAiOiJKV1QifQ.garbage.sig")
    for args in (("-a", "extra"), ("--all",)):
        err = h.refused("pull", *args, "-u", served.url, "--servers", "1", status=TOKEN_ERR, needle="extra")
        assert "not a valid account JWT" in err


def test_pull_errors(served: Served, tmp_path: Path) -> None:
    h = served.h
    h.refused("pull", "--all", "-u", "nats://127.0.0.1:1", status=NET_ERR, needle="127.0.0.1:1")
    h.refused("pull", "-a", "nope", "-u", served.url, status=STORE_ERR, needle="nope")
    # an account the server does not hold
    unknown = KeyPair.generate(PrefixByte.ACCOUNT).public_key
    h.refused("pull", "-a", unknown, "-u", served.url, "--servers", "1", status=NET_ERR, needle="holds")


# --- push --prune / --account-removal ----------------------------------------------------------


def test_prune_deletes_what_the_store_lost_and_disconnects_its_users(served: Served, tmp_path: Path) -> None:
    h = served.h
    h.ok("add", "user", "-n", "g", "-a", "gone")
    creds = tmp_path / "g.creds"
    h.ok("generate", "creds", "-n", "g", "-a", "gone", "-o", str(creds))
    gone_key = h.account("gone").sub
    rows = served.ok("push", "--prune")
    assert [(r["action"], r["code"]) for r in rows] == [("list", 200), ("prune", 200)]
    assert rows[1]["message"] == "nothing to prune"

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        closed = asyncio.Event()

        async def on_closed() -> None:
            closed.set()

        nc = await nats.connect(
            served.url, user_credentials=str(creds), closed_cb=on_closed, allow_reconnect=False
        )
        await nc.flush()
        shutil.rmtree(h.store / "accounts" / "gone")
        diff = await asyncio.to_thread(served.ok, "push", "--diff")
        assert [(r["action"], r["account"]) for r in diff] == [("list", ""), ("diff", gone_key)]
        assert nc.is_connected, "--diff deletes nothing"
        out = await asyncio.to_thread(served.ok, "push", "--all", "--prune")
        await asyncio.wait_for(closed.wait(), 10)
        return out, str(nc.last_error)

    rows, why = asyncio.run(scenario())
    by_action = {(r["action"], r["account"]): r for r in rows}
    assert {a for a, _ in by_action} == {"update", "list", "delete"}
    assert by_action[("delete", gone_key)]["code"] == 200
    assert by_action[("delete", gone_key)]["message"] == "deleted 1 accounts"
    assert "expired" in why.lower(), why
    assert gone_key not in served.listed()
    assert served.listed() == {"SYS", "acme", "extra"}


def test_push_refuses_invalid_accounts_unless_forced(served: Served) -> None:
    h = served.h
    op_key = jwt.decode((h.store / "acme.jwt").read_text(), jwt.OperatorClaims).sub
    op_seed = KeyPair.from_seed((h.root / "keys" / "keys" / "O" / op_key[1:3] / f"{op_key}.nk").read_text())
    claims = h.account("extra")
    claims.exp = jwt_now() - 60
    (h.store / "accounts" / "extra" / "extra.jwt").write_text(claims.encode(op_seed, iat=claims.iat + 1))
    h.refused("push", "-a", "extra", "-u", served.url, status=TOKEN_ERR, needle="expired")
    h.refused("push", "--all", "-u", served.url, status=TOKEN_ERR, needle="'extra'")
    (row,) = served.ok("push", "-a", "extra", "--force")
    assert row["code"] == 200, "the resolver stores an expired account JWT (no time checks on update)"
    stranger = KeyPair.generate(PrefixByte.OPERATOR)
    claims.exp = 0
    forged = claims.encode(stranger, iat=jwt_now())
    (h.store / "accounts" / "extra" / "extra.jwt").write_text(forged)
    h.refused("push", "-a", "extra", "-u", served.url, status=TOKEN_ERR, needle="not signed by operator")


def test_account_removal_by_name_and_key(served: Served) -> None:
    h = served.h
    rows = served.ok("push", "--account-removal", "extra")
    assert [(r["action"], r["code"], r["message"]) for r in rows] == [("delete", 200, "deleted 1 accounts")]
    assert served.listed() == {"SYS", "acme", "gone"}
    assert (h.store / "accounts" / "extra" / "extra.jwt").exists(), "the store keeps the account"
    rows = served.ok("push", "-R", h.account("gone").sub)
    assert rows[0]["message"] == "deleted 1 accounts"
    assert served.listed() == {"SYS", "acme"}
    # the system account is never removed, nothing is sent
    h.refused("push", "-R", "SYS", "-u", served.url, status=STORE_ERR, needle="system account")
    h.refused("push", "-R", "nope", "-u", served.url, status=STORE_ERR, needle="nope")
    h.refused("push", "--prune", "-R", "extra", "-u", served.url, status=USAGE, needle="mutually exclusive")
    h.refused("push", "--diff", "--prune", "-u", served.url, status=USAGE, needle="mutually exclusive")


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_delete_needs_allow_delete(tmp_path: Path, kind: str) -> None:
    h = Home(tmp_path / "home")
    h.ok("add", "account", "-n", "extra")
    with make_server(kind, config(h, tmp_path / "jwt", allow_delete=False), tmp_path / kind) as srv:
        assert "allow_delete: false" in srv.conf.read_text()
        h.ok("push", "--all", "-u", srv.url, "--servers", "1")
        result = h.run("push", "-R", "extra", "-u", srv.url, "--servers", "1")
        assert result.exit_code == NET_ERR, result.output
        (row,) = json.loads(result.stdout)
        assert row["code"] == 500 and "delete must be enabled in server config" in row["message"]
        rows = h.ok("pull", "-a", "extra", "-u", srv.url, "--servers", "1")
        assert rows[0]["status"] == "unchanged", "the account is still there"
