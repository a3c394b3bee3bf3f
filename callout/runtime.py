"""Assembling and running ``trustkit-callout`` from a :class:`~callout.config.CalloutConfig`.

:func:`build` turns a config into live parts: the policy, the backends (by name, see
:data:`callout.config.BACKENDS`), the signing keys (operator mode: the target accounts' keys from
the trustkit store and keystore), the audit log, metrics and the decision ring, and the
:class:`~callout.service.CalloutService` wired to them. :func:`run` serves until stopped: the
NATS responder and (if ``[http] port`` is set) the HTTP face, in one event loop.

Operator mode signers: every account the policy names (rule ``account`` or the policy's default)
is looked up in the store by name or public key; its user JWTs are signed with its first
*unscoped* signing key found in the keystore, else with the account key itself. A scoped key is
never used (the server would replace the policy's permissions with the scope's template).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callout.audit import AuditLog, AuditRecord, DecisionRing
from callout.config import CalloutConfig, Secret
from callout.metrics import Metrics
from callout.policy import Policy
from callout.service import AccountSigner, CalloutService
from trustkit import nkeys
from trustkit.errors import CalloutError, NKeyError, StoreError
from trustkit.nkeys import KeyPair, PrefixByte

if TYPE_CHECKING:
    from trustkit.jwt.account import AccountClaims
    from trustkit.manage import Workspace
    from trustkit.store import Store

__all__ = ["Built", "Readiness", "build", "policy_accounts", "probe_backend", "read_seed", "run", "workspace"]

log = logging.getLogger("trustkit.callout")


def _error(message: str) -> CalloutError:
    return CalloutError(message, code="callout_config")


def read_seed(secret: Secret, kind: PrefixByte, what: str) -> KeyPair:
    """The key pair of the seed in ``secret``; refuses another key kind. Never shows the seed."""
    text = secret.reveal()
    try:
        kp = KeyPair.from_seed(text)
    except NKeyError:
        raise _error(f"{what} (from {secret.origin}) is not an nkey seed") from None
    if kp.kind is not kind:
        raise _error(
            f"{what} (from {secret.origin}) is a {kp.kind.name.lower()} seed, not {kind.name.lower()}"
        )
    return kp


# --- operator mode: the store --------------------------------------------------------------------


def workspace(cfg: CalloutConfig, env: Mapping[str, str] | None = None) -> Workspace:
    """The trustkit workspace of ``[issuer] home`` (a TRUSTKIT_HOME), else of the environment."""
    from trustkit.manage import Workspace

    environ = dict(os.environ if env is None else env)
    if cfg.issuer.home is not None:
        environ["TRUSTKIT_HOME"] = str(cfg.issuer.home)
    return Workspace.from_env(environ)


def open_store(cfg: CalloutConfig) -> tuple[Workspace, Store]:
    ws = workspace(cfg)
    try:
        operator = ws.default_operator(cfg.issuer.operator)
        return ws, ws.open(operator)
    except StoreError as exc:
        raise _error(f"operator mode needs the trustkit store: {exc.message}") from None


def account_claims(store: Store, ref: str) -> AccountClaims:
    """An account of ``store`` by name or public key. Raises a config error if it is not there."""
    try:
        if nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT):
            name = store.find_account(ref)
            if name is None:
                raise _error(f"account {ref} is not in the store {store.dir}")
            return store.account_claims(name)
        return store.account_claims(ref)
    except StoreError as exc:
        raise _error(f"account {ref!r}: {exc.message}") from None


def user_signer(ws: Workspace, claims: AccountClaims) -> KeyPair:
    """The first unscoped signing key of the account in the keystore, else the account key."""
    for key, scope in sorted(claims.signing_keys.items()):
        if scope is None and (kp := ws.keystore.get_key(key)) is not None:
            return kp
    kp = ws.keystore.get_key(claims.sub)
    if kp is None:
        raise _error(
            f"no key of account {claims.name!r} ({claims.sub}) that may sign users is in the keystore "
            f"{ws.keystore.root} (its account key or an unscoped signing key)"
        )
    return kp


def policy_accounts(policy: Policy) -> list[str]:
    """Every account the policy may name, in order of first appearance."""
    refs = [r.account for r in policy.rules if r.account is not None]
    if policy.account is not None:
        refs.append(policy.account)
    return list(dict.fromkeys(refs))


@dataclass(frozen=True)
class Signing:
    """What signs: the issuer key, the callout account, and (operator mode) target signers."""

    issuer: KeyPair
    callout_account: str
    accounts: dict[str, AccountSigner] = field(default_factory=dict)


def resolve_signing(cfg: CalloutConfig, policy: Policy) -> Signing:
    """The keys :class:`CalloutService` needs, from the config (and the store in operator mode)."""
    seed = cfg.issuer.seed
    if cfg.mode == "config":
        if seed is None:
            raise _error("[issuer] seed is required (seed_file, or TRUSTKIT_CALLOUT_ISSUER_SEED)")
        own = read_seed(seed, PrefixByte.ACCOUNT, "[issuer] seed")
        return Signing(own, own.public_key)
    issuer = read_seed(seed, PrefixByte.ACCOUNT, "[issuer] seed") if seed is not None else None
    ref = cfg.issuer.account or (issuer.public_key if issuer is not None else None)
    if ref is None:
        raise _error("operator mode: set [issuer] account (the callout account) or [issuer] seed")
    targets = policy_accounts(policy)
    needs_store = (
        issuer is None
        or not nkeys.is_valid_public_key(ref, PrefixByte.ACCOUNT)
        or any(t != ref for t in targets)
    )
    if not needs_store:
        assert issuer is not None
        if issuer.public_key != ref:
            raise _error(
                f"[issuer] seed {issuer.public_key} is not the account {ref}: a signing key needs the "
                "store to prove it belongs to the account ([issuer] home/operator)"
            )
        return Signing(issuer, ref)
    ws, store = open_store(cfg)
    callout = account_claims(store, ref)
    if issuer is None:
        issuer = user_signer(ws, callout)
    elif issuer.public_key != callout.sub:
        if issuer.public_key not in callout.signing_keys:
            raise _error(
                f"[issuer] seed {issuer.public_key} is neither the account {callout.name!r} ({callout.sub}) "
                "nor one of its signing keys: nats-server would refuse every response"
            )
        if callout.signing_keys[issuer.public_key] is not None:
            raise _error(
                f"[issuer] seed {issuer.public_key} is a scoped signing key of {callout.name!r}: use the "
                "account key or an unscoped signing key"
            )
    accounts: dict[str, AccountSigner] = {}
    for target in targets:
        if target in (callout.sub, callout.name):
            continue
        claims = account_claims(store, target)
        signer = AccountSigner(claims.sub, user_signer(ws, claims), claims.name)
        accounts[target] = accounts[claims.sub] = accounts[claims.name] = signer
    return Signing(issuer, callout.sub, accounts)


# --- readiness -----------------------------------------------------------------------------------


async def probe_backend(name: str, backend: Any, timeout: float) -> str | None:
    """None if ``backend`` is reachable, else a short reason (never a secret).

    Uses the backend's own ``ready()``/``probe()`` coroutine if it has one (LDAP: a service bind
    plus a read of ``user_base``); a backend with no way to probe counts as reachable.
    """
    try:
        for method in ("ready", "probe"):
            fn = getattr(backend, method, None)
            if fn is not None and asyncio.iscoroutinefunction(fn):
                result = await asyncio.wait_for(fn(), timeout)
                return None if result in (None, True) else f"{name}: not ready"
        return None
    except TimeoutError:
        return f"{name}: no answer within {timeout:.1f}s"
    except CalloutError as exc:
        return f"{name}: {exc.message}"
    except Exception as exc:
        return f"{name}: {type(exc).__name__}"


class Readiness:
    """``/readyz``: NATS connected and every backend reachable (probe results cached briefly)."""

    def __init__(
        self,
        service: CalloutService,
        backends: Mapping[str, Any],
        *,
        cache_seconds: float = 5.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.backends = dict(backends)
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._clock = clock
        self._cached: tuple[float, list[str]] | None = None
        self._lock = asyncio.Lock()

    async def backend_reasons(self) -> list[str]:
        async with self._lock:
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            results = await asyncio.gather(
                *(probe_backend(n, b, self.timeout) for n, b in self.backends.items())
            )
            reasons = [r for r in results if r is not None]
            self._cached = (self._clock(), reasons)
            return reasons

    async def check(self) -> tuple[bool, list[str]]:
        reasons = [] if self.service.connected else ["nats: not connected"]
        reasons += await self.backend_reasons()
        return not reasons, reasons


# --- assembly ------------------------------------------------------------------------------------


@dataclass
class Built:
    config: CalloutConfig
    policy: Policy
    service: CalloutService
    backends: dict[str, Any]
    ring: DecisionRing
    metrics: Metrics
    audit_log: AuditLog | None
    started: float = field(default_factory=time.time)

    async def close(self) -> None:
        for name, backend in self.backends.items():
            try:
                if hasattr(backend, "aclose"):
                    await backend.aclose()
                elif hasattr(backend, "close"):
                    result = backend.close()
                    if isinstance(result, Awaitable):
                        await result
            except Exception as exc:  # closing must go on for the others
                log.warning("closing backend %s failed: %s", name, type(exc).__name__)
        if self.audit_log is not None:
            await asyncio.to_thread(self.audit_log.close)


def build(cfg: CalloutConfig, *, now: Callable[[], float] = time.time) -> Built:
    """Everything :func:`run` serves with. Raises :class:`CalloutError` (``callout_config``,
    ``policy_invalid``, ``callout_audit``) or a backend's config error; opens no network."""
    policy = cfg.load_policy()
    if not cfg.backends:
        raise _error("no backend configured: add [backend.ldap] (or oidc, device)")
    password_name, token_name = cfg.backend_roles()
    signing = resolve_signing(cfg, policy)
    xkey = read_seed(cfg.xkey.seed, PrefixByte.CURVE, "[xkey] seed") if cfg.xkey.seed is not None else None
    backends = {name: section.build() for name, section in cfg.backends.items()}
    ring = DecisionRing(cfg.audit.ring_size)
    metrics = Metrics()
    audit_log = AuditLog(cfg.audit.file, cfg.index_file()) if cfg.audit.file is not None else None

    def sink(record: AuditRecord) -> None:
        ring.add(record)
        metrics.observe(record)
        if audit_log is not None:
            audit_log.write(record)

    try:
        service = CalloutService(
            signing.issuer,
            policy,
            backends[password_name] if password_name else None,
            mode=cfg.mode,
            callout_account=signing.callout_account,
            accounts=signing.accounts,
            token_backend=backends[token_name] if token_name else None,
            backend_label=password_name or "",
            token_backend_label=token_name,
            token_passwords=cfg.routing.token_passwords,
            xkey=xkey,
            allowed_server_keys=cfg.server.allowed_keys or None,
            now=now,
            audit=sink,
            backend_timeout=cfg.limits.backend_timeout,
            leeway=cfg.limits.leeway,
            drop_refusals=cfg.limits.drop_refusals,
            error_text=cfg.limits.error_text,
            max_in_flight=cfg.limits.max_in_flight,
        )
    except BaseException:
        if audit_log is not None:
            audit_log.close()
        raise
    return Built(cfg, policy, service, backends, ring, metrics, audit_log)


# --- running -------------------------------------------------------------------------------------


async def _nats_error(exc: Exception) -> None:
    log.warning("nats: %s", str(exc) or type(exc).__name__)


async def _nats_reconnected() -> None:
    log.info("nats: reconnected")


async def run(
    cfg: CalloutConfig,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[Built, int | None], None] | None = None,
    built: Built | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT when running in the main thread).

    ``ready(built, http_port)`` is called once the responder is subscribed. The NATS connection
    is retried until it succeeds and reconnects forever (``/readyz`` says 503 meanwhile).
    Raises :class:`CalloutError` on configuration errors (before serving anything).
    """
    b = built if built is not None else build(cfg)
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    http = None
    try:
        if cfg.http.port is not None:
            from callout.http import HttpContext, start_http

            readiness = Readiness(b.service, b.backends, cache_seconds=cfg.http.ready_cache)
            token = cfg.http.admin_token.reveal() if cfg.http.admin_token is not None else None
            if token is None:
                log.warning("http: no admin token configured; /v1/decisions refuses every request")
            ctx = HttpContext(
                ready=readiness.check,
                metrics=lambda: b.metrics.render(_gauges(b)),
                decisions=lambda n: [r.to_json() for r in b.ring.recent(n)],
                admin_token=token,
                ring_size=cfg.audit.ring_size,
            )
            http = await start_http(ctx, cfg.http.host, cfg.http.port)
            log.info("http: listening on %s:%d", cfg.http.host, http.port)
        await _serve_nats(cfg, b, stop, lambda: ready(b, http.port if http else None) if ready else None)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if http is not None:
            await http.stop()
        await b.close()


def _gauges(b: Built) -> dict[str, tuple[str, float]]:
    return {
        "trustkit_callout_nats_connected": (
            "1 while the responder's NATS connection is up.",
            b.service.connected,
        ),
        "trustkit_callout_in_flight": ("Authorization requests being handled now.", b.service.in_flight),
        "trustkit_callout_start_time_seconds": ("Unix time the service started.", b.started),
    }


async def _serve_nats(
    cfg: CalloutConfig, b: Built, stop: asyncio.Event, on_ready: Callable[[], None]
) -> None:
    n = cfg.nats
    subscribed = asyncio.Event()
    password = n.password.reveal() if n.password is not None else None

    async def disconnected() -> None:
        if stop.is_set():
            log.info("nats: disconnected (stopping)")
        else:
            log.warning("nats: disconnected; reconnecting")

    task = asyncio.create_task(
        b.service.run(
            n.url,
            creds=str(n.creds_file) if n.creds_file is not None else None,
            user=n.user,
            password=password,
            queue_group=n.queue_group,
            ready=subscribed,
            stop=stop,
            name=n.name,
            connect_timeout=n.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # also retries the first connect (nats-py), logging each failure
            reconnect_time_wait=2,
            error_cb=_nats_error,
            disconnected_cb=disconnected,
            reconnected_cb=_nats_reconnected,
        )
    )
    waiter = asyncio.create_task(subscribed.wait())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if subscribed.is_set():
            log.info("serving %s on %s (mode %s)", "$SYS.REQ.USER.AUTH", n.url, cfg.mode)
            on_ready()
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stopping: draining the NATS connection")
        if not task.done():
            if b.service.nc is None:  # still connecting: nothing to drain
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 10)
        elif not task.cancelled():
            task.result()  # re-raise what ended the responder
    finally:
        for t in (waiter, stopper):
            t.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
