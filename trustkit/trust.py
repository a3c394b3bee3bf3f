"""The chain of trust: the single place a user connection is judged (broker and callout use it).

:func:`authorize_user` takes a user JWT, the CONNECT nonce signature, an account resolver, the
trusted operators and the time, and returns a :class:`Grant` (account, compiled permissions,
limits, expiry) or raises :class:`~trustkit.errors.AuthorizationError` with a precise code.
The order of checks mirrors nats-server's ``processClientOrLeafAuthentication`` (server/auth.go).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pybase64

from trustkit import nkeys
from trustkit import subject as subjects
from trustkit.errors import AuthorizationError, NKeyError, TokenError
from trustkit.jwt.account import AccountClaims, is_revoked
from trustkit.jwt.decoder import SIGNATURE_FAILED, decode, decode_with_deferred_signature
from trustkit.jwt.operator import OperatorClaims
from trustkit.jwt.types import CONNECTION_TYPES, Permission, UserPermissionLimits
from trustkit.jwt.user import UserClaims
from trustkit.nkeys import KeyPair, PrefixByte

__all__ = [
    "AccountResolver",
    "CompiledPermissions",
    "Grant",
    "PendingGrant",
    "SubjectPermission",
    "TrustedOperators",
    "authorize_user",
    "begin_authorization",
    "compile_permissions",
    "expand_scope_template",
    "grant_for",
    "sign_nonce",
    "verify_nonce_signature",
]

#: nats-server defaults for ``allow_responses`` given without values.
DEFAULT_RESPONSE_MAX_MSGS = 1
DEFAULT_RESPONSE_TTL_NS = 2 * 60 * 1_000_000_000
#: nats-server caps the subjects one templated permission may expand to.
MAX_TEMPLATE_EXPANSIONS = 4096

AccountResolver = Callable[[str], AccountClaims | None]


# --- operators ----------------------------------------------------------------------------------


class TrustedOperators:
    """The operators a server trusts, with their keys allowed to sign accounts."""

    __slots__ = ("_keys", "operators")

    def __init__(self, operators: Iterable[OperatorClaims]) -> None:
        self.operators = tuple(operators)
        self._keys: set[str] = set()
        for op in self.operators:
            self._keys.update(op.trusted_keys())

    @classmethod
    def from_jwts(cls, tokens: Iterable[str]) -> TrustedOperators:
        """Verify operator JWTs (signature, self-signed or by one of their signing keys)."""
        ops = []
        for token in tokens:
            op = decode(token, OperatorClaims)
            if op.iss != op.sub and op.iss not in op.signing_keys:
                raise AuthorizationError("operator_untrusted", "operator JWT is not self-signed")
            ops.append(op)
        return cls(ops)

    def is_trusted_issuer(self, key: str) -> bool:
        return key in self._keys

    def is_strict(self, account: AccountClaims) -> bool:
        """True if the operator that signed ``account`` requires signing keys."""
        return any(
            op.strict_signing_key_usage and (account.iss == op.sub or account.iss in op.signing_keys)
            for op in self.operators
        )


# --- permissions --------------------------------------------------------------------------------


def _split_queue(entries: Iterable[str]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    plain: list[str] = []
    queued: list[tuple[str, str]] = []
    for entry in entries:
        parts = entry.split()
        if len(parts) == 1 and subjects.is_valid(parts[0]):
            plain.append(parts[0])
        elif len(parts) == 2 and subjects.is_valid(parts[0]):
            queued.append((parts[0], parts[1]))
        # anything else is invalid and ignored, as nats-server logs and skips it
    return tuple(plain), tuple(queued)


def _queue_matches(queue: str, names: list[str]) -> bool:
    # nats-server queueMatches: literal name first, then wildcard queue names as patterns.
    return any(queue == q or (subjects.has_wildcards(q) and subjects.is_subset(queue, q)) for q in names)


@dataclass(frozen=True, slots=True)
class SubjectPermission:
    """One direction's allow/deny lists. ``allow=None``: no allow list (everything allowed)."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None
    allow_queues: tuple[tuple[str, str], ...] = ()
    deny_queues: tuple[tuple[str, str], ...] = ()

    def publish_allowed(self, subject: str) -> bool:
        """nats-server ``pubAllowedFullCheck`` without response tracking."""
        allowed = True
        if self.allow is not None:
            allowed = any(subjects.matches(p, subject) for p in self.allow)
        if allowed and self.deny:
            allowed = not any(subjects.matches(p, subject) for p in self.deny)
        return allowed

    def subscribe_allowed(self, subject: str, queue: str | None = None) -> bool:
        """nats-server ``canSubscribe``: the subscription subject's tokens are matched literally."""
        allowed = True
        if self.allow is not None:
            allowed = any(subjects.matches(p, subject) for p in self.allow)
            if queue:
                qnames = [q for p, q in self.allow_queues if subjects.matches(p, subject)]
                if qnames:
                    allowed = _queue_matches(queue, qnames)
        if allowed and self.deny is not None:
            allowed = not any(subjects.matches(p, subject) for p in self.deny)
            if queue:
                qnames = [q for p, q in self.deny_queues if subjects.matches(p, subject)]
                if qnames:
                    allowed = not _queue_matches(queue, qnames)
        return allowed


@dataclass(frozen=True, slots=True)
class CompiledPermissions:
    """Permissions ready for per-message checks; ``resp_*`` set when responses are allowed."""

    pub: SubjectPermission = field(default_factory=SubjectPermission)
    sub: SubjectPermission = field(default_factory=SubjectPermission)
    resp_max: int | None = None
    resp_ttl_ns: int | None = None

    @property
    def unrestricted(self) -> bool:
        return self.pub == SubjectPermission() and self.sub == SubjectPermission() and self.resp_max is None

    def can_publish(self, subject: str) -> bool:
        return self.pub.publish_allowed(subject)

    def can_subscribe(self, subject: str, queue: str | None = None) -> bool:
        return self.sub.subscribe_allowed(subject, queue)


def _compile_direction(perm: Permission, *, queues: bool) -> SubjectPermission | None:
    if not perm.allow and not perm.deny:
        return None
    allow, allow_q = _split_queue(perm.allow)
    deny, deny_q = _split_queue(perm.deny)
    if not queues:
        allow_q, deny_q = (), ()
    return SubjectPermission(
        allow=(allow + tuple(p for p, _ in allow_q)) if perm.allow else None,
        deny=(deny + tuple(p for p, _ in deny_q)) if perm.deny else None,
        allow_queues=allow_q,
        deny_queues=deny_q,
    )


def compile_permissions(
    upl: UserPermissionLimits, default: UserPermissionLimits | None = None
) -> CompiledPermissions:
    """Build per-connection permissions as nats-server does (``buildPermissionsFromJwt``).

    A user without any pub/sub/resp permission gets ``default`` (the account's
    ``default_permissions``). With ``resp`` set and no publish allow list, publishing is denied
    except for replies (nats-server ``validateResponsePermissions``).
    """
    if upl.pub.empty() and upl.sub.empty() and upl.resp is None and default is not None:
        upl = default
    # Users mostly share a few permission sets (one template, one role): compiled once each. The
    # result is immutable, so it is shared.
    resp = upl.resp
    key = (
        tuple(upl.pub.allow),
        tuple(upl.pub.deny),
        tuple(upl.sub.allow),
        tuple(upl.sub.deny),
        None if resp is None else (resp.max, resp.ttl),
    )
    compiled = _COMPILED.get(key)
    if compiled is None:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        compiled = _COMPILED[key] = _compile(upl)
    return compiled


_COMPILED: dict[tuple[object, ...], CompiledPermissions] = {}
_COMPILED_MAX = 1024


def _compile(upl: UserPermissionLimits) -> CompiledPermissions:
    pub = _compile_direction(upl.pub, queues=False)
    sub = _compile_direction(upl.sub, queues=True)
    resp_max = resp_ttl = None
    if upl.resp is not None:
        resp_max = upl.resp.max or DEFAULT_RESPONSE_MAX_MSGS
        resp_ttl = upl.resp.ttl or DEFAULT_RESPONSE_TTL_NS
        if pub is None:
            pub = SubjectPermission(allow=())
        elif pub.allow is None:
            pub = SubjectPermission(allow=(), deny=pub.deny)
    return CompiledPermissions(
        pub=pub or SubjectPermission(),
        sub=sub or SubjectPermission(),
        resp_max=resp_max,
        resp_ttl_ns=resp_ttl,
    )


# --- scoped signing-key templates ---------------------------------------------------------------

_MUSTACHE_RE = re.compile(r"\{\{([^}]+)\}\}")


def _tag_values(tags: Iterable[str], name: str) -> list[str]:
    prefix = name.lower() + ":"
    return [t[len(prefix) :] for t in tags if t.startswith(prefix)]


def _expand_list(
    entries: list[str], user: UserClaims, account: AccountClaims, *, fail_on_bad: bool
) -> list[str]:
    if not any(_MUSTACHE_RE.search(e) for e in entries):
        return list(entries)
    out: list[str] = []
    for entry in entries:
        values: list[tuple[str, list[str]]] = []
        for m in _MUSTACHE_RE.finditer(entry):
            op = m.group(1).strip()
            low = op.lower()
            if low == "name()":
                vals = [user.name]
            elif low == "subject()":
                vals = [user.sub]
            elif low == "account-name()":
                vals = [account.name]
            elif low == "account-subject()":
                vals = [user.issuer_account]
            elif low.startswith("tag(") and low.endswith(")"):
                vals = _tag_values(user.tags, op[4:-1]) or ([] if fail_on_bad else [" "])
            elif low.startswith("account-tag(") and low.endswith(")"):
                vals = _tag_values(account.tags, op[12:-1]) or ([] if fail_on_bad else [" "])
            else:
                raise AuthorizationError(
                    "scope_template", f"template operation in {entry!r}: {op!r} is not defined"
                )
            if not vals:
                raise AuthorizationError("scope_template", f"generated invalid subject {entry!r}")
            values.append((m.group(0), vals))
        combos: list[list[str]] = [[]]
        for _, vals in values:
            combos = [[*c, v] for c in combos for v in vals]
            if len(combos) + len(out) > MAX_TEMPLATE_EXPANSIONS:
                raise AuthorizationError("scope_template", "permission template expansion limit exceeded")
        for combo in combos:
            subj = entry
            for (src, _), v in zip(values, combo, strict=True):
                subj = subj.replace(src, v)
            if subjects.is_valid(subj.split(" ")[0]) and subj.count(" ") <= 1:
                out.append(subj)
            elif fail_on_bad:
                raise AuthorizationError("scope_template", "generated invalid subject")
    return out


def expand_scope_template(
    template: UserPermissionLimits, user: UserClaims, account: AccountClaims
) -> UserPermissionLimits:
    """Apply a scoped key's template to a user (nats-server ``processUserPermissionsTemplate``).

    An allow list that was non-empty but expands to nothing becomes ``deny >``.
    """
    upl = UserPermissionLimits.from_json(template.to_json())
    sub_had_allow, pub_had_allow = bool(upl.sub.allow), bool(upl.pub.allow)
    upl.sub.allow = _expand_list(upl.sub.allow, user, account, fail_on_bad=False)
    upl.sub.deny = _expand_list(upl.sub.deny, user, account, fail_on_bad=True)
    upl.pub.allow = _expand_list(upl.pub.allow, user, account, fail_on_bad=False)
    upl.pub.deny = _expand_list(upl.pub.deny, user, account, fail_on_bad=True)
    if sub_had_allow and not upl.sub.allow and ">" not in upl.sub.deny:
        upl.sub.deny.append(">")
    if pub_had_allow and not upl.pub.allow and ">" not in upl.pub.deny:
        upl.pub.deny.append(">")
    return upl


# --- nonce signatures ---------------------------------------------------------------------------


def sign_nonce(keypair: KeyPair, nonce: str | bytes) -> str:
    """The CONNECT ``sig``: unpadded base64url Ed25519 signature of the INFO nonce string."""
    data = nonce.encode("ascii") if isinstance(nonce, str) else nonce
    return base64.urlsafe_b64encode(keypair.sign(data)).rstrip(b"=").decode("ascii")


_PADDING = ("", "", "==", "=")


def _go_base64(text: str) -> bytes | None:
    """nats-server's reading of a CONNECT ``sig``: ``base64.RawURLEncoding``, falling back to
    ``base64.StdEncoding`` (client.go processConnect). As in Go's decoders, CR and LF are skipped
    anywhere and the unused low bits of the last character are ignored; nothing else foreign is."""
    if "\r" in text or "\n" in text:
        text = text.replace("\r", "").replace("\n", "")
    rem = len(text) % 4
    if rem != 1 and "=" not in text and "+" not in text and "/" not in text:
        try:
            raw: bytes = pybase64.b64decode(text + _PADDING[rem], altchars=b"-_", validate=True)
            return raw
        except (binascii.Error, ValueError):
            pass
    try:
        raw = pybase64.b64decode(text, validate=True)  # standard alphabet, padded
    except (binascii.Error, ValueError):
        return None
    return raw


def verify_nonce_signature(user_key: str, nonce: str | bytes, sig: str) -> bool:
    """nats-server's check of the CONNECT ``sig`` over the INFO ``nonce`` by ``user_key``."""
    data = nonce.encode("ascii") if isinstance(nonce, str) else nonce
    raw = _go_base64(sig) if isinstance(sig, str) else None
    if raw is None:
        return False
    try:
        nkeys.verify(user_key, data, raw)
    except NKeyError:
        return False
    return True


# --- time windows -------------------------------------------------------------------------------


def _parse_hms(text: str) -> tuple[int, int, int]:
    h, m, s = (int(x) for x in text.split(":"))
    return h, m, s


def time_window_remaining(user: UserClaims, now: int, default_tz: tzinfo = UTC) -> int | None:
    """Seconds left in the user's current connect window; None when no window applies.

    Raises :class:`AuthorizationError` (``time_window``) when ``now`` is outside every window.
    Mirrors nats-server ``validateTimesAt`` incl. ranges that cross midnight.
    """
    if not user.times:
        return None
    tz: tzinfo = default_tz
    if user.times_location:
        try:
            tz = ZoneInfo(user.times_location)
        except (ValueError, OSError, KeyError):
            raise AuthorizationError("time_window", "unknown times_location") from None
    current = datetime.fromtimestamp(now, tz)
    best: float | None = None
    for tr in user.times:
        try:
            sh, sm, ss = _parse_hms(tr.start)
            eh, em, es = _parse_hms(tr.end)
        except ValueError:
            raise AuthorizationError("time_window", "invalid time range in user JWT") from None
        start = current.replace(hour=sh, minute=sm, second=ss, microsecond=0)
        end = current.replace(hour=eh, minute=em, second=es, microsecond=0)
        remaining: float | None = None
        if start < current < end:
            remaining = (end - current).total_seconds()
        elif start > end:
            if end > current:
                remaining = (end - current).total_seconds()
            else:
                end2 = end + timedelta(days=1)
                if start < current < end2:
                    remaining = (end2 - current).total_seconds()
        if remaining is not None and (best is None or remaining > best):
            best = remaining
    if best is None:
        raise AuthorizationError("time_window", "outside connect times")
    return int(best)


# --- the grant ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    """What a connection may do, computed once at CONNECT (or on a claims update)."""

    user: UserClaims
    account: AccountClaims
    permissions: CompiledPermissions
    #: the user's permissions/limits after applying a scoped key's template
    limits: UserPermissionLimits
    #: unix seconds at which the connection must be closed (user exp / window end), or None
    expires_at: int | None
    #: the key that signed the user (account identity or a signing key)
    signing_key: str
    #: the scoped key's role, when a scoped key signed the user
    scope_role: str | None = None

    @property
    def account_key(self) -> str:
        return self.account.sub

    @property
    def user_key(self) -> str:
        return self.user.sub

    def is_revoked_by(self, account: AccountClaims) -> bool:
        """True if ``account`` (e.g. a pushed update) revokes this grant's user."""
        return is_revoked(account.revocations, self.user.sub, self.user.iat)


def _refuse(code: str, message: str) -> AuthorizationError:
    return AuthorizationError(code, message)


def authorize_user(
    user_jwt: str | UserClaims,
    *,
    nonce: str | bytes | None,
    signature: str | None,
    resolver: AccountResolver | Mapping[str, AccountClaims],
    operators: TrustedOperators,
    now: int,
    client_ip: str | None = None,
    connection_type: str = "STANDARD",
    default_tz: tzinfo = UTC,
) -> Grant:
    """Judge one connection. Returns a :class:`Grant` or raises :class:`AuthorizationError`.

    ``resolver`` maps an account public key to its *verified* :class:`AccountClaims` (see
    :mod:`trustkit.resolver`). ``nonce``/``signature`` are the server's INFO nonce and the
    client's CONNECT ``sig`` (ignored for bearer tokens). ``now`` is unix seconds.
    """
    return _judge(
        user_jwt, nonce, signature, resolver, operators, now, client_ip, connection_type, default_tz, None
    )


@dataclass(slots=True)
class PendingGrant:
    """A connection judged except for its Ed25519 signatures (:func:`begin_authorization`).

    Run ``checks`` (``checks.run()``, or :func:`trustkit.nkeys.check_signed` on each item
    anywhere else), then :meth:`finish` with the results: the grant, or the refusal
    :func:`authorize_user` gives for the same connection, the same code and message."""

    checks: nkeys.SignatureChecks
    #: the refusal a failed check means, one per check
    failures: list[AuthorizationError]
    grant: Grant | None
    #: a refusal found without the signatures (it stands only if every check before it passed)
    refusal: AuthorizationError | None

    def finish(self, results: Sequence[bool] | None = None) -> Grant:
        if results is None:
            results = self.checks.run()
        if len(results) != len(self.failures):
            raise ValueError(f"{len(results)} results for {len(self.failures)} signature checks")
        for ok, failure in zip(results, self.failures, strict=True):
            if not ok:
                raise failure
        if self.refusal is not None:
            raise self.refusal
        assert self.grant is not None
        return self.grant


def begin_authorization(
    user_jwt: str | UserClaims,
    *,
    nonce: str | bytes | None,
    signature: str | None,
    resolver: AccountResolver | Mapping[str, AccountClaims],
    operators: TrustedOperators,
    now: int,
    client_ip: str | None = None,
    connection_type: str = "STANDARD",
    default_tz: tzinfo = UTC,
) -> PendingGrant:
    """:func:`authorize_user` with the signature checks left to the caller, so that many CONNECTs
    can have theirs run together elsewhere (trustkit-broker runs them in a worker process while
    it serves others). Every other check runs here, in the same order; nothing is granted until
    :meth:`PendingGrant.finish` has seen every check pass. The resolver is consulted for claims
    whose signature is not verified yet: it must only look up, never fetch."""
    pending = PendingGrant(nkeys.SignatureChecks(), [], None, None)
    try:
        pending.grant = _judge(
            user_jwt, nonce, signature, resolver, operators, now, client_ip, connection_type, default_tz,
            pending,
        )
    except AuthorizationError as exc:
        pending.refusal = exc
    return pending


def _judge(
    user_jwt: str | UserClaims,
    nonce: str | bytes | None,
    signature: str | None,
    resolver: AccountResolver | Mapping[str, AccountClaims],
    operators: TrustedOperators,
    now: int,
    client_ip: str | None,
    connection_type: str,
    default_tz: tzinfo,
    pending: PendingGrant | None,
) -> Grant:
    """The one chain of trust. With ``pending``, signature checks are recorded there (each with
    the refusal its failure means) instead of run."""
    # 1. the user JWT itself: signature, issuer kind, type, validation incl. time checks
    if isinstance(user_jwt, UserClaims):
        user = user_jwt
    else:
        try:
            if pending is None:
                user = decode(user_jwt, UserClaims)
            else:
                user = decode_with_deferred_signature(user_jwt, UserClaims, pending.checks)
                failure = _refuse("user_jwt_invalid", f"user JWT not valid: {SIGNATURE_FAILED}")
                pending.failures.append(failure)
        except TokenError as exc:
            raise _refuse("user_jwt_invalid", f"user JWT not valid: {exc}") from None
    vr = user.validate(now=now)
    if vr.is_blocking(include_time_checks=True):
        if user.is_expired(now):
            raise _refuse("user_expired", "user JWT has expired")
        if user.is_not_yet_valid(now):
            raise _refuse("user_not_yet_valid", "user JWT is not yet valid")
        raise _refuse("user_jwt_invalid", "user JWT not valid: " + "; ".join(vr.errors))

    # 2. the account: resolve, trusted operator, issuer known to the account
    account_key = user.issuer_account or user.iss
    lookup = resolver.get if isinstance(resolver, Mapping) else resolver
    account = lookup(account_key)
    if account is None:
        raise _refuse("account_unknown", f"account {account_key} is not known")
    if account.sub != account_key:
        raise _refuse("account_invalid", "resolver returned another account")
    if not operators.is_trusted_issuer(account.iss):
        raise _refuse("operator_untrusted", "account JWT not signed by a trusted operator")
    strict = operators.is_strict(account)
    scope = None
    if user.iss == account.sub and not user.issuer_account:
        if strict:
            raise _refuse("strict_signing_keys", "operator requires users to be issued by a signing key")
    elif user.iss in account.signing_keys:
        scope = account.signing_keys[user.iss]
    elif user.iss == account.sub and not strict:
        pass  # identity key with issuer_account set to itself
    else:
        raise _refuse("issuer_not_account", "user JWT issuer is not the account or one of its signing keys")

    limits = user.permission_limits
    role: str | None = None
    if scope is not None:
        if not user.has_empty_permissions():
            raise _refuse("scoped_with_permissions", "scoped users require no permissions or limits set")
        limits = expand_scope_template(scope.template, user, account)
        role = scope.role

    if account.is_expired(now):
        raise _refuse("account_expired", "account JWT has expired")
    if account.is_not_yet_valid(now):
        raise _refuse("account_not_yet_valid", "account JWT is not yet valid")
    if limits.bearer_token and account.limits.disallow_bearer:
        raise _refuse("bearer_disallowed", "account does not allow bearer tokens")

    # 3. connection type (after the template, like the server)
    if limits.allowed_connection_types:
        known = [t for t in limits.allowed_connection_types if t in CONNECTION_TYPES]
        if not known or connection_type not in known:
            raise _refuse("connection_type", f"connection type {connection_type} not allowed")

    # 4. nonce signature unless bearer
    if not limits.bearer_token:
        if not signature:
            raise _refuse("nonce_required", "signature missing")
        if nonce is None:
            raise _refuse("nonce_signature", "signature not verified")
        if pending is None:
            if not verify_nonce_signature(user.sub, nonce, signature):
                raise _refuse("nonce_signature", "signature not verified")
        else:
            raw = _go_base64(signature) if isinstance(signature, str) else None
            try:
                kind, user_raw = nkeys.decode_public(user.sub)
            except NKeyError:
                raw = None
            if raw is None or kind is PrefixByte.CURVE:
                raise _refuse("nonce_signature", "signature not verified")
            pending.checks.add(user_raw, nonce.encode("ascii") if isinstance(nonce, str) else nonce, raw)
            pending.failures.append(_refuse("nonce_signature", "signature not verified"))

    # 5. revocation, source network, time window
    if is_revoked(account.revocations, user.sub, user.iat):
        raise _refuse("user_revoked", "user authentication revoked")
    if limits.src:
        if not client_ip or not _ip_in(client_ip, limits.src):
            raise _refuse("source_network", f"bad src IP {client_ip}")
    remaining = (
        time_window_remaining(
            UserClaims(times=limits.times, times_location=limits.times_location), now, default_tz
        )
        if limits.times  # (without windows there is nothing to check: no claims object to build)
        else None
    )

    return grant_for(user, account, limits, window_remaining=remaining, now=now, role=role)


def grant_for(
    user: UserClaims,
    account: AccountClaims,
    limits: UserPermissionLimits,
    *,
    window_remaining: int | None,
    now: int,
    role: str | None = None,
) -> Grant:
    """The :class:`Grant` for a user already judged: its permissions compiled (the account's
    default permissions when the user has none), its expiry the earlier of the user JWT's ``exp``
    and the end of its connect window (``window_remaining`` seconds from ``now``)."""
    expires_at = user.exp or None
    if window_remaining is not None:
        window_end = now + window_remaining
        expires_at = window_end if expires_at is None else min(expires_at, window_end)
    d = account.default_permissions
    default = None
    if not (d.pub.empty() and d.sub.empty() and d.resp is None):
        default = UserPermissionLimits(pub=d.pub, sub=d.sub, resp=d.resp)
    return Grant(
        user=user,
        account=account,
        permissions=compile_permissions(limits, default),
        limits=limits,
        expires_at=expires_at,
        signing_key=user.iss,
        scope_role=role,
    )


def _ip_in(ip: str, cidrs: Iterable[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for cidr in cidrs:
        try:
            if addr in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            return False  # an invalid CIDR fails closed, as nats-server does
    return False


def verify_account(token: str, operators: TrustedOperators, *, now: int | None = None) -> AccountClaims:
    """Decode an account JWT and check it is signed by a trusted operator key.

    With ``now``, validation includes time checks (loading for a connection); without, an
    expired account is accepted (storing an update, as the server's resolver does).
    """
    try:
        account = decode(token, AccountClaims)
    except TokenError as exc:
        raise _refuse("account_invalid", f"account JWT not valid: {exc}") from None
    if not operators.is_trusted_issuer(account.iss):
        if nkeys.prefix_of(account.iss) is PrefixByte.OPERATOR and any(
            op.sub == account.iss and op.strict_signing_key_usage for op in operators.operators
        ):
            raise _refuse("strict_signing_keys", "operator requires issuer to be a signing key")
        raise _refuse("operator_untrusted", "account JWT not signed by a trusted operator")
    vr = account.validate(now=now if now is not None else 0)
    if vr.is_blocking(include_time_checks=now is not None):
        raise _refuse(
            "account_invalid",
            "account JWT not valid: " + "; ".join(vr.blocking_messages(include_time_checks=now is not None)),
        )
    return account
