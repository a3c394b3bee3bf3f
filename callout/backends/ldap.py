"""LDAP backend: username + password → :class:`~callout.identity.Identity`, through ``ldap3``.

One :meth:`LdapBackend.authenticate` call does, in a worker thread (ldap3 is blocking; STYLE rule 11):

1. check the input before any I/O: no empty password (an empty password would be an
   *unauthenticated bind*, which many servers answer with success), no NUL bytes, no control
   characters in the username, bounded lengths → :class:`InvalidInput`;
2. search, bound as the service account, for the user under ``user_base`` with the configured
   filter, the username escaped with ``escape_filter_chars`` (STYLE rule 12); no entry →
   :class:`UnknownUser`, two or more → :class:`AmbiguousUser` (never pick one);
3. bind as the entry's DN with the password on a fresh connection → :class:`InvalidCredentials` if
   refused;
4. read the groups, from ``memberOf`` or from a group search ``(member={dn})``.

Every outage, timeout, protocol error or misconfiguration is :class:`BackendUnavailable`. The whole
call is bounded by ``LdapConfig.timeout``; a worker thread that is still waiting on a hung server
finishes on its own within ``receive_timeout``. Details go to the ``callout.backends.ldap`` logger;
exception messages never contain a password (nor the server's error text).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

try:
    import ldap3
    from ldap3.core.exceptions import LDAPCommunicationError, LDAPException
    from ldap3.operation.search import parse_filter
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import parse_dn
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

    Timeouts are seconds: ``connect_timeout`` per TCP connect, ``receive_timeout`` per answer
    awaited on a socket, ``timeout`` for a whole :meth:`LdapBackend.authenticate`.

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
    max_workers: int = 8  # threads, hence concurrent LDAP conversations
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
    second pool of connections that only ever bind (a rebind replaces the previous identity, and
    no search runs on them); a bind that ends in an error drops its connection. Every connection
    gets a fresh ``ldap3.Server``: a shared one remembers a refused connect for about 5 s and
    would refuse to try again after the server is back.
    """

    def __init__(self, config: LdapConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="callout-ldap")
        self._idle: list[Any] = []  # bound, idle service connections (ldap3.Connection)
        self._bind_idle: list[Any] = []  # idle connections used only to check user passwords
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._tls = None
        if config.use_ssl or config.start_tls:
            import ssl

            self._tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if config.tls_verify else ssl.CERT_NONE,
                ca_certs_file=config.ca_certs_file,
            )

    # --- public API ----------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> Identity:
        """The identity of ``username`` if ``password`` is right.

        Raises :class:`InvalidInput`, :class:`UnknownUser`, :class:`AmbiguousUser`,
        :class:`InvalidCredentials` or :class:`BackendUnavailable` (down, slow, overloaded, closed,
        misconfigured). Never blocks the event loop.
        """
        self._check_input(username, password)
        if self._closed:
            raise BackendUnavailable("LDAP backend is closed")
        if self._pending >= self.config.max_pending:
            log.warning("LDAP backend overloaded (%d calls pending), refusing", self._pending)
            raise BackendUnavailable("LDAP backend is overloaded")
        deadline = time.monotonic() + self.config.timeout
        loop = asyncio.get_running_loop()
        self._pending += 1
        try:
            async with asyncio.timeout(self.config.timeout):
                return await loop.run_in_executor(
                    self._executor, self._authenticate_blocking, username, password, deadline
                )
        except asyncio.CancelledError:
            # close() cancels calls still queued for a worker: that is a refusal, not a cancellation
            # of the caller (which task.cancelling() would show).
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                raise BackendUnavailable("LDAP backend is closed") from None
            raise
        except TimeoutError:
            log.warning(
                "LDAP authentication of %s timed out after %.1fs", _show(username), self.config.timeout
            )
            raise BackendUnavailable("LDAP backend did not answer in time") from None
        finally:
            self._pending -= 1

    async def aclose(self) -> None:
        """Stop accepting calls, drop pooled connections and release the worker threads."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle + self._bind_idle, []
            self._bind_idle = []
        for conn in idle:
            _unbind_quietly(conn)

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

    # --- the blocking part, run in a worker thread ---------------------------------------------

    def _authenticate_blocking(self, username: str, password: str, deadline: float) -> Identity:
        try:
            if time.monotonic() >= deadline:  # waited in the queue past the deadline: do nothing
                raise BackendUnavailable("LDAP backend did not answer in time")
            dn, attrs = self._with_service(lambda c: self._find_user(c, username), deadline)
            self._bind_user(dn, password, deadline)
            if self.config.groups == "memberOf":
                groups = self._groups_from_member_of(attrs.get("memberOf", []))
            elif self.config.groups == "search":
                groups = self._with_service(lambda c: self._search_groups(c, dn), deadline)
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

    def _server(self) -> Any:
        return ldap3.Server(
            self.config.host,
            port=self.config.port,
            use_ssl=self.config.use_ssl,
            tls=self._tls,
            get_info=ldap3.NONE,
            connect_timeout=self.config.connect_timeout,
            mode=ldap3.IP_SYSTEM_DEFAULT,
        )

    def _open(self, user: str, password: str, deadline: float) -> tuple[Any, int]:
        """A new connection, TLS started if configured, bind attempted: (connection, result code)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendUnavailable("LDAP backend did not answer in time")
        if not password:  # belt and braces: never send an unauthenticated bind
            raise InvalidInput("password is empty")
        receive_timeout = max(0.05, min(self.config.receive_timeout, remaining))
        conn = ldap3.Connection(
            self._server(),
            user=user,
            password=password,
            auto_bind=ldap3.AUTO_BIND_NONE,
            client_strategy=ldap3.SYNC,
            read_only=True,
            raise_exceptions=False,
            auto_referrals=False,
            # ldap3 2.9.1 packs receive_timeout into SO_RCVTIMEO with struct 'LL': a float raises
            # struct.error. Give it whole seconds, then set the real (float) timeout on the socket.
            receive_timeout=math.ceil(receive_timeout),
            return_empty_attributes=False,
        )
        try:
            conn.open()
            if conn.socket is not None:
                conn.socket.settimeout(receive_timeout)
            if self.config.start_tls and not conn.start_tls():
                raise BackendUnavailable("LDAP StartTLS failed")
            conn.bind()
        except BaseException:
            _unbind_quietly(conn)
            raise
        return conn, conn.result.get("result", -1) if conn.result else -1

    def _open_service(self, deadline: float) -> Any:
        conn, code = self._open(self.config.bind_dn, self.config.bind_password, deadline)
        if code != _SUCCESS:
            _unbind_quietly(conn)
            log.error("LDAP service bind as %s refused: %s", self.config.bind_dn, _describe(conn))
            raise BackendUnavailable("LDAP service bind refused")
        return conn

    def _with_service(self, op: Callable[[Any], T], deadline: float) -> T:
        """Run ``op`` on a pooled service connection; one retry on a fresh one if a pooled one is dead."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._open_service(deadline)
        try:
            result = op(conn)
        except LDAPCommunicationError as e:
            _unbind_quietly(conn)
            if not reused:
                raise
            log.info("pooled LDAP service connection is dead (%s), reconnecting", type(e).__name__)
            conn = self._open_service(deadline)
            try:
                result = op(conn)
            except BaseException:
                _unbind_quietly(conn)
                raise
        except BaseException:
            _unbind_quietly(conn)
            raise
        with self._lock:
            if not self._closed and len(self._idle) < self.config.max_workers:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            _unbind_quietly(conn)
        return result

    def _time_limit(self) -> int:
        return max(1, math.ceil(self.config.receive_timeout))

    def _find_user(self, conn: Any, username: str) -> tuple[str, dict[str, list[str]]]:
        cfg = self.config
        search_filter = cfg.user_filter.replace("{username}", escape_filter_chars(username))
        wanted = [cfg.subject_attribute, cfg.name_attribute, *cfg.attributes]
        if cfg.groups == "memberOf":
            wanted.append("memberOf")  # operational: only returned when asked for by name
        conn.search(
            cfg.user_base,
            search_filter,
            search_scope=ldap3.SUBTREE if cfg.user_scope == "subtree" else ldap3.LEVEL,
            dereference_aliases=ldap3.DEREF_NEVER,
            attributes=sorted(set(wanted)),
            size_limit=2,
            time_limit=self._time_limit(),
        )
        code = conn.result.get("result", -1) if conn.result else -1
        entries = [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
        if code == _SIZE_LIMIT_EXCEEDED or len(entries) > 1:
            log.warning(
                "LDAP: %s matches %s entries under %s",
                _show(username),
                "2+" if code == _SIZE_LIMIT_EXCEEDED else len(entries),
                cfg.user_base,
            )
            raise AmbiguousUser("more than one directory entry matches the username")
        if code != _SUCCESS:
            log.error("LDAP user search under %s failed: %s", cfg.user_base, _describe(conn))
            if code == _NO_SUCH_OBJECT:
                log.error("LDAP user_base %s does not exist (misconfiguration?)", cfg.user_base)
            raise BackendUnavailable("LDAP user search failed")
        if not entries:
            raise UnknownUser("no directory entry matches the username")
        entry = entries[0]
        return entry["dn"], _decode(entry.get("raw_attributes") or {})

    def _bind_user(self, dn: str, password: str, deadline: float) -> None:
        if not dn:  # an empty DN + password could be taken as an anonymous bind
            raise BackendUnavailable("LDAP returned an entry without a DN")
        if not password:  # belt and braces: never send an unauthenticated bind
            raise InvalidInput("password is empty")
        with self._lock:
            conn = self._bind_idle.pop() if self._bind_idle else None
        code = self._rebind(conn, dn, password, deadline) if conn is not None else None
        if code is None:  # no pooled connection, or it was dead
            if conn is not None:
                _unbind_quietly(conn)
            conn, code = self._open(dn, password, deadline)
        try:
            if code == _SUCCESS:
                return
            if code in _BIND_REFUSED:
                log.info("LDAP bind as %s refused: %s", dn, _describe(conn))
                raise InvalidCredentials("wrong password")
            log.warning("LDAP bind as %s failed: %s", dn, _describe(conn))
            raise BackendUnavailable("LDAP bind failed")
        finally:
            self._release_bind(conn, code)

    def _rebind(self, conn: Any, dn: str, password: str, deadline: float) -> int | None:
        """Bind a pooled connection as ``dn``: the result code, or None if the connection is dead."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendUnavailable("LDAP backend did not answer in time")
        if conn.socket is not None:
            conn.socket.settimeout(max(0.05, min(self.config.receive_timeout, remaining)))
        try:
            conn.rebind(user=dn, password=password, read_server_info=False)
        except LDAPException as e:
            log.info("pooled LDAP bind connection is dead (%s), reconnecting", type(e).__name__)
            return None
        code = conn.result.get("result", -1) if conn.result else -1
        return None if code not in (_SUCCESS, *_BIND_REFUSED) and conn.closed else code

    def _release_bind(self, conn: Any, code: int) -> None:
        """Keep a user-bind connection for the next bind (it is only ever used to bind again: a
        search always runs on a service connection), unless the bind ended in an error."""
        if code == _SUCCESS or code in _BIND_REFUSED:
            with self._lock:
                if not self._closed and len(self._bind_idle) < self.config.max_workers:
                    self._bind_idle.append(conn)
                    return
        _unbind_quietly(conn)

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

    def _search_groups(self, conn: Any, dn: str) -> list[str]:
        cfg = self.config
        assert cfg.group_base is not None  # checked by LdapConfig
        conn.search(
            cfg.group_base,
            cfg.group_filter.replace("{dn}", escape_filter_chars(dn)),
            search_scope=ldap3.SUBTREE,
            dereference_aliases=ldap3.DEREF_NEVER,
            attributes=[cfg.group_name_attribute],
            size_limit=cfg.max_groups,
            time_limit=self._time_limit(),
        )
        code = conn.result.get("result", -1) if conn.result else -1
        if code != _SUCCESS:
            # A partial group list could grant more than the full one under a "not in group" rule.
            log.error("LDAP group search under %s failed: %s", cfg.group_base, _describe(conn))
            raise BackendUnavailable("LDAP group search failed")
        names = []
        for r in conn.response or []:
            if r.get("type") == "searchResEntry":
                values = _decode(r.get("raw_attributes") or {}).get(cfg.group_name_attribute, [])
                names.extend(values[:1])
        return names

    def _identity(self, dn: str, attrs: dict[str, list[str]], groups: list[str]) -> Identity:
        cfg = self.config
        subject = next(iter(attrs.get(cfg.subject_attribute, [])), "")
        if not subject:
            log.warning("LDAP entry %s has no %s, using its DN as subject", dn, cfg.subject_attribute)
            subject = dn
        name = next(iter(attrs.get(cfg.name_attribute, [])), subject)
        extra = {a: attrs[a][0] for a in cfg.attributes if attrs.get(a)}
        extra["dn"] = dn
        expires = int(self._clock()) + cfg.identity_ttl if cfg.identity_ttl else None
        return Identity(
            subject=subject,
            name=name,
            groups=tuple(groups),
            attributes=extra,
            expires_at=expires,
            source=cfg.source,
        )


# --- helpers ----------------------------------------------------------------------------------


def _decode(raw: dict[str, list[bytes]]) -> dict[str, list[str]]:
    """Raw attribute values as text; values that are not UTF-8 (binary attributes) are dropped."""
    out: dict[str, list[str]] = {}
    for attr, values in raw.items():
        texts = []
        for v in values:
            try:
                texts.append(v.decode("utf-8") if isinstance(v, bytes) else str(v))
            except UnicodeDecodeError:
                continue
        out[attr] = texts
    return out


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


def _describe(conn: Any) -> str:
    r = conn.result or {}
    return f"{r.get('result')} {r.get('description')} {r.get('message') or ''}".strip()


def _show(username: str) -> str:
    """The username for a log line: repr'd (no log injection through CR/LF) and truncated."""
    text = repr(username)
    return text if len(text) <= 80 else text[:77] + "..."


def _unbind_quietly(conn: Any) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: S110 - closing a connection that may already be dead
        pass


__all__ = ["LdapBackend", "LdapConfig"]
