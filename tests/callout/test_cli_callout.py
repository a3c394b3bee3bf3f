"""``trustkit-callout`` as a user runs it: ``check``, ``doctor``, ``revoke`` and ``run``.

``check`` needs nothing but a policy. ``doctor`` is run against deliberately broken deployments,
one trap each, in both modes (offline: the config files and the trustkit store; live: the real
nats-server and the private slapd). The end-to-end test starts ``trustkit-callout run -c FILE``
as a subprocess in operator mode with the LDAP backend against the real nats-server, logs in with
an LDAP password through nats-py, reads ``/readyz`` and ``/metrics`` over HTTP, and cuts the user
off with ``trustkit-callout revoke --identity``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from callout.__main__ import main
from callout.config import BACKENDS
from callout.doctor import DoctorReport, run_doctor
from tests.callout.conftest import PEOPLE, SVC_DN, SVC_PASSWORD, USERS, Slapd
from tests.callout.worlds import (
    DICT_KIND,
    OperatorWorld,
    connect_sentinel,
    make_operator_world,
    toml_text,
    write_secret,
)
from tests.natsserver import NatsServer
from tests.realcomp import free_port
from trustkit.jwt.types import ExternalAuthorization
from trustkit.nkeys import KeyPair, PrefixByte

CLI = str(Path(sys.executable).parent / "trustkit-callout")
POLICY = {
    "max_lifetime": 900,
    "rules": [
        {
            "id": "eng",
            "groups": ["engineering"],
            "pub": {"allow": ["eng.{{name}}.>"], "deny": ["eng.secret"]},
            "sub": {"allow": ["_INBOX.>"]},
            "resp": {"max": 1, "ttl": 5},
            "limits": {"payload": 4096},
        }
    ],
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTKIT_")}
    env.update(extra)
    return env


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=env or clean_env(), timeout=timeout, check=False
    )


# --- check --------------------------------------------------------------------------------------


def test_check_prints_the_decision(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(toml_text(POLICY))
    p = cli(
        "check", "--user", "alice", "--groups", "engineering,ops", "--policy", str(tmp_path / "policy.toml")
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["allowed", "rule=eng", "account=(default)", "lifetime=900s"]
    assert "  pub allow: eng.alice.>" in lines
    assert "  pub deny: eng.secret, $SYS.REQ.USER.AUTH" in lines
    assert "  resp: max 1, ttl 5s" in lines and "  limits: payload 4096" in lines

    p = cli(
        "check", "--user", "carol", "--groups", "sales", "--policy", str(tmp_path / "policy.toml"), "--json"
    )
    assert p.returncode == 0
    doc = json.loads(p.stdout)
    assert (doc["allowed"], doc["reason_code"]) == (False, "no_matching_rule")
    assert doc["permissions"]["pub"] == {"allow": [], "deny": [">"]}


def test_check_with_a_config_file_and_templates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = {"rules": [{"groups": ["dev"], "pub": {"allow": ["dev.{{attr.site}}.>"]}}]}
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    # a config naming a backend and secrets that do not exist: check needs none of it
    (tmp_path / "c.toml").write_text(
        toml_text(
            {
                "nats": {"url": "nats://x:1", "user": "a", "password_file": "missing.pw"},
                "issuer": {"seed_file": "missing.nk"},
                "policy": {"file": "policy.json"},
                "backend": {"ldap": {"url": "ldap://x", "bind_dn": "cn=x", "user_base": "dc=x"}},
            }
        )
    )
    args = ["check", "-c", str(tmp_path / "c.toml"), "--user", "u", "--groups", "dev", "--json"]
    assert main([*args, "--attr", "site=lyon"]) == 0
    assert json.loads(capsys.readouterr().out)["permissions"]["pub"]["allow"] == ["dev.lyon.>"]
    # a template value that is not one subject token refuses the whole decision
    assert main([*args, "--attr", "site=a.b"]) == 0
    assert json.loads(capsys.readouterr().out)["reason_code"] == "template_invalid"
    assert main([*args, "--attr", "nokey"]) == 2
    assert "--attr wants KEY=VALUE" in capsys.readouterr().err


def test_check_errors(tmp_path: Path) -> None:
    p = cli("check", "--user", "a", "--policy", str(tmp_path / "nope.toml"))
    assert p.returncode == 6 and "cannot read the policy file" in p.stderr
    (tmp_path / "bad.toml").write_text('[[rules]]\ngroups = ["x"]\npub = { allow = ["a..b"] }\n')
    p = cli("check", "--user", "a", "--policy", str(tmp_path / "bad.toml"))
    assert p.returncode == 6 and "bad.toml" in p.stderr
    p = cli("check", "--user", "a")
    assert p.returncode == 2 and "--policy FILE or -c CONFIG" in p.stderr
    assert cli("check").returncode == 2  # argparse: --user is required
    for args in (["run", "-c"], ["-c"]):  # run is the default command
        p = cli(*args, str(tmp_path / "missing.toml"))
        assert p.returncode == 6 and "cannot read the config file" in p.stderr


def test_revoke_needs_operator_mode(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(toml_text(POLICY))
    (tmp_path / "c.toml").write_text(
        toml_text(
            {
                "nats": {"url": "nats://127.0.0.1:1", "user": "a", "password_file": "pw"},
                "issuer": {"seed_file": "nk"},
                "policy": {"file": "policy.toml"},
                "audit": {"file": "audit.jsonl"},
            }
        )
    )
    p = cli("revoke", "--identity", "alice", "-c", str(tmp_path / "c.toml"))
    assert p.returncode == 6
    assert "revoke needs operator mode" in p.stderr


# --- doctor, config mode ------------------------------------------------------------------------

ISSUER = KeyPair.generate(PrefixByte.ACCOUNT)
XKEY = KeyPair.generate(PrefixByte.CURVE)


def server_conf(
    *,
    issuer: str = ISSUER.public_key,
    auth_users: str = "auth",
    xkey: str | None = XKEY.public_key,
    account: str | None = None,
    accounts: str = "",
    perms: str = "",
    extra: str = "",
) -> str:
    callout = [f"issuer: {issuer}", f"auth_users: [ {auth_users} ]"]
    if xkey:
        callout.append(f"xkey: {xkey}")
    if account:
        callout.append(f"account: {account}")
    return (
        f"{extra}\n{accounts}\n"
        "authorization {\n  timeout: 1\n"
        f'  users: [ {{ user: "auth", password: "auth-pw" {perms} }} ]\n'
        f"  auth_callout {{ {', '.join(callout)} }}\n}}\n"
    )


def config_mode_files(
    tmp: Path,
    url: str = "nats://127.0.0.1:1",
    policy: dict[str, Any] = POLICY,
    backend: dict[str, Any] | None = None,
) -> Path:
    write_secret(tmp / "issuer.nk", ISSUER.seed)
    write_secret(tmp / "x.nk", XKEY.seed)
    write_secret(tmp / "nats.pw", "auth-pw")
    (tmp / "users.json").write_text(json.dumps({"alice": {"password": "pw", "groups": ["engineering"]}}))
    (tmp / "policy.toml").write_text(toml_text(policy))
    (tmp / "c.toml").write_text(
        toml_text(
            {
                "nats": {"url": url, "user": "auth", "password_file": "nats.pw"},
                "issuer": {"seed_file": "issuer.nk"},
                "xkey": {"seed_file": "x.nk"},
                "policy": {"file": "policy.toml"},
                "audit": {"file": "audit.jsonl"},
                "backend": backend or {"dict": {"users_file": "users.json"}},
            }
        )
    )
    return tmp / "c.toml"


@pytest.fixture(autouse=True)
def dict_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "dict", DICT_KIND)


def statuses(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def failures(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if c.status == "fail"}


def doctor(config: Path, conf_text: str | None = None, **kw: Any) -> DoctorReport:
    server_config = None
    if conf_text is not None:
        server_config = config.parent / "nats.conf"
        server_config.write_text(conf_text)
    return asyncio.run(
        run_doctor(config, {}, server_config=server_config, offline=kw.pop("offline", True), **kw)
    )


def test_doctor_config_mode_good_deployment(tmp_path: Path) -> None:
    report = doctor(config_mode_files(tmp_path), server_conf())
    assert report.ok, failures(report)
    s = statuses(report)
    for name in ("config", "policy", "issuer_key", "auth_callout_block", "issuer", "auth_users", "xkey"):
        assert s[name] == "ok", (name, report.to_json())
    assert s["service_account"] == "ok" and s["target_accounts"] == "ok"


def test_doctor_reads_includes_and_variables(tmp_path: Path) -> None:
    """A server config split with ``include`` and ``$variables`` (as nsc's generated resolver.conf
    is used) is read as nats-server reads it: the same verdicts as the one-file config."""
    config = config_mode_files(tmp_path)
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "callout.conf").write_text(server_conf(auth_users="svc"))
    report = doctor(config, "include conf.d/callout.conf\n")
    assert "is not in auth_users" in failures(report).get("auth_users", ""), report.to_json()
    (tmp_path / "conf.d" / "callout.conf").write_text(server_conf())
    report = doctor(config, "include 'conf.d/callout.conf'\n")
    assert report.ok, failures(report)
    report = doctor(config, "include conf.d/missing.conf\n")
    assert "cannot read" in failures(report)["server_config"]


@pytest.mark.parametrize(
    ("conf", "check", "needle"),
    [
        (dict(auth_users="svc"), "auth_users", "is not in auth_users"),
        (dict(issuer=KeyPair.generate(PrefixByte.ACCOUNT).public_key), "issuer", "refuses every response"),
        (dict(xkey=None), "xkey", "requests arrive in clear"),
        (dict(xkey=KeyPair.generate(PrefixByte.CURVE).public_key), "xkey", "cannot open requests"),
        (
            dict(account="AUTH", accounts="accounts { AUTH: { users: [ { user: svc, password: p } ] } }"),
            "service_account",
            "would never receive one",
        ),
        (dict(perms=', permissions: { subscribe: ["foo.>"] }'), "service_permissions", "never receives"),
        (
            dict(perms=', permissions: { publish: { deny: ["$SYS.>"] } }'),
            "service_permissions",
            "reply inbox",
        ),
        (dict(extra="operator: eyJhbGciOi.x.y"), "server_mode", "operator mode"),
    ],
)
def test_doctor_config_mode_traps(tmp_path: Path, conf: dict[str, Any], check: str, needle: str) -> None:
    report = doctor(config_mode_files(tmp_path), server_conf(**conf))
    assert not report.ok
    assert check in failures(report), report.to_json()
    assert needle in failures(report)[check]


def test_doctor_config_mode_policy_accounts_and_missing_block(tmp_path: Path) -> None:
    policy = {"rules": [{"groups": ["g"], "account": "APP", "pub": {"allow": ["a.>"]}}]}
    config = config_mode_files(tmp_path, policy=policy)
    report = doctor(config, server_conf())
    assert "names account(s) ['APP']" in failures(report)["target_accounts"]
    report = doctor(config, server_conf(accounts="accounts { APP: { } }"))
    assert "target_accounts" not in failures(report)
    report = doctor(config, 'authorization { users: [ { user: "auth", password: "x" } ] }')
    assert "never fires" in failures(report)["auth_callout_block"]
    (tmp_path / "policy.toml").write_text("rules = 3")
    assert "policy" in failures(doctor(config, server_conf()))


def test_doctor_live_config_mode(tmp_path: Path, slapd: Slapd) -> None:
    """Against a running nats-server and slapd: the service's own login, and the backend probe."""
    pw_file = write_secret(tmp_path / "ldap.pw", SVC_PASSWORD)

    def ldap(url: str = slapd.url) -> dict[str, Any]:
        return {
            "ldap": {"url": url, "bind_dn": SVC_DN, "bind_password_file": str(pw_file), "user_base": PEOPLE}
        }

    for d in ("bad", "good"):
        (tmp_path / d).mkdir()
    with NatsServer(server_conf(auth_users="someone_else"), tmp_path / "bad") as server:
        config = config_mode_files(tmp_path / "bad", url=server.url, backend=ldap())
        report = doctor(config, None, offline=False, timeout=2)
        f = failures(report)
        # auth is not in auth_users: its login went to the callout (nobody answers) and was refused
        assert "nats_connect" in f and "not in auth_users" in f["nats_connect"], report.to_json()
        assert statuses(report)["backend:ldap"] == "ok"
    with NatsServer(server_conf(), tmp_path / "good") as server:
        config = config_mode_files(tmp_path / "good", url=server.url, backend=ldap())
        report = doctor(config, None, offline=False, timeout=2)
        assert report.ok, report.to_json()
        assert statuses(report)["nats_connect"] == "ok" and statuses(report)["backend:ldap"] == "ok"
        # a directory that does not answer, and a wrong service password
        config = config_mode_files(
            tmp_path / "good", url=server.url, backend=ldap(f"ldap://127.0.0.1:{free_port()}")
        )
        assert "unreachable" in failures(doctor(config, None, offline=False, timeout=2))["backend:ldap"]
        config = config_mode_files(tmp_path / "good", url=server.url, backend=ldap())
        write_secret(pw_file, "wrong-service-password")
        assert (
            "service bind refused" in failures(doctor(config, None, offline=False, timeout=2))["backend:ldap"]
        )


# --- doctor, operator mode ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> OperatorWorld:
    return make_operator_world(tmp_path_factory.mktemp("doctor-op"), xkey=True)


def operator_files(tmp: Path, w: OperatorWorld, *, policy: dict[str, Any], **over: Any) -> Path:
    (tmp / "policy.toml").write_text(toml_text(policy))
    (tmp / "users.json").write_text("{}")
    assert w.xkey is not None
    doc = {
        "mode": "operator",
        "nats": {"url": "nats://127.0.0.1:1", "creds_file": str(over.get("creds", w.service_creds))},
        "issuer": {"account": "AUTH", "home": str(w.home), "operator": "demo", **over.get("issuer", {})},
        "xkey": {"seed_file": str(write_secret(tmp / "x.nk", over.get("xkey", w.xkey.seed)))},
        "policy": {"file": "policy.toml"},
        "audit": {"file": "audit.jsonl"},
        "backend": {"dict": {"users_file": "users.json"}},
    }
    (tmp / "c.toml").write_text(toml_text(doc))
    return tmp / "c.toml"


def rules_to(*accounts: str) -> dict[str, Any]:
    return {"rules": [{"groups": [a], "account": a, "pub": {"allow": ["x.>"]}} for a in accounts]}


def test_doctor_operator_mode_good_deployment(tmp_path: Path, world: OperatorWorld) -> None:
    report = doctor(operator_files(tmp_path, world, policy=rules_to("APP", "OPS")))
    assert report.ok, failures(report)
    s = statuses(report)
    for name in ("store", "callout_account", "authorization_block", "auth_users", "sentinel", "xkey"):
        assert s[name] == "ok", (name, report.to_json())
    assert s["issuer_key"] == "ok" and s["target:APP"] == "ok" and s["target:OPS"] == "ok"


def test_doctor_operator_mode_traps(tmp_path: Path, world: OperatorWorld) -> None:
    def fails(**kw: Any) -> dict[str, str]:
        d = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        policy = kw.pop("policy", rules_to("APP"))
        return failures(doctor(operator_files(d, world, policy=policy, **kw), kw.pop("conf", None)))

    assert "allowed_accounts" in fails(policy=rules_to("OTHER"))["target:OTHER"]
    assert "is not in auth_users" in fails(creds=world.sentinel_creds)["auth_users"]
    stranger = KeyPair.generate(PrefixByte.ACCOUNT)
    f = fails(issuer={"seed_file": str(write_secret(tmp_path / "s.nk", stranger.seed))})
    assert "neither the account" in f["signing_keys"]
    assert "cannot open requests" in fails(xkey=KeyPair.generate(PrefixByte.CURVE).seed)["xkey"]
    assert fails() == {}  # the same files, unbroken, pass
    # an account JWT without the authorization block: the callout never fires
    store = world.ws.open("demo")
    plain = store.account_claims("AUTH")
    plain.authorization = ExternalAuthorization()
    jwt_file = tmp_path / "plain.jwt"
    jwt_file.write_text(
        plain.encode(world.ws.key(store.operator_claims().sub, "operator"), iat=int(time.time()))
    )
    d = tmp_path / "plain"
    d.mkdir()
    report = asyncio.run(
        run_doctor(operator_files(d, world, policy=rules_to("APP")), {}, account_jwt=jwt_file, offline=True)
    )
    assert "never fires" in failures(report)["authorization_block"]
    # a server config with an auth_callout block is refused by nats-server in operator mode
    d = tmp_path / "conf"
    d.mkdir()
    conf = world.server_config() + server_conf()
    assert (
        "refuses it in operator mode"
        in failures(doctor(operator_files(d, world, policy=rules_to("APP")), conf))["server_config"]
    )


# --- end to end: the program, LDAP, nats-server, HTTP, revoke -------------------------------------


@pytest.fixture
def program(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)


@pytest.mark.real
def test_end_to_end_ldap_operator_mode(
    tmp_path: Path, slapd: Slapd, program: list[subprocess.Popen[bytes]]
) -> None:
    w = make_operator_world(tmp_path, xkey=True)
    assert w.xkey is not None
    alice_pw = USERS["alice"][1]
    assert alice_pw is not None
    http_port = free_port()
    admin_token = "e2e-admin-token-7Yq"
    policy = {
        "max_lifetime": 900,
        "rules": [
            {
                "id": "eng",
                "groups": ["engineering"],
                "account": "APP",
                "pub": {"allow": ["app.{{name}}.>", "app.shared"]},
                "sub": {"allow": ["app.>", "_INBOX.>"]},
            }
        ],
    }
    (tmp_path / "policy.toml").write_text(toml_text(policy))
    with NatsServer(w.server_config(), tmp_path) as server:
        asyncio.run(w.push_all(server.url))
        doc = {
            "mode": "operator",
            "nats": {"url": server.url, "creds_file": str(w.service_creds)},
            "issuer": {"account": "AUTH", "operator": "demo"},  # home from TRUSTKIT_HOME below
            "xkey": {"seed_file": str(write_secret(tmp_path / "x.nk", w.xkey.seed))},
            "policy": {"file": "policy.toml"},
            "audit": {"file": "audit/audit.jsonl"},
            "http": {"port": http_port, "admin_token_file": str(write_secret(tmp_path / "t", admin_token))},
            "backend": {
                "ldap": {
                    "url": slapd.url,
                    "bind_dn": SVC_DN,
                    "user_base": PEOPLE,
                    "name_attribute": "uid",
                }
            },
        }
        config = tmp_path / "callout.toml"
        config.write_text(toml_text(doc))
        # the LDAP service password comes from the environment; the store from TRUSTKIT_HOME
        env = clean_env(TRUSTKIT_HOME=str(w.home), TRUSTKIT_CALLOUT_BACKEND_LDAP_BIND_PASSWORD=SVC_PASSWORD)
        log = (tmp_path / "callout.log").open("wb")
        program.append(
            subprocess.Popen([CLI, "run", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env)
        )
        base = f"http://127.0.0.1:{http_port}"

        def get(path: str, **kw: Any) -> httpx.Response:
            return httpx.get(base + path, timeout=5, **kw)

        deadline = time.monotonic() + 20
        while True:
            assert program[0].poll() is None, (tmp_path / "callout.log").read_text()
            try:
                if get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "callout.log").read_text()
            time.sleep(0.1)

        async def scenario() -> tuple[list[str], str, list[str]]:
            errors: list[str] = []
            closed = asyncio.Event()

            async def on_closed() -> None:
                closed.set()

            nc = await connect_sentinel(
                server.url, w.sentinel_creds, "alice", alice_pw, errors, closed_cb=on_closed
            )
            sub = await nc.subscribe("app.shared")
            await nc.flush()
            await nc.publish("app.shared", b"hello")
            assert (await sub.next_msg(timeout=2)).data == b"hello"
            await nc.publish("app.bob.x", b"not mine")
            await nc.flush()
            for _ in range(100):
                if errors:
                    break
                await asyncio.sleep(0.02)
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await connect_sentinel(server.url, w.sentinel_creds, "alice", "wrong-password", [])
            # revoke alice with the CLI, as an operator would
            p = await asyncio.to_thread(
                cli, "revoke", "--identity", "alice", "-c", str(config), "--json", "--servers", "1", env=env
            )
            assert p.returncode == 0, p.stderr
            await asyncio.wait_for(closed.wait(), 10)
            return errors, str(nc.last_error), [p.stdout]

        errors, last_error, [revoke_out] = asyncio.run(scenario())
        assert any('permissions violation for publish to "app.bob.x"' in e.lower() for e in errors), errors
        assert "user authentication revoked" in last_error.lower(), last_error
        revoked = json.loads(revoke_out)
        assert revoked["identity"] == "alice" and len(revoked["revoked"]) == 1
        assert revoked["replies"][0]["code"] == 200 and revoked["accounts"][0]["name"] == "APP"

        metrics = get("/metrics").text
        assert 'trustkit_callout_requests_total{outcome="issued"} 1' in metrics
        assert 'trustkit_callout_denied_total{reason="invalid_credentials"} 1' in metrics
        assert 'trustkit_callout_backend_seconds_count{backend="ldap"} 2' in metrics
        r = get("/v1/decisions", headers={"Authorization": f"Bearer {admin_token}"})
        assert [d["reason_code"] for d in r.json()["decisions"]] == ["invalid_credentials", "allowed"]

        # the doctor finds nothing wrong with this deployment, live
        p = cli("doctor", "-c", str(config), env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "ok    backend:ldap: reachable" in p.stdout and "ok    target:APP" in p.stdout

        program[0].send_signal(signal.SIGTERM)
        assert program[0].wait(15) == 0
    text = (tmp_path / "callout.log").read_text()
    for secret in (alice_pw, "wrong-password", SVC_PASSWORD, admin_token, w.xkey.seed):
        assert secret not in text
    assert (tmp_path / "audit" / "audit.jsonl").read_text().count("\n") == 2
