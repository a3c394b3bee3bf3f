"""The on-disk store (boundary: the file system, in tmp_path). Layout, bytes and modes as nsc
writes them (nsc cmd/store/store.go, cmd/store/keys.go, home/home.go); atomic writes; refusals."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.unit.support import (
    ACCOUNT,
    ACCOUNT2,
    CURVE,
    ONE_CREDS_ACCOUNT,
    ONE_CREDS_SEED,
    ONE_CREDS_TOKEN,
    ONE_CREDS_USER,
    OPERATOR,
    OPERATOR2,
    USER,
    USER2,
    forge,
    key,
)
from trustkit.creds import format_user_creds
from trustkit.errors import StoreError, TrustkitError
from trustkit.jwt import AccountClaims, OperatorClaims, UserClaims
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.store import (
    GITIGNORE,
    Context,
    KeyStore,
    Store,
    StoreInfo,
    check_name,
    fsio,
    gitignore_enabled,
    list_operators,
    read_context,
    resolve_dirs,
    write_context,
)

IAT = 1700000000
#: nsc's .gitignore, byte for byte (AddGitIgnore in cmd/store/keys.go; note the space after "files")
NSC_GITIGNORE = b"# ignore all nk files \n**/*.nk\n\n# ignore all creds files\n**/*.creds\n"
#: json.Marshal(store.Info{Name: "O", Kind: "operator", Version: "1"})
NSC_INFO_O = b'{"managed":false,"name":"O","kind":"operator","version":"1"}'

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def operator_jwt(name: str = "O", kp: KeyPair = OPERATOR, **kw: Any) -> str:
    return OperatorClaims(sub=kp.public_key, name=name, **kw).encode(kp, iat=IAT)


def account_jwt(name: str = "A", kp: KeyPair = ACCOUNT, signer: KeyPair = OPERATOR, **kw: Any) -> str:
    claims = AccountClaims(sub=kp.public_key, name=name, **kw)
    return claims.encode(signer, iat=IAT)


def user_jwt(name: str = "U", kp: KeyPair = USER, signer: KeyPair = ACCOUNT, **kw: Any) -> str:
    return UserClaims(sub=kp.public_key, name=name, **kw).encode(signer, iat=IAT)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.create(tmp_path / "stores", operator_jwt())
    s.write_account_jwt(account_jwt())
    return s


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp") or "trustkit-" in p.name)


# --- fsio: atomic writes ------------------------------------------------------------------------


@posix_only
def test_atomic_write_creates_parents_0700_and_file_0600(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.jwt"
    assert fsio.atomic_write(target, b"data") == target
    assert target.read_bytes() == b"data"
    assert mode(target) == 0o600
    assert mode(tmp_path / "a") == 0o700
    assert mode(tmp_path / "a" / "b") == 0o700
    assert os.listdir(target.parent) == ["f.jwt"]


@posix_only
def test_atomic_write_modes_are_explicit_not_from_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        fsio.atomic_write(tmp_path / "wide", b"x", mode=0o644)
    finally:
        os.umask(old)
    assert mode(tmp_path / "wide") == 0o644
    # replacing a world-readable file leaves a 0600 one
    loose = tmp_path / "loose.nk"
    loose.write_bytes(b"old")
    loose.chmod(0o644)
    fsio.atomic_write(loose, b"new")
    assert mode(loose) == 0o600
    assert loose.read_bytes() == b"new"


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failure_between_write_and_rename_keeps_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    target = tmp_path / "O.jwt"
    target.write_bytes(b"original")

    def boom(src: object, dst: object) -> None:
        assert Path(str(src)).read_bytes() == b"replacement"  # the temp file was fully written
        raise exc

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StoreError if isinstance(exc, OSError) else KeyboardInterrupt) as info:
        fsio.atomic_write(target, b"replacement")
    if isinstance(info.value, StoreError):
        assert str(target) in str(info.value)
        assert info.value.code == "store_io"
    assert target.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["O.jwt"]  # temp file cleaned up


def test_failure_writing_a_new_file_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", no_sync)
    with pytest.raises(StoreError, match=re.escape("new.jwt")):
        fsio.atomic_write(tmp_path / "new.jwt", b"x" * 10000)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "kill") or os.name == "nt", reason="needs SIGKILL")
def test_killed_mid_write_leaves_old_file_and_only_a_hidden_temp(tmp_path: Path) -> None:
    target = tmp_path / "A.jwt"
    target.write_bytes(b"original")
    script = textwrap.dedent(
        f"""
        import os, signal
        from trustkit.store import fsio
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        fsio.atomic_write({str(target)!r}, b"replacement")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False)
    assert proc.returncode == -9
    assert target.read_bytes() == b"original"
    others = [n for n in os.listdir(tmp_path) if n != "A.jwt"]
    assert len(others) == 1
    assert others[0].startswith(".A.jwt.")
    assert others[0].endswith(".tmp")  # never *.jwt / *.nk / *.creds: nsc and trustkit ignore it


def test_atomic_create_is_exclusive(tmp_path: Path) -> None:
    p = tmp_path / "k.nk"
    assert fsio.atomic_create(p, b"first") is True
    assert fsio.atomic_create(p, b"second") is False
    assert p.read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["k.nk"]


def test_read_helpers_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jwt"
    with pytest.raises(StoreError, match=re.escape("nope.jwt")) as info:
        fsio.read_bytes(missing)
    assert info.value.code == "store_not_found"
    assert isinstance(info.value, TrustkitError)
    assert fsio.try_read_bytes(missing) is None
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    with pytest.raises(StoreError, match=re.escape("bad.json")) as info:
        fsio.read_json(bad)
    assert info.value.code == "store_corrupt"
    latin = tmp_path / "latin"
    latin.write_bytes(b"\xff\xfe")
    with pytest.raises(StoreError, match="latin"):
        fsio.read_text(latin)
    with pytest.raises(StoreError, match="directory"):
        fsio.read_bytes(tmp_path)


def test_ensure_dir_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError, match="not a directory"):
        fsio.ensure_dir(tmp_path / "f" / "sub")


def test_remove_tree_failure_keeps_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "accounts" / "A"
    fsio.atomic_write(tree / "A.jwt", b"x")

    def fail(src: object, dst: object) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(os, "rename", fail)
    with pytest.raises(StoreError, match="A"):
        fsio.remove_tree(tree, tmp_path)
    assert (tree / "A.jwt").read_bytes() == b"x"
    assert leftovers(tmp_path) == []


# --- paths ---------------------------------------------------------------------------------------


def never(_: Path) -> bool:
    return False


def test_default_dirs_are_nscs(tmp_path: Path) -> None:
    d = resolve_dirs({"HOME": "/home/u"}, exists=never)
    assert d.config_dir == Path("/home/u/.config/nats/nsc")
    assert d.stores_dir == Path("/home/u/.local/share/nats/nsc/stores")
    assert d.keys_dir == Path("/home/u/.local/share/nats/nsc/keys")
    assert (d.config_source, d.stores_source, d.keys_source) == ("default", "default", "default")


def test_xdg_dirs() -> None:
    d = resolve_dirs({"HOME": "/h", "XDG_CONFIG_HOME": "/cfg", "XDG_DATA_HOME": "/data"}, exists=never)
    assert d.config_dir == Path("/cfg/nats/nsc")
    assert d.stores_dir == Path("/data/nats/nsc/stores")
    assert d.keys_dir == Path("/data/nats/nsc/keys")


def test_legacy_dirs_when_only_they_exist() -> None:
    present = {Path("/h/.nsc/nsc.json"), Path("/h/.nsc/nats"), Path("/h/.nkeys")}
    d = resolve_dirs({"HOME": "/h"}, exists=lambda p: Path(p) in present)
    assert (d.config_dir, d.stores_dir, d.keys_dir) == (
        Path("/h/.nsc"),
        Path("/h/.nsc/nats"),
        Path("/h/.nkeys"),
    )
    assert d.keys_source == "legacy"
    # the new locations win as soon as they exist
    present |= {Path("/h/.config/nats/nsc/nsc.json"), Path("/h/.local/share/nats/nsc/keys")}
    d = resolve_dirs({"HOME": "/h"}, exists=lambda p: Path(p) in present)
    assert d.config_dir == Path("/h/.config/nats/nsc")
    assert d.keys_dir == Path("/h/.local/share/nats/nsc/keys")
    assert d.stores_dir == Path("/h/.nsc/nats")


def test_trustkit_home_puts_all_three_under_one_dir(tmp_path: Path) -> None:
    env = {"TRUSTKIT_HOME": str(tmp_path), "NSC_HOME": "/nsc", "NKEYS_PATH": "/nk"}  # no HOME needed
    d = resolve_dirs(env, exists=never)
    assert d.config_dir == tmp_path / "config"
    assert d.stores_dir == tmp_path / "stores"
    assert d.keys_dir == tmp_path / "keys"
    assert {d.config_source, d.stores_source, d.keys_source} == {"TRUSTKIT_HOME"}


def test_nsc_home_and_nkeys_path_with_tilde() -> None:
    d = resolve_dirs({"HOME": "/h", "NSC_HOME": "~/cfg", "NKEYS_PATH": "~/keys"}, exists=never)
    assert d.config_dir == Path("/h/cfg")
    assert d.keys_dir == Path("/h/keys")
    assert d.stores_dir == Path("/h/.local/share/nats/nsc/stores")  # no variable for the stores dir
    assert (d.config_source, d.keys_source) == ("NSC_HOME", "NKEYS_PATH")


def test_arguments_override_everything() -> None:
    env = {"HOME": "/h", "TRUSTKIT_HOME": "/t", "NSC_HOME": "/n", "NKEYS_PATH": "/k"}
    d = resolve_dirs(env, config_dir="/c", stores_dir="~/s", keys_dir="/k2", exists=never)
    assert (d.config_dir, d.stores_dir, d.keys_dir) == (Path("/c"), Path("/h/s"), Path("/k2"))
    d = resolve_dirs(env, all_dirs="/all", keys_dir="/k3", exists=never)
    assert (d.config_dir, d.stores_dir, d.keys_dir) == (Path("/all"), Path("/all"), Path("/k3"))
    assert d.config_source == "all-dirs"


def test_relative_values_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = resolve_dirs({"TRUSTKIT_HOME": "th"}, exists=never)
    assert d.keys_dir == tmp_path / "th" / "keys"


def test_empty_values_are_unset_and_os_environ_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTKIT_HOME", "/from/os/environ")
    d = resolve_dirs({"HOME": "/h", "TRUSTKIT_HOME": "", "NSC_HOME": ""}, exists=never)
    assert d.config_dir == Path("/h/.config/nats/nsc")
    with pytest.raises(StoreError, match="HOME") as info:
        resolve_dirs({}, exists=never)
    assert info.value.code == "store_config"


def test_gitignore_env() -> None:
    assert gitignore_enabled({}) is True
    assert gitignore_enabled({"NSC_NO_GIT_IGNORE": ""}) is False  # presence, like nsc's LookupEnv


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\0b", " A", "A "])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(StoreError) as info:
        check_name("account", name)
    assert info.value.code == "store_name"


# --- keystore ------------------------------------------------------------------------------------


@posix_only
def test_key_layout_bytes_and_modes(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys")
    path = ks.store_key(USER)
    pub = USER.public_key
    assert path == tmp_path / "keys" / "keys" / pub[0] / pub[1:3] / f"{pub}.nk"
    assert path.read_bytes() == USER.seed.encode()  # the seed only, no newline
    assert mode(path) == 0o600
    for d in (
        tmp_path / "keys",
        tmp_path / "keys" / "keys",
        path.parent.parent,
        path.parent,
        tmp_path / "keys" / "creds",
    ):
        assert mode(d) == 0o700, d
    ignore = tmp_path / "keys" / ".gitignore"
    assert ignore.read_bytes() == NSC_GITIGNORE == GITIGNORE
    assert mode(ignore) == 0o600
    assert sorted(os.listdir(path.parent)) == [f"{pub}.nk"]


def test_gitignore_can_be_disabled_and_is_never_replaced(tmp_path: Path) -> None:
    KeyStore(tmp_path / "a", gitignore=False).store_key(USER)
    assert not (tmp_path / "a" / ".gitignore").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".gitignore").write_bytes(b"mine\n")
    KeyStore(tmp_path / "b").store_key(USER)
    assert (tmp_path / "b" / ".gitignore").read_bytes() == b"mine\n"


def test_store_key_is_idempotent_and_refuses_another_seed(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    path = ks.store_key(ACCOUNT)
    assert ks.store_key(ACCOUNT) == path
    # another seed at the same public key's path (hand-edited or a bug elsewhere)
    other = ACCOUNT2.seed.encode()
    path.write_bytes(other)
    with pytest.raises(StoreError, match="already exists and is different") as info:
        ks.store_key(ACCOUNT)
    assert info.value.code == "store_key_conflict"
    assert str(path) in str(info.value)
    assert path.read_bytes() == other  # untouched
    assert ACCOUNT.seed not in str(info.value)


def test_store_key_needs_a_seed(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        KeyStore(tmp_path).store_key(KeyPair.from_public_key(USER.public_key))
    assert info.value.code == "store_no_seed"
    assert list(tmp_path.iterdir()) == []


def test_get_key_round_trip_and_corruption(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    assert ks.get_key(OPERATOR.public_key) is None
    assert ks.has_key(OPERATOR.public_key) is False
    ks.store_key(OPERATOR)
    assert ks.get_key(OPERATOR.public_key) == OPERATOR
    # a trailing newline (hand-edited file) is tolerated on read
    p = ks.key_path(OPERATOR.public_key)
    p.write_bytes(OPERATOR.seed.encode() + b"\n")
    assert ks.get_key(OPERATOR.public_key) == OPERATOR
    p.write_bytes(b"SOgarbage")
    with pytest.raises(StoreError, match=re.escape(str(p))) as info:
        ks.get_key(OPERATOR.public_key)
    assert info.value.code == "store_corrupt"
    p.write_bytes(OPERATOR2.seed.encode())
    with pytest.raises(StoreError, match="another key"):
        ks.get_key(OPERATOR.public_key)


def test_key_path_refuses_non_keys(tmp_path: Path) -> None:
    for bad in ("../../etc/passwd", "", USER.seed, USER.public_key + "x"):
        with pytest.raises(StoreError) as info:
            KeyStore(tmp_path).key_path(bad)
        assert info.value.code == "store_name"


def test_all_keys_and_remove_key(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    assert ks.all_keys() == []
    kinds = [OPERATOR, ACCOUNT, USER, USER2, CURVE]
    for kp in kinds:
        ks.store_key(kp)
    assert ks.all_keys() == sorted(kp.public_key for kp in kinds)
    shard = ks.key_path(CURVE.public_key).parent
    assert ks.remove_key(CURVE.public_key) is True
    assert not shard.exists()  # the empty shard is removed, like nsc
    assert ks.remove_key(CURVE.public_key) is False
    assert CURVE.public_key not in ks.all_keys()


@posix_only
def test_creds_layout_round_trip_and_refusals(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    data = format_user_creds(user_jwt(), USER.seed)
    with pytest.raises(StoreError, match="not in the keystore") as info:
        ks.write_creds("O", "A", "U", data)
    assert info.value.code == "store_creds"
    ks.store_key(USER)
    path = ks.write_creds("O", "A", "U", data)
    assert path == tmp_path / "creds" / "O" / "A" / "U.creds"
    assert path.read_bytes() == data
    assert mode(path) == 0o600
    assert mode(path.parent) == mode(path.parent.parent) == 0o700
    assert ks.read_creds("O", "A", "U") == data
    assert ks.has_creds("O", "A", "U")
    # the seed must be the JWT's subject
    ks.store_key(USER2)
    with pytest.raises(StoreError, match="does not match"):
        ks.write_creds("O", "A", "U", data.replace(USER.seed.encode(), USER2.seed.encode()))
    with pytest.raises(StoreError):
        ks.write_creds("O", "A", "U", b"junk")
    with pytest.raises(StoreError):
        ks.write_creds("O", "../x", "U", data)
    assert ks.delete_creds("O", "A", "U") is True
    with pytest.raises(StoreError, match=re.escape("U.creds")) as info:
        ks.read_creds("O", "A", "U")
    assert info.value.code == "store_not_found"


# --- store: create / open ------------------------------------------------------------------------


@posix_only
def test_create_writes_nscs_layout(tmp_path: Path) -> None:
    stores = tmp_path / "stores"
    token = operator_jwt()
    s = Store.create(stores, token)
    root = stores / "O"
    assert s.dir == root
    assert s.name == "O"
    assert not s.managed
    assert (root / ".nsc").read_bytes() == NSC_INFO_O
    assert (root / "O.jwt").read_bytes() == token.encode()  # raw token, no newline
    assert sorted(os.listdir(root)) == [".nsc", "O.jwt", "accounts"]
    assert os.listdir(stores) == ["O"]  # no staging directory left
    assert mode(root) == mode(root / "accounts") == mode(stores) == 0o700
    assert mode(root / ".nsc") == mode(root / "O.jwt") == 0o600
    assert s.read_operator_jwt() == token
    assert s.operator_claims().sub == OPERATOR.public_key


def test_create_name_override_and_managed(tmp_path: Path) -> None:
    s = Store.create(tmp_path, operator_jwt("ngs"), "mine", managed=True)
    assert (tmp_path / "mine" / "mine.jwt").is_file()
    assert (tmp_path / "mine" / ".nsc").read_bytes() == (
        b'{"managed":true,"name":"mine","kind":"operator","version":"1"}'
    )
    assert Store.open(tmp_path / "mine").managed is True
    assert s.operator_claims().name == "ngs"


def test_create_refuses_existing_store_and_bad_tokens(tmp_path: Path) -> None:
    (tmp_path / "O").mkdir()
    Store.create(tmp_path, operator_jwt())  # an empty directory is fine (nsc too)
    with pytest.raises(StoreError, match="already exists") as info:
        Store.create(tmp_path, operator_jwt())
    assert info.value.code == "store_exists"
    for bad in (account_jwt(), "not.a.jwt", operator_jwt()[:-3] + "AAA"):
        with pytest.raises(StoreError) as info:
            Store.create(tmp_path, bad, "X")
        assert info.value.code == "store_token"
    assert sorted(os.listdir(tmp_path)) == ["O"]
    with pytest.raises(StoreError) as info:
        Store.create(tmp_path, operator_jwt(""))
    assert info.value.code == "store_name"


def test_open_round_trip(store: Store) -> None:
    again = Store.open(store.dir)
    assert again.info == StoreInfo(name="O")
    assert again.list_accounts() == ["A"]


@pytest.mark.parametrize(
    ("content", "code", "match"),
    [
        (b'{"managed":false,"name":"A","kind":"account","version":"1"}', "store_invalid", "not an operator"),
        (b'{"managed":false,"name":"O","kind":"operator","version":"2"}', "store_version", "version '2'"),
        (b'{"managed":false,"name":"O","kind":"operator"}', "store_version", "version ''"),
        (b'{"managed":false,"name":"","kind":"operator","version":"1"}', "store_invalid", "no name"),
        (b'{"managed":"no","name":"O","kind":"operator","version":"1"}', "store_invalid", "wrong type"),
        (b"[]", "store_invalid", "not a JSON object"),
        (b"{", "store_corrupt", "not valid JSON"),
    ],
)
def test_open_refuses_bad_nsc_files(store: Store, content: bytes, code: str, match: str) -> None:
    nsc = store.dir / ".nsc"
    nsc.write_bytes(content)
    with pytest.raises(StoreError, match=match) as info:
        Store.open(store.dir)
    assert info.value.code == code
    assert str(nsc) in str(info.value)


def test_open_refuses_a_directory_without_nsc(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a valid data directory") as info:
        Store.open(tmp_path)
    assert info.value.code == "store_invalid"


def test_open_refuses_a_jwt_v1_operator(store: Store) -> None:
    v1 = forge(
        {
            "jti": "x",
            "iat": IAT,
            "iss": OPERATOR.public_key,
            "sub": OPERATOR.public_key,
            "name": "O",
            "type": "operator",
        },
        OPERATOR,
        v1=True,
    )
    store.operator_jwt_path().write_text(v1)
    with pytest.raises(StoreError, match="upgrade-jwt") as info:
        Store.open(store.dir)
    assert info.value.code == "store_version"
    assert str(store.operator_jwt_path()) in str(info.value)


def test_open_tolerates_a_corrupt_operator_until_read(store: Store) -> None:
    store.operator_jwt_path().write_text("garbage")
    s = Store.open(store.dir)
    with pytest.raises(StoreError, match=re.escape(str(store.operator_jwt_path()))) as info:
        s.operator_claims()
    assert info.value.code == "store_corrupt"
    s.write_operator_jwt(operator_jwt())  # and it can be repaired
    assert s.operator_claims().name == "O"


def test_list_operators(tmp_path: Path) -> None:
    assert list_operators(tmp_path / "none") == []
    Store.create(tmp_path, operator_jwt("B", OPERATOR2))
    Store.create(tmp_path, operator_jwt("A"))
    (tmp_path / "not-a-store").mkdir()
    assert list_operators(tmp_path) == ["A", "B"]


# --- store: accounts and users -------------------------------------------------------------------


@posix_only
def test_account_and_user_layout_and_round_trip(store: Store) -> None:
    acct = account_jwt()
    path = store.account_jwt_path("A")
    assert path == store.dir / "accounts" / "A" / "A.jwt"
    assert path.read_bytes() == acct.encode()
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert store.read_account_jwt("A") == acct
    assert store.account_claims("A").sub == ACCOUNT.public_key
    assert store.has_account("A") and not store.has_account("B")

    token = user_jwt()
    upath = store.write_user_jwt("A", token)
    assert upath == store.dir / "accounts" / "A" / "users" / "U.jwt"
    assert upath.read_bytes() == token.encode()
    assert mode(upath) == 0o600
    assert mode(upath.parent) == 0o700
    assert store.list_users("A") == ["U"]
    assert store.read_user_jwt("A", "U") == token
    assert store.user_claims("A", "U").sub == USER.public_key
    assert store.has_user("A", "U")


def test_write_replaces_atomically(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    before = store.read_account_jwt("A")
    newer = AccountClaims(sub=ACCOUNT.public_key, name="A").encode(OPERATOR, iat=IAT + 1)

    def boom(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StoreError, match=re.escape("A.jwt")):
        store.write_account_jwt(newer)
    assert store.read_account_jwt("A") == before
    assert os.listdir(store.account_dir("A")) == ["A.jwt"]
    monkeypatch.undo()
    store.write_account_jwt(newer)
    assert store.read_account_jwt("A") == newer


def test_entity_names_come_from_the_claims(store: Store) -> None:
    with pytest.raises(StoreError, match="named 'B'") as info:
        store.write_account_jwt(account_jwt("B", ACCOUNT2), "C")
    assert info.value.code == "store_name"
    with pytest.raises(StoreError, match="no name"):
        store.write_account_jwt(account_jwt("", ACCOUNT2))
    store.write_account_jwt(account_jwt("", ACCOUNT2), "B")
    assert store.list_accounts() == ["A", "B"]
    with pytest.raises(StoreError) as info:
        store.write_account_jwt(account_jwt("../x", ACCOUNT2))
    assert info.value.code == "store_name"


def test_write_refuses_wrong_claim_types_and_bad_signatures(store: Store) -> None:
    for bad in (user_jwt(), operator_jwt("A"), account_jwt()[:-4] + "AAAA"):
        with pytest.raises(StoreError) as info:
            store.write_account_jwt(bad, "A")
        assert info.value.code == "store_token"
    with pytest.raises(StoreError):
        store.write_operator_jwt(account_jwt())


def test_users_must_be_signed_by_their_account(store: Store) -> None:
    sk = key(PrefixByte.ACCOUNT, 40)
    store.write_account_jwt(
        AccountClaims(sub=ACCOUNT.public_key, name="A", signing_keys={sk.public_key: None}).encode(
            OPERATOR, iat=IAT
        )
    )
    store.write_account_jwt(account_jwt("B", ACCOUNT2))
    store.write_user_jwt("A", user_jwt("by-sk", signer=sk, issuer_account=ACCOUNT.public_key))
    with pytest.raises(StoreError, match="was not signed by account 'B'") as info:
        store.write_user_jwt("B", user_jwt("U2", USER2))
    assert info.value.code == "store_token"
    with pytest.raises(StoreError) as info:
        store.write_user_jwt("nope", user_jwt())
    assert info.value.code == "store_not_found"
    assert store.list_users("A") == ["by-sk"]
    assert store.list_users("B") == []
    with pytest.raises(StoreError):
        store.list_users("nope")


def test_find_account_by_public_key(store: Store) -> None:
    sk = key(PrefixByte.ACCOUNT, 41)
    store.write_account_jwt(
        AccountClaims(sub=ACCOUNT2.public_key, name="B", signing_keys={sk.public_key: None}).encode(
            OPERATOR, iat=IAT
        )
    )
    assert store.find_account(ACCOUNT.public_key) == "A"
    assert store.find_account(ACCOUNT2.public_key) == "B"
    assert store.find_account(sk.public_key) is None
    assert store.find_account(sk.public_key, signing_keys=True) == "B"
    assert store.find_account(USER.public_key) is None


@pytest.mark.parametrize("content", [b"garbage", b"", b"\xff\xfe", None])
def test_corrupt_jwt_names_the_file(store: Store, content: bytes | None) -> None:
    store.write_user_jwt("A", user_jwt())
    path = store.user_jwt_path("A", "U")
    if content is None:  # tampered: valid shape, bad signature
        token = path.read_text()
        content = (token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")).encode()
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        store.user_claims("A", "U")
    assert str(path) in str(info.value)
    assert info.value.code == "store_corrupt"


def test_missing_entities(store: Store) -> None:
    for call in (
        lambda: store.read_account_jwt("B"),
        lambda: store.account_claims("B"),
        lambda: store.read_user_jwt("A", "nobody"),
        lambda: store.delete_user("A", "nobody"),
        lambda: store.delete_account("B"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert info.value.code == "store_not_found"


def test_listing_ignores_what_nsc_ignores(store: Store) -> None:
    accounts = store.dir / "accounts"
    (accounts / "empty").mkdir()  # no empty/empty.jwt
    (accounts / "stray.jwt").write_text("x")  # a file, not a directory
    users = store.account_dir("A") / "users"
    users.mkdir()
    (users / ".U.jwt.abc.tmp").write_text("x")  # a temp left by a killed writer
    (users / "notes.txt").write_text("x")
    (users / "dir.jwt").mkdir()
    assert store.list_accounts() == ["A"]
    assert store.list_users("A") == []


def test_delete_user_and_account(store: Store) -> None:
    store.write_user_jwt("A", user_jwt())
    store.write_user_jwt("A", user_jwt("V", USER2))
    store.delete_user("A", "U")
    assert store.list_users("A") == ["V"]
    store.delete_account("A")
    assert store.list_accounts() == []
    assert not store.account_dir("A").exists()
    assert leftovers(store.dir) == []
    assert sorted(os.listdir(store.dir)) == [".nsc", "O.jwt", "accounts"]


def test_delete_account_sweeps_trash_of_a_killed_delete(store: Store) -> None:
    trash = store.dir / (fsio.TRASH_PREFIX + "old") / "Z"
    trash.mkdir(parents=True)
    (trash / "Z.jwt").write_text("x")
    young = store.dir / (fsio.TRASH_PREFIX + "young")
    young.mkdir()  # may belong to a delete in progress in another process
    os.utime(trash.parent, (0, 0))
    store.delete_account("A")
    assert leftovers(store.dir) == [young.name]


# --- context -------------------------------------------------------------------------------------


@posix_only
def test_context_round_trip_keeps_nsc_fields(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    assert read_context(cfg) == Context()
    cfg.mkdir()
    nsc_written = (
        b'{"store_root":"/s","operator":"O","account":"A",'
        b'"github_updates":"nats-io/nsc","last_update":1700000000}'
    )
    (cfg / "nsc.json").write_bytes(nsc_written)
    ctx = read_context(cfg)
    assert (ctx.store_root, ctx.operator, ctx.account) == ("/s", "O", "A")
    ctx.account = "B"
    path = write_context(cfg, ctx)
    assert path.read_bytes() == nsc_written.replace(b'"A"', b'"B"')
    assert mode(path) == 0o600
    fresh = tmp_path / "fresh" / "cfg"
    write_context(fresh, Context(store_root="/x<y", operator="O"))
    assert (fresh / "nsc.json").read_bytes() == b'{"store_root":"/x\\u003cy","operator":"O","account":""}'
    assert mode(fresh) == 0o700


def test_corrupt_context_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "nsc.json").write_bytes(b'{"operator": 3}')
    with pytest.raises(StoreError, match=re.escape("nsc.json")) as info:
        read_context(tmp_path)
    assert info.value.code == "store_corrupt"


# --- golden: a tree in nsc's exact layout, written by hand -------------------------------------


def test_golden_nsc_tree_opens(tmp_path: Path) -> None:
    """Files as nsc writes them (os.WriteFile of the raw bytes); the user JWT and seed are Go-made."""
    op = operator_jwt("demo")
    acct = AccountClaims(sub=ONE_CREDS_ACCOUNT, name="acme").encode(OPERATOR, iat=IAT)
    sys_acct = account_jwt("SYS", ACCOUNT2)
    creds = format_user_creds(ONE_CREDS_TOKEN, ONE_CREDS_SEED)
    files: dict[str, bytes] = {
        "stores/demo/.nsc": b'{"managed":false,"name":"demo","kind":"operator","version":"1"}',
        "stores/demo/demo.jwt": op.encode(),
        "stores/demo/accounts/acme/acme.jwt": acct.encode(),
        "stores/demo/accounts/acme/users/one.jwt": ONE_CREDS_TOKEN.encode(),
        "stores/demo/accounts/SYS/SYS.jwt": sys_acct.encode(),
        "keys/.gitignore": NSC_GITIGNORE,
        f"keys/keys/O/{OPERATOR.public_key[1:3]}/{OPERATOR.public_key}.nk": OPERATOR.seed.encode(),
        f"keys/keys/U/{ONE_CREDS_USER[1:3]}/{ONE_CREDS_USER}.nk": ONE_CREDS_SEED.encode(),
        "keys/creds/demo/acme/one.creds": creds,
        "config/nsc.json": b'{"store_root":"STORES","operator":"demo","account":"acme",'
        b'"github_updates":"nats-io/nsc","last_update":1700000000}',
    }
    for rel, data in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.replace(b"STORES", str(tmp_path / "stores").encode()))

    dirs = resolve_dirs({"TRUSTKIT_HOME": str(tmp_path)}, exists=never)
    ctx = read_context(dirs.config_dir)
    assert list_operators(dirs.stores_dir) == ["demo"]
    s = Store.open(Path(ctx.store_root) / ctx.operator)
    assert s.name == "demo"
    assert s.read_operator_jwt() == op
    assert s.list_accounts() == ["SYS", "acme"]
    assert s.list_users(ctx.account) == ["one"]
    assert s.user_claims("acme", "one").sub == ONE_CREDS_USER
    assert s.account_claims("acme").did_sign(s.user_claims("acme", "one"))
    assert s.find_account(ONE_CREDS_ACCOUNT) == "acme"
    ks = KeyStore(dirs.keys_dir)
    assert ks.all_keys() == sorted([OPERATOR.public_key, ONE_CREDS_USER])
    kp = ks.get_key(ONE_CREDS_USER)
    assert kp is not None and kp.seed == ONE_CREDS_SEED
    assert ks.read_creds("demo", "acme", "one") == creds
    # writing through trustkit into that tree keeps it byte-identical where nothing changed
    ks.store_key(OPERATOR)
    s.write_account_jwt(acct)
    for rel, data in files.items():
        if not rel.startswith("config/"):
            assert (tmp_path / rel).read_bytes() == data, rel


def test_create_sweeps_abandoned_staging_and_listing_ignores_it(tmp_path: Path) -> None:
    stale = tmp_path / ".trustkit-new-dead" / "X"
    stale.mkdir(parents=True)
    (stale / ".nsc").write_bytes(b'{"managed":false,"name":"X","kind":"operator","version":"1"}')
    assert list_operators(tmp_path) == []  # nsc looks one level down only: invisible to it too
    os.utime(stale.parent, (0, 0))
    Store.create(tmp_path, operator_jwt())
    assert sorted(os.listdir(tmp_path)) == ["O"]
