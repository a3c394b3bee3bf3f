"""LDAP backend: username + password → :class:`~callout.identity.Identity`.

One :meth:`LdapBackend.authenticate` call does, on the event loop with non-blocking sockets
(STYLE rule 11):

1. check the input before any I/O: no empty password (an empty password would be an
   *unauthenticated bind*, which many servers answer with success), no NUL bytes, no control
   characters in the username, bounded lengths, a password SASLprep (RFC 4013) accepts →
   :class:`InvalidInput`;
2. search, bound as the service account, for the user under ``user_base`` with the configured
   filter, the username escaped with ``escape_filter_chars`` (STYLE rule 12); no entry →
   :class:`UnknownUser`, two or more → :class:`AmbiguousUser` (never pick one);
3. bind as the entry's DN with the password, on a connection used only for such binds →
   :class:`InvalidCredentials` if refused;
4. read the groups, from ``memberOf`` or from a group search ``(member={dn})``.

No search result and no bind outcome is kept: every call asks the directory again. Every outage,
timeout, protocol error or misconfiguration is :class:`BackendUnavailable`. The whole call is
bounded by ``LdapConfig.timeout``, each answer by ``receive_timeout``. Details go to the
``callout.backends.ldap`` logger; exception messages never contain a password (nor the server's
error text).

The protocol: the two requests a login sends are encoded here, byte for byte as ``ldap3`` would
(its pyasn1 encoder and request bookkeeping cost ~0.5 ms of CPU per login, more than the rest of
the callout); ``ldap3`` compiles the configured filters, SASLpreps passwords, decodes the answers
(its "fast" decoder) and parses DNs. ``tests/callout/test_ldap_wire.py`` holds the two to the same
bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

try:
    from ldap3.core.exceptions import (
        LDAPCommunicationError,
        LDAPException,
        LDAPInvalidFilterError,
        LDAPSessionTerminatedByServerError,
        LDAPSocketOpenError,
        LDAPSocketReceiveError,
        LDAPSocketSendError,
        LDAPStartTLSError,
    )
    from ldap3.core.results import RESULT_CODES
    from ldap3.operation.search import compile_filter, parse_filter
    from ldap3.protocol.sasl.sasl import validate_simple_password
    from ldap3.utils.asn1 import decode_message_fast
    from ldap3.utils.asn1 import encode as ber_encode
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import parse_dn, safe_dn
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the callout LDAP backend needs ldap3: pip install 'ldap3>=2.9.1,<3'") from e

from callout.identity import (
    AmbiguousUser,
    BackendConfigError,
    BackendUnavailable,
    Identity,
    InvalidCredentials,
    InvalidInput,
    UnknownUser,
)
from trustkit.errors import CalloutError

log = logging.getLogger("callout.backends.ldap")

T = TypeVar("T")

# LDAP result codes we act on (RFC 4511 §4.1.9).
_SUCCESS, _SIZE_LIMIT_EXCEEDED, _NO_SUCH_OBJECT = 0, 4, 32
#: A user bind refused for the user's own reasons (wrong password, no password attribute, account
#: locked by a password policy...). Anything else is the server's problem → BackendUnavailable.
_BIND_REFUSED = frozenset({19, 48, 49, 50, 53})  # constraintViolation, inappropriateAuthentication,
#                                                   invalidCredentials, insufficientAccessRights,
#                                                   unwillingToPerform


@dataclass(frozen=True, kw_only=True)
class LdapConfig:
    """How to reach the directory and find users in it.

    ``user_filter`` and ``group_filter`` are templates: ``{username}`` (resp. ``{dn}``) is replaced
    by the escaped value; no other ``{...}`` is interpreted. ``groups`` chooses where group names
    come from: ``"memberOf"`` (the operational attribute, asked for by name), ``"search"`` (a search
    for ``group_filter`` under ``group_base``, taking ``group_name_attribute``) or ``"none"``. With
    ``"memberOf"`` and a ``group_base``, only groups under that base count. A group's name is the
    value of the first RDN of its DN (memberOf) or ``group_name_attribute`` (search).

    Timeouts are seconds: ``connect_timeout`` per connect (TLS handshake of ``ldaps://``
    included), ``receive_timeout`` per answer awaited, ``timeout`` for a whole
    :meth:`LdapBackend.authenticate`.

    The identity's ``subject`` is ``subject_attribute`` of the entry (its DN if it has none),
    ``name`` is ``name_attribute``, ``attributes`` holds the first value of each of ``attributes``
    that the entry has, plus ``dn``. Invalid settings raise :class:`BackendConfigError`.
    """

    url: str  # ldap://host[:port] or ldaps://host[:port]
    bind_dn: str
    bind_password: str = field(repr=False)
    user_base: str
    user_filter: str = "(uid={username})"
    user_scope: Literal["subtree", "level"] = "subtree"
    subject_attribute: str = "uid"
    name_attribute: str = "cn"
    attributes: tuple[str, ...] = ()  # copied (first value) into Identity.attributes
    groups: Literal["memberOf", "search", "none"] = "memberOf"
    group_base: str | None = None
    group_filter: str = "(member={dn})"
    group_name_attribute: str = "cn"
    max_groups: int = 1000
    start_tls: bool = False
    ca_certs_file: str | None = None  # None: the system CA store
    tls_verify: bool = True
    connect_timeout: float = 2.0
    receive_timeout: float = 2.0
    timeout: float = 5.0
    max_workers: int = 8  # logins talking to the directory at once (and idle connections kept)
    max_pending: int = 256  # authenticate() calls waiting or running before refusing at once
    max_username_bytes: int = 256
    max_password_bytes: int = 1024
    identity_ttl: int | None = None  # seconds → Identity.expires_at; None: no expiry
    source: str = "ldap"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise BackendConfigError(
                f"url must be ldap://host[:port] or ldaps://host[:port], not {self.url!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise BackendConfigError("url must not carry a DN, query or user info")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as e:
            raise BackendConfigError(f"bad port in url {self.url!r}") from e
        if self.start_tls and parts.scheme == "ldaps":
            raise BackendConfigError("start_tls and ldaps:// exclude each other")
        if not self.bind_dn or not self.bind_password:
            # an empty service password would be an unauthenticated (anonymous) bind
            raise BackendConfigError("bind_dn and bind_password are required")
        if not self.user_base:
            raise BackendConfigError("user_base is required")
        for name in ("user_base", "group_base"):
            if getattr(self, name):
                try:
                    safe_dn(getattr(self, name))  # what every search would send (and fail on)
                except LDAPException as e:
                    raise BackendConfigError(f"{name} is not a valid DN: {e}") from None
        _check_template("user_filter", self.user_filter, "{username}")
        if self.groups not in ("memberOf", "search", "none"):
            raise BackendConfigError(f"groups must be memberOf, search or none, not {self.groups!r}")
        if self.groups == "search":
            if not self.group_base:
                raise BackendConfigError("groups='search' needs group_base")
            _check_template("group_filter", self.group_filter, "{dn}")
        if self.user_scope not in ("subtree", "level"):
            raise BackendConfigError(f"user_scope must be subtree or level, not {self.user_scope!r}")
        for name in ("connect_timeout", "receive_timeout", "timeout"):
            if not getattr(self, name) > 0:
                raise BackendConfigError(f"{name} must be > 0")
        for name in ("max_workers", "max_pending", "max_username_bytes", "max_password_bytes", "max_groups"):
            if getattr(self, name) < 1:
                raise BackendConfigError(f"{name} must be >= 1")
        if self.identity_ttl is not None and self.identity_ttl < 1:
            raise BackendConfigError("identity_ttl must be >= 1 or None")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (636 if parts.scheme == "ldaps" else 389)

    @property
    def use_ssl(self) -> bool:
        return urlsplit(self.url).scheme == "ldaps"


def _check_template(name: str, template: str, placeholder: str) -> None:
    if placeholder not in template:
        raise BackendConfigError(f"{name} must contain {placeholder}")
    if not (template.startswith("(") and template.endswith(")")):
        raise BackendConfigError(f"{name} must be a parenthesised LDAP filter")
    try:
        parse_filter(template.replace(placeholder, "x"), None, False, True, None, False)
    except LDAPException as e:
        raise BackendConfigError(f"{name} is not a valid LDAP filter: {e}") from None


class LdapBackend:
    """Authenticate users against an LDAP directory; see the module docstring for the steps.

    Service connections are pooled (at most ``max_workers`` idle ones); a pooled connection found
    dead (server restarted, idle timeout) is replaced once within the same call. User binds use a
    second pool of connections that only ever bind (a bind replaces the previous identity, and
    no search runs on them); a bind that ends in an error drops its connection. At most
    ``max_workers`` logins talk to the directory at once; up to ``max_pending`` calls (those
    included) wait their turn, more are refused at once.

    Connections belong to the event loop that opened them: the pools are dropped when the backend
    is used from another loop.
    """

    def __init__(self, config: LdapConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._idle: list[_Link] = []  # bound, idle service connections
        self._bind_idle: list[_Link] = []  # idle connections used only to check user passwords
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(config.max_workers)
        self._queued: set[asyncio.Task[Any]] = set()  # calls waiting for a slot
        self._refused: set[asyncio.Task[Any]] = set()  # ... that close() turned away
        self._pending = 0
        self._closed = False
        self._ssl: ssl.SSLContext | None = None
        if config.use_ssl or config.start_tls:
            self._ssl = ssl.create_default_context(cafile=config.ca_certs_file)
            if not config.tls_verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        # Everything of the two searches but the escaped value is fixed: encoded once, here.
        time_limit = max(1, math.ceil(config.receive_timeout))
        wanted = [config.subject_attribute, config.name_attribute, *config.attributes]
        if config.groups == "memberOf":
            wanted.append("memberOf")  # operational: only returned when asked for by name
        self._user_search = _SearchTemplate(
            config.user_base,
            config.user_filter,
            "{username}",
            scope=2 if config.user_scope == "subtree" else 1,
            attributes=sorted(set(wanted)),
            size_limit=2,
            time_limit=time_limit,
        )
        self._group_search = (
            _SearchTemplate(
                config.group_base,
                config.group_filter,
                "{dn}",
                scope=2,
                attributes=[config.group_name_attribute],
                size_limit=config.max_groups,
                time_limit=time_limit,
            )
            if config.groups == "search" and config.group_base
            else None
        )
        self._base_read = _SearchTemplate(  # the readiness probe's read of user_base
            config.user_base,
            "(objectClass=*)",
            None,
            scope=0,
            attributes=[],
            size_limit=1,
            time_limit=time_limit,
        )
        self._service_dn = config.bind_dn.encode()
        try:
            self._service_password = _prep_password(config.bind_password)
        except LDAPException:
            raise BackendConfigError("bind_password is not a valid SASLprep (RFC 4013) string") from None

    # --- public API ----------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> Identity:
        """The identity of ``username`` if ``password`` is right.

        Raises :class:`InvalidInput`, :class:`UnknownUser`, :class:`AmbiguousUser`,
        :class:`InvalidCredentials` or :class:`BackendUnavailable` (down, slow, overloaded, closed,
        misconfigured). Never blocks the event loop.
        """
        self._check_input(username, password)
        return await self._run(self._authenticate, username, password, what=username)

    async def probe(self) -> None:
        """Readiness: a service bind (or a pooled service connection) and a base-scope read of
        ``user_base``. Raises :class:`BackendUnavailable` if either fails."""
        await self._run(self._probe, what="")

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any, what: str) -> T:
        """``await fn(*args, deadline)`` within ``timeout``, ``max_workers`` and ``max_pending``."""
        if self._closed:
            raise BackendUnavailable("LDAP backend is closed")
        if self._pending >= self.config.max_pending:
            log.warning("LDAP backend overloaded (%d calls pending), refusing", self._pending)
            raise BackendUnavailable("LDAP backend is overloaded")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections of another (finished) loop are no use here
            for link in self._idle + self._bind_idle:
                link.close()  # as far as a closed loop allows; the rest is the garbage collector's
            self._idle, self._bind_idle, self._loop = [], [], loop
            self._slots = asyncio.Semaphore(self.config.max_workers)
        deadline = time.monotonic() + self.config.timeout
        task = asyncio.current_task()
        self._pending += 1
        try:
            async with asyncio.timeout(self.config.timeout):
                if self._slots.locked() and task is not None:
                    self._queued.add(task)
                    try:
                        await self._slots.acquire()
                    finally:
                        self._queued.discard(task)
                else:
                    await self._slots.acquire()
                try:
                    if self._closed:
                        raise BackendUnavailable("LDAP backend is closed")
                    return await fn(*args, deadline)
                finally:
                    self._slots.release()
        except asyncio.CancelledError:
            if task is not None and task in self._refused:  # close() turned this queued call away
                self._refused.discard(task)
                task.uncancel()
                raise BackendUnavailable("LDAP backend is closed") from None
            raise
        except TimeoutError:
            shown = _show(what) if what else "the readiness probe"
            log.warning("LDAP call for %s timed out after %.1fs", shown, self.config.timeout)
            raise BackendUnavailable("LDAP backend did not answer in time") from None
        finally:
            self._pending -= 1

    async def aclose(self) -> None:
        """Stop accepting calls, refuse the queued ones and drop the pooled connections. Calls
        talking to the directory finish (or time out) and close their connections."""
        self.close()

    def close(self) -> None:
        self._closed = True
        for task in self._queued:
            self._refused.add(task)
            task.cancel()
        idle, self._idle, self._bind_idle = self._idle + self._bind_idle, [], []
        for link in idle:
            link.close()

    async def __aenter__(self) -> LdapBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- input checks (no I/O) -----------------------------------------------------------------

    def _check_input(self, username: object, password: object) -> None:
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidInput("username and password must be strings")
        if not username:
            raise InvalidInput("username is empty")
        if not password:
            raise InvalidInput("password is empty")  # would be an unauthenticated bind
        try:
            ubytes, pbytes = len(username.encode()), len(password.encode())
        except UnicodeEncodeError:
            raise InvalidInput("username or password is not valid Unicode") from None
        if ubytes > self.config.max_username_bytes:
            raise InvalidInput(f"username is longer than {self.config.max_username_bytes} bytes")
        if pbytes > self.config.max_password_bytes:
            raise InvalidInput(f"password is longer than {self.config.max_password_bytes} bytes")
        if any(c < " " or c == "\x7f" for c in username):
            raise InvalidInput("username contains a NUL or control character")
        if "\x00" in password:
            raise InvalidInput("password contains a NUL byte")

    # --- talking to the directory ----------------------------------------------------------------

    async def _authenticate(self, username: str, password: str, deadline: float) -> Identity:
        try:
            try:
                secret = _prep_password(password)
            except LDAPException:  # what ldap3 refuses to send (RFC 4013 prohibits it)
                raise InvalidInput("password is not a valid SASLprep string") from None
            dn, attrs = await self._with_service(
                lambda link: self._find_user(link, username, deadline), deadline
            )
            await self._bind_user(dn, secret, deadline)
            if self.config.groups == "memberOf":
                groups = self._groups_from_member_of(attrs.get("memberof", []))
            elif self._group_search is not None:
                groups = await self._with_service(
                    lambda link: self._search_groups(link, dn, deadline), deadline
                )
            else:
                groups = []
        except CalloutError as e:
            log.info("LDAP refused %s: %s", _show(username), e.code)
            raise
        except LDAPException as e:
            log.warning("LDAP error for %s: %s: %s", _show(username), type(e).__name__, e)
            raise BackendUnavailable("LDAP backend is unavailable") from None
        except Exception:
            log.exception("unexpected error in the LDAP backend for %s", _show(username))
            raise BackendUnavailable("LDAP backend failed") from None
        return self._identity(dn, attrs, groups)

    async def _probe(self, deadline: float) -> None:
        async def read_base(link: _Link) -> None:
            code, _ = await link.search(self._base_read.request(""), 1, self._op_timeout(deadline))
            if code != _SUCCESS:
                raise BackendUnavailable(
                    f"user_base {self.config.user_base!r} cannot be read (LDAP result {code})"
                )

        try:
            await self._with_service(read_base, deadline)
        except LDAPException as e:
            log.warning("LDAP readiness probe failed: %s: %s", type(e).__name__, e)
            raise BackendUnavailable("LDAP backend is unavailable") from None

    def _op_timeout(self, deadline: float) -> float:
        """How long one answer may take: ``receive_timeout``, cut to what is left of the call."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendUnavailable("LDAP backend did not answer in time")
        return max(0.05, min(self.config.receive_timeout, remaining))

    async def _open(self, deadline: float) -> _Link:
        """A new connection (TLS started if configured), not bound yet."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        tls = self._ssl if cfg.use_ssl else None
        try:
            async with asyncio.timeout(min(cfg.connect_timeout, max(0.05, deadline - time.monotonic()))):
                _, link = await loop.create_connection(
                    _Link, cfg.host, cfg.port, ssl=tls, server_hostname=cfg.host if tls else None
                )
        except (OSError, TimeoutError) as e:  # refused, unreachable, TLS handshake or certificate
            raise LDAPSocketOpenError(f"cannot connect to {cfg.url}: {type(e).__name__}: {e}") from None
        if cfg.start_tls:
            try:
                await link.start_tls(self._ssl, cfg.host, self._op_timeout(deadline))
            except BaseException:
                link.close()
                raise
        return link

    async def _open_service(self, deadline: float) -> _Link:
        link = await self._open(deadline)
        try:
            code = await link.bind(self._service_dn, self._service_password, self._op_timeout(deadline))
        except BaseException:
            link.close()
            raise
        if code != _SUCCESS:
            link.close()
            log.error("LDAP service bind as %s refused: %s", self.config.bind_dn, link.describe())
            raise BackendUnavailable("LDAP service bind refused")
        return link

    async def _with_service(self, op: Callable[[_Link], Awaitable[T]], deadline: float) -> T:
        """Run ``op`` on a pooled service connection; one retry on a new one if a pooled one is dead."""
        link = _pop_alive(self._idle)
        reused = link is not None
        if link is None:
            link = await self._open_service(deadline)
        try:
            result = await op(link)
        except LDAPCommunicationError as e:
            link.close()
            if not reused:
                raise
            log.info("pooled LDAP service connection is dead (%s), reconnecting", type(e).__name__)
            link = await self._open_service(deadline)
            try:
                result = await op(link)
            except BaseException:
                link.close()
                raise
        except BaseException:
            link.close()
            raise
        if not self._closed and len(self._idle) < self.config.max_workers:
            self._idle.append(link)
        else:
            link.close()
        return result

    async def _find_user(
        self, link: _Link, username: str, deadline: float
    ) -> tuple[bytes, dict[str, list[str]]]:
        cfg = self.config
        code, entries = await link.search(self._user_search.request(username), 2, self._op_timeout(deadline))
        if code == _SIZE_LIMIT_EXCEEDED or len(entries) > 1:
            log.warning(
                "LDAP: %s matches %s entries under %s",
                _show(username),
                "2+" if code == _SIZE_LIMIT_EXCEEDED else len(entries),
                cfg.user_base,
            )
            raise AmbiguousUser("more than one directory entry matches the username")
        if code != _SUCCESS:
            log.error("LDAP user search under %s failed: %s", cfg.user_base, link.describe())
            if code == _NO_SUCH_OBJECT:
                log.error("LDAP user_base %s does not exist (misconfiguration?)", cfg.user_base)
            raise BackendUnavailable("LDAP user search failed")
        if not entries:
            raise UnknownUser("no directory entry matches the username")
        return entries[0]

    async def _bind_user(self, dn: bytes, secret: bytes, deadline: float) -> None:
        """A simple bind as ``dn`` on a pooled bind-only connection (a new one if none is idle or
        the pooled one is dead). Only this bind's own answer counts: a connection's earlier bind,
        good or bad, has no say (RFC 4511 §4.2.1: a bind first makes the session anonymous)."""
        if not dn:  # an empty DN + password could be taken as an anonymous bind
            raise BackendUnavailable("LDAP returned an entry without a DN")
        if not secret:  # belt and braces: never send an unauthenticated bind
            raise InvalidInput("password is empty")
        link = _pop_alive(self._bind_idle)
        code: int | None = None
        if link is not None:
            try:
                code = await link.bind(dn, secret, self._op_timeout(deadline))
            except LDAPCommunicationError as e:
                log.info("pooled LDAP bind connection is dead (%s), reconnecting", type(e).__name__)
                link.close()
                link = None
            except BaseException:
                link.close()
                raise
        if link is None or code is None:
            link = await self._open(deadline)
            try:
                code = await link.bind(dn, secret, self._op_timeout(deadline))
            except BaseException:
                link.close()
                raise
        try:
            if code == _SUCCESS:
                return
            shown = dn.decode(errors="replace")
            if code in _BIND_REFUSED:
                log.info("LDAP bind as %s refused: %s", shown, link.describe())
                raise InvalidCredentials("wrong password")
            log.warning("LDAP bind as %s failed: %s", shown, link.describe())
            raise BackendUnavailable("LDAP bind failed")
        finally:
            self._release_bind(link, code)

    def _release_bind(self, link: _Link, code: int) -> None:
        """Keep a user-bind connection for the next bind (it is only ever used to bind again: a
        search always runs on a service connection), unless the bind ended in an error."""
        if (code == _SUCCESS or code in _BIND_REFUSED) and not self._closed:
            if len(self._bind_idle) < self.config.max_workers:
                self._bind_idle.append(link)
                return
        link.close()

    def _groups_from_member_of(self, dns: Sequence[str]) -> list[str]:
        base = _dn_key(self.config.group_base) if self.config.group_base else None
        names = []
        for dn in dns:
            try:
                key = _dn_key(dn)
            except LDAPException:
                log.warning("LDAP: ignoring malformed memberOf value %r", dn)
                continue
            if not key or (base is not None and (len(key) <= len(base) or key[-len(base) :] != base)):
                continue
            names.append(_unescape_dn_value(_parse_dn(dn)[0][1]))
        return names

    async def _search_groups(self, link: _Link, dn: bytes, deadline: float) -> list[str]:
        cfg = self.config
        assert self._group_search is not None  # groups == "search"
        code, entries = await link.search(
            self._group_search.request(dn.decode()), cfg.max_groups, self._op_timeout(deadline)
        )
        if code != _SUCCESS:
            # A partial group list could grant more than the full one under a "not in group" rule.
            log.error("LDAP group search under %s failed: %s", cfg.group_base, link.describe())
            raise BackendUnavailable("LDAP group search failed")
        key = cfg.group_name_attribute.lower()
        names = []
        for _, attrs in entries:
            names.extend(attrs.get(key, [])[:1])
        return names

    def _identity(self, dn: bytes, attrs: dict[str, list[str]], groups: list[str]) -> Identity:
        cfg = self.config
        text_dn = dn.decode()
        subject = next(iter(attrs.get(cfg.subject_attribute.lower(), [])), "")
        if not subject:
            log.warning("LDAP entry %s has no %s, using its DN as subject", text_dn, cfg.subject_attribute)
            subject = text_dn
        name = next(iter(attrs.get(cfg.name_attribute.lower(), [])), subject)
        extra = {a: values[0] for a in cfg.attributes if (values := attrs.get(a.lower()))}
        extra["dn"] = text_dn
        expires = int(self._clock()) + cfg.identity_ttl if cfg.identity_ttl else None
        return Identity(
            subject=subject,
            name=name,
            groups=tuple(groups),
            attributes=extra,
            expires_at=expires,
            source=cfg.source,
        )


# --- the wire ---------------------------------------------------------------------------------
#
# ldap3 builds every request as a tree of pyasn1 objects, encodes it, then decodes it again for its
# own bookkeeping: for a search plus a bind that is about 0.5 ms of CPU per login. The requests a
# login needs are small and fixed in shape, so they are encoded here (RFC 4511 §4.2, §4.5.1; BER
# with definite lengths as pyasn1 writes them). The answers are read with ldap3's fast decoder.

#: RFC 4511 protocolOp tags we expect.
_BIND_RESPONSE, _SEARCH_ENTRY, _SEARCH_DONE, _SEARCH_REFERENCE, _EXTENDED_RESPONSE = 1, 4, 5, 19, 24
_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
#: An answer larger than this is refused (ldap3 has no limit; 1000 long group DNs are ~100 KB).
_MAX_MESSAGE = 16 * 1024 * 1024


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _ber_length(len(content)) + content


def _ber_int(tag: int, n: int) -> bytes:
    """INTEGER/ENUMERATED ``n`` >= 0, two's complement in the fewest octets."""
    return _tlv(tag, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def _message(msg_id: int, op: bytes) -> bytes:
    """``LDAPMessage`` (RFC 4511 §4.2.1) without controls."""
    return _tlv(0x30, _ber_int(0x02, msg_id) + op)


def _bind_request(name: bytes, secret: bytes) -> bytes:
    """``[APPLICATION 0] BindRequest``: version 3, simple authentication (RFC 4511 §4.2)."""
    return _tlv(0x60, b"\x02\x01\x03" + _tlv(0x04, name) + _tlv(0x80, secret))


def _prep_password(password: str) -> bytes:
    """The password as ldap3 sends it: SASLprep (RFC 4013), then UTF-8. Printable ASCII is its own
    SASLprep (no mapping, NFKC-stable, nothing prohibited) and skips ldap3's pure-Python pass.
    Raises ldap3's ``LDAPSASLPrepError`` for what RFC 4013 prohibits."""
    if password.isascii() and password.isprintable():
        return password.encode()
    prepared = validate_simple_password(password)
    return prepared if isinstance(prepared, bytes) else str(prepared).encode()


def _ldap3_filter(text: str) -> bytes:
    """``text`` as ldap3 puts it in a search request (``Connection.search`` defaults, no schema)."""
    node = parse_filter(text, None, True, True, None, True).elements[0]
    return bytes(ber_encode(compile_filter(node)))


#: Values the filter splice is checked against at startup: escaping, non-ASCII and a length that
#: moves every enclosing length to its long form.
_PROBES = ("a", "*()\\", "Zoë O'Brien-Smith", "\\5c" + "x" * 140 + "\u00e9")


class _FilterTemplate:
    """A filter template with ``{username}``/``{dn}`` standing for a value, encoded as ldap3 would
    encode the template with the value passed through ``escape_filter_chars``.

    ldap3 parses and compiles the template once, with a random alphanumeric marker in place of the
    value; a call then puts the value's UTF-8 bytes where the marker is and recomputes the
    enclosing lengths. That is what ldap3 itself produces, because an escaped value holds no filter
    syntax (no ``*()``, every ``\\`` starts an ``\\xx`` escape) and ldap3 turns it back into
    exactly the value's UTF-8 bytes. Where ldap3 does more, it encodes per call: a value with
    leading or trailing white space (ldap3 strips assertion values), a template holding a ``\\``
    escape of its own, and a template for which the splice differs from ldap3 on any of
    :data:`_PROBES` (checked here, at startup).
    """

    def __init__(self, template: str, placeholder: str | None) -> None:
        self.template = template
        self.placeholder = placeholder
        self._marker = b""
        self._parts: list[tuple[int, bytes | list[Any]]] | None = None
        self._fixed: bytes | None = None
        if placeholder is None:
            self._fixed = _ldap3_filter(template)
            return
        if "\\" not in template:
            marker = "tkv" + secrets.token_hex(12)
            try:
                self._parts = _tlv_parse(_ldap3_filter(template.replace(placeholder, marker)))
                self._marker = marker.encode()
                if not all(self._splice(p) == self._slow(p) for p in _PROBES):
                    self._parts = None
            except (LDAPException, IndexError):
                self._parts = None
        if self._parts is None:
            log.info("LDAP filter %s is encoded by ldap3 on every call", template)

    def __call__(self, value: str) -> bytes:
        """The filter for ``value`` (as it is: escaping is done here)."""
        if self._fixed is not None:
            return self._fixed
        if self._parts is None or value != value.strip():
            return self._slow(value)
        return self._splice(value)

    def _slow(self, value: str) -> bytes:
        assert self.placeholder is not None
        return _ldap3_filter(self.template.replace(self.placeholder, escape_filter_chars(value)))

    def _splice(self, value: str) -> bytes:
        assert self._parts is not None
        return _tlv_join(self._parts, self._marker, value.encode())


def _tlv_parse(data: bytes) -> list[tuple[int, bytes | list[Any]]]:
    """BER (single-octet tags, definite lengths) → [(tag, primitive bytes | children)]."""
    out: list[tuple[int, bytes | list[Any]]] = []
    i = 0
    while i < len(data):
        tag, first = data[i], data[i + 1]
        i += 2
        if first & 0x80:
            count = first & 0x7F
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        else:
            length = first
        content = data[i : i + length]
        if len(content) != length or tag & 0x1F == 0x1F:
            raise LDAPInvalidFilterError("unexpected BER in a compiled filter")
        out.append((tag, _tlv_parse(content) if tag & 0x20 else content))
        i += length
    return out


def _tlv_join(parts: list[tuple[int, bytes | list[Any]]], marker: bytes, value: bytes) -> bytes:
    return b"".join(
        _tlv(tag, _tlv_join(body, marker, value) if isinstance(body, list) else body.replace(marker, value))
        for tag, body in parts
    )


class _SearchTemplate:
    """A SearchRequest whose only variable part is the filter value (RFC 4511 §4.5.1)."""

    def __init__(
        self,
        base: str,
        filter_template: str,
        placeholder: str | None,
        *,
        scope: int,
        attributes: Sequence[str],
        size_limit: int,
        time_limit: int,
    ) -> None:
        self.filter = _FilterTemplate(filter_template, placeholder)
        # what Connection.search sends: the base through safe_dn (check_names), no attributes as "1.1"
        self._head = (
            _tlv(0x04, safe_dn(base).encode())
            + _ber_int(0x0A, scope)
            + _ber_int(0x0A, 0)  # derefAliases: neverDerefAliases
            + _ber_int(0x02, size_limit)
            + _ber_int(0x02, time_limit)
            + b"\x01\x01\x00"  # typesOnly FALSE
        )
        self._tail = _tlv(0x30, b"".join(_tlv(0x04, a.encode()) for a in attributes or ["1.1"]))

    def request(self, value: str) -> bytes:
        """The protocolOp ``[APPLICATION 3] SearchRequest`` for the filter value ``value``."""
        return _tlv(0x63, self._head + self.filter(value) + self._tail)


class _Link(asyncio.Protocol):
    """One LDAP connection on the event loop: requests encoded here, answers decoded by ldap3.

    Requests go one at a time and each answer must carry the request's message ID: anything else
    (a Notice of Disconnection, a garbled or oversized message, a closed connection, no answer
    within the timeout) raises an ``LDAPCommunicationError`` and aborts the connection.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._waiter: asyncio.Future[None] | None = None
        self._lost: str | None = None  # why the connection is gone
        self._next_id = 1
        self.result: tuple[int, str] = (-1, "")  # the last LDAPResult: code, diagnostic message

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > _MAX_MESSAGE + 16:  # nobody reads this much: a server gone wrong
            self._gone("too much unread data")
            return
        self._wake()

    def eof_received(self) -> bool:
        self._gone("connection closed by the server")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone(f"connection lost: {type(exc).__name__}" if exc else "connection closed")

    def _gone(self, why: str) -> None:
        if self._lost is None:
            self._lost = why
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- requests --------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._lost is None and self.transport is not None and not self.transport.is_closing()

    async def bind(self, name: bytes, secret: bytes, timeout: float) -> int:
        """A simple bind (RFC 4511 §4.2): the result code of the server's BindResponse."""
        op, payload = await self._ask(_bind_request(name, secret), timeout)
        if op != _BIND_RESPONSE:
            raise self._garbled(f"a bind was answered with protocolOp {op}")
        return self._result(payload)

    async def search(
        self, request: bytes, limit: int, timeout: float
    ) -> tuple[int, list[tuple[bytes, dict[str, list[str]]]]]:
        """(result code, entries as (DN, attributes by lower-case name → UTF-8 values)).
        References are skipped (referrals are not followed); more than ``limit`` entries is a
        server ignoring the size limit and raises."""
        msg_id = self._send(request)
        entries: list[tuple[bytes, dict[str, list[str]]]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    op, payload = await self._receive(msg_id)
                    if op == _SEARCH_DONE:
                        return self._result(payload), entries
                    if op == _SEARCH_ENTRY:
                        if len(entries) >= limit:
                            raise self._garbled(f"more than the {limit} entries asked for")
                        entries.append(_entry(payload, self))
                    elif op != _SEARCH_REFERENCE:
                        raise self._garbled(f"a search was answered with protocolOp {op}")
        except TimeoutError:
            raise self._timed_out(timeout) from None

    async def start_tls(self, context: ssl.SSLContext | None, host: str, timeout: float) -> None:
        """StartTLS (RFC 4511 §4.14): the extended operation, then the TLS handshake. A refusal
        is :class:`BackendUnavailable`; never falls back to plain text."""
        assert context is not None and self.transport is not None
        op, payload = await self._ask(_tlv(0x77, _tlv(0x80, _STARTTLS_OID)), timeout)
        if op != _EXTENDED_RESPONSE:
            raise self._garbled(f"StartTLS was answered with protocolOp {op}")
        if self._result(payload) != _SUCCESS:
            log.error("LDAP StartTLS refused: %s", self.describe())
            raise BackendUnavailable("LDAP StartTLS failed")
        if self._buf:  # sent in clear before the handshake: never to be read as if under TLS
            raise self._garbled("data after the StartTLS answer")
        try:
            async with asyncio.timeout(timeout):
                transport = await self._loop.start_tls(self.transport, self, context, server_hostname=host)
        except (OSError, TimeoutError) as e:  # certificate refused, handshake failed or hung
            self._gone(f"TLS handshake failed: {type(e).__name__}")
            raise LDAPStartTLSError(f"StartTLS handshake failed: {type(e).__name__}: {e}") from None
        if transport is None:
            raise self._garbled("no transport after StartTLS")
        self.transport = transport

    def describe(self) -> str:
        code, message = self.result
        return f"{code} {RESULT_CODES.get(code, '?')} {message}".strip()

    def close(self) -> None:
        """Unbind (RFC 4511 §4.3: no answer) and close; abort a connection that went wrong."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(RuntimeError):  # its event loop is closed: nothing left to close
            if self._lost is None:
                transport.write(_message(self._new_id(), b"\x42\x00"))  # UnbindRequest
                transport.close()
            else:
                transport.abort()

    # --- the exchange ----------------------------------------------------------------------------

    async def _ask(self, op: bytes, timeout: float) -> tuple[int, Any]:
        msg_id = self._send(op)
        try:
            async with asyncio.timeout(timeout):
                return await self._receive(msg_id)
        except TimeoutError:
            raise self._timed_out(timeout) from None

    def _timed_out(self, timeout: float) -> LDAPCommunicationError:
        self._gone("no answer in time")  # a late answer must never be read as the next one's
        return LDAPSocketReceiveError(f"no answer within {timeout:.2f}s")

    def _new_id(self) -> int:
        msg_id = self._next_id
        self._next_id = msg_id + 1 if msg_id < 0x7FFFFFFF else 1
        return msg_id

    def _send(self, op: bytes) -> int:
        if not self.alive:
            raise LDAPSocketSendError(f"cannot send: {self._lost or 'connection closed'}")
        assert self.transport is not None
        msg_id = self._new_id()
        self.transport.write(_message(msg_id, op))
        return msg_id

    async def _receive(self, msg_id: int) -> tuple[int, Any]:
        while True:
            size = _message_size(self._buf, self)
            if 0 < size <= len(self._buf):
                break
            if self._lost is not None:
                raise LDAPSessionTerminatedByServerError(self._lost)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message, self._buf = self._buf[:size], self._buf[size:]
        try:
            decoded = decode_message_fast(message)
            got, op, payload = decoded["messageID"], decoded["protocolOp"], decoded["payload"]
        except (IndexError, KeyError, TypeError, ValueError):
            raise self._garbled("undecodable message") from None
        if got != msg_id:
            # 0: an unsolicited notification (RFC 4511 §4.4), in practice a Notice of Disconnection
            raise self._garbled(f"message ID {got} while waiting for {msg_id}")
        return op, payload

    def _result(self, payload: Any) -> int:
        """The resultCode of an LDAPResult (and its diagnosticMessage, for logs)."""
        try:
            code = int(payload[0][3])
            message = bytes(payload[2][3]).decode(errors="replace")
        except (IndexError, TypeError, ValueError):
            raise self._garbled("undecodable LDAPResult") from None
        self.result = (code, message)
        return code

    def _garbled(self, what: str) -> LDAPCommunicationError:
        """The error for an answer that makes no sense; the connection is aborted."""
        self._gone(f"unexpected LDAP answer: {what}")
        return LDAPSessionTerminatedByServerError(f"unexpected LDAP answer: {what}")


def _pop_alive(pool: list[_Link]) -> _Link | None:
    """The most recently pooled connection that still looks alive (the others are closed)."""
    while pool:
        link = pool.pop()
        if link.alive:
            return link
        link.close()
    return None


def _message_size(buf: bytes, link: _Link) -> int:
    """The size of the LDAPMessage at the head of ``buf``; -1 if its length is not all there yet."""
    if len(buf) < 2:
        return -1
    if buf[0] != 0x30:
        raise link._garbled("not an LDAPMessage")
    first = buf[1]
    if not first & 0x80:
        return first + 2
    count = first & 0x7F
    if not 0 < count <= 4:
        raise link._garbled("unsupported BER length")
    if len(buf) < 2 + count:
        return -1
    size = 2 + count + int.from_bytes(buf[2 : 2 + count], "big")
    if size > _MAX_MESSAGE:
        raise link._garbled(f"a message of {size} bytes")
    return size


def _entry(payload: Any, link: _Link) -> tuple[bytes, dict[str, list[str]]]:
    """A SearchResultEntry: (DN, attributes by lower-case name → values that are UTF-8 text)."""
    try:
        dn = bytes(payload[0][3])
        attrs: dict[str, list[str]] = {}
        for attribute in payload[1][3]:
            kind, values = attribute[3]
            texts = attrs.setdefault(bytes(kind[3]).decode().lower(), [])
            for v in values[3]:
                with contextlib.suppress(UnicodeDecodeError):  # binary values are not for us
                    texts.append(bytes(v[3]).decode())
        dn.decode()
    except (IndexError, TypeError, ValueError):  # UnicodeDecodeError is a ValueError
        raise link._garbled("undecodable SearchResultEntry") from None
    return dn, attrs


# --- helpers ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse_dn(dn: str) -> tuple[tuple[str, str, str], ...]:
    """ldap3's DN parser, cached: group DNs repeat on every login, and parsing is pure Python."""
    return tuple(tuple(rdn) for rdn in parse_dn(dn))


@lru_cache(maxsize=4096)
def _dn_key(dn: str) -> tuple[tuple[str, str], ...]:
    """A DN compared case-insensitively, RDN by RDN (enough for the case-insensitive cn/ou/dc)."""
    return tuple((a.lower(), _unescape_dn_value(v).lower()) for a, v, _ in _parse_dn(dn))


def _unescape_dn_value(value: str) -> str:
    """RFC 4514 unescaping: ``\\,`` → ``,`` and ``\\c3\\a9`` → ``é``."""
    if "\\" not in value:
        return value
    out, i = bytearray(), 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode()
            i += 2
            continue
        out += c.encode()
        i += 1
    return out.decode("utf-8", errors="replace")


def _show(username: str) -> str:
    """The username for a log line: repr'd (no log injection through CR/LF) and truncated."""
    text = repr(username)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["LdapBackend", "LdapConfig"]
