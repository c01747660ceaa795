"""The image store issue's figures, on a real 1 GiB disk image and its upgrade.

    .venv/bin/python -m tests.perf.bench_image_store [--avg-kib N --chunking cdc|fixed]
        [--profile DIR] [--cache /var/tmp/ironbark-bench]

Runs ``ironbark-image-store`` as its own process (gunicorn, SQLite catalog, local
backend, a temporary data dir under ``--workdir``; every ``IRONBARK_*`` variable
stripped and the few it needs set), on the images of ``tests.perf.disk_images``:

- ingest: ``ImageStoreClient.upload`` of v1 against ``cp`` of the same file to the
  store's own filesystem followed by ``sync`` (the store answers only once its
  chunks are durable, so the copy must be too); goal >= 0.5 of cp's throughput;
- extra bytes stored for v2 (``stored_bytes`` after minus before) as a share of
  v2's size; goal <= 5 % (a whole-file store stores 100 %);
- bytes a host that caches v1 fetches to boot v2 (``ImageCache.ensure``); goal <= 5 %;
- download: ``GET .../file`` streamed and counted against reading the raw file;
  goal >= 0.5;
- peak memory (VmHWM) of the store while ingesting v1; goal <= 150 MiB.

Page caches are dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``, root only)
before each timed read, so the store and its baseline both start cold; the output
says when that was not possible. The virtual disk's speed varies between runs, so
the cheap baselines (cp, raw read) run three times and their median is used.
Figures are informational: the exit status is 0 whatever they are. ``--profile
DIR`` also samples the store's worker with py-spy during the ingest and the
download (and this process during the host cache's fetches) and prints where the
time goes. Last, the CPU each step of an ingest costs alone on one core: the floor
under the ingest figure on this machine.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_store.client import ImageStoreClient
from instance_manager.image_cache import ImageCache
from ironbark.config import ImageStoreOptions
from message_bus.messages import ImageRef
from tests.perf import disk_images

MIB = 1 << 20
GIB = 1 << 30
TOKEN = "bench-image-store-token-0123456789"
REPO = Path(__file__).resolve().parents[2]
BASELINE_RUNS = 3
STORE_COMMAND = Path(sys.executable).with_name("ironbark-image-store")


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    shown: str
    goal: str
    meets: Callable[[float], bool]


class StoreProcess:
    """``ironbark-image-store`` in its own process group, configured only through env."""

    def __init__(self, data_dir: Path, chunking: str | None, avg_kib: int | None):
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("IRONBARK_")}
        env.update(IRONBARK_DATA_DIR=str(data_dir), IRONBARK_IMAGE_STORE_HOST="127.0.0.1",
                   IRONBARK_IMAGE_STORE_PORT=str(self.port), IRONBARK_IMAGE_STORE_TOKEN=TOKEN,
                   IRONBARK_LOGGING_LEVEL="WARNING")
        if chunking:
            env["IRONBARK_IMAGE_STORE_CHUNKING"] = chunking
        if avg_kib:
            env["IRONBARK_IMAGE_STORE_CHUNK_AVG_KIB"] = str(avg_kib)
        self.log = data_dir.parent / "store.log"
        data_dir.mkdir(parents=True)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([str(STORE_COMMAND)], env=env, cwd=REPO,
                                            stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, client: ImageStoreClient, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the image store exited:\n{self.log.read_text()[-3000:]}")
            try:
                return client.info()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()]
        if len(pids) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {pids}")
        return pids[0]

    def peak_memory(self) -> tuple[int, int]:
        """VmHWM (peak resident set) of the worker and of the master, in bytes."""
        return _vm_hwm(self.worker_pid()), _vm_hwm(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cpu_use(pid: int, what: str) -> Iterator[None]:
    """Print how many cores the store's worker and this process kept busy during the block."""
    start, ours, wall = cpu_seconds(pid), time.process_time(), time.perf_counter()
    yield
    wall = time.perf_counter() - wall
    worker, ours = cpu_seconds(pid) - start, time.process_time() - ours
    print(f"  {what}: store worker {worker:.2f} CPU-s ({worker / wall:.2f} cores), this "
          f"process (the client) {ours:.2f} CPU-s, over {wall:.2f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def drop_caches() -> bool:
    """Empty the page cache so the next read comes from the disk; False if not allowed."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def read_raw(path: Path) -> int:
    """What ``cat file > /dev/null`` does, in 1 MiB reads."""
    total = 0
    buf = bytearray(MIB)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total


def read_through_store(client: ImageStoreClient, image_id: str) -> int:
    total = 0
    with client.open_stream(image_id) as response:
        response.raise_for_status()
        for piece in response.iter_content(MIB):
            total += len(piece)
    return total


@contextmanager
def profiled(pid: int, out: Path | None, name: str) -> Iterator[None]:
    """Sample ``pid`` with py-spy while the block runs (when ``out`` is given)."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{name}.txt"
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                            "--pid", str(pid), "--rate", "200", "--format", "raw",
                            "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    print(f"\nprofile of the store's worker during {name} ({raw}):")
    print_profile(raw)


def print_profile(raw: Path, top: int = 12) -> None:
    """Self time per innermost frame, and time inside each image_store function."""
    own: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[_frame_name(frames[-1])] += n
        for frame in set(frames):
            if "image_store/" in frame or "instance_manager/" in frame:
                inside[_frame_name(frame)] += n
    if not total:
        print("  no samples")
        return
    print(f"  {total} samples; innermost frames (self time):")
    for frame, n in own.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")
    print("  image_store functions (time inside, children included):")
    for frame, n in inside.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})"


Steps = list[tuple[str, float]]


def cpu_budget(path: Path, chunking: str | None, avg_kib: int | None) -> tuple[Steps, Steps]:
    """CPU seconds of each step an ingest, and a download, must do: alone on one core,
    from the page cache.

    The floor under those figures on this machine: the steps can overlap on the
    cores, but their sum divided by the cores is as fast as it gets.
    """
    from image_store.chunking import DEFAULT_POLICY, ChunkingPolicy, cut_file
    from image_store.codec import address, decode, encode, is_zero

    policy = (ChunkingPolicy.from_options(chunking or DEFAULT_POLICY.kind,
                                          avg_kib or DEFAULT_POLICY.avg_size // 1024)
              if chunking or avg_kib else DEFAULT_POLICY)
    read_raw(path)  # into the page cache
    steps: list[tuple[str, float]] = []
    cpu = time.process_time
    start = cpu()
    pieces = [bytes(piece) for _, piece in cut_file(path, policy)]
    steps.append((f"cut ({policy.kind} avg {policy.avg_size // 1024} KiB) + copy", cpu() - start))
    start = cpu()
    data = [p for p in pieces if not is_zero(p)]
    steps.append(("zero check", cpu() - start))
    start = cpu()
    addresses = [address(p) for p in data]
    steps.append(("SHA-256 of each chunk (address)", cpu() - start))
    for name, algorithm in (("MD5", hashlib.md5), ("SHA-256", hashlib.sha256)):
        start = cpu()
        digest = algorithm()
        for piece in pieces:
            digest.update(piece)
        steps.append((f"{name} of the whole image", cpu() - start))
    start = cpu()
    distinct = dict(zip(addresses, data, strict=True))
    level = ImageStoreOptions().compression_level  # what the store runs with by default
    encoded = {a: encode(piece, level) for a, piece in distinct.items()}
    steps.append((f"zstd -{level} of {len(distinct):,} distinct chunks", cpu() - start))
    start = cpu()
    for a in addresses:
        decode(encoded[a], a)
    reads = [(f"decode (unzstd + SHA-256 check) of {len(addresses):,} chunks", cpu() - start)]
    return steps, reads


def image_ref(record: dict[str, Any]) -> ImageRef:
    return ImageRef(id=record["id"], name=record["name"], disk_format=record["disk_format"],
                    size=record["size"], sha256=record["sha256"])


def host_fetch(client: ImageStoreClient, directory: Path, base: dict[str, Any],
               new: dict[str, Any], workers: int) -> tuple[Any, Any]:
    """(report of the cold fetch of ``base``, report of ``new`` on the same host)."""
    with ImageCache(directory, client, limit_bytes=64 * GIB, fetch_workers=workers) as cache:
        first = cache.ensure_report(image_ref(base), "bench-base")
        second = cache.ensure_report(image_ref(new), "bench-new")
    return first, second


def run(args: argparse.Namespace, images: disk_images.DiskImages, tmp: Path) -> list[Figure]:
    size_v1 = images.v1.stat().st_size
    size_v2 = images.v2.stat().st_size
    store = StoreProcess(tmp / "store", args.chunking, args.avg_kib)
    client = ImageStoreClient(store.url, TOKEN, timeout=600)
    cold = True
    try:
        info = store.wait_ready(client)
        print(f"store: {store.url}, pid {store.process.pid} (worker {store.worker_pid()}), "
              f"data in {store.data_dir}; chunking {info['chunking']}, codec {info['codec']}, "
              f"backend {info['backend']}")
        hwm_start = store.peak_memory()

        # 1. Ingest: cp + sync to the store's own filesystem, then the upload; all cold.
        # The virtual disk's speed varies from run to run: the cheap baselines are run
        # BASELINE_RUNS times and their median taken.
        copy = tmp / "store" / "cp-baseline.img"
        cp_runs = []
        for _ in range(BASELINE_RUNS):
            cold &= drop_caches()
            cp_s, _ = timed(lambda: subprocess.run(["cp", "--reflink=never", str(images.v1),
                                                    str(copy)], check=True))
            sync_s, _ = timed(os.sync)
            copy.unlink()
            cp_runs.append((cp_s + sync_s, cp_s, sync_s))
        cp_total, cp_s, sync_s = sorted(cp_runs)[len(cp_runs) // 2]
        cold &= drop_caches()
        v1 = client.create(name="bench-v1", disk_format="raw")
        worker = store.worker_pid()
        with profiled(worker, args.profile, "ingest"), cpu_use(worker, "ingest"):
            up_s, v1 = timed(lambda: client.upload(v1["id"], images.v1))
        hwm_ingest = store.peak_memory()
        after_v1 = client.stats()
        print(f"cp: {cp_s:.2f} s + sync {sync_s:.2f} s (median of "
              f"{', '.join(f'{t:.2f}' for t, _, _ in cp_runs)} s); upload v1: {up_s:.2f} s "
              f"({size_v1 / MIB / up_s:.0f} MiB/s), {v1['chunk_count']:,} data chunks, "
              f"stored {after_v1['stored_bytes'] / MIB:.1f} MiB")

        # 2. Download: the raw file against GET .../file, both cold.
        raw_runs = []
        for _ in range(BASELINE_RUNS):
            cold &= drop_caches()
            raw_runs.append(timed(lambda: read_raw(images.v1)))
        raw_s, raw_n = sorted(raw_runs)[len(raw_runs) // 2]
        cold &= drop_caches()
        with profiled(worker, args.profile, "download"), cpu_use(worker, "download"):
            get_s, get_n = timed(lambda: read_through_store(client, v1["id"]))
        if get_n != raw_n:
            raise RuntimeError(f"download returned {get_n} bytes, expected {raw_n}")
        warm_s, _ = timed(lambda: read_through_store(client, v1["id"]))
        print(f"  GET file again, chunk files now in the page cache: {warm_s:.2f} s "
              f"({size_v1 / MIB / warm_s:.0f} MiB/s)")
        print(f"read raw: {raw_s:.2f} s (median of "
              f"{', '.join(f'{t:.2f}' for t, _ in raw_runs)} s); GET file: {get_s:.2f} s "
              f"({size_v1 / MIB / get_s:.0f} MiB/s)")

        hwm_download = store.peak_memory()

        # The 1 GiB round trip, untimed: checksums as recorded, bytes identical.
        source_md5, source_sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
        with images.v1.open("rb") as f:
            while block := f.read(8 * MIB):
                source_md5.update(block)
                source_sha.update(block)
        if (v1["checksum"], v1["sha256"]) != (source_md5.hexdigest(), source_sha.hexdigest()):
            raise RuntimeError(f"v1's recorded checksums {v1['checksum']}/{v1['sha256']} "
                               "are not the file's")
        back = store.data_dir.parent / "v1.back"
        client.download_to(v1["id"], back, source_sha.hexdigest())
        identical = filecmp.cmp(images.v1, back, shallow=False)
        back.unlink()
        if not identical:
            raise RuntimeError("v1 downloaded is not byte-identical to the file uploaded")
        print("round trip of v1: MD5 and SHA-256 recorded as the file's, download "
              "byte-identical")

        # 3-4. What v2 adds to the store, and what a host that caches v1 fetches to boot
        # it; v2 is then deleted (its own chunks freed) so v2 in place is measured
        # against v1 alone, the same way.
        v2 = client.create(name="bench-v2", disk_format="raw")
        up2_s, v2 = timed(lambda: client.upload(v2["id"], images.v2))
        extra_v2 = client.stats()["stored_bytes"] - after_v1["stored_bytes"]
        hwm_v2 = store.peak_memory()
        with profiled(os.getpid(), args.profile, "host-cache"), \
                cpu_use(worker, "host cache fetching v1 then v2"):
            v1_fetch, v2_fetch = host_fetch(client, tmp / "host-a", v1, v2,
                                            args.fetch_workers)
        client.delete(v2["id"])
        if client.stats()["stored_bytes"] != after_v1["stored_bytes"]:
            raise RuntimeError("deleting v2 did not give its chunks back")
        v2i = client.create(name="bench-v2-inplace", disk_format="raw")
        v2i = client.upload(v2i["id"], images.v2_inplace)
        extra_v2i = client.stats()["stored_bytes"] - after_v1["stored_bytes"]
        _, v2i_fetch = host_fetch(client, tmp / "host-b", v1, v2i, args.fetch_workers)
        print(f"upload v2: {up2_s:.2f} s ({size_v2 / MIB / up2_s:.0f} MiB/s); stored "
              f"+{extra_v2 / MIB:.1f} MiB (rebuilt), +{extra_v2i / MIB:.1f} MiB (in place)")
        print(f"host cache: cold v1 {v1_fetch.seconds:.2f} s "
              f"({size_v1 / MIB / v1_fetch.seconds:.0f} MiB/s, {v1_fetch.chunks_fetched:,} "
              f"chunks, {v1_fetch.bytes_fetched / MIB:.1f} MiB received); then v2 "
              f"{v2_fetch.seconds:.2f} s, {v2_fetch.chunks_fetched:,} of {v2_fetch.chunks:,} "
              f"chunks fetched; v2 in place {v2i_fetch.chunks_fetched:,} of "
              f"{v2i_fetch.chunks:,}")

        hwm_end = store.peak_memory()
    finally:
        client.close()
        store.stop()
    print(f"VmHWM worker/master: at start {hwm_start[0] / MIB:.0f}/{hwm_start[1] / MIB:.0f} "
          f"MiB, after ingest {hwm_ingest[0] / MIB:.0f}/{hwm_ingest[1] / MIB:.0f} MiB, "
          f"after the downloads {hwm_download[0] / MIB:.0f}/{hwm_download[1] / MIB:.0f} MiB, "
          f"after v2's upload {hwm_v2[0] / MIB:.0f}/{hwm_v2[1] / MIB:.0f} MiB, "
          f"at the end (host caches' chunk fetches) {hwm_end[0] / MIB:.0f}/"
          f"{hwm_end[1] / MIB:.0f} MiB")
    if not cold:
        print("WARNING: could not drop page caches (not root?): the timings are warm")
    ingest = cp_total / up_s
    return [
        Figure("ingest throughput vs cp + sync", ingest, f"{ingest:.2f}x", ">= 0.5x",
               lambda v: v >= 0.5),
        Figure("  (vs cp alone, not durable)", cp_s / up_s, f"{cp_s / up_s:.2f}x", "-",
               lambda v: True),
        Figure("extra stored for v2 rebuilt", extra_v2 / size_v2,
               f"{extra_v2 / size_v2:.2%} ({extra_v2 / MIB:.1f} MiB)", "<= 5% (whole-file: 100%)",
               lambda v: v <= 0.05),
        Figure("extra stored for v2 in place", extra_v2i / size_v2,
               f"{extra_v2i / size_v2:.2%} ({extra_v2i / MIB:.1f} MiB)", "<= 5%",
               lambda v: v <= 0.05),
        Figure("fetched to boot v2 rebuilt", v2_fetch.bytes_fetched / size_v2,
               f"{v2_fetch.bytes_fetched / size_v2:.2%} ({v2_fetch.bytes_fetched / MIB:.1f} MiB)",
               "<= 5%", lambda v: v <= 0.05),
        Figure("fetched to boot v2 in place", v2i_fetch.bytes_fetched / size_v2,
               f"{v2i_fetch.bytes_fetched / size_v2:.2%} "
               f"({v2i_fetch.bytes_fetched / MIB:.1f} MiB)", "<= 5%", lambda v: v <= 0.05),
        Figure("download throughput vs raw read", raw_s / get_s, f"{raw_s / get_s:.2f}x",
               ">= 0.5x", lambda v: v >= 0.5),
        Figure("peak memory ingesting v1 (worker)", hwm_ingest[0] / MIB,
               f"{hwm_ingest[0] / MIB:.0f} MiB", "<= 150 MiB", lambda v: v <= 150),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=disk_images.DEFAULT_CACHE)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"),
                        help="where the store's temporary data dir goes")
    parser.add_argument("--chunking", choices=("cdc", "fixed"),
                        help="image_store.chunking (default: the store's)")
    parser.add_argument("--avg-kib", type=int, help="image_store.chunk_avg_kib")
    parser.add_argument("--fetch-workers", type=int, default=4)
    parser.add_argument("--profile", type=Path, help="py-spy the store into this directory")
    args = parser.parse_args()
    images = disk_images.build(args.cache)
    print(f"images: {images.directory} (v1, v2 rebuilt, v2 in place; "
          f"{images.summary.file_fraction:.1%} of files changed)")
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="ironbark-bench-store-") as tmp:
        try:
            figures = run(args, images, Path(tmp))
        except Exception:
            log = Path(tmp) / "store.log"
            if log.exists():
                print(f"--- the store's log (last lines) ---\n{log.read_text()[-6000:]}")
            raise
    ingest, download = cpu_budget(images.v1, args.chunking, args.avg_kib)
    for what, steps in (("an ingest", ingest), ("a download", download)):
        total = sum(seconds for _, seconds in steps)
        print(f"\nCPU {what} of v1 needs at least (one core, from the page cache; "
              f"{os.cpu_count()} cores here):")
        for name, seconds in steps:
            print(f"  {seconds:6.2f} s  {name}")
        print(f"  {total:6.2f} s  in all: >= {total / (os.cpu_count() or 1):.2f} s of wall "
              "time with every core busy")
    print(f"\n{'figure':<36} {'measured':>24}  {'goal':<26} verdict")
    for f in figures:
        verdict = "-" if f.goal == "-" else ("meets goal" if f.meets(f.value) else "MISSES goal")
        print(f"{f.name:<36} {f.shown:>24}  {f.goal:<26} {verdict}")
    print("(informational: the exit status does not depend on the figures)")


if __name__ == "__main__":
    main()
