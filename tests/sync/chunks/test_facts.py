"""SourceFacts: saved and loaded for the index they describe; anything else is ignored."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import zstandard
from container_apps.sync.chunks.facts import FileFacts, SourceFacts

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
OTHER = "bafkreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"


def test_facts_round_trip_through_their_file(tmp_path: Path) -> None:
    facts = SourceFacts(CID, {"app/data/é": FileFacts(5, -1, 2**62, 12345)})
    facts.save(tmp_path / "facts")
    assert SourceFacts.load(tmp_path / "facts", index_cid=CID) == facts
    assert os.stat(tmp_path / "facts").st_mode & 0o777 == 0o600


def test_facts_of_another_index_are_ignored(tmp_path: Path) -> None:
    SourceFacts(CID, {}).save(tmp_path / "facts")
    assert SourceFacts.load(tmp_path / "facts", index_cid=OTHER) is None


def test_missing_facts_are_none(tmp_path: Path) -> None:
    assert SourceFacts.load(tmp_path / "nope", index_cid=CID) is None


@pytest.mark.parametrize(
    "blob",
    [
        b"garbage",
        zstandard.ZstdCompressor().compress(b"[1, 2]"),
        zstandard.ZstdCompressor().compress(b'{"format": "x", "version": 1}'),
        zstandard.ZstdCompressor().compress(
            b'{"format": "car-chunked-source-facts", "version": 1, "index_cid": "x",'
            b' "files": {"a": [1, 2]}}'
        ),
        zstandard.ZstdCompressor(write_content_size=False).compress(b"{}"),
    ],
)
def test_unreadable_facts_are_none_with_a_warning(
    tmp_path: Path, blob: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "facts").write_bytes(blob)
    with caplog.at_level(logging.WARNING):
        assert SourceFacts.load(tmp_path / "facts", index_cid=CID) is None
    assert "re-reading every file" in caplog.text
