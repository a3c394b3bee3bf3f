"""The npm ``nats`` client (nats.js 2.29.3) on both servers: creds, request-reply, a permission
refusal and a revoked user, with the same outcome on nats-server and trustkit-broker."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.interop.jscheck import JS_DIR, node_binary
from tests.realcomp import require
from tests.servers import SERVER_KINDS, make_server
from trustkit import jwt
from trustkit.creds import format_user_creds
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config

pytestmark = pytest.mark.real

SCRIPT = JS_DIR / "smoke_nats.mjs"


def _world(tmp: Path) -> tuple[str, dict[str, Path]]:
    now = int(time.time()) - 100
    op, sys_acct, app = (
        KeyPair.generate(p) for p in (PrefixByte.OPERATOR, PrefixByte.ACCOUNT, PrefixByte.ACCOUNT)
    )
    op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
        op, iat=now
    )
    creds: dict[str, Path] = {}
    keys: dict[str, KeyPair] = {}
    for name, extra in (
        ("good", {}),
        ("denied", {"pub": jwt.Permission(deny=["secret.>"])}),
        ("revoked", {}),
    ):
        kp = keys[name] = KeyPair.generate(PrefixByte.USER)
        token = jwt.UserClaims(sub=kp.public_key, name=name, **extra).encode(app, iat=now)  # type: ignore[arg-type]
        creds[name] = tmp / f"{name}.creds"
        creds[name].write_bytes(format_user_creds(token, kp.seed))
        creds[name].chmod(0o600)
    account = jwt.AccountClaims(sub=app.public_key, name="APP")
    account.revoke(keys["revoked"].public_key, now + 10)
    accounts = [
        jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now),
        account.encode(op, iat=now + 10),
    ]
    return mem_resolver_config(op_jwt, accounts), creds


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_npm_nats_client_smoke(kind: str, tmp_path: Path) -> None:
    node = node_binary()
    require(
        node is not None and (JS_DIR / "node_modules" / "nats" / "package.json").exists(),
        "node + npm nats 2.29.3 (tests/js/node_modules)",
        "run bash scripts/install-components.sh",
    )
    assert node is not None
    config, creds = _world(tmp_path)
    with make_server(kind, config, tmp_path / kind) as srv:
        proc = subprocess.run(
            [node, str(SCRIPT), srv.url, str(creds["good"]), str(creds["denied"]), str(creds["revoked"])],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "reply": "echo:hi",
        "violations": [
            {
                "data": "PERMISSIONS_VIOLATION",
                "permissionContext": {"operation": "publish", "subject": "secret.plans"},
            }
        ],
        "deniedStillConnected": True,
        "replyAfterViolation": "echo:again",
        "revoked": "AUTHORIZATION_VIOLATION",
    }
