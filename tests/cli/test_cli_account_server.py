"""``push``/``pull`` with an HTTP account server (nsc's ``http(s)://`` account server URL), and the
real nats-server reading the pushed accounts from it through its ``URL`` resolver.

No account server is packaged for Debian, PyPI or npm (nats-account-server is retired), so the
server here is a small one of ours with the same two routes — ``POST`` and ``GET
<base>/accounts/<A>`` — that refuses a body which is not a valid JWT of that account. What is
real: the CLI's HTTP calls, and nats-server fetching the JWTs from it to admit a user.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nats
import pytest

from tests.cli.test_cli_more import TOKEN_ERR, USAGE, Home
from tests.natsserver import NatsServer
from tests.realcomp import free_port
from trustkit import jwt
from trustkit.errors import NetworkError, TokenError, exit_status
from trustkit.nkeys import KeyPair, PrefixByte

NET_ERR = exit_status(NetworkError("x"))
PREFIX = "/jwt/v1/accounts/"


class AccountServer:
    """POST/GET ``/jwt/v1/accounts/<A>`` (and 200 on the bare prefix, which nats-server's URL
    resolver fetches once at start-up); ``jwts`` is what it stores."""

    def __init__(self) -> None:
        self.jwts: dict[str, str] = {}
        self.requests: list[tuple[str, str, str]] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                key = self.path.removeprefix(PREFIX)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                store.requests.append(("POST", self.path, self.headers.get("Content-Type", "")))
                try:
                    claims = jwt.decode(body, jwt.AccountClaims)
                except TokenError as exc:
                    return self._answer(400, f"bad jwt: {exc}")
                if not self.path.startswith(PREFIX) or claims.sub != key:
                    return self._answer(400, "account key does not match the path")
                store.jwts[key] = body
                return self._answer(200, "ok")

            def do_GET(self) -> None:
                store.requests.append(("GET", self.path, ""))
                if self.path == PREFIX:  # nats-server checks the URL answers before it starts
                    return self._answer(200, "")
                token = store.jwts.get(self.path.removeprefix(PREFIX))
                if token is None:
                    return self._answer(404, "not found")
                return self._answer(200, token)

            def _answer(self, code: int, text: str) -> None:
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwt/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def asrv() -> Iterator[AccountServer]:
    srv = AccountServer()
    try:
        yield srv
    finally:
        srv.close()


def test_push_to_the_operators_account_server_and_nats_server_reads_it(
    tmp_path: Path, asrv: AccountServer
) -> None:
    h = Home(tmp_path / "home")
    h.ok("edit", "operator", "--account-jwt-server-url", asrv.base)
    h.ok("add", "user", "-n", "bob", "--allow-pub", "orders.>")
    rows = h.ok("push", "--all")  # the URL comes from the operator JWT
    assert sorted((r["action"], r["account"], r["code"]) for r in rows) == [
        ("update", "SYS", 200), ("update", "acme", 200)
    ]  # fmt: skip
    assert {r[2] for r in asrv.requests} == {"application/jwt"}
    assert asrv.jwts[h.account("acme").sub] == h.account_jwt("acme")

    # nats-server resolves accounts from that server (resolver: URL), and bob gets in
    conf = (
        f"operator: {(h.store / 'acme.jwt').read_text().strip()}\n"
        f"system_account: {h.account('SYS').sub}\n"
        f'resolver: URL("{asrv.base}/accounts/")\n'
    )
    creds = tmp_path / "bob.creds"
    h.ok("generate", "creds", "-n", "bob", "-o", str(creds))
    (tmp_path / "ns").mkdir()
    server = NatsServer(conf, tmp_path / "ns")
    server.start()
    try:

        async def scenario() -> list[str]:
            errors: list[str] = []

            async def on_error(exc: Exception) -> None:
                errors.append(str(exc))

            nc = await nats.connect(
                server.url, user_credentials=str(creds), error_cb=on_error, allow_reconnect=False
            )
            sub = await nc.subscribe("orders.>")
            await nc.publish("orders.1", b"x")
            await nc.publish("secret", b"x")
            await nc.flush()
            msg = await sub.next_msg(timeout=2)
            assert msg.subject == "orders.1"
            await asyncio.sleep(0.1)
            await nc.close()
            return errors

        errors = asyncio.run(scenario())
        assert any('publish to "secret"' in e for e in errors), errors
    finally:
        server.stop()
    assert ("GET", PREFIX + h.account("acme").sub, "") in asrv.requests, "nats-server fetched the account"


def test_pull_from_an_account_server(tmp_path: Path, asrv: AccountServer) -> None:
    h = Home(tmp_path / "home")
    h.ok("push", "--all", "-u", asrv.base)
    rows = h.ok("pull", "--all", "-u", asrv.base)
    assert sorted((r["account"], r["status"]) for r in rows) == [("SYS", "unchanged"), ("acme", "unchanged")]
    # the server has a newer JWT: pulled
    old = h.account_jwt("acme")
    h.ok("edit", "account", "--conns", "4")
    newer = h.account_jwt("acme")
    h.ok("push", "-a", "acme", "-u", asrv.base)
    (h.store / "accounts" / "acme" / "acme.jwt").write_text(old)
    (row,) = h.ok("pull", "-a", "acme", "-u", asrv.base)
    assert row["status"] == "updated" and h.account_jwt("acme") == newer
    # a JWT the operator did not sign is refused, and nothing is written
    stranger = KeyPair.generate(PrefixByte.OPERATOR)
    asrv.jwts[h.account("acme").sub] = jwt.AccountClaims(sub=h.account("acme").sub, name="acme").encode(
        stranger, iat=2_000_000_000
    )
    err = h.refused("pull", "--all", "-u", asrv.base, status=TOKEN_ERR, needle="nothing was written")
    assert "acme" in err


def test_account_server_errors(tmp_path: Path, asrv: AccountServer) -> None:
    h = Home(tmp_path / "home")
    # prune and friends need a nats-based resolver
    for flag in ("--prune", "--diff"):
        h.refused("push", flag, "-u", asrv.base, status=USAGE, needle="nats://")
    # nothing listens there: one line, network exit status
    dead = f"http://127.0.0.1:{free_port()}/jwt/v1"
    result = h.run("push", "--all", "-u", dead)
    assert result.exit_code == NET_ERR
    h.refused("pull", "-a", "acme", "-u", dead, status=NET_ERR, needle="cannot reach")
    # the server refuses the push: the row carries its status and text, the exit status is 7
    wrong = asrv.base.replace("/jwt/v1", "/other")
    result = h.run("push", "-a", "acme", "-u", wrong, "--json")
    assert result.exit_code == NET_ERR
    (row,) = json.loads(result.stdout)
    assert (row["code"], row["message"]) == (400, "account key does not match the path")
    # an account the server does not have
    asrv.jwts.clear()
    h.refused("pull", "-a", "acme", "-u", asrv.base, status=NET_ERR, needle="has no account")
