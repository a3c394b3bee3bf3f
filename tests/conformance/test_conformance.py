"""One behaviour, two servers: every scenario runs against nats-server and trustkit-broker.

Same config (written by trustkit.serverconfig), same creds, and the same expected bytes on the
wire, read from a raw socket so the exact ``-ERR`` texts and close behaviour are compared. Where
the two differ, the broker is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest

from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real


@dataclass
class User:
    key: KeyPair
    token: str
    creds: Path


class World:
    def __init__(self, tmp: Path) -> None:
        now = int(time.time())
        op = KeyPair.generate(PrefixByte.OPERATOR)
        sys_acct = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        stray = KeyPair.generate(PrefixByte.ACCOUNT)
        op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
            op, iat=now - 100
        )
        sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now - 100)
        self.users: dict[str, User] = {}
        specs: dict[str, dict[str, object]] = {
            "good": {},
            "denied": {
                "pub": jwt.Permission(deny=["foo", "secret.>"]),
                "sub_perms": jwt.Permission(deny=["secret.>"]),
            },
            "expired": {"exp": now - 10},
            "revoked": {},
            "stray": {"issuer_account": self.app.public_key},
            "limited": {"payload": 16},
            "onesub": {"subs": 1},
            "responder": {
                "pub": jwt.Permission(allow=["_INBOX.none"]),
                "resp": jwt.ResponsePermission(max=1, ttl=0),
            },
        }
        for name, extra in specs.items():
            kp = KeyPair.generate(PrefixByte.USER)
            claims = jwt.UserClaims(sub=kp.public_key, name=name, **extra)  # type: ignore[arg-type]
            token = claims.encode(stray if name == "stray" else self.app, iat=now - 100)
            path = tmp / f"{name}.creds"
            path.write_bytes(format_user_creds(token, kp.seed))
            self.users[name] = User(kp, token, path)
        app = jwt.AccountClaims(sub=self.app.public_key, name="APP")
        app.revoke(self.users["revoked"].key.public_key, now - 50)
        app_jwt = app.encode(op, iat=now - 90)
        self.config = mem_resolver_config(op_jwt, [sys_jwt, app_jwt])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("conformance"))


@pytest.fixture(scope="module", params=SERVER_KINDS)
def server(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    srv = make_server(request.param, world.config, tmp_path_factory.mktemp(request.param))
    with srv:
        yield srv.url


class Raw:
    """A raw protocol client: what exactly does the server send back?"""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("nats://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=3)
        self.buf = b""
        line = self._line()
        assert line.startswith(b"INFO ")
        self.info = json.loads(line[5:])

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def connect(self, user: User | None, **opts: object) -> None:
        body: dict[str, object] = {"verbose": False, "pedantic": False, "protocol": 1, "headers": True}
        if user is not None:
            body["jwt"] = user.token
            body["sig"] = sign_nonce(user.key, self.info["nonce"])
        body.update(opts)
        self.sock.sendall(b"CONNECT " + json.dumps(body).encode() + b"\r\n")

    def exchange(self, data: bytes = b"", *, timeout: float = 3.0) -> tuple[list[bytes], bool]:
        """Send ``data`` + PING; return the lines until PONG, and whether the server closed."""
        self.sock.sendall(data + b"PING\r\n")
        lines: list[bytes] = []
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                line = self._line()
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                return lines, True
            if line == b"PONG":
                return lines, False
            if line.startswith(b"INFO "):
                continue  # async INFO (connect_info) may come after the first PING
            lines.append(line)
        return lines, False

    def close(self) -> None:
        self.sock.close()


def _session(url: str, user: User | None, data: bytes, **opts: object) -> tuple[list[bytes], bool]:
    raw = Raw(url)
    try:
        raw.connect(user, **opts)
        return raw.exchange(data)
    finally:
        raw.close()


def test_info_advertises_auth_and_nonce(server: str) -> None:
    raw = Raw(server)
    try:
        info = raw.info
        assert info["auth_required"] is True and info["headers"] is True and info["proto"] == 1
        assert len(info["nonce"]) == 15 and info["max_payload"] == 1024 * 1024
    finally:
        raw.close()


def test_publish_and_receive(server: str, world: World) -> None:
    lines, closed = _session(server, world.users["good"], b"SUB foo 1\r\nPUB foo 5\r\nhello\r\n")
    assert (lines, closed) == ([b"MSG foo 1 5", b"hello"], False)


def test_publish_permission_violation_keeps_the_connection(server: str, world: World) -> None:
    lines, closed = _session(server, world.users["denied"], b"PUB foo 1\r\nx\r\nPUB secret.a 1\r\nx\r\n")
    assert lines == [
        b"-ERR 'Permissions Violation for Publish to \"foo\"'",
        b"-ERR 'Permissions Violation for Publish to \"secret.a\"'",
    ]
    assert not closed


def test_subscribe_permission_violation(server: str, world: World) -> None:
    lines, closed = _session(server, world.users["denied"], b"SUB secret.x 1\r\nSUB secret.y q 2\r\n")
    assert lines == [
        b"-ERR 'Permissions Violation for Subscription to \"secret.x\"'",
        b'-ERR \'Permissions Violation for Subscription to "secret.y" using queue "q"\'',
    ]
    assert not closed


@pytest.mark.parametrize("name", ["expired", "revoked", "stray"])
def test_refused_users_get_authorization_violation(server: str, world: World, name: str) -> None:
    lines, closed = _session(server, world.users[name], b"")
    assert lines == [b"-ERR 'Authorization Violation'"] and closed


def test_forged_nonce_signature_is_refused(server: str, world: World) -> None:
    user = world.users["good"]
    raw = Raw(server)
    try:
        other = KeyPair.generate(PrefixByte.USER)
        raw.sock.sendall(
            b"CONNECT "
            + json.dumps(
                {"jwt": user.token, "sig": sign_nonce(other, raw.info["nonce"]), "protocol": 1}
            ).encode()
            + b"\r\n"
        )
        assert raw.exchange() == ([b"-ERR 'Authorization Violation'"], True)
    finally:
        raw.close()


def _spell(sig: bytes, how: str) -> str:
    """One signature, spelt as a client might: nats-server decodes base64url without padding and
    falls back to standard base64 (client.go processConnect)."""
    url = base64.urlsafe_b64encode(sig).decode()
    std = base64.b64encode(sig).decode()
    if how == "url-raw":
        return url.rstrip("=")
    if how == "url-padded":
        return url
    if how == "std-padded":
        return std
    if how == "std-raw":
        return std.rstrip("=")
    if how == "url-raw-noncanonical":  # the last character's 4 unused bits set: same bytes
        text = url.rstrip("=")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return text[:-1] + alphabet[alphabet.index(text[-1]) | 1]
    if how == "url-raw-crlf":  # Go's decoders skip CR and LF anywhere
        text = url.rstrip("=")
        return text[:10] + "\r\n" + text[10:40] + "\n" + text[40:]
    if how == "url-raw-space":  # but nothing else
        text = url.rstrip("=")
        return text[:10] + " " + text[10:]
    raise AssertionError(how)


SPELLINGS = {  # spelling -> accepted by nats-server
    "url-raw": True,
    "url-padded": False,
    "std-padded": True,
    "std-raw": False,
    "url-raw-noncanonical": True,
    "url-raw-crlf": True,
    "url-raw-space": False,
}


@pytest.mark.parametrize("how", list(SPELLINGS))
def test_nonce_signature_spellings(server: str, world: World, how: str) -> None:
    """The same nonce signature in several base64 spellings: accepted or refused alike."""
    user = world.users["good"]
    # a signature that needs both url-only characters and standard-only ones to tell the
    # alphabets apart is not always at hand: try nonces until the spelling says something
    for _ in range(50):
        raw = Raw(server)
        try:
            sig = user.key.sign(raw.info["nonce"].encode())
            url = base64.urlsafe_b64encode(sig).decode()
            if how.startswith("std") and not ({"+", "/"} & set(base64.b64encode(sig).decode())):
                continue
            if how == "url-padded" and not ({"-", "_"} & set(url)):
                continue
            body = {"jwt": user.token, "sig": _spell(sig, how), "protocol": 1, "verbose": False}
            raw.sock.sendall(b"CONNECT " + json.dumps(body).encode() + b"\r\n")
            lines, closed = raw.exchange()
        finally:
            raw.close()
        if SPELLINGS[how]:
            assert (lines, closed) == ([], False)
        else:
            assert (lines, closed) == ([b"-ERR 'Authorization Violation'"], True)
        return
    pytest.fail("no nonce gave a signature with the characters this spelling needs")


def test_user_payload_limit_closes_the_connection(server: str, world: World) -> None:
    lines, closed = _session(
        server,
        world.users["limited"],
        b"PUB a 16\r\n" + b"x" * 16 + b"\r\nPUB a 17\r\n" + b"x" * 17 + b"\r\n",
    )
    assert lines == [b"-ERR 'Maximum Payload Violation'"] and closed


def test_subscription_limit(server: str, world: World) -> None:
    lines, closed = _session(server, world.users["onesub"], b"SUB a 1\r\nSUB b 2\r\n")
    assert lines == [b"-ERR 'maximum subscriptions exceeded'"] and not closed


def test_unknown_protocol_operation_closes(server: str, world: World) -> None:
    lines, closed = _session(server, world.users["good"], b"FOO bar\r\n")
    assert lines == [b"-ERR 'Unknown Protocol Operation'"] and closed


def test_no_responders_status(server: str, world: World) -> None:
    lines, closed = _session(
        server, world.users["good"], b"SUB _INBOX.r 7\r\nPUB nobody _INBOX.r 0\r\n\r\n", no_responders=True
    )
    assert lines == [b"HMSG _INBOX.r 7 38 38", b"NATS/1.0 503", b"Nats-Subject: nobody", b"", b""]
    assert not closed


def test_response_permission_allows_one_reply(server: str, world: World) -> None:
    asker, responder = Raw(server), Raw(server)
    try:
        asker.connect(world.users["good"])
        responder.connect(world.users["responder"])
        assert asker.exchange(b"SUB _INBOX.a 1\r\n") == ([], False)
        assert responder.exchange(b"SUB svc 1\r\n") == ([], False)
        assert asker.exchange(b"PUB svc _INBOX.a 2\r\nhi\r\n") == ([], False)
        lines, _ = responder.exchange()
        assert lines == [b"MSG svc 1 _INBOX.a 2", b"hi"]
        # one reply is allowed, the second is not (max 1), and an unrelated publish never was
        lines, closed = responder.exchange(
            b"PUB _INBOX.a 2\r\nok\r\nPUB _INBOX.a 2\r\nno\r\nPUB other 1\r\nx\r\n"
        )
        assert lines == [
            b"-ERR 'Permissions Violation for Publish to \"_INBOX.a\"'",
            b"-ERR 'Permissions Violation for Publish to \"other\"'",
        ]
        assert not closed
        assert asker.exchange() == ([b"MSG _INBOX.a 1 2", b"ok"], False)
    finally:
        asker.close()
        responder.close()


def test_nats_py_clients_with_creds(server: str, world: World) -> None:
    async def run() -> tuple[bytes, bytes]:
        a = await nats.connect(server, user_credentials=str(world.users["good"].creds), allow_reconnect=False)
        b = await nats.connect(server, user_credentials=str(world.users["good"].creds), allow_reconnect=False)
        try:

            async def handler(msg: nats.aio.msg.Msg) -> None:
                await msg.respond(msg.data.upper())

            # flush twice: nats-py 2.16 can write flush()'s PING ahead of a SUB still queued for
            # its flusher, so the first PONG may come back before the server has the SUB
            await a.subscribe("svc.echo", queue="workers", cb=handler)
            await a.flush()
            await a.flush()
            reply = await b.request("svc.echo", b"hello", timeout=5)
            sub = await a.subscribe("events.>")
            await a.flush()
            await a.flush()
            await b.publish("events.x", b"evt", headers={"K": "v"})
            msg = await sub.next_msg(timeout=2)
            return bytes(reply.data), bytes(msg.data) + (msg.headers or {}).get("K", "").encode()
        finally:
            await a.close()
            await b.close()

    assert asyncio.run(run()) == (b"HELLO", b"evtv")


def test_denied_subjects_are_quoted_like_go(server: str, world: World) -> None:
    lines, closed = _session(
        server, world.users["denied"], 'PUB secret.a"b\\c 1\r\nx\r\nPUB secret.é 1\r\nx\r\n'.encode()
    )
    assert lines == [
        b'-ERR \'Permissions Violation for Publish to "secret.a\\"b\\\\c"\'',
        "-ERR 'Permissions Violation for Publish to \"secret.é\"'".encode(),
    ]
    assert not closed


def test_verbose_is_on_unless_the_client_says_no(server: str, world: World) -> None:
    raw = Raw(server)
    try:
        user = world.users["good"]
        body = {"jwt": user.token, "sig": sign_nonce(user.key, raw.info["nonce"]), "protocol": 1}
        raw.sock.sendall(b"CONNECT " + json.dumps(body).encode() + b"\r\n")
        assert raw.exchange(b"SUB v 1\r\nPUB v 1\r\nx\r\n") == (
            [b"+OK", b"+OK", b"+OK", b"MSG v 1 1", b"x"],
            False,
        )
    finally:
        raw.close()


def test_reserved_reply_subjects_are_refused(server: str, world: World) -> None:
    lines, closed = _session(
        server, world.users["good"], b"PUB a _R_.x 1\r\nx\r\nPUB a $JS.ACK.s.c 1\r\nx\r\n"
    )
    assert lines == [
        b"-ERR 'Permissions Violation for Publish with Reply of \"_R_.x\"'",
        b"-ERR 'Permissions Violation for Publish with Reply of \"$JS.ACK.s.c\"'",
    ]
    assert not closed


def test_a_second_connect_is_a_new_login(server: str, world: World) -> None:
    """nats-server processConnect: a later CONNECT is merged over the first, drops every
    subscription, and is judged again; bad credentials then close the connection."""
    good = world.users["good"]
    raw = Raw(server)
    try:
        raw.connect(good)
        # the merged CONNECT keeps the first's jwt and sig; SUBs made before it are gone
        assert raw.exchange(
            b'SUB a 1\r\nSUB b 2\r\nUNSUB 2 5\r\nCONNECT {"verbose":true}\r\n'
            b"PUB a 1\r\nx\r\nPUB b 1\r\ny\r\nSUB c 3\r\nPUB c 1\r\nz\r\n"
        ) == ([b"+OK", b"+OK", b"+OK", b"+OK", b"+OK", b"MSG c 3 1", b"z"], False)
    finally:
        raw.close()
    for name in ("revoked", "expired", "stray"):
        raw = Raw(server)
        try:
            raw.connect(good)
            other = world.users[name]
            second = {"jwt": other.token, "sig": sign_nonce(other.key, raw.info["nonce"])}
            assert raw.exchange(b"CONNECT " + json.dumps(second).encode() + b"\r\nSUB a 1\r\n") == (
                [b"-ERR 'Authorization Violation'"],
                True,
            ), name
        finally:
            raw.close()



def _until_pong(raw: Raw) -> list[bytes]:
    lines = []
    while (line := raw._line()) != b"PONG":
        if line.startswith(b"INFO "):
            line = b"INFO connect_info" if json.loads(line[5:]).get("connect_info") else b"INFO"
        lines.append(line)
    return lines


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_without_auth_a_client_may_work_before_connect(kind: str, tmp_path: Path) -> None:
    """No auth: nats-server requires no CONNECT; its defaults (verbose, echo) apply until one
    comes, the first CONNECT keeps the subscriptions, and connect_info follows the next PING."""
    with make_server(kind, "", tmp_path) as srv:
        raw = Raw(srv.url)
        try:
            assert "auth_required" not in raw.info and "nonce" not in raw.info
            raw.sock.sendall(b"SUB x 1\r\nPUB x 1\r\na\r\nPING\r\n")
            assert _until_pong(raw) == [b"+OK", b"+OK", b"MSG x 1 1", b"a"]
            raw.sock.sendall(b'CONNECT {"verbose":false,"protocol":1}\r\nPUB x 1\r\nb\r\nPING\r\n')
            assert _until_pong(raw) == [b"MSG x 1 1", b"b"]
            raw.sock.sendall(b"PING\r\n")
            assert _until_pong(raw) == [b"INFO connect_info"]
        finally:
            raw.close()
