"""nkeys: Go-produced vectors, strict base32/CRC decoding with Go's error texts, xkv1 boxes, secrecy."""

from __future__ import annotations

import base64

import pytest

from tests.unit.support import B32_ALPHABET, ONE_CREDS_SEED, ONE_CREDS_USER
from trustkit import nkeys
from trustkit.errors import NKeyError, SealError, SignatureError, TrustkitError
from trustkit.nkeys import XKEY_VERSION, KeyPair, PrefixByte

ED25519_KINDS = [
    PrefixByte.OPERATOR,
    PrefixByte.ACCOUNT,
    PrefixByte.USER,
    PrefixByte.SERVER,
    PrefixByte.CLUSTER,
]
ALL_KINDS = [*ED25519_KINDS, PrefixByte.CURVE]


def counting_rand(size: int) -> bytes:
    return bytes(range(size))


def raw_key_string(raw_without_crc: bytes) -> str:
    """Encode arbitrary prefix+payload bytes with a correct CRC (to build malformed-but-checksummed keys)."""
    crc = nkeys.crc16(raw_without_crc)
    return base64.b32encode(raw_without_crc + bytes([crc & 0xFF, crc >> 8])).decode().rstrip("=")


# --- known answers ------------------------------------------------------------------------------


def test_crc16_xmodem_check_value() -> None:
    assert nkeys.crc16(b"123456789") == 0x31C3
    assert nkeys.crc16(b"") == 0


@pytest.mark.parametrize(
    ("seed", "public", "kind"),
    [
        (ONE_CREDS_SEED, ONE_CREDS_USER, PrefixByte.USER),  # nats-server one.creds
        (
            "SUAOPJ35Z64IDGTSF5CPRXODVLKV4PXYOQ7SNUZMMNSNJVDPV3EF3PNZ2Y",
            "UA6KC6KBIPGNIC2N2FVJNQOWGHN3W2BHMKZIKBJUXEN5INIIZJFW25YF",
            PrefixByte.USER,
        ),
        (
            "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y",
            "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK",
            PrefixByte.USER,
        ),
        (
            "SXAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H74KM",
            "XCHUBRNNW2HSKYSK4WZBJ2TWPJXMSTMCTU6XWXQ22G5G6PRBHAUF76G7",
            PrefixByte.CURVE,
        ),
    ],
)
def test_seed_to_public_vectors(seed: str, public: str, kind: PrefixByte) -> None:
    kp = KeyPair.from_seed(seed)
    assert kp.kind is kind
    assert kp.public_key == public
    assert kp.seed == seed
    assert nkeys.prefix_of(seed) is PrefixByte.SEED
    assert nkeys.prefix_of(public) is kind
    assert KeyPair.from_public_key(public).public_key_bytes == kp.public_key_bytes


@pytest.mark.parametrize(
    ("kind", "seed", "public"),
    [
        (
            PrefixByte.USER,
            "SUAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H776Y",
            "UAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3RLKK",
        ),
        (
            PrefixByte.CURVE,
            "SXAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4H74KM",
            "XCHUBRNNW2HSKYSK4WZBJ2TWPJXMSTMCTU6XWXQ22G5G6PRBHAUF76G7",
        ),
    ],
)
def test_generate_with_injected_rand_matches_vectors(kind: PrefixByte, seed: str, public: str) -> None:
    kp = KeyPair.generate(kind, rand=counting_rand)  # raw seed = bytes 0x00..0x1F
    assert kp.seed == seed
    assert kp.public_key == public


def test_generate_with_injected_rand_is_deterministic() -> None:
    calls: list[int] = []

    def rand(n: int) -> bytes:
        calls.append(n)
        return b"\x42" * n

    a = KeyPair.generate(PrefixByte.ACCOUNT, rand=rand)
    b = KeyPair.generate(PrefixByte.ACCOUNT, rand=rand)
    assert calls == [32, 32]
    assert a == b
    assert a.seed == b.seed and a.public_key == b.public_key
    assert KeyPair.generate(PrefixByte.ACCOUNT, rand=lambda n: b"\x43" * n) != a


def test_generate_rejects_short_randomness_and_bad_kinds() -> None:
    with pytest.raises(NKeyError, match=r"^nkeys: invalid seed length$"):
        KeyPair.generate(PrefixByte.USER, rand=lambda n: b"\x00" * 31)
    for bad in (PrefixByte.SEED, PrefixByte.PRIVATE, PrefixByte.UNKNOWN):
        with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
            KeyPair.generate(bad)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.label)
def test_string_shapes_per_kind(kind: PrefixByte) -> None:
    kp = KeyPair.generate(kind, rand=counting_rand)
    assert kp.public_key[0] == kind.letter and len(kp.public_key) == 56
    assert kp.seed[:2] == "S" + kind.letter and len(kp.seed) == 58
    assert kp.private_key[0] == "P"
    assert len(kp.private_key) == (56 if kind is PrefixByte.CURVE else 108)
    assert nkeys.prefix_of(kp.private_key) is PrefixByte.PRIVATE
    assert nkeys.decode_seed(kp.seed) == (kind, bytes(range(32)))
    assert nkeys.decode_public(kp.public_key) == (kind, kp.public_key_bytes)
    assert nkeys.decode(kind, kp.public_key) == kp.public_key_bytes
    assert nkeys.is_valid_public_key(kp.public_key, kind)


def test_seed_prefix_bytes_match_reference_layout() -> None:
    # §1.3: user 0x95,0x00 ; account 0x90,0x00 ; operator 0x93,0x80 ; curve 0x95,0xC0
    expected = {
        PrefixByte.USER: (0x95, 0x00),
        PrefixByte.ACCOUNT: (0x90, 0x00),
        PrefixByte.OPERATOR: (0x93, 0x80),
        PrefixByte.CURVE: (0x95, 0xC0),
    }
    for kind, pair in expected.items():
        raw = base64.b32decode(nkeys.encode_seed(kind, b"\x00" * 32) + "======")
        assert (raw[0], raw[1]) == pair


# --- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ED25519_KINDS, ids=lambda k: k.label)
def test_sign_verify_round_trip(kind: PrefixByte) -> None:
    kp = KeyPair.generate(kind, rand=counting_rand)
    sig = kp.sign(b"hello")
    assert len(sig) == 64
    kp.verify(b"hello", sig)
    KeyPair.from_public_key(kp.public_key).verify(b"hello", sig)
    nkeys.verify(kp.public_key, b"hello", sig)
    with pytest.raises(SignatureError, match=r"^nkeys: signature verification failed$"):
        kp.verify(b"hellO", sig)
    with pytest.raises(SignatureError, match="signature verification failed"):
        kp.verify(b"hello", bytes(64))
    with pytest.raises(SignatureError, match="signature verification failed"):
        kp.verify(b"hello", sig[:63])
    other = KeyPair.generate(kind, rand=lambda n: b"\x07" * n)
    with pytest.raises(SignatureError):
        other.verify(b"hello", sig)


def test_public_only_key_cannot_sign_or_reveal_seed() -> None:
    pub = KeyPair.from_public_key(ONE_CREDS_USER)
    assert not pub.has_seed
    with pytest.raises(NKeyError, match="no private key"):
        pub.sign(b"x")
    with pytest.raises(NKeyError, match="no seed"):
        _ = pub.seed
    with pytest.raises(NKeyError, match="no seed"):
        _ = pub.private_key


def test_curve_key_cannot_sign_or_verify() -> None:
    x = KeyPair.generate(PrefixByte.CURVE, rand=counting_rand)
    with pytest.raises(NKeyError, match=r"^nkeys: curve key is not valid for sign/verify$"):
        x.sign(b"data")
    with pytest.raises(NKeyError, match=r"^nkeys: curve key is not valid for sign/verify$"):
        x.verify(b"data", bytes(64))
    with pytest.raises(NKeyError, match=r"^nkeys: curve key is not valid for sign/verify$"):
        nkeys.verify(x.public_key, b"data", bytes(64))


@pytest.mark.parametrize("kind", ED25519_KINDS, ids=lambda k: k.label)
def test_ed25519_key_cannot_seal_or_open(kind: PrefixByte) -> None:
    kp = KeyPair.generate(kind, rand=counting_rand)
    x = KeyPair.generate(PrefixByte.CURVE, rand=counting_rand)
    with pytest.raises(NKeyError, match=r"^nkeys: only curve key can seal/open$"):
        kp.seal(b"data", x.public_key)
    with pytest.raises(NKeyError, match=r"^nkeys: only curve key can seal/open$"):
        kp.open(XKEY_VERSION + bytes(60), x.public_key)


# --- decoding errors (messages mirror Go) -------------------------------------------------------


def test_invalid_checksum() -> None:
    i = 10
    repl = "A" if ONE_CREDS_USER[i] != "A" else "B"
    corrupted = ONE_CREDS_USER[:i] + repl + ONE_CREDS_USER[i + 1 :]
    with pytest.raises(NKeyError, match=r"^nkeys: invalid checksum$"):
        nkeys.decode_public(corrupted)
    seed_corrupted = ONE_CREDS_SEED[:i] + ("A" if ONE_CREDS_SEED[i] != "A" else "B") + ONE_CREDS_SEED[i + 1 :]
    with pytest.raises(NKeyError, match=r"^nkeys: invalid checksum$"):
        KeyPair.from_seed(seed_corrupted)


def test_invalid_prefix_byte() -> None:
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        nkeys.decode_public(ONE_CREDS_USER, PrefixByte.ACCOUNT)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        nkeys.decode(PrefixByte.ACCOUNT, ONE_CREDS_USER)
    # a seed or a private key is not a public key
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        KeyPair.from_public_key(ONE_CREDS_SEED)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        nkeys.decode_public(KeyPair.from_seed(ONE_CREDS_SEED).private_key)
    # an unknown type byte with a valid checksum
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        nkeys.decode_public(raw_key_string(bytes([PrefixByte.UNKNOWN]) + b"\x01" * 32))
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        nkeys.encode(PrefixByte.SEED, b"\x00" * 32)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        nkeys.encode_seed(PrefixByte.PRIVATE, b"\x00" * 32)
    # seed whose embedded type is not a public kind (type bits = 0xFF)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid prefix byte$"):
        KeyPair.from_seed(raw_key_string(bytes([0x97, 0xF8]) + b"\x02" * 32))


def test_invalid_seed() -> None:
    with pytest.raises(NKeyError, match=r"^nkeys: invalid seed$"):
        KeyPair.from_seed(ONE_CREDS_USER)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid seed$"):
        nkeys.decode_seed(KeyPair.from_seed(ONE_CREDS_SEED).private_key)


def test_invalid_seed_length() -> None:
    short = raw_key_string(bytes([0x95, 0x00]) + b"\x02" * 31)
    assert short.startswith("SU")
    with pytest.raises(NKeyError, match=r"^nkeys: invalid seed length$"):
        KeyPair.from_seed(short)
    long = raw_key_string(bytes([0x95, 0x00]) + b"\x02" * 33)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid seed length$"):
        KeyPair.from_seed(long)
    with pytest.raises(NKeyError, match=r"^nkeys: invalid seed length$"):
        nkeys.encode_seed(PrefixByte.USER, b"\x00" * 31)


@pytest.mark.parametrize(
    "bad",
    [
        ONE_CREDS_USER.lower(),
        ONE_CREDS_USER[:5] + ONE_CREDS_USER[5].lower() + ONE_CREDS_USER[6:],
        ONE_CREDS_USER + "=",
        ONE_CREDS_USER + "========",
        ONE_CREDS_USER[:10] + "!" + ONE_CREDS_USER[11:],
        ONE_CREDS_USER[:10] + "0" + ONE_CREDS_USER[11:],  # 0, 1, 8, 9 are not base32
        ONE_CREDS_USER[:10] + "8" + ONE_CREDS_USER[11:],
        ONE_CREDS_USER[:10] + " " + ONE_CREDS_USER[11:],
        ONE_CREDS_USER[:10] + "\n" + ONE_CREDS_USER[10:],
        ONE_CREDS_USER[:-1],  # 55 chars: a dangling partial byte
        ONE_CREDS_USER + "A",
        "",
        "AB",
        "UÄ" + ONE_CREDS_USER[2:],
    ],
    ids=[
        "lowercase",
        "one-lowercase",
        "padding",
        "full-padding",
        "bang",
        "digit-0",
        "digit-8",
        "inner-space",
        "inner-newline",
        "truncated",
        "extended",
        "empty",
        "too-short",
        "non-ascii",
    ],
)
def test_invalid_encoded_public_key(bad: str) -> None:
    with pytest.raises(NKeyError) as info:
        nkeys.decode_public(bad)
    # 56→55 chars and 56→57 chars may fail the CRC rather than the alphabet; all others are encoding errors
    assert info.value.message in {"nkeys: invalid encoded key", "nkeys: invalid checksum"}
    if bad != ONE_CREDS_USER + "A":
        assert info.value.message == "nkeys: invalid encoded key"
    assert not nkeys.is_valid_public_key(bad)


def test_non_canonical_trailing_bits_are_refused() -> None:
    # A seed is 36 bytes = 288 bits in 58 chars = 290 bits: the last char has 2 unused bits.
    v = B32_ALPHABET.index(ONE_CREDS_SEED[-1])
    assert v & 0b11 == 0
    for extra in (1, 2, 3):
        alias = ONE_CREDS_SEED[:-1] + B32_ALPHABET[v | extra]
        # same bytes, so the checksum alone would pass: only the canonical check refuses it
        assert base64.b32decode(alias + "======") == base64.b32decode(ONE_CREDS_SEED + "======")
        with pytest.raises(NKeyError, match=r"^nkeys: invalid encoded key$"):
            KeyPair.from_seed(alias)
    # a private key string: 67 bytes in 108 chars, 4 unused bits
    priv = KeyPair.from_seed(ONE_CREDS_SEED).private_key
    pv = B32_ALPHABET.index(priv[-1])
    assert pv & 0xF == 0
    with pytest.raises(NKeyError, match=r"^nkeys: invalid encoded key$"):
        nkeys.decode(PrefixByte.PRIVATE, priv[:-1] + B32_ALPHABET[pv | 1])


def test_public_key_payload_must_be_32_bytes() -> None:
    for n in (1, 31, 33, 64):
        text = nkeys.encode(PrefixByte.USER, b"\x01" * n)
        with pytest.raises(NKeyError, match=r"^nkeys: invalid public key$"):
            nkeys.decode_public(text)
        with pytest.raises(NKeyError, match=r"^nkeys: invalid public key$"):
            KeyPair.from_public_key(text)
        assert not nkeys.is_valid_public_key(text)


@pytest.mark.parametrize("bad", [None, 123, 1.5, ["U"], b"\xff\xfe"], ids=repr)
def test_non_string_input_is_an_nkey_error(bad: object) -> None:
    with pytest.raises(NKeyError):
        nkeys.decode_public(bad)  # type: ignore[arg-type]
    with pytest.raises(NKeyError):
        KeyPair.from_seed(bad)  # type: ignore[arg-type]


def test_bytes_input_is_accepted() -> None:
    assert KeyPair.from_seed(ONE_CREDS_SEED.encode()).public_key == ONE_CREDS_USER
    assert nkeys.decode_public(ONE_CREDS_USER.encode())[0] is PrefixByte.USER


def test_prefix_of_unknown() -> None:
    assert nkeys.prefix_of("not a key") is PrefixByte.UNKNOWN
    assert nkeys.prefix_of(ONE_CREDS_USER.lower()) is PrefixByte.UNKNOWN


def test_errors_never_echo_the_seed() -> None:
    bad = ONE_CREDS_SEED[:10] + ("A" if ONE_CREDS_SEED[10] != "A" else "B") + ONE_CREDS_SEED[11:]
    with pytest.raises(NKeyError) as info:
        KeyPair.from_seed(bad)
    assert ONE_CREDS_SEED[2:20] not in str(info.value)
    assert isinstance(info.value, TrustkitError) and info.value.code == "nkey_invalid"


# --- xkv1 boxes ---------------------------------------------------------------------------------

ALICE = KeyPair.generate(PrefixByte.CURVE, rand=lambda n: b"\x11" * n)
BOB = KeyPair.generate(PrefixByte.CURVE, rand=lambda n: b"\x22" * n)
EVE = KeyPair.generate(PrefixByte.CURVE, rand=lambda n: b"\x33" * n)


def sealed(msg: bytes = b"the request") -> bytes:
    return ALICE.seal(msg, BOB.public_key, rand=lambda n: b"\x05" * n)


def test_seal_open_round_trip_and_layout() -> None:
    box = sealed()
    assert box[:4] == b"xkv1"
    assert box[4:28] == b"\x05" * 24
    assert len(box) == 4 + 24 + 16 + len(b"the request")
    assert box == sealed()  # injected nonce → deterministic
    assert BOB.open(box, ALICE.public_key) == b"the request"
    assert (
        ALICE.seal(b"", BOB.public_key) and BOB.open(ALICE.seal(b"", BOB.public_key), ALICE.public_key) == b""
    )


def test_seal_uses_fresh_nonces_by_default() -> None:
    a = ALICE.seal(b"m", BOB.public_key)
    b = ALICE.seal(b"m", BOB.public_key)
    assert a != b and a[4:28] != b[4:28]


def test_open_too_short() -> None:
    for data in (b"", b"xkv1", XKEY_VERSION + bytes(24)):
        with pytest.raises(SealError, match=r"^nkeys: encrypted input is not valid$"):
            BOB.open(data, ALICE.public_key)


def test_open_wrong_version() -> None:
    box = sealed()
    with pytest.raises(SealError, match=r"^nkeys: encrypted input wrong version$"):
        BOB.open(b"xkv2" + box[4:], ALICE.public_key)
    with pytest.raises(SealError, match=r"^nkeys: encrypted input wrong version$"):
        BOB.open(b"XKV1" + box[4:], ALICE.public_key)


@pytest.mark.parametrize("where", [4, 27, 28, 43, 44, -1], ids=lambda w: f"byte{w}")
def test_open_tampered(where: int) -> None:
    box = bytearray(sealed())
    box[where] ^= 0x01
    with pytest.raises(SealError, match=r"^nkeys: could not decrypt input$"):
        BOB.open(bytes(box), ALICE.public_key)


def test_open_truncated_body_shorter_than_mac() -> None:
    box = sealed()
    with pytest.raises(SealError, match=r"^nkeys: could not decrypt input$"):
        BOB.open(box[:30], ALICE.public_key)


def test_open_wrong_sender_or_recipient() -> None:
    box = sealed()
    with pytest.raises(SealError, match=r"^nkeys: could not decrypt input$"):
        BOB.open(box, EVE.public_key)
    with pytest.raises(SealError, match=r"^nkeys: could not decrypt input$"):
        EVE.open(box, ALICE.public_key)


def test_seal_requires_curve_recipient_and_private_key() -> None:
    with pytest.raises(NKeyError, match="not a valid curve public key"):
        ALICE.seal(b"x", ONE_CREDS_USER)
    with pytest.raises(NKeyError, match="not a valid curve public key"):
        ALICE.open(sealed(), "garbage")
    public_only = KeyPair.from_public_key(ALICE.public_key)
    with pytest.raises(NKeyError, match="no seed or private key"):
        public_only.seal(b"x", BOB.public_key)
    with pytest.raises(NKeyError, match="no seed or private key"):
        public_only.open(sealed(), BOB.public_key)
    with pytest.raises(SealError, match="invalid nonce"):
        ALICE.seal(b"x", BOB.public_key, rand=lambda n: b"\x00" * 23)


# --- secrets stay secret ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.label)
@pytest.mark.parametrize("how", ["generated", "from_seed", "from_seed_bytes"])
def test_repr_never_shows_seed_or_private_key(kind: PrefixByte, how: str) -> None:
    generated = KeyPair.generate(kind)
    if how == "generated":
        kp = generated
    elif how == "from_seed":
        kp = KeyPair.from_seed(generated.seed)
    else:
        kp = KeyPair.from_seed(generated.seed.encode())
    seed, private = kp.seed, kp.private_key
    raw_seed = nkeys.decode_seed(seed)[1]
    for text in (repr(kp), str(kp), f"{kp}", f"{kp!r}", repr([kp]), repr({"k": kp})):
        assert kp.public_key in text
        assert seed not in text
        assert seed[2:] not in text and seed[10:40] not in text
        assert private not in text and private[10:40] not in text
        assert raw_seed.hex() not in text
        assert repr(raw_seed) not in text


def test_keypair_equality_and_hash() -> None:
    a = KeyPair.from_seed(ONE_CREDS_SEED)
    assert a == KeyPair.from_seed(ONE_CREDS_SEED)
    assert hash(a) == hash(KeyPair.from_public_key(ONE_CREDS_USER))
    assert a != KeyPair.from_public_key(ONE_CREDS_USER)  # one can sign, the other cannot
    assert a != "not a key"
