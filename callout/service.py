"""The auth-callout responder: an authorization request in, a signed (and sealed) response out.

:meth:`CalloutService.handle` is the whole protocol and touches no network, so it can be tested
with hand-made requests; :meth:`CalloutService.serve` / :meth:`CalloutService.run` wire it to a
NATS connection on ``$SYS.REQ.USER.AUTH``. Config mode (server-config ``auth_callout`` block):
the issuer account key signs the response and the user JWT, and the user JWT's ``aud`` names the
target account (nats-server ``auth_callout.go`` ``assignAccountAndPermissions``).

What the service checks that synadia-io/callout.go does not: the request's ``exp`` (with
``leeway``), an optional allow-list of server keys, that the signed ``server_id.xkey`` equals the
``Nats-Server-Xkey`` header, and that an xkey-configured service never answers a plaintext
request (its credentials crossed the wire in clear: the server is misconfigured).

Two kinds of "no":

* a request that cannot be trusted (undecodable, bad signature, expired, unknown server,
  encryption mismatch) gets **no reply** — there is nobody verified to answer to; the server
  times out and the client sees ``Authorization Violation``;
* a verified request whose user is refused (backend error, wrong password, no policy rule) gets a
  signed response with the generic :attr:`error_text` (the server logs it, the client only ever
  sees ``Authorization Violation``), or no reply with ``drop_refusals=True`` so that a guesser
  waits out the server's auth timeout on every try.

Every request ends in one :class:`AuditRecord` (``logging`` logger ``trustkit.callout.audit`` and
the optional ``audit`` callback) carrying a stable ``reason_code``, the per-connection
``user_nkey`` and the issued JWT's ``iat`` — what a later revocation of one person needs, since
nats-server revokes callout users by user key. Passwords and tokens never appear in a record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from callout.identity import Identity
from callout.policy import Policy
from trustkit import nkeys
from trustkit.errors import CalloutError, NKeyError, TokenError, TrustkitError
from trustkit.jwt.authorization import (
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
)
from trustkit.jwt.decoder import decode
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = [
    "AUTH_CALLOUT_SUBJECT",
    "DEFAULT_QUEUE_GROUP",
    "SERVER_XKEY_HEADER",
    "AuditRecord",
    "CalloutService",
    "PasswordBackend",
    "TokenBackend",
]

#: Where nats-server sends authorization requests (``auth_callout.go`` ``AuthCalloutSubject``).
AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
#: The header carrying the server's public curve key on an encrypted request.
SERVER_XKEY_HEADER = "Nats-Server-Xkey"
DEFAULT_QUEUE_GROUP = "trustkit-callout"
#: Config mode: the account users land in when neither the rule nor the policy names one.
GLOBAL_ACCOUNT = "$G"

_JWT_PREFIX = b"eyJ"

log = logging.getLogger("trustkit.callout")
audit_log = logging.getLogger("trustkit.callout.audit")


class PasswordBackend(Protocol):
    """Turns a username and password into an :class:`Identity`, or raises a ``CalloutError``."""

    async def authenticate(self, username: str, password: str) -> Identity: ...


@runtime_checkable
class TokenBackend(Protocol):
    """Optional: a backend that also accepts the CONNECT ``auth_token`` (an OIDC token...)."""

    async def authenticate_token(self, token: str) -> Identity: ...


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One request's outcome. ``outcome``: ``issued``, ``refused`` (error sent) or ``dropped``."""

    at: int
    outcome: str
    reason_code: str
    user_nkey: str = ""
    server_id: str = ""
    client_host: str = ""
    client_id: int = 0
    username: str = ""  # as presented in CONNECT (never the password)
    identity: str = ""  # Identity.subject
    source: str = ""  # Identity.source
    rule: str = ""
    account: str = ""
    issued_at: int = 0
    expires_at: int = 0
    encrypted: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Stop(Exception):
    """Internal: end of the request with this outcome."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def _drop(reason: str) -> _Stop:
    return _Stop("dropped", reason)


def _refuse(reason: str) -> _Stop:
    return _Stop("refused", reason)


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    if not headers:
        return ""
    lname = name.lower()
    for k, v in headers.items():
        if k.lower() == lname:
            return v
    return ""


class CalloutService:
    """The responder core (config mode). See the module docstring for the checks it makes.

    ``issuer_keypair``: the account key named ``auth_callout.issuer`` (with its seed); it signs
    responses and user JWTs. ``xkey``: the service's curve key (with seed) when the server config
    has ``auth_callout.xkey``. ``allowed_server_keys``: if given, only requests signed by these
    server (``N…``) keys are answered. ``now``: the clock (unix seconds, float or int).
    Raises :class:`CalloutError` (code ``callout_config``) on unusable keys.
    """

    def __init__(
        self,
        issuer_keypair: KeyPair,
        policy: Policy,
        backend: PasswordBackend,
        *,
        xkey: KeyPair | None = None,
        allowed_server_keys: Collection[str] | None = None,
        default_account: str = GLOBAL_ACCOUNT,
        now: Callable[[], float] = time.time,
        audit: Callable[[AuditRecord], None] | None = None,
        backend_timeout: float = 1.5,
        leeway: int = 2,
        drop_refusals: bool = False,
        error_text: str = "not authorized",
        max_in_flight: int = 256,
    ) -> None:
        if issuer_keypair.kind is not PrefixByte.ACCOUNT or not issuer_keypair.has_seed:
            raise CalloutError("the issuer must be an account key with its seed", code="callout_config")
        if xkey is not None and (xkey.kind is not PrefixByte.CURVE or not xkey.has_seed):
            raise CalloutError("xkey must be a curve (X) key with its seed", code="callout_config")
        if allowed_server_keys is not None:
            bad = [k for k in allowed_server_keys if not nkeys.is_valid_public_key(k, PrefixByte.SERVER)]
            if bad:
                raise CalloutError(f"not server public keys: {', '.join(bad)}", code="callout_config")
        if not error_text:
            raise CalloutError("error_text must not be empty", code="callout_config")
        self.issuer = issuer_keypair
        self.policy = policy
        self.backend = backend
        self.xkey = xkey
        self.allowed_server_keys = None if allowed_server_keys is None else frozenset(allowed_server_keys)
        self.default_account = default_account
        self._now = now
        self._audit = audit
        self.backend_timeout = backend_timeout
        self.leeway = leeway
        self.drop_refusals = drop_refusals
        self.error_text = error_text
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the protocol -----------------------------------------------------------------------
    async def handle(self, request: bytes, headers: Mapping[str, str] | None = None) -> bytes | None:
        """The reply to one authorization request, or None for "send nothing".

        Never raises for any input: every outcome is audited instead.
        """
        now = int(self._now())
        rec: dict[str, Any] = {"at": now}
        reply: bytes | None = None
        try:
            try:
                req = self._open_and_verify(request, headers, now, rec)
                reply = await self._answer(req, now, rec)
                outcome, reason = "issued", "allowed"
            except _Stop as stop:
                outcome, reason = stop.outcome, stop.reason
                if outcome == "refused" and self.drop_refusals:
                    outcome = "dropped"
                elif outcome == "refused":  # only raised once the request is verified
                    reply = self._response(rec["user_nkey"], rec["server_id"], now, error=self.error_text)
            if reply is not None and rec["encrypted"]:
                assert self.xkey is not None
                reply = self.xkey.seal(reply, rec["_server_xkey"])
        except Exception:  # a bug must not kill the subscription: say nothing, the server times out
            log.exception("auth callout: unexpected error handling a request")
            outcome, reason, reply = "dropped", "internal_error", None
        public = {k: v for k, v in rec.items() if not k.startswith("_")}
        self._emit(AuditRecord(outcome=outcome, reason_code=reason, **public))
        return reply

    def _open_and_verify(
        self, request: bytes, headers: Mapping[str, str] | None, now: int, rec: dict[str, Any]
    ) -> AuthorizationRequestClaims:
        body = bytes(request)
        encrypted = not body.startswith(_JWT_PREFIX)
        rec["encrypted"] = encrypted
        header_xkey = _header(headers, SERVER_XKEY_HEADER)
        if encrypted:
            if self.xkey is None:
                raise _drop("encrypted_without_xkey")
            if not header_xkey:
                raise _drop("xkey_header_missing")
            try:
                body = self.xkey.open(body, header_xkey)
            except NKeyError:
                raise _drop("decrypt_failed") from None
        elif self.xkey is not None:
            # the server seals every request once auth_callout.xkey is set: a plaintext one means
            # the credentials crossed the wire in clear
            raise _drop("encryption_required")
        try:
            token = body.decode("ascii")
            req = decode(token, AuthorizationRequestClaims)
        except (UnicodeDecodeError, TokenError):
            raise _drop("request_invalid") from None
        rec["user_nkey"] = req.user_nkey
        rec["server_id"] = req.server_id.id
        rec["client_host"] = req.client_info.host
        rec["client_id"] = req.client_info.id
        rec["username"] = req.connect_opts.user
        if req.aud != AUTH_REQUEST_AUDIENCE:
            raise _drop("request_audience")
        if req.iss != req.server_id.id:
            raise _drop("request_issuer")
        if self.allowed_server_keys is not None and req.iss not in self.allowed_server_keys:
            raise _drop("server_not_allowed")
        if not req.exp:
            raise _drop("request_no_expiry")
        if now > req.exp + self.leeway:
            raise _drop("request_expired")
        if req.validate(now=now).errors:
            raise _drop("request_invalid")
        if encrypted and req.server_id.xkey != header_xkey:
            raise _drop("xkey_mismatch")
        if not encrypted and req.server_id.xkey:
            raise _drop("xkey_mismatch")
        rec["_server_xkey"] = req.server_id.xkey
        return req

    async def _answer(self, req: AuthorizationRequestClaims, now: int, rec: dict[str, Any]) -> bytes:
        identity = await self._authenticate(req)
        rec["identity"] = identity.subject
        rec["source"] = identity.source
        decision = self.policy.decide(identity, now)
        if decision.rule:
            rec["rule"] = decision.rule
        if not decision.allowed:
            raise _refuse(decision.reason_code)
        account = decision.account if decision.account is not None else self.default_account
        rec["account"] = account
        user = UserClaims(
            sub=req.user_nkey,  # the binding: the server accepts only the key it generated
            name=identity.name or identity.subject,
            aud=account,  # config mode: the target account
            exp=decision.expires_at,
        )
        user.set_permission_limits(decision.permissions)
        # nats-server refuses a user JWT with any validation issue, warnings included
        issues = user.validate(now=now).issues
        if issues:
            log.warning("auth callout: policy produced an invalid user JWT: %s", "; ".join(map(str, issues)))
            raise _refuse("user_jwt_invalid")
        user_jwt = user.encode(self.issuer, iat=now)
        rec["issued_at"] = now
        rec["expires_at"] = decision.expires_at
        return self._response(req.user_nkey, req.server_id.id, now, jwt=user_jwt)

    async def _authenticate(self, req: AuthorizationRequestClaims) -> Identity:
        opts = req.connect_opts
        try:
            if opts.user:
                call = self.backend.authenticate(opts.user, opts.password)
            elif opts.auth_token and isinstance(self.backend, TokenBackend):
                call = self.backend.authenticate_token(opts.auth_token)
            else:
                raise _refuse("no_credentials")
            identity = await asyncio.wait_for(call, self.backend_timeout)
        except _Stop:
            raise
        except TimeoutError:
            log.warning("auth callout: backend did not answer within %.1fs", self.backend_timeout)
            raise _refuse("backend_timeout") from None
        except CalloutError as exc:
            # details (which user, which LDAP error) stay in the service's log
            log.info("auth callout: backend refused: %s (%s)", exc.code, exc.message)
            raise _refuse(exc.code) from None
        except Exception as exc:
            log.warning("auth callout: backend failed: %s", type(exc).__name__)
            raise _refuse("backend_error") from None
        if not isinstance(identity, Identity):
            log.warning("auth callout: backend returned %s, not an Identity", type(identity).__name__)
            raise _refuse("backend_error")
        return identity

    def _response(self, user_nkey: str, server_id: str, now: int, *, jwt: str = "", error: str = "") -> bytes:
        resp = AuthorizationResponseClaims(sub=user_nkey, aud=server_id, jwt=jwt, error=error)
        return resp.encode(self.issuer, iat=now).encode("ascii")

    def _emit(self, record: AuditRecord) -> None:
        level = logging.INFO if record.outcome == "issued" else logging.WARNING
        audit_log.log(
            level,
            "auth callout %s reason=%s user_nkey=%s username=%r identity=%r account=%s server=%s client=%s",
            record.outcome,
            record.reason_code,
            record.user_nkey,
            record.username,
            record.identity,
            record.account,
            record.server_id,
            record.client_host,
        )
        if self._audit is not None:
            try:
                self._audit(record)
            except Exception:
                log.exception("auth callout: audit callback failed")

    # --- NATS wiring ------------------------------------------------------------------------
    async def serve(self, nc: NATS, *, queue_group: str = DEFAULT_QUEUE_GROUP) -> Subscription:
        """Subscribe ``nc`` to ``$SYS.REQ.USER.AUTH`` (queue group) and answer; returns the subscription.

        Requests are handled concurrently (nats-py runs one subscription's callbacks one after
        another, so a slow backend would otherwise delay every login); beyond ``max_in_flight``
        requests are dropped (the server times them out).
        """

        async def on_msg(msg: Msg) -> None:
            if len(self._tasks) >= self.max_in_flight:
                self._emit(AuditRecord(at=int(self._now()), outcome="dropped", reason_code="overloaded"))
                return
            task = asyncio.create_task(self._reply(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        sub = await nc.subscribe(AUTH_CALLOUT_SUBJECT, queue=queue_group, cb=on_msg)
        # twice: nats-py 2.16 writes flush()'s PING straight to the socket while the SUB still
        # waits in its pending queue, so the first PONG can come back before the server has the
        # SUB; the second PING is written after the flusher has sent it
        await nc.flush()
        await nc.flush()
        return sub

    async def _reply(self, msg: Msg) -> None:
        reply = await self.handle(msg.data, msg.headers)
        if reply is not None and msg.reply:
            try:
                await msg.respond(reply)
            except Exception as exc:
                log.warning("auth callout: could not send the reply: %s", type(exc).__name__)

    async def run(
        self,
        nats_url: str,
        *,
        creds: str | None = None,
        user: str | None = None,
        password: str | None = None,
        queue_group: str = DEFAULT_QUEUE_GROUP,
        ready: asyncio.Event | None = None,
        stop: asyncio.Event | None = None,
        **connect_options: Any,
    ) -> None:
        """Connect as the callout's auth user (``creds`` file, or ``user``/``password``), serve until
        ``stop`` is set (or the task is cancelled), then drain. ``ready`` is set once subscribed.

        Raises :class:`trustkit.errors.NetworkError` if the first connection fails.
        """
        import nats
        from nats.errors import Error as NatsError

        from trustkit.errors import NetworkError

        try:
            nc = await nats.connect(
                nats_url,
                user_credentials=creds,
                user=user,
                password=password,
                name=connect_options.pop("name", "trustkit-callout"),
                **connect_options,
            )
        except (NatsError, OSError, TimeoutError) as exc:
            raise NetworkError(f"auth callout: cannot connect to {nats_url}: {type(exc).__name__}") from None
        try:
            await self.serve(nc, queue_group=queue_group)
            if ready is not None:
                ready.set()
            await (stop.wait() if stop is not None else asyncio.Future())
        finally:
            try:
                await nc.drain()
            except (NatsError, TrustkitError, OSError, TimeoutError):  # pragma: no cover - best effort
                await nc.close()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
