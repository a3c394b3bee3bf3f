"""nats-server configuration for operator mode (what ``nsc generate config`` produces).

Three shapes, each started unmodified by the real nats-server (tests prove it):

* :func:`mem_resolver_config` — ``resolver: MEMORY`` with every account preloaded (static);
* :func:`nats_resolver_config` — the nats-based ``full`` resolver: accounts live in a directory
  and are pushed live with ``$SYS.REQ.CLAIMS.UPDATE`` (``trustkit push``); only the system
  account is preloaded;
* the same with ``cache=True`` — a ``cache`` resolver that looks accounts up from full servers.

Pure functions: they return text; the CLI writes it. Tokens are verified on the way in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from trustkit.errors import TrustkitError
from trustkit.jwt.account import AccountClaims
from trustkit.jwt.decoder import decode
from trustkit.jwt.operator import OperatorClaims

__all__ = ["mem_resolver_config", "nats_resolver_config"]


def _q(name: str) -> str:
    """A name for a comment line, quoted (and escaped, so a name cannot break the config)."""
    return json.dumps(name, ensure_ascii=True)


def _system_account(operator: OperatorClaims, system_account: str | None) -> str:
    key = system_account or operator.system_account
    if not key:
        raise TrustkitError("no system account: set one on the operator or pass it explicitly")
    return key


def mem_resolver_config(
    operator_jwt: str,
    account_jwts: Iterable[str],
    *,
    system_account: str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> str:
    """``resolver: MEMORY`` with each account preloaded, sorted by public key (as nsc does)."""
    operator = decode(operator_jwt, OperatorClaims)
    accounts: dict[str, tuple[str, str]] = {}
    for token in account_jwts:
        account = decode(token, AccountClaims)
        accounts[account.sub] = (account.name, token)
    sys_key = system_account or operator.system_account
    lines = _listen(host, port)
    lines += [f"// Operator {_q(operator.name)}", f"operator: {operator_jwt}", ""]
    if sys_key:
        lines += [f"system_account: {sys_key}", ""]
    lines += ["resolver: MEMORY", "", "resolver_preload: {"]
    for key in sorted(accounts):
        name, token = accounts[key]
        lines += [f"  // Account {_q(name)}", f"  {key}: {token}", ""]
    lines.append("}")
    return "\n".join(lines) + "\n"


def nats_resolver_config(
    operator_jwt: str,
    system_account_jwt: str,
    *,
    cache: bool = False,
    directory: str = "./jwt",
    allow_delete: bool = False,
    interval: str = "2m",
    timeout: str = "1.9s",
    ttl: str = "1h",
    host: str | None = None,
    port: int | None = None,
) -> str:
    """The nats-based resolver (``full``, or ``cache``), preloading only the system account.

    Other accounts are pushed to the running servers (``$SYS.REQ.CLAIMS.UPDATE``).
    """
    operator = decode(operator_jwt, OperatorClaims)
    system = decode(system_account_jwt, AccountClaims)
    sys_key = _system_account(operator, system.sub)
    if operator.system_account and operator.system_account != sys_key:
        raise TrustkitError(
            f"system account {sys_key} is not the operator's system account {operator.system_account}"
        )
    lines = _listen(host, port)
    lines += [
        f"// Operator {_q(operator.name)}",
        f"operator: {operator_jwt}",
        f"// System account {_q(system.name)}",
        f"system_account: {sys_key}",
        "",
        "resolver {",
        f"    type: {'cache' if cache else 'full'}",
        f"    dir: {json.dumps(directory)}",
    ]
    if cache:
        lines.append(f"    ttl: {json.dumps(ttl)}")
    else:
        lines += [
            f"    allow_delete: {'true' if allow_delete else 'false'}",
            f"    interval: {json.dumps(interval)}",
        ]
    lines += [
        f"    timeout: {json.dumps(timeout)}",
        "}",
        "",
        "// The system account is preloaded so the resolver works before the first push.",
        "resolver_preload: {",
        f"  {sys_key}: {system_account_jwt}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _listen(host: str | None, port: int | None) -> list[str]:
    out = []
    if host is not None:
        out.append(f"host: {json.dumps(host)}")
    if port is not None:
        out.append(f"port: {int(port)}")
    return out
