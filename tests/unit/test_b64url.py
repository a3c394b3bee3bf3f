"""trustkit.jwt.codec.b64url_decode (pybase64 underneath) against a plain stdlib reference."""

from __future__ import annotations

import base64
import binascii
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustkit.errors import MalformedTokenError
from trustkit.jwt.codec import b64url_decode, b64url_encode

_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*")


def reference(text: str) -> bytes | None:
    """The rule, spelt out slowly: url-safe alphabet only, no padding, a valid length, and the
    one canonical spelling (re-encoding gives the text back). None: refused."""
    if not _URL_SAFE.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == text else None


def ours(text: str) -> bytes | None:
    try:
        return b64url_decode(text)
    except MalformedTokenError:
        return None


@given(st.binary(max_size=200))
def test_round_trip(raw: bytes) -> None:
    assert b64url_decode(b64url_encode(raw)) == raw


# mostly the url-safe alphabet, with the characters a sloppy decoder would let through
_MIXED = st.text(
    alphabet=st.sampled_from(list("ABCDEFGHabcdefgh0189-_") + list("+/= \n\t.!\x00é\u00ff")),
    max_size=40,
)


@given(_MIXED)
def test_agrees_with_the_reference(text: str) -> None:
    assert ours(text) == reference(text)


@given(st.binary(min_size=1, max_size=64), st.sampled_from(list("+/= \n\x00é")), st.data())
def test_one_foreign_character_anywhere_is_refused(raw: bytes, junk: str, data: st.DataObject) -> None:
    text = b64url_encode(raw)
    at = data.draw(st.integers(0, len(text)))
    assert ours(text[:at] + junk + text[at:]) is None


@pytest.mark.parametrize("text", ["A", "AAAAA", "QQ=", "QQ==", "Q+==", "-_+/", "QUJD\n", " QUJD", "QUJD "])
def test_refused_examples(text: str) -> None:
    with pytest.raises(MalformedTokenError, match="base64url"):
        b64url_decode(text, "payload")


def test_non_canonical_trailing_bits() -> None:
    assert b64url_decode("QQ") == b"A"
    with pytest.raises(MalformedTokenError, match="canonical"):
        b64url_decode("QR")
