"""Talking to running servers over the system account (``$SYS.REQ.CLAIMS.*``).

:class:`SystemClient` is one connection as a (temporary) system-account user. It sends
account updates, lists the accounts servers hold, deletes accounts, and reads account JWTs back
(``PACK`` for all of them, ``LOOKUP`` for one), with nats-server's subjects and reply formats:

* ``$SYS.REQ.CLAIMS.UPDATE`` / ``LIST`` / ``DELETE``: every server with a nats-based resolver
  answers (a plain subscription), so a cluster of N returns N replies; replies are gathered until
  ``expected_servers`` answered or no reply came for ``timeout`` seconds (nsc always waits out
  the full timeout).
* ``$SYS.REQ.CLAIMS.PACK``: one full-resolver server answers (queue group ``responder``) with one
  message ``<A…>|<jwt>`` per stored account, then an empty message.
* ``$SYS.REQ.ACCOUNT.<A>.CLAIMS.LOOKUP``: every full-resolver server answers with the raw JWT, or
  an empty message when it does not hold the account.

Nothing read from a server is trusted here: :func:`trustkit.manage.store_pulled` verifies pulled
JWTs before anything is written. A pushed revocation takes effect at once: nats-server
disconnects the revoked users. This module is the network edge (nats-py is imported lazily).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from trustkit.errors import NetworkError
from trustkit.jwt.account import AccountClaims
from trustkit.jwt.decoder import decode
from trustkit.jwt.generic import GenericClaims
from trustkit.jwt.types import Permission
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte

__all__ = [
    "DELETE_SUBJECT",
    "LIST_SUBJECT",
    "LOOKUP_SUBJECT",
    "PACK_SUBJECT",
    "UPDATE_SUBJECT",
    "PushError",
    "ServerList",
    "ServerReply",
    "SystemClient",
    "delete_request",
    "push_accounts",
    "temporary_push_user",
]

UPDATE_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE"
LIST_SUBJECT = "$SYS.REQ.CLAIMS.LIST"
DELETE_SUBJECT = "$SYS.REQ.CLAIMS.DELETE"
PACK_SUBJECT = "$SYS.REQ.CLAIMS.PACK"
LOOKUP_SUBJECT = "$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP"
#: What the temporary system user may publish (nsc allows the subset each command needs).
PUSH_SUBJECTS = (
    LIST_SUBJECT,
    UPDATE_SUBJECT,
    DELETE_SUBJECT,
    PACK_SUBJECT,
    LOOKUP_SUBJECT.format("*"),
)
#: nats-py marks a server status message (e.g. 503 "no responders") with this header.
_STATUS_HEADER = "Status"


class PushError(NetworkError):
    code = "push"


@dataclass(frozen=True, slots=True)
class ServerReply:
    """One server's answer to one request (an account update, or a delete)."""

    account: str
    server: str
    server_id: str
    code: int
    message: str

    @property
    def ok(self) -> bool:
        return self.code == 200


@dataclass(frozen=True, slots=True)
class ServerList:
    """One server's answer to ``$SYS.REQ.CLAIMS.LIST``: the account keys it stores."""

    server: str
    server_id: str
    accounts: list[str] = field(default_factory=list)
    error: str = ""


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


def delete_request(accounts: Sequence[str], signer: KeyPair, *, now: int) -> str:
    """The body of ``$SYS.REQ.CLAIMS.DELETE``: a generic JWT whose issuer and subject are an
    operator key (identity or signing key), listing the accounts in ``nats.accounts`` (as nsc).

    Raises :class:`PushError` for a non-operator signer or a key that is not an account key.
    """
    from trustkit import nkeys

    if signer.kind is not PrefixByte.OPERATOR:
        raise PushError("an account delete request must be signed by an operator key")
    for key in accounts:
        if not nkeys.is_valid_public_key(key, PrefixByte.ACCOUNT):
            raise PushError(f"{key!r} is not an account public key")
    claims = GenericClaims(sub=signer.public_key, data={"accounts": list(accounts)})
    return claims.encode(signer, iat=now)


def _doc(data: bytes) -> tuple[dict[str, Any] | None, str, str]:
    """(parsed reply, server name, server id); the reply is None if it is not a JSON object."""
    try:
        doc: Any = orjson.loads(data)
    except ValueError:
        return None, "?", "?"
    if not isinstance(doc, dict):
        return None, "?", "?"
    server: dict[str, Any] = doc["server"] if isinstance(doc.get("server"), dict) else {}
    return doc, str(server.get("name", "?")), str(server.get("id", "?"))


def _parse_reply(account: str, data: bytes) -> ServerReply:
    doc, name, sid = _doc(data)
    if doc is None:
        return ServerReply(account, name, sid, 0, f"unparseable reply: {data[:120]!r}")
    if isinstance(doc.get("data"), dict):
        d = doc["data"]
        return ServerReply(account, name, sid, _int(d.get("code")), str(d.get("message", "")))
    err: dict[str, Any] = doc["error"] if isinstance(doc.get("error"), dict) else {}
    return ServerReply(account, name, sid, _int(err.get("code")), str(err.get("description", "")))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _parse_list(data: bytes) -> ServerList:
    doc, name, sid = _doc(data)
    if doc is None:
        return ServerList(name, sid, error=f"unparseable reply: {data[:120]!r}")
    accounts = doc.get("data")
    if isinstance(accounts, list) and all(isinstance(a, str) for a in accounts):
        return ServerList(name, sid, list(accounts))
    err: dict[str, Any] = doc["error"] if isinstance(doc.get("error"), dict) else {}
    return ServerList(name, sid, error=str(err.get("description", "")) or "reply without an account list")


def _is_status(msg: Any) -> bool:
    """True for a server status message (no responders…), not an answer from a responder."""
    headers = getattr(msg, "headers", None)
    return isinstance(headers, dict) and _STATUS_HEADER in headers


class SystemClient:
    """One connection to ``url`` as a system-account user, for the claims requests.

    Use as ``async with SystemClient(url, user_jwt=…, user_key=…) as sc: await sc.update(…)``.
    ``timeout``: stop gathering replies when none came for this many seconds;
    ``expected_servers``: stop as soon as this many servers answered each request.
    Raises :class:`PushError` naming the URL when it cannot connect.
    """

    def __init__(
        self,
        url: str,
        *,
        user_jwt: str,
        user_key: KeyPair,
        timeout: float = 1.0,
        expected_servers: int | None = None,
        connect_timeout: float = 3.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.expected_servers = expected_servers
        self._connect_timeout = connect_timeout
        self._user_jwt = user_jwt
        self._seed = user_key.seed.encode()
        self._nc: Any = None

    async def __aenter__(self) -> SystemClient:
        import nats  # the network edge only

        seed = self._seed

        def sign(nonce: str) -> bytes:
            return base64.b64encode(KeyPair.from_seed(seed).sign(nonce.encode()))

        seen: list[str] = []

        async def on_error(exc: Exception) -> None:
            seen.append(str(exc) or type(exc).__name__)

        try:
            # nats-py keeps retrying a refused first connect; bound it (and report what it saw)
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    user_jwt_cb=lambda: self._user_jwt.encode(),
                    signature_cb=sign,
                    error_cb=on_error,
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    connect_timeout=self._connect_timeout,
                    name="trustkit system client",
                ),
                self._connect_timeout + 0.5,
            )
        except Exception as exc:  # nats-py raises many kinds; report them as one error
            reason = str(exc) or (seen[-1] if seen else type(exc).__name__)
            raise PushError(f"cannot connect to {self.url}: {reason}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    async def _gather(
        self, requests: Sequence[tuple[str, bytes]], on_answered: Callable[[int], None] | None = None
    ) -> list[list[bytes]]:
        """Send every request at once, each with its own reply subject; gather the replies.

        Returns the replies per request (in order). A request whose subject has no responder
        at all (the server's 503 status) is done at once with no replies. ``on_answered`` gets
        the number of requests answered so far each time one gets its first reply.
        """
        nc = self._nc
        expected = self.expected_servers
        replies: list[list[bytes]] = [[] for _ in requests]
        waiting = set(range(len(requests)))
        answered: set[int] = set()
        arrived = asyncio.Event()

        async def on_msg(msg: Any) -> None:
            try:
                index = int(msg.subject.rsplit(".", 1)[1])
                got = replies[index]
            except (ValueError, IndexError):
                return  # not a reply to one of our requests
            if _is_status(msg):
                waiting.discard(index)  # nobody subscribes to that subject: no answer will come
            else:
                if expected is None or len(got) < expected:
                    got.append(msg.data)
                if expected is not None and len(got) >= expected:
                    waiting.discard(index)
                if index not in answered:
                    answered.add(index)
                    if on_answered is not None:
                        on_answered(len(answered))
            arrived.set()

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox + ".*", cb=on_msg)
        try:
            for i, (subject, payload) in enumerate(requests):
                await nc.publish(subject, payload, reply=f"{inbox}.{i}")
            await nc.flush()
            while waiting:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), self.timeout)
                except TimeoutError:
                    break
        finally:
            await sub.unsubscribe()
        return replies

    def _silent(self, what: str) -> str:
        return f"no server answered {what} within {self.timeout}s"

    async def update(
        self, account_jwts: Sequence[str], on_answered: Callable[[int], None] | None = None
    ) -> list[ServerReply]:
        """Send each account JWT to ``$SYS.REQ.CLAIMS.UPDATE``; one row per server per account.

        Rows follow the order of ``account_jwts``; an account no server answered gets a row
        with code 0. Tokens that are not account JWTs are refused before anything is sent.
        """
        accounts = [decode(token, AccountClaims).sub for token in account_jwts]
        replies = await self._gather(
            [(UPDATE_SUBJECT, token.encode()) for token in account_jwts], on_answered
        )
        results: list[ServerReply] = []
        for account, got in zip(accounts, replies, strict=True):
            results.extend(_parse_reply(account, data) for data in got)
            if not got:
                results.append(ServerReply(account, "-", "-", 0, self._silent("the update")))
        return results

    async def list_accounts(self) -> list[ServerList]:
        """``$SYS.REQ.CLAIMS.LIST``: one row per server that answered (none: an empty list)."""
        (replies,) = await self._gather([(LIST_SUBJECT, b"")])
        return [_parse_list(data) for data in replies]

    async def delete(self, request_jwt: str, accounts: Sequence[str]) -> list[ServerReply]:
        """``$SYS.REQ.CLAIMS.DELETE`` with a request from :func:`delete_request`; one row per
        server (``account`` lists the keys, comma-separated). The server needs
        ``allow_delete: true`` in its resolver block, else it answers with an error row."""
        label = ",".join(accounts)
        (replies,) = await self._gather([(DELETE_SUBJECT, request_jwt.encode())])
        rows = [_parse_reply(label, data) for data in replies]
        return rows or [ServerReply(label, "-", "-", 0, self._silent("the delete request"))]

    async def lookup(self, account: str) -> list[bytes]:
        """``$SYS.REQ.ACCOUNT.<A>.CLAIMS.LOOKUP``: every server's reply (empty bytes: that
        server does not hold the account). Unverified bytes; see :func:`trustkit.manage.store_pulled`."""
        from trustkit import nkeys

        if not nkeys.is_valid_public_key(account, PrefixByte.ACCOUNT):
            raise PushError(f"{account!r} is not an account public key")
        (replies,) = await self._gather([(LOOKUP_SUBJECT.format(account), b"")])
        return replies

    async def pack(self, on_item: Callable[[int], None] | None = None) -> list[tuple[str, str]]:
        """``$SYS.REQ.CLAIMS.PACK`` with an empty hash: every account JWT one server stores, as
        unverified ``(account key, token)`` pairs, in the order received.

        Raises :class:`PushError` when nobody answers (no full resolver), when the stream stops
        for ``timeout`` seconds before its end marker, or for a message that is not ``A…|jwt``.
        """
        nc = self._nc
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def on_msg(msg: Any) -> None:
            await queue.put(msg)

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=on_msg)
        out: list[tuple[str, str]] = []
        try:
            await nc.publish(PACK_SUBJECT, b"", reply=inbox)
            await nc.flush()
            while True:
                try:
                    msg = await asyncio.wait_for(queue.get(), self.timeout)
                except TimeoutError:
                    if out:
                        raise PushError(
                            f"{self.url}: the account list stopped after {len(out)} JWT(s) "
                            f"without its end marker (waited {self.timeout}s)"
                        ) from None
                    raise PushError(f"{self.url}: {self._silent(PACK_SUBJECT)}") from None
                if _is_status(msg):
                    raise PushError(
                        f"{self.url}: nobody answers {PACK_SUBJECT} (does a server run a full "
                        "nats-resolver, and is this the system account?)"
                    )
                if not msg.data:
                    break  # the end of the stream
                account, sep, token = bytes(msg.data).decode("utf-8", "replace").partition("|")
                if not sep or "|" in token:
                    raise PushError(f"{self.url}: a {PACK_SUBJECT} reply is not 'account|jwt'")
                out.append((account, token))
                if on_item is not None:
                    on_item(len(out))
        finally:
            await sub.unsubscribe()
        return out


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
    """Connect, send each account JWT to ``$SYS.REQ.CLAIMS.UPDATE`` (see
    :meth:`SystemClient.update`), disconnect. Pushing N accounts costs one wait, not N."""
    for token in account_jwts:
        decode(token, AccountClaims)  # refuse garbage before connecting
    async with SystemClient(
        url,
        user_jwt=user_jwt,
        user_key=user_key,
        timeout=timeout,
        expected_servers=expected_servers,
        connect_timeout=connect_timeout,
    ) as client:
        return await client.update(account_jwts)


# --- HTTP account servers (nsc's "account server URL" with an http(s) scheme) -------------------


def is_http_url(url: str) -> bool:
    """True for an account-server URL (``http://``/``https://``), as nsc tells them apart."""
    return url.strip().lower().startswith(("http://", "https://"))


def _account_url(base: str, account: str) -> str:
    """``<base>/accounts/<A>``, joined as nsc joins it (one slash, whatever the base ends with)."""
    return base.rstrip("/") + "/accounts/" + account


async def http_push_accounts(
    base_url: str, account_jwts: Sequence[str], *, timeout: float = 5.0
) -> list[ServerReply]:
    """POST each account JWT to ``<base_url>/accounts/<A>`` (``application/jwt``), as nsc pushes to
    an account server. One reply per account: the HTTP status is the code, the body the message.
    A connection failure is a reply with code 0 (the other accounts are still tried)."""
    import httpx

    host = base_url.split("://", 1)[-1].split("/", 1)[0]
    out: list[ServerReply] = []
    async with httpx.AsyncClient(timeout=timeout) as client:
        for token in account_jwts:
            account = decode(token, AccountClaims).sub  # refuse garbage before sending it
            try:
                resp = await client.post(
                    _account_url(base_url, account),
                    content=token.encode("ascii"),
                    headers={"Content-Type": "application/jwt"},
                )
            except httpx.HTTPError as exc:
                out.append(ServerReply(account, host, "", 0, f"{type(exc).__name__}: {exc}"))
                continue
            message = " ".join(resp.text.split())[:200] or resp.reason_phrase
            out.append(ServerReply(account, host, "", resp.status_code, message))
    return out


async def http_pull_accounts(
    base_url: str, accounts: Sequence[str], *, timeout: float = 5.0
) -> list[tuple[str, str]]:
    """GET ``<base_url>/accounts/<A>`` for each account key; (key, JWT) for those the server has
    (200). A 404 is skipped. Raises :class:`PushError` when the server cannot be reached or
    answers anything else, naming the URL."""
    import httpx

    found: list[tuple[str, str]] = []
    async with httpx.AsyncClient(timeout=timeout) as client:
        for account in accounts:
            url = _account_url(base_url, account)
            try:
                resp = await client.get(url)
            except httpx.HTTPError as exc:
                raise PushError(f"cannot reach the account server at {url}: {type(exc).__name__}") from None
            if resp.status_code == 404:
                continue
            if resp.status_code != 200:
                raise PushError(f"account server {url} answered {resp.status_code} {resp.reason_phrase}")
            found.append((account, resp.text.strip()))
    return found
