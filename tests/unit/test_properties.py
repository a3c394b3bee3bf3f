"""Property and fuzz tests (hypothesis): key encodings, xkv1 boxes, claims round trips, decoder fuzzing,
subject matcher consistency. Bounded to ~200 examples each so the unit suite stays fast."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.support import (
    ACCOUNT,
    ACCOUNT2,
    B32_ALPHABET,
    B64URL_ALPHABET,
    OPERATOR,
    SERVER,
    USER,
    USER2,
    forge,
    user_payload,
)
from trustkit import jwt, nkeys
from trustkit import subject as subjects
from trustkit.errors import NKeyError, TokenError, TrustkitError
from trustkit.jwt.codec import HEADER_B64, b64url_encode
from trustkit.nkeys import KeyPair, PrefixByte

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PUBLIC_KINDS = st.sampled_from(
    [
        PrefixByte.OPERATOR,
        PrefixByte.ACCOUNT,
        PrefixByte.USER,
        PrefixByte.SERVER,
        PrefixByte.CLUSTER,
        PrefixByte.CURVE,
    ]
)
RAW32 = st.binary(min_size=32, max_size=32)

# --- nkeys ----------------------------------------------------------------------------------------


@PROPS
@given(kind=PUBLIC_KINDS, payload=RAW32)
def test_public_key_encode_decode_round_trip(kind: PrefixByte, payload: bytes) -> None:
    text = nkeys.encode(kind, payload)
    assert len(text) == 56 and text[0] == kind.letter
    assert set(text) <= set(B32_ALPHABET)
    assert nkeys.decode_public(text) == (kind, payload)
    assert nkeys.decode(kind, text) == payload


@PROPS
@given(kind=PUBLIC_KINDS, seed=RAW32)
def test_seed_encode_decode_round_trip(kind: PrefixByte, seed: bytes) -> None:
    text = nkeys.encode_seed(kind, seed)
    assert len(text) == 58 and text[:2] == "S" + kind.letter
    assert nkeys.decode_seed(text) == (kind, seed)
    kp = KeyPair.generate(kind, rand=lambda n: seed)
    assert kp.seed == text
    assert KeyPair.from_seed(text) == kp
    assert KeyPair.from_public_key(kp.public_key).public_key == kp.public_key
    assert text not in repr(kp)


@PROPS
@given(
    kind=PUBLIC_KINDS,
    payload=RAW32,
    pos=st.integers(min_value=0, max_value=55),
    repl=st.one_of(st.sampled_from(B32_ALPHABET), st.characters(codec="utf-8")),
)
def test_single_character_change_never_yields_the_same_key(
    kind: PrefixByte, payload: bytes, pos: int, repl: str
) -> None:
    text = nkeys.encode(kind, payload)
    assume(text[pos] != repl)
    mutated = text[:pos] + repl + text[pos + 1 :]
    try:
        got = nkeys.decode_public(mutated)
    except NKeyError:
        return
    assert got != (kind, payload)  # pragma: no cover - CRC-16 catches every single-symbol change


@PROPS
@given(
    kind=PUBLIC_KINDS,
    seed=RAW32,
    pos=st.integers(min_value=0, max_value=57),
    repl=st.sampled_from(B32_ALPHABET),
)
def test_single_character_change_of_a_seed_is_rejected_or_another_key(
    kind: PrefixByte, seed: bytes, pos: int, repl: str
) -> None:
    text = nkeys.encode_seed(kind, seed)
    assume(text[pos] != repl)
    try:
        got = nkeys.decode_seed(text[:pos] + repl + text[pos + 1 :])
    except NKeyError:
        return
    assert got != (kind, seed)


@PROPS
@given(a=RAW32, b=RAW32, msg=st.binary(max_size=4096), nonce=st.binary(min_size=24, max_size=24))
def test_seal_open_round_trip(a: bytes, b: bytes, msg: bytes, nonce: bytes) -> None:
    alice = KeyPair.generate(PrefixByte.CURVE, rand=lambda n: a)
    bob = KeyPair.generate(PrefixByte.CURVE, rand=lambda n: b)
    box = alice.seal(msg, bob.public_key, rand=lambda n: nonce)
    assert len(box) == 4 + 24 + 16 + len(msg)
    assert bob.open(box, alice.public_key) == msg
    assert alice.open(alice.seal(msg, alice.public_key), alice.public_key) == msg


@PROPS
@given(seed=RAW32, msg=st.binary(max_size=1024), flip=st.integers(min_value=0))
def test_any_bit_flip_breaks_a_signature(seed: bytes, msg: bytes, flip: int) -> None:
    kp = KeyPair.generate(PrefixByte.USER, rand=lambda n: seed)
    sig = kp.sign(msg)
    kp.verify(msg, sig)
    bad = bytearray(sig)
    bad[(flip // 8) % 64] ^= 1 << (flip % 8)
    try:
        kp.verify(msg, bytes(bad))
    except NKeyError:
        return
    raise AssertionError("flipped signature verified")  # pragma: no cover


# --- claims round trips -------------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=24)
TOKEN = st.text(alphabet="abcXYZ019_-$", min_size=1, max_size=5)
LITERAL = st.lists(TOKEN, min_size=1, max_size=4).map(".".join)
PATTERN = st.one_of(
    LITERAL,
    st.tuples(LITERAL, st.sampled_from([".*", ".>", ".*.x"])).map("".join),
    st.sampled_from([">", "*", "*.>"]),
)
QUEUE_SUB = st.one_of(PATTERN, st.tuples(PATTERN, TOKEN).map(" ".join))
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
LIMIT = st.one_of(st.just(-1), st.just(0), st.integers(min_value=1, max_value=2**40), INT64)
UNIX = st.integers(min_value=0, max_value=2**40)


@st.composite
def user_claims(draw: st.DrawFn) -> jwt.UserClaims:
    c = jwt.UserClaims(
        sub=draw(st.sampled_from([USER.public_key, USER2.public_key])),
        name=draw(TEXT),
        exp=draw(UNIX),
        nbf=draw(UNIX),
        aud=draw(TEXT),
        subs=draw(LIMIT),
        data=draw(LIMIT),
        payload=draw(LIMIT),
        bearer_token=draw(st.booleans()),
        proxy_required=draw(st.booleans()),
        tags=draw(st.lists(TEXT, max_size=3)),
        issuer_account=draw(st.sampled_from(["", ACCOUNT2.public_key])),
        allowed_connection_types=draw(
            st.lists(st.sampled_from(["STANDARD", "WEBSOCKET", "MQTT"]), max_size=3)
        ),
        src=draw(
            st.lists(st.sampled_from(["10.0.0.0/8", "192.168.1.0/24", "::1/128"]), max_size=2, unique=True)
        ),
        times_location=draw(st.sampled_from(["", "UTC", "Europe/Berlin"])),
    )
    c.pub = jwt.Permission(
        allow=draw(st.lists(PATTERN, max_size=3)), deny=draw(st.lists(PATTERN, max_size=3))
    )
    c.sub_perms = jwt.Permission(
        allow=draw(st.lists(QUEUE_SUB, max_size=3)), deny=draw(st.lists(PATTERN, max_size=3))
    )
    if draw(st.booleans()):
        c.resp = jwt.ResponsePermission(max=draw(LIMIT), ttl=draw(INT64))
    c.times = draw(st.lists(st.builds(jwt.TimeRange, st.just("08:00:00"), st.just("17:00:00")), max_size=2))
    return c


@st.composite
def account_claims(draw: st.DrawFn) -> jwt.AccountClaims:
    c = jwt.AccountClaims(sub=ACCOUNT.public_key, name=draw(TEXT), exp=draw(UNIX), description=draw(TEXT))
    lim = c.limits
    for attr in (
        "subs",
        "data",
        "payload",
        "imports",
        "exports",
        "conn",
        "leaf",
        "mem_storage",
        "disk_storage",
        "streams",
        "consumer",
        "max_ack_pending",
    ):
        setattr(lim, attr, draw(LIMIT))
    lim.wildcards = draw(st.booleans())
    lim.disallow_bearer = draw(st.booleans())
    if draw(st.booleans()):
        lim.tiered_limits = {
            "R1": jwt.JetStreamLimits(mem_storage=draw(LIMIT), disk_storage=draw(LIMIT), streams=draw(LIMIT))
        }
    c.exports = [
        jwt.Export(
            subject=s,
            type=draw(st.sampled_from(["stream", "service"])),
            name=draw(TEXT),
            token_req=draw(st.booleans()),
        )
        for s in draw(st.lists(PATTERN, max_size=4, unique=True))
    ]
    c.imports = [
        jwt.Import(subject=s, account=ACCOUNT2.public_key, type="stream", local_subject="")
        for s in draw(st.lists(PATTERN, max_size=3, unique=True))
    ]
    c.revocations = draw(st.dictionaries(st.sampled_from([USER.public_key, USER2.public_key, "*"]), UNIX))
    for key in draw(
        st.lists(st.sampled_from([ACCOUNT2.public_key, USER.public_key.replace("U", "A", 1)]), max_size=1)
    ):
        if nkeys.is_valid_public_key(key, PrefixByte.ACCOUNT):
            c.add_signing_key(key, draw(st.one_of(st.none(), st.builds(jwt.UserScope, role=TEXT))))
    c.default_permissions.pub.allow = draw(st.lists(PATTERN, max_size=2))
    c.tags = draw(st.lists(TEXT, max_size=2))
    return c


@PROPS
@given(claims=user_claims(), iat=st.integers(min_value=1, max_value=2**40))
def test_user_claims_encode_decode_round_trip(claims: jwt.UserClaims, iat: int) -> None:
    token = claims.encode(ACCOUNT, iat=iat)
    back = jwt.decode(token, jwt.UserClaims)
    assert back == claims
    assert back.payload_bytes() == claims.payload_bytes()
    assert back.token == token


@PROPS
@given(claims=account_claims(), iat=st.integers(min_value=1, max_value=2**40))
def test_account_claims_encode_decode_round_trip(claims: jwt.AccountClaims, iat: int) -> None:
    token = claims.encode(OPERATOR, iat=iat)
    back = jwt.decode(token, jwt.AccountClaims)
    assert back == claims
    assert back.payload_bytes() == claims.payload_bytes()
    subjects_out = [e["subject"] for e in json.loads(back.payload_bytes())["nats"].get("exports", [])]
    assert subjects_out == sorted(subjects_out, key=str.encode)


# --- decoder fuzzing ------------------------------------------------------------------------------

VALID_TOKEN = forge(user_payload(), ACCOUNT)
SEGMENT = st.one_of(st.text(max_size=40), st.text(alphabet=B64URL_ALPHABET, max_size=120))
# JSON can carry what Python strings can but UTF-8 cannot: lone surrogates ("\ud800" escapes)
ODD_TEXT = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["\ud800", "a.\udc00", "\u2028", "<>&", "a b", "", "*", ">", "a..b", "UTC"]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)


SIGNERS = {k.kind: k for k in (OPERATOR, ACCOUNT, SERVER)}


def use_fails_closed(claims: jwt.Claims) -> None:
    """What callers do with decoded claims (show, validate, re-sign) raises only TrustkitError."""
    signer = next((SIGNERS[k] for k in claims.ISSUER_KINDS if k in SIGNERS), OPERATOR)
    for action in (
        claims.payload_bytes,
        lambda: claims.validate(now=1_700_000_000),
        lambda: claims.encode(signer, iat=1),
    ):
        try:
            action()
        except TrustkitError:
            pass


def decode_fails_closed(token: Any) -> None:
    """decode either returns claims or raises a TrustkitError — nothing else escapes."""
    for reader in (jwt.decode, jwt.peek_unverified):
        try:
            claims = reader(token)
        except TrustkitError:
            continue
        use_fails_closed(claims)


@PROPS
@given(parts=st.lists(SEGMENT, min_size=3, max_size=3))
def test_fuzz_random_dotted_strings(parts: list[str]) -> None:
    token = ".".join(parts)
    try:
        jwt.decode(token)
    except TokenError:
        return
    raise AssertionError(f"random token accepted: {token!r}")  # pragma: no cover


@PROPS
@given(token=st.one_of(st.text(max_size=200), st.binary(max_size=200), st.none(), st.integers()))
def test_fuzz_random_strings_and_bytes(token: Any) -> None:
    decode_fails_closed(token)


@PROPS
@given(
    pos=st.integers(min_value=0, max_value=len(VALID_TOKEN) - 1),
    repl=st.one_of(st.sampled_from(B64URL_ALPHABET + ".=+/ "), st.characters()),
    how=st.sampled_from(["replace", "insert", "delete"]),
)
def test_fuzz_mutated_valid_token_is_rejected(pos: int, repl: str, how: str) -> None:
    if how == "replace":
        assume(VALID_TOKEN[pos] != repl)
        mutated = VALID_TOKEN[:pos] + repl + VALID_TOKEN[pos + 1 :]
    elif how == "insert":
        mutated = VALID_TOKEN[:pos] + repl + VALID_TOKEN[pos:]
    else:
        mutated = VALID_TOKEN[:pos] + VALID_TOKEN[pos + 1 :]
    try:
        jwt.decode(mutated)
    except TokenError:
        return
    raise AssertionError(f"mutated token accepted: {how} {repl!r} at {pos}")  # pragma: no cover


@PROPS
@given(header=JSON_VALUES, payload=JSON_VALUES)
def test_fuzz_random_json_segments(header: Any, payload: Any) -> None:
    h = b64url_encode(json.dumps(header).encode())
    p = b64url_encode(json.dumps(payload).encode())
    decode_fails_closed(f"{h}.{p}.{b64url_encode(bytes(64))}")
    decode_fails_closed(f"{HEADER_B64}.{p}.{b64url_encode(bytes(64))}")


@PROPS
@given(
    iss=st.one_of(st.sampled_from([ACCOUNT.public_key, OPERATOR.public_key, USER.public_key]), JSON_VALUES),
    ctype=st.one_of(
        st.sampled_from(
            [
                "user",
                "account",
                "operator",
                "activation",
                "authorization_request",
                "authorization_response",
                "generic",
            ]
        ),
        JSON_VALUES,
    ),
    version=st.one_of(st.sampled_from([2, 1, 3, 0]), st.floats(), JSON_VALUES),
    nats_extra=st.dictionaries(
        st.sampled_from(
            [
                "pub",
                "sub",
                "subs",
                "limits",
                "signing_keys",
                "revocations",
                "exports",
                "imports",
                "src",
                "times",
                "resp",
                "tags",
                "mappings",
                "authorization",
                "trace",
                "data",
            ]
        ),
        JSON_VALUES,
        max_size=4,
    ),
    top_extra=st.dictionaries(
        st.sampled_from(["exp", "nbf", "iat", "name", "sub", "aud", "jti", "type"]), JSON_VALUES, max_size=3
    ),
)
def test_fuzz_signed_structured_payloads(
    iss: Any, ctype: Any, version: Any, nats_extra: dict, top_extra: dict
) -> None:
    """Properly signed payloads with hostile field values: decode returns claims or a TrustkitError."""
    nats = {**nats_extra, "type": ctype, "version": version}
    payload = {**top_extra, "iss": iss, "nats": nats}
    token = forge(json.dumps(payload).encode(), ACCOUNT)
    decode_fails_closed(token)


# --- subject matcher consistency ----------------------------------------------------------------


@PROPS
@given(pattern=PATTERN, subj=LITERAL)
def test_subset_agrees_with_match_for_literals(pattern: str, subj: str) -> None:
    assert subjects.matches(subj, subj)
    assert subjects.is_subset(subj, subj)
    assert subjects.is_subset(subj, pattern) == subjects.matches(pattern, subj)
    assert subjects.matches(">", subj)


@PROPS
@given(a=PATTERN, b=PATTERN, subj=LITERAL)
def test_subset_implies_match(a: str, b: str, subj: str) -> None:
    if subjects.is_subset(a, b) and subjects.matches(a, subj):
        assert subjects.matches(b, subj)
