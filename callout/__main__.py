"""``trustkit-callout``: run the auth-callout service, or check, diagnose and revoke.

::

    trustkit-callout [run] -c callout.toml
    trustkit-callout check --user alice --groups ops,dev [-c callout.toml | --policy policy.toml] [--json]
    trustkit-callout doctor -c callout.toml [--server-config nats.conf] [--account-jwt A.jwt] [--offline]
    trustkit-callout revoke --identity alice -c callout.toml [--url nats://...] [--no-push]

``-c`` defaults to ``$TRUSTKIT_CALLOUT_CONFIG``; without either, the configuration comes from
the environment alone. Errors are one line on stderr; exit statuses come from
:data:`trustkit.errors.EXIT_STATUS` (6: callout/config error, 7: network, 3: store; 2: usage).
Start-up stays light: only the chosen command's modules are imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

COMMANDS = ("run", "check", "doctor", "revoke")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="config file (TOML); default $TRUSTKIT_CALLOUT_CONFIG, else the environment alone",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")

    p = argparse.ArgumentParser(
        prog="trustkit-callout",
        parents=[common],
        description="NATS auth callout: LDAP/OIDC/device identities → signed NATS user JWTs.",
    )
    sub = p.add_subparsers(dest="command", metavar="{run,check,doctor,revoke}")
    sub.add_parser("run", parents=[common], help="serve authorization requests (the default)")

    c = sub.add_parser("check", parents=[common, as_json], help="print the policy decision for an identity")
    c.add_argument("--user", required=True, help="the identity's subject (what the backend would return)")
    c.add_argument("--groups", default="", help="comma-separated groups")
    c.add_argument("--name", default=None, help="display name (default: the user)")
    c.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE", help="an identity attribute")
    c.add_argument("--policy", default=None, help="policy file (instead of the config's [policy] file)")
    c.add_argument("--expires-at", type=int, default=None, help="the identity's own expiry (unix s)")

    d = sub.add_parser("doctor", parents=[common, as_json], help="check a deployment for the classic traps")
    d.add_argument("--server-config", default=None, help="the nats-server config file to check against")
    d.add_argument(
        "--account-jwt", default=None, help="operator mode: check this account JWT, not the store's"
    )
    d.add_argument("--offline", action="store_true", help="do not contact NATS or the backends")
    d.add_argument("--timeout", type=float, default=3.0, help="seconds per live check")

    r = sub.add_parser("revoke", parents=[common, as_json], help="revoke every key issued to an identity")
    r.add_argument("--identity", required=True, help="the identity's subject, as in the audit log")
    r.add_argument("--url", default=None, help="server to push to (default: [nats] url)")
    r.add_argument("--no-push", action="store_true", help="only re-sign the accounts in the store")
    r.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for server replies")
    r.add_argument("--servers", type=int, default=None, help="stop waiting once this many servers answered")
    return p


def _config_path(args: argparse.Namespace) -> str | None:
    path = getattr(args, "config", None) or os.environ.get("TRUSTKIT_CALLOUT_CONFIG") or None
    return str(path) if path else None


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def _setup_logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# --- commands ------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from callout.config import load_config
    from callout.runtime import build, run

    cfg = load_config(_config_path(args))
    _setup_logging(cfg.log.level)
    built = build(cfg)

    def ready(_: Any, port: int | None) -> None:
        where = f", http on {cfg.http.host}:{port}" if port is not None else ""
        logging.getLogger("trustkit.callout").info("ready (mode %s%s)", cfg.mode, where)

    asyncio.run(run(cfg, built=built, ready=ready))
    return 0


def _decision_json(decision: Any, now: int) -> dict[str, Any]:
    perms = decision.permissions

    def direction(p: Any) -> dict[str, list[str]]:
        return {"allow": list(p.allow), "deny": list(p.deny)}

    return {
        "allowed": decision.allowed,
        "reason_code": decision.reason_code,
        "rule": decision.rule,
        "account": decision.account,
        "expires_at": decision.expires_at,
        "lifetime": decision.expires_at - now if decision.allowed else 0,
        "permissions": {
            "pub": direction(perms.pub),
            "sub": direction(perms.sub),
            "resp": None if perms.resp is None else {"max": perms.resp.max, "ttl_ns": perms.resp.ttl},
            "subs": perms.subs,
            "data": perms.data,
            "payload": perms.payload,
        },
    }


def cmd_check(args: argparse.Namespace) -> int:
    import time

    from callout.config import load_config, load_policy
    from callout.identity import Identity
    from trustkit.errors import CalloutError

    if args.policy:
        policy = load_policy(args.policy)
    else:
        path = _config_path(args)
        if path is None and not any(k.startswith("TRUSTKIT_CALLOUT_") for k in os.environ):
            raise CalloutError("name a policy: --policy FILE or -c CONFIG", code="callout_usage")
        policy = load_config(path, backends=False).load_policy()
    attributes = {}
    for item in args.attr:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CalloutError(f"--attr wants KEY=VALUE, not {item!r}", code="callout_usage")
        attributes[key] = value
    identity = Identity(
        subject=args.user,
        name=args.name or args.user,
        groups=tuple(g.strip() for g in args.groups.split(",") if g.strip()),
        attributes=attributes,
        expires_at=args.expires_at,
        source="check",
    )
    now = int(time.time())
    doc = _decision_json(policy.decide(identity, now), now)
    if args.json:
        _print_json(doc)
        return 0
    out = sys.stdout
    if doc["allowed"]:
        out.write(
            f"allowed  rule={doc['rule']}  account={doc['account'] or '(default)'}  "
            f"lifetime={doc['lifetime']}s\n"
        )
    else:
        rule = f"  rule={doc['rule']}" if doc["rule"] else ""
        out.write(f"denied   reason={doc['reason_code']}{rule}\n")
        return 0
    p = doc["permissions"]
    for d in ("pub", "sub"):
        for kind in ("allow", "deny"):
            if p[d][kind]:
                out.write(f"  {d} {kind}: {', '.join(p[d][kind])}\n")
    if p["resp"]:
        out.write(f"  resp: max {p['resp']['max']}, ttl {p['resp']['ttl_ns'] / 1e9:g}s\n")
    limits = [f"{k} {p[k]}" for k in ("subs", "data", "payload") if p[k] != -1]
    if limits:
        out.write(f"  limits: {', '.join(limits)}\n")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from callout.doctor import run_doctor

    report = asyncio.run(
        run_doctor(
            _config_path(args),
            server_config=args.server_config,
            account_jwt=args.account_jwt,
            offline=args.offline,
            timeout=args.timeout,
        )
    )
    if args.json:
        _print_json(report.to_json())
    else:
        for c in report.checks:
            sys.stdout.write(f"{c.status:<5} {c.name}: {c.detail}\n")
    return 0 if report.ok else 6


def cmd_revoke(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from callout.config import load_config
    from callout.revoke import revoke_identity

    cfg = load_config(_config_path(args), backends=False)
    report = asyncio.run(
        revoke_identity(
            cfg,
            args.identity,
            now=int(time.time()),
            url=args.url,
            push=not args.no_push,
            timeout=args.timeout,
            expected_servers=args.servers,
        )
    )
    if args.json:
        _print_json(report.to_json())
    elif not report.keys:
        sys.stderr.write(f"trustkit-callout: no live key issued to {args.identity!r} in the audit index\n")
    else:
        for k in report.keys:
            sys.stdout.write(f"revoked {k.user_nkey} in {k.account} (issued {k.iat})\n")
        for r in report.replies:
            sys.stdout.write(f"push {r.account} → {r.server}: {r.code} {r.message}\n")
    return 0 if report.ok else 7


def main(argv: list[str] | None = None) -> int:
    from trustkit.errors import TrustkitError, exit_status

    args = _parser().parse_args(argv)
    command = args.command or "run"
    handler = {"run": cmd_run, "check": cmd_check, "doctor": cmd_doctor, "revoke": cmd_revoke}[command]
    try:
        return handler(args)
    except TrustkitError as exc:
        sys.stderr.write(f"trustkit-callout: error: {exc.message}\n")
        return 2 if exc.code == "callout_usage" else exit_status(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
