"""The sealed framing (sync/crypto/framing.py): round trips, and every kind of damage
refused with the right error."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from container_apps.sync.crypto.framing import (
    HEADER_BYTES,
    MAGIC,
    SEALED_SEGMENT_BYTES,
    SEGMENT_BYTES,
    SealedBlobInvalid,
    Sealer,
    sealed_size,
)
from container_apps.sync.crypto.keys import derive_keys

SEALER = Sealer(derive_keys(b"k" * 32))
OTHER = Sealer(derive_keys(b"o" * 32))
SIZES = [0, 1, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 3 * SEGMENT_BYTES + 17]


def _open_stream(sealer: Sealer, blob: bytes, what: str = "blob x") -> bytes:
    return sealer.opening_reader(io.BytesIO(blob), what).read()


@pytest.mark.parametrize("size", SIZES)
def test_bytes_and_files_round_trip_and_agree_on_the_framing(size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    sealed = SEALER.seal_bytes(data)
    assert len(sealed) == sealed_size(size)
    assert SEALER.open_bytes(sealed, "blob x") == data
    assert _open_stream(SEALER, sealed) == data
    (tmp_path / "plain").write_bytes(data)
    digest, stored = SEALER.seal_file(tmp_path / "plain", tmp_path / "sealed")
    from_file = (tmp_path / "sealed").read_bytes()
    assert stored == len(from_file) == sealed_size(size)
    assert digest == __import__("hashlib").sha256(from_file).hexdigest()
    assert SEALER.open_bytes(from_file, "blob x") == data


def test_same_plaintext_seals_differently_and_shows_no_plaintext() -> None:
    data = b"(\xb5/\xfd" + b"var/lib/app/secret.txt" * 100
    one, two = SEALER.seal_bytes(data), SEALER.seal_bytes(data)
    assert one != two
    assert b"secret.txt" not in one and b"(\xb5/\xfd" not in one[HEADER_BYTES:]


def _variants(sealed: bytes) -> dict[str, bytes]:
    body = sealed[HEADER_BYTES:]
    segs = [body[i : i + SEALED_SEGMENT_BYTES] for i in range(0, len(body), SEALED_SEGMENT_BYTES)]
    flipped = bytearray(sealed)
    flipped[HEADER_BYTES + 100] ^= 0x01
    header_flipped = bytearray(sealed)
    header_flipped[-1 - len(body)] ^= 0x01  # the nonce prefix
    return {
        "truncated at a segment boundary": sealed[: HEADER_BYTES + 2 * SEALED_SEGMENT_BYTES],
        "truncated inside a segment": sealed[:-5],
        "bit flip": bytes(flipped),
        "header bit flip": bytes(header_flipped),
        "segments reordered": sealed[:HEADER_BYTES] + segs[1] + segs[0] + b"".join(segs[2:]),
        "segment dropped": sealed[:HEADER_BYTES] + segs[0] + b"".join(segs[2:]),
        "data appended": sealed + segs[0],
    }


@pytest.mark.parametrize("damage", list(_variants(SEALER.seal_bytes(b"x" * 4 * SEGMENT_BYTES))))
def test_damage_is_refused_as_corrupt_not_as_a_wrong_key(damage: str) -> None:
    sealed = _variants(SEALER.seal_bytes(os.urandom(3 * SEGMENT_BYTES + 5)))[damage]
    for opener in (lambda b: SEALER.open_bytes(b, "blob x"), lambda b: _open_stream(SEALER, b)):
        with pytest.raises(SealedBlobInvalid) as caught:
            opener(sealed)
        assert caught.value.wrong_key is False
        assert "blob x is corrupt" in str(caught.value)


def test_a_wrong_key_is_one_clear_error() -> None:
    sealed = SEALER.seal_bytes(b"data" * 1000)
    for opener in (
        lambda b: OTHER.open_bytes(b, "index x"),
        lambda b: _open_stream(OTHER, b, "index x"),
    ):
        with pytest.raises(SealedBlobInvalid) as caught:
            opener(sealed)
        assert caught.value.wrong_key is True
        assert "cannot decrypt index x: wrong ENCRYPTION_KEY_FILE?" in str(caught.value)


def test_a_plaintext_blob_is_refused_as_not_sealed() -> None:
    with pytest.raises(SealedBlobInvalid, match="not a sealed blob"):
        SEALER.open_bytes(b"(\xb5/\xfd" + b"\0" * 100, "archive x")
    assert MAGIC == b"CARSEAL1"


def test_a_stream_is_read_one_segment_at_a_time() -> None:
    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            assert size is not None and 0 <= size <= SEALED_SEGMENT_BYTES
            return super().read(size)

    reader = SEALER.opening_reader(Counting(SEALER.seal_bytes(os.urandom(5 * SEGMENT_BYTES))), "x")
    assert len(reader.read(10)) == 10
    assert len(reader.read()) == 5 * SEGMENT_BYTES - 10
