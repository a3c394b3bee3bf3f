"""The resolver directory (broker/system.py JwtDir) and the resolver block's keys (broker/config.py).

Pure rules of nats-server's DirJWTStore and opts.go, checked without a server; the same behaviour
is compared with the real nats-server in tests/conformance/test_system_requests.py.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from broker.config import BrokerConfig, ConfigError, parse_conf
from broker.system import JwtDir, JwtStoreError
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte

OP = KeyPair.generate(PrefixByte.OPERATOR)


def account(
    name: str = "A", *, iat: int = 1_800_000_000, exp: int = 0, key: KeyPair | None = None
) -> tuple[str, str]:
    kp = key or KeyPair.generate(PrefixByte.ACCOUNT)
    return kp.public_key, jwt.AccountClaims(sub=kp.public_key, name=name, exp=exp).encode(OP, iat=iat)


def xor_hash(*tokens: str) -> bytes:
    out = bytearray(32)
    for t in tokens:
        for i, b in enumerate(hashlib.sha256(t.encode()).digest()):
            out[i] ^= b
    return bytes(out)


def test_save_writes_the_file_and_tracks_the_hash(tmp_path: Path) -> None:
    store = JwtDir(tmp_path / "jwt", delete=None)
    assert store.hash() == bytes(32)
    (a, ta), (b, tb) = account("A"), account("B")
    assert store.save(a, ta) and store.save(b, tb)
    assert not store.save(a, ta), "identical bytes: no change"
    assert (tmp_path / "jwt" / f"{a}.jwt").read_text() == ta
    assert (tmp_path / "jwt" / f"{a}.jwt").stat().st_mode & 0o777 == 0o600
    assert store.hash() == xor_hash(ta, tb)
    assert store.load(a) == ta.encode() and store.load("AXXX") is None
    assert [k for k, _ in store.entries(int(time.time()))] == sorted([a, b])


def test_reopening_indexes_every_jwt_file(tmp_path: Path) -> None:
    (a, ta) = account("A")
    JwtDir(tmp_path, delete=None).save(a, ta)
    (tmp_path / "notes.txt").write_text("ignored")
    again = JwtDir(tmp_path, delete=None)
    assert again.load(a) == ta.encode() and again.hash() == xor_hash(ta)


def test_expired_and_empty_jwts_are_not_listed(tmp_path: Path) -> None:
    now = int(time.time())
    (a, ta), (b, tb) = account("A", exp=now - 10), account("B", exp=now + 100)
    (tmp_path / "AEMPTY.jwt").write_bytes(b"")
    store = JwtDir(tmp_path, delete=None)
    store.save(a, ta)
    store.save(b, tb)
    assert [k for k, _ in store.entries(now)] == [b]
    assert store.hash() == xor_hash(ta, tb, ""), "the hash still covers every indexed file"


def test_refusals_use_nats_server_texts(tmp_path: Path) -> None:
    store = JwtDir(tmp_path, delete=None, limit=1)
    kp = KeyPair.generate(PrefixByte.ACCOUNT)
    (a, ta), (b, tb) = account("A", key=kp), account("B")
    with pytest.raises(JwtStoreError, match=r"^invalid public key$"):
        store.save("nope", ta)
    with pytest.raises(JwtStoreError, match=r"^invalid JWT$"):
        store.save(a, "")
    store.save(a, ta)
    with pytest.raises(JwtStoreError, match=r"^jwt store is full$"):
        store.save(b, tb)
    _, ta2 = account("A2", key=kp)
    assert store.save(a, ta2), "replacing a stored account needs no room"
    with pytest.raises(JwtStoreError, match=r"^store is not set up to for delete$"):
        store.delete(a)


def test_the_cache_store_evicts_the_oldest(tmp_path: Path) -> None:
    store = JwtDir(tmp_path, delete="hard", limit=2, evict=True)
    (a, ta), (b, tb), (c, tc) = account("A"), account("B"), account("C")
    for key, token in ((a, ta), (b, tb), (c, tc)):
        store.save(key, token)
    assert a not in store and b in store and c in store
    assert not (tmp_path / f"{a}.jwt").exists()
    assert store.hash() == xor_hash(tb, tc)


@pytest.mark.parametrize("mode", ["rename", "hard"])
def test_delete(tmp_path: Path, mode: str) -> None:
    store = JwtDir(tmp_path, delete=mode)
    (a, ta), (b, tb) = account("A"), account("B")
    store.save(a, ta)
    store.save(b, tb)
    assert store.delete(a)
    assert not store.delete(a), "nothing stored: nothing removed"
    assert a not in store and store.hash() == xor_hash(tb)
    assert not (tmp_path / f"{a}.jwt").exists()
    assert (tmp_path / f"{a}.jwt.deleted").exists() is (mode == "rename")
    assert JwtDir(tmp_path, delete=mode).hash() == xor_hash(tb), "a .deleted file is not indexed"


def test_save_if_newer_keeps_the_later_jwt(tmp_path: Path) -> None:
    kp = KeyPair.generate(PrefixByte.ACCOUNT)
    _, old = account("old", iat=1_800_000_000, key=kp)
    _, new = account("new", iat=1_800_000_100, key=kp)
    store = JwtDir(tmp_path, delete=None)
    store.save(kp.public_key, new)
    assert not store.save_if_newer(kp.public_key, old)
    assert store.load(kp.public_key) == new.encode()
    store2 = JwtDir(tmp_path / "b", delete=None)
    store2.save(kp.public_key, old)
    assert store2.save_if_newer(kp.public_key, new)
    assert store2.load(kp.public_key) == new.encode()


# --- the resolver block ------------------------------------------------------------------------


def _resolver(body: str) -> BrokerConfig:
    op = jwt.OperatorClaims(sub=OP.public_key, name="op").encode(OP, iat=1_800_000_000)
    return BrokerConfig.from_conf(parse_conf(f"operator: {op}\nresolver {{\n{body}\n}}\n"), base=Path("/tmp"))


def test_resolver_keys_are_read() -> None:
    cfg = _resolver('type: full\ndir: "./jwt"\nallow_delete: true\nhard_delete: true\nlimit: 5\n'
                    'interval: "2m"\ntimeout: "1.9s"')
    assert (cfg.resolver, cfg.allow_delete, cfg.hard_delete, cfg.resolver_limit) == ("full", True, True, 5)
    assert (cfg.resolver_interval, cfg.resolver_timeout) == (120.0, 1.9)
    assert _resolver('type: full\ndir: "./jwt"\ninterval: "0s"').resolver_interval == 60.0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('type: cache\ndir: "j"\nallow_delete: true', "CACHE does not accept allow_delete"),
        ('type: cache\ndir: "j"\nhard_delete: false', "CACHE does not accept hard_delete"),
        ('type: cache\ndir: "j"\ninterval: "2m"', "CACHE does not accept sync"),
        ('type: full\ndir: "j"\nttl: "1h"', "FULL does not accept ttl"),
        ('type: full\ndir: "j"\nhard_delete: true', "hard_delete has no effect without delete"),
        ('type: full\ndir: "j"\nallow_delete: "yes please"', "allow_delete must be true or false"),
        ('type: full\ndir: "j"\ninterval: 120', "resolver interval must be a duration"),
        ('type: full\ndir: "j"\ntimeout: "-1s"', "resolver timeout must be positive"),
        ('type: full\ndir: "j"\nlimit: -1', "resolver limit must be a non-negative integer"),
    ],
)
def test_resolver_keys_are_refused_as_nats_server_refuses_them(body: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        _resolver(body)


def test_expire_forgets_expired_jwts_and_removes_their_files(tmp_path: Path) -> None:
    now = int(time.time())
    (a, ta), (b, tb), (c, tc) = account("A", exp=now - 1), account("B", exp=now + 100), account("C")
    store = JwtDir(tmp_path, delete=None)
    for key, token in ((a, ta), (b, tb), (c, tc)):
        store.save(key, token)
    assert store.expire(now - 5) is None, "nothing had expired then"
    remove = store.expire(now)
    assert remove is not None
    assert a not in store and store.load(a) is None and store.hash() == xor_hash(tb, tc)
    assert (tmp_path / f"{a}.jwt").exists(), "the files go with the returned disk half"
    remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{b}.jwt", f"{c}.jwt"])
    assert store.expire(now + 1000) is not None and c in store, "a JWT without exp never expires"


def test_the_broker_removes_expired_jwts_from_its_resolver_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import broker.server as server
    from broker.server import Broker
    from trustkit.serverconfig import nats_resolver_config

    monkeypatch.setattr(server, "EXPIRE_CHECK", 0.2)
    now = int(time.time())
    sys_key, sys_jwt = account("SYS")
    op_jwt = jwt.OperatorClaims(sub=OP.public_key, name="op", system_account=sys_key).encode(OP, iat=now - 10)
    conf = nats_resolver_config(op_jwt, sys_jwt, directory=str(tmp_path / "jwt"), host="127.0.0.1", port=0)
    (a, ta), (b, tb) = account("A", exp=now + 1, iat=now - 10), account("B", iat=now - 10)
    cfg = BrokerConfig.from_conf(parse_conf(conf))
    cfg.port = 0
    (tmp_path / "jwt").mkdir()
    (tmp_path / "jwt" / f"{a}.jwt").write_text(ta)
    (tmp_path / "jwt" / f"{b}.jwt").write_text(tb)

    async def scenario() -> bool:
        broker = Broker(cfg, log=lambda m: None)
        await broker.start()
        try:
            for _ in range(40):
                await asyncio.sleep(0.1)
                if not (tmp_path / "jwt" / f"{a}.jwt").exists():
                    return broker.system.store is not None and a not in broker.system.store
            return False
        finally:
            await broker.close()

    assert asyncio.run(scenario())
    assert (tmp_path / "jwt" / f"{b}.jwt").exists() and (tmp_path / "jwt" / f"{sys_key}.jwt").exists()
