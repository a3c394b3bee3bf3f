"""An operator-mode setup for bench/broker.py, built with trustkit's library (no hand-made JWTs).

One operator, the system account ``SYS`` and an application account ``APP`` that is pushed to
the running server (``trustkit.push.push_accounts``), as a user's ``trustkit push`` does. The
server config is ``trustkit.serverconfig.nats_resolver_config`` (the ``full`` resolver), so
revocations can be pushed live. Users carry wildcard allow *and* deny rules that every message
of the benchmark traffic passes, so the servers really check them:

* a deny rule inside a wildcard subscription (``bench.*.admin`` under ``bench.>``) makes both
  servers check each delivery against the deny list, not only the SUB;
* 1,000 benchmark subjects defeat a small per-connection publish-permission cache.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench._netload import Auth
from trustkit import jwt
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.push import push_accounts, temporary_push_user
from trustkit.serverconfig import nats_resolver_config

#: publish rules of the traffic users: every benchmark subject is allowed, none is denied
MEMBER_PUB = jwt.Permission(
    allow=["bench.>", "req.>"], deny=["bench.*.admin", "bench.secret.>", "req.*.admin"]
)
#: subscribe rules: ``bench.>`` is allowed and overlaps the deny rules (a per-delivery check)
MEMBER_SUB = jwt.Permission(allow=["bench.>", "_INBOX.>"], deny=["bench.*.admin", "bench.secret.>"])
#: the responder may publish only as a reply to a request it received (allow_responses)
RESPONDER_PUB = jwt.Permission(allow=["svc.status"])
RESPONDER_SUB = jwt.Permission(allow=["req.>"], deny=["req.*.admin"])


class World:
    """Keys and JWTs for one benchmark run; ``user()`` mints more users of ``APP`` on demand."""

    def __init__(self) -> None:
        now = int(time.time())
        self.iat = now - 200
        self.operator = KeyPair.generate(PrefixByte.OPERATOR)
        self.system = KeyPair.generate(PrefixByte.ACCOUNT)
        self.app = KeyPair.generate(PrefixByte.ACCOUNT)
        self.operator_jwt = jwt.OperatorClaims(
            sub=self.operator.public_key, name="bench", system_account=self.system.public_key
        ).encode(self.operator, iat=now - 300)
        self.system_jwt = jwt.AccountClaims(sub=self.system.public_key, name="SYS").encode(
            self.operator, iat=now - 300
        )
        self.members: list[Auth] = []
        self.publisher = self.user("publisher", pub=MEMBER_PUB, sub=MEMBER_SUB)
        self.subscriber = self.user("subscriber", pub=MEMBER_PUB, sub=MEMBER_SUB)
        self.responder = self.user(
            "responder", pub=RESPONDER_PUB, sub=RESPONDER_SUB, resp=jwt.ResponsePermission(max=1, ttl=0)
        )
        self.plain = self.user("plain")  # no permissions at all: the baseline of the permission cost
        self.bystander = self.user("bystander")  # holds the 1,000 other subscriptions
        token, key = temporary_push_user(self.system.public_key, self.system, now=now, lifetime=4 * 3600)
        self.system_user = Auth(token, key)

    def user(
        self,
        name: str,
        *,
        pub: jwt.Permission | None = None,
        sub: jwt.Permission | None = None,
        resp: jwt.ResponsePermission | None = None,
    ) -> Auth:
        kp = KeyPair.generate(PrefixByte.USER)
        claims = jwt.UserClaims(sub=kp.public_key, name=name, resp=resp)
        if pub is not None:
            claims.pub = jwt.Permission(allow=list(pub.allow), deny=list(pub.deny))
        if sub is not None:
            claims.sub_perms = jwt.Permission(allow=list(sub.allow), deny=list(sub.deny))
        return Auth(claims.encode(self.app, iat=self.iat), kp)

    def member(self, i: int) -> Auth:
        """The i-th of a pool of distinct users with the member rules (connect floods, RSS)."""
        while len(self.members) <= i:
            self.members.append(self.user(f"member-{len(self.members)}", pub=MEMBER_PUB, sub=MEMBER_SUB))
        return self.members[i]

    def app_jwt(self, revoked: list[str] | None = None, *, iat: int | None = None) -> str:
        """APP's account JWT, revoking every user in ``revoked`` (issued before the revocation)."""
        claims = jwt.AccountClaims(sub=self.app.public_key, name="APP")
        for key in revoked or ():
            claims.revoke(key, self.iat + 10)
        return claims.encode(self.operator, iat=iat if iat is not None else self.iat + 20)

    def config(self, jwt_dir: Path) -> str:
        """``trustkit generate config --nats-resolver``'s text."""
        jwt_dir.mkdir(parents=True, exist_ok=True)
        return nats_resolver_config(self.operator_jwt, self.system_jwt, directory=str(jwt_dir))

    def push_app(self, url: str) -> None:
        """Push APP to a running server, as ``trustkit push`` does; raise unless it was taken."""
        replies = asyncio.run(
            push_accounts(
                url,
                [self.app_jwt()],
                user_jwt=self.system_user.token,
                user_key=self.system_user.key,
                expected_servers=1,
                timeout=5.0,
            )
        )
        if len(replies) != 1 or not replies[0].ok:
            raise RuntimeError(f"push of APP to {url} failed: {replies}")
