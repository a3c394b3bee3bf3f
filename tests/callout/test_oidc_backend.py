"""The OIDC backend against a real OpenID provider (npm oidc-provider standing in for Okta).

Every valid token here is minted by the real provider and fetched from its token endpoint; the
backend discovers the provider and fetches its JWKS over HTTP. Forged tokens (``alg: none``, HS256
HMAC'd with the public key, tampered, foreign key) are built by hand from real ones. Time is
injected where a test is about expiry or the JWKS TTL (``clock`` for token times, ``monotonic``
for the cache), so no test sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey

from callout.backends.oidc import OidcBackend, OidcConfig
from callout.identity import BackendConfigError, Identity
from tests.callout.oidc_fixture import OidcProvider, public_pem, rsa_jwk
from trustkit.errors import CalloutError

pytestmark = pytest.mark.real

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


class Clock:
    """Wall clock (token times) and monotonic clock (JWKS cache), both shiftable."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.mono = 1000.0

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return self.mono


def backend(provider: OidcProvider, clock: Clock | None = None, **kw: Any) -> OidcBackend:
    kw.setdefault("leeway", 0)
    cfg = OidcConfig(issuer=provider.issuer, audience="nats", **kw)
    if clock is None:
        return OidcBackend(cfg)
    return OidcBackend(cfg, clock=clock.now, monotonic=clock.monotonic)


def code_of(coro: Awaitable[Any]) -> str:
    """The refusal code ``coro`` raises (fails the test if it succeeds)."""

    async def main() -> str:
        try:
            got = await coro
        except CalloutError as e:
            return e.code
        raise AssertionError(f"accepted: {got!r}")

    return asyncio.run(main())


# --- forging helpers (by hand: no JOSE library decides what the attacker can send) -------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    h, p, _ = token.split(".")
    return json.loads(unb64(h)), json.loads(unb64(p))


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(sig)}"


def rs256_with(jwk: dict[str, Any]) -> Any:
    private = RSAKey.import_key(jwk).private_key
    assert private is not None
    return lambda data: private.sign(data, padding.PKCS1v15(), hashes.SHA256())


# --- valid tokens ---------------------------------------------------------------------------------


def test_valid_token_gives_identity_with_groups(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice")
    _, claims = parts(token)
    b = backend(oidc_provider, attribute_claims=("email", "department", "missing"))
    ident = run(b.authenticate_token(token))
    assert ident == Identity(
        subject="alice",
        name="Alice Example",
        groups=("engineering", "ops"),
        attributes={"email": "alice@example.test", "department": "platform"},
        expires_at=claims["exp"],  # the policy caps the NATS user JWT here
        source="oidc",
    )
    assert b.fetches == 1
    # the same token as a password (username not used), from the cache
    assert run(b.authenticate("whoever", token)).subject == "alice"
    assert b.fetches == 1


def test_es256_token_and_client_credentials(oidc_provider: OidcProvider) -> None:
    b = backend(oidc_provider)
    es = oidc_provider.token("bob", rs="urn:nats-es")
    assert parts(es)[0]["alg"] == "ES256"
    ident = run(b.authenticate_token(es))
    assert (ident.subject, ident.name, ident.groups) == ("bob", "Bob Builder", ("svc",))
    svc = run(b.authenticate_token(oidc_provider.client_token()))
    assert (svc.subject, svc.name, svc.groups) == ("test-client", "svc@example.test", ("svc-nats",))


def test_configurable_claims(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("alice")
    roles = run(backend(oidc_provider, groups_claim="realm_access.roles").authenticate_token(token))
    assert roles.groups == ("oncall",)
    by_mail = run(
        backend(oidc_provider, subject_claim="email", name_claims=("nickname",)).authenticate_token(token)
    )
    assert (by_mail.subject, by_mail.name) == ("alice@example.test", "alice@example.test")
    # groups from a space-separated string claim (the provider's `scope`)
    scoped = run(backend(oidc_provider, groups_claim="scope").authenticate_token(token))
    assert scoped.groups == ("nats",)
    # no groups claim in the token: no groups
    assert run(backend(oidc_provider).authenticate_token(oidc_provider.token("dave"))).groups == ()


def test_bad_groups_or_subject_claims_are_refused(oidc_provider: OidcProvider) -> None:
    b = backend(oidc_provider)
    odd = oidc_provider.token("alice", overrides={"set": {"groups": ["ops", 7]}})
    assert code_of(b.authenticate_token(odd)) == "token_claims"
    obj = oidc_provider.token("alice", overrides={"set": {"groups": {"ops": True}}})
    assert code_of(b.authenticate_token(obj)) == "token_claims"
    many = oidc_provider.token("alice", overrides={"set": {"groups": [f"g{i}" for i in range(5)]}})
    assert code_of(backend(oidc_provider, max_groups=4).authenticate_token(many)) == "token_claims"
    assert run(backend(oidc_provider, max_groups=5).authenticate_token(many)).groups[:2] == ("g0", "g1")
    nosub = oidc_provider.token("alice", overrides={"set": {"sub": ""}})
    assert code_of(b.authenticate_token(nosub)) == "token_claims"
    ctl = oidc_provider.token("alice", overrides={"set": {"sub": "alice\nadmin"}})
    assert code_of(b.authenticate_token(ctl)) == "token_claims"


# --- time ------------------------------------------------------------------------------------------


def test_expired_token(oidc_provider: OidcProvider) -> None:
    clock = Clock()
    token = oidc_provider.token("alice", ttl=60)
    exp = parts(token)[1]["exp"]
    b = backend(oidc_provider, clock)
    clock.offset = exp - 1 - time.time()
    assert run(b.authenticate_token(token)).expires_at == exp
    clock.offset = exp - time.time()
    assert code_of(b.authenticate_token(token)) == "token_expired"
    # the leeway is exactly that
    lenient = backend(oidc_provider, clock, leeway=5)
    clock.offset = exp + 4 - time.time()
    assert run(lenient.authenticate_token(token)).subject == "alice"
    clock.offset = exp + 5 - time.time()
    assert code_of(lenient.authenticate_token(token)) == "token_expired"


def test_token_not_yet_valid_or_without_exp(oidc_provider: OidcProvider) -> None:
    b = backend(oidc_provider)
    now = int(time.time())
    later = oidc_provider.token("alice", overrides={"set": {"nbf": now + 120}})
    assert code_of(b.authenticate_token(later)) == "token_not_yet_valid"
    future = oidc_provider.token("alice", overrides={"set": {"iat": now + 120}})
    assert code_of(b.authenticate_token(future)) == "token_not_yet_valid"
    forever = oidc_provider.token("alice", overrides={"unset": ["exp"]})
    assert code_of(b.authenticate_token(forever)) == "token_claims"
    boolean = oidc_provider.token("alice", overrides={"set": {"exp": True}})
    assert code_of(b.authenticate_token(boolean)) == "token_claims"


# --- audience and issuer --------------------------------------------------------------------------


def test_wrong_audience(oidc_provider: OidcProvider) -> None:
    other = oidc_provider.token("alice", rs="urn:other")
    assert parts(other)[1]["aud"] == "other"
    assert code_of(backend(oidc_provider).authenticate_token(other)) == "token_audience"
    # accepted by a service that accepts that audience too
    both = OidcBackend(OidcConfig(issuer=oidc_provider.issuer, audience=("nats", "other")))
    assert run(both.authenticate_token(other)).subject == "alice"
    # a list that names us is fine; a list that does not is not
    listed = oidc_provider.token("alice", overrides={"set": {"aud": ["x", "nats"]}})
    assert run(backend(oidc_provider).authenticate_token(listed)).subject == "alice"
    unlisted = oidc_provider.token("alice", overrides={"set": {"aud": ["x", "y"]}})
    assert code_of(backend(oidc_provider).authenticate_token(unlisted)) == "token_audience"


def test_wrong_issuer_is_refused_without_asking_the_idp(oidc_provider: OidcProvider) -> None:
    # genuinely signed by the trusted key, but claiming another issuer
    foreign = oidc_provider.token("alice", overrides={"set": {"iss": "https://evil.example"}})
    b = backend(oidc_provider)
    assert code_of(b.authenticate_token(foreign)) == "token_issuer"
    assert b.fetches == 0
    trailing = oidc_provider.token("alice", overrides={"set": {"iss": oidc_provider.issuer + "/"}})
    assert code_of(b.authenticate_token(trailing)) == "token_issuer"


def test_discovery_must_name_the_configured_issuer(oidc_provider: OidcProvider) -> None:
    """The discovery document of http://localhost:<port> says http://127.0.0.1:<port>: refused."""
    alias = oidc_provider.issuer.replace("127.0.0.1", "localhost")
    token = oidc_provider.token("alice", overrides={"set": {"iss": alias}})
    b = OidcBackend(OidcConfig(issuer=alias, audience="nats"))
    assert code_of(b.authenticate_token(token)) == "idp_unavailable"
    # with the JWKS named explicitly (no discovery), the same token is fine
    direct = OidcBackend(OidcConfig(issuer=alias, audience="nats", jwks_uri=f"{oidc_provider.issuer}/jwks"))
    assert run(direct.authenticate_token(token)).subject == "alice"


# --- algorithms and signatures --------------------------------------------------------------------


def test_alg_none_is_refused(oidc_provider: OidcProvider) -> None:
    header, claims = parts(oidc_provider.token("alice"))
    b = backend(oidc_provider)
    for alg in ("none", "None", "NONE"):
        forged = compact({**header, "alg": alg}, {**claims, "groups": ["admin"]})
        assert code_of(b.authenticate_token(forged)) == "token_algorithm"
    assert b.fetches == 0  # refused before any key lookup


def test_hs256_hmac_with_the_public_key_is_refused(oidc_provider: OidcProvider) -> None:
    """The classic confusion: HMAC-SHA256 keyed with the RSA public key the IdP publishes."""
    header, claims = parts(oidc_provider.token("alice"))
    pem = public_pem(oidc_provider.key("k1"))
    for secret in (pem, pem.strip(), json.dumps(oidc_provider.jwks()["keys"][0]).encode()):
        forged = compact(
            {**header, "alg": "HS256"},
            {**claims, "groups": ["admin"]},
            lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest(),
        )
        assert code_of(backend(oidc_provider).authenticate_token(forged)) == "token_algorithm"


def test_algorithm_outside_the_allow_list(oidc_provider: OidcProvider) -> None:
    ps = oidc_provider.token("alice", rs="urn:nats-ps")  # PS256, signed by the provider's own k1
    assert parts(ps)[0] == {"alg": "PS256", "typ": "at+jwt", "kid": "k1"}
    assert code_of(backend(oidc_provider).authenticate_token(ps)) == "token_algorithm"
    with_ps = backend(oidc_provider, algorithms=("RS256", "PS256"))
    assert run(with_ps.authenticate_token(ps)).subject == "alice"
    # an ES256 header on the RSA key k1: the key does not fit the algorithm
    header, claims = parts(oidc_provider.token("alice"))
    confused = compact({**header, "alg": "ES256"}, claims, lambda data: b"\x01" * 64)
    assert code_of(backend(oidc_provider).authenticate_token(confused)) == "token_algorithm"


def test_tampered_token(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.token("bob")
    h, p, s = token.split(".")
    claims = json.loads(unb64(p))
    tampered = f"{h}.{b64(json.dumps({**claims, 'groups': ['ops']}).encode())}.{s}"
    b = backend(oidc_provider)
    assert code_of(b.authenticate_token(tampered)) == "token_signature"
    # one flipped bit of the signature
    sig = bytearray(unb64(s))
    sig[-1] ^= 1
    assert code_of(b.authenticate_token(f"{h}.{p}.{b64(bytes(sig))}")) == "token_signature"
    assert code_of(b.authenticate_token(f"{h}.{p}.")) == "token_signature"
    assert run(b.authenticate_token(token)).groups == ("svc",)


def test_token_signed_by_a_foreign_key_with_a_known_kid(oidc_provider: OidcProvider) -> None:
    header, claims = parts(oidc_provider.token("alice"))
    forged = compact(header, {**claims, "groups": ["admin"]}, rs256_with(rsa_jwk("k1")))
    assert code_of(backend(oidc_provider).authenticate_token(forged)) == "token_signature"


# --- malformed and oversized ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("", "invalid_input"),
        ("garbage", "token_malformed"),
        ("a.b", "token_malformed"),
        ("a.b.c", "token_malformed"),
        ("a.b.c.d.e", "token_malformed"),  # JWE
        ("eyJhbGciOiJSUzI1NiJ9.e30.é", "token_malformed"),  # non-ASCII
        ("eyJhbGciOiJSUzI1NiJ9.W10.c2ln", "token_malformed"),  # payload is a JSON list
        ("e30.e30.c2ln", "token_malformed"),  # header without alg
        ("eyJhbGciOiJSUzI1NiIsImFsZyI6Im5vbmUifQ.e30.c2ln", "token_malformed"),  # duplicate "alg"
        ("eyJhbGciOiJSUzI1NiIsImNyaXQiOlsiZXhwIl19.e30.c2ln", "token_malformed"),  # crit
        ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln+", "token_malformed"),  # not base64url
    ],
)
def test_garbage_tokens(oidc_provider: OidcProvider, token: str, code: str) -> None:
    b = backend(oidc_provider)
    assert code_of(b.authenticate_token(token)) == code
    assert b.fetches == 0


def test_oversize_token_is_refused_before_parsing(oidc_provider: OidcProvider) -> None:
    b = backend(oidc_provider, max_token_bytes=2048)
    real = oidc_provider.token("alice", overrides={"set": {"pad": "x" * 2000}})
    assert len(real) > 2048
    assert code_of(b.authenticate_token(real)) == "token_too_large"
    assert code_of(b.authenticate_token("\x00" * 3000)) == "token_too_large"  # not even looked at
    assert b.fetches == 0
    assert run(backend(oidc_provider, max_token_bytes=8192).authenticate_token(real)).subject == "alice"


# --- JWKS cache, rotation and outages -------------------------------------------------------------


def test_key_rotation_is_picked_up_on_unknown_kid(
    oidc_provider_factory: Any,
) -> None:
    provider: OidcProvider = oidc_provider_factory()
    clock = Clock()
    b = backend(provider, clock, jwks_refresh_interval=30)
    old = provider.token("alice")
    assert run(b.authenticate_token(old)).subject == "alice"
    issuer = provider.issuer
    provider.restart(keys=[rsa_jwk("k3")])  # same port, so the same issuer, only k3
    assert provider.issuer == issuer and provider.kids == ["k3"]
    new = provider.token("alice")
    assert parts(new)[0]["kid"] == "k3"
    # within the refresh interval the unknown kid does not reach the IdP
    assert code_of(b.authenticate_token(new)) == "token_key_unknown"
    assert b.fetches == 1
    clock.mono += 30
    assert run(b.authenticate_token(new)).subject == "alice"
    assert b.fetches == 2
    # the retired key is gone from the set now
    assert code_of(b.authenticate_token(old)) == "token_key_unknown"


def test_random_kid_flood_costs_one_fetch_per_interval(oidc_provider: OidcProvider) -> None:
    clock = Clock()
    b = backend(oidc_provider, clock, jwks_refresh_interval=30)
    token = oidc_provider.token("alice")
    assert run(b.authenticate_token(token)).subject == "alice"
    header, claims = parts(token)
    _, _, sig = token.split(".")

    def flood(n: int) -> list[str]:
        forged = [
            compact({**header, "kid": uuid.uuid4().hex}, claims).rsplit(".", 1)[0] + "." + sig
            for _ in range(n)
        ]

        async def main() -> list[str]:
            codes = []
            for t in forged:
                try:
                    await b.authenticate_token(t)
                except CalloutError as e:
                    codes.append(e.code)
            return codes

        return asyncio.run(main())

    assert flood(50) == ["token_key_unknown"] * 50
    assert b.fetches == 1
    clock.mono += 30
    assert flood(50) == ["token_key_unknown"] * 50
    assert b.fetches == 2


def test_concurrent_cold_start_shares_one_fetch(oidc_provider: OidcProvider) -> None:
    b = backend(oidc_provider)
    tokens = [oidc_provider.token(u) for u in ("alice", "bob", "carol", "dave")] * 5

    async def main() -> list[Identity]:
        return list(await asyncio.gather(*(b.authenticate_token(t) for t in tokens)))

    assert [i.subject for i in asyncio.run(main())] == ["alice", "bob", "carol", "dave"] * 5
    assert b.fetches == 1


def test_provider_down_cached_jwks_until_ttl_then_fail_closed(oidc_provider_factory: Any) -> None:
    provider: OidcProvider = oidc_provider_factory()
    clock = Clock()
    b = backend(provider, clock, jwks_ttl=60, idp_retry_interval=5)
    token = provider.token("alice")
    assert run(b.authenticate_token(token)).subject == "alice"
    with provider.stopped():
        clock.mono += 59  # still within the TTL: the cached keys serve
        assert run(b.authenticate_token(token)).subject == "alice"
        assert run(b.ready()) is True  # /readyz: tokens can still be checked
        assert b.fetches == 1
        clock.mono += 1  # TTL over, the IdP is down: fail closed
        assert code_of(b.authenticate_token(token)) == "idp_unavailable"
        assert b.fetches == 2
        assert code_of(b.ready()) == "idp_unavailable"
        # and it is not asked again on every login while it is down
        assert code_of(b.authenticate_token(token)) == "idp_unavailable"
        assert b.fetches == 2
        clock.mono += 5
        assert code_of(b.authenticate_token(token)) == "idp_unavailable"
        assert b.fetches == 3
    # back up (same port, same keys): recovers after the retry interval
    clock.mono += 5
    assert run(b.authenticate_token(token)).subject == "alice"
    assert b.fetches == 4


def test_idp_down_from_the_start(oidc_provider_factory: Any) -> None:
    provider: OidcProvider = oidc_provider_factory()
    token = provider.token("alice")
    provider.stop()
    b = backend(provider, Clock())
    assert code_of(b.authenticate_token(token)) == "idp_unavailable"


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"algorithms": ("none",)}, "none"),
        ({"algorithms": ("RS256", "HS256")}, "HMAC"),
        ({"algorithms": ()}, "non-empty"),
        ({"algorithms": ("XS256",)}, "unsupported"),
        ({"audience": ()}, "audience"),
        ({"audience": ""}, "audience"),
        ({"issuer": "http://idp.example.com"}, "https"),
        ({"issuer": "ftp://127.0.0.1"}, "https"),
        ({"jwks_uri": "http://10.0.0.1/jwks"}, "https"),
        ({"groups_claim": "a..b"}, "claim path"),
        ({"jwks_ttl": 0}, "jwks_ttl"),
        ({"leeway": -1}, "leeway"),
        ({"max_token_bytes": 0}, "max_token_bytes"),
    ],
)
def test_bad_configuration(kw: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"issuer": "https://example.okta.com/oauth2/default", "audience": "nats", **kw}
    with pytest.raises(BackendConfigError, match=message):
        OidcConfig(**args)


def test_good_configuration_defaults() -> None:
    cfg = OidcConfig(issuer="https://example.okta.com/oauth2/default", audience="api://nats")
    assert cfg.algorithms == ("RS256", "ES256")
    assert cfg.audiences == ("api://nats",)
    assert cfg.discovery == "https://example.okta.com/oauth2/default/.well-known/openid-configuration"
    assert OidcConfig(issuer="http://[::1]:8080/", audience=["a", "b"]).audiences == ("a", "b")  # type: ignore[arg-type]
