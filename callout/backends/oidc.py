"""OIDC backend (Okta first): a signed JWT access token → :class:`~callout.identity.Identity`.

The token arrives in CONNECT's ``auth_token`` (:meth:`OidcBackend.authenticate_token`) or as the
password (:meth:`OidcBackend.authenticate`; the username is not used). One call:

1. refuses a token over ``max_token_bytes`` before decoding anything, then parses the compact JWS
   (``callout.backends._jws``: shape, no duplicate header members, no ``crit``, no JWE);
2. checks ``alg`` against the allow-list (default RS256, ES256; ``none`` and HMAC cannot be
   configured at all) and — unverified, only to refuse early — that ``iss`` is the configured
   issuer, so foreign tokens never cause a JWKS fetch;
3. finds the key by ``kid`` in the cached JWKS. The JWKS (and the discovery document that names
   it) is fetched with httpx on first use and again once ``jwks_ttl`` has passed; an unknown
   ``kid`` triggers one refresh, at most every ``jwks_refresh_interval`` seconds, so a flood of
   random kids costs the IdP one request per interval. Concurrent callers share one fetch;
4. verifies the signature with a key whose type fits the algorithm, then checks ``iss``, ``aud``,
   ``exp`` (required), ``nbf`` and ``iat`` with ``leeway`` seconds of skew;
5. builds the identity from configurable claims; ``expires_at`` is the token's ``exp``, so the
   policy never issues a NATS user JWT that outlives the IdP token.

If the IdP cannot be reached, the cached keys keep working until ``jwks_ttl`` is over; after that
every token is refused with ``idp_unavailable`` (fail closed), and a new fetch is tried at most
every ``idp_retry_interval`` seconds. Every refusal is a :class:`CalloutError` with a stable code
(see ``docs/callout-backends.md``); the token itself is never logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

try:
    import httpx
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the callout OIDC backend needs httpx: pip install 'httpx>=0.27'") from e

from callout.backends import _jws
from callout.identity import (
    BackendConfigError,
    BackendUnavailable,
    Identity,
    IdpUnavailable,
    TokenAlgorithm,
    TokenAudience,
    TokenClaims,
    TokenIssuer,
    TokenKeyUnknown,
)
from trustkit.errors import CalloutError

log = logging.getLogger("callout.backends.oidc")

DISCOVERY_PATH = "/.well-known/openid-configuration"

_CLAIM_PATH_RE = re.compile(r"[^\s.]+(\.[^\s.]+)*")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(where: str, url: object) -> None:
    """``https://…`` (or ``http://`` to a loopback address); raises :class:`BackendConfigError`."""
    if not isinstance(url, str):
        raise BackendConfigError(f"{where} must be a URL string")
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise BackendConfigError(f"{where} is not a usable URL: {url!r}")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname)):
        return
    raise BackendConfigError(f"{where} must use https:// (http:// only to a loopback address): {url!r}")


@dataclass(frozen=True, kw_only=True)
class OidcConfig:
    """Where the IdP is and what a token must look like.

    ``issuer`` is compared exactly with ``iss`` and with the discovery document's ``issuer`` (OIDC
    Discovery §4.3). The discovery document is ``{issuer}/.well-known/openid-configuration``
    unless ``discovery_url`` is set; ``jwks_uri`` skips discovery. ``audience``: the accepted
    ``aud`` values (one string or several; a token passes if its ``aud`` names any of them).

    Claims are named by path: ``groups_claim = "realm_access.roles"`` walks nested objects; a claim
    whose literal name contains dots (``https://example.com/groups``) is found first. Groups may be
    a list of strings or one space-separated string; ``None`` disables groups. ``name_claims`` are
    tried in order (falling back to the subject); ``attribute_claims`` are copied (scalars only)
    into ``Identity.attributes`` under their path.

    Times are seconds. ``leeway``: clock skew allowed on ``exp``/``nbf``/``iat``. ``jwks_ttl``: how
    long fetched keys are used without asking again. ``jwks_refresh_interval``: minimum time between
    two fetches caused by unknown ``kid`` values. ``idp_retry_interval``: minimum time between
    fetch attempts after a failed one. ``http_timeout``: one whole refresh (discovery + JWKS).
    Invalid settings raise :class:`BackendConfigError`.
    """

    issuer: str
    audience: str | tuple[str, ...]
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    discovery_url: str | None = None
    jwks_uri: str | None = None
    subject_claim: str = "sub"
    name_claims: tuple[str, ...] = ("name", "preferred_username", "email")
    groups_claim: str | None = "groups"
    attribute_claims: tuple[str, ...] = ()
    max_groups: int = 1000
    leeway: int = 30
    jwks_ttl: float = 300.0
    jwks_refresh_interval: float = 30.0
    idp_retry_interval: float = 5.0
    http_timeout: float = 3.0
    max_token_bytes: int = 8192
    max_document_bytes: int = 1 << 20
    max_keys: int = 100
    ca_file: str | None = None  # None: the system CA store
    trust_env: bool = True  # honour HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE from the environment
    source: str = "oidc"

    def __post_init__(self) -> None:
        check_url("issuer", self.issuer)
        if urlsplit(self.issuer).query:
            raise BackendConfigError("issuer must not have a query")
        if self.discovery_url is not None:
            check_url("discovery_url", self.discovery_url)
        if self.jwks_uri is not None:
            check_url("jwks_uri", self.jwks_uri)
        aud = (self.audience,) if isinstance(self.audience, str) else tuple(self.audience)
        if not aud or not all(isinstance(a, str) and a for a in aud):
            raise BackendConfigError("audience must name at least one non-empty audience")
        object.__setattr__(self, "audience", aud)
        object.__setattr__(self, "algorithms", _jws.check_algorithms("algorithms", self.algorithms))
        for name in ("name_claims", "attribute_claims"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise BackendConfigError(f"{name} must be a list of claim paths")
            object.__setattr__(self, name, tuple(value))
        paths = [self.subject_claim, *self.name_claims, *self.attribute_claims]
        if self.groups_claim is not None:
            paths.append(self.groups_claim)
        for path in paths:
            if not isinstance(path, str) or not _CLAIM_PATH_RE.fullmatch(path):
                raise BackendConfigError(f"not a claim path: {path!r}")
        for name in ("leeway", "max_groups", "max_token_bytes", "max_document_bytes", "max_keys"):
            value, low = getattr(self, name), 0 if name == "leeway" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise BackendConfigError(f"{name} must be an integer >= {low}")
        for name in ("jwks_ttl", "http_timeout"):
            if not _positive(getattr(self, name)):
                raise BackendConfigError(f"{name} must be > 0 seconds")
        for name in ("jwks_refresh_interval", "idp_retry_interval"):
            value = getattr(self, name)
            if not _positive(value) and value != 0:
                raise BackendConfigError(f"{name} must be >= 0 seconds")

    @property
    def audiences(self) -> tuple[str, ...]:
        aud = self.audience
        return (aud,) if isinstance(aud, str) else aud

    @property
    def discovery(self) -> str:
        return self.discovery_url or self.issuer.rstrip("/") + DISCOVERY_PATH


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value > 0
    )


class _FetchError(Exception):
    """Internal: discovery or JWKS could not be fetched or used (message is for the log)."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    key: _jws.PublicKey


class OidcBackend:
    """Verify OIDC access tokens (JWT) from one issuer; see the module docstring for the steps.

    ``clock`` gives unix seconds for the token's time claims; ``monotonic`` drives the JWKS cache.
    ``fetches`` counts JWKS fetch attempts (for tests and metrics).
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._monotonic = monotonic
        self._keys: tuple[_Key, ...] | None = None
        self._fetched_at = -math.inf
        self._last_attempt = -math.inf
        self._last_failed = False
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0

    # --- public API ----------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> Identity:
        """The identity in the token given as ``password`` (``username`` is not used)."""
        return await self.authenticate_token(password)

    async def authenticate_token(self, token: str) -> Identity:
        """The identity the token vouches for.

        Raises :class:`~callout.identity.InvalidInput` / ``TokenTooLarge`` (empty, oversized),
        ``TokenMalformed``, ``TokenAlgorithm``, ``TokenIssuer``, ``TokenKeyUnknown``,
        ``TokenSignature``, ``TokenAudience``, ``TokenExpired``, ``TokenNotYetValid``,
        ``TokenClaims`` or ``IdpUnavailable`` (all :class:`CalloutError`).
        """
        try:
            parsed = _jws.parse(token, max_bytes=self.config.max_token_bytes)
            alg = _jws.check_alg(parsed, self.config.algorithms)
            self._check_issuer(parsed.claims)  # unverified here: only to refuse before any fetch
            key = await self._key_for(parsed, alg)
            _jws.verify(parsed, alg, key)
            return self._identity(parsed.claims)
        except CalloutError as e:
            log.info("OIDC token refused: %s (%s)", e.code, e.message)
            raise
        except Exception:
            log.exception("unexpected error in the OIDC backend")
            raise BackendUnavailable("OIDC backend failed") from None

    async def ready(self) -> bool:
        """True if tokens can be checked now: the cached keys are fresh, or a fetch gets them.

        Raises :class:`IdpUnavailable` otherwise (for ``/readyz``; never contacts the IdP while
        the cached keys are fresh, nor sooner than ``idp_retry_interval`` after a failure).
        """
        if self._keys is None or self._monotonic() - self._fetched_at >= self.config.jwks_ttl:
            await self._refresh()
        return True

    async def aclose(self) -> None:
        """Cancel a JWKS fetch still running (the backend holds no other resources)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def __aenter__(self) -> OidcBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- claims --------------------------------------------------------------------------------

    def _check_issuer(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.config.issuer:
            raise TokenIssuer("the token's issuer is not the configured issuer")

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        cfg = self.config
        self._check_issuer(claims)
        if not set(_jws.audiences(claims)) & set(cfg.audiences):
            raise TokenAudience("the token is not meant for this service (aud)")
        exp, _ = _jws.check_times(claims, now=self._clock(), leeway=cfg.leeway)
        subject = _claim(claims, cfg.subject_claim)
        if not isinstance(subject, str) or not subject or len(subject) > 256 or _CONTROL_RE.search(subject):
            raise TokenClaims(f"'{cfg.subject_claim}' is missing or not a usable subject")
        name = next(
            (v for v in (_claim(claims, c) for c in cfg.name_claims) if isinstance(v, str) and v), subject
        )
        groups = self._groups(claims)
        attributes = {}
        for path in cfg.attribute_claims:
            value = _claim(claims, path)
            if isinstance(value, bool):
                attributes[path] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                attributes[path] = str(value)
        return Identity(
            subject=subject,
            name=name,
            groups=groups,
            attributes=attributes,
            expires_at=exp,
            source=cfg.source,
        )

    def _groups(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        path = self.config.groups_claim
        if path is None:
            return ()
        value = _claim(claims, path)
        if value is None:
            return ()
        if isinstance(value, str):
            groups: Sequence[Any] = value.split()
        elif isinstance(value, list):
            groups = value
        else:
            raise TokenClaims(f"'{path}' is neither a list of strings nor a string")
        if not all(isinstance(g, str) and g for g in groups):
            raise TokenClaims(f"'{path}' holds something other than non-empty strings")
        if len(groups) > self.config.max_groups:
            # a truncated list could grant less or (with rule order) other rights: refuse
            raise TokenClaims(f"'{path}' has more than {self.config.max_groups} groups")
        return tuple(groups)

    # --- keys ----------------------------------------------------------------------------------

    async def _key_for(self, parsed: _jws.ParsedToken, alg: str) -> _jws.PublicKey:
        if self._keys is None or self._monotonic() - self._fetched_at >= self.config.jwks_ttl:
            await self._refresh()
        found = self._select(parsed.kid, alg)
        if found is None and self._monotonic() - self._last_attempt >= self.config.jwks_refresh_interval:
            log.info("OIDC: no key for kid %r, refreshing the JWKS", parsed.kid)
            await self._refresh()
            found = self._select(parsed.kid, alg)
        if found is None:
            raise TokenKeyUnknown(f"no signing key with kid {parsed.kid!r}")
        return found

    def _select(self, kid: str | None, alg: str) -> _jws.PublicKey | None:
        """The key for ``kid``; None if unknown; raises TokenAlgorithm/TokenKeyUnknown if unusable."""
        keys = self._keys or ()
        if kid is None:
            # no kid: acceptable only when exactly one key could have signed (as Authlib does)
            fitting = [k.key for k in keys if _jws.key_fits(alg, k.key)]
            if len(fitting) > 1:
                raise TokenKeyUnknown("the token has no kid and several keys fit its algorithm")
            return fitting[0] if fitting else None
        for k in keys:
            if k.kid == kid:
                if not _jws.key_fits(alg, k.key):
                    raise TokenAlgorithm(f"algorithm {alg} does not fit key {kid!r} ({k.key.key_type})")
                return k.key
        return None

    async def _refresh(self) -> None:
        """Fetch discovery + JWKS once (shared by concurrent callers). Raises IdpUnavailable if the
        fetch fails or is not tried (retry interval) and the cached keys are past their TTL."""
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            if self._last_failed and self._monotonic() - self._last_attempt < self.config.idp_retry_interval:
                self._raise_if_stale("the identity provider failed recently; not asking again yet")
                return
            task = loop.create_task(self._fetch())
            task.add_done_callback(_retrieve)
            self._inflight = task
        try:
            # shielded: a caller that gives up (service timeout) does not abort the shared fetch
            await asyncio.shield(task)
        except _FetchError as e:
            raise IdpUnavailable(f"cannot get the identity provider's keys: {e}") from None

    def _raise_if_stale(self, why: str) -> None:
        if self._keys is None or self._monotonic() - self._fetched_at >= self.config.jwks_ttl:
            raise IdpUnavailable(f"cannot get the identity provider's keys: {why}")

    async def _fetch(self) -> None:
        cfg = self.config
        self._last_attempt = self._monotonic()
        self.fetches += 1
        try:
            async with asyncio.timeout(cfg.http_timeout):
                async with httpx.AsyncClient(
                    timeout=cfg.http_timeout,
                    follow_redirects=False,
                    trust_env=cfg.trust_env,
                    verify=cfg.ca_file if cfg.ca_file else True,
                    headers={"Accept": "application/json"},
                ) as client:
                    jwks_uri = cfg.jwks_uri or await self._discover(client)
                    keys = self._parse_jwks(await self._get_json(client, jwks_uri, "JWKS"))
        except TimeoutError:
            self._failed(f"no answer within {cfg.http_timeout}s")
        except _FetchError as e:
            self._failed(str(e))
        self._keys = keys
        self._fetched_at = self._monotonic()
        self._last_failed = False
        log.info("OIDC: fetched %d signing key(s) from %s", len(keys), cfg.issuer)

    def _failed(self, why: str) -> NoReturn:
        self._last_failed = True
        log.warning("OIDC: cannot refresh the keys of %s: %s", self.config.issuer, why)
        raise _FetchError(why)

    async def _discover(self, client: httpx.AsyncClient) -> str:
        doc = await self._get_json(client, self.config.discovery, "discovery document")
        if doc.get("issuer") != self.config.issuer:
            # OIDC Discovery §4.3: the document must name exactly the issuer we trust
            raise _FetchError(f"discovery names issuer {doc.get('issuer')!r}, not {self.config.issuer!r}")
        jwks_uri = doc.get("jwks_uri")
        try:
            check_url("jwks_uri", jwks_uri)
        except BackendConfigError as e:
            raise _FetchError(f"discovery document: {e.message}") from None
        assert isinstance(jwks_uri, str)
        return jwks_uri

    async def _get_json(self, client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
        limit = self.config.max_document_bytes
        try:
            async with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise _FetchError(f"{what} at {url}: HTTP {resp.status_code}")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise _FetchError(f"{what} at {url} is larger than {limit} bytes")
        except httpx.HTTPError as e:
            raise _FetchError(f"{what} at {url}: {type(e).__name__}: {e}") from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise _FetchError(f"{what} at {url} is not JSON") from None
        if not isinstance(doc, dict):
            raise _FetchError(f"{what} at {url} is not a JSON object")
        return doc

    def _parse_jwks(self, doc: Mapping[str, Any]) -> tuple[_Key, ...]:
        raw = doc.get("keys")
        if not isinstance(raw, list):
            raise _FetchError("the JWKS has no 'keys' list")
        if len(raw) > self.config.max_keys:
            raise _FetchError(f"the JWKS has {len(raw)} keys (max {self.config.max_keys})")
        keys: list[_Key] = []
        seen: set[str | None] = set()
        for i, jwk in enumerate(raw):
            if not isinstance(jwk, dict):
                log.warning("OIDC: JWKS entry %d is not an object, skipped", i)
                continue
            kid = jwk.get("kid") if isinstance(jwk.get("kid"), str) else None
            if jwk.get("use", "sig") != "sig":
                continue  # an encryption key
            try:
                key = _jws.import_public_jwk(jwk)
            except ValueError as e:
                log.warning("OIDC: JWKS key %r skipped: %s", kid, e)
                continue
            if not _jws.key_algorithms(key, self.config.algorithms):
                continue  # no allowed algorithm can use it
            if kid in seen:
                log.warning("OIDC: duplicate kid %r in the JWKS, keeping the first", kid)
                continue
            seen.add(kid)
            keys.append(_Key(kid, key))
        if not keys:
            raise _FetchError("the JWKS has no usable signing key for the allowed algorithms")
        return tuple(keys)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a fetch's exception as retrieved: all its callers may have given up already."""
    if not task.cancelled():
        task.exception()


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path; a literal member named ``path`` wins."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


__all__ = ["DISCOVERY_PATH", "OidcBackend", "OidcConfig", "check_url"]
