"""The ``trustkit-callout`` config file: keys, types, environment overrides, secrets, backends.

Pure loading (no network): every key of every section, overridden by its environment variable;
unknown keys and variables refused by name; secrets only from files or the environment and never
in a ``repr``; ``[backend.ldap]`` mapped field by field onto ``LdapConfig``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from callout.backends.ldap import LdapConfig
from callout.config import BACKENDS, BackendKind, CalloutConfig, Secret, env_name, load_config, load_policy
from callout.policy import PolicyError
from tests.callout.worlds import toml_text, write_secret
from trustkit.errors import CalloutError

POLICY = {"rules": [{"id": "ops", "groups": ["ops"], "pub": {"allow": ["ops.>"]}}]}


def write(tmp: Path, doc: dict[str, Any], name: str = "callout.toml") -> Path:
    (tmp / "policy.toml").write_text(toml_text(POLICY))
    path = tmp / name
    path.write_text(toml_text(doc))
    return path


def minimal(tmp: Path, **extra: Any) -> dict[str, Any]:
    write_secret(tmp / "nats.pw", "nats-secret-pw")
    write_secret(tmp / "issuer.nk", "SAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    doc: dict[str, Any] = {
        "nats": {"url": "nats://127.0.0.1:4222", "user": "auth", "password_file": "nats.pw"},
        "issuer": {"seed_file": "issuer.nk"},
        "policy": {"file": "policy.toml"},
    }
    for k, v in extra.items():
        doc.setdefault(k, {}).update(v) if isinstance(v, dict) else doc.__setitem__(k, v)
    return doc


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, minimal(tmp_path)), {})
    assert cfg.mode == "config"
    assert cfg.nats.url == "nats://127.0.0.1:4222" and cfg.nats.user == "auth"
    assert cfg.nats.queue_group == "trustkit-callout"
    assert cfg.nats.password is not None and cfg.nats.password.reveal() == "nats-secret-pw"
    # relative paths are relative to the config file
    assert cfg.policy_file == tmp_path / "policy.toml"
    assert cfg.issuer.seed is not None and cfg.issuer.seed.file == tmp_path / "issuer.nk"
    assert cfg.http.port is None and cfg.audit.file is None and cfg.index_file() is None
    assert (cfg.limits.backend_timeout, cfg.limits.max_in_flight, cfg.limits.drop_refusals) == (
        1.5,
        256,
        False,
    )
    assert cfg.load_policy().rules[0].id == "ops"


def test_every_value_is_overridable_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, minimal(tmp_path))
    write_secret(tmp_path / "other.pw", "from-env-file")
    env = {
        "TRUSTKIT_CALLOUT_MODE": "config",
        "TRUSTKIT_CALLOUT_NATS_URL": "nats://10.0.0.1:4333",
        "TRUSTKIT_CALLOUT_NATS_PASSWORD_FILE": str(tmp_path / "other.pw"),
        "TRUSTKIT_CALLOUT_NATS_CONNECT_TIMEOUT": "2.5",
        "TRUSTKIT_CALLOUT_NATS_QUEUE_GROUP": "q2",
        "TRUSTKIT_CALLOUT_SERVER_ALLOWED_KEYS": "NA, NB",
        "TRUSTKIT_CALLOUT_LIMITS_DROP_REFUSALS": "yes",
        "TRUSTKIT_CALLOUT_LIMITS_MAX_IN_FLIGHT": "7",
        "TRUSTKIT_CALLOUT_HTTP_PORT": "9999",
        "TRUSTKIT_CALLOUT_HTTP_ADMIN_TOKEN": "tok-from-env",
        "TRUSTKIT_CALLOUT_AUDIT_FILE": "/var/log/x.jsonl",
        "TRUSTKIT_CALLOUT_LOG_LEVEL": "debug",
        "TRUSTKIT_CALLOUT_CONFIG": str(path),  # the file's own variable is not a setting
    }
    cfg = load_config(path, env)
    assert cfg.nats.url == "nats://10.0.0.1:4333"
    assert cfg.nats.password is not None and cfg.nats.password.reveal() == "from-env-file"
    assert cfg.nats.connect_timeout == 2.5 and cfg.nats.queue_group == "q2"
    assert cfg.server.allowed_keys == ("NA", "NB")
    assert cfg.limits.drop_refusals is True and cfg.limits.max_in_flight == 7
    assert cfg.http.port == 9999
    assert cfg.http.admin_token is not None and cfg.http.admin_token.reveal() == "tok-from-env"
    assert cfg.audit.file == Path("/var/log/x.jsonl")
    assert cfg.index_file() == Path("/var/log/x.jsonl.index")
    assert cfg.log.level == "debug"


def test_config_from_the_environment_alone(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(toml_text(POLICY))
    cfg = load_config(
        None,
        {
            "TRUSTKIT_CALLOUT_NATS_URL": "nats://h:1",
            "TRUSTKIT_CALLOUT_NATS_USER": "auth",
            "TRUSTKIT_CALLOUT_NATS_PASSWORD": "pw",
            "TRUSTKIT_CALLOUT_POLICY_FILE": str(tmp_path / "p.toml"),
        },
    )
    assert cfg.source == "environment" and cfg.nats.password is not None
    assert cfg.load_policy().rules


def test_env_names() -> None:
    assert env_name("backend.ldap", "bind_password") == "TRUSTKIT_CALLOUT_BACKEND_LDAP_BIND_PASSWORD"
    assert env_name("", "mode") == "TRUSTKIT_CALLOUT_MODE"


@pytest.mark.parametrize(
    ("mutate", "env", "needle"),
    [
        (lambda d: d["nats"].update(pasword_file="x"), {}, "'pasword_file'"),
        (lambda d: d.update(nast={"url": "x"}), {}, "'nast'"),
        (lambda d: d.update(backend={"ldpa": {"url": "x"}}), {}, "[backend.ldpa]"),
        (lambda d: None, {"TRUSTKIT_CALLOUT_NATS_PASWORD": "x"}, "TRUSTKIT_CALLOUT_NATS_PASWORD"),
        (lambda d: None, {"TRUSTKIT_CALLOUT_BACKEND_FOO_URL": "x"}, "TRUSTKIT_CALLOUT_BACKEND_FOO_URL"),
        (lambda d: d["nats"].update(password="in-the-file"), {}, "password is a secret"),
        (lambda d: d.update(http={"admin_token": "t"}), {}, "admin_token is a secret"),
        (lambda d: d.update(mode="both"), {}, "mode must be"),
        (lambda d: d.update(limits={"max_in_flight": "many"}), {}, "max_in_flight: expected an integer"),
        (
            lambda d: None,
            {"TRUSTKIT_CALLOUT_HTTP_PORT": "eighty"},
            "TRUSTKIT_CALLOUT_HTTP_PORT: expected an integer",
        ),
        (lambda d: None, {"TRUSTKIT_CALLOUT_LIMITS_DROP_REFUSALS": "maybe"}, "expected true or false"),
        (lambda d: d["nats"].update(creds_file="a.creds"), {}, "not both"),
        (lambda d: d["nats"].pop("password_file"), {}, "user needs a password"),
        (lambda d: d.update(mode="operator"), {}, "operator mode connects with a creds file"),
        (lambda d: d["issuer"].update(operator="demo"), {}, "for operator mode"),
        (lambda d: d.update(http={"port": 70000}), {}, "port must be"),
        (lambda d: d.update(log={"level": "loud"}), {}, "[log] level"),
        (
            lambda d: None,
            {"TRUSTKIT_CALLOUT_NATS_PASSWORD": "a", "TRUSTKIT_CALLOUT_NATS_PASSWORD_FILE": "b"},
            "only one of",
        ),
    ],
)
def test_bad_configs_are_refused_by_name(
    tmp_path: Path, mutate: Any, env: dict[str, str], needle: str
) -> None:
    doc = minimal(tmp_path)
    mutate(doc)
    with pytest.raises(CalloutError) as info:
        load_config(write(tmp_path, doc), env)
    assert info.value.code == "callout_config"
    assert needle in info.value.message, info.value.message
    assert "in-the-file" not in info.value.message


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[nats\nurl = 1")
    with pytest.raises(CalloutError, match="not valid TOML"):
        load_config(path, {})
    with pytest.raises(CalloutError, match="cannot read the config file"):
        load_config(tmp_path / "missing.toml", {})


def test_secrets_are_read_lazily_and_never_shown(tmp_path: Path) -> None:
    doc = minimal(tmp_path, http={"port": 8080, "admin_token_file": "admin.tok"})
    doc["backend"] = {
        "ldap": {
            "url": "ldap://127.0.0.1:389",
            "bind_dn": "cn=svc",
            "bind_password_file": "ldap.pw",
            "user_base": "dc=x",
        }
    }
    path = write(tmp_path, doc)
    cfg = load_config(path, {"TRUSTKIT_CALLOUT_XKEY_SEED": "SXSECRETSEEDVALUE"})  # no file read yet
    with pytest.raises(CalloutError) as info:
        cfg.http.admin_token.reveal()  # type: ignore[union-attr]
    assert "admin.tok" in info.value.message
    write_secret(tmp_path / "admin.tok", "admin-token-123")
    write_secret(tmp_path / "ldap.pw", "ldap-bind-pw-xyz")
    assert cfg.http.admin_token.reveal() == "admin-token-123"  # type: ignore[union-attr]
    ldap_cfg = cfg.backends["ldap"].build_config()
    assert ldap_cfg.bind_password == "ldap-bind-pw-xyz"
    shown = repr(cfg) + str(cfg) + repr(cfg.backends) + repr(ldap_cfg)
    for secret in ("nats-secret-pw", "admin-token-123", "ldap-bind-pw-xyz", "SXSECRETSEEDVALUE", "SAAAAAAA"):
        assert secret not in shown
    assert "Secret(xkey.seed: from $TRUSTKIT_CALLOUT_XKEY_SEED)" in repr(cfg.xkey.seed)
    (tmp_path / "admin.tok").write_text("\n")
    with pytest.raises(CalloutError, match="is empty"):
        cfg.http.admin_token.reveal()  # type: ignore[union-attr]


def test_secret_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError):
        Secret("x")
    with pytest.raises(ValueError):
        Secret("x", file=Path("/a"), value="b")


def test_backend_ldap_maps_onto_ldapconfig(tmp_path: Path) -> None:
    write_secret(tmp_path / "ldap.pw", "pw")
    doc = minimal(tmp_path)
    doc["backend"] = {
        "ldap": {
            "url": "ldaps://ldap.example:636",
            "bind_dn": "cn=svc,dc=x",
            "bind_password_file": "ldap.pw",
            "user_base": "ou=people,dc=x",
            "groups": "search",
            "group_base": "ou=groups,dc=x",
            "attributes": ["mail", "employeeNumber"],
            "ca_certs_file": "ca.pem",
            "timeout": 3,
            "max_workers": 4,
            "tls_verify": True,
        }
    }
    env = {
        "TRUSTKIT_CALLOUT_BACKEND_LDAP_RECEIVE_TIMEOUT": "0.5",
        "TRUSTKIT_CALLOUT_BACKEND_LDAP_USER_SCOPE": "level",
    }
    cfg = load_config(write(tmp_path, doc), env)
    built = cfg.backends["ldap"].build_config()
    assert isinstance(built, LdapConfig)
    assert built.url == "ldaps://ldap.example:636" and built.groups == "search"
    assert built.attributes == ("mail", "employeeNumber")
    assert built.ca_certs_file == str(tmp_path / "ca.pem")  # relative to the config file
    assert (built.timeout, built.receive_timeout, built.max_workers, built.user_scope) == (
        3.0,
        0.5,
        4,
        "level",
    )
    assert cfg.backend_roles() == ("ldap", None)
    # every LdapConfig field is a key (secrets as <name>_file)
    keys = {f.name if f.repr else f"{f.name}_file" for f in dataclasses.fields(LdapConfig)}
    assert {"url", "bind_dn", "bind_password_file", "user_base", "identity_ttl", "source"} <= keys


@pytest.mark.parametrize(
    ("ldap", "needle"),
    [
        ({"url": "http://x", "bind_dn": "cn=a", "user_base": "dc=x"}, "url must be"),
        ({"url": "ldap://x", "bind_dn": "cn=a", "user_base": "dc=x", "groups": "some"}, "'memberOf'"),
        ({"url": "ldap://x", "bind_dn": "cn=a", "user_base": "dc=x", "timeout": "soon"}, "expected a number"),
        ({"url": "ldap://x", "user_base": "dc=x"}, "bind_dn"),
        ({"url": "ldap://x", "bind_dn": "cn=a", "user_base": "dc=x", "bind_password": "pw"}, "is a secret"),
    ],
)
def test_bad_ldap_sections(tmp_path: Path, ldap: dict[str, Any], needle: str) -> None:
    write_secret(tmp_path / "ldap.pw", "pw")
    doc = minimal(tmp_path)
    if "bind_password" not in ldap:
        ldap = {**ldap, "bind_password_file": "ldap.pw"}
    doc["backend"] = {"ldap": ldap}
    with pytest.raises(CalloutError) as info:
        load_config(write(tmp_path, doc), {}).backends["ldap"].build_config()
    assert info.value.code == "callout_config"
    assert needle in info.value.message, info.value.message


def test_a_backend_configured_from_the_environment_alone(tmp_path: Path) -> None:
    env = {
        "TRUSTKIT_CALLOUT_BACKEND_LDAP_URL": "ldap://127.0.0.1:1389",
        "TRUSTKIT_CALLOUT_BACKEND_LDAP_BIND_DN": "cn=svc",
        "TRUSTKIT_CALLOUT_BACKEND_LDAP_BIND_PASSWORD": "pw-from-env",
        "TRUSTKIT_CALLOUT_BACKEND_LDAP_USER_BASE": "dc=x",
    }
    cfg = load_config(write(tmp_path, minimal(tmp_path)), env)
    assert cfg.backends["ldap"].build_config().bind_password == "pw-from-env"


def test_missing_backend_module_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "oidc", BackendKind("oidc", "callout.backends.no_such_module", "C", "B"))
    doc = minimal(tmp_path)
    doc["backend"] = {"oidc": {"issuer": "https://idp"}}
    with pytest.raises(CalloutError) as info:
        load_config(write(tmp_path, doc), {})
    assert "backend 'oidc' is not available" in info.value.message
    # check does not need the backends: their modules are not imported
    cfg = load_config(write(tmp_path, doc), {}, backends=False)
    assert not cfg.backends["oidc"].checked
    assert cfg.load_policy().rules


class _PwBackend:
    def __init__(self, config: Any) -> None:
        self.config = config

    async def authenticate(self, username: str, password: str) -> Any: ...


class _TokenBackend(_PwBackend):
    async def authenticate_token(self, token: str) -> Any: ...


@dataclasses.dataclass(frozen=True)
class _Cfg:
    name: str = "x"


def test_backend_roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    mod = types.ModuleType("tests_fake_backends")
    mod.Cfg = _Cfg  # type: ignore[attr-defined]
    mod.Pw = _PwBackend  # type: ignore[attr-defined]
    mod.Tok = _TokenBackend  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_fake_backends", mod)
    monkeypatch.setitem(BACKENDS, "oidc", BackendKind("oidc", "tests_fake_backends", "Cfg", "Tok"))
    monkeypatch.setitem(BACKENDS, "device", BackendKind("device", "tests_fake_backends", "Cfg", "Pw"))

    def roles(
        backends: dict[str, Any], routing: dict[str, str] | None = None
    ) -> tuple[str | None, str | None]:
        doc = minimal(tmp_path)
        doc["backend"] = {**(routing or {}), **backends}
        cfg: CalloutConfig = load_config(write(tmp_path, doc), {})
        return cfg.backend_roles()

    assert roles({"device": {}}) == ("device", None)
    assert roles({"oidc": {}}) == ("oidc", "oidc")
    with pytest.raises(CalloutError, match="choose one with \\[backend\\] password_backend"):
        roles({"oidc": {}, "device": {}})
    assert roles({"oidc": {}, "device": {}}, {"password_backend": "device"}) == ("device", "oidc")
    with pytest.raises(CalloutError, match="not a configured backend"):
        roles({"device": {}}, {"token_backend": "oidc"})
    with pytest.raises(CalloutError, match="has no authenticate_token"):
        roles({"device": {}}, {"token_backend": "device"})


def test_load_policy_toml_and_json(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(toml_text(POLICY))
    (tmp_path / "p.json").write_text('{"rules": [{"users": ["bob"], "pub": {"allow": ["b.>"]}}]}')
    assert load_policy(tmp_path / "p.toml").rules[0].id == "ops"
    assert load_policy(tmp_path / "p.json").rules[0].users == frozenset({"bob"})
    (tmp_path / "bad.toml").write_text('[[rules]]\ngroups = ["x"]\npub = { allow = ["a.>"] }\ncolour = 1\n')
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "bad.toml")
    assert str(tmp_path / "bad.toml") in info.value.message and "'colour'" in info.value.message
    with pytest.raises(PolicyError, match="cannot parse"):
        (tmp_path / "broken.json").write_text("{")
        load_policy(tmp_path / "broken.json")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "none.toml")


def test_backend_oidc_and_device_sections_by_name(tmp_path: Path) -> None:
    """The OIDC and device backends are wired by name like LDAP (their own tests cover them)."""
    from callout.backends.device import DeviceConfig
    from callout.backends.oidc import OidcConfig

    doc = minimal(tmp_path)
    doc["backend"] = {
        "password_backend": "device",
        "token_backend": "oidc",
        "oidc": {"issuer": "https://idp.example/oauth2/default", "audience": ["api://nats", "nats"]},
        "device": {"registry": "devices.toml", "max_lifetime": 120},
    }
    env = {"TRUSTKIT_CALLOUT_BACKEND_OIDC_GROUPS_CLAIM": "roles"}
    cfg = load_config(write(tmp_path, doc), env)
    oidc = cfg.backends["oidc"].build_config()
    assert isinstance(oidc, OidcConfig)
    assert oidc.audience == ("api://nats", "nats") and oidc.groups_claim == "roles"
    device = cfg.backends["device"].build_config()
    assert isinstance(device, DeviceConfig)
    assert device.registry == str(tmp_path / "devices.toml") and device.max_lifetime == 120
    assert cfg.backend_roles() == ("device", "oidc")
    # one audience from the environment
    env = {"TRUSTKIT_CALLOUT_BACKEND_OIDC_AUDIENCE": "only-this"}
    assert load_config(write(tmp_path, doc), env).backends["oidc"].build_config().audience == ("only-this",)
    doc["backend"]["oidc"]["audience"] = 7
    with pytest.raises(CalloutError, match="audience: expected"):
        load_config(write(tmp_path, doc), {})


def test_docs_example_loads_and_every_key_is_documented(tmp_path: Path) -> None:
    """docs/callout.md stays true: its example config loads, and it names every key."""
    import re

    from callout import config as config_module

    doc = (Path(__file__).resolve().parents[2] / "docs" / "callout.md").read_text()
    [example] = re.findall(r"```toml\n(.*?)```", doc, re.S)
    (tmp_path / "c.toml").write_text(example)
    cfg = load_config(tmp_path / "c.toml", {})
    assert cfg.mode == "config" and cfg.http.port == 8089 and "ldap" in cfg.backends
    sections = {**config_module._SECTIONS, "backend": config_module.BackendRouting, "ldap": LdapConfig}
    for section, cls in sections.items():
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in doc, f"docs/callout.md does not name [{section}] {f.name}"
