"""``rotate``: replace an account signing key and re-sign every user it issued (beyond nsc)."""

from __future__ import annotations

from typing import Annotated

import typer

from trustkit.cli.common import ACCOUNT, AccountOptions, JsonFlag, Progress, now
from trustkit.cli.output import emit


def rotate_cmd(
    sk: Annotated[str, typer.Option("--sk", help="The signing key to replace: its public key or its role.")],
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Rotate an account signing key and re-sign every user it issued.

    A new key gets the same scope; every user of the old key is re-signed with it and its creds
    rewritten; the old key is removed from the account. Each file is replaced atomically, in an order where the store stays valid at every step.
    Revoked users are skipped (re-signing would lift the revocation). Push the account
    afterwards: the servers then refuse the old key, and disconnect users still using it."""
    from trustkit.manage import rotate_signing_key

    ws, op, acct = where.open()
    with Progress("rotate", as_json=as_json) as bar:
        report = rotate_signing_key(ws, op, acct, sk, now=now(), on_user=bar)
    emit(report.to_json(), as_json=as_json, title=f"rotated {report.old_key} -> {report.new_key}")
