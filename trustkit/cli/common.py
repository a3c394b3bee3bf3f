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
    for :func:`trustkit.manage.add_user` and :func:`trustkit.manage.add_signing_key`.

    As nsc's ``PermissionsParams.Run``: a response permission exists when the count is not 0 or
    ``--response-ttl`` is given (``--response-ttl`` alone: max 0, which the server reads as 1);
    ``--allow-pub-response=0`` alone sets none."""
    both_allow, both_deny = allow_pubsub or [], deny_pubsub or []
    allow_pub_response = response_max(allow_pub_response)
    if allow_pub_response is None and response_ttl:
        allow_pub_response = 0
    return {
        "allow_pub": [*(allow_pub or []), *both_allow],
        "allow_sub": [*(allow_sub or []), *both_allow],
        "deny_pub": [*(deny_pub or []), *both_deny],
        "deny_sub": [*(deny_sub or []), *both_deny],
        "allow_pub_response": allow_pub_response,
        "response_ttl_ns": parse_duration_ns(response_ttl),
        "bearer": bearer,
    }


def response_max(value: int | None) -> int | None:
    """``--allow-pub-response``'s count as nsc applies it: a count of 0 changes nothing (nsc sets
    the response permission's max only when the count is not 0)."""
    return value or None


# --- the permission/limit flags of `edit user` and `edit signing-key` (nsc UserPermissionLimits) --

Strings = list[str] | None
AllowPub = Annotated[Strings, typer.Option("--allow-pub", help="Add subjects to publish.")]
AllowSub = Annotated[Strings, typer.Option("--allow-sub", help="Add subjects to subscribe.")]
AllowPubsub = Annotated[Strings, typer.Option("--allow-pubsub", help="Add subjects to both.")]
DenyPub = Annotated[Strings, typer.Option("--deny-pub", help="Add subjects denied for publish.")]
DenySub = Annotated[Strings, typer.Option("--deny-sub", help="Add subjects denied for subscribe.")]
DenyPubsub = Annotated[Strings, typer.Option("--deny-pubsub", help="Add subjects denied for both.")]
RmPerm = Annotated[Strings, typer.Option("--rm", help="Remove a subject from every allow/deny list.")]
#: Bare ``--allow-pub-response`` = 1, ``--allow-pub-response=N`` = N (nsc's optional value:
#: trustkit.cli.app.optional_values rewrites the bare flag before typer parses the arguments).
ALLOW_PUB_RESPONSE_HELP = (
    "Allow responses to received requests: alone 1 response, --allow-pub-response=N for N."
)
AllowPubResponse = Annotated[
    int | None, typer.Option("--allow-pub-response", metavar="[=N]", help=ALLOW_PUB_RESPONSE_HELP)
]
ResponseTtl = Annotated[str | None, typer.Option("--response-ttl", help="How long responses may be sent.")]
RmResponsePerms = Annotated[bool, typer.Option("--rm-response-perms", help="Remove the response permission.")]
Bearer = Annotated[
    bool | None, typer.Option("--bearer/--no-bearer", help="Bearer token (no nonce signature), or not.")
]
SourceNetwork = Annotated[Strings, typer.Option("--source-network", help="Add a source network (CIDR).")]
RmSourceNetwork = Annotated[Strings, typer.Option("--rm-source-network", help="Remove a source network.")]
TimeOpt = Annotated[Strings, typer.Option("--time", help="Add a connect window hh:mm:ss-hh:mm:ss.")]
RmTime = Annotated[Strings, typer.Option("--rm-time", help="Remove the window starting at hh:mm:ss.")]
Locale = Annotated[str | None, typer.Option("--locale", help="IANA time zone of the windows.")]
ConnType = Annotated[
    Strings,
    typer.Option("--conn-type", help="Allow a connection type (STANDARD, WEBSOCKET, LEAFNODE, MQTT…)."),
]
RmConnType = Annotated[Strings, typer.Option("--rm-conn-type", help="Remove an allowed connection type.")]
SubsOpt = Annotated[str | None, typer.Option("--subs", help="Max subscriptions (-1 = unlimited).")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Max data bytes (-1 = unlimited; 1G…).")]
PayloadOpt = Annotated[str | None, typer.Option("--payload", help="Max payload bytes (-1 = unlimited).")]


def _time_range(text: str) -> tuple[str, str]:
    start, sep, end = text.partition("-")
    if not sep or not all(len(t) == 8 and t[2] == t[5] == ":" for t in (start, end)):
        from trustkit.cli.output import fail

        fail(f"--time {text!r} is not a time range hh:mm:ss-hh:mm:ss", 2)
    return start, end


def permission_edit(
    allow_pub: Strings,
    allow_sub: Strings,
    allow_pubsub: Strings,
    deny_pub: Strings,
    deny_sub: Strings,
    deny_pubsub: Strings,
    rm: Strings,
    allow_pub_response: int | None,
    response_ttl: str | None,
    rm_response_perms: bool,
    bearer: bool | None,
    source_network: Strings,
    rm_source_network: Strings,
    time_ranges: Strings,
    rm_time: Strings,
    locale: str | None,
    conn_type: Strings,
    rm_conn_type: Strings,
    subs: str | None,
    data: str | None,
    payload: str | None,
) -> Any:
    """The flags above as a :class:`trustkit.manage.PermissionEdit` (``--allow-pubsub`` counts
    for both directions; comma-separated values are split, as nsc's string slices)."""
    from trustkit.manage import PermissionEdit

    def split(values: Strings) -> list[str]:
        return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]

    both_allow, both_deny = split(allow_pubsub), split(deny_pubsub)
    return PermissionEdit(
        allow_pub=[*split(allow_pub), *both_allow],
        allow_sub=[*split(allow_sub), *both_allow],
        deny_pub=[*split(deny_pub), *both_deny],
        deny_sub=[*split(deny_sub), *both_deny],
        remove=split(rm),
        allow_pub_response=response_max(allow_pub_response),
        response_ttl_ns=parse_duration_ns(response_ttl) if response_ttl else None,
        remove_response=rm_response_perms,
        bearer=bearer,
        source_networks=split(source_network),
        remove_source_networks=split(rm_source_network),
        times=[_time_range(t) for t in split(time_ranges)],
        remove_times=split(rm_time),
        locale=locale,
        conn_types=split(conn_type),
        remove_conn_types=split(rm_conn_type),
        subs=parse_size(subs),
        data=parse_size(data),
        payload=parse_size(payload),
    )


# --- progress bars ------------------------------------------------------------------------------

#: Progress bars appear for at least this many entities (a bar for two would only flicker).
PROGRESS_MIN = 5


class Progress:
    """A progress bar on stderr, called with ``(done, total)`` as work advances.

    It shows only when ``stream`` (default stderr) is a terminal, ``--json`` was not asked for,
    and the total is unknown (``None``) or at least :data:`PROGRESS_MIN`; otherwise calls do
    nothing, so scripts and pipes never see control characters. rich is imported only when a
    bar is really drawn, and the bar is removed when the work is done.
    """

    def __init__(self, label: str, *, as_json: bool, stream: Any = None) -> None:
        import sys

        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.enabled = not as_json and bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def __call__(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            if total is not None and total < PROGRESS_MIN:
                return
            from rich.console import Console  # only for a terminal: keeps scripted calls fast
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._task = self._bar.add_task(self.label, total=total)
            self._bar.start()
        self._bar.update(self._task, completed=done, total=total)
