"""``push``, ``pull`` and ``revocations``: exchange account JWTs with running servers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from trustkit.cli.common import (
    ACCOUNT,
    OPERATOR,
    AccountOpt,
    AccountOptions,
    JsonFlag,
    OperatorOptions,
    OptionGroup,
    Progress,
    now,
    pick_account,
)
from trustkit.cli.output import emit, fail

if TYPE_CHECKING:
    from trustkit.manage import Workspace
    from trustkit.push import SystemClient

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--account-jwt-server-url",
        "-u",
        help="nats:// URL, or http(s):// account server (default: the operator's account server URL, "
        "else its first service URL).",
    ),
]


class ServerOptions(OptionGroup):
    """How ``push`` and ``pull`` talk to the servers: as which system-account user, and how
    long they wait for replies."""

    timeout: Annotated[
        float, typer.Option("--timeout", help="Stop waiting for replies after this many seconds without one.")
    ] = 1.0
    servers: Annotated[
        int | None, typer.Option("--servers", help="Stop waiting once this many servers answered.")
    ] = None
    system_account: Annotated[
        str | None,
        typer.Option("--system-account", help="System account (name or key; default: the operator's)."),
    ] = None
    system_user: Annotated[
        str | None,
        typer.Option("--system-user", help="Connect as this system-account user (default: a temporary one)."),
    ] = None

    def client(self, ws: Workspace, op: str, target: str) -> SystemClient:
        """A client for ``target`` (not yet connected), as the system-account user
        (:func:`trustkit.manage.push_user`)."""
        from trustkit.manage import push_user
        from trustkit.push import SystemClient

        user_jwt, user_key = push_user(
            ws, op, now=now(), system_account=self.system_account, system_user=self.system_user
        )
        return SystemClient(
            target, user_jwt=user_jwt, user_key=user_key, timeout=self.timeout, expected_servers=self.servers
        )


SERVER = ServerOptions()


def _row(action: str, account: str, server: str, code: int, message: str) -> dict[str, Any]:
    return {"action": action, "account": account, "server": server, "code": code, "message": message}


def push_cmd(
    all_accounts: Annotated[bool, typer.Option("--all", "-A", help="Push every account.")] = False,
    account: AccountOpt = None,
    url: UrlOpt = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            "-P",
            help="Delete accounts the servers hold that are not in the store (needs allow_delete).",
        ),
    ] = False,
    account_removal: Annotated[
        str | None,
        typer.Option(
            "--account-removal",
            "-R",
            help="Delete this account (name or key) from the servers (needs allow_delete).",
        ),
    ] = None,
    diff: Annotated[
        bool, typer.Option("--diff", "-D", help="List the accounts servers hold that are not in the store.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-F", help="Push accounts with validation problems too.")
    ] = False,
    server: ServerOptions = SERVER,
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """Push account JWTs to servers with a nats-based resolver; one row per server that answered.

    Accounts with validation problems, or not signed by the operator, are refused unless --force.
    --diff lists the accounts servers hold that the store does not (nothing is deleted).

    --prune deletes, after the push, every account a server holds that is not in the store;
    --account-removal deletes one account. Both send an operator-signed request to
    $SYS.REQ.CLAIMS.DELETE, which nats-server honours only with allow_delete: true in its
    resolver block. With either of them, accounts are pushed only with --all or --account."""
    import asyncio

    from trustkit.manage import (
        account_public_key,
        check_pushable,
        operator_request_key,
        prune_candidates,
        server_url,
    )
    from trustkit.push import delete_request, is_http_url

    if sum(map(bool, (prune, account_removal, diff))) > 1:
        fail("--prune, --account-removal and --diff are mutually exclusive", 2)
    ws, op = where.open()
    store = ws.open(op)
    target = server_url(store, url)
    if all_accounts:
        names = store.list_accounts()
    elif account or not (prune or account_removal or diff):
        names = [pick_account(ws, op, account)]
    else:
        names = []
    removal = account_public_key(ws, op, account_removal) if account_removal else None
    if not force:
        check_pushable(ws, op, names, now=now())
    tokens = [store.read_account_jwt(n) for n in names]
    by_key = {store.account_claims(n).sub: n for n in names}
    if is_http_url(target):
        refused = bool(prune or removal or diff)
        _push_http(target, tokens, by_key, timeout=server.timeout, as_json=as_json, refused=refused)
        return
    system_client = server.client(ws, op, target)
    request_key = operator_request_key(ws, op) if prune or removal else None

    async def run() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async with system_client as client:
            if tokens:
                with Progress("push", as_json=as_json) as bar:
                    rows = await client.update(tokens, lambda done: bar(done, len(tokens)))
                out += [
                    _row("update", by_key.get(r.account, r.account), r.server, r.code, r.message)
                    for r in rows
                ]
            doomed: list[str] = []
            listed = -1
            if prune or diff:
                lists = await client.list_accounts()
                listed = len(lists)
                out += [
                    _row(
                        "list", "", s.server, 0 if s.error else 200, s.error or f"{len(s.accounts)} accounts"
                    )
                    for s in lists
                ]
                if not lists:
                    why = f"no server answered the account list within {server.timeout}s"
                    out.append(_row("list", "", "-", 0, why))
                    return out
                doomed = prune_candidates(ws, op, [s.accounts for s in lists if not s.error])
                if diff:
                    out += [_row("diff", key, "-", 200, "only on the server") for key in doomed]
                    return out
                if not doomed:
                    out.append(_row("prune", "", "-", 200, "nothing to prune"))
            elif removal:
                doomed = [removal]
            if doomed:
                assert request_key is not None
                request = delete_request(doomed, request_key, now=now())
                rows = await client.delete(request, doomed)
                out += [_row("delete", r.account, r.server, r.code, r.message) for r in rows]
                answered = sum(1 for r in rows if r.server != "-")
                if listed > 0 and answered != listed:
                    out.append(
                        _row(
                            "delete", ",".join(doomed), "-", 0,
                            f"{answered} server(s) answered the delete, {listed} the list: "
                            "accounts may not be deleted everywhere",
                        )
                    )  # fmt: skip
        return out

    rows = asyncio.run(run())
    emit(rows, as_json=as_json, title=f"push to {target}")
    if any(r["code"] != 200 for r in rows):
        raise typer.Exit(7)


def pull_cmd(
    all_accounts: Annotated[
        bool, typer.Option("--all", "-A", help="Pull every account the servers hold.")
    ] = False,
    account: AccountOpt = None,
    url: UrlOpt = None,
    overwrite_newer: Annotated[
        bool,
        typer.Option("--overwrite-newer", "-F", help="Also replace stored JWTs newer than the server's."),
    ] = False,
    server: ServerOptions = SERVER,
    where: OperatorOptions = OPERATOR,
    as_json: JsonFlag = False,
) -> None:
    """Pull account JWTs from servers with a full nats-based resolver into the store.

    --all reads every account ($SYS.REQ.CLAIMS.PACK), else one (--account, by name or key;
    $SYS.REQ.ACCOUNT.<A>.CLAIMS.LOOKUP). Every JWT is verified first (an account JWT of that
    key, issued by the operator or one of its signing keys, valid); if any is refused nothing is
    written. A JWT is written when it is newer (iat) than the stored one. One row per account."""
    import asyncio

    from trustkit import nkeys
    from trustkit.manage import server_url
    from trustkit.nkeys import PrefixByte
    from trustkit.push import PushError, http_pull_accounts, is_http_url

    ws, op = where.open()
    store = ws.open(op)
    target = server_url(store, url)
    key = None
    if not all_accounts:
        name = pick_account(ws, op, account)
        key = name if nkeys.is_valid_public_key(name, PrefixByte.ACCOUNT) else store.account_claims(name).sub
    if is_http_url(target):
        # an account server cannot list its accounts: --all asks for every account of the store
        keys = [key] if key is not None else [store.account_claims(n).sub for n in store.list_accounts()]
        found = asyncio.run(http_pull_accounts(target, keys, timeout=max(server.timeout, 5.0)))
        if key is not None and not found:
            raise PushError(f"the account server at {target} has no account {account or key}")
        _store_and_report(ws, op, found, target, overwrite_newer=overwrite_newer, as_json=as_json)
        return
    system_client = server.client(ws, op, target)

    async def run() -> list[tuple[str, str]]:
        async with system_client as client:
            if key is None:
                with Progress("pull", as_json=as_json) as bar:
                    return await client.pack(lambda done: bar(done))
            replies = await client.lookup(key)
        if not replies:
            raise PushError(f"no server at {target} answered the lookup of {key} within {server.timeout}s")
        found = [(key, data.decode("utf-8", "replace")) for data in replies if data]
        if not found:
            raise PushError(f"no server at {target} holds account {account or key}")
        return found

    tokens = asyncio.run(run())
    _store_and_report(ws, op, tokens, target, overwrite_newer=overwrite_newer, as_json=as_json)


def _store_and_report(
    ws: Any, op: str, tokens: list[tuple[str, str]], source: str, *, overwrite_newer: bool, as_json: bool
) -> None:
    """Verify and store pulled JWTs (all or nothing), one row per account."""
    from trustkit.errors import TokenError, exit_status
    from trustkit.manage import store_pulled

    report = store_pulled(ws, op, tokens, now=now(), overwrite_newer=overwrite_newer)
    emit([r.to_json() for r in report.rows], as_json=as_json, title=f"pull from {source}")
    if report.refused:
        first = report.refused[0]
        fail(
            f"refused {len(report.refused)} JWT(s) from {source} ({first.account or first.public_key}: "
            f"{first.message}); nothing was written",
            exit_status(TokenError("")),
        )


def _push_http(
    target: str, tokens: list[str], by_key: dict[str, str], *, timeout: float, as_json: bool, refused: bool
) -> None:
    """nsc's push to an HTTP account server: one POST per account, one row per account."""
    import asyncio

    from trustkit.push import http_push_accounts

    if refused:
        fail("--prune, --account-removal and --diff need a nats:// URL (a nats-based resolver)", 2)
    if not tokens:
        fail("nothing to push: pass --all or --account", 2)
    replies = asyncio.run(http_push_accounts(target, tokens, timeout=max(timeout, 5.0)))
    rows = [_row("update", by_key.get(r.account, r.account), r.server, r.code, r.message) for r in replies]
    emit(rows, as_json=as_json, title=f"push to {target}")
    if any(not 200 <= r["code"] < 300 for r in rows):
        raise typer.Exit(7)


RevokedName = Annotated[str | None, typer.Option("--name", "-n", help="User name.")]
RevokedKey = Annotated[str | None, typer.Option("--user-public-key", "-u", help="U… key or '*'.")]


def _one_user(name: str | None, public_key: str | None) -> None:
    if (name is None) == (public_key is None):
        fail("name exactly one of --name or --user-public-key", 2)


def revocations_add_user_cmd(
    name: RevokedName = None,
    public_key: RevokedKey = None,
    at: Annotated[
        int, typer.Option("--at", help="Revoke what was issued at or before (unix s; 0 = now).")
    ] = 0,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a user in its account JWT (then ``trustkit push`` applies it live)."""
    from trustkit.manage import revoke_user

    _one_user(name, public_key)
    ws, op, acct = where.open()
    t = now()
    report = revoke_user(ws, op, acct, user=name, public_key=public_key, at=at or t, now=t)
    emit(report.to_json(), as_json=as_json)


def revocations_list_users_cmd(where: AccountOptions = ACCOUNT, as_json: JsonFlag = False) -> None:
    """The account's user revocations: users issued at or before revoked_at are refused."""
    from trustkit.inventory import list_revocations

    ws, op, acct = where.open()
    emit(
        [r.to_json() for r in list_revocations(ws, op, acct)], as_json=as_json, title=f"revocations of {acct}"
    )


def revocations_delete_user_cmd(
    name: RevokedName = None,
    public_key: RevokedKey = None,
    where: AccountOptions = ACCOUNT,
    as_json: JsonFlag = False,
) -> None:
    """Remove a user's revocation from its account JWT (then ``trustkit push`` applies it)."""
    from trustkit.manage import delete_revocation

    _one_user(name, public_key)
    ws, op, acct = where.open()
    report = delete_revocation(ws, op, acct, user=name, public_key=public_key, now=now())
    emit(report.to_json(), as_json=as_json)
