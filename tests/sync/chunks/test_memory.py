"""Memory stays flat in file size: a 200 MiB file through write, upload and read.

Measured as the peak RSS growth of a child process (``ru_maxrss``), which counts what
zstd and the chunker allocate in C as well as Python objects; holding the file whole
anywhere would add 200 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from container_apps.tests.support.random_data import MiB, write_incompressible

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from container_apps.stores.local import FileBlobStore
    from container_apps.sync.chunks.reader import ChunkedSnapshotReader
    from container_apps.sync.chunks.staged import upload_staged
    from container_apps.sync.chunks.writer import ChunkedSnapshotWriter
    from container_apps.sync.paths import PathResolver
    from container_apps.volumes.binding import VolumeBinding

    work = Path(sys.argv[1])
    binding = VolumeBinding("data", "fixed", work / "vol", "/app/data")
    sources = [PathResolver([binding]).resolve_for_read("/app/data")]
    store = FileBlobStore.from_url(f"file://{work}/blobs", cache_dir=work / "cache")
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = peak()
    staged = ChunkedSnapshotWriter(work / "staging").write(sources)
    after_write = peak()
    upload_staged(staged, store)
    ChunkedSnapshotReader(store).extract(staged.index, work / "out")
    print(json.dumps({"base": base, "write": after_write - base, "all": peak() - base}))
    """
)


@pytest.mark.slow
def test_a_200_mib_file_is_written_and_read_in_bounded_memory(tmp_path: Path) -> None:
    (tmp_path / "vol").mkdir()
    src = write_incompressible(tmp_path / "vol" / "big.bin", 200 * MiB)
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, check=True
    )
    grew = json.loads(run.stdout)
    assert grew["write"] < 80 * MiB, grew
    assert grew["all"] < 80 * MiB, grew
    out = tmp_path / "out" / "app" / "data" / "big.bin"
    assert out.stat().st_size == src.stat().st_size
    assert out.read_bytes() == src.read_bytes()
