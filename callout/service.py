"""The auth-callout responder: an authorization request in, a signed (and sealed) response out.

:meth:`CalloutService.handle` is the whole protocol and touches no network, so it can be tested
with hand-made requests; :meth:`CalloutService.serve` / :meth:`CalloutService.run` wire it to a
NATS connection on ``$SYS.REQ.USER.AUTH``. Both server modes, as nats-server ``auth_callout.go``
accepts them:

* **config mode** (server-config ``auth_callout`` block): the ``issuer`` account key signs the
  response and the user JWT; ``issuer_account`` is forbidden; the user JWT's ``aud`` names the
  target account (``assignAccountAndPermissions``: placement by ``aud``).
* **operator mode** (the callout account JWT's ``authorization`` block): the response is signed by
  the callout account or one of its signing keys (then ``issuer_account`` names the account); the
  user JWT is signed by the *target* account or one of its signing keys, with ``issuer_account``
  set to the target account when a signing key signs (``getIssuerAccount``: the placement is the
  issuer account, which must be the callout account or in its ``allowed_accounts``). ``aud`` is
  not used.

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
:class:`AuditRecord` lives in :mod:`callout.audit` (re-exported here).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import nacl.bindings
import nacl.exceptions

from callout.audit import AuditRecord
from callout.identity import Identity
from callout.policy import Policy
from trustkit import nkeys
from trustkit.errors import CalloutError, NKeyError, SealError, TokenError, TrustkitError
from trustkit.jwt.authorization import (
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
)
from trustkit.jwt.decoder import decode
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import XKEY_VERSION, KeyPair, PrefixByte

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

__all__ = [
    "AUTH_CALLOUT_SUBJECT",
    "DEFAULT_QUEUE_GROUP",
    "MODES",
    "SERVER_XKEY_HEADER",
    "AccountSigner",
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
#: The two server modes (see the module docstring).
MODES = ("config", "operator")

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
class AccountSigner:
    """Operator mode: who signs the user JWTs of one target account.

    ``account`` is the account's public key; ``key`` (with its seed) is that account key or one of
    its *unscoped* signing keys (a scoped key would make the server replace the policy's
    permissions with the scope's template). ``name`` is for audit records.
    Raises :class:`CalloutError` (``callout_config``) on unusable keys.
    """

    account: str
    key: KeyPair
    name: str = ""

    def __post_init__(self) -> None:
        if not nkeys.is_valid_public_key(self.account, PrefixByte.ACCOUNT):
            raise CalloutError(f"{self.account!r} is not an account public key", code="callout_config")
        if self.key.kind is not PrefixByte.ACCOUNT or not self.key.has_seed:
            raise CalloutError(
                f"account {self.name or self.account}: the signer must be an account key with its seed",
                code="callout_config",
            )

    @property
    def issuer_account(self) -> str:
        """``issuer_account`` for a user JWT signed by :attr:`key` ("" when it is the account key)."""
        return "" if self.key.public_key == self.account else self.account


def _creds_callbacks(path: str) -> dict[str, Any]:
    """nats-py ``user_jwt_cb``/``signature_cb`` reading the creds file at ``path``.

    Raises :class:`trustkit.errors.CredsError` now if the file is unusable.
    """
    import base64
    from pathlib import Path

    from trustkit.creds import parse_creds

    def load() -> tuple[str, KeyPair]:
        try:
            creds = parse_creds(Path(path).read_bytes())
        except OSError as exc:
            from trustkit.errors import CredsError

            raise CredsError(f"cannot read the creds file {path}: {exc.strerror or exc}") from None
        creds.check()
        assert creds.jwt is not None
        return creds.jwt, creds.keypair()

    load()

    def user_jwt() -> bytes:
        return load()[0].encode()

    def sign(nonce: str) -> bytes:
        return base64.b64encode(load()[1].sign(nonce.encode()))

    return {"user_jwt_cb": user_jwt, "signature_cb": sign}


class _Boxes:
    """``xkv1`` open and seal with the service's curve key, byte for byte ``KeyPair.open``/``seal``
    (Go ``nkeys`` ``Open``/``Seal``), with each peer's X25519 shared key computed once.

    ``crypto_box`` is ``crypto_box_beforenm`` (the scalar multiplication: ~90% of its cost) then
    ``crypto_box_*_afternm``; a server's xkey lives as long as the server process, so its shared key
    is kept (for at most ``size`` peers, oldest dropped first). Raises :class:`NKeyError` for a key
    that is not a curve public key and :class:`SealError` for a box that does not open.
    """

    def __init__(self, key: KeyPair, size: int = 64) -> None:
        self._secret = nkeys.decode_seed(key.seed)[1]
        self._size = size
        self._shared: dict[str, bytes] = {}

    def _key(self, peer: str) -> bytes:
        shared = self._shared.get(peer)
        if shared is None:
            try:
                raw = nkeys.decode_public(peer, PrefixByte.CURVE)[1]
            except NKeyError:
                raise NKeyError("nkeys: not a valid curve public key") from None
            shared = nacl.bindings.crypto_box_beforenm(raw, self._secret)
            if len(self._shared) >= self._size:
                del self._shared[next(iter(self._shared))]
            self._shared[peer] = shared
        return shared

    def open(self, data: bytes, sender: str) -> bytes:
        shared = self._key(sender)
        if len(data) <= len(XKEY_VERSION) + 24:
            raise SealError("nkeys: encrypted input is not valid")
        if data[:4] != XKEY_VERSION:
            raise SealError("nkeys: encrypted input wrong version")
        try:
            return bytes(nacl.bindings.crypto_box_open_easy_afternm(data[28:], data[4:28], shared))
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise SealError("nkeys: could not decrypt input") from None

    def seal(self, data: bytes, recipient: str) -> bytes:
        nonce = secrets.token_bytes(24)
        return XKEY_VERSION + nonce + nacl.bindings.crypto_box_easy_afternm(data, nonce, self._key(recipient))


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
    """The responder core. See the module docstring for the checks it makes.

    ``issuer_keypair`` (with its seed) signs the responses. Config mode: the account key named
    ``auth_callout.issuer``; it signs the user JWTs too. Operator mode: the callout account's key
    or one of its signing keys; ``callout_account`` is then the callout account's public key
    (default: the issuer's), and ``accounts`` maps each account a policy may name (by name and by
    public key) to its :class:`AccountSigner`; users without a named account land in the callout
    account, signed by the issuer.

    ``backend`` answers user/password logins, ``token_backend`` logins with an ``auth_token``
    (default: ``backend`` if it implements :class:`TokenBackend`); with ``token_passwords`` an
    ``auth_token`` holding a colon is ``USER:PASSWORD`` for ``backend``; ``backend_label`` and
    ``token_backend_label`` name them in audit records and metrics. ``xkey``: the service's
    curve key (with seed) when the server has an xkey configured. ``allowed_server_keys``: if
    given, only requests signed by these server (``N…``) keys are answered. ``now``: the clock
    (unix seconds). Raises :class:`CalloutError` (code ``callout_config``) on unusable settings.
    """

    def __init__(
        self,
        issuer_keypair: KeyPair,
        policy: Policy,
        backend: PasswordBackend | None,
        *,
        mode: str = "config",
        callout_account: str | None = None,
        accounts: Mapping[str, AccountSigner] | None = None,
        token_backend: TokenBackend | None = None,
        backend_label: str = "backend",
        token_backend_label: str | None = None,
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
        token_passwords: bool = False,
    ) -> None:
        def bad(message: str) -> CalloutError:
            return CalloutError(message, code="callout_config")

        if mode not in MODES:
            raise bad(f"mode must be 'config' or 'operator', not {mode!r}")
        if issuer_keypair.kind is not PrefixByte.ACCOUNT or not issuer_keypair.has_seed:
            raise bad("the issuer must be an account key with its seed")
        if xkey is not None and (xkey.kind is not PrefixByte.CURVE or not xkey.has_seed):
            raise bad("xkey must be a curve (X) key with its seed")
        if allowed_server_keys is not None:
            wrong = [k for k in allowed_server_keys if not nkeys.is_valid_public_key(k, PrefixByte.SERVER)]
            if wrong:
                raise bad(f"not server public keys: {', '.join(wrong)}")
        if not error_text:
            raise bad("error_text must not be empty")
        if token_backend is None and isinstance(backend, TokenBackend):
            token_backend = backend
            token_backend_label = token_backend_label or backend_label
        if backend is None and token_backend is None:
            raise bad("no backend: configure one for passwords or tokens")
        if token_passwords and backend is None:
            raise bad("token_passwords needs a backend that answers passwords")
        if max_in_flight < 1 or backend_timeout <= 0 or leeway < 0:
            raise bad("max_in_flight must be >= 1, backend_timeout > 0 and leeway >= 0")
        if mode == "config":
            # nats-server: the user JWT must be issued by the configured issuer itself, and
            # issuer_account is refused ("attempted to use issuer_account")
            if callout_account not in (None, issuer_keypair.public_key):
                raise bad("config mode: the issuer key must be the callout account key itself")
            if accounts:
                raise bad("config mode: accounts are named by the policy, not given signers")
        callout_account = callout_account or issuer_keypair.public_key
        if not nkeys.is_valid_public_key(callout_account, PrefixByte.ACCOUNT):
            raise bad(f"callout_account {callout_account!r} is not an account public key")
        self.mode = mode
        self.issuer = issuer_keypair
        self.callout_account = callout_account
        self.policy = policy
        self.backend = backend
        self.token_backend = token_backend
        self.backend_label = backend_label
        self.token_backend_label = token_backend_label or "token"
        self.token_passwords = token_passwords
        self.xkey = xkey
        self._boxes = _Boxes(xkey) if xkey is not None else None
        self.allowed_server_keys = None if allowed_server_keys is None else frozenset(allowed_server_keys)
        self.default_account = default_account
        self._own = AccountSigner(callout_account, issuer_keypair, "")
        self.accounts: dict[str, AccountSigner] = dict(accounts or {})
        self._now = now
        self._audit = audit
        self.backend_timeout = backend_timeout
        self.leeway = leeway
        self.drop_refusals = drop_refusals
        self.error_text = error_text
        self.max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()
        #: the NATS connection while :meth:`run` runs (for readiness checks)
        self.nc: NATS | None = None

    @property
    def connected(self) -> bool:
        """True while :meth:`run` holds a connected NATS connection."""
        return self.nc is not None and bool(self.nc.is_connected)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def expected_request_subject(self) -> str:
        """The request ``sub`` nats-server writes: the config issuer, or the callout account."""
        return self.issuer.public_key if self.mode == "config" else self.callout_account

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
                assert self._boxes is not None
                reply = self._boxes.seal(reply, rec["_server_xkey"])
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
            if self._boxes is None:
                raise _drop("encrypted_without_xkey")
            if not header_xkey:
                raise _drop("xkey_header_missing")
            try:
                body = self._boxes.open(body, header_xkey)
            except NKeyError:
                raise _drop("decrypt_failed") from None
        elif self.xkey is not None:
            # the server seals every request once an xkey is configured: a plaintext one means
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
        if req.sub != self.expected_request_subject:
            # the request is for another issuer/account: the server would refuse our signature
            raise _drop("request_subject")
        rec["_server_xkey"] = req.server_id.xkey
        return req

    def _signer(self, account: str | None) -> AccountSigner | None:
        """Operator mode: the signer for the policy's account (None: the callout account)."""
        if account is None or account in (self.callout_account, self._own.name):
            return self._own
        return self.accounts.get(account)

    async def _answer(self, req: AuthorizationRequestClaims, now: int, rec: dict[str, Any]) -> bytes:
        identity = await self._authenticate(req, rec)
        rec["identity"] = identity.subject
        rec["source"] = identity.source
        decision = self.policy.decide(identity, now)
        if decision.rule:
            rec["rule"] = decision.rule
        if not decision.allowed:
            raise _refuse(decision.reason_code)
        user = UserClaims(
            sub=req.user_nkey,  # the binding: the server accepts only the key it generated
            name=identity.name or identity.subject,
            exp=decision.expires_at,
        )
        if self.mode == "config":
            account = decision.account if decision.account is not None else self.default_account
            rec["account"] = account
            user.aud = account  # config mode: the target account
            signer_key = self.issuer
        else:
            signer = self._signer(decision.account)
            if signer is None:
                log.warning("auth callout: no signer for the policy's account %r", decision.account)
                rec["account"] = decision.account or ""
                raise _refuse("account_unknown")
            rec["account"] = signer.name or signer.account
            rec["account_key"] = signer.account
            user.issuer_account = signer.issuer_account
            signer_key = signer.key
        user.set_permission_limits(decision.permissions)
        # nats-server refuses a user JWT with any validation issue, warnings included
        issues = user.validate(now=now).issues
        if issues:
            log.warning("auth callout: policy produced an invalid user JWT: %s", "; ".join(map(str, issues)))
            raise _refuse("user_jwt_invalid")
        user_jwt = user.encode(signer_key, iat=now)
        rec["issued_at"] = now
        rec["expires_at"] = decision.expires_at
        return self._response(req.user_nkey, req.server_id.id, now, jwt=user_jwt)

    async def _authenticate(self, req: AuthorizationRequestClaims, rec: dict[str, Any]) -> Identity:
        opts = req.connect_opts
        call: Awaitable[Identity]
        if opts.user and self.backend is not None:
            call = self.backend.authenticate(opts.user, opts.password)
            rec["backend"] = self.backend_label
        elif opts.auth_token and self.token_passwords and ":" in opts.auth_token and self.backend is not None:
            # USER:PASSWORD in the token (split at the first colon: a password may hold colons,
            # a username may not; no OIDC or device token contains one)
            user, _, password = opts.auth_token.partition(":")
            call = self.backend.authenticate(user, password)
            rec["username"] = user  # never the password
            rec["backend"] = self.backend_label
        elif opts.auth_token and self.token_backend is not None:
            call = self.token_backend.authenticate_token(opts.auth_token)
            rec["backend"] = self.token_backend_label
        else:
            raise _refuse("no_credentials")
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.backend_timeout):  # no extra task, unlike wait_for
                identity = await call
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
        finally:
            rec["backend_seconds"] = time.perf_counter() - t0
        if not isinstance(identity, Identity):
            log.warning("auth callout: backend returned %s, not an Identity", type(identity).__name__)
            raise _refuse("backend_error")
        return identity

    def _response(self, user_nkey: str, server_id: str, now: int, *, jwt: str = "", error: str = "") -> bytes:
        resp = AuthorizationResponseClaims(sub=user_nkey, aud=server_id, jwt=jwt, error=error)
        if self.mode == "operator" and self.issuer.public_key != self.callout_account:
            resp.issuer_account = self.callout_account  # signed by a signing key of the account
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
        While it runs, :attr:`nc` is the connection (nats-py reconnects and resubscribes on its own).

        Raises :class:`trustkit.errors.NetworkError` if the first connection fails.
        """
        import nats
        from nats.errors import Error as NatsError

        from trustkit.errors import NetworkError

        if creds is not None:
            # trustkit's creds reader and signer, not nats-py's (which needs the nkeys package);
            # the file is read on every (re)connect, so a rotated creds file is picked up
            connect_options.update(_creds_callbacks(creds))
        try:
            nc = await nats.connect(
                nats_url,
                user=user,
                password=password,
                name=connect_options.pop("name", "trustkit-callout"),
                **connect_options,
            )
        except (NatsError, OSError, TimeoutError) as exc:
            raise NetworkError(f"auth callout: cannot connect to {nats_url}: {type(exc).__name__}") from None
        self.nc = nc
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
            self.nc = None
