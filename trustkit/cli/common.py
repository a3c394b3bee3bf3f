"""Options every store command shares, and how the operator/account are chosen."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from trustkit.manage import Workspace

ConfigDir = Annotated[str | None, typer.Option("--config-dir", help="nsc config dir (context file).")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="Directory holding operator stores.")]
KeystoreDir = Annotated[str | None, typer.Option("--keystore-dir", help="Directory holding keys and creds.")]
OperatorOpt = Annotated[str | None, typer.Option("--operator", help="Operator (default: the context's).")]
AccountOpt = Annotated[str | None, typer.Option("--account", "-a", help="Account (default: the context's).")]
JsonFlag = Annotated[bool, typer.Option("--json", "-J", help="Machine-readable JSON on stdout.")]


def workspace(config_dir: str | None, data_dir: str | None, keystore_dir: str | None) -> Workspace:
    from trustkit.manage import Workspace, environment

    return Workspace.from_env(
        environment(), config_dir=config_dir, data_dir=data_dir, keystore_dir=keystore_dir
    )


def pick_operator(ws: Workspace, operator: str | None) -> str:
    """Explicit ``--operator``, else the context's, else the only operator in the stores dir."""
    return ws.default_operator(operator)


def pick_account(ws: Workspace, operator: str, account: str | None) -> str:
    """Explicit ``--account``, else the context's, else the operator's only account besides SYS."""
    return ws.default_account(operator, account)


def now() -> int:
    return int(time.time())


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}


def parse_expiry(text: str | None, *, now: int) -> int:
    """nsc time flags: ``0`` (never), ``yyyy-mm-dd``, unix seconds, or ``#s/#m/#h/#d/#w/#M/#y``."""
    from datetime import UTC, datetime

    if not text or text == "0":
        return 0
    if text[-1] in _UNITS and text[:-1].isdigit():
        return now + int(text[:-1]) * _UNITS[text[-1]]
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not 0, yyyy-mm-dd, unix seconds or a duration like 2h"
        ) from None


def parse_duration_ns(text: str | None) -> int:
    """``1s``, ``500ms``, ``2m`` → nanoseconds (response TTLs are durations in the JWT)."""
    if not text:
        return 0
    units = (("ms", 10**6), ("us", 10**3), ("ns", 1), ("s", 10**9), ("m", 60 * 10**9), ("h", 3600 * 10**9))
    for suffix, mult in units:
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(text[: -len(suffix)]) * mult)
    raise typer.BadParameter(f"{text!r} is not a duration like 500ms, 1s or 2m")


def parse_duration_s(text: str) -> int:
    """``--within``: ``#s/#m/#h/#d/#w/#M/#y`` (``M`` = 30 days, as nsc) or seconds → seconds."""
    if text.isdigit():
        return int(text)
    if len(text) > 1 and text[-1] in _UNITS and text[:-1].isdigit():
        return int(text[:-1]) * _UNITS[text[-1]]
    raise typer.BadParameter(f"{text!r} is not a duration like 1M, 2w, 3d or 12h")


_SIZES = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(text: str | None) -> int | None:
    """Limits as nsc reads them (``ParseNumber``): ``-1`` (unlimited), ``1000``, or a number with
    a decimal unit ``B/K/M/G/T`` (``512M`` = 512000000); any negative number means -1."""
    if text is None:
        return None
    t = text.strip().upper()
    unit = t[-1] if t and t[-1] in _SIZES else ""
    digits = t[: len(t) - len(unit)]
    if not digits.lstrip("-").isdigit() or digits.count("-") > 1:
        raise typer.BadParameter(f"{text!r} is not a number like -1, 1000, 64K, 512M or 1G")
    value = int(digits)
    return -1 if value < 0 else value * _SIZES[unit]


def permission_args(
    allow_pub: list[str] | None,
    allow_sub: list[str] | None,
    allow_pubsub: list[str] | None,
    deny_pub: list[str] | None,
    deny_sub: list[str] | None,
    deny_pubsub: list[str] | None,
    allow_pub_response: int | None,
    response_ttl: str | None,
    bearer: bool,
) -> dict[str, Any]:
    """nsc's permission flags (``--allow-pubsub`` counts for both directions) as library keywords
    for :func:`trustkit.manage.add_user` and :func:`trustkit.manage.add_signing_key`."""
    both_allow, both_deny = allow_pubsub or [], deny_pubsub or []
    return {
        "allow_pub": [*(allow_pub or []), *both_allow],
        "allow_sub": [*(allow_sub or []), *both_allow],
        "deny_pub": [*(deny_pub or []), *both_deny],
        "deny_sub": [*(deny_sub or []), *both_deny],
        "allow_pub_response": allow_pub_response,
        "response_ttl_ns": parse_duration_ns(response_ttl),
        "bearer": bearer,
    }
