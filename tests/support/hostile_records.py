"""Registry values that used to crash the record parser (issue 9, item 13).

Shared by the consumer tests on fakes and on real Redis.
"""

from __future__ import annotations

import json

GOOD_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _hostile(field: str, raw: str) -> str:
    record = {
        "cid": GOOD_CID,
        "version": 1_764_300_000,
        "timestamp": 1_764_300_000.5,
        "node_id": "provider-1",
        "metadata": {},
        "manifest": {
            "schema_version": 1,
            "archive_paths": ["/app/data/"],
            "archive_format": "tar.zst",
            "archive_size_bytes": 10,
        },
        field: "@@RAW@@",
    }
    return json.dumps(record).replace('"@@RAW@@"', raw)


HOSTILE = {
    "5000-digit-version": _hostile("version", "9" * 5000),
    "400-digit-timestamp": _hostile("timestamp", "9" * 400),
    "metadata-nested-100k": _hostile("metadata", "[" * 100_000 + "]" * 100_000),
}
