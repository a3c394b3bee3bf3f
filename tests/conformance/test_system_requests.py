"""The system account's claims requests on both servers: UPDATE, LOOKUP, LIST, PACK, DELETE.

Every scenario runs on the real nats-server and on trustkit-broker with the same config (written
by trustkit.serverconfig) and the same creds, and expects the same bytes: the raw JWT of a
LOOKUP, the stream of a PACK with its empty last message, the reply JSON of LIST, UPDATE and
DELETE (the ``server`` block names the server, so only its keys are compared). The last test runs
one long script of requests, good and bad, against both servers side by side and compares every
reply. Where the two differ, the broker is wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.conformance.test_conformance import Raw, User
from tests.natsserver import ServerProcess
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config, nats_resolver_config

pytestmark = pytest.mark.real

LIST = "$SYS.REQ.CLAIMS.LIST"
PACK = "$SYS.REQ.CLAIMS.PACK"
UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
DELETE = "$SYS.REQ.CLAIMS.DELETE"
NO_RESPONDERS = b"<503 no responders>"
#: ServerInfo fields nats-server always writes (events.go; the others are omitempty)
SERVER_KEYS = {"name", "host", "id", "ver", "jetstream", "flags", "seq", "time"}


def lookup(key: str) -> str:
    return f"$SYS.REQ.ACCOUNT.{key}.CLAIMS.LOOKUP"


def account_update(key: str) -> str:
    return f"$SYS.REQ.ACCOUNT.{key}.CLAIMS.UPDATE"


class World:
    """An operator (with a signing key), SYS, APP (pushed) and PRE (preloaded), a foreign
    operator's account, and one user in each of SYS, APP and PRE."""

    def __init__(self, tmp: Path) -> None:
        now = int(time.time())
        self.op = KeyPair.generate(PrefixByte.OPERATOR)
        self.op_sk = KeyPair.generate(PrefixByte.OPERATOR)
        self.sys = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        self.pre = KeyPair.generate(PrefixByte.ACCOUNT)
        foreign_op = KeyPair.generate(PrefixByte.OPERATOR)
        self.foreign = KeyPair.generate(PrefixByte.ACCOUNT)
        self.op_jwt = jwt.OperatorClaims(
            sub=self.op.public_key,
            name="op",
            system_account=self.sys.public_key,
            signing_keys=[self.op_sk.public_key],
        ).encode(self.op, iat=now - 100)
        self.sys_jwt = jwt.AccountClaims(sub=self.sys.public_key, name="SYS").encode(self.op, iat=now - 100)
        self.app_jwt = jwt.AccountClaims(sub=self.app.public_key, name="APP").encode(self.op_sk, iat=now - 90)
        self.pre_jwt = jwt.AccountClaims(sub=self.pre.public_key, name="PRE").encode(self.op, iat=now - 90)
        self.foreign_jwt = jwt.AccountClaims(sub=self.foreign.public_key, name="X").encode(
            foreign_op, iat=now - 90
        )
        self.users: dict[str, User] = {}
        accounts = {"sys": self.sys, "app": self.app, "pre": self.pre, "foreign": self.foreign}
        for name, acct in accounts.items():
            kp = KeyPair.generate(PrefixByte.USER)
            token = jwt.UserClaims(sub=kp.public_key, name=name).encode(acct, iat=now - 80)
            path = tmp / f"{name}.creds"
            path.write_bytes(format_user_creds(token, kp.seed))
            self.users[name] = User(kp, token, path)

    def full_config(
        self, jwt_dir: Path, *, allow_delete: bool = False, hard_delete: bool = False, cache: bool = False
    ) -> str:
        """``trustkit generate config --nats-resolver``'s text, with PRE preloaded as well."""
        jwt_dir.mkdir(parents=True, exist_ok=True)
        text = nats_resolver_config(
            self.op_jwt, self.sys_jwt, directory=str(jwt_dir), allow_delete=allow_delete, cache=cache
        )
        if hard_delete:
            text = text.replace("    allow_delete: true\n", "    allow_delete: true\n    hard_delete: true\n")
        assert text.count("resolver_preload: {\n") == 1
        preload = f"resolver_preload: {{\n  {self.pre.public_key}: {self.pre_jwt}\n"
        return text.replace("resolver_preload: {\n", preload)

    def delete_request(self, signer: KeyPair, accounts: list[Any], *, sub: str | None = None) -> bytes:
        """nsc's delete request: a generic JWT, iss == sub, ``nats.accounts``."""
        claims = jwt.GenericClaims(sub=sub or signer.public_key, data={"accounts": accounts})
        return claims.encode(signer, iat=int(time.time())).encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("sysreq"))


@contextmanager
def full_server(kind: str, world: World, tmp: Path, **options: bool) -> Iterator[tuple[ServerProcess, Path]]:
    """A server with the nats-based resolver (``full``, or ``cache=True``) in its own directory."""
    workdir = tmp / kind
    jwt_dir = workdir / "jwt"
    workdir.mkdir(parents=True, exist_ok=True)
    srv = make_server(kind, world.full_config(jwt_dir, **options), workdir)
    with srv:
        yield srv, jwt_dir


@pytest.fixture(scope="module", params=SERVER_KINDS)
def pushed(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A full-resolver server (deletes off) to which APP has been pushed; read-only tests share it."""
    with full_server(request.param, world, tmp_path_factory.mktemp("pushed"), allow_delete=False) as (srv, _):
        reply = run(srv.url, world, lambda nc: ask(nc, UPDATE, world.app_jwt.encode()))
        assert data_of(reply) == {"account": world.app.public_key, "code": 200, "message": "jwt updated"}
        yield srv.url


# --- a small requester ---------------------------------------------------------------------------


async def ask(
    nc: Any,
    subject: str,
    payload: bytes = b"",
    *,
    quiet: float = 0.4,
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> list[bytes]:
    """Publish a request and gather every reply until none came for ``quiet`` seconds (or, for a
    ``stream``, until the empty message that ends it). A no-responders status is ``NO_RESPONDERS``."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, payload, reply=inbox, headers=headers)
    out: list[bytes] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=quiet if not stream else 3.0)
            except nats.errors.TimeoutError:
                break
            if msg.headers and msg.headers.get("Status") == "503":
                out.append(NO_RESPONDERS)
                break
            out.append(bytes(msg.data))
            if stream and msg.data == b"":
                break
            if not stream and len(out) == 1 and quiet > 0.2:
                quiet = 0.2  # one server answers once; a short grace catches a second reply
    finally:
        await sub.unsubscribe()
    return out


def run(url: str, world: World, script: Any) -> Any:
    async def main() -> Any:
        nc = await nats.connect(url, user_credentials=str(world.users["sys"].creds), allow_reconnect=False)
        try:
            return await script(nc)
        finally:
            await nc.close()

    return asyncio.run(main())


def doc_of(replies: list[bytes]) -> dict[str, Any]:
    assert len(replies) == 1, replies
    doc = json.loads(replies[0])
    assert isinstance(doc, dict)
    server = doc["server"]
    assert SERVER_KEYS <= set(server), server
    assert isinstance(server["seq"], int) and server["time"].endswith("Z")
    return doc


def data_of(replies: list[bytes]) -> Any:
    doc = doc_of(replies)
    assert "error" not in doc, doc
    return doc["data"]


def error_of(replies: list[bytes]) -> Any:
    doc = doc_of(replies)
    assert "data" not in doc, doc
    return doc["error"]


def store_hash(tokens: list[str]) -> bytes:
    """nats-server's store hash: XOR of the SHA-256 of every stored JWT (dirstore.go)."""
    out = bytearray(32)
    for token in tokens:
        for i, b in enumerate(hashlib.sha256(token.encode()).digest()):
            out[i] ^= b
    return bytes(out)


# --- LOOKUP, LIST, PACK ------------------------------------------------------------------------


def test_lookup_returns_the_pushed_and_the_preloaded_jwt(pushed: str, world: World) -> None:
    async def script(nc: Any) -> tuple[list[bytes], list[bytes]]:
        return await ask(nc, lookup(world.app.public_key)), await ask(nc, lookup(world.pre.public_key))

    app, pre = run(pushed, world, script)
    assert app == [world.app_jwt.encode()]
    assert pre == [world.pre_jwt.encode()]


def test_lookup_of_an_unknown_account_is_one_empty_message(pushed: str, world: World) -> None:
    unknown = KeyPair.generate(PrefixByte.ACCOUNT).public_key
    assert run(pushed, world, lambda nc: ask(nc, lookup(unknown))) == [b""]


def test_lookup_of_an_invalid_key_gets_no_reply_and_no_503(pushed: str, world: World) -> None:
    # nats-server has a responder (so no "no responders"), which fails to load the key and stays silent
    assert run(pushed, world, lambda nc: ask(nc, lookup("bogus"), quiet=0.5)) == []


def test_list_names_every_stored_account_sorted(pushed: str, world: World) -> None:
    replies = run(pushed, world, lambda nc: ask(nc, LIST))
    assert list(json.loads(replies[0])) == ["data", "server"], "a Go map: keys sorted"
    expected = sorted([world.sys.public_key, world.app.public_key, world.pre.public_key])
    assert data_of(replies) == expected


def test_pack_streams_every_jwt_then_an_empty_message(pushed: str, world: World) -> None:
    replies = run(pushed, world, lambda nc: ask(nc, PACK, stream=True))
    assert replies[-1] == b"" and b"" not in replies[:-1]
    stored = {
        world.sys.public_key: world.sys_jwt,
        world.app.public_key: world.app_jwt,
        world.pre.public_key: world.pre_jwt,
    }
    expected = [f"{k}|{stored[k]}".encode() for k in sorted(stored)]
    assert replies[:-1] == expected, "one account per message, in file-name order"


def test_pack_with_our_hash_is_only_the_end_marker(pushed: str, world: World) -> None:
    ours = store_hash([world.sys_jwt, world.app_jwt, world.pre_jwt])
    stale = store_hash([world.sys_jwt, world.pre_jwt])

    async def script(nc: Any) -> tuple[list[bytes], list[bytes]]:
        return await ask(nc, PACK, ours, stream=True), await ask(nc, PACK, stale, stream=True)

    same, different = run(pushed, world, script)
    assert same == [b""]
    assert len(different) == 4 and different[-1] == b""


# --- UPDATE replies --------------------------------------------------------------------------------


def test_update_replies(pushed: str, world: World) -> None:
    app_key = world.app.public_key

    async def script(nc: Any) -> list[list[bytes]]:
        return [
            await ask(nc, account_update(app_key), world.app_jwt.encode()),
            await ask(nc, f"$SYS.ACCOUNT.{app_key}.CLAIMS.UPDATE", world.app_jwt.encode()),  # legacy form
            await ask(nc, account_update(app_key), world.pre_jwt.encode()),
            await ask(nc, UPDATE, b"not a jwt"),
        ]

    same, legacy, mismatch, garbage = run(pushed, world, script)
    assert data_of(same) == data_of(legacy) == {"account": app_key, "code": 200, "message": "jwt updated"}
    assert error_of(mismatch) == {
        "account": app_key,
        "code": 500,
        "description": "jwt update resulted in error - subject does not match jwt content",
    }
    assert error_of(garbage) == {
        "account": "n/a",
        "code": 500,
        "description": "jwt update resulted in error - expected 3 chunks",
    }


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_an_untrusted_account_is_stored_but_never_admits_a_client(
    kind: str, world: World, tmp_path: Path
) -> None:
    # nats-server checks the issuer when it loads an account, not when it stores a pushed JWT
    with full_server(kind, world, tmp_path) as (srv, jwt_dir):
        key = world.foreign.public_key
        reply = run(srv.url, world, lambda nc: ask(nc, UPDATE, world.foreign_jwt.encode()))
        assert data_of(reply) == {"account": key, "code": 200, "message": "jwt updated"}
        assert (jwt_dir / f"{key}.jwt").read_text() == world.foreign_jwt
        raw = Raw(srv.url)
        try:
            raw.connect(world.users["foreign"])
            assert raw.exchange() == ([b"-ERR 'Authorization Violation'"], True)
        finally:
            raw.close()


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_a_full_store_refuses_a_new_account(kind: str, world: World, tmp_path: Path) -> None:
    workdir = tmp_path / kind
    config = world.full_config(workdir / "jwt").replace("    type: full\n", "    type: full\n    limit: 2\n")
    with make_server(kind, config, workdir) as srv:  # SYS and PRE are preloaded: the store is full

        async def script(nc: Any) -> tuple[list[bytes], list[bytes]]:
            new = await ask(nc, UPDATE, world.app_jwt.encode())
            return new, await ask(nc, UPDATE, world.pre_jwt.encode())

        full, existing = run(srv.url, world, script)
    assert error_of(full) == {
        "account": world.app.public_key,
        "code": 500,
        "description": "jwt update resulted in error - jwt store is full",
    }
    assert data_of(existing)["message"] == "jwt updated", "replacing a stored account needs no room"


# --- DELETE --------------------------------------------------------------------------------------


def test_delete_is_refused_unless_enabled(pushed: str, world: World) -> None:
    # ``pushed`` runs with allow_delete: false
    body = world.delete_request(world.op, [world.app.public_key])

    async def script(nc: Any) -> tuple[list[bytes], list[bytes]]:
        return await ask(nc, DELETE, body), await ask(nc, lookup(world.app.public_key))

    refused, still_there = run(pushed, world, script)
    assert error_of(refused) == {
        "code": 500,
        "description": f"delete accounts request by {world.op.public_key} failed - "
        "delete must be enabled in server config",
    }
    assert still_there == [world.app_jwt.encode()]


@pytest.mark.parametrize("hard_delete", [False, True], ids=["rename", "hard"])
@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_delete_removes_the_account_and_closes_its_clients(
    kind: str, hard_delete: bool, world: World, tmp_path: Path
) -> None:
    app_key = world.app.public_key
    with full_server(kind, world, tmp_path, allow_delete=True, hard_delete=hard_delete) as (srv, jwt_dir):
        assert data_of(run(srv.url, world, lambda nc: ask(nc, UPDATE, world.app_jwt.encode())))["code"] == 200
        client = Raw(srv.url)
        bystander = Raw(srv.url)
        try:
            client.connect(world.users["app"])
            bystander.connect(world.users["pre"])
            assert client.exchange(b"SUB x 1\r\n") == ([], False)
            assert bystander.exchange() == ([], False)

            def by(signer: KeyPair, accounts: list[Any], sub: str | None = None) -> bytes:
                return world.delete_request(signer, accounts, sub=sub)

            async def refusals(nc: Any) -> list[str]:
                out = []
                for body in (
                    by(world.app, [app_key]),  # an account key: not an operator key
                    by(world.op, [app_key], sub=world.op_sk.public_key),  # iss != sub
                    by(world.op, [world.sys.public_key]),
                    by(world.op, ["not-a-key"]),
                    by(world.op, [world.users["app"].key.public_key]),  # a user key
                    b"garbage",
                ):
                    out.append(error_of(await ask(nc, DELETE, body))["description"])
                return out

            assert run(srv.url, world, refusals) == [
                f"delete accounts request by {app_key} failed - not trusted",
                f"delete accounts request by {world.op_sk.public_key} failed - not self signed",
                f"delete accounts request by {world.op.public_key} failed - "
                "not allowed to delete system account",
                f"delete accounts request by {world.op.public_key} failed - malformed request",
                f"delete accounts request by {world.op.public_key} failed - malformed request",
                "delete accounts request by  failed - expected 3 chunks",
            ]
            assert client.exchange() == ([], False), "refused deletes change nothing"

            # an operator signing key may delete; an account the server never held counts as deleted
            never_held = KeyPair.generate(PrefixByte.ACCOUNT).public_key
            deleted = run(srv.url, world, lambda nc: ask(nc, DELETE, by(world.op_sk, [app_key, never_held])))
            assert data_of(deleted) == {"code": 200, "message": "deleted 2 accounts"}
            assert client.exchange() == ([b"-ERR 'Account Authentication Expired'"], True)
            assert bystander.exchange() == ([], False), "other accounts keep working"
        finally:
            client.close()
            bystander.close()

        async def after(nc: Any) -> tuple[list[bytes], list[bytes]]:
            return await ask(nc, lookup(app_key)), await ask(nc, LIST)

        gone, listed = run(srv.url, world, after)
        assert gone == [b""]
        assert app_key not in data_of(listed) and world.pre.public_key in data_of(listed)
        again = Raw(srv.url)
        try:
            again.connect(world.users["app"])
            assert again.exchange() == ([b"-ERR 'Authorization Violation'"], True)
        finally:
            again.close()
        names = sorted(p.name for p in jwt_dir.iterdir() if not p.name.startswith("."))
        assert f"{app_key}.jwt" not in names
        assert (f"{app_key}.jwt.deleted" in names) is not hard_delete


# --- which resolvers answer at all ----------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_memory_resolver_answers_only_account_updates(kind: str, world: World, tmp_path: Path) -> None:
    config = mem_resolver_config(world.op_jwt, [world.sys_jwt, world.app_jwt])
    with make_server(kind, config, tmp_path) as srv:

        app_key = world.app.public_key

        async def script(nc: Any) -> list[list[bytes]]:
            return [
                await ask(nc, LIST),
                await ask(nc, PACK),
                await ask(nc, lookup(world.app.public_key)),
                await ask(nc, DELETE, world.delete_request(world.op, [world.app.public_key])),
                await ask(nc, UPDATE, world.app_jwt.encode()),
                await ask(nc, account_update(app_key), world.app_jwt.encode()),
            ]

        *unanswered, update = run(srv.url, world, script)
        assert unanswered == [[NO_RESPONDERS]] * 5
        # nats-server's MEMORY resolver updates only accounts already in use
        assert data_of(update) == {"account": app_key, "code": 200, "message": "jwt update skipped"}


# --- both servers, one script, every reply compared -------------------------------------------------


def _normalize(replies: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for r in replies:
        if r.startswith(b"{"):
            doc = json.loads(r)
            assert SERVER_KEYS <= set(doc.pop("server"))
            out.append(doc)
        else:
            out.append(r)
    return out


def test_both_servers_give_the_same_replies_to_the_same_requests(world: World, tmp_path: Path) -> None:
    app_key, pre_key, op, op_sk = world.app.public_key, world.pre.public_key, world.op, world.op_sk
    unknown = KeyPair.generate(PrefixByte.ACCOUNT).public_key

    async def script(nc: Any) -> list[tuple[str, list[Any]]]:
        steps: list[tuple[str, str, bytes]] = [
            ("update", UPDATE, world.app_jwt.encode()),
            ("update again", UPDATE, world.app_jwt.encode()),
            ("update foreign operator", UPDATE, world.foreign_jwt.encode()),
            ("update not a jwt", UPDATE, b"x.y"),
            ("update a user jwt", UPDATE, world.users["app"].token.encode()),
            ("account update", account_update(pre_key), world.pre_jwt.encode()),
            ("account update mismatch", account_update(pre_key), world.app_jwt.encode()),
            ("account update empty", account_update(pre_key), b""),
            ("legacy update", f"$SYS.ACCOUNT.{app_key}.CLAIMS.UPDATE", world.app_jwt.encode()),
            ("headers", UPDATE, world.app_jwt.encode()),
            ("account update headers", account_update(app_key), world.app_jwt.encode()),
            ("lookup", lookup(app_key), b""),
            ("lookup unknown", lookup(unknown), b""),
            ("lookup user key", lookup(world.users["app"].key.public_key), b""),
            ("list", LIST, b""),
            ("delete by account", DELETE, world.delete_request(world.app, [app_key])),
            ("delete no accounts", DELETE, jwt.GenericClaims(sub=op.public_key).encode(op, iat=1).encode()),
            (
                "delete accounts not a list",
                DELETE,
                jwt.GenericClaims(sub=op.public_key, data={"accounts": app_key}).encode(op, iat=1).encode(),
            ),
            ("delete a number", DELETE, world.delete_request(op, [7])),
            ("delete", DELETE, world.delete_request(op_sk, [app_key, world.foreign.public_key])),
            ("lookup deleted", lookup(app_key), b""),
            ("list after", LIST, b""),
            ("unknown claims request", "$SYS.REQ.CLAIMS.NOPE", b""),
        ]
        out = []
        for name, subject, body in steps:
            headers = {"X-Test": "1"} if "headers" in name else None
            out.append((name, _normalize(await ask(nc, subject, body, headers=headers))))
        pack = await ask(nc, PACK, b"", stream=True)
        out.append(("pack", pack))
        return out

    _compare(world, tmp_path, script, allow_delete=True)


def test_both_servers_answer_alike_with_the_cache_resolver(world: World, tmp_path: Path) -> None:
    """The cache resolver: updates only accounts in use, answers LIST and DELETE (always
    allowed), not LOOKUP or PACK."""
    app_key, sys_key = world.app.public_key, world.sys.public_key

    async def script(nc: Any) -> list[tuple[str, list[Any]]]:
        steps: list[tuple[str, str, bytes]] = [
            ("update an account not in use", UPDATE, world.app_jwt.encode()),
            ("update the system account", UPDATE, world.sys_jwt.encode()),
            ("account update not in use", account_update(app_key), world.app_jwt.encode()),
            ("account update", account_update(sys_key), world.sys_jwt.encode()),
            ("account update not a jwt", account_update(sys_key), b"x"),
            ("update not a jwt", UPDATE, b"x"),
            ("list", LIST, b""),
            ("lookup", lookup(sys_key), b""),
            ("pack", PACK, b""),
            ("delete", DELETE, world.delete_request(world.op, [world.pre.public_key])),
            ("delete system account", DELETE, world.delete_request(world.op, [sys_key])),
            ("list after", LIST, b""),
        ]
        return [(name, _normalize(await ask(nc, subject, body))) for name, subject, body in steps]

    _compare(world, tmp_path, script, cache=True)


def _compare(world: World, tmp_path: Path, script: Any, **options: bool) -> None:
    results = {}
    for kind in SERVER_KINDS:
        with full_server(kind, world, tmp_path, **options) as (srv, _):
            results[kind] = run(srv.url, world, script)
    theirs, ours = results["nats-server"], results["trustkit-broker"]
    for (name, expected), (_, got) in zip(theirs, ours, strict=True):
        assert got == expected, f"{name}: nats-server {expected!r}, trustkit-broker {got!r}"
