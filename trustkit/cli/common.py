"""Options every store command shares, and how the operator/account are chosen.

Options that several commands declare alike are declared once: one ``Annotated`` alias per
option, and an :class:`OptionGroup` for a run of options that commands declare together (the
store directories, ``--operator``/``--account``, the permission flags of ``edit user``…).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypedDict

import typer

if TYPE_CHECKING:
    from trustkit.manage import PermissionEdit, Workspace

ConfigDir = Annotated[str | None, typer.Option("--config-dir", help="nsc config dir (context file).")]
DataDir = Annotated[str | None, typer.Option("--data-dir", help="Directory holding operator stores.")]
KeystoreDir = Annotated[str | None, typer.Option("--keystore-dir", help="Directory holding keys and creds.")]
OperatorOpt = Annotated[str | None, typer.Option("--operator", help="Operator (default: the context's).")]
AccountOpt = Annotated[str | None, typer.Option("--account", "-a", help="Account (default: the context's).")]
JsonFlag = Annotated[bool, typer.Option("--json", "-J", help="Machine-readable JSON on stdout.")]
#: ``--name`` of the commands whose entity is an account (``edit account``, ``describe account``)
AccountName = Annotated[str | None, typer.Option("--name", "-n", help="Account (default: the context's).")]
UserName = Annotated[str, typer.Option("--name", "-n", help="User name.")]
ExpiryOpt = Annotated[
    str | None, typer.Option("--expiry", help="Expires: 0 (never), yyyy-mm-dd, unix seconds or a duration.")
]


# --- option groups ------------------------------------------------------------------------------


class OptionGroup:
    """A run of options that several commands declare together, declared once (typer has no
    option groups).

    A subclass declares its options as class attributes, ``name: Annotated[type,
    typer.Option(...)] = default``, its own before those of its base classes; an attribute
    without a ``typer.Option`` is only typed here (a subclass declares the option). A command
    parameter annotated with the subclass stands for these options, at its place on the
    command line and in ``--help``, and receives one instance holding their values:
    :func:`unfold_option_groups` rewrites the command for typer when it is built, so the
    declarations cost start-up time only for the command that runs.
    """

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    @classmethod
    def options(cls) -> dict[str, tuple[Any, Any]]:
        """The options, in order: attribute name → (its ``Annotated`` type, its default)."""
        from typing import get_type_hints

        from typer.models import ParameterInfo

        hints = get_type_hints(cls, include_extras=True)
        names = dict.fromkeys(n for klass in cls.__mro__ for n in vars(klass).get("__annotations__", {}))
        return {
            name: (hints[name], getattr(cls, name))
            for name in names
            if any(isinstance(m, ParameterInfo) for m in getattr(hints[name], "__metadata__", ()))
        }


def unfold_option_groups(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as typer is to see it: each parameter annotated with an :class:`OptionGroup`
    replaced by the group's options, whose values reach ``fn`` as one instance of the group.
    ``fn`` itself when it has no group."""
    import inspect
    from functools import wraps

    signature = inspect.signature(fn, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type[OptionGroup], list[str]]] = {}
    for param in signature.parameters.values():
        group = param.annotation
        if isinstance(group, type) and issubclass(group, OptionGroup):
            options = group.options()
            groups[param.name] = (group, list(options))
            params += [
                inspect.Parameter(n, param.kind, default=d, annotation=a) for n, (a, d) in options.items()
            ]
        else:
            params.append(param)
    if not groups:
        return fn

    @wraps(fn)
    def unfolded(**values: Any) -> Any:
        for name, (group, options) in groups.items():
            values[name] = group(**{o: values.pop(o) for o in options})
        return fn(**values)

    unfolded.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    unfolded.__annotations__ = {p.name: p.annotation for p in params}
    return unfolded


class DirOptions(OptionGroup):
    """``--config-dir``, ``--data-dir``, ``--keystore-dir``: where the context, the operator
    stores and the keys are (default: from the environment, see :func:`trustkit.store.resolve_dirs`)."""

    config_dir: ConfigDir = None
    data_dir: DataDir = None
    keystore_dir: KeystoreDir = None

    def workspace(self) -> Workspace:
        from trustkit.manage import Workspace, environment

        return Workspace.from_env(
            environment(), config_dir=self.config_dir, data_dir=self.data_dir, keystore_dir=self.keystore_dir
        )


class OperatorOptions(DirOptions):
    """``--operator`` and the store directories, for commands that list them together."""

    operator: OperatorOpt = None

    def open(self) -> tuple[Workspace, str]:
        """The workspace and the operator (:func:`pick_operator`)."""
        return open_operator(self, self.operator)


class AccountOptions(DirOptions):
    """``--account``, ``--operator`` and the store directories, for commands that list them
    together."""

    account: AccountOpt = None
    operator: OperatorOpt = None

    def open(self) -> tuple[Workspace, str, str]:
        """The workspace, the operator and the account (:func:`pick_account`)."""
        return open_account(self, self.operator, self.account)


DIRS = DirOptions()
OPERATOR = OperatorOptions()
ACCOUNT = AccountOptions()


def open_operator(dirs: DirOptions, operator: str | None) -> tuple[Workspace, str]:
    """The workspace and the operator (:func:`pick_operator`), for a command with ``--operator``
    apart from the store directories."""
    ws = dirs.workspace()
    return ws, pick_operator(ws, operator)


def open_account(dirs: DirOptions, operator: str | None, account: str | None) -> tuple[Workspace, str, str]:
    """The workspace, the operator and the account (:func:`pick_account`), for a command with
    ``--operator``/``--account`` apart from the store directories."""
    ws, op = open_operator(dirs, operator)
    return ws, op, pick_account(ws, op, account)


def pick_operator(ws: Workspace, operator: str | None) -> str:
    """Explicit ``--operator``, else the context's, else the only operator in the stores dir."""
    return ws.default_operator(operator)


def pick_account(ws: Workspace, operator: str, account: str | None) -> str:
    """Explicit ``--account``, else the context's, else the operator's only account besides SYS."""
    return ws.default_account(operator, account)


def nothing_to_change() -> NoReturn:
    """An ``edit`` command given no edit option (exit status 2, before the store is read)."""
    from trustkit.cli.output import fail

    fail("nothing to change: give at least one edit option (see --help)", 2)


def split_values(values: list[str] | None) -> list[str]:
    """nsc's string-slice flags: repeatable, and each value may be a comma-separated list."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


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


def response_max(value: int | None) -> int | None:
    """``--allow-pub-response``'s count as nsc applies it: a count of 0 changes nothing (nsc sets
    the response permission's max only when the count is not 0)."""
    return value or None


# --- permission flags (nsc PermissionsParams, UserPermissionLimits) -----------------------------

Strings = list[str] | None
#: Bare ``--allow-pub-response`` = 1, ``--allow-pub-response=N`` = N (nsc's optional value:
#: trustkit.cli.app.optional_values rewrites the bare flag before typer parses the arguments).
ALLOW_PUB_RESPONSE_HELP = (
    "Allow responses to received requests: alone 1 response, --allow-pub-response=N for N."
)
AllowPubResponse = Annotated[
    int | None, typer.Option("--allow-pub-response", metavar="[=N]", help=ALLOW_PUB_RESPONSE_HELP)
]
ResponseTtl = Annotated[str | None, typer.Option("--response-ttl", help="How long responses may be sent.")]
DataOpt = Annotated[str | None, typer.Option("--data", help="Max data bytes (-1 = unlimited; 1G…).")]


class PermissionKeywords(TypedDict):
    """nsc's permission flags as :func:`trustkit.manage.add_user` and
    :func:`trustkit.manage.permission_limits` take them."""

    allow_pub: list[str]
    allow_sub: list[str]
    deny_pub: list[str]
    deny_sub: list[str]
    allow_pub_response: int | None
    response_ttl_ns: int
    bearer: bool


class PermissionFlags(OptionGroup):
    """nsc's permission flags of ``add user`` and ``add signing-key`` (a scoped key's
    template); each subclass declares them as options, with its own help text."""

    allow_pub: Strings
    allow_sub: Strings
    allow_pubsub: Strings
    deny_pub: Strings
    deny_sub: Strings
    deny_pubsub: Strings
    allow_pub_response: int | None
    response_ttl: str | None
    bearer: bool

    def args(self) -> PermissionKeywords:
        """The flags (``--allow-pubsub`` counts for both directions) as library keywords for
        :func:`trustkit.manage.add_user` and :func:`trustkit.manage.permission_limits` (the
        template of :func:`trustkit.manage.add_signing_key`).

        As nsc's ``PermissionsParams.Run``: a response permission exists when the count is not 0
        or ``--response-ttl`` is given (``--response-ttl`` alone: max 0, which the server reads
        as 1); ``--allow-pub-response=0`` alone sets none."""
        both_allow, both_deny = self.allow_pubsub or [], self.deny_pubsub or []
        allow_pub_response = response_max(self.allow_pub_response)
        if allow_pub_response is None and self.response_ttl:
            allow_pub_response = 0
        return {
            "allow_pub": [*(self.allow_pub or []), *both_allow],
            "allow_sub": [*(self.allow_sub or []), *both_allow],
            "deny_pub": [*(self.deny_pub or []), *both_deny],
            "deny_sub": [*(self.deny_sub or []), *both_deny],
            "allow_pub_response": allow_pub_response,
            "response_ttl_ns": parse_duration_ns(self.response_ttl),
            "bearer": self.bearer,
        }


def _time_range(text: str) -> tuple[str, str]:
    start, sep, end = text.partition("-")
    if not sep or not all(len(t) == 8 and t[2] == t[5] == ":" for t in (start, end)):
        from trustkit.cli.output import fail

        fail(f"--time {text!r} is not a time range hh:mm:ss-hh:mm:ss", 2)
    return start, end


class SubjectPermissionEditOptions(OptionGroup):
    """nsc's ``PermissionsParams`` flags: allow/deny subjects and the response permission, of
    ``edit account`` (its default permissions) and, in :class:`PermissionEditOptions`, of
    ``edit user`` and ``edit signing-key``."""

    allow_pub: Annotated[Strings, typer.Option("--allow-pub", help="Add subjects to publish.")] = None
    allow_sub: Annotated[Strings, typer.Option("--allow-sub", help="Add subjects to subscribe.")] = None
    allow_pubsub: Annotated[Strings, typer.Option("--allow-pubsub", help="Add subjects to both.")] = None
    deny_pub: Annotated[Strings, typer.Option("--deny-pub", help="Add subjects denied for publish.")] = None
    deny_sub: Annotated[Strings, typer.Option("--deny-sub", help="Add subjects denied for subscribe.")] = None
    deny_pubsub: Annotated[
        Strings, typer.Option("--deny-pubsub", help="Add subjects denied for both.")
    ] = None
    rm: Annotated[Strings, typer.Option("--rm", help="Remove a subject from every allow/deny list.")] = None
    allow_pub_response: AllowPubResponse = None
    response_ttl: ResponseTtl = None
    rm_response_perms: Annotated[
        bool, typer.Option("--rm-response-perms", help="Remove the response permission.")
    ] = False

    def edit(self) -> PermissionEdit:
        """The flags as a :class:`trustkit.manage.PermissionEdit` (``--allow-pubsub`` counts for
        both directions; comma-separated values are split, as nsc's string slices)."""
        from trustkit.manage import PermissionEdit

        split = split_values
        both_allow, both_deny = split(self.allow_pubsub), split(self.deny_pubsub)
        return PermissionEdit(
            allow_pub=[*split(self.allow_pub), *both_allow],
            allow_sub=[*split(self.allow_sub), *both_allow],
            deny_pub=[*split(self.deny_pub), *both_deny],
            deny_sub=[*split(self.deny_sub), *both_deny],
            remove=split(self.rm),
            allow_pub_response=response_max(self.allow_pub_response),
            response_ttl_ns=parse_duration_ns(self.response_ttl) if self.response_ttl else None,
            remove_response=self.rm_response_perms,
        )


SUBJECT_PERMISSION_EDIT = SubjectPermissionEditOptions()


class PermissionEditOptions(SubjectPermissionEditOptions):
    """The permission and limit flags of ``edit user`` and ``edit signing-key`` (nsc
    ``UserPermissionLimits``): the subject flags of :class:`SubjectPermissionEditOptions` and
    the user's limits."""

    bearer: Annotated[
        bool | None, typer.Option("--bearer/--no-bearer", help="Bearer token (no nonce signature), or not.")
    ] = None
    source_network: Annotated[
        Strings, typer.Option("--source-network", help="Add a source network (CIDR).")
    ] = None
    rm_source_network: Annotated[
        Strings, typer.Option("--rm-source-network", help="Remove a source network.")
    ] = None
    time_range: Annotated[
        Strings, typer.Option("--time", help="Add a connect window hh:mm:ss-hh:mm:ss.")
    ] = None
    rm_time: Annotated[
        Strings, typer.Option("--rm-time", help="Remove the window starting at hh:mm:ss.")
    ] = None
    locale: Annotated[str | None, typer.Option("--locale", help="IANA time zone of the windows.")] = None
    conn_type: Annotated[
        Strings,
        typer.Option("--conn-type", help="Allow a connection type (STANDARD, WEBSOCKET, LEAFNODE, MQTT…)."),
    ] = None
    rm_conn_type: Annotated[
        Strings, typer.Option("--rm-conn-type", help="Remove an allowed connection type.")
    ] = None
    subs: Annotated[str | None, typer.Option("--subs", help="Max subscriptions (-1 = unlimited).")] = None
    data: DataOpt = None
    payload: Annotated[
        str | None, typer.Option("--payload", help="Max payload bytes (-1 = unlimited).")
    ] = None

    def edit(self) -> PermissionEdit:
        """The subject flags (:meth:`SubjectPermissionEditOptions.edit`) and the limit flags as
        a :class:`trustkit.manage.PermissionEdit`."""
        from dataclasses import replace

        split = split_values
        return replace(
            super().edit(),
            bearer=self.bearer,
            source_networks=split(self.source_network),
            remove_source_networks=split(self.rm_source_network),
            times=[_time_range(t) for t in split(self.time_range)],
            remove_times=split(self.rm_time),
            locale=self.locale,
            conn_types=split(self.conn_type),
            remove_conn_types=split(self.rm_conn_type),
            subs=parse_size(self.subs),
            data=parse_size(self.data),
            payload=parse_size(self.payload),
        )


PERMISSION_EDIT = PermissionEditOptions()


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
