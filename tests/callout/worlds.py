"""Shared pieces of the callout program tests: an operator-mode world, a TOML writer, a client.

:func:`make_operator_world` builds a real trustkit store with :mod:`trustkit.manage` (operator,
``SYS``, a callout account ``AUTH`` (with a signing key) holding the service user and a sentinel,
target accounts ``APP`` (with a signing key), ``OPS`` (without) and ``OTHER`` (not in
``allowed_accounts``)), writes the ``authorization``
block into ``AUTH`` with the JWT classes, and the nats-resolver server config with
:mod:`trustkit.serverconfig`. :class:`SentinelClient` is nats-py sending ``user``/``pass``
next to the sentinel's JWT, as nats.go and nats.rs do (nats.py #999: nats-py's signed CONNECT
branch drops them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NATS

from callout.config import BackendKind
from callout.identity import BackendUnavailable, Identity, InvalidCredentials, UnknownUser
from trustkit import manage
from trustkit.jwt.types import ExternalAuthorization
from trustkit.manage import Workspace
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.push import push_accounts
from trustkit.serverconfig import nats_resolver_config

OPERATOR = "demo"


def toml_text(doc: Mapping[str, Any]) -> str:
    """A small TOML writer: scalars, lists, tables; tables inside lists are written inline."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str | Path):
            return json.dumps(str(v))
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, Mapping):  # inline table (inside arrays)
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines: list[str] = []

    def table(prefix: str, d: Mapping[str, Any]) -> None:
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, Mapping))
        for k, v in d.items():
            if isinstance(v, Mapping):
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", doc)
    return "\n".join(lines) + "\n"


def write_secret(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@dataclass
class OperatorWorld:
    home: Path
    ws: Workspace
    jwt_dir: Path
    auth_key: str
    auth_signing_key: str
    app_key: str
    ops_key: str
    other_key: str
    app_signing_key: str
    service_creds: Path
    sentinel_creds: Path
    xkey: KeyPair | None

    @property
    def env(self) -> dict[str, str]:
        return {"TRUSTKIT_HOME": str(self.home), "HOME": str(self.home)}

    def server_config(self) -> str:
        store = self.ws.open(OPERATOR)
        sys_name = store.find_account(store.operator_claims().system_account)
        assert sys_name is not None
        return nats_resolver_config(
            store.read_operator_jwt(), store.read_account_jwt(sys_name), directory=str(self.jwt_dir)
        )

    async def push_all(self, url: str) -> None:
        store = self.ws.open(OPERATOR)
        user_jwt, user_key = manage.push_user(self.ws, OPERATOR, now=int(time.time()))
        tokens = [store.read_account_jwt(n) for n in store.list_accounts()]
        rows = await push_accounts(url, tokens, user_jwt=user_jwt, user_key=user_key, expected_servers=1)
        assert all(r.code == 200 for r in rows), rows


def make_operator_world(tmp: Path, *, xkey: bool) -> OperatorWorld:
    home = tmp / "home"
    ws = Workspace.from_env({"TRUSTKIT_HOME": str(home), "HOME": str(tmp)})
    now = int(time.time()) - 30
    manage.init(ws, OPERATOR, now=now)
    auth = manage.add_account(ws, OPERATOR, "AUTH", now=now, signing_key=True)
    app = manage.add_account(ws, OPERATOR, "APP", now=now, signing_key=True)
    ops = manage.add_account(ws, OPERATOR, "OPS", now=now)  # no signing key: its account key signs
    other = manage.add_account(ws, OPERATOR, "OTHER", now=now)  # not in allowed_accounts
    service = manage.add_user(ws, OPERATOR, "AUTH", "callout", now=now)
    sentinel = manage.add_user(ws, OPERATOR, "AUTH", "sentinel", now=now, deny_pub=[">"], deny_sub=[">"])
    store = ws.open(OPERATOR)
    xk = KeyPair.generate(PrefixByte.CURVE) if xkey else None
    claims = store.account_claims("AUTH")
    claims.authorization = ExternalAuthorization(
        auth_users=[service.public_key],
        allowed_accounts=[app.public_key, ops.public_key],
        xkey=xk.public_key if xk is not None else "",
    )
    op = store.operator_claims()
    store.write_account_jwt(claims.encode(ws.key(op.sub, "operator"), iat=now + 1))
    [app_sk] = list(store.account_claims("APP").signing_keys)
    [auth_sk] = list(claims.signing_keys)
    assert service.creds and sentinel.creds
    jwt_dir = tmp / "jwt"
    jwt_dir.mkdir()
    return OperatorWorld(
        home=home,
        ws=ws,
        jwt_dir=jwt_dir,
        auth_key=auth.public_key,
        auth_signing_key=auth_sk,
        app_key=app.public_key,
        ops_key=ops.public_key,
        other_key=other.public_key,
        app_signing_key=app_sk,
        service_creds=Path(service.creds),
        sentinel_creds=Path(sentinel.creds),
        xkey=xk,
    )


class SentinelClient(NATS):
    """nats-py that also sends ``user``/``pass`` in a signed (JWT) CONNECT, like nats.go does."""

    def _connect_command(self) -> bytes:
        cmd = super()._connect_command()
        head, _, rest = cmd.partition(b" ")
        opts = json.loads(rest)
        if self.options.get("user") is not None:
            opts["user"] = self.options["user"]
            opts["pass"] = self.options["password"]
        return head + b" " + json.dumps(opts, sort_keys=True).encode() + b"\r\n"


async def connect_sentinel(
    url: str, sentinel_creds: Path, user: str, password: str, errors: list[str], **kw: Any
) -> SentinelClient:
    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = SentinelClient()
    await nc.connect(
        url,
        user_credentials=str(sentinel_creds),
        user=user,
        password=password,
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=3,
        **kw,
    )
    return nc


# --- a file-backed test backend, wired through the backend registry -----------------------------


@dataclass(frozen=True, kw_only=True)
class DictConfig:
    """``[backend.dict]`` in tests: users from a JSON file; "down" while ``down_file`` exists."""

    users_file: str
    down_file: str | None = None
    source: str = "dict"


class DictBackend:
    """user → {"password": ..., "groups": [...]} from a JSON file (re-read on every call)."""

    def __init__(self, config: DictConfig) -> None:
        self.config = config

    def _down(self) -> bool:
        return self.config.down_file is not None and Path(self.config.down_file).exists()

    async def authenticate(self, username: str, password: str) -> Identity:
        if self._down():
            raise BackendUnavailable("dict backend is down")
        users = json.loads(Path(self.config.users_file).read_text())
        if username not in users:
            raise UnknownUser("unknown user")
        if users[username]["password"] != password:
            raise InvalidCredentials("wrong password")
        return Identity(
            subject=username,
            name=username,
            groups=tuple(users[username]["groups"]),
            attributes={},
            expires_at=None,
            source=self.config.source,
        )

    async def ready(self) -> None:
        if self._down():
            raise BackendUnavailable("down file present")


DICT_KIND = BackendKind("dict", __name__, "DictConfig", "DictBackend")
