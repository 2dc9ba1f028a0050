"""Peak RSS of a 1 GiB put and get through S3BlobStore: proof that transfers stream.

Starts ``weed mini`` on 127.0.0.1 (same helper and safety flags as the tests), writes a
1 GiB file of non-repeating blocks, then runs each operation in a fresh child process
that does nothing else, and reads the child's ``VmHWM`` (peak RSS) from /proc. The child
also reports its RSS just before the operation (Python + boto3 imported), so the table
shows what the transfer itself added. Everything is removed at the end.

    python bench/bench_s3_rss.py [--size-mib 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from container_apps.tests.support.servers import start_weed, stop_process

ACCESS, SECRET = "bench-access", "bench-secret-key"
MiB = 1024 * 1024

CHILD = r"""
import json, sys, time
from pathlib import Path
from container_apps.stores.s3 import S3BlobStore

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    raise KeyError(field)

op, url, arg, cache = sys.argv[1:5]
store = S3BlobStore.from_url(url, cache_dir=Path(cache))
before = status("VmRSS")
start = time.perf_counter()
result = store.put(Path(arg)) if op == "put" else str(store.get(arg))
seconds = time.perf_counter() - start
print(json.dumps({"result": result, "seconds": seconds, "before": before, "peak": status("VmHWM")}))
"""


def write_file(path: Path, size: int) -> None:
    """``size`` bytes of distinct 1 MiB blocks (a random block with a counter), 1 MiB at a time."""
    block = bytearray(os.urandom(MiB))
    with open(path, "wb") as out:
        for i in range(size // MiB):
            block[:8] = i.to_bytes(8, "big")
            out.write(block)


def run_child(
    op: str, url: str, arg: str, cache: Path, env: dict[str, str]
) -> dict[str, float | str]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, op, url, arg, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{op} child failed:\n{proc.stderr}")
    result: dict[str, float | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="car-bench-s3-"))
    server = start_weed(workdir / "weed", ACCESS, SECRET)
    try:
        endpoint = f"http://127.0.0.1:{server.ports['s3']}"
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        ).create_bucket(Bucket="bench")
        src = workdir / "blob.bin"
        write_file(src, size)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET)
        url = f"s3://bench/rss?endpoint_url={endpoint}"
        put = run_child("put", url, str(src), workdir / "cache", env)
        get = run_child("get", url, str(put["result"]), workdir / "cache", env)
        got = Path(str(get["result"]))
        if got.stat().st_size != size:
            raise RuntimeError("downloaded size differs")
        print(
            f"{'op':<4} {'MiB':>6} {'seconds':>8} {'MiB/s':>7} {'RSS before':>11} {'peak RSS':>9}"
        )
        for name, row in (("put", put), ("get", get)):
            secs = float(row["seconds"])
            print(
                f"{name:<4} {size / MiB:>6.0f} {secs:>8.1f} {size / MiB / secs:>7.0f} "
                f"{float(row['before']):>10.0f}M {float(row['peak']):>8.0f}M"
            )
        print(f"weed mini RSS at end: {_rss_mib(server.pid):.0f} MiB (GOMEMLIMIT=512MiB)")
    finally:
        stop_process(server)
        shutil.rmtree(workdir, ignore_errors=True)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()
