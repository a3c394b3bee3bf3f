"""Account resolvers: where the chain of trust finds account JWTs.

:class:`MemoryResolver` holds verified account claims in memory (nats-server ``resolver: MEMORY``
with ``resolver_preload``). Directory-backed resolvers (``resolver { type: full }``) join it with
the broker. Every JWT is verified against the trusted operators on the way in.
"""

from __future__ import annotations

from collections.abc import Iterable

from trustkit.jwt.account import AccountClaims
from trustkit.trust import TrustedOperators, verify_account

__all__ = ["MemoryResolver"]


class MemoryResolver:
    """A callable ``account key -> AccountClaims | None`` for :func:`trustkit.trust.authorize_user`."""

    def __init__(self, operators: TrustedOperators, tokens: Iterable[str] = ()) -> None:
        self.operators = operators
        self._accounts: dict[str, AccountClaims] = {}
        for token in tokens:
            self.store(token)

    def store(self, token: str) -> AccountClaims:
        """Verify and store (or replace) an account JWT; raises AuthorizationError if untrusted."""
        account = verify_account(token, self.operators)
        self._accounts[account.sub] = account
        return account

    def discard(self, key: str) -> bool:
        """Forget an account (a resolver delete); True if it was held."""
        return self._accounts.pop(key, None) is not None

    def __call__(self, key: str) -> AccountClaims | None:
        return self._accounts.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._accounts

    def __len__(self) -> int:
        return len(self._accounts)
