"""SnapshotIndex encoding: canonical, deterministic, and read back by the strict parser."""

from __future__ import annotations

import json

import zstandard
from container_apps.sync.chunks import constants as K
from container_apps.sync.chunks.index import (
    IndexEntry,
    SnapshotIndex,
    blob_cid,
    encode_index,
    index_document,
    known_chunks,
)
from container_apps.sync.chunks.index_parse import parse_index
from container_apps.tests.support.chunk_helpers import PACK_A, PACK_B, sample_index


def test_index_round_trips_through_the_strict_parser() -> None:
    index = sample_index()
    assert parse_index(encode_index(index)) == index


def test_encoding_is_canonical_json_in_one_zstd_frame() -> None:
    blob = encode_index(sample_index())
    text = zstandard.ZstdDecompressor().decompress(blob)
    doc = json.loads(text)
    assert (
        text == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert doc["format"] == "car-chunked-index" and doc["version"] == 1
    assert doc["packs"] == [PACK_A, PACK_B]
    assert doc["entries"][1]["chunks"] == [
        [0, 8, 100, 300, "a" * 64, True],
        [1, 8, 50, 50, "b" * 64, False],
    ]
    assert "size" not in doc["entries"][0] and "chunks" not in doc["entries"][0]


def test_same_index_gives_the_same_blob_and_cid() -> None:
    assert encode_index(sample_index()) == encode_index(sample_index())
    assert blob_cid(encode_index(sample_index())).startswith("bafkrei")


def test_known_chunks_maps_each_digest_to_a_stored_copy() -> None:
    known = known_chunks([sample_index()])
    assert set(known) == {"a" * 64, "b" * 64}
    assert known["b" * 64].pack == PACK_B


def test_index_document_lists_only_referenced_packs() -> None:
    index = SnapshotIndex(("x",), (IndexEntry("x", K.ENTRY_DIR, 0o755, 0),))
    assert index_document(index)["packs"] == []
    assert index.unpacked_bytes() == 0
    assert sample_index().unpacked_bytes() == 650
