"""The server side of auth callout, as nats-server's ``server/auth_callout.go`` does it.

Who is called out (``server/auth.go`` ``processClientOrLeafAuthentication``, after the server's
own judgement of the CONNECT):

* **config mode** (``authorization { auth_callout { ... } }``): every client whose raw auth user
  (CONNECT ``nkey``, else ``user``, else ``[REDACTED]`` for a token) is not in ``auth_users``,
  even one with a valid password; an ``auth_users`` entry exempts a client only if it also names
  a configured user (a users list's user, an nkey user, the single user), as nats-server 2.15.1
  does, so a token client is always called out; a client that logged into an account other than
  ``$G`` only if ``allowed_accounts`` is empty or names that account. The request goes to the
  ``auth_callout.account`` (default ``$G``), the user JWT must be signed by ``issuer``, and its
  ``aud`` names the account the user lands in.
* **operator mode**: every client whose own JWT login succeeded (typically a "sentinel" user)
  in an account whose JWT has an ``authorization`` block with ``auth_users``, unless it is one
  of them (its public key; a CONNECT ``user`` or ``nkey`` takes precedence, as in nats-server's
  ``getRawAuthUser``). The request goes to that account, the response is signed by it or one of
  its signing keys, the user JWT by the target account or one of its signing keys, and the target
  must be the callout account or in its ``allowed_accounts`` (``*``: any).

The request (:class:`~trustkit.jwt.authorization.AuthorizationRequestClaims`, signed by the
broker's server key, ``exp`` = now + ``auth_timeout``) carries a fresh per-connection user key,
the client's info and its CONNECT credentials; with an xkey it is sealed (``xkv1``) for that
key, with the broker's own curve key in the ``Nats-Server-Xkey`` header and in
``server_id.xkey``. It is published inside the callout account on ``$SYS.REQ.USER.AUTH`` with a
fresh ``$SYS._INBOX.…`` reply subject, so it reaches the service's (queue) subscription. While it
waits, the connection processes nothing else (nats-server blocks the CONNECT), and reading is
paused. Any failure — no reply within ``auth_timeout``, an undecryptable, unsigned or
misaddressed response, an ``error``, a user JWT that does not check out — ends in
``-ERR 'Authorization Violation'`` and the connection closes; the reason goes to the log only.

A plain response must be signed by the config ``issuer``, or in operator mode by the callout
account or one of its signing keys (with ``issuer_account``, if set, naming the account); the
signer of a sealed response is not checked, since only the holder of the xkey's seed can seal
it. That is what nats-server 2.15.1 does (the tests pin it on both servers; its older source
checked the signer in operator mode only). Beyond nats-server: the callout user's JWT limits
(``payload``, ``subs``, ``data``) are applied like any JWT user's (nats-server 2.15 ignores
them), and its allowed connection types and a ``*`` revocation are checked at CONNECT.

Once admitted, the connection holds a :class:`~trustkit.trust.Grant` built from the callout's
user JWT, so a pushed account update that revokes its user key (``rev[key] >= iat``) or ``*``
closes it with ``User Authentication Revoked`` (``broker/system.py``), as nats-server does with
the registered nkey user's ``Issued`` time. Clients authorized in the callout account (the
service itself included) get a publish deny on ``$SYS.REQ.USER.AUTH`` merged into their
permissions, so that nobody can forge a request.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from broker import protocol as P
from broker.config import GLOBAL_ACCOUNT
from broker.tls import tls_version
from trustkit.errors import AuthorizationError, NKeyError, TokenError
from trustkit.jwt.account import AccountClaims, is_revoked
from trustkit.jwt.authorization import (
    AUTH_REQUEST_AUDIENCE,
    AuthorizationRequestClaims,
    AuthorizationResponseClaims,
    ClientInformation,
    ClientTLS,
    ConnectOptions,
    ServerID,
)
from trustkit.jwt.decoder import decode
from trustkit.jwt.types import CONNECTION_TYPES, UserPermissionLimits
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.trust import (
    CompiledPermissions,
    Grant,
    compile_permissions,
    expand_scope_template,
    grant_for,
    time_window_remaining,
)

if TYPE_CHECKING:
    from broker.server import Account, Broker, Conn

__all__ = [
    "AUTH_CALLOUT_SUBJECT",
    "AUTH_REQUEST_XKEY_HEADER",
    "AuthWait",
    "CalloutClient",
    "local_grant",
]

#: where requests go (``auth_callout.go`` ``AuthCalloutSubject``)
AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
#: the header with the server's public curve key on a sealed request
AUTH_REQUEST_XKEY_HEADER = "Nats-Server-Xkey"
#: ``jwt.AnyAccount`` in ``allowed_accounts``
ANY_ACCOUNT = "*"
_JWT_PREFIX = b"eyJ"
_INBOX_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def local_grant(user: str, account: str, limits: UserPermissionLimits | None = None) -> Grant:
    """A :class:`Grant` for a config-mode login (no JWTs): ``user`` names the user (``/connz``),
    ``account`` the config account; ``limits`` carries its permissions (None: unrestricted)."""
    upl = limits if limits is not None else UserPermissionLimits()
    return Grant(
        user=UserClaims(sub=user, name=user),
        account=AccountClaims(sub=account, name=account),
        permissions=compile_permissions(upl),
        limits=upl,
        expires_at=None,
        signing_key="",
    )


def _deny_publish(perms: CompiledPermissions, subject: str) -> CompiledPermissions:
    """nats-server ``mergeDenyPermissions(pub, …)``: add a publish deny, keep everything else."""
    deny = perms.pub.deny or ()
    if subject in deny:
        return perms
    return replace(perms, pub=replace(perms.pub, deny=(*deny, subject)))


class AuthWait:
    """What a connection sent after the CONNECT that is waiting for the callout: the operations
    already parsed, and a protocol error that followed them (processed once the callout ends)."""

    __slots__ = ("error", "ops")

    def __init__(self) -> None:
        self.ops: list[P.Op] = []
        self.error: P.ProtocolError | None = None


class _Refused(Exception):
    """The callout's answer does not admit the client; the message is for the log only."""


@dataclass(slots=True)
class _Pending:
    conn: Conn
    inbox: str
    user_nkey: str
    #: where the request went: the config account name, or the callout account's public key
    account: str
    #: the service's public xkey the request was sealed for ("" when not encrypting)
    xkey: str
    timer: asyncio.TimerHandle | None = None


class CalloutClient:
    """One per broker: decides who is delegated, sends requests, judges the responses."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        #: the server's curve key (INFO ``xkey``; requests are sealed with it)
        self.xkey = KeyPair.generate(PrefixByte.CURVE)
        self.pending: dict[str, _Pending] = {}
        cfg = broker.config
        self.active = cfg.operator_mode or cfg.auth_callout is not None
        # nats-server's reply inboxes are $SYS._INBOX.<server hash>.<random>
        self.inbox_prefix = "$SYS._INBOX." + self._random(8) + "."

    @staticmethod
    def _random(n: int) -> str:
        return "".join(secrets.choice(_INBOX_CHARS) for _ in range(n))

    # --- who is delegated -------------------------------------------------------------------
    def delegate(
        self, conn: Conn, opts: dict[str, Any], grant: Grant | None, account: Account | None
    ) -> bool:
        """Start the callout for this CONNECT if it is delegated; False leaves the server's own
        judgement (``grant``/``account``, None when refused) in force."""
        cfg = self.broker.config
        if cfg.operator_mode:
            # the client's own JWT login (the sentinel's) must succeed first, as in nats-server
            # 2.15.1 (a bad nonce signature is refused without a request)
            if grant is None or not grant.account.authorization.enabled():
                return False
            callout = grant.account
            user = _raw_auth_user(opts, grant.user_key)
            if user in callout.authorization.auth_users:
                return False
            xkey = callout.authorization.xkey
            self._start(conn, opts, user, callout.sub, callout.sub, xkey, claims=callout)
            return True
        ac = cfg.auth_callout
        if ac is None:
            return False
        acc = account.key if account is not None else GLOBAL_ACCOUNT
        if acc != GLOBAL_ACCOUNT and ac.allowed_accounts and acc not in ac.allowed_accounts:
            return False
        user = _raw_auth_user(opts, "")
        if user in ac.auth_users and cfg.is_configured_user(user):
            return False
        if ac.account != GLOBAL_ACCOUNT and ac.account not in cfg.accounts:
            # nats-server: no request at all, the client is refused at once
            self.broker.log(f'cid:{conn.cid} No valid account "{ac.account}" for auth callout request')
            conn.error_close(P.ERR_AUTHORIZATION)
            return True
        self._start(conn, opts, user, ac.account, ac.issuer, ac.xkey, claims=None)
        return True

    def harden(self, grant: Grant | None, account: Account) -> Grant | None:
        """A client authorized without the callout: in the callout account it may not publish
        requests (nats-server merges a deny on ``$SYS.REQ.USER.AUTH``)."""
        cfg = self.broker.config
        if grant is None:
            return None
        if cfg.operator_mode:
            if not grant.account.authorization.enabled() or account.key != grant.account.sub:
                return grant
        elif cfg.auth_callout is None or account.key != cfg.auth_callout.account:
            return grant
        return replace(grant, permissions=_deny_publish(grant.permissions, AUTH_CALLOUT_SUBJECT))

    # --- the request ------------------------------------------------------------------------
    def _start(
        self,
        conn: Conn,
        opts: dict[str, Any],
        user: str,
        account: str,
        subject: str,
        xkey: str,
        *,
        claims: AccountClaims | None,
    ) -> None:
        """Send the request for ``conn`` (raw auth ``user``) into ``account``, for ``subject``
        (the config issuer or the callout account), sealed for ``xkey`` if set."""
        broker = self.broker
        cfg = broker.config
        now = time.time()
        user_nkey = KeyPair.generate(PrefixByte.USER).public_key
        info = broker.info_base
        req = AuthorizationRequestClaims(
            sub=subject,
            aud=AUTH_REQUEST_AUDIENCE,
            exp=int(now + cfg.auth_timeout),
            server_id=ServerID(
                name=str(info.get("server_name", "")),
                host=cfg.host,
                id=broker.server_key.public_key,
                version=str(info.get("version", "")),
                xkey=self.xkey.public_key if xkey else "",
            ),
            user_nkey=user_nkey,
            client_info=ClientInformation(
                host=conn.client_ip,
                id=conn.cid,
                user=user,
                name=str(opts.get("name") or ""),
                kind="Client",
                type="nats",
                nonce=conn.nonce if opts.get("sig") else "",
            ),
            connect_opts=ConnectOptions(
                jwt=str(opts.get("jwt") or "") if cfg.operator_mode else "",  # config mode drops it
                nkey=str(opts.get("nkey") or ""),
                sig=str(opts.get("sig") or ""),
                auth_token=str(opts.get("auth_token") or ""),
                user=str(opts.get("user") or ""),
                password=str(opts.get("pass") or ""),
                name=str(opts.get("name") or ""),
                lang=str(opts.get("lang") or ""),
                version=str(opts.get("version") or ""),
                protocol=opts.get("protocol", 0) if isinstance(opts.get("protocol"), int) else 0,
            ),
            client_tls=_client_tls(conn),
        )
        body = req.encode(broker.server_key, iat=int(now)).encode("ascii")
        headers = None
        if xkey:
            try:
                body = self.xkey.seal(body, xkey)
            except NKeyError as exc:
                broker.log(f"cid:{conn.cid} auth callout: cannot encrypt the request: {exc}")
                conn.error_close(P.ERR_AUTHORIZATION)
                return
            headers = f"NATS/1.0\r\n{AUTH_REQUEST_XKEY_HEADER}: {self.xkey.public_key}\r\n\r\n".encode()
        inbox = self.inbox_prefix + self._random(16)
        pending = _Pending(conn, inbox, user_nkey, account, xkey)
        self.pending[inbox] = pending
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(cfg.auth_timeout, self._expire, inbox)
        conn.hold()  # nats-server blocks the client's reads until the callout is over
        # no fast failure without a subscriber: the client waits out auth_timeout, as on nats-server
        broker.deliver(self._account(account, claims), None, AUTH_CALLOUT_SUBJECT, inbox, headers, body)

    def on_reply(self, account: Account, subject: str, payload: bytes) -> bool:
        """A message published in ``account`` to ``subject``: True if it answered a pending request."""
        pending = self.pending.get(subject)
        if pending is None or pending.account != account.key:
            return False
        del self.pending[subject]
        if pending.timer is not None:
            pending.timer.cancel()
        # judged on the next loop turn, not inside the service's publish
        asyncio.get_running_loop().call_soon(self._resolve, pending, bytes(payload))
        return True

    def _expire(self, inbox: str) -> None:
        pending = self.pending.pop(inbox, None)
        if pending is None or pending.conn.closed:
            return
        self.broker.log(
            f"cid:{pending.conn.cid} authorization callout response not received in time on account "
            f"{pending.account!r}"
        )
        pending.conn.error_close(P.ERR_AUTHORIZATION)

    def _resolve(self, pending: _Pending, payload: bytes) -> None:
        conn = pending.conn
        if conn.closed:
            return
        try:
            grant, account = self._judge(pending, payload, int(time.time()))
        except _Refused as exc:
            self.broker.log(f"cid:{conn.cid} auth callout refused: {exc}")
            conn.error_close(P.ERR_AUTHORIZATION)
            return
        conn.admit(account, grant)
        conn.resume_after_auth()

    # --- the response -----------------------------------------------------------------------
    def _judge(self, pending: _Pending, payload: bytes, now: int) -> tuple[Grant, Account]:
        """``decodeResponse`` + ``processReply``: the grant for the user JWT in the response."""
        broker = self.broker
        cfg = broker.config
        if not payload:
            raise _Refused("no reason supplied")
        encrypted = False
        if pending.xkey and not payload.startswith(_JWT_PREFIX):
            try:
                payload = self.xkey.open(payload, pending.xkey)
            except NKeyError as exc:
                raise _Refused(f"error decrypting auth callout response: {exc}") from None
            encrypted = True
        try:
            resp = decode(payload.decode("ascii"), AuthorizationResponseClaims)
        except (UnicodeDecodeError, TokenError) as exc:
            raise _Refused(f"authorization response not valid: {exc}") from None
        issues = resp.validate(now=now).issues
        if issues:
            raise _Refused(f"authorization response had validation errors: {issues[0]}")
        if resp.sub != pending.user_nkey:
            raise _Refused("auth callout response is not for expected user")
        if resp.aud != broker.server_key.public_key:
            raise _Refused("auth callout response is not for server")
        if resp.error:
            raise _Refused(f"auth callout service returned an error: {resp.error}")
        callout: AccountClaims | None = None
        if cfg.operator_mode:
            callout = broker.lookup_account(pending.account)
            if callout is None:
                raise _Refused(f"callout account {pending.account} is no longer known")
            if not encrypted and not self._may_sign(callout, resp):
                raise _Refused("auth callout signing key is unknown")
        else:
            assert cfg.auth_callout is not None
            if not encrypted and resp.iss != cfg.auth_callout.issuer:
                raise _Refused("auth callout signing key is unknown")
        try:
            user = decode(resp.jwt, UserClaims)
        except TokenError as exc:
            raise _Refused(f"user JWT not valid: {exc}") from None
        if user.proxy_required:  # the broker has no trusted proxies
            raise _Refused("authentication requires a proxy")
        issues = user.validate(now=now).issues
        if issues:
            raise _Refused(f"error validating user JWT: {issues[0]}")
        if user.sub != pending.user_nkey:
            raise _Refused(f"expected authorized user of {pending.user_nkey!r} but got {user.sub!r}")
        try:
            remaining = time_window_remaining(user, now)
        except AuthorizationError:
            raise _Refused("authorized user outside of valid connect times") from None
        if callout is not None:
            return self._operator_grant(user, callout, remaining, now)
        return self._config_grant(user, remaining, now)

    def _may_sign(self, callout: AccountClaims, resp: AuthorizationResponseClaims) -> bool:
        """The response signer: the callout account (unless its operator is strict) or one of its
        signing keys; ``issuer_account``, when set, must name the account."""
        if resp.issuer_account and resp.issuer_account != callout.sub:
            return False
        if resp.iss in callout.signing_keys:
            return True
        return resp.iss == callout.sub and not self.broker.operators.is_strict(callout)

    def _config_grant(self, user: UserClaims, remaining: int | None, now: int) -> tuple[Grant, Account]:
        cfg = self.broker.config
        ac = cfg.auth_callout
        assert ac is not None
        # getIssuerAccount: the configured issuer signs, and issuer_account is not allowed here
        if user.issuer_account:
            raise _Refused("attempted to use issuer_account in config mode")
        if user.iss != ac.issuer:
            raise _Refused(f"wrong issuer for auth callout response, expected {ac.issuer} got {user.iss}")
        name = user.aud  # config mode: placement by the user JWT's audience
        if name != GLOBAL_ACCOUNT and name not in cfg.accounts:
            raise _Refused(f"no valid account {name!r} for auth callout response")
        _check_connection_type(user.permission_limits)
        claims = AccountClaims(sub=name, name=name)  # no default permissions in config mode
        grant = grant_for(user, claims, user.permission_limits, window_remaining=remaining, now=now)
        return self._finish(grant, name, ac.account, None)

    def _operator_grant(
        self, user: UserClaims, callout: AccountClaims, remaining: int | None, now: int
    ) -> tuple[Grant, Account]:
        broker = self.broker
        target_key = user.issuer_account or user.iss
        if target_key != callout.sub and not _allowed(callout.authorization.allowed_accounts, target_key):
            raise _Refused(f"account {target_key!r} not permitted as valid account option for auth callout")
        target = broker.lookup_account(target_key)
        if target is None or not broker.operators.is_trusted_issuer(target.iss):
            raise _Refused(f"no valid account {target_key!r} for auth callout response")
        if target.is_expired(now):
            raise _Refused(f"account {target_key!r} has expired")
        limits = user.permission_limits
        role: str | None = None
        if user.iss in target.signing_keys:
            scope = target.signing_keys[user.iss]
            if scope is not None:
                if not user.has_empty_permissions():
                    raise _Refused("scoped users require no permissions or limits set")
                try:
                    limits = expand_scope_template(scope.template, user, target)
                except AuthorizationError as exc:
                    raise _Refused(f"user JWT generated invalid permissions: {exc.message}") from None
                role = scope.role
        elif user.iss != target.sub or broker.operators.is_strict(target):
            raise _Refused(f"user JWT issuer {user.iss!r} is not known")
        _check_connection_type(limits)
        if is_revoked(target.revocations, user.sub, user.iat):
            raise _Refused("user authentication revoked")
        grant = grant_for(user, target, limits, window_remaining=remaining, now=now, role=role)
        return self._finish(grant, target.sub, callout.sub, target)

    def _finish(
        self, grant: Grant, key: str, callout_account: str, claims: AccountClaims | None
    ) -> tuple[Grant, Account]:
        if key == callout_account:
            grant = replace(grant, permissions=_deny_publish(grant.permissions, AUTH_CALLOUT_SUBJECT))
        return grant, self._account(key, claims)

    def _account(self, key: str, claims: AccountClaims | None) -> Account:
        """The broker's account ``key``; its claims are set only if it is new (a pushed update
        reaches it through the system account, not through a login)."""
        return self.broker.accounts.get(key) or self.broker.account(key, claims)


def _raw_auth_user(opts: dict[str, Any], jwt_user: str) -> str:
    """nats-server ``getRawAuthUser``: CONNECT nkey, else user, else the JWT's public key (set only
    once the JWT login succeeded), else ``[REDACTED]`` for a token."""
    if opts.get("nkey"):
        return str(opts["nkey"])
    if opts.get("user"):
        return str(opts["user"])
    if opts.get("jwt"):
        return jwt_user
    if opts.get("auth_token"):
        return "[REDACTED]"
    return ""


def _allowed(allowed_accounts: list[str], key: str) -> bool:
    """``isAllowedAcount``: a lone ``*`` allows any account, otherwise an exact match."""
    if allowed_accounts == [ANY_ACCOUNT]:
        return True
    return key in allowed_accounts


def _check_connection_type(limits: UserPermissionLimits) -> None:
    """The broker serves plain NATS clients (``STANDARD``); unknown types alone refuse."""
    if limits.allowed_connection_types:
        known = [t for t in limits.allowed_connection_types if t in CONNECTION_TYPES]
        if not known:
            raise _Refused("authorized user using invalid connection type")
        if "STANDARD" not in known:
            raise _Refused("connection type STANDARD not allowed")


def _client_tls(conn: Conn) -> ClientTLS | None:
    """``client_tls``: version, cipher and the peer certificate (PEM) once the handshake is done.

    Python's ssl module exposes only the peer's leaf certificate, so ``verified_chains`` stays
    empty and ``certs`` holds that one certificate."""
    transport = conn.transport
    if transport is None or conn.tls_pending:
        return None
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return None
    cipher = obj.cipher()
    der = obj.getpeercert(binary_form=True)
    return ClientTLS(
        version=tls_version(obj),
        cipher=cipher[0] if cipher else "",
        certs=[ssl.DER_cert_to_PEM_cert(der)] if der else [],
    )
