"""Device-key backend for edge fleets (EV chargers, meters, inverters): a self-signed JWT → Identity.

A device holds its own private key (ES256 on P-256, or Ed25519 as ``EdDSA``/``Ed25519``); the
registry file holds the public half. To connect, the device mints a short-lived JWT and sends it
as its password (username = its device id), or as CONNECT's ``auth_token`` (the id is then its
``sub``)::

    header  {"alg": "ES256", "typ": "JWT"}
    claims  {"sub": "charger-0042", "iat": 1795000000, "exp": 1795000060, "jti": "<random>",
             "aud": "nats-edge"}                       # aud only if the backend requires one

One call checks, in order: size (before decoding), JWS shape, the device id (username, else the
unverified ``sub``; if both are given they must agree), that the device is in the registry,
that ``alg`` is allowed for *that device's key type* (a P-256 key verifies only ES256, an Ed25519
key only EdDSA/Ed25519), the signature, that the device is enabled, then the claims: ``iat``
and ``exp`` present, ``iat`` not in the future, ``exp - iat`` at most ``max_lifetime``, not expired,
``nbf``, ``aud`` if configured, and a ``jti`` that was not seen before within its validity window
(the replay cache remembers each accepted ``(device, jti)`` until its ``exp`` + leeway, bounded in
total and per device).

The registry (TOML or JSON, by file suffix) is reloaded when the file changes (checked at most
every ``reload_interval`` seconds). A registry that becomes unreadable or invalid refuses every
device (``device_registry``) until it is fixed: fail closed, a disabled device must not come back
because an edit went wrong. The file::

    [devices."charger-0042"]
    public_key = \"\"\"-----BEGIN PUBLIC KEY-----
    ...
    -----END PUBLIC KEY-----\"\"\"            # or: jwk = { kty = "OKP", crv = "Ed25519", x = "..." }
    groups = ["chargers", "site-berlin"]
    enabled = true                            # default true
    name = "Charger 42, bay 3"                # optional, default: the id
    attributes = { site = "berlin" }          # optional strings → Identity.attributes

(JSON: ``{"devices": {"charger-0042": {...}}}``.)
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import json
import logging
import math
import os
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from callout.backends import _jws
from callout.identity import (
    BackendConfigError,
    BackendUnavailable,
    DeviceDisabled,
    DeviceRegistryUnavailable,
    DeviceUnknown,
    Identity,
    InvalidInput,
    ReplayCacheFull,
    TokenAlgorithm,
    TokenAudience,
    TokenClaims,
    TokenLifetime,
    TokenReplayed,
)
from trustkit.errors import CalloutError

log = logging.getLogger("callout.backends.device")

#: Device ids: printable, no white space, at most 128 characters.
DEVICE_ID_RE = re.compile(r"[!-~]{1,128}")
_DEVICE_KEYS = frozenset({"public_key", "jwk", "groups", "enabled", "name", "attributes"})
#: A registry file rewritten within this many seconds of its mtime is re-read by content, since
#: two writes within one file-system timestamp tick can leave size and mtime unchanged.
_RACY_SECONDS = 2.0


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    """The registry file and the rules a device token must meet.

    ``algorithms``: the global allow-list, further narrowed per device by its key type.
    ``max_lifetime``: the longest ``exp - iat`` accepted (seconds). ``leeway``: clock skew allowed
    on ``iat``/``exp``/``nbf`` (devices' clocks drift). ``audience``: if set, ``aud`` must name it.
    ``replay_cache_size`` / ``max_tokens_per_device``: live ``jti`` values remembered in total / per
    device; beyond either, tokens are refused (``replay_cache_full``) rather than accepted without
    replay protection. ``identity_ttl``: seconds → ``Identity.expires_at`` (None: the policy's
    ``max_lifetime`` alone bounds the NATS user JWT; the device token only proves possession of
    the key at connect time). Invalid settings or an unloadable registry raise
    :class:`BackendConfigError` when the backend is built.
    """

    registry: str | os.PathLike[str]
    algorithms: tuple[str, ...] = ("ES256", "EdDSA", "Ed25519")
    max_lifetime: int = 300
    leeway: int = 30
    audience: str | None = None
    replay_cache_size: int = 100_000
    max_tokens_per_device: int = 100
    max_token_bytes: int = 4096
    reload_interval: float = 1.0
    identity_ttl: int | None = None
    source: str = "device"

    def __post_init__(self) -> None:
        if Path(self.registry).suffix.lower() not in (".toml", ".json"):
            raise BackendConfigError("registry must be a .toml or .json file")
        algs = _jws.check_algorithms("algorithms", self.algorithms)
        unusable = [a for a in algs if _jws.ASYMMETRIC_ALGORITHMS[a][0] == "RSA"]
        if unusable:
            raise BackendConfigError(f"device keys are P-256 or Ed25519: {', '.join(unusable)} cannot apply")
        object.__setattr__(self, "algorithms", algs)
        for name in ("max_lifetime", "replay_cache_size", "max_tokens_per_device", "max_token_bytes"):
            if not _int_at_least(getattr(self, name), 1):
                raise BackendConfigError(f"{name} must be an integer >= 1")
        if not _int_at_least(self.leeway, 0):
            raise BackendConfigError("leeway must be an integer >= 0")
        if self.identity_ttl is not None and not _int_at_least(self.identity_ttl, 1):
            raise BackendConfigError("identity_ttl must be an integer >= 1 or None")
        if self.audience is not None and (not isinstance(self.audience, str) or not self.audience):
            raise BackendConfigError("audience must be a non-empty string or None")
        r = self.reload_interval
        if isinstance(r, bool) or not isinstance(r, int | float) or not math.isfinite(r) or r < 0:
            raise BackendConfigError("reload_interval must be >= 0 seconds")


def _int_at_least(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@dataclass(frozen=True, slots=True)
class Device:
    """One registry entry."""

    id: str
    key: _jws.PublicKey = field(repr=False)
    algorithms: tuple[str, ...]  # what this key may verify, within the configured allow-list
    groups: tuple[str, ...]
    enabled: bool
    name: str
    attributes: Mapping[str, str]


def load_registry(
    path: str | os.PathLike[str], data: bytes, algorithms: tuple[str, ...]
) -> dict[str, Device]:
    """Parse a registry file's bytes. Raises ``ValueError`` naming the first problem."""
    try:
        if Path(path).suffix.lower() == ".toml":
            raw: Any = tomllib.loads(data.decode("utf-8"))
        else:
            raw = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"not valid {Path(path).suffix[1:].upper()}: {e}") from None
    if not isinstance(raw, dict) or set(raw) - {"devices"}:
        raise ValueError("the registry must have exactly one top-level table: devices")
    entries = raw.get("devices", {})
    if not isinstance(entries, dict):
        raise ValueError("'devices' must be a table of device id → entry")
    devices: dict[str, Device] = {}
    for device_id, entry in entries.items():
        where = f"devices.{device_id!r}"
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise ValueError(f"{where}: a device id is 1-128 printable characters without spaces")
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a table")
        unknown = sorted(set(entry) - _DEVICE_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        if ("public_key" in entry) == ("jwk" in entry):
            raise ValueError(f"{where}: give exactly one of public_key (PEM) or jwk")
        try:
            if "jwk" in entry:
                jwk = entry["jwk"]
                if not isinstance(jwk, dict):
                    raise ValueError("jwk must be a table")
                if "d" in jwk:
                    raise ValueError("a private JWK: only public keys belong in the registry")
                key = _jws.import_public_jwk(jwk)
            else:
                if not isinstance(entry["public_key"], str):
                    raise ValueError("public_key must be a PEM string")
                key = _jws.import_public_pem(entry["public_key"])
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        algs = _jws.key_algorithms(key, algorithms)
        if not algs:
            raise ValueError(f"{where}: no allowed algorithm fits its {key.key_type} key")
        groups = entry.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise ValueError(f"{where}: groups must be a list of non-empty strings")
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"{where}: enabled must be true or false")
        name = entry.get("name", device_id)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: name must be a non-empty string")
        attrs = entry.get("attributes", {})
        if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
            raise ValueError(f"{where}: attributes must be a table of strings")
        devices[device_id] = Device(
            id=device_id,
            key=key,
            algorithms=algs,
            groups=tuple(groups),
            enabled=enabled,
            name=name,
            attributes=MappingProxyType(dict(attrs)),
        )
    return devices


class ReplayCache:
    """Remembers ``(device, jti)`` until a deadline; bounded in total and per device.

    Pure (``now`` is an argument). :meth:`add` refuses a pair it has seen (:class:`TokenReplayed`)
    and refuses to grow past its bounds (:class:`ReplayCacheFull`): forgetting a live entry
    would reopen its replay window.
    """

    def __init__(self, size: int, per_device: int) -> None:
        self.size = size
        self.per_device = per_device
        self._until: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._count: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._until)

    def prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            until, key = heapq.heappop(self._heap)
            if self._until.get(key) == until:
                del self._until[key]
                self._count[key[0]] -= 1
                if not self._count[key[0]]:
                    del self._count[key[0]]

    def add(self, device: str, jti: str, until: float, now: float) -> None:
        self.prune(now)
        key = (device, jti)
        if key in self._until:
            raise TokenReplayed("this token (jti) was already used")
        if len(self._until) >= self.size:
            log.warning("device replay cache full (%d live token ids)", len(self._until))
            raise ReplayCacheFull("the replay cache is full")
        if self._count[device] >= self.per_device:
            log.warning("device %r has %d live token ids, refusing more", device, self._count[device])
            raise ReplayCacheFull("too many live tokens for this device")
        self._until[key] = until
        self._count[device] += 1
        heapq.heappush(self._heap, (until, key))


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[int, int, int, int]  # (st_dev, st_ino, st_size, st_mtime_ns)
    digest: bytes
    devices: Mapping[str, Device] | None  # None: the file is invalid (refuse everyone)
    error: str = ""


class DeviceBackend:
    """Authenticate devices by self-signed JWTs against the registry; see the module docstring.

    ``clock`` gives unix seconds (token times, replay window); ``monotonic`` paces registry checks.
    """

    def __init__(
        self,
        config: DeviceConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self._monotonic = monotonic
        self._path = Path(config.registry)
        self.replay = ReplayCache(config.replay_cache_size, config.max_tokens_per_device)
        self._checked_at = -math.inf
        self._reloading: asyncio.Task[None] | None = None
        loaded = self._read()
        if loaded.devices is None:
            raise BackendConfigError(f"device registry {self._path}: {loaded.error}")
        self._loaded = loaded
        log.info("device registry %s: %d device(s)", self._path, len(loaded.devices))

    # --- public API ----------------------------------------------------------------------------

    @property
    def devices(self) -> Mapping[str, Device]:
        """The registry as last loaded (empty while the file is invalid)."""
        return self._loaded.devices or {}

    async def ready(self) -> bool:
        """True if the registry file is loaded and valid (checked for changes first); raises
        :class:`DeviceRegistryUnavailable` otherwise (for ``/readyz``)."""
        await self._registry()
        return True

    async def authenticate(self, username: str, password: str) -> Identity:
        """The device ``username`` (or, if empty, the token's ``sub``) if ``password`` is a valid
        device token. Raises a :class:`CalloutError` with a stable code (see the module docstring)."""
        if not isinstance(username, str):
            raise InvalidInput("username must be a string")
        return await self._authenticate(username or None, password)

    async def authenticate_token(self, token: str) -> Identity:
        """Like :meth:`authenticate` with the device id taken from the token's ``sub``."""
        return await self._authenticate(None, token)

    # --- the checks ----------------------------------------------------------------------------

    async def _authenticate(self, device_id: str | None, token: str) -> Identity:
        cfg = self.config
        try:
            parsed = _jws.parse(token, max_bytes=cfg.max_token_bytes)
            sub = parsed.claims.get("sub")
            if device_id is None:
                if not isinstance(sub, str):
                    raise TokenClaims("no device id: give it as the username or in 'sub'")
                device_id = sub
            elif sub is not None and sub != device_id:
                raise TokenClaims("'sub' names another device than the username")
            if not DEVICE_ID_RE.fullmatch(device_id):
                raise InvalidInput("not a device id")
            devices = await self._registry()
            device = devices.get(device_id)
            if device is None:
                raise DeviceUnknown("no such device in the registry")
            alg = parsed.alg
            if alg not in device.algorithms:
                raise TokenAlgorithm(f"algorithm {alg!r} is not allowed for this device's key")
            _jws.verify(parsed, alg, device.key)
            if not device.enabled:
                raise DeviceDisabled("the device is disabled")
            return self._accept(device, parsed.claims)
        except CalloutError as e:
            log.info("device %s refused: %s (%s)", _show(device_id), e.code, e.message)
            raise
        except Exception:
            log.exception("unexpected error in the device backend for %s", _show(device_id))
            raise BackendUnavailable("device backend failed") from None

    def _accept(self, device: Device, claims: Mapping[str, Any]) -> Identity:
        cfg = self.config
        now = self._clock()
        exp, iat = _jws.check_times(claims, now=now, leeway=cfg.leeway, require_iat=True)
        assert iat is not None
        if exp <= iat:
            raise TokenClaims("'exp' is not after 'iat'")
        if exp - iat > cfg.max_lifetime:
            raise TokenLifetime(f"the token lives {exp - iat}s (max {cfg.max_lifetime}s)")
        if cfg.audience is not None and cfg.audience not in _jws.audiences(claims):
            raise TokenAudience("the token is not meant for this service (aud)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise TokenClaims("'jti' is missing or not a string of 1-256 characters")
        # last: only a token that passed every other check may occupy the replay cache
        self.replay.add(device.id, jti, until=exp + cfg.leeway, now=now)
        return Identity(
            subject=device.id,
            name=device.name,
            groups=device.groups,
            attributes=device.attributes,
            expires_at=int(now) + cfg.identity_ttl if cfg.identity_ttl else None,
            source=cfg.source,
        )

    # --- the registry file ---------------------------------------------------------------------

    async def _registry(self) -> Mapping[str, Device]:
        if self._monotonic() - self._checked_at >= self.config.reload_interval:
            task = self._reloading
            if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
                task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._check))
                self._reloading = task
            await asyncio.shield(task)  # parsing a large registry must not block the event loop
        devices = self._loaded.devices
        if devices is None:
            raise DeviceRegistryUnavailable(f"the device registry is invalid: {self._loaded.error}")
        return devices

    def _check(self) -> None:
        """Reload the registry if the file changed (runs in a worker thread)."""
        self._checked_at = self._monotonic()
        try:
            st = os.stat(self._path)
        except OSError as e:
            self._replace(_Loaded((0, 0, 0, 0), b"", None, f"cannot read it: {e.strerror}"))
            return
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        racy = time.time() - st.st_mtime < _RACY_SECONDS
        if stamp != self._loaded.stamp or racy:
            self._replace(self._read(self._loaded))

    def _read(self, previous: _Loaded | None = None) -> _Loaded:
        try:
            st = os.stat(self._path)
            data = self._path.read_bytes()
        except OSError as e:
            return _Loaded((0, 0, 0, 0), b"", None, f"cannot read it: {e.strerror}")
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        digest = hashlib.sha256(data).digest()
        if previous is not None and previous.digest == digest:
            return _Loaded(stamp, digest, previous.devices, previous.error)  # same content
        try:
            devices = load_registry(self._path, data, self.config.algorithms)
        except ValueError as e:
            return _Loaded(stamp, digest, None, str(e))
        return _Loaded(stamp, digest, MappingProxyType(devices))

    def _replace(self, loaded: _Loaded) -> None:
        old, self._loaded = self._loaded, loaded
        if loaded.digest == old.digest and loaded.error == old.error:
            return  # same content (or the same failure) as before
        if loaded.devices is None:
            log.error("device registry %s is unusable, refusing every device: %s", self._path, loaded.error)
        else:
            log.info("device registry %s reloaded: %d device(s)", self._path, len(loaded.devices))


def _show(device_id: str | None) -> str:
    text = repr(device_id)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["DEVICE_ID_RE", "Device", "DeviceBackend", "DeviceConfig", "ReplayCache", "load_registry"]
