"""Sharing between accounts: ``add|edit|delete export``, ``add|delete import``,
``add|delete mapping``, ``generate activation``, ``revocations *-activation``.

Flags are nsc's. Each command calls one function of :mod:`trustkit.sharing` and renders its
report; every change re-signs the account with the operator key (push it to apply it live).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from trustkit.cli.common import (
    ACCOUNT,
    OPERATOR,
    AccountOpt,
    AccountOptions,
    JsonFlag,
    OperatorOptions,
    nothing_to_change,
    now,
    parse_duration_ns,
    parse_expiry,
    pick_account,
)
from trustkit.cli.output import emit, fail

Subject = Annotated[str, typer.Option("--subject", "-s", help="Export subject.")]
MaybeSubject = Annotated[
    str | None, typer.Option("--subject", "-s", help="Subject (may be omitted when there is only one).")
]
Kind = Annotated[
    bool | None,
    typer.Option("--service/--stream", help="Which export, when the subject is both a stream and a service."),
]
TargetAccount = Annotated[
    str,
    typer.Option("--target-account", "-t", help="The importing account: public key or account name."),
]
Name = Annotated[str, typer.Option("--name", "-n", help="Name (default: the subject).")]
ResponseType = Annotated[
    str | None,
    typer.Option("--response-type", help="Service response type: Singleton (default), Stream or Chunked."),
]
ResponseThreshold = Annotated[
    str | None, typer.Option("--response-threshold", help="Service response threshold (500ms, 2s, 1m).")
]
Latency = Annotated[
    str | None, typer.Option("--latency", help="Service latency metrics subject (no wildcards).")
]
Sampling = Annotated[
    str | None, typer.Option("--sampling", help="Latency sampling: 1..100 percent or 'header'.")
]
TokenPosition = Annotated[
    int | None,
    typer.Option(
        "--account-token-position",
        help="Token (1-based) of a wildcard subject that must hold the importing account's key.",
    ),
]
Description = Annotated[str | None, typer.Option("--description", help="What the export is for.")]
InfoUrl = Annotated[str | None, typer.Option("--info-url", help="Link to more information.")]


def _threshold(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration_ns(text)
    except typer.BadParameter as exc:
        fail(f"--response-threshold: {exc.message}", 2)


def _at(text: str) -> int:
    """nsc's ``--at``: unix seconds or RFC 3339; ``0`` is now."""
    from datetime import datetime

    if text.strip().isdigit():
        return int(text) or now()
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp())
    except ValueError:
        fail(f"--at {text!r} is not unix seconds or an RFC 3339 time (0 = now)", 2)


# --- exports ------------------------------------------------------------------------------------


def add_export_cmd(
    subject: Subject,
    name: Name = "",
    service: Annotated[
        bool, typer.Option("--service", "-r", help="A service export (default: stream).")
    ] = False,
    private: Annotated[
        bool, typer.Option("--private", "-p", help="Private: importers need an activation token.")
    ] = False,
    response_type: ResponseType = None,
    response_threshold: ResponseThreshold = None,
    latency: Latency = None,
    sampling: Sampling = None,
    account_token_position: TokenPosition = None,
    description: Description = None,
    info_url: InfoUrl = None,
    allow_trace: Annotated[
        bool, typer.Option("--allow-trace", help="Allow trace requests (services).")
    ] = False,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Export a stream (default) or a service (--service), public or private (--private)."""
    from trustkit.sharing import add_export

    threshold = _threshold(response_threshold) or 0
    ws, op, acct = where.open()
    report = add_export(
        ws,
        op,
        acct,
        subject=subject,
        now=now(),
        name=name,
        service=service,
        private=private,
        response_type=response_type,
        response_threshold_ns=threshold,
        latency=latency or "",
        sampling=sampling,
        account_token_position=account_token_position or 0,
        description=description or "",
        info_url=info_url or "",
        allow_trace=allow_trace,
    )
    emit(report.to_json(), as_json=as_json)


def edit_export_cmd(
    subject: MaybeSubject = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="New export name.")] = None,
    service: Annotated[
        bool | None, typer.Option("--service/--stream", help="Make it a service (or a stream).")
    ] = None,
    private: Annotated[
        bool | None, typer.Option("--private/--public", help="Require activations (or not).")
    ] = None,
    response_type: ResponseType = None,
    response_threshold: ResponseThreshold = None,
    latency: Latency = None,
    sampling: Sampling = None,
    rm_latency_sampling: Annotated[
        bool, typer.Option("--rm-latency-sampling", help="Stop tracking service latency.")
    ] = False,
    account_token_position: TokenPosition = None,
    description: Description = None,
    info_url: InfoUrl = None,
    allow_trace: Annotated[
        bool | None, typer.Option("--allow-trace/--no-allow-trace", help="Allow trace requests (services).")
    ] = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Change the export with this subject; options not given keep their values."""
    from trustkit.sharing import ExportEdit, edit_export

    edit = ExportEdit(
        name=name,
        service=service,
        private=private,
        response_type=response_type,
        response_threshold_ns=_threshold(response_threshold),
        latency=latency,
        sampling=sampling,
        rm_latency=rm_latency_sampling,
        account_token_position=account_token_position,
        description=description,
        info_url=info_url,
        allow_trace=allow_trace,
    )
    if edit.is_empty():
        nothing_to_change()
    ws, op, acct = where.open()
    report = edit_export(ws, op, acct, subject=subject, edit=edit, now=now())
    emit(report.to_json(), as_json=as_json)


def delete_export_cmd(
    subject: MaybeSubject = None,
    kind: Kind = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Delete the export with this subject (importers in the store are named in warnings)."""
    from trustkit.sharing import delete_export

    ws, op, acct = where.open()
    report = delete_export(ws, op, acct, subject=subject, now=now(), service=kind)
    emit(report.to_json(), as_json=as_json)


# --- imports ------------------------------------------------------------------------------------


def add_import_cmd(
    src_account: Annotated[
        str | None,
        typer.Option("--src-account", help="Exporting account: public key or account name (public exports)."),
    ] = None,
    remote_subject: Annotated[
        str | None, typer.Option("--remote-subject", help="The subject as the exporting account exports it.")
    ] = None,
    local_subject: Annotated[
        str | None, typer.Option("--local-subject", "-s", help="The subject as this account sees it.")
    ] = None,
    service: Annotated[
        bool | None, typer.Option("--service", help="A service import (default: stream, or the token's).")
    ] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="Import name (default: the subject).")] = "",
    token: Annotated[
        str | None,
        typer.Option("--token", "-u", help="Activation token of a private export: a file or the JWT itself."),
    ] = None,
    share: Annotated[
        bool, typer.Option("--share", help="Share data when tracking latency (services).")
    ] = False,
    allow_trace: Annotated[
        bool, typer.Option("--allow-trace", help="Allow trace requests (streams).")
    ] = False,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Import a stream or service another account exports (checked against it when it is in
    the store). A private export needs --token; the source, subject and kind then default to
    the token's."""
    from trustkit.sharing import add_import, read_token

    if token is None and (src_account is None or remote_subject is None):
        fail("give --src-account and --remote-subject (public export) or --token (private export)", 2)
    ws, op, acct = where.open()
    report = add_import(
        ws,
        op,
        acct,
        now=now(),
        src_account=src_account,
        remote_subject=remote_subject,
        local_subject=local_subject or "",
        service=service,
        name=name,
        token=read_token(token) if token is not None else None,
        share=share,
        allow_trace=allow_trace,
    )
    emit(report.to_json(), as_json=as_json)


def delete_import_cmd(
    subject: MaybeSubject = None,
    src_account: Annotated[
        str | None, typer.Option("--src-account", help="Exporting account, when the subject is ambiguous.")
    ] = None,
    kind: Kind = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Delete the import of this subject (its remote subject, else its local subject)."""
    from trustkit.sharing import delete_import

    ws, op, acct = where.open()
    report = delete_import(ws, op, acct, subject=subject, now=now(), src_account=src_account, service=kind)
    emit(report.to_json(), as_json=as_json)


# --- mappings -----------------------------------------------------------------------------------


def add_mapping_cmd(
    source: Annotated[str, typer.Option("--from", "-f", help="Subject publishes are made to.")],
    dest: Annotated[str, typer.Option("--to", "-t", help="Subject they are delivered on.")],
    weight: Annotated[
        int | None, typer.Option("--weight", help="Percent of messages [1-100] (default: 100).")
    ] = None,
    cluster: Annotated[str, typer.Option("--cluster", help="Apply only in this cluster.")] = "",
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Add (or re-weight) a subject mapping; one source's weights add up to at most 100."""
    from trustkit.sharing import add_mapping

    ws, op, acct = where.open()
    report = add_mapping(ws, op, acct, source=source, dest=dest, now=now(), weight=weight, cluster=cluster)
    emit(report.to_json(), as_json=as_json)


def delete_mapping_cmd(
    source: Annotated[str, typer.Option("--from", "-f", help="Mapped subject.")],
    dest: Annotated[
        str | None, typer.Option("--to", "-t", help="Only this destination (default: all of --from's).")
    ] = None,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster's mappings.")] = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Delete a mapping (one destination with --to, else all of the source's)."""
    from trustkit.sharing import delete_mapping

    ws, op, acct = where.open()
    report = delete_mapping(ws, op, acct, source=source, now=now(), dest=dest, cluster=cluster)
    emit(report.to_json(), as_json=as_json)


# --- activations --------------------------------------------------------------------------------


def generate_activation_cmd(
    subject: Subject,
    target_account: TargetAccount,
    account: AccountOpt = None,
    output_file: Annotated[
        str | None,
        typer.Option("--output-file", "-o", help="Write the token here (0600); default: stdout."),
    ] = None,
    expiry: Annotated[
        str | None, typer.Option("--expiry", help="0, yyyy-mm-dd, unix seconds or #s/#m/#h/#d/#w/#M/#y.")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="Not valid before (same formats).")] = None,
    signing_key: Annotated[
        str | None,
        typer.Option("--private-key", "-K", help="Sign with this account signing key (public key or role)."),
    ] = None,
    kind: Kind = None,
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """An activation token letting --target-account import a private export of --account.

    Prints the decorated token (as nsc) unless --json or --output-file is given."""
    from trustkit.sharing import generate_activation
    from trustkit.store.fsio import atomic_write

    ws, op = where.open()
    acct = pick_account(ws, op, account)
    t = now()
    report = generate_activation(
        ws,
        op,
        acct,
        subject=subject,
        target_account=target_account,
        now=t,
        expiry=parse_expiry(expiry, now=t),
        start=parse_expiry(start, now=t),
        signing_key=signing_key,
        service=kind,
    )
    if output_file not in (None, "--", "-"):
        assert output_file is not None
        path = atomic_write(Path(output_file), report.decorated.encode("ascii"), mode=0o600)
        emit({**report.to_json(), "file": str(path)}, as_json=as_json)
    elif as_json:
        emit(report.to_json(), as_json=True)
    else:
        sys.stdout.write(report.decorated)
    for warning in report.warnings:
        sys.stderr.write(f"trustkit: warning: {warning}\n")


def revocations_add_activation_cmd(
    subject: Subject,
    target_account: Annotated[
        str,
        typer.Option("--target-account", "-t", help="Importing account: public key, name, or '*' for all."),
    ],
    at: Annotated[
        str,
        typer.Option("--at", help="Revoke activations issued at or before (unix s or RFC 3339; 0 = now)."),
    ] = "0",
    kind: Kind = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Revoke an account's activation for a private export (then ``trustkit push`` applies it)."""
    from trustkit.sharing import revoke_activation

    when = _at(at)
    ws, op, acct = where.open()
    report = revoke_activation(
        ws, op, acct, subject=subject, target_account=target_account, at=when, now=now(), service=kind
    )
    emit(report.to_json(), as_json=as_json)


def revocations_delete_activation_cmd(
    subject: Subject,
    target_account: Annotated[
        str, typer.Option("--target-account", "-t", help="Importing account: public key, name, or '*'.")
    ],
    kind: Kind = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Remove an account's activation revocation from an export (then ``trustkit push``)."""
    from trustkit.sharing import delete_activation_revocation

    ws, op, acct = where.open()
    report = delete_activation_revocation(
        ws, op, acct, subject=subject, target_account=target_account, now=now(), service=kind
    )
    emit(report.to_json(), as_json=as_json)


def revocations_list_activations_cmd(
    subject: Annotated[
        str | None, typer.Option("--subject", "-s", help="Only the export containing this subject.")
    ] = None,
    kind: Kind = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """The account's activation revocations, one row per export and revoked account."""
    from trustkit.sharing import list_activation_revocations

    ws, op, acct = where.open()
    rows = list_activation_revocations(ws, op, acct, subject=subject, service=kind)
    emit([r.to_json() for r in rows], as_json=as_json, title=f"activation revocations of {acct}")
