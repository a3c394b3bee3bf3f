"""Pushing account JWTs to running servers over the system account (``$SYS.REQ.CLAIMS.*``).

Every server with a nats-based resolver answers an update once, so a cluster of N returns N
replies; :func:`push_accounts` reports one row per server and stops waiting as soon as the
expected number of servers has answered (nsc always waits out the full timeout).
A pushed revocation takes effect at once: nats-server disconnects the revoked users.

This module does network I/O (nats-py) and is the edge the CLI's ``push`` uses.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from trustkit.errors import NetworkError
from trustkit.jwt.account import AccountClaims
from trustkit.jwt.decoder import decode
from trustkit.jwt.types import Permission
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte

__all__ = ["PushError", "ServerReply", "push_accounts", "temporary_push_user"]

UPDATE_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE"
PUSH_SUBJECTS = ("$SYS.REQ.CLAIMS.LIST", "$SYS.REQ.CLAIMS.UPDATE", "$SYS.REQ.CLAIMS.DELETE")


class PushError(NetworkError):
    code = "push"


@dataclass(frozen=True, slots=True)
class ServerReply:
    """One server's answer to one account update."""

    account: str
    server: str
    server_id: str
    code: int
    message: str

    @property
    def ok(self) -> bool:
        return self.code == 200


def temporary_push_user(
    system_account: str, signer: KeyPair, *, now: int, lifetime: int = 120
) -> tuple[str, KeyPair]:
    """A short-lived system-account user allowed only the claims requests (as nsc mints one).

    ``signer`` is the system account's identity key or one of its (unscoped) signing keys.
    Returns (user JWT, user key pair); the seed never touches disk.
    """
    if signer.kind is not PrefixByte.ACCOUNT:
        raise PushError("the push user must be signed by a system account key")
    user = KeyPair.generate(PrefixByte.USER)
    claims = UserClaims(
        sub=user.public_key,
        name="trustkit temporary push user",
        exp=now + lifetime,
        pub=Permission(allow=list(PUSH_SUBJECTS)),
        sub_perms=Permission(allow=["_INBOX.>"]),
    )
    if signer.public_key != system_account:
        claims.issuer_account = system_account
    return claims.encode(signer, iat=now), user


def _parse_reply(account: str, data: bytes) -> ServerReply:
    try:
        doc: Any = orjson.loads(data)
    except ValueError:
        return ServerReply(account, "?", "?", 0, f"unparseable reply: {data[:120]!r}")
    server = doc.get("server") or {}
    name, sid = str(server.get("name", "?")), str(server.get("id", "?"))
    if isinstance(doc.get("data"), dict):
        d = doc["data"]
        return ServerReply(account, name, sid, int(d.get("code", 0)), str(d.get("message", "")))
    err = doc.get("error") if isinstance(doc.get("error"), dict) else {}
    return ServerReply(account, name, sid, int(err.get("code", 0)), str(err.get("description", "")))


async def push_accounts(
    url: str,
    account_jwts: Sequence[str],
    *,
    user_jwt: str,
    user_key: KeyPair,
    timeout: float = 1.0,
    expected_servers: int | None = None,
    connect_timeout: float = 3.0,
) -> list[ServerReply]:
    """Send each account JWT to ``$SYS.REQ.CLAIMS.UPDATE``; one reply per server per account.

    All updates are sent at once (each with its own reply subject) and the replies gathered
    together, so pushing N accounts costs one wait, not N (nsc waits its timeout per account).
    Gathering stops when every account has ``expected_servers`` replies, or when no reply came
    for ``timeout`` seconds. Rows follow the order of ``account_jwts``; an account no server
    answered gets a row with code 0. Raises :class:`PushError` naming the server URL when it
    cannot connect.
    """
    import nats  # the network edge only

    accounts = [decode(token, AccountClaims).sub for token in account_jwts]  # refuse garbage first
    seed = user_key.seed.encode()

    def sign(nonce: str) -> bytes:
        return base64.b64encode(KeyPair.from_seed(seed).sign(nonce.encode()))

    seen: list[str] = []

    async def on_error(exc: Exception) -> None:
        seen.append(str(exc) or type(exc).__name__)

    try:
        # nats-py keeps retrying a refused first connect; bound it (and report what it saw)
        nc = await asyncio.wait_for(
            nats.connect(
                url,
                user_jwt_cb=lambda: user_jwt.encode(),
                signature_cb=sign,
                error_cb=on_error,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=connect_timeout,
                name="trustkit push",
            ),
            connect_timeout + 0.5,
        )
    except Exception as exc:  # nats-py raises many kinds; report them as one error
        reason = str(exc) or (seen[-1] if seen else type(exc).__name__)
        raise PushError(f"cannot connect to {url}: {reason}") from None
    replies: list[list[bytes]] = [[] for _ in accounts]
    waiting = set(range(len(accounts)))
    arrived = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        if not msg.data:
            return  # a status message (e.g. a 503 "no responders"), not a server's answer
        try:
            index = int(msg.subject.rsplit(".", 1)[1])
            got = replies[index]
        except (ValueError, IndexError):
            return  # not a reply to one of our updates
        if expected_servers is None or len(got) < expected_servers:
            got.append(msg.data)
        if expected_servers is not None and len(got) >= expected_servers:
            waiting.discard(index)
        arrived.set()

    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox + ".*", cb=on_msg)
        for i, token in enumerate(account_jwts):
            await nc.publish(UPDATE_SUBJECT, token.encode(), reply=f"{inbox}.{i}")
        await nc.flush()
        while expected_servers is None or waiting:
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), timeout)
            except TimeoutError:
                break
        await sub.unsubscribe()
    finally:
        await nc.close()
    results: list[ServerReply] = []
    for account, got in zip(accounts, replies, strict=True):
        results.extend(_parse_reply(account, data) for data in got)
        if not got:
            results.append(ServerReply(account, "-", "-", 0, f"no server answered within {timeout}s"))
    return results
