"""TLS on both servers, same config: nats-server and trustkit-broker, real nats-py clients.

The test makes its own PKI (a CA, a server certificate for 127.0.0.1, a client certificate, and a
client certificate from a second, untrusted CA). Each server kind runs three configs: TLS after a
plaintext INFO (nats-server's default), ``verify: true`` (client certificates required), and
``handshake_first``. A recording TCP relay between client and server proves that credentials
never cross the wire in plaintext: after INFO only TLS records flow.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from broker.config import BrokerConfig, ConfigError, parse_conf
from tests.natsserver import ServerProcess
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real

TLS_RECORD_HANDSHAKE = 0x16


# --- a private PKI ------------------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = dict.fromkeys(
            ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
        )
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
    elif server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@dataclass
class PKI:
    dir: Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def client_context(self, cert: str | None = None, *, ca: str = "ca.pem") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.path(ca))
        if cert is not None:
            ctx.load_cert_chain(self.path(f"{cert}.pem"), self.path(f"{cert}-key.pem"))
        return ctx


def make_pki(d: Path) -> PKI:
    d.mkdir(parents=True, exist_ok=True)

    def write(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = d / f"{name}-key.pem"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)

    ca_key, rogue_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    write("ca", _cert("trustkit test CA", ca_key, "trustkit test CA", ca_key, ca=True), ca_key)
    write("rogue-ca", _cert("rogue CA", rogue_key, "rogue CA", rogue_key, ca=True), rogue_key)
    for name, issuer, ikey, server in (
        ("server", "trustkit test CA", ca_key, True),
        ("client", "trustkit test CA", ca_key, False),
        ("rogue-client", "rogue CA", rogue_key, False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        write(name, _cert(name, key, issuer, ikey, server=server), key)
    return PKI(d)


# --- accounts and creds ---------------------------------------------------------------------------
@dataclass
class World:
    pki: PKI
    base_config: str
    user: KeyPair
    token: str
    creds: Path

    def config(self, **tls: object) -> str:
        fields = {
            "cert_file": self.pki.path("server.pem"),
            "key_file": self.pki.path("server-key.pem"),
            "ca_file": self.pki.path("ca.pem"),
            "timeout": 1,
        }
        fields.update(tls)
        body = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in fields.items())
        return f"{self.base_config}\ntls {{\n{body}\n}}\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("tls")
    now = int(time.time())
    op, sys_acct, app = (
        KeyPair.generate(p) for p in (PrefixByte.OPERATOR, PrefixByte.ACCOUNT, PrefixByte.ACCOUNT)
    )
    op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
        op, iat=now - 100
    )
    sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now - 100)
    app_jwt = jwt.AccountClaims(sub=app.public_key, name="APP").encode(op, iat=now - 100)
    user = KeyPair.generate(PrefixByte.USER)
    token = jwt.UserClaims(sub=user.public_key, name="alice").encode(app, iat=now - 100)
    creds = tmp / "alice.creds"
    creds.write_bytes(format_user_creds(token, user.seed))
    creds.chmod(0o600)
    return World(make_pki(tmp / "pki"), mem_resolver_config(op_jwt, [sys_jwt, app_jwt]), user, token, creds)


# --- servers --------------------------------------------------------------------------------------
def _start_tls_first(srv: ServerProcess, ctx: ssl.SSLContext, timeout: float = 15.0) -> None:
    """ServerProcess.start waits for a plaintext INFO, which a TLS-first server never sends: wait
    for a TLS handshake followed by INFO instead."""
    with srv.log.open("wb") as log:
        srv.proc = subprocess.Popen(srv.command(), stdout=log, stderr=subprocess.STDOUT, cwd=srv.workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{srv.label} exited ({srv.proc.returncode}):\n{srv.log.read_text()}")
        try:
            with (
                socket.create_connection(("127.0.0.1", srv.port), timeout=1) as s,
                ctx.wrap_socket(s, server_hostname="127.0.0.1") as t,
            ):
                if t.recv(4096).startswith(b"INFO "):
                    return
        except OSError:
            time.sleep(0.05)
    srv.stop()
    raise RuntimeError(f"{srv.label} did not start in {timeout}s:\n{srv.log.read_text()}")


MODES = {
    "tls": {},
    "verify": {"verify": True},
    "first": {"handshake_first": True},
}


def _params(*modes: str) -> pytest.MarkDecorator:
    """Run a test on both server kinds in each of ``modes`` (the servers are module-scoped)."""
    combos = [(k, m) for k in SERVER_KINDS for m in modes]
    return pytest.mark.parametrize("server", combos, indirect=True, ids=["-".join(c) for c in combos])


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    kind, mode = request.param
    srv = make_server(kind, world.config(**MODES[mode]), tmp_path_factory.mktemp(f"{kind}-{mode}"))
    if mode == "first":
        _start_tls_first(srv, world.pki.client_context())
        try:
            yield srv.url, mode
        finally:
            srv.stop()
    else:
        with srv:
            yield srv.url, mode


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class Relay:
    """A TCP relay that records both directions: what actually crossed the wire."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, rec: bytearray) -> None:
            try:
                while data := await r.read(65536):
                    rec.extend(data)
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(cr, sw, self.to_server), pipe(sr, cw, self.to_client))


async def _connect(url: str, world: World, ctx: ssl.SSLContext, mode: str) -> NATS:
    return await nats.connect(
        url.replace("nats://", "tls://"),
        tls=ctx,
        tls_handshake_first=mode == "first",
        user_credentials=str(world.creds),
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
    )


def _ctx(world: World, mode: str) -> ssl.SSLContext:
    return world.pki.client_context("client" if mode == "verify" else None)


# --- tests ----------------------------------------------------------------------------------------
@_params("tls", "verify")
def test_info_says_tls_is_required(server: tuple[str, str]) -> None:
    url, mode = server
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=3) as s:
        line = s.recv(65536).split(b"\r\n", 1)[0]
    info = json.loads(line.removeprefix(b"INFO "))
    assert info["tls_required"] is True and "tls_available" not in info
    assert info.get("tls_verify", False) is (mode == "verify")
    assert info["auth_required"] is True and len(info["nonce"]) == 15


@_params(*MODES)
def test_creds_over_tls_and_nothing_readable_on_the_wire(server: tuple[str, str], world: World) -> None:
    """Request-reply and headers over TLS with creds; the relay saw no CONNECT, JWT or signature."""
    url, mode = server

    async def run() -> tuple[bytes, Relay]:
        async with Relay(_port(url)) as relay:
            a = await _connect(f"nats://127.0.0.1:{relay.port}", world, _ctx(world, mode), mode)
            b = await _connect(f"nats://127.0.0.1:{relay.port}", world, _ctx(world, mode), mode)
            try:

                async def handler(msg: Msg) -> None:
                    await msg.respond(msg.data.upper() + (msg.headers or {}).get("K", "").encode())

                await a.subscribe("svc", cb=handler)
                await a.flush()
                reply = await b.request("svc", b"secret-payload", timeout=3, headers={"K": "v"})
            finally:
                await a.close()
                await b.close()
            return bytes(reply.data), relay

    reply, relay = asyncio.run(run())
    assert reply == b"SECRET-PAYLOADv"
    sent, received = bytes(relay.to_server), bytes(relay.to_client)
    for secret in (b"CONNECT", world.token.encode(), world.token.split(".")[1].encode(), b"secret-payload"):
        assert secret not in sent and secret not in received
    if mode == "first":
        assert sent[0] == TLS_RECORD_HANDSHAKE and received[0] == TLS_RECORD_HANDSHAKE
        assert b"INFO" not in received
    else:
        # exactly one plaintext INFO per connection, then only TLS records from the server
        assert received.startswith(b"INFO ") and sent[0] == TLS_RECORD_HANDSHAKE
        after_info = received.split(b"\r\n", 1)[1]
        assert after_info[0] == TLS_RECORD_HANDSHAKE


@_params(*MODES)
def test_plaintext_client_is_cut_off(server: tuple[str, str], world: World) -> None:
    """A client that answers INFO in plaintext gets nothing back: its CONNECT is never parsed."""
    url, mode = server
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=3) as s:
        if mode != "first":
            info = json.loads(s.recv(65536).split(b"\r\n", 1)[0].removeprefix(b"INFO "))
            sig = sign_nonce(world.user, info["nonce"])
        else:
            sig = "AAAA"
        s.sendall(b"CONNECT " + json.dumps({"jwt": world.token, "sig": sig}).encode() + b"\r\nPING\r\n")
        got = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
        else:
            pytest.fail("the server kept the plaintext connection open")
    assert b"PONG" not in got and b"+OK" not in got and b"-ERR" not in got


@_params(*MODES)
def test_idle_client_is_closed_at_the_tls_timeout(server: tuple[str, str]) -> None:
    url, mode = server
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=6) as s:
        first = s.recv(65536)
        assert first.startswith(b"INFO ") if mode != "first" else first == b""
        if first:
            assert s.recv(65536) == b""  # closed (timeout: 1), nothing else was sent


@_params("verify")
def test_verify_needs_a_client_certificate_from_the_ca(server: tuple[str, str], world: World) -> None:
    url, mode = server

    async def attempt(ctx: ssl.SSLContext) -> str:
        try:
            nc = await _connect(url, world, ctx, mode)
        except Exception as exc:  # the refusal surfaces as various client errors
            return f"refused: {type(exc).__name__}"
        try:
            await nc.flush(timeout=2)
            return "connected"
        except Exception as exc:
            return f"refused: {type(exc).__name__}"
        finally:
            await nc.close()

    assert asyncio.run(attempt(world.pki.client_context("client"))) == "connected"
    assert asyncio.run(attempt(world.pki.client_context())).startswith("refused")
    assert asyncio.run(attempt(world.pki.client_context("rogue-client"))).startswith("refused")


@_params("first")
def test_tls_first_sends_nothing_in_plaintext(server: tuple[str, str]) -> None:
    url, _ = server
    with socket.create_connection(("127.0.0.1", _port(url)), timeout=0.5) as s, pytest.raises(TimeoutError):
        s.recv(65536)  # the server waits for a ClientHello and says nothing


@_params("first")
def test_nats_py_without_tls_first_fails_against_a_tls_first_server(
    server: tuple[str, str], world: World
) -> None:
    url, _ = server

    async def run() -> None:
        with pytest.raises(Exception):  # nats-py times out waiting for INFO
            await nats.connect(
                url, tls=world.pki.client_context(), allow_reconnect=False, connect_timeout=1.5
            )

    asyncio.run(run())


# --- broker-only: the config is checked at startup ----------------------------------------------
def _conf(world: World, **tls: object) -> str:
    return world.config(**tls).replace(world.base_config, "")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"cipher_suites": ["TLS_AES_128_GCM_SHA256"]}, "tls key 'cipher_suites' is not supported"),
        ({"pinned_certs": []}, "tls key 'pinned_certs' is not supported"),
        ({"handshake_first": "auto"}, "'auto' (a fallback to plaintext) is not supported"),
        ({"verify": "yes please"}, "expected 'verify' to be a boolean"),
        ({"timeout": "soon"}, "'timeout'"),
        ({"cert_file": "/nonexistent/server.pem"}, "cannot read /nonexistent/server.pem"),
        ({"ca_file": "/nonexistent/ca.pem"}, "cannot read /nonexistent/ca.pem"),
    ],
)
def test_unsupported_or_bad_tls_keys_are_refused(
    world: World, extra: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        BrokerConfig.from_conf(parse_conf(_conf(world, **extra)))
    assert message in err.value.message


def test_missing_key_file_and_bad_pem_are_refused(world: World, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing 'key_file'"):
        BrokerConfig.from_conf(parse_conf(f"tls {{ cert_file: {json.dumps(world.pki.path('server.pem'))} }}"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="certificate/key pair"):
        BrokerConfig.from_conf(parse_conf(_conf(world, cert_file=str(bad))))


def test_tls_timeout_forms_and_the_auth_timeout_default(world: World) -> None:
    cfg = BrokerConfig.from_conf(parse_conf(_conf(world, timeout="500ms")))
    assert cfg.tls is not None and cfg.tls.timeout == 0.5 and cfg.auth_timeout == 1.5
    text = _conf(world).replace("timeout: 1", "timeout: 0.25")
    cfg = BrokerConfig.from_conf(parse_conf(text))
    assert cfg.tls is not None and cfg.tls.timeout == 0.25
    assert BrokerConfig.from_conf(parse_conf(_conf(world, handshake_first="on"))).tls.handshake_first  # type: ignore[union-attr]


def test_connz_shows_the_tls_version(world: World, tmp_path: Path) -> None:
    """In-process broker: /connz reports the negotiated TLS version and cipher, /varz tls_required."""
    import urllib.request

    from broker.server import Broker

    cfg = BrokerConfig.from_conf(parse_conf(_conf(world)))
    cfg.host, cfg.port, cfg.http_port = "127.0.0.1", 0, 0

    def get(port: int, path: str) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    async def run() -> None:
        broker = Broker(cfg)
        await broker.start()
        try:
            nc = await nats.connect(
                f"tls://127.0.0.1:{cfg.port}", tls=world.pki.client_context(), name="tls-client"
            )
            await nc.flush()
            connz = await asyncio.to_thread(get, cfg.http_port or 0, "/connz")
            varz = await asyncio.to_thread(get, cfg.http_port or 0, "/varz")
            await nc.close()
        finally:
            await broker.close()
        conns: list[dict[str, object]] = connz["connections"]  # type: ignore[assignment]
        (conn,) = conns
        assert conn["name"] == "tls-client" and conn["tls_version"] in ("1.2", "1.3")
        assert conn["tls_cipher_suite"]
        assert varz["tls_required"] is True and varz["tls_timeout"] == 1.0

    asyncio.run(run())
