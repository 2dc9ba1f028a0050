"""Chunked snapshots: content-defined chunks in pack blobs, one index blob per snapshot.

The chunked format (docs/FORMAT.md, "Chunked snapshots") makes a snapshot cost what
changed: files are cut into content-defined chunks (``chunker.py``), each chunk is
identified by its digest (``ids.py``), compressed on its own and appended to a pack blob
(``packs.py``); one index blob (``index.py``, parsed strictly by ``index_parse.py``)
lists every entry and where its chunks live. ``writer.py`` builds a snapshot, re-reading
only files whose size, mtime, ctime or inode changed (``facts.py``) and storing only
chunks the previous snapshot lacks; ``reader.py`` fetches only the chunks a caller asks
for, by byte range, and verifies each one.

The provider (``sync/chunked_publish.py``) and the consumer (``sync/chunked_apply.py``)
use it for ``SYNC.ARCHIVE_FORMAT = "chunked"``, the default.
"""
