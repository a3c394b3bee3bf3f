"""NATS nkeys: Ed25519 identity keys and X25519 curve keys ("xkeys") in NATS string form.

A key string is ``base32(prefix ‖ payload ‖ crc16_le)`` with RFC 4648 base32 and no padding; the
CRC is CRC-16/XMODEM over everything before it (mirrors Go ``nkeys`` strkey.go / crc16.go). Seeds
pack two prefix bytes so that the string reads ``S`` + kind letter (``SU…``, ``SA…``, ``SX…``).

Error messages mirror Go's ``nkeys:`` errors so operators can search for them. Keys never show
their seed in ``repr``; randomness is a parameter (``rand``), so this module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from enum import IntEnum

import nacl.bindings as _sodium
import nacl.exceptions
from nacl._sodium import ffi as _ffi  # pynacl's cffi binding of its bundled libsodium
from nacl._sodium import lib as _lib

from trustkit.errors import NKeyError, SealError, SignatureError

__all__ = [
    "XKEY_VERSION",
    "KeyPair",
    "PrefixByte",
    "SignatureChecks",
    "check_signed",
    "crc16",
    "decode",
    "decode_public",
    "decode_seed",
    "encode",
    "encode_seed",
    "is_valid_public_key",
    "prefix_of",
    "verify",
    "verify_raw",
]


class PrefixByte(IntEnum):
    """The first byte of a decoded key: a 5-bit type code shifted left by 3."""

    SEED = 18 << 3  # 144 'S'
    PRIVATE = 15 << 3  # 120 'P'
    SERVER = 13 << 3  # 104 'N'
    CLUSTER = 2 << 3  # 16  'C'
    OPERATOR = 14 << 3  # 112 'O'
    ACCOUNT = 0  # 0   'A'
    USER = 20 << 3  # 160 'U'
    CURVE = 23 << 3  # 184 'X'
    UNKNOWN = 25 << 3  # 200 'Z'

    @property
    def letter(self) -> str:
        return _LETTERS[self]

    @property
    def label(self) -> str:
        """Lower-case human name: ``user``, ``account``, ``curve``…"""
        return self.name.lower()


_LETTERS = {
    PrefixByte.SEED: "S",
    PrefixByte.PRIVATE: "P",
    PrefixByte.SERVER: "N",
    PrefixByte.CLUSTER: "C",
    PrefixByte.OPERATOR: "O",
    PrefixByte.ACCOUNT: "A",
    PrefixByte.USER: "U",
    PrefixByte.CURVE: "X",
    PrefixByte.UNKNOWN: "Z",
}

#: Kinds that may stand as the type of a public key or inside a seed.
PUBLIC_PREFIXES = frozenset(
    {
        PrefixByte.OPERATOR,
        PrefixByte.SERVER,
        PrefixByte.CLUSTER,
        PrefixByte.ACCOUNT,
        PrefixByte.USER,
        PrefixByte.CURVE,
    }
)
_PUBLIC_BY_VALUE = {int(p): p for p in PUBLIC_PREFIXES}

#: The only xkv1 version marker (Go ``XKeyVersionV1``).
XKEY_VERSION = b"xkv1"

# --- CRC-16/XMODEM ------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0, no reflection): ``crc16(b"123456789") == 0x31C3``.

    ``binascii.crc_hqx`` is this CRC (CCITT polynomial, given initial value) computed in C.
    """
    return binascii.crc_hqx(data, 0)


# --- base32 -------------------------------------------------------------------------------------

# Valid unpadded base32 lengths modulo 8 (1, 3 and 6 leave dangling characters).
_B32_OK_REM = frozenset({0, 2, 4, 5, 7})
_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# base32 characters → the digits of int(…, 32); every other ASCII character → "!", which int()
# refuses (so no sign, space, underscore or lower-case letter slips through as a digit)
_B32_DIGITS = str.maketrans(
    {chr(c): "!" for c in range(128)}
    | dict(zip(_B32_ALPHABET, "0123456789abcdefghijklmnopqrstuv", strict=True))
)


def _b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def _b32decode(text: str) -> bytes:
    """Strict unpadded RFC 4648 base32: upper-case alphabet only, canonical trailing bits.

    Decoded as one big integer: ``base64.b32decode`` is Python code and took ~15 µs per key, a
    cost every CONNECT paid for its fresh user key.
    """
    n = len(text)
    if not n or n % 8 not in _B32_OK_REM or not text.isascii():
        raise NKeyError("nkeys: invalid encoded key")
    try:
        value = int(text.translate(_B32_DIGITS), 32)
    except ValueError:
        raise NKeyError("nkeys: invalid encoded key") from None
    bits = 5 * n
    extra = bits % 8
    if value & ((1 << extra) - 1):  # non-zero trailing bits: a second spelling of the same bytes
        raise NKeyError("nkeys: invalid encoded key")
    return (value >> extra).to_bytes(bits // 8, "big")


def _to_str(key: str | bytes) -> str:
    # No trimming: a key is exactly its characters (Go does not trim either), so " U…" is not a
    # user key anywhere in trustkit. Readers of files (creds, keystore) strip lines themselves.
    if isinstance(key, bytes | bytearray | memoryview):
        try:
            return bytes(key).decode("ascii")
        except UnicodeDecodeError:
            raise NKeyError("nkeys: invalid encoded key") from None
    if not isinstance(key, str):
        raise NKeyError("nkeys: invalid encoded key")
    return key


def _decode_raw(text: str) -> bytes:
    """base32-decode and verify the trailing little-endian CRC; returns prefix(es) + payload."""
    raw = _b32decode(text)
    if len(raw) < 4:
        raise NKeyError("nkeys: invalid encoded key")
    body, crc = raw[:-2], raw[-2] | (raw[-1] << 8)
    if crc16(body) != crc:
        raise NKeyError("nkeys: invalid checksum")
    return body


# --- public encoding API --------------------------------------------------------------------------


def encode(prefix: PrefixByte, payload: bytes) -> str:
    """Encode ``payload`` under a single prefix byte (public keys, private keys)."""
    if prefix not in PUBLIC_PREFIXES and prefix is not PrefixByte.PRIVATE:
        raise NKeyError("nkeys: invalid prefix byte")
    body = bytes([prefix]) + payload
    crc = crc16(body)
    return _b32encode(body + bytes([crc & 0xFF, crc >> 8]))


def encode_seed(kind: PrefixByte, seed32: bytes) -> str:
    """Encode a 32-byte raw seed as an ``S<kind>…`` seed string."""
    if kind not in PUBLIC_PREFIXES:
        raise NKeyError("nkeys: invalid prefix byte")
    if len(seed32) != 32:
        raise NKeyError("nkeys: invalid seed length")
    b1 = PrefixByte.SEED | (kind >> 5)
    b2 = (kind & 0x1F) << 3
    body = bytes([b1, b2]) + seed32
    crc = crc16(body)
    return _b32encode(body + bytes([crc & 0xFF, crc >> 8]))


def decode(expected: PrefixByte, key: str | bytes) -> bytes:
    """Decode a single-prefix key string and return its payload (Go ``nkeys.Decode``)."""
    body = _decode_raw(_to_str(key))
    if body[0] & 0xF8 != expected:
        raise NKeyError("nkeys: invalid prefix byte")
    return body[1:]


def decode_seed(seed: str | bytes) -> tuple[PrefixByte, bytes]:
    """Decode an ``S…`` seed string into (key kind, 32 raw seed bytes)."""
    body = _decode_raw(_to_str(seed))
    if len(body) < 2 or body[0] & 0xF8 != PrefixByte.SEED:
        raise NKeyError("nkeys: invalid seed")
    kind_value = ((body[0] & 0x07) << 5) | ((body[1] & 0xF8) >> 3)
    kind = _PUBLIC_BY_VALUE.get(kind_value)
    if kind is None:
        raise NKeyError("nkeys: invalid prefix byte")
    payload = body[2:]
    if len(payload) != 32:
        raise NKeyError("nkeys: invalid seed length")
    return kind, payload


def _decode_public_uncached(key: str) -> tuple[PrefixByte, bytes]:
    body = _decode_raw(key)
    kind = _PUBLIC_BY_VALUE.get(body[0])
    if kind is None:
        raise NKeyError("nkeys: invalid prefix byte")
    if len(body) != 33:
        raise NKeyError("nkeys: invalid public key")
    return kind, body[1:]


#: decoded public keys (issuers repeat, and the broker decodes the same account keys per connect);
#: a plain dict is three times cheaper to probe than an lru_cache, and it is emptied when full
_PUBLIC_CACHE: dict[str, tuple[PrefixByte, bytes]] = {}
_PUBLIC_CACHE_MAX = 4096


def decode_public(key: str | bytes, expected: PrefixByte | None = None) -> tuple[PrefixByte, bytes]:
    """Decode a public key string into (kind, 32 raw bytes); optionally require a kind.

    Valid keys are cached; invalid ones are decoded (and refused) every time.
    """
    hit = _PUBLIC_CACHE.get(key) if key.__class__ is str else None
    if hit is None:
        text = _to_str(key)
        hit = _decode_public_uncached(text)
        if len(_PUBLIC_CACHE) >= _PUBLIC_CACHE_MAX:
            _PUBLIC_CACHE.clear()
        _PUBLIC_CACHE[text] = hit
    if expected is not None and hit[0] is not expected:
        raise NKeyError("nkeys: invalid prefix byte")
    return hit


def prefix_of(key: str | bytes) -> PrefixByte:
    """The kind of a public key or seed string; ``UNKNOWN`` when it is neither (Go ``Prefix``)."""
    text = _to_str(key)
    try:
        return decode_public(text)[0]
    except NKeyError:
        pass
    try:
        decode_seed(text)
        return PrefixByte.SEED
    except NKeyError:
        pass
    try:
        decode(PrefixByte.PRIVATE, text)
        return PrefixByte.PRIVATE
    except NKeyError:
        return PrefixByte.UNKNOWN


def is_valid_public_key(key: str | bytes, kind: PrefixByte | None = None) -> bool:
    """True if ``key`` is a well-formed public key (of ``kind`` when given)."""
    try:
        decode_public(key, kind)
    except NKeyError:
        return False
    return True


# --- key pairs ----------------------------------------------------------------------------------

RandomSource = Callable[[int], bytes]


class KeyPair:
    """An nkey: Ed25519 for O/A/U/N/C kinds, X25519 for curve (X) kinds.

    Build with :meth:`generate`, :meth:`from_seed` or :meth:`from_public_key` (verify/seal-to only).
    ``repr`` shows the kind and public key, never the seed.
    """

    __slots__ = ("_kind", "_pub_raw", "_public", "_secret", "_seed32")

    def __init__(self, kind: PrefixByte, pub_raw: bytes, seed32: bytes | None, secret: bytes | None) -> None:
        self._kind = kind
        self._pub_raw = pub_raw
        self._seed32 = seed32
        self._secret = secret  # ed25519: 64-byte libsodium secret key; curve: 32-byte scalar
        self._public = encode(kind, pub_raw)

    # construction ----------------------------------------------------------------------------
    @classmethod
    def generate(cls, kind: PrefixByte, *, rand: RandomSource = secrets.token_bytes) -> KeyPair:
        """A new key of ``kind`` from 32 bytes of ``rand`` (injectable for tests)."""
        if kind not in PUBLIC_PREFIXES:
            raise NKeyError("nkeys: invalid prefix byte")
        seed32 = bytes(rand(32))
        if len(seed32) != 32:
            raise NKeyError("nkeys: invalid seed length")
        return cls._from_raw_seed(kind, seed32)

    @classmethod
    def from_seed(cls, seed: str | bytes) -> KeyPair:
        """The key pair of an ``S…`` seed string (raises :class:`NKeyError`)."""
        kind, seed32 = decode_seed(seed)
        return cls._from_raw_seed(kind, seed32)

    @classmethod
    def from_public_key(cls, public: str | bytes) -> KeyPair:
        """A verify-only (or seal-to) key from a public key string."""
        kind, raw = decode_public(public)
        return cls(kind, raw, None, None)

    @classmethod
    def _from_raw_seed(cls, kind: PrefixByte, seed32: bytes) -> KeyPair:
        if kind is PrefixByte.CURVE:
            pub = _sodium.crypto_scalarmult_base(seed32)
            return cls(kind, pub, seed32, seed32)
        pub, sk = _sodium.crypto_sign_seed_keypair(seed32)
        return cls(kind, pub, seed32, sk)

    # properties ------------------------------------------------------------------------------
    @property
    def kind(self) -> PrefixByte:
        return self._kind

    @property
    def public_key(self) -> str:
        return self._public

    @property
    def public_key_bytes(self) -> bytes:
        return self._pub_raw

    @property
    def has_seed(self) -> bool:
        return self._seed32 is not None

    @property
    def seed(self) -> str:
        """The ``S…`` seed string: a secret; only write it where the user asked for it."""
        return encode_seed(self._kind, self._need_seed())

    @property
    def private_key(self) -> str:
        """The ``P…`` private key string (Go ``PrivateKey``): 64-byte Ed25519 key or curve scalar."""
        seed32 = self._need_seed()
        if self._kind is PrefixByte.CURVE:
            return encode(PrefixByte.PRIVATE, seed32)
        return encode(PrefixByte.PRIVATE, seed32 + self._pub_raw)

    def _need_seed(self) -> bytes:
        if self._seed32 is None:
            raise NKeyError("nkeys: no seed or private key available")
        return self._seed32

    def __repr__(self) -> str:
        return f"KeyPair({self._kind.label}, {self._public})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyPair):
            return NotImplemented
        return self._public == other._public and self._seed32 == other._seed32

    def __hash__(self) -> int:
        return hash(self._public)

    # signatures ------------------------------------------------------------------------------
    def sign(self, data: bytes) -> bytes:
        """64-byte Ed25519 signature over ``data``."""
        if self._kind is PrefixByte.CURVE:
            raise NKeyError("nkeys: curve key is not valid for sign/verify")
        if self._secret is None:
            raise NKeyError("nkeys: can not sign, no private key available")
        return bytes(_sodium.crypto_sign(data, self._secret)[:64])

    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise :class:`SignatureError` unless ``signature`` is this key's signature of ``data``."""
        if self._kind is PrefixByte.CURVE:
            raise NKeyError("nkeys: curve key is not valid for sign/verify")
        verify_raw(self._pub_raw, data, signature)

    # curve keys ------------------------------------------------------------------------------
    def seal(self, data: bytes, recipient: str, *, rand: RandomSource = secrets.token_bytes) -> bytes:
        """``xkv1`` ‖ nonce ‖ crypto_box(data) for ``recipient`` (Go/JS ``Seal``)."""
        if self._kind is not PrefixByte.CURVE:
            raise NKeyError("nkeys: only curve key can seal/open")
        if self._secret is None:
            raise NKeyError("nkeys: no seed or private key available")
        their = _curve_public(recipient)
        nonce = bytes(rand(24))
        if len(nonce) != 24:
            raise SealError("nkeys: invalid nonce")
        boxed = _sodium.crypto_box_easy(data, nonce, their, self._secret)
        return XKEY_VERSION + nonce + boxed

    def open(self, data: bytes, sender: str) -> bytes:
        """Open an ``xkv1`` box sealed by ``sender`` for this key (Go/JS ``Open``)."""
        if self._kind is not PrefixByte.CURVE:
            raise NKeyError("nkeys: only curve key can seal/open")
        if self._secret is None:
            raise NKeyError("nkeys: no seed or private key available")
        their = _curve_public(sender)
        if len(data) <= len(XKEY_VERSION) + 24:
            raise SealError("nkeys: encrypted input is not valid")
        if data[:4] != XKEY_VERSION:
            raise SealError("nkeys: encrypted input wrong version")
        nonce, boxed = data[4:28], data[28:]
        try:
            return bytes(_sodium.crypto_box_open_easy(boxed, nonce, their, self._secret))
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise SealError("nkeys: could not decrypt input") from None


def _curve_public(key: str) -> bytes:
    try:
        return decode_public(key, PrefixByte.CURVE)[1]
    except NKeyError:
        raise NKeyError("nkeys: not a valid curve public key") from None


_NULL = _ffi.NULL


def check_signed(public32: bytes, signed: bytes) -> bool:
    """True if ``signed`` is a 64-byte Ed25519 signature followed by the data it signs, by the raw
    32-byte key ``public32`` (libsodium's crypto_sign_open, called as nacl.bindings does but with
    no output buffer: the data is not copied out). The one Ed25519 check; it holds no GIL."""
    if public32.__class__ is not bytes or len(public32) != 32 or len(signed) < 64:
        return False
    return bool(_lib.crypto_sign_open(_NULL, _NULL, signed, len(signed), public32) == 0)


def verify_raw(public32: bytes, data: bytes, signature: bytes) -> None:
    """Ed25519 verify with a raw 32-byte key; raises :class:`SignatureError`."""
    if signature.__class__ is not bytes or len(signature) != 64:
        raise SignatureError("nkeys: signature verification failed")
    try:
        signed = signature + data
    except TypeError:
        raise SignatureError("nkeys: signature verification failed") from None
    if not check_signed(public32, signed):
        raise SignatureError("nkeys: signature verification failed")


class SignatureChecks:
    """Ed25519 checks recorded now and run later, all together: by :meth:`run` here, or anywhere
    else that runs :func:`check_signed` on each of :attr:`items` (trustkit-broker hands them to a
    worker process). Whatever the checks cover is not verified until every one has passed."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        #: (raw public key, signature + data), as :func:`check_signed` takes them
        self.items: list[tuple[bytes, bytes]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, public32: bytes, data: bytes, signature: bytes) -> None:
        """Record a check (a malformed signature is recorded too: it fails when run)."""
        if signature.__class__ is not bytes or len(signature) != 64:
            self.items.append((b"", b""))  # fails when run: check_signed needs a 32-byte key
            return
        self.items.append((public32, signature + bytes(data)))

    def run(self) -> list[bool]:
        return [check_signed(pk, signed) for pk, signed in self.items]


def verify(public_key: str, data: bytes, signature: bytes) -> None:
    """Verify ``signature`` over ``data`` by the Ed25519 key ``public_key`` (any non-curve kind)."""
    kind, raw = decode_public(public_key)
    if kind is PrefixByte.CURVE:
        raise NKeyError("nkeys: curve key is not valid for sign/verify")
    verify_raw(raw, data, signature)
