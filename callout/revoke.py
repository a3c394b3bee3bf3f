"""``trustkit-callout revoke --identity ID``: cut one person off, live.

nats-server mints a fresh user key for every callout connection and revokes callout users by that
key (the registered user's issue time against the account's revocations, ``>=``). So revoking a
person means: find every live key the callout issued to their identity (the audit index,
:func:`callout.audit.issued_to`), add a revocation for each to the account it was issued into,
re-sign those accounts with the operator key from the trustkit store, and push them
(``$SYS.REQ.CLAIMS.UPDATE``, :func:`trustkit.push.push_accounts`): the server disconnects the
live connections with ``User Authentication Revoked`` and refuses those keys from then on.

Only operator mode has account JWTs to carry revocations. In config mode there is nothing to
push: the users' JWT expiry (the policy's ``max_lifetime``) bounds their access, and a config
reload cannot revoke them either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callout.audit import IssuedKey, issued_to
from callout.config import CalloutConfig
from trustkit.errors import CalloutError
from trustkit.push import ServerReply

__all__ = ["RevokeReport", "revoke_identity"]


@dataclass(frozen=True)
class RevokeReport:
    identity: str
    keys: list[IssuedKey]
    accounts: dict[str, str] = field(default_factory=dict)  # public key → name, re-signed
    replies: list[ServerReply] = field(default_factory=list)
    pushed_to: str = ""

    @property
    def ok(self) -> bool:
        """True if nothing needed pushing, or every pushed account got a 200 from some server."""
        if not self.accounts or not self.pushed_to:
            return True
        good = {r.account for r in self.replies if r.ok}
        return all(a in good for a in self.accounts)

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "revoked": [
                {"user_nkey": k.user_nkey, "account": k.account, "account_key": k.account_key, "iat": k.iat}
                for k in self.keys
            ],
            "accounts": [{"name": n, "public_key": k} for k, n in self.accounts.items()],
            "pushed_to": self.pushed_to,
            "replies": [
                {"account": r.account, "server": r.server, "code": r.code, "message": r.message}
                for r in self.replies
            ],
        }


async def revoke_identity(
    cfg: CalloutConfig,
    identity: str,
    *,
    now: int,
    url: str | None = None,
    push: bool = True,
    timeout: float = 2.0,
    expected_servers: int | None = None,
) -> RevokeReport:
    """Revoke every live key issued to ``identity`` and push the changed accounts to ``url``
    (default: ``[nats] url``). ``push=False`` only changes the store.

    Raises :class:`CalloutError` (``callout_config``: not operator mode, no audit index, an
    account missing from the store; ``callout_audit``: unreadable index), :class:`StoreError`
    (no operator key to re-sign with) or :class:`trustkit.push.PushError` (server unreachable).
    """
    from callout.runtime import open_store
    from trustkit import manage
    from trustkit.push import push_accounts

    if cfg.mode != "operator":
        raise CalloutError(
            "revoke needs operator mode: revocations travel in account JWTs, and config mode has none "
            "(there, a user's access ends when its JWT expires; see docs/callout.md)",
            code="callout_config",
        )
    index = cfg.index_file()
    if index is None:
        raise CalloutError(
            "[audit] file is not configured: there is no index of issued keys", code="callout_config"
        )
    if not identity:
        raise CalloutError("the identity is empty", code="callout_config")
    keys = issued_to(index, identity, now=now)
    if not keys:
        return RevokeReport(identity, [])
    ws, store = open_store(cfg)
    by_account: dict[str, list[IssuedKey]] = {}
    for k in keys:
        if not k.account_key:
            raise CalloutError(
                f"index entry for {k.user_nkey} names no account key (issued in config mode?)",
                code="callout_config",
            )
        by_account.setdefault(k.account_key, []).append(k)
    names: dict[str, str] = {}
    for account_key, entries in by_account.items():
        name = store.find_account(account_key)
        if name is None:
            raise CalloutError(
                f"account {account_key} is not in the store {store.dir}", code="callout_config"
            )
        claims = store.account_claims(name)
        for e in entries:
            # at or after the key's iat: the server revokes when revocation time >= iat
            claims.revoke(e.user_nkey, max(now, e.iat))
        # one re-sign per account, however many keys (manage.revoke_user re-signs per key)
        manage._resign_account(ws, store, claims, now=now)
        names[account_key] = name
    if not push:
        return RevokeReport(identity, keys, names)
    target = url or cfg.nats.url
    user_jwt, user_key = manage.push_user(ws, store.name, now=now)
    tokens = [store.read_account_jwt(n) for n in names.values()]
    replies = await push_accounts(
        target,
        tokens,
        user_jwt=user_jwt,
        user_key=user_key,
        timeout=timeout,
        expected_servers=expected_servers,
    )
    return RevokeReport(identity, keys, names, replies, target)
