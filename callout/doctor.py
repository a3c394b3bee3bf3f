"""``trustkit-callout doctor``: check a deployment for the classic auth-callout traps.

The server only ever tells a client ``Authorization Violation``, and logs the real reason at
debug level at best, so a misconfigured callout looks like "nobody can log in". Each check below
is one trap, named, with what to do about it. Checks never stop at the first problem, and never
print a secret.

Offline checks (always): the config and policy load, the seeds are of the right kind, the NATS
credentials are usable, the backends' settings are valid. Then, by mode:

* **config mode**, given the nats-server config (``--server-config``): the ``auth_callout`` block
  exists (else the callout never fires), its ``issuer`` is our seed's key, our own user is in
  ``auth_users`` (else its login is sent to the callout itself) and lives in the callout account
  (else it never receives a request) with permission to subscribe to ``$SYS.REQ.USER.AUTH`` and
  reply, the ``xkey`` matches ours both ways, and every account the policy names exists.
* **operator mode**, from the trustkit store (or ``--account-jwt``): the callout account has an
  ``authorization`` block (else the callout never fires), our creds user is in its
  ``auth_users`` and belongs to it, some user of the account is *not* in ``auth_users`` (a
  sentinel: else no client can trigger the callout), the issuer is the account or one of its
  unscoped signing keys, the ``xkey`` matches, and every account the policy names is in
  ``allowed_accounts`` and has a key in the keystore that may sign its users. With
  ``--server-config``: no ``auth_callout`` block (refused in operator mode), and a preloaded copy
  of the callout account that matches the store.

Live checks (unless ``--offline``): connect to NATS as the service and subscribe to
``$SYS.REQ.USER.AUTH``; probe every backend (LDAP: service bind and a read of ``user_base``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callout.config import CalloutConfig, load_config
from callout.policy import Policy
from trustkit import nkeys
from trustkit import subject as subjects
from trustkit.errors import TrustkitError
from trustkit.nkeys import KeyPair, PrefixByte

__all__ = ["Check", "DoctorReport", "run_doctor"]

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
#: what the server's reply subjects for auth requests look like (``$SYS._INBOX.<id>.<n>``)
REPLY_SAMPLE = "$SYS._INBOX.doctor.reply"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    @contextlib.contextmanager
    def guard(self, name: str) -> Iterator[None]:
        """A check that fails with the error's message if its body raises a trustkit error."""
        try:
            yield
        except TrustkitError as exc:
            self.add(name, FAIL, exc.message)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}


# --- small readers ------------------------------------------------------------------------------


def _perm_lists(raw: Any) -> tuple[list[str] | None, list[str]]:
    """nats-server's ``publish``/``subscribe`` permission value → (allow or None, deny)."""
    if raw is None:
        return None, []
    if isinstance(raw, str):
        return [raw], []
    if isinstance(raw, list):
        return [str(x) for x in raw], []
    if isinstance(raw, dict):
        allow = raw.get("allow")
        deny = raw.get("deny") or []
        allow_l = None if allow is None else ([allow] if isinstance(allow, str) else [str(x) for x in allow])
        return allow_l, [deny] if isinstance(deny, str) else [str(x) for x in deny]
    return None, []


def _permitted(permissions: Any, kind: str, subject: str) -> bool:
    if not isinstance(permissions, dict):
        return True
    allow, deny = _perm_lists(permissions.get(kind) or permissions.get("pub" if kind == "publish" else "sub"))
    if allow is not None and not any(subjects.matches(p, subject) for p in allow if subjects.is_valid(p)):
        return False
    return not any(subjects.matches(p, subject) for p in deny if subjects.is_valid(p))


def _users(block: Any) -> list[dict[str, Any]]:
    users = block.get("users") if isinstance(block, dict) else None
    return [u for u in users if isinstance(u, dict)] if isinstance(users, list) else []


def _user_id(entry: Mapping[str, Any]) -> str:
    return str(entry.get("user") or entry.get("username") or entry.get("nkey") or "")


# --- the checks ---------------------------------------------------------------------------------


def _check_config_mode_server(
    report: DoctorReport,
    cfg: CalloutConfig,
    policy: Policy | None,
    issuer: KeyPair | None,
    xkey: KeyPair | None,
    conf: dict[str, Any],
) -> None:
    if "operator" in conf or "trusted_keys" in conf or "trusted" in conf:
        report.add(
            "server_mode",
            FAIL,
            'the server config is in operator mode (operator/trusted keys): set mode = "operator" and put '
            "the callout in the account JWT's authorization block",
        )
        return
    auth = conf.get("authorization") if isinstance(conf.get("authorization"), dict) else {}
    ac = auth.get("auth_callout") if isinstance(auth, dict) else None
    if not isinstance(ac, dict):
        report.add(
            "auth_callout_block",
            FAIL,
            "no authorization { auth_callout { ... } } block: the callout never fires",
        )
        return
    report.add("auth_callout_block", OK, "authorization.auth_callout present")
    server_issuer = str(ac.get("issuer", ""))
    if issuer is not None:
        if server_issuer == issuer.public_key:
            report.add("issuer", OK, f"auth_callout.issuer is our issuer key {server_issuer}")
        else:
            report.add(
                "issuer",
                FAIL,
                f"auth_callout.issuer is {server_issuer or '(missing)'} but our seed's key is "
                f"{issuer.public_key}: the server refuses every response",
            )
    auth_users = [str(u) for u in (ac.get("auth_users") or ac.get("users") or [])]
    me = cfg.nats.user
    if not auth_users:
        report.add("auth_users", FAIL, "auth_callout.auth_users is empty (nats-server refuses to start)")
    elif me is None:
        report.add("auth_users", WARN, "config mode without [nats] user: cannot check auth_users")
    elif me in auth_users:
        report.add("auth_users", OK, f"our user {me!r} is in auth_users")
    else:
        report.add(
            "auth_users",
            FAIL,
            f"our user {me!r} is not in auth_users {auth_users}: the service's own login is sent to the "
            "callout (which is not connected yet) and is refused",
        )
    account = str(ac.get("account") or ac.get("acc") or "$G")
    raw_accounts = conf.get("accounts") if isinstance(conf.get("accounts"), dict) else {}
    assert isinstance(raw_accounts, dict)
    # (the config reader lower-cases keys, and so account names: compare them that way)
    accounts = {str(k).lower(): v for k, v in raw_accounts.items()}
    members = _users(auth) if account == "$G" else _users(accounts.get(account.lower()))
    mine = [u for u in members if me is not None and _user_id(u) == me]
    if me is not None:
        if not mine:
            where = "authorization.users" if account == "$G" else f"accounts.{account}.users"
            report.add(
                "service_account",
                FAIL,
                f"our user {me!r} is not in {where}: requests go out in the callout account {account!r}, so "
                "the service would never receive one (every login times out)",
            )
        else:
            perms = mine[0].get("permissions")
            if not _permitted(perms, "subscribe", AUTH_SUBJECT):
                report.add(
                    "service_permissions",
                    FAIL,
                    f"our user may not subscribe to {AUTH_SUBJECT}: the callout never receives a request",
                )
            elif not _permitted(perms, "publish", REPLY_SAMPLE):
                report.add(
                    "service_permissions",
                    FAIL,
                    "our user may not publish to the server's reply inbox ($SYS._INBOX.>): "
                    "answers are dropped",
                )
            else:
                report.add("service_account", OK, f"our user is in the callout account {account!r}")
    server_xkey = str(ac.get("xkey") or ac.get("key") or "")
    _compare_xkey(report, server_xkey, xkey, "auth_callout.xkey")
    if policy is not None:
        from callout.runtime import policy_accounts

        missing = [a for a in policy_accounts(policy) if a != "$G" and a.lower() not in accounts]
        if missing:
            report.add(
                "target_accounts",
                FAIL,
                f"the policy names account(s) {missing} that the server config does not define: "
                "users placed there are refused",
            )
        else:
            report.add("target_accounts", OK, "every account the policy names exists in the server config")


def _compare_xkey(report: DoctorReport, server_xkey: str, xkey: KeyPair | None, where: str) -> None:
    ours = xkey.public_key if xkey is not None else ""
    if server_xkey == ours:
        report.add("xkey", OK, f"{where} matches ([xkey] seed)" if ours else "no xkey on either side")
    elif not server_xkey:
        report.add(
            "xkey",
            FAIL,
            f"we have an xkey ({ours}) but {where} is not set: requests arrive in clear and the service "
            "drops them (encryption_required)",
        )
    elif not ours:
        report.add(
            "xkey",
            FAIL,
            f"{where} is {server_xkey} but [xkey] seed is not configured: the service cannot open requests",
        )
    else:
        report.add(
            "xkey",
            FAIL,
            f"{where} is {server_xkey} but our xkey is {ours}: the service cannot open requests",
        )


def _check_operator_mode(
    report: DoctorReport,
    cfg: CalloutConfig,
    policy: Policy | None,
    xkey: KeyPair | None,
    account_jwt: Path | None,
    conf: dict[str, Any] | None,
) -> None:
    from callout.runtime import account_claims, open_store, resolve_signing
    from trustkit.jwt.account import AccountClaims
    from trustkit.jwt.decoder import decode

    try:
        _, store = open_store(cfg)
    except TrustkitError as exc:
        report.add("store", FAIL, exc.message)
        return
    report.add("store", OK, f"operator {store.name!r} at {store.dir}")
    ref = cfg.issuer.account
    if ref is None and cfg.issuer.seed is not None:
        with report.guard("issuer_key"):
            from callout.runtime import read_seed

            ref = read_seed(cfg.issuer.seed, PrefixByte.ACCOUNT, "[issuer] seed").public_key
    if ref is None:
        report.add("callout_account", FAIL, "set [issuer] account (the callout account's name or key)")
        return
    try:
        callout = account_claims(store, ref)
    except TrustkitError as exc:
        report.add("callout_account", FAIL, exc.message)
        return
    if account_jwt is not None:
        try:
            callout = decode(Path(account_jwt).read_text().strip(), AccountClaims)
        except (OSError, TrustkitError) as exc:
            report.add("account_jwt", FAIL, f"cannot use {account_jwt}: {exc}")
            return
        report.add("account_jwt", OK, f"checking the account JWT from {account_jwt}")
    report.add("callout_account", OK, f"{callout.name!r} ({callout.sub})")
    authz = callout.authorization
    if not authz.auth_users:
        report.add(
            "authorization_block",
            FAIL,
            f"account {callout.name!r} has no authorization block (auth_users is empty): the callout never "
            "fires (trustkit edit authcallout, then push)",
        )
    else:
        report.add("authorization_block", OK, f"{len(authz.auth_users)} auth user(s)")
    # the service's own user
    me = _creds_user(report, cfg)
    if me is not None:
        user_key, user_account = me
        if user_key in authz.auth_users:
            report.add("auth_users", OK, f"our creds user {user_key} is in auth_users")
        elif authz.auth_users:
            report.add(
                "auth_users",
                FAIL,
                f"our creds user {user_key} is not in auth_users: the service's own login is sent to the "
                "callout (which is not connected yet) and is refused",
            )
        if user_account and user_account != callout.sub:
            report.add(
                "service_account",
                FAIL,
                f"our creds user belongs to account {user_account}, not the callout account {callout.sub}: "
                "requests go out in the callout account, so the service would never receive one",
            )
    # a sentinel: some user of the account that is not an auth user
    try:
        others = []
        stored_name = store.find_account(callout.sub) or callout.name
        for name in store.list_users(stored_name):
            with contextlib.suppress(TrustkitError):
                uc = store.user_claims(stored_name, name)
                if uc.sub not in authz.auth_users:
                    others.append(name)
        if authz.auth_users and not others:
            report.add(
                "sentinel",
                WARN,
                f"every user of {callout.name!r} in the store is in auth_users: no client can trigger the "
                "callout (clients connect with a sentinel user of the callout account that is not an "
                "auth user)",
            )
        elif others:
            report.add("sentinel", OK, f"users that trigger the callout: {', '.join(sorted(others))}")
    except TrustkitError as exc:
        report.add("sentinel", SKIP, exc.message)
    _compare_xkey(report, authz.xkey, xkey, "the account's authorization.xkey")
    # issuer and targets (resolve_signing makes every check the service makes at start-up)
    if policy is not None:
        try:
            signing = resolve_signing(cfg, policy)
        except TrustkitError as exc:
            report.add("signing_keys", FAIL, exc.message)
        else:
            kind = "the account key" if signing.issuer.public_key == callout.sub else "a signing key of it"
            report.add("issuer_key", OK, f"responses signed by {kind} ({signing.issuer.public_key})")
            allowed = set(authz.allowed_accounts)
            seen: set[str] = set()
            for signer in signing.accounts.values():
                if signer.account in seen:
                    continue
                seen.add(signer.account)
                if "*" in allowed or signer.account in allowed:
                    report.add(
                        f"target:{signer.name}",
                        OK,
                        f"in allowed_accounts; users signed by {signer.key.public_key}",
                    )
                else:
                    report.add(
                        f"target:{signer.name}",
                        FAIL,
                        f"account {signer.name!r} ({signer.account}) is not in {callout.name!r}'s "
                        "allowed_accounts: nats-server refuses every user placed there",
                    )
    if conf is not None:
        if isinstance(conf.get("authorization"), dict) and "auth_callout" in conf["authorization"]:
            report.add(
                "server_config",
                FAIL,
                "the server config has authorization.auth_callout: nats-server refuses it in operator mode",
            )
        preload = conf.get("resolver_preload") if isinstance(conf.get("resolver_preload"), dict) else {}
        assert isinstance(preload, dict)
        token = preload.get(callout.sub.lower()) or preload.get(callout.sub)
        if token:
            try:
                pre = decode(str(token), AccountClaims)
                if pre.authorization.to_json() != callout.authorization.to_json():
                    report.add(
                        "preloaded_account",
                        WARN,
                        "the server config preloads the callout account with another authorization block "
                        "than the store's: regenerate the config or push",
                    )
                else:
                    report.add("preloaded_account", OK, "the preloaded callout account matches the store")
            except TrustkitError as exc:
                report.add(
                    "preloaded_account", FAIL, f"the preloaded callout account JWT is invalid: {exc.message}"
                )


def _creds_user(report: DoctorReport, cfg: CalloutConfig) -> tuple[str, str] | None:
    """(user public key, its account) from ``[nats] creds_file``; adds a check on failure."""
    from trustkit.creds import parse_creds

    path = cfg.nats.creds_file
    if path is None:
        report.add("nats_credentials", FAIL, "operator mode needs [nats] creds_file")
        return None
    try:
        creds = parse_creds(Path(path).read_bytes())
        creds.check()
        claims = creds.user_claims()
    except OSError as exc:
        report.add("nats_credentials", FAIL, f"cannot read {path}: {exc.strerror or exc}")
        return None
    except TrustkitError as exc:
        report.add("nats_credentials", FAIL, f"{path}: {exc.message}")
        return None
    report.add("nats_credentials", OK, f"creds user {claims.sub} ({claims.name or 'no name'})")
    return claims.sub, claims.issuer_account or claims.iss


async def _live_nats(report: DoctorReport, cfg: CalloutConfig, timeout: float) -> None:
    import nats
    from nats.errors import Error as NatsError

    from callout.service import _creds_callbacks

    opts: dict[str, Any] = {}
    try:
        if cfg.nats.creds_file is not None:
            opts.update(_creds_callbacks(str(cfg.nats.creds_file)))
        elif cfg.nats.user is not None:
            assert cfg.nats.password is not None
            opts.update(user=cfg.nats.user, password=cfg.nats.password.reveal())
    except TrustkitError as exc:
        report.add("nats_connect", FAIL, exc.message)
        return
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc) or type(exc).__name__)

    try:
        nc = await asyncio.wait_for(
            nats.connect(
                cfg.nats.url,
                name="trustkit-callout doctor",
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=timeout,
                error_cb=on_error,
                **opts,
            ),
            timeout + 1,
        )
    except (NatsError, OSError, TimeoutError) as exc:
        text = str(exc) or (errors[-1] if errors else type(exc).__name__)
        hint = ""
        if "authorization" in text.lower():
            hint = (
                ": the server refused the service's own login (wrong credentials, or the user is not in "
                "auth_users so its login went to the callout)"
            )
        report.add("nats_connect", FAIL, f"cannot connect to {cfg.nats.url}: {text}{hint}")
        return
    try:
        await nc.subscribe(AUTH_SUBJECT, queue="trustkit-callout-doctor")
        await nc.flush(max(1, int(timeout)))
        await nc.flush(max(1, int(timeout)))
        await asyncio.sleep(0.05)
        violations = [e for e in errors if "permissions violation" in e.lower()]
        if violations:
            report.add("nats_subscribe", FAIL, f"{violations[0]}: the callout never receives a request")
        else:
            report.add("nats_connect", OK, f"connected to {cfg.nats.url} and subscribed to {AUTH_SUBJECT}")
    except (NatsError, OSError, TimeoutError) as exc:
        report.add("nats_subscribe", FAIL, f"{type(exc).__name__}: {exc}")
    finally:
        await nc.close()


async def _live_backends(report: DoctorReport, cfg: CalloutConfig, timeout: float) -> None:
    from callout.runtime import probe_backend

    for name, section in cfg.backends.items():
        try:
            backend = section.build()
        except TrustkitError as exc:
            report.add(f"backend:{name}", FAIL, exc.message)
            continue
        try:
            reason = await probe_backend(name, backend, timeout)
        finally:
            closer: Callable[[], Any] | None = getattr(backend, "aclose", None)
            if closer is not None:
                await closer()
            elif hasattr(backend, "close"):
                backend.close()
        if reason is None:
            report.add(f"backend:{name}", OK, "reachable")
        else:
            report.add(f"backend:{name}", FAIL, f"unreachable: {reason}")


async def run_doctor(
    config_path: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None = None,
    *,
    server_config: str | os.PathLike[str] | None = None,
    account_jwt: str | os.PathLike[str] | None = None,
    offline: bool = False,
    timeout: float = 3.0,
) -> DoctorReport:
    """Every check of the module docstring; never raises for a bad deployment (it reports it)."""
    from callout.runtime import read_seed

    report = DoctorReport()
    try:
        cfg = load_config(config_path, env)
    except TrustkitError as exc:
        report.add("config", FAIL, exc.message)
        return report
    report.add("config", OK, f"{cfg.source} (mode {cfg.mode})")
    policy: Policy | None = None
    try:
        policy = cfg.load_policy()
        report.add("policy", OK, f"{cfg.policy_file}: {len(policy.rules)} rule(s)")
    except TrustkitError as exc:
        report.add("policy", FAIL, exc.message)
    issuer: KeyPair | None = None
    if cfg.issuer.seed is not None:
        with report.guard("issuer_key"):
            issuer = read_seed(cfg.issuer.seed, PrefixByte.ACCOUNT, "[issuer] seed")
            if cfg.mode == "config":
                report.add("issuer_key", OK, f"account key {issuer.public_key}")
    elif cfg.mode == "config":
        report.add("issuer_key", FAIL, "[issuer] seed is required in config mode")
    xkey: KeyPair | None = None
    if cfg.xkey.seed is not None:
        with report.guard("xkey_seed"):
            xkey = read_seed(cfg.xkey.seed, PrefixByte.CURVE, "[xkey] seed")
    if cfg.mode == "config":
        if cfg.nats.user is not None and cfg.nats.password is not None:
            with report.guard("nats_credentials"):
                cfg.nats.password.reveal()
                report.add("nats_credentials", OK, f"user {cfg.nats.user!r} with a password")
    if not cfg.backends:
        report.add("backends", FAIL, "no backend configured")
    else:
        with report.guard("backends"):
            for section in cfg.backends.values():
                section.build_config()
            password, token = cfg.backend_roles()
            report.add("backends", OK, f"passwords: {password or '-'}, tokens: {token or '-'}")
    conf: dict[str, Any] | None = None
    if server_config is not None:
        from trustkit.natsconf import parse_conf_file

        try:
            conf = parse_conf_file(Path(server_config))
            report.add("server_config", OK, f"read {server_config}")
        except (OSError, TrustkitError) as exc:
            report.add("server_config", FAIL, f"cannot read {server_config}: {exc}")
    if cfg.mode == "config":
        if conf is not None:
            _check_config_mode_server(report, cfg, policy, issuer, xkey, conf)
        else:
            report.add("server_config", SKIP, "pass --server-config to check the auth_callout block")
    else:
        _check_operator_mode(report, cfg, policy, xkey, Path(account_jwt) if account_jwt else None, conf)
    if cfg.audit.file is None:
        report.add(
            "audit", WARN, "no [audit] file: refusal reasons only reach the log, and revoke cannot find keys"
        )
    else:
        parent = cfg.audit.file.parent
        if os.access(parent, os.W_OK) or (not parent.exists() and os.access(parent.parent, os.W_OK)):
            report.add("audit", OK, f"{cfg.audit.file}")
        else:
            report.add("audit", FAIL, f"cannot write in {parent}")
    if cfg.http.port is not None and cfg.http.admin_token is None:
        report.add("admin_token", WARN, "no [http] admin token: /v1/decisions refuses every request")
    if cfg.server.allowed_keys:
        bad = [k for k in cfg.server.allowed_keys if not nkeys.is_valid_public_key(k, PrefixByte.SERVER)]
        if bad:
            report.add("server_keys", FAIL, f"not server public keys: {bad}")
    if offline:
        report.add("live", SKIP, "--offline: NATS and backends not contacted")
    else:
        await _live_nats(report, cfg, timeout)
        if cfg.backends:
            await _live_backends(report, cfg, timeout)
    return report
