"""The device-key backend: self-signed ES256 / Ed25519 device JWTs against a registry file.

Device keys are real (cryptography); tokens are built by hand here, independently of the JOSE
library the backend uses. The registry is a real file that tests rewrite while the backend runs.
Time is injected (``clock``), so expiry and replay windows are exact and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from callout.backends.device import DeviceBackend, DeviceConfig, ReplayCache
from callout.identity import BackendConfigError, Identity
from trustkit.errors import CalloutError

T = TypeVar("T")
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# --- devices, tokens and registry files -----------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem(key: PrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign_with(key: PrivateKey) -> Callable[[bytes], bytes]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign

    def es256(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return es256


def mint(
    key: PrivateKey | None,
    claims: dict[str, Any],
    *,
    alg: str | None = None,
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    if alg is None:
        alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    signer = sign if sign is not None else sign_with(key) if key is not None else (lambda _: b"")
    return f"{header}.{payload}.{b64(signer(f'{header}.{payload}'.encode()))}"


class Clock:
    def __init__(self) -> None:
        self.t = float(int(time.time()))

    def __call__(self) -> float:
        return self.t


def claims(device: str | None, clock: Clock, *, life: int = 60, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"iat": int(clock.t), "exp": int(clock.t) + life, "jti": uuid.uuid4().hex}
    if device is not None:
        c["sub"] = device
    return {**c, **extra}


def toml_entry(device_id: str, entry: dict[str, Any]) -> str:
    lines = [f"[devices.{json.dumps(device_id)}]"]
    for k, v in entry.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, dict):
            inner = ", ".join(f"{ik} = {json.dumps(iv)}" for ik, iv in v.items())
            lines.append(f"{k} = {{ {inner} }}")
        else:
            lines.append(f"{k} = {json.dumps(v)}")  # JSON strings and arrays are TOML too
    return "\n".join(lines)


def write_registry(path: Path, devices: dict[str, dict[str, Any]], *, atomic: bool = True) -> None:
    if path.suffix == ".json":
        text = json.dumps({"devices": devices})
    else:
        text = "\n\n".join(toml_entry(d, e) for d, e in devices.items()) + "\n"
    if atomic:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


class Fleet:
    """A registry file and the private keys of its devices."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, PrivateKey] = {}
        self.entries: dict[str, dict[str, Any]] = {}

    def add(self, device_id: str, key: PrivateKey | None = None, **entry: Any) -> PrivateKey:
        key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        self.keys[device_id] = key
        self.entries[device_id] = {"public_key": pem(key), **entry}
        return key

    def write(self, *, atomic: bool = True) -> None:
        write_registry(self.path, self.entries, atomic=atomic)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    f = Fleet(tmp_path / "devices.toml")
    f.add("charger-0001", groups=["chargers", "site-berlin"], name="Charger 1", attributes={"site": "berlin"})
    f.add("meter-0002", ed25519.Ed25519PrivateKey.generate(), groups=["meters"])
    f.add("inverter-0003", groups=["inverters"], enabled=False)
    f.write()
    return f


def make(fleet: Fleet, clock: Clock, **kw: Any) -> DeviceBackend:
    kw.setdefault("reload_interval", 0)
    return DeviceBackend(DeviceConfig(registry=fleet.path, **kw), clock=clock)


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def code_of(coro: Awaitable[Any]) -> str:
    async def main() -> str:
        try:
            got = await coro
        except CalloutError as e:
            return e.code
        raise AssertionError(f"accepted: {got!r}")

    return asyncio.run(main())


# --- good devices ---------------------------------------------------------------------------------


def test_es256_device(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    token = mint(fleet.keys["charger-0001"], claims("charger-0001", clock))
    assert run(b.authenticate("charger-0001", token)) == Identity(
        subject="charger-0001",
        name="Charger 1",
        groups=("chargers", "site-berlin"),
        attributes={"site": "berlin"},
        expires_at=None,
        source="device",
    )


@pytest.mark.parametrize("alg", ["EdDSA", "Ed25519"])
def test_ed25519_device(fleet: Fleet, clock: Clock, alg: str) -> None:
    b = make(fleet, clock, identity_ttl=600)
    ident = run(b.authenticate("meter-0002", mint(fleet.keys["meter-0002"], claims(None, clock), alg=alg)))
    assert (ident.subject, ident.name, ident.groups) == ("meter-0002", "meter-0002", ("meters",))
    assert ident.expires_at == int(clock.t) + 600


def test_device_id_from_sub(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    key = fleet.keys["meter-0002"]
    assert run(b.authenticate_token(mint(key, claims("meter-0002", clock)))).subject == "meter-0002"
    assert run(b.authenticate("", mint(key, claims("meter-0002", clock)))).subject == "meter-0002"
    # no id anywhere
    assert code_of(b.authenticate_token(mint(key, claims(None, clock)))) == "token_claims"
    # username and sub disagree
    other = mint(key, claims("charger-0001", clock))
    assert code_of(b.authenticate("meter-0002", other)) == "token_claims"


def test_json_registry_with_jwk(tmp_path: Path, clock: Clock) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    path = tmp_path / "devices.json"
    write_registry(path, {"pv-7": {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}, "groups": ["pv"]}})
    b = DeviceBackend(DeviceConfig(registry=path), clock=clock)
    assert run(b.authenticate("pv-7", mint(key, claims(None, clock)))).groups == ("pv",)


# --- refusals -------------------------------------------------------------------------------------


def test_unknown_device(fleet: Fleet, clock: Clock) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert code_of(make(fleet, clock).authenticate("ghost-9", mint(stranger, claims(None, clock)))) == (
        "device_unknown"
    )


def test_wrong_key(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert code_of(b.authenticate("charger-0001", mint(stranger, claims(None, clock)))) == "token_signature"
    # another device's (valid) key
    borrowed = mint(fleet.keys["inverter-0003"], claims(None, clock))
    assert code_of(b.authenticate("charger-0001", borrowed)) == "token_signature"
    # a refused token does not burn its jti: the device's own token with the same jti still works
    c = claims(None, clock)
    assert code_of(b.authenticate("charger-0001", mint(stranger, c))) == "token_signature"
    assert run(b.authenticate("charger-0001", mint(fleet.keys["charger-0001"], c))).subject == "charger-0001"


def test_algorithm_must_fit_the_device_key(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    meter = fleet.keys["meter-0002"]  # Ed25519
    c = claims(None, clock)
    assert code_of(b.authenticate("meter-0002", mint(meter, c, alg="ES256"))) == "token_algorithm"
    assert code_of(b.authenticate("meter-0002", mint(None, c, alg="none"))) == "token_algorithm"
    # HS256 keyed with the device's public key (which is no secret)
    public = pem(fleet.keys["charger-0001"]).encode()
    forged = mint(None, c, alg="HS256", sign=lambda d: hmac.new(public, d, hashlib.sha256).digest())
    assert code_of(b.authenticate("charger-0001", forged)) == "token_algorithm"
    # EdDSA header on the P-256 device
    assert code_of(b.authenticate("charger-0001", mint(meter, c, alg="EdDSA"))) == "token_algorithm"
    # Ed25519 allowed only as the fully specified name
    strict = make(fleet, clock, algorithms=("ES256", "Ed25519"))
    assert code_of(strict.authenticate("meter-0002", mint(meter, claims(None, clock), alg="EdDSA"))) == (
        "token_algorithm"
    )
    assert run(strict.authenticate("meter-0002", mint(meter, claims(None, clock), alg="Ed25519")))


def test_expired(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock, leeway=30)
    key = fleet.keys["charger-0001"]
    token = mint(key, claims(None, clock, life=60))
    clock.t += 60 + 30
    assert code_of(b.authenticate("charger-0001", token)) == "token_expired"
    clock.t -= 1
    assert run(b.authenticate("charger-0001", token)).subject == "charger-0001"


def test_lifetime_and_time_claims(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock, max_lifetime=300, leeway=10)
    key = fleet.keys["charger-0001"]
    too_long = mint(key, claims(None, clock, life=301))
    assert code_of(b.authenticate("charger-0001", too_long)) == "token_lifetime"
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock, life=300))))
    future = claims(None, clock, iat=int(clock.t) + 11, exp=int(clock.t) + 60)
    assert code_of(b.authenticate("charger-0001", mint(key, future))) == "token_not_yet_valid"
    skewed = claims(None, clock, iat=int(clock.t) + 10, exp=int(clock.t) + 60)
    assert run(b.authenticate("charger-0001", mint(key, skewed)))  # within the leeway
    nbf = claims(None, clock, nbf=int(clock.t) + 20)
    assert code_of(b.authenticate("charger-0001", mint(key, nbf))) == "token_not_yet_valid"
    for missing in ("iat", "exp", "jti"):
        c = claims(None, clock)
        del c[missing]
        assert code_of(b.authenticate("charger-0001", mint(key, c))) == "token_claims", missing
    backwards = claims(None, clock, exp=int(clock.t) - 1 + 5, iat=int(clock.t) + 5)
    assert code_of(b.authenticate("charger-0001", mint(key, backwards))) == "token_claims"


def test_replayed_jti(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock, leeway=5)
    key = fleet.keys["charger-0001"]
    c = claims(None, clock, life=60)
    token = mint(key, c)
    assert run(b.authenticate("charger-0001", token))
    assert code_of(b.authenticate("charger-0001", token)) == "token_replayed"
    # a fresh token with the same jti (re-signed) is a replay too
    assert code_of(b.authenticate("charger-0001", mint(key, c))) == "token_replayed"
    # the same jti from another device is that device's own business
    meter = fleet.keys["meter-0002"]
    assert run(b.authenticate("meter-0002", mint(meter, {**claims(None, clock), "jti": c["jti"]})))
    # remembered until exp + leeway, then forgotten (and the token is expired by then anyway)
    assert len(b.replay) == 2
    clock.t += 65
    assert code_of(b.authenticate("charger-0001", token)) == "token_expired"
    b.replay.prune(clock.t)
    assert len(b.replay) == 0


def test_replay_cache_is_bounded(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock, max_tokens_per_device=3, replay_cache_size=4)
    key, meter = fleet.keys["charger-0001"], fleet.keys["meter-0002"]
    for _ in range(3):
        assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock)))) == "replay_cache_full"
    assert run(b.authenticate("meter-0002", mint(meter, claims(None, clock))))
    assert code_of(b.authenticate("meter-0002", mint(meter, claims(None, clock)))) == "replay_cache_full"
    clock.t += 60 + 30  # every remembered token expired: room again
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))


def test_replay_cache_unit() -> None:
    cache = ReplayCache(size=10, per_device=10)
    cache.add("d", "j1", until=100, now=0)
    with pytest.raises(CalloutError) as e:
        cache.add("d", "j1", until=200, now=99)
    assert e.value.code == "token_replayed"
    cache.add("d", "j1", until=300, now=100)  # forgotten at its deadline
    assert len(cache) == 1


def test_disabled_device_and_reenabling(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    key = fleet.keys["inverter-0003"]
    assert code_of(b.authenticate("inverter-0003", mint(key, claims(None, clock)))) == "device_disabled"
    fleet.entries["inverter-0003"]["enabled"] = True
    fleet.write()
    assert run(b.authenticate("inverter-0003", mint(key, claims(None, clock)))).groups == ("inverters",)
    fleet.entries["charger-0001"]["enabled"] = False
    fleet.write()
    assert code_of(b.authenticate("charger-0001", mint(fleet.keys["charger-0001"], claims(None, clock)))) == (
        "device_disabled"
    )


def test_audience(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock, audience="nats-edge")
    key = fleet.keys["charger-0001"]
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock)))) == "token_audience"
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock, aud="other")))) == (
        "token_audience"
    )
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock, aud=["x", "nats-edge"]))))


def test_oversize_and_garbage(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock, max_token_bytes=1024)
    key = fleet.keys["charger-0001"]
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock, pad="x" * 1024)))) == (
        "token_too_large"
    )
    assert code_of(b.authenticate("charger-0001", "garbage")) == "token_malformed"
    assert code_of(b.authenticate("charger-0001", "")) == "invalid_input"
    bad_id = mint(key, claims(None, clock))
    assert code_of(b.authenticate("charger 0001", bad_id)) == "invalid_input"


# --- the registry file ----------------------------------------------------------------------------


def test_registry_reloads_on_change(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    newcomer = ec.generate_private_key(ec.SECP256R1())
    assert code_of(b.authenticate("wallbox-0004", mint(newcomer, claims(None, clock)))) == "device_unknown"
    fleet.add("wallbox-0004", newcomer, groups=["chargers"])
    fleet.write()  # atomic replace: a new inode
    assert run(b.authenticate("wallbox-0004", mint(newcomer, claims(None, clock)))).groups == ("chargers",)
    # an in-place rewrite of the same size right away (size and maybe mtime unchanged): a new key
    rekeyed = ec.generate_private_key(ec.SECP256R1())
    before = fleet.path.stat().st_size
    fleet.add("wallbox-0004", rekeyed, groups=["chargers"])
    fleet.write(atomic=False)
    assert fleet.path.stat().st_size == before
    assert code_of(b.authenticate("wallbox-0004", mint(newcomer, claims(None, clock)))) == "token_signature"
    assert run(b.authenticate("wallbox-0004", mint(rekeyed, claims(None, clock))))


def test_reload_interval(fleet: Fleet, clock: Clock) -> None:
    mono = [0.0]
    cfg = DeviceConfig(registry=fleet.path, reload_interval=5)
    b = DeviceBackend(cfg, clock=clock, monotonic=lambda: mono[0])
    key = fleet.keys["charger-0001"]
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))
    fleet.entries["charger-0001"]["enabled"] = False
    fleet.write()
    mono[0] += 4.9
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))  # not looked at yet
    mono[0] += 0.1
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock)))) == "device_disabled"


def test_broken_registry_fails_closed(fleet: Fleet, clock: Clock) -> None:
    b = make(fleet, clock)
    key = fleet.keys["charger-0001"]
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))
    fleet.path.write_text("[devices.oops\n")
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock)))) == "device_registry"
    assert code_of(b.ready()) == "device_registry"
    assert b.devices == {}
    fleet.write()
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))
    assert run(b.ready()) is True
    fleet.path.unlink()
    assert code_of(b.authenticate("charger-0001", mint(key, claims(None, clock)))) == "device_registry"
    fleet.write()
    assert run(b.authenticate("charger-0001", mint(key, claims(None, clock))))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"public_key": "-----BEGIN PRIVATE KEY-----\nMII=\n-----END PRIVATE KEY-----\n"}, "private"),
        ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA", "d": "AA"}}, "private"),
        ({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}, "symmetric"),
        ({"public_key": "not a key"}, "PEM"),
        ({"public_key": pem(rsa.generate_private_key(65537, 2048))}, "no allowed algorithm"),
        ({"public_key": pem(ec.generate_private_key(ec.SECP384R1()))}, "no allowed algorithm"),
        ({}, "exactly one of"),
        ({"public_key": pem(ec.generate_private_key(ec.SECP256R1())), "group": ["x"]}, "unknown key"),
        ({"public_key": pem(ec.generate_private_key(ec.SECP256R1())), "enabled": "yes"}, "enabled"),
        ({"public_key": pem(ec.generate_private_key(ec.SECP256R1())), "groups": "x"}, "groups"),
    ],
)
def test_bad_registry_entries(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    path = tmp_path / "devices.json"
    write_registry(path, {"dev-1": entry})
    with pytest.raises(BackendConfigError, match=message):
        DeviceBackend(DeviceConfig(registry=path))


def test_bad_registry_files_and_config(tmp_path: Path) -> None:
    path = tmp_path / "devices.json"
    write_registry(path, {"bad id": {"public_key": pem(ec.generate_private_key(ec.SECP256R1()))}})
    with pytest.raises(BackendConfigError, match="device id"):
        DeviceBackend(DeviceConfig(registry=path))
    with pytest.raises(BackendConfigError, match="cannot read"):
        DeviceBackend(DeviceConfig(registry=tmp_path / "missing.toml"))
    with pytest.raises(BackendConfigError, match=r"\.toml or \.json"):
        DeviceConfig(registry=tmp_path / "devices.yaml")
    for algs, message in ((("HS256",), "HMAC"), (("none",), "none"), (("RS256",), "P-256 or Ed25519")):
        with pytest.raises(BackendConfigError, match=message):
            DeviceConfig(registry=path, algorithms=algs)
    with pytest.raises(BackendConfigError, match="max_lifetime"):
        DeviceConfig(registry=path, max_lifetime=0)
