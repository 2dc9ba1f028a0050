"""A hostile index is refused with a clear reason before it costs memory or writes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import zstandard
from container_apps.sync import constants as C
from container_apps.sync.chunks.index import encode_index, index_document
from container_apps.sync.chunks.index_parse import IndexInvalid, IndexLimits, parse_index
from container_apps.tests.support.chunk_helpers import PACK_A, sample_index

Doc = dict[str, Any]


def blob_of(doc: Any, *, text: str | None = None) -> bytes:
    raw = text if text is not None else json.dumps(doc)  # "\ud800" stays an escape
    return zstandard.ZstdCompressor(level=3).compress(raw.encode("utf-8", "surrogatepass"))


def refused(blob: bytes, limits: IndexLimits | None = None) -> str:
    with pytest.raises(IndexInvalid) as info:
        parse_index(blob, limits)
    assert info.value.stage == C.STAGE_EXTRACT
    return str(info.value)


def mutated(change: Callable[[Doc], None]) -> bytes:
    doc = copy.deepcopy(index_document(sample_index()))
    change(doc)
    return blob_of(doc)


def set_path(n: int, path: Any) -> Callable[[Doc], None]:
    return lambda d: d["entries"][n].__setitem__("path", path)


def set_field(n: int, key: str, value: Any) -> Callable[[Doc], None]:
    return lambda d: d["entries"][n].__setitem__(key, value)


def set_chunk(field: int, value: Any) -> Callable[[Doc], None]:
    return lambda d: d["entries"][1]["chunks"][0].__setitem__(field, value)


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("app/data/../etc", "'..'"),
        ("app/data/a\\..\\b", "'..'"),
        ("/app/data/x", "relative"),
        ("app/data/x/", "relative"),
        ("app/data//x", "empty or '.'"),
        ("app/data/./x", "empty or '.'"),
        ("", "non-empty string"),
        (5, "non-empty string"),
        (None, "non-empty string"),
        ("app/data/a\x00b", "NUL"),
        ("app/data/" + "x" * 5000, "longer than 4096"),
        ("app/data/" + "é" * 200, "longer than 255 bytes"),
        ("app/data/\ud800", "not valid UTF-8"),
        ("app/other/x", "outside the index's roots"),
        ("app/dataX", "outside the index's roots"),
    ],
)
def test_bad_paths_are_refused(path: Any, why: str) -> None:
    assert why in refused(mutated(set_path(2, path)))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (set_field(1, "mode", 0o10000), "mode 4096 is outside 0..4095"),
        (set_field(1, "mode", -1), "outside"),
        (set_field(1, "mode", True), "must be an integer, got bool"),
        (set_field(1, "mode", "420"), "must be an integer, got str"),
        (set_field(1, "mtime_ns", 2**63), "outside"),
        (set_field(1, "mtime_ns", -(2**63) - 1), "outside"),
        (set_field(1, "size", -1), "outside"),
        (set_field(1, "size", 2**60), "outside"),
        (set_field(1, "size", 351), "do not add up"),
        (set_field(0, "type", "symlink"), "is not 'file' or 'dir'"),
        (set_field(0, "type", ["dir"]), "is not 'file' or 'dir'"),
        (set_field(0, "size", 1), "'size' is unknown"),
        (set_field(1, "uid", 0), "'uid' is unknown"),
        (lambda d: d["entries"][1].pop("chunks"), "'chunks' is missing"),
        (lambda d: d["entries"].append(d["entries"][1]), "appears twice"),
        (
            lambda d: d["entries"].append(dict(d["entries"][0], path="app/data/f/x")),
            "below the file",
        ),
        (lambda d: d["entries"].__setitem__(0, 7), "not an object"),
        (set_chunk(0, 2), "pack 2 is outside 0..1"),
        (set_chunk(1, 3), "offset 3 is outside"),
        (set_chunk(1, 2**41), "offset"),
        (set_chunk(2, 0), "length 0 is outside"),
        (set_chunk(3, 9 * 1024 * 1024), "raw_length"),
        (set_chunk(4, "A" * 64), "64 lowercase hex"),
        (set_chunk(4, "a" * 63), "64 lowercase hex"),
        (set_chunk(5, 1), "true or false"),
        (lambda d: d["entries"][1]["chunks"][1].__setitem__(2, 49), "stored raw"),
        (lambda d: d["entries"][1]["chunks"][0].pop(), "must be [pack, offset"),
        (
            lambda d: d["entries"][2].__setitem__("chunks", [[0, 8, 1, 1, "c" * 64, False]]),
            "1 chunks for 0 bytes",
        ),
        (lambda d: d.__setitem__("format", "tar"), "format 'tar'"),
        (lambda d: d.__setitem__("version", 2), "version 2 is not supported"),
        (lambda d: d.__setitem__("version", True), "not supported"),
        (lambda d: d.__setitem__("chunk_hash", "md5"), "unknown chunk_hash 'md5'"),
        (lambda d: d.__setitem__("extra", 1), "unknown field 'extra'"),
        (lambda d: d.pop("roots"), "missing field 'roots'"),
        (lambda d: d.__setitem__("roots", []), "roots must be a list of 1..64"),
        (lambda d: d.__setitem__("roots", ["app/data", "app/data"]), "duplicates"),
        (lambda d: d.__setitem__("roots", ["../x"]), "root '../x'"),
        (lambda d: d.__setitem__("packs", [PACK_A, "../etc/passwd"]), "not a sha2-256 CID"),
        (lambda d: d.__setitem__("packs", [PACK_A, PACK_A]), "packs has duplicates"),
        (lambda d: d.__setitem__("entries", {}), "entries must be a list"),
    ],
)
def test_bad_fields_are_refused(change: Callable[[Doc], None], why: str) -> None:
    assert why in refused(mutated(change))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"version": NaN}', "NaN is not a valid number"),
        ('{"version": Infinity}', "Infinity is not a valid number"),
        ('{"version": -Infinity}', "is not a valid number"),
        ('{"version": 1.0}', "not an integer"),
        ('{"version": 1e400}', "not an integer"),
        ('{"version": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"version": 1, "version": 1}', "duplicate key 'version'"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("[1, 2]", "not a JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_json_is_refused(text: str, why: str) -> None:
    assert why in refused(blob_of(None, text=text))


def test_non_utf8_text_is_refused() -> None:
    blob = zstandard.ZstdCompressor().compress(b'{"format": "\xff"}')
    assert "not UTF-8" in refused(blob)


def test_not_zstd_is_refused() -> None:
    assert "not a zstd frame" in refused(b'{"format": "car-chunked-index"}')


def test_trailing_bytes_after_the_frame_are_refused() -> None:
    assert "cannot be decompressed" in refused(encode_index(sample_index()) + b"xx")


def test_blob_over_the_size_limit_is_refused_before_decompressing() -> None:
    blob = encode_index(sample_index())
    why = refused(blob, IndexLimits(max_index_bytes=len(blob) - 1))
    assert f"blob is {len(blob)} bytes" in why


def test_frame_announcing_too_much_text_is_refused_before_decompressing() -> None:
    bomb = zstandard.ZstdCompressor().compress(b" " * (300 * 1024 * 1024))
    assert len(bomb) < 100_000
    assert "expands to 314572800 bytes" in refused(bomb)


def test_frame_hiding_its_size_is_stopped_at_the_limit() -> None:
    hidden = zstandard.ZstdCompressor(write_content_size=False).compress(b" " * 5000)
    assert "cannot be decompressed within 4000" in refused(hidden, IndexLimits(max_json_bytes=4000))


def test_too_many_entries_are_refused() -> None:
    assert "has 5 entries, more than the 4 allowed" in refused(
        encode_index(sample_index()), IndexLimits(max_entries=4)
    )


def test_files_adding_up_past_the_byte_limit_are_refused() -> None:
    assert "more than the 600 bytes allowed" in refused(
        encode_index(sample_index()), IndexLimits(max_total_bytes=600)
    )


def test_limits_that_hold_accept_the_index() -> None:
    limits = IndexLimits(max_entries=5, max_total_bytes=650, max_roots=1)
    assert parse_index(encode_index(sample_index()), limits) == sample_index()
