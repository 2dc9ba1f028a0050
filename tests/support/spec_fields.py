"""Field lists that docs/FORMAT.md fixes, written once for every test that checks them."""

from __future__ import annotations

# sync_history/sent/*.json
SENT_HISTORY_FIELDS = frozenset(
    {
        "cid",
        "version",
        "published_timestamp",
        "request",
        "manifest",
        "archive_size_bytes",
        "chainstore_ack",
        "node_id",
        "durations",
        "downtime_seconds",
        "deletion",
    }
)
# sync_history/received/*.json
RECEIVED_HISTORY_FIELDS = frozenset(
    {
        "cid",
        "version",
        "source_timestamp",
        "applied_timestamp",
        "node_id",
        "metadata",
        "manifest",
        "extracted_paths",
        "durations",
        "downtime_seconds",
        "deletion",
    }
)
# /r1en_system/volume-sync/last_apply.json
LAST_APPLY_FIELDS = frozenset(
    {"cid", "version", "source_timestamp", "applied_timestamp", "node_id", "metadata"}
)
