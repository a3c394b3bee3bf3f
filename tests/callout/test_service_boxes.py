"""callout.service._Boxes: xkv1 open/seal with the X25519 shared key computed once per peer.

It must be interchangeable with trustkit's KeyPair.open/seal (Go nkeys Open/Seal, which the
server uses): each side opens what the other sealed, every tampering is refused, and a bad peer
key is refused as KeyPair.open refuses it.
"""

from __future__ import annotations

import pytest

from callout.service import _Boxes
from trustkit.errors import NKeyError, SealError
from trustkit.nkeys import KeyPair, PrefixByte

SERVICE = KeyPair.generate(PrefixByte.CURVE)
SERVERS = [KeyPair.generate(PrefixByte.CURVE) for _ in range(3)]


@pytest.mark.parametrize("size", [0, 1, 100, 70_000])
def test_interchangeable_with_keypair_seal_and_open(size: int) -> None:
    boxes = _Boxes(SERVICE)
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    for server in SERVERS * 2:  # the second round uses the kept shared keys
        sealed_by_server = server.seal(data, SERVICE.public_key)
        assert boxes.open(sealed_by_server, server.public_key) == data
        sealed_by_us = boxes.seal(data, server.public_key)
        assert sealed_by_us[:4] == b"xkv1" and len(sealed_by_us) == len(sealed_by_server)
        assert server.open(sealed_by_us, SERVICE.public_key) == data


def test_tampering_wrong_peer_and_bad_input_are_refused() -> None:
    boxes = _Boxes(SERVICE)
    server, other = SERVERS[0], SERVERS[1]
    sealed = server.seal(b"secret request", SERVICE.public_key)
    for bad in (
        sealed[:-1] + bytes([sealed[-1] ^ 1]),  # ciphertext
        sealed[:10] + bytes([sealed[10] ^ 1]) + sealed[11:],  # nonce
        b"xkv2" + sealed[4:],  # version
        sealed[:28],  # nothing after the nonce
        b"",
    ):
        with pytest.raises(SealError):
            boxes.open(bad, server.public_key)
    with pytest.raises(SealError):
        boxes.open(sealed, other.public_key)  # sealed by someone else
    for key in ("", "not-a-key", server.public_key[:-1] + "A", KeyPair.generate(PrefixByte.USER).public_key):
        with pytest.raises(NKeyError):
            boxes.open(sealed, key)
        with pytest.raises(NKeyError):
            boxes.seal(b"x", key)


def test_the_kept_shared_keys_are_bounded() -> None:
    boxes = _Boxes(SERVICE, size=2)
    for server in SERVERS:
        assert boxes.open(server.seal(b"x", SERVICE.public_key), server.public_key) == b"x"
    assert len(boxes._shared) == 2 and SERVERS[0].public_key not in boxes._shared
    # an evicted peer is simply computed again
    assert boxes.open(SERVERS[0].seal(b"y", SERVICE.public_key), SERVERS[0].public_key) == b"y"
