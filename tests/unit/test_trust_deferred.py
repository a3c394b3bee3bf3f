"""begin_authorization + PendingGrant.finish judge every connection exactly as authorize_user does:
same grant, or the same refusal (code and message), whichever check fails first."""

from __future__ import annotations

import time

import pytest

from trustkit import jwt, nkeys
from trustkit.errors import AuthorizationError
from trustkit.jwt.codec import b64url_encode
from trustkit.nkeys import KeyPair, PrefixByte
from trustkit.resolver import MemoryResolver
from trustkit.trust import TrustedOperators, authorize_user, begin_authorization, sign_nonce

NOW = int(time.time())
NONCE = "bm9uY2Utb2YtdGhlLXNlcnZlcg"

OP = KeyPair.generate(PrefixByte.OPERATOR)
ACCT = KeyPair.generate(PrefixByte.ACCOUNT)
ACCT_SK = KeyPair.generate(PrefixByte.ACCOUNT)
SCOPED = KeyPair.generate(PrefixByte.ACCOUNT)
STRAY = KeyPair.generate(PrefixByte.ACCOUNT)
NAMES = ("good", "expired", "revoked", "scoped", "bearer", "sk")
USERS = {n: KeyPair.generate(PrefixByte.USER) for n in NAMES}


def _world() -> tuple[TrustedOperators, MemoryResolver]:
    op_jwt = jwt.OperatorClaims(sub=OP.public_key, name="op").encode(OP, iat=NOW - 300)
    account = jwt.AccountClaims(sub=ACCT.public_key, name="A")
    account.add_signing_key(ACCT_SK.public_key)
    account.add_signing_key(
        SCOPED.public_key,
        jwt.UserScope(role="r", template=jwt.UserPermissionLimits(pub=jwt.Permission(allow=["x.>"]))),
    )
    account.revoke(USERS["revoked"].public_key, NOW - 50)
    operators = TrustedOperators.from_jwts([op_jwt])
    return operators, MemoryResolver(operators, [account.encode(OP, iat=NOW - 200)])


OPERATORS, RESOLVER = _world()


def _token(name: str, signer: KeyPair = ACCT, **kw: object) -> str:
    claims = jwt.UserClaims(sub=USERS[name].public_key, name=name, **kw)  # type: ignore[arg-type]
    return claims.encode(signer, iat=NOW - 100)


def _forge(token: str) -> str:
    """Same claims, a signature by nobody (a valid-looking 64 bytes)."""
    head, _, _ = token.rpartition(".")
    other = KeyPair.generate(PrefixByte.ACCOUNT)
    return head + "." + b64url_encode(other.sign(head.encode()))


def _scoped() -> str:
    claims = jwt.UserClaims(sub=USERS["scoped"].public_key, name="s", issuer_account=ACCT.public_key)
    claims.set_scoped()
    return claims.encode(SCOPED, iat=NOW - 100)


GOOD = _token("good")
CASES: dict[str, tuple[str, str | None, str | None]] = {
    # name: (user JWT, user whose key signs the nonce (None: no sig), sig override)
    "good": (GOOD, "good", None),
    "signing key": (_token("sk", ACCT_SK, issuer_account=ACCT.public_key), "sk", None),
    "scoped": (_scoped(), "scoped", None),
    "bearer without sig": (_token("bearer", bearer_token=True), None, None),
    "forged jwt": (_forge(GOOD), "good", None),
    "nonce by another key": (GOOD, "expired", None),
    "nonce garbage": (GOOD, "good", "!!!"),
    "nonce std base64": (GOOD, "good", "std"),
    "nonce missing": (GOOD, None, None),
    "expired": (_token("expired", exp=NOW - 10), "expired", None),
    "revoked": (_token("revoked"), "revoked", None),
    "stray issuer": (_token("good", STRAY, issuer_account=ACCT.public_key), "good", None),
    "unknown account": (_token("good", STRAY), "good", None),
    "scoped with permissions": (
        _token("scoped", SCOPED, issuer_account=ACCT.public_key, pub=jwt.Permission(allow=["y"])),
        "scoped",
        None,
    ),
    # two things wrong: the first check in authorize_user's order decides
    "forged and revoked": (_forge(_token("revoked")), "revoked", None),
    "forged and expired": (_forge(_token("expired", exp=NOW - 10)), "expired", None),
    "forged and unknown account": (_forge(_token("good", STRAY)), "good", None),
    "forged and bad nonce": (_forge(GOOD), "expired", None),
    "bad nonce and revoked": (_token("revoked"), "good", None),
    "malformed jwt": ("eyJ.not.a-token", "good", None),
}


def _sig(case: tuple[str, str | None, str | None]) -> str | None:
    _, signer, override = case
    if override == "std":
        import base64

        return base64.b64encode(USERS["good"].sign(NONCE.encode())).decode()
    if override is not None:
        return override
    return sign_nonce(USERS[signer], NONCE) if signer else None


def _outcome(run: object) -> tuple[str, str] | tuple[str, str, str]:
    try:
        grant = run()  # type: ignore[operator]
    except AuthorizationError as exc:
        return ("refused", exc.code, exc.message)
    return ("granted", grant.user.sub)


@pytest.mark.parametrize("name", list(CASES))
def test_same_verdict_as_authorize_user(name: str) -> None:
    token, _, _ = CASES[name]
    kw = dict(nonce=NONCE, signature=_sig(CASES[name]), resolver=RESOLVER, operators=OPERATORS, now=NOW)
    expected = _outcome(lambda: authorize_user(token, **kw))  # type: ignore[arg-type]
    # checks run here
    assert _outcome(lambda: begin_authorization(token, **kw).finish()) == expected  # type: ignore[arg-type]
    # checks run elsewhere, one by one, as the broker's worker process does
    pending = begin_authorization(token, **kw)  # type: ignore[arg-type]
    results = [nkeys.check_signed(pk, signed) for pk, signed in pending.checks.items]
    assert _outcome(lambda: pending.finish(results)) == expected
    if expected[0] == "granted":
        assert len(pending.checks) == (1 if name == "bearer without sig" else 2)


def test_a_grant_needs_every_check_to_pass() -> None:
    kw = dict(nonce=NONCE, signature=sign_nonce(USERS["good"], NONCE), resolver=RESOLVER, operators=OPERATORS)
    pending = begin_authorization(GOOD, now=NOW, **kw)  # type: ignore[arg-type]
    assert pending.refusal is None and len(pending.checks) == 2
    with pytest.raises(AuthorizationError) as info:
        pending.finish([True, False])
    assert info.value.code == "nonce_signature"
    with pytest.raises(AuthorizationError) as info:
        pending.finish([False, True])
    assert info.value.code == "user_jwt_invalid"
    with pytest.raises(ValueError, match="2 signature checks"):
        pending.finish([True])
    assert pending.finish([True, True]).user.sub == USERS["good"].public_key


def test_signature_checks_fail_closed() -> None:
    checks = nkeys.SignatureChecks()
    key = USERS["good"]
    raw = nkeys.decode_public(key.public_key)[1]
    checks.add(raw, b"data", b"short")
    checks.add(raw, b"data", key.sign(b"data"))
    checks.add(raw, b"data!", key.sign(b"data"))
    assert checks.run() == [False, True, False]
    assert not nkeys.check_signed(b"", b"") and not nkeys.check_signed(raw, b"x" * 63)
