"""The reference's UNSURE point on JSON keys, settled on the real nats-server.

Go's ``encoding/json`` matches a key to a field case-insensitively and merges a repeated struct
key into the first. This test shows nats-server doing both with user JWTs a trusted account
signed, so a reader that looks up exact keys (orjson + dict) would grant *more* than the server.
trustkit refuses those tokens instead (``tests/unit/test_jwt_go_json_keys.py``): fail closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import nats
import pytest

from tests.natsserver import NatsServer
from trustkit import jwt
from trustkit.errors import MalformedTokenError
from trustkit.jwt.codec import HEADER_B64, b64url_encode
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.serverconfig import mem_resolver_config
from trustkit.trust import sign_nonce

pytestmark = pytest.mark.real

ACCOUNT = KeyPair.generate(PrefixByte.ACCOUNT)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    now = int(time.time())
    op = KeyPair.generate(PrefixByte.OPERATOR)
    sys_acct = KeyPair.generate(PrefixByte.ACCOUNT)
    op_jwt = jwt.OperatorClaims(sub=op.public_key, name="op", system_account=sys_acct.public_key).encode(
        op, iat=now - 10
    )
    sys_jwt = jwt.AccountClaims(sub=sys_acct.public_key, name="SYS").encode(op, iat=now - 10)
    acct_jwt = jwt.AccountClaims(sub=ACCOUNT.public_key, name="A").encode(op, iat=now - 10)
    conf = mem_resolver_config(op_jwt, [sys_jwt, acct_jwt], system_account=sys_acct.public_key)
    srv = NatsServer(conf, tmp_path_factory.mktemp("quirks"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _token(user: KeyPair, nats_body: str) -> str:
    """A user JWT whose ``nats`` object is written verbatim, signed by the trusted account."""
    payload = (
        f'{{"jti":"QUIRK","iat":{int(time.time()) - 5},"iss":"{ACCOUNT.public_key}","name":"q",'
        f'"sub":"{user.public_key}","nats":{nats_body[:-1]},"subs":-1,"data":-1,"payload":-1,'
        '"type":"user","version":2}}'
    )
    signing_input = HEADER_B64 + "." + b64url_encode(payload.encode())
    return signing_input + "." + b64url_encode(ACCOUNT.sign(signing_input.encode()))


async def _denied(url: str, token: str, user: KeyPair, subjects: list[str]) -> list[str]:
    """Publish to and subscribe on each subject; the refusals the server sent, as ``pub:s``/``sub:s``."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        url,
        user_jwt_cb=lambda: token.encode(),
        signature_cb=lambda nonce: sign_nonce(user, nonce).encode(),
        error_cb=on_error,
        allow_reconnect=False,
        max_reconnect_attempts=0,
    )
    try:
        for s in subjects:
            await nc.publish(s, b"x")
            await nc.subscribe(s)
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()
    out = [f"pub:{s}" for s in subjects if any(f'publish to "{s}"' in e for e in errors)]
    out += [f"sub:{s}" for s in subjects if any(f'subscription to "{s}"' in e for e in errors)]
    return out


@pytest.mark.parametrize(
    ("nats_body", "denied", "why"),
    [
        ('{"Pub":{"allow":["ok"]}}', ["pub:other", "pub:x"], "letter case"),
        ('{"pub":{"allow":["ok"]},"pub":{"deny":["x"]}}', ["pub:other", "pub:x"], "repeats the key"),
        ('{"\u017fub":{"deny":["x"]}}', ["sub:x"], "letter case"),
    ],
    ids=["Pub", "repeated-pub-merges", "long-s-sub"],
)
def test_server_reads_what_a_dict_lookup_would_skip(
    server: NatsServer, nats_body: str, denied: list[str], why: str
) -> None:
    user = KeyPair.generate(PrefixByte.USER)
    token = _token(user, nats_body)
    got = asyncio.run(_denied(server.url, token, user, ["ok", "other", "x"]))
    assert got == denied  # the server enforced the re-cased / merged field, which exact keys miss
    with pytest.raises(MalformedTokenError, match=why):
        jwt.decode(token, jwt.UserClaims)
