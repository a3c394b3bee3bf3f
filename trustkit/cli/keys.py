"""``generate nkey``."""

from __future__ import annotations

from typing import Annotated

import typer

from trustkit.cli.common import JsonFlag
from trustkit.cli.output import emit, fail


def generate_nkey_cmd(
    operator: Annotated[bool, typer.Option("--operator", "-o", help="An operator key (O…).")] = False,
    account: Annotated[bool, typer.Option("--account", "-a", help="An account key (A…).")] = False,
    user: Annotated[bool, typer.Option("--user", "-u", help="A user key (U…).")] = False,
    curve: Annotated[bool, typer.Option("--curve", "-x", help="A curve (xkey) key (X…).")] = False,
    server: Annotated[bool, typer.Option("--server", help="A server key (N…).")] = False,
    show_seeds: Annotated[
        bool, typer.Option("--show-seeds", "-S", help="Print the seed (a secret).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Generate an nkey. The seed is printed only with --show-seeds."""
    from trustkit.nkeys import KeyPair, PrefixByte

    chosen = [
        k
        for k, flag in (
            (PrefixByte.OPERATOR, operator),
            (PrefixByte.ACCOUNT, account),
            (PrefixByte.USER, user),
            (PrefixByte.CURVE, curve),
            (PrefixByte.SERVER, server),
        )
        if flag
    ]
    if len(chosen) != 1:
        fail("choose exactly one key kind: --operator, --account, --user, --curve or --server", 2)
    if not show_seeds:
        fail("refusing to generate a key whose seed would be lost: add --show-seeds to print it", 2)
    kp = KeyPair.generate(chosen[0])
    emit({"kind": kp.kind.label, "public_key": kp.public_key, "seed": kp.seed}, as_json=as_json)
