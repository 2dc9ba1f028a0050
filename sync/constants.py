"""The whole volume-sync data-plane vocabulary in one place (README, "Development").

File names, the registry hkey, stage labels, schema version, state names and limits.
No code: ``cat sync/constants.py`` shows every name the app, the operator and another
runner can see.
"""

from __future__ import annotations

from typing import Final

from .. import layout as _layout

# --- system volume (docs/FORMAT.md "App-facing control files") -------------------------
# Facts about a volume, defined with the volumes (which never import sync/); named here
# too so the sync code reads every name it uses from one module.
SYSTEM_VOLUME_NAME: Final = _layout.SYSTEM_VOLUME_NAME
SYSTEM_VOLUME_MOUNT: Final = _layout.SYSTEM_VOLUME_MOUNT
SYSTEM_VOLUME_SIZE: Final = _layout.SYSTEM_VOLUME_SIZE
VOLUME_SYNC_SUBDIR: Final = _layout.VOLUME_SYNC_SUBDIR
VOLUME_SYNC_DIR: Final = _layout.VOLUME_SYNC_DIR
SYSTEM_ROOT_MODE: Final = _layout.SYSTEM_ROOT_MODE
VOLUME_SYNC_DIR_MODE: Final = _layout.VOLUME_SYNC_DIR_MODE

# --- env vars exported to the app (README, "Volumes") ---------------------------------
ENV_SYSTEM_VOLUME: Final = "R1_SYSTEM_VOLUME"
ENV_VOLUME_SYNC_DIR: Final = "R1_VOLUME_SYNC_DIR"
ENV_SYNC_REQUEST_FILE: Final = "R1_SYNC_REQUEST_FILE"
ENV_SYNC_TYPE: Final = "R1_SYNC_TYPE"
ENV_SYNC_KEY: Final = "R1_SYNC_KEY"

# --- control files (docs/FORMAT.md, "App-facing control files") -----------------------
REQUEST_FILE: Final = "request.json"
PROCESSING_FILE: Final = "request.json.processing"
INVALID_FILE: Final = "request.json.invalid"
UNSAFE_PREFIX: Final = "request.json.unsafe."
RESPONSE_FILE: Final = "response.json"
LAST_APPLY_FILE: Final = "last_apply.json"
CONTROL_FILE_MODE: Final = 0o644

# --- request limits (docs/FORMAT.md, "request.json") ------------------------------------
MAX_REQUEST_BYTES: Final = 64 * 1024
MAX_METADATA_BYTES: Final = 16 * 1024
MAX_ARCHIVE_PATHS: Final = 64
RAW_BODY_PREVIEW_CHARS: Final = 1024
# Bounds on any JSON value an app or a registry hands us, checked while parsing so the
# value can always be echoed back (no RecursionError, no 4300-digit int limit). A request
# the provider accepts must make a record every consumer accepts: records share them.
MAX_JSON_DEPTH: Final = 64
# Integers anywhere in a request's body or a record: at most this many digits.
MAX_JSON_INT_DIGITS: Final = 64
# Metadata nests at most this deep (the metadata object itself is level 1); checked on
# the provider's request and on every record, so whatever a provider publishes parses.
MAX_METADATA_DEPTH: Final = 32

# --- record limits (docs/FORMAT.md "Registry record") -----------------------------------
# Checked on the raw registry value before parsing. A record a provider publishes stays
# below: metadata <= 16 KiB and paths from a <= 64 KiB request, even escaped as \uXXXX.
MAX_RECORD_BYTES: Final = 256 * 1024
MAX_RECORD_DEPTH: Final = 64
MAX_RECORD_STRING_CHARS: Final = 256  # cid, node_id, archive_format, encryption
MAX_RECORD_PATH_CHARS: Final = 4096  # one manifest archive path (PATH_MAX)
MAX_RECORD_INT: Final = 2**63 - 1  # version, sizes, member count, schema_version
MAX_RECORD_TIMESTAMP: Final = 253_402_300_799.0  # 9999-12-31T23:59:59Z: formattable

# --- runtime modes (docs/FORMAT.md, "request.json") -------------------------------------
CAPTURE_OFFLINE: Final = "offline"
CAPTURE_ONLINE: Final = "online"
PROVIDER_CAPTURE_MODES: Final = (CAPTURE_OFFLINE, CAPTURE_ONLINE)
APPLY_OFFLINE_RESTART: Final = "offline_restart"
APPLY_ONLINE_NO_RESTART: Final = "online_no_restart"
APPLY_ONLINE_RESTART: Final = "online_restart"
CONSUMER_APPLY_MODES: Final = (APPLY_OFFLINE_RESTART, APPLY_ONLINE_NO_RESTART, APPLY_ONLINE_RESTART)
# SYNC.APPLY_MODE: keep what the snapshot lacks (overlay) or remove it (mirror, sync/mirror.py)
APPLY_MODE_OVERLAY: Final = "overlay"
APPLY_MODE_MIRROR: Final = "mirror"

# --- roles ---------------------------------------------------------------------------
ROLE_PROVIDER: Final = "provider"
ROLE_CONSUMER: Final = "consumer"

# --- stage labels (docs/FORMAT.md, "response.json and request.json.invalid") -----------
STAGE_VALIDATION: Final = "validation"
STAGE_RUNTIME_STOP: Final = "runtime_stop"
STAGE_ARCHIVE_BUILD: Final = "archive_build"
STAGE_R1FS_UPLOAD: Final = "r1fs_upload"
STAGE_CHAINSTORE_PUBLISH: Final = "chainstore_publish"
STAGE_R1FS_DOWNLOAD: Final = "r1fs_download"
STAGE_EXTRACT: Final = "extract"
STAGE_COMMIT: Final = "commit"

# --- registry and record wire format (docs/FORMAT.md, "Registry record") ----------------
CHAINSTORE_HKEY: Final = "CHAINSTORE_SYNC"
MANIFEST_SCHEMA_VERSION: Final = 1
ARCHIVE_FORMAT_ZST: Final = "tar.zst"
ARCHIVE_FORMAT_GZ: Final = "tar.gz"
ARCHIVE_FORMATS: Final = (ARCHIVE_FORMAT_ZST, ARCHIVE_FORMAT_GZ)  # the tar formats
# Content-defined chunks in pack blobs plus one index blob (docs/FORMAT.md "Chunked
# snapshots"); the record's cid is the index's.
ARCHIVE_FORMAT_CHUNKED: Final = "chunked"
SNAPSHOT_FORMATS: Final = (*ARCHIVE_FORMATS, ARCHIVE_FORMAT_CHUNKED)
DEFAULT_ARCHIVE_FORMAT: Final = ARCHIVE_FORMAT_CHUNKED  # SYNC.ARCHIVE_FORMAT when unset
# The record's ``encryption`` (README, "Encryption at rest"): tar.gz keeps the older
# runner's label (its consumers refuse any other; it means plaintext here), the other
# formats say "none" or name the sealed framing (sync/crypto/framing.py).
ENCRYPTION_DEFAULT: Final = "r1fs-default"
ENCRYPTION_NONE: Final = "none"
ENCRYPTION_SEALED: Final = "aes256gcm-stream-v1"
KNOWN_ENCRYPTIONS: Final = (ENCRYPTION_DEFAULT, ENCRYPTION_NONE, ENCRYPTION_SEALED)
DEFAULT_ZSTD_LEVEL: Final = 3
DEFAULT_GZIP_LEVEL: Final = 6

# --- SYNC config defaults and limits (README, "For operators") -------------------------
DEFAULT_POLL_INTERVAL: Final = 10.0
MIN_LEASE_SECONDS: Final = 60.0  # a provider's lease: max(this, 3 x POLL_INTERVAL)
MIN_POLL_INTERVAL: Final = 1.0
DEFAULT_HSYNC_POLL_INTERVAL: Final = 60.0
MIN_HSYNC_POLL_INTERVAL: Final = 10.0
HSYNC_FAILURE_RETRY_CAP: Final = 30.0
DEFAULT_PUBLISH_RETRY_SECONDS: Final = 60.0  # registry outage tolerated at the commit point
MAX_PUBLISH_RETRY_SECONDS: Final = 3600  # the app waits (in_progress) that long at most
GIB: Final = 1024**3
DEFAULT_MAX_ARCHIVE_BYTES: Final = 10 * GIB
UNPACKED_TO_ARCHIVE_RATIO: Final = 4
DEFAULT_MAX_MEMBERS: Final = 1_000_000
MAX_SYNC_KEY_CHARS: Final = 128
DEFAULT_KEEP_SNAPSHOTS: Final = 1  # provider: published snapshots kept in the store

# --- quarantine backoff (README, "Consumer") -------------------------------------------
QUARANTINE_BASE_SECONDS: Final = 60.0
QUARANTINE_CAP_SECONDS: Final = 3600.0
CRASH_RETRIES: Final = 3  # applies interrupted by a runner crash retried at once, then backoff

# --- history and state (docs/FORMAT.md, "Host-side layout") ----------------------------
HISTORY_DIR: Final = _layout.HISTORY_DIR
HISTORY_SENT: Final = _layout.HISTORY_SENT
HISTORY_RECEIVED: Final = _layout.HISTORY_RECEIVED
STATE_DIR: Final = _layout.STATE_DIR
CURRENT_APPLY_FILE: Final = "current_apply.json"
JOURNAL_FILE: Final = "journal.json"
PENDING_REPORT_FILE: Final = "pending_report.json"  # an apply's report, owed until written
HALT_FILE: Final = "halt.json"
QUARANTINE_FILE: Final = "quarantine.json"
UNRECORDED_CIDS_FILE: Final = "unrecorded_cids.json"  # provider: published, not in history
LEASE_FILE: Final = "lease.json"  # provider: the key's lease as last seen (car sync status)
STAGING_DIR: Final = "staging"  # consumer: chunks of a chunked snapshot, fetched before the stop
CHUNK_FACTS_FILE: Final = "chunk_source_facts.zst"  # provider: file facts of the last index
APPLIED_FILES_FILE: Final = "applied_files.zst"  # consumer: what the last chunked apply wrote
OUTPUT_DIR: Final = _layout.OUTPUT_DIR

APPLY_STATE_PREPARING: Final = "preparing"
APPLY_STATE_APPLYING: Final = "applying"
APPLY_STATE_APPLIED: Final = "applied"
APPLY_STATE_FAILED_PREFLIGHT: Final = "failed_preflight"
APPLY_STATE_FAILED_ROLLED_BACK: Final = "failed_rolled_back"
APPLY_STATE_UNCERTAIN: Final = "uncertain"
APPLY_STATES: Final = (
    APPLY_STATE_PREPARING,
    APPLY_STATE_APPLYING,
    APPLY_STATE_APPLIED,
    APPLY_STATE_FAILED_PREFLIGHT,
    APPLY_STATE_FAILED_ROLLED_BACK,
    APPLY_STATE_UNCERTAIN,
)
