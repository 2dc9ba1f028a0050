"""The chunked format's fixed parameters (docs/FORMAT.md, "Chunked snapshots").

Changing a chunking parameter never breaks a reader (the index says where every chunk
is); it only costs deduplication against snapshots cut with the old values.
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

# --- chunking (restic's range: 512 KiB / 1 MiB / 8 MiB) --------------------------------
CHUNK_MIN_BYTES: Final = 256 * KIB
# pyfastcdc's cut-point skipping makes the mean chunk about avg + min, so 768 KiB gives
# ~1 MiB chunks (measured: 1.10 MiB mean over 256 MiB of random data).
CHUNK_AVG_PARAM: Final = 768 * KIB
CHUNK_MAX_BYTES: Final = 8 * MIB
# Files up to this size are read whole and cut in memory; bigger ones are streamed
# through a window of 2 x CHUNK_MAX_BYTES.
SMALL_FILE_BYTES: Final = 2 * CHUNK_MAX_BYTES

# --- packs -------------------------------------------------------------------------------
PACK_MAGIC: Final = b"CARPACK1"
PACK_TARGET_BYTES: Final = 16 * MIB
ZSTD_LEVEL: Final = 3
# A chunk whose 64 KiB probe compresses to more than 97 % is stored raw unprobed further.
PROBE_BYTES: Final = 64 * KIB
INCOMPRESSIBLE_RATIO: Final = 0.97

# --- index -------------------------------------------------------------------------------
INDEX_FORMAT: Final = "car-chunked-index"
INDEX_VERSION: Final = 1
CHUNK_HASH_SHA256: Final = "sha256"
# HMAC-SHA256 under the sync set's chunk-id key: the index of an encrypted snapshot.
CHUNK_HASH_HMAC_SHA256: Final = "hmac-sha256"
ENTRY_FILE: Final = "file"
ENTRY_DIR: Final = "dir"

# --- provider-local source facts -------------------------------------------------------------
FACTS_FORMAT: Final = "car-chunked-source-facts"
FACTS_VERSION: Final = 1
