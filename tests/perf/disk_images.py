"""Realistic test disk images for the image store benchmarks: an ext4 root and its upgrade.

    .venv/bin/python -m tests.perf.disk_images [--cache /var/tmp/ironbark-bench] [--force]

Synthetic data (random bytes, repeated patterns) says nothing about how a chunker
deduplicates real disks, so the images are built from this machine's installed
Debian packages: whole packages, chosen in a fixed pseudo-random order, until ~750
MiB of their files (binaries, shared libraries, text, docs) are copied into a
staging tree, which ``mkfs.ext4 -d`` packs into a 1 GiB raw image: file data,
filesystem metadata and free space (zeros), like a real root disk. No mounting,
no loop devices.

Version 2 is the tree after a simulated upgrade of a few of those packages,
touching ~1 % of the files (some rewritten with other content of similar size,
some patched in place, some grown or shrunk, a few added, a few deleted). It is
built two ways:

- ``v2``: rebuilt from scratch the same way, as an image pipeline publishes its
  next release (every later file may move, inode numbers shift);
- ``v2_inplace``: v1 with the upgrade applied in place through ``debugfs`` the way
  dpkg does it (write ``<name>.dpkg-new``, then replace the old name), as a
  snapshot of a VM that ran the upgrade looks (freed blocks keep their old bytes).

Both trees are also packed as tar archives (sorted, fixed metadata): a stream
where an insertion shifts every later byte, the case fixed-size chunking handles
worst, and what a qcow2 or tar-like image looks like.

Everything is deterministic for a given set of installed packages (fixed UUID and
hash seed, fixed times through ``E2FSPROGS_FAKE_TIME`` and ``debugfs``, sorted
order, seeded changes: two builds are byte-identical) and cached under the
directory given, keyed by the parameters; only the images, the tars and a summary
are kept. Needs ``e2fsprogs`` (``mkfs.ext4``, ``debugfs``, ``e2fsck``), which
Debian installs by default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from bisect import bisect_left
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_CACHE = Path("/var/tmp/ironbark-bench")
DPKG_INFO = Path("/var/lib/dpkg/info")
#: Bump when the way images are built changes, so stale caches are not reused.
FORMAT = 5
FS_UUID = "2b0f9c5e-6a1d-4e8b-9f3c-1d2e3f405162"
HASH_SEED = "7c1e2d3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
V1_TIME = 1_700_000_000  # 2023-11-14T22:13:20Z
V2_TIME = V1_TIME + 30 * 86400
MAX_FILE = 32 << 20      # no single huge file (a locale archive) dominates
MAX_PACKAGE = 48 << 20   # nor a single huge package (a JDK, an SDK)
# debugfs reads its commands with a shell-like parser: keep names it cannot misread.
SAFE_NAME = re.compile(r"^[A-Za-z0-9._+@:,=~%-]+$")
# How the changed files of an upgrade split between kinds of change.
CHANGE_WEIGHTS = {"rewritten": 30, "patched": 30, "grown": 15, "shrunk": 10,
                  "added": 10, "deleted": 5}
MIB = 1 << 20


@dataclass(frozen=True)
class ChangeSummary:
    """What the simulated upgrade did, to judge the chunkers' results against."""

    packages_v1: int
    packages_upgraded: int
    files_v1: int
    files_v2: int
    file_bytes_v1: int
    file_bytes_v2: int
    changed: dict[str, int]          # files per kind of change
    files_changed: int               # modified + added + deleted
    bytes_touched_v2: int            # bytes of v2 files that are new or modified

    @property
    def file_fraction(self) -> float:
        return self.files_changed / self.files_v1

    @property
    def byte_fraction(self) -> float:
        return self.bytes_touched_v2 / self.file_bytes_v2


@dataclass(frozen=True)
class DiskImages:
    """Paths of the cached artefacts (read-only by convention) and the change summary."""

    directory: Path
    v1: Path
    v2: Path
    v2_inplace: Path
    tar_v1: Path
    tar_v2: Path
    summary: ChangeSummary


@dataclass(frozen=True)
class Change:
    kind: str
    rel: str  # path inside the tree, no leading slash


def build(cache_dir: Path = DEFAULT_CACHE, *, data_mib: int = 750, image_mib: int = 1024,
          change_fraction: float = 0.01, seed: int = 1, force: bool = False) -> DiskImages:
    """Return both image versions and the tars, building them once per parameter set."""
    for tool in ("mkfs.ext4", "debugfs", "e2fsck"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: apt-get install e2fsprogs")
    key = f"f{FORMAT}-d{data_mib}-i{image_mib}-c{change_fraction:g}-s{seed}"
    out = Path(cache_dir) / key
    paths = (out / "v1.img", out / "v2.img", out / "v2-inplace.img",
             out / "v1.tar", out / "v2.tar")
    summary_file = out / "summary.json"
    if summary_file.exists() and not force:
        summary = ChangeSummary(**json.loads(summary_file.read_text()))
        return DiskImages(out, *paths, summary)
    out.mkdir(parents=True, exist_ok=True)
    summary_file.unlink(missing_ok=True)
    v1, v2, inplace, tar1, tar2 = paths
    with tempfile.TemporaryDirectory(dir=out, prefix="staging-") as tmp:
        tree1, tree2 = Path(tmp) / "v1", Path(tmp) / "v2"
        packages, pool = _choose_packages(data_mib * MIB)
        chosen = sorted(rel for files in packages.values() for rel in files)
        _copy_tree(chosen, tree1)
        shutil.copytree(tree1, tree2, symlinks=True)
        summary, changes = _upgrade(tree2, packages, pool, change_fraction, random.Random(seed))
        written = {tree2 / c.rel for c in changes if c.kind != "deleted"}
        written |= {p for c in changes for p in (tree2 / c.rel).parents}
        _settle_times(tree1, set())
        _settle_times(tree2, written)
        _make_image(tree1, v1, image_mib, V1_TIME)
        _make_image(tree2, v2, image_mib, V2_TIME)
        _upgrade_in_place(v1, inplace, tree1, tree2, changes)
        _make_tar(tree1, tar1)
        _make_tar(tree2, tar2)
    summary_file.write_text(json.dumps(asdict(summary), indent=1))
    return DiskImages(out, *paths, summary)


def _choose_packages(budget: int) -> tuple[dict[str, list[str]], list[str]]:
    """Whole installed packages (their files' tree paths) summing to about ``budget`` bytes.

    Packages are taken in the order of a hash of their name, so the choice does not
    follow the alphabet and stays the same between runs; the files of the packages
    left over are the pool the upgrade draws new content from.
    """
    names = subprocess.run(["dpkg-query", "-W", "-f", "${binary:Package}\n"], check=True,
                           capture_output=True, text=True).stdout.split()
    names.sort(key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    seen: set[str] = set()
    packages: dict[str, list[str]] = {}
    pool: list[str] = []
    total = 0
    for name in names:
        files, size = _package_files(name, seen)
        if not files:
            continue
        if total < budget and size <= MAX_PACKAGE:
            packages[name] = files
            total += size
        else:
            pool.extend(rel for rel in files if not os.path.islink("/" + rel))
    return packages, pool


def _package_files(name: str, seen: set[str]) -> tuple[list[str], int]:
    """A package's regular files and symlinks as canonical tree paths, and their bytes."""
    listing = DPKG_INFO / f"{name}.list"
    if not listing.exists():
        listing = DPKG_INFO / f"{name.split(':')[0]}.list"
    if not listing.exists():
        return [], 0
    files, size = [], 0
    for line in listing.read_text(errors="replace").splitlines():
        if not line.startswith("/") or line == "/.":
            continue
        parent, base = os.path.split(line)
        real = os.path.join(os.path.realpath(parent), base)  # /bin/ls -> /usr/bin/ls
        rel = real.lstrip("/")
        if rel in seen or not all(SAFE_NAME.match(part) for part in rel.split("/")):
            continue
        try:
            st = os.lstat(real)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= MAX_FILE:
            size += st.st_size
        elif not stat.S_ISLNK(st.st_mode):
            continue
        seen.add(rel)
        files.append(rel)
    return files, size


def _copy_tree(chosen: list[str], tree: Path) -> None:
    for rel in chosen:
        src, dst = Path("/") / rel, tree / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copyfile(src, dst)
            dst.chmod(stat.S_IMODE(src.stat().st_mode))


def _upgrade(tree: Path, packages: dict[str, list[str]], pool: list[str], fraction: float,
             rng: random.Random) -> tuple[ChangeSummary, list[Change]]:
    """Upgrade a few packages in ``tree``, changing ~``fraction`` of its regular files."""
    regular = {name: [rel for rel in files if not (tree / rel).is_symlink()]
               for name, files in packages.items()}
    files_v1 = sum(len(files) for files in regular.values())
    bytes_v1 = sum((tree / rel).stat().st_size for files in regular.values() for rel in files)
    count = max(len(CHANGE_WEIGHTS), round(files_v1 * fraction))
    kinds = rng.choices(list(CHANGE_WEIGHTS), weights=list(CHANGE_WEIGHTS.values()), k=count)
    # The files of a few packages, as an upgrade touches them: package by package.
    order = sorted(regular)
    rng.shuffle(order)
    targets: list[str] = []
    upgraded: list[str] = []
    for name in order:
        if len(targets) >= count:
            break
        files = list(regular[name])
        rng.shuffle(files)
        targets.extend(files)
        upgraded.append(name)
    placements = list(targets)
    targets = targets[:sum(1 for k in kinds if k != "added")]
    # The pool, by size, gives "other content of similar size" and new files.
    pool = list(pool)
    rng.shuffle(pool)
    by_size = sorted((os.path.getsize("/" + rel), rel) for rel in pool[:4000])
    used: set[str] = set()
    changes: list[Change] = []
    done = dict.fromkeys(CHANGE_WEIGHTS, 0)
    touched = 0
    for kind in kinds:
        if kind == "added":
            # A new file in a directory of an upgraded package, with real content.
            near = tree / rng.choice(placements)
            source = _similar_file(by_size, rng.randint(2_000, 200_000), used)
            dst = near.parent / source.name
            while dst.exists():
                dst = dst.with_name("new-" + dst.name)
            shutil.copyfile(source, dst)
            dst.chmod(0o644)
            rel = str(dst.relative_to(tree))
            touched += dst.stat().st_size
        else:
            rel = targets.pop()
            path = tree / rel
            if kind == "deleted":
                path.unlink()
            else:
                data = _changed(kind, path.read_bytes(), by_size, used, rng)
                path.write_bytes(data)
                touched += len(data)
        changes.append(Change(kind, rel))
        done[kind] += 1
    files_v2 = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    summary = ChangeSummary(
        packages_v1=len(packages), packages_upgraded=len(upgraded),
        files_v1=files_v1, files_v2=len(files_v2), file_bytes_v1=bytes_v1,
        file_bytes_v2=sum(p.stat().st_size for p in files_v2),
        changed=done, files_changed=count, bytes_touched_v2=touched)
    return summary, changes


def _changed(kind: str, data: bytes, by_size: list[tuple[int, str]], used: set[str],
             rng: random.Random) -> bytes:
    """A file's new content for one kind of change."""
    if kind == "rewritten":  # a new upstream version: other bytes, similar size
        return _similar_file(by_size, len(data), used).read_bytes()
    if kind == "patched":  # a rebuild with a version bump: small edits all through
        out = bytearray(data)
        for _ in range(max(1, len(data) // 16384)):
            at, n = rng.randrange(len(out) + 1), rng.randint(1, 64)
            edit = rng.randrange(3)
            if edit == 0:
                out[at:at + n] = rng.randbytes(n)
            elif edit == 1:
                out[at:at] = rng.randbytes(n)
            else:
                del out[at:at + n]
        return bytes(out)
    if kind == "grown":  # a section (a changelog entry, new code) inserted
        extra = _similar_file(by_size, max(1024, len(data) * rng.randint(5, 50) // 100),
                              used).read_bytes()
        at = rng.randrange(len(data) + 1)
        return data[:at] + extra + data[at:]
    cut = len(data) * rng.randint(10, 40) // 100  # shrunk: a section removed
    at = rng.randrange(len(data) - cut + 1)
    return data[:at] + data[at + cut:]


def _similar_file(by_size: list[tuple[int, str]], size: int, used: set[str]) -> Path:
    """An unused pool file whose size is closest to ``size`` (real bytes, not noise)."""
    i = min(bisect_left(by_size, (size, "")), len(by_size) - 1)
    for j in sorted(range(len(by_size)), key=lambda j: abs(j - i)):
        rel = by_size[j][1]
        if rel not in used:
            used.add(rel)
            return Path("/") / rel
    raise RuntimeError("pool of replacement files exhausted")


def _settle_times(tree: Path, upgraded: set[Path]) -> None:
    """Fix every atime/mtime: ``V2_TIME`` for what the upgrade wrote, ``V1_TIME`` elsewhere."""
    for root, dirs, files in os.walk(tree, topdown=False):
        for name in files + dirs:
            path = Path(root) / name
            when = V2_TIME if path in upgraded else V1_TIME
            os.utime(path, (when, when), follow_symlinks=False)
    when = V2_TIME if upgraded else V1_TIME
    os.utime(tree, (when, when))


def _make_image(tree: Path, image: Path, image_mib: int, when: int) -> None:
    """``mkfs.ext4 -d`` the tree into a fully allocated raw image, deterministically."""
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(when)}
    sparse = image.with_suffix(".sparse")
    sparse.unlink(missing_ok=True)
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "root", "-U", FS_UUID,
         "-E", f"hash_seed={HASH_SEED},lazy_itable_init=0,lazy_journal_init=0",
         "-d", str(tree), str(sparse), f"{image_mib}M"], check=True, env=env,
        capture_output=True)
    # mkfs copies each staging file's ctime (the time of the copy) and atime (which
    # reading the staging tree, mkfs included, may move): set both to the mtime.
    commands = [f"sif / {field} @{int(tree.stat().st_mtime)}" for field in ("atime", "ctime")]
    for root, dirs, files in os.walk(tree):
        for name in sorted(dirs + files):
            path = os.path.join(root, name)
            mtime = int(os.lstat(path).st_mtime)
            commands += [f"sif /{os.path.relpath(path, tree)} {field} @{mtime}"
                         for field in ("atime", "ctime")]
    _debugfs(sparse, commands, when)
    _fill(sparse, image)
    sparse.unlink()


def _upgrade_in_place(v1: Path, out: Path, tree1: Path, tree2: Path,
                      changes: list[Change]) -> None:
    """v1 with the upgrade applied as dpkg does on a running system, through debugfs.

    New content goes to ``<name>.dpkg-new`` (fresh blocks, the old file still
    allocated), then replaces the old name, whose blocks are freed but not zeroed.
    """
    work = out.with_suffix(".sparse")
    shutil.copyfile(v1, work)
    writes, swaps, times = [], [], []
    made: set[str] = set()
    for change in changes:
        rel = "/" + change.rel
        if change.kind == "deleted":
            swaps.append(f"rm {rel}")
            continue
        for parent in reversed(Path(change.rel).parents[:-1]):
            if not (tree1 / parent).exists() and str(parent) not in made:
                made.add(str(parent))
                writes.append(f"mkdir /{parent}")
        new = f"{rel}.dpkg-new"
        mode = os.stat(tree2 / change.rel).st_mode
        writes += [f"write {tree2 / change.rel} {new}", f"sif {new} mode 0{mode:o}",
                   f"sif {new} uid 0", f"sif {new} gid 0"]
        if change.kind != "added":
            swaps.append(f"rm {rel}")
        # debugfs's ln and unlink leave link counts alone: together they are a rename.
        swaps += [f"ln {new} {rel}", f"unlink {new}"]
    touched = {"/" + c.rel for c in changes if c.kind != "deleted"}
    touched |= {f"/{p}" for c in changes for p in Path(c.rel).parents[:-1]} | {"/"}
    for path in sorted(touched):
        times += [f"sif {path} {field} @{V2_TIME}" for field in ("atime", "mtime", "ctime")]
    _debugfs(work, writes + swaps + times, V2_TIME)
    check = subprocess.run(["e2fsck", "-fn", str(work)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"in-place upgrade left an inconsistent filesystem:\n{check.stdout}")
    _fill(work, out)
    work.unlink()


def _debugfs(image: Path, commands: list[str], when: int) -> None:
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(when)}
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        done = subprocess.run(["debugfs", "-w", "-f", script.name, str(image)], env=env,
                              capture_output=True, text=True, check=True)
    errors = [line for line in done.stderr.splitlines()
              if line and not line.startswith("debugfs ")]
    if errors:
        raise RuntimeError(f"debugfs on {image.name}: {errors[:5]}")


def _fill(sparse: Path, image: Path) -> None:
    """Copy with holes written as zeros: a downloaded raw image is fully allocated, so a
    reader (cp, the store) really reads every byte."""
    with open(sparse, "rb") as src, open(image, "wb") as dst:
        while block := src.read(8 * MIB):
            dst.write(block)
        os.fsync(dst.fileno())


def _make_tar(tree: Path, out: Path) -> None:
    """A reproducible tar of the tree (sorted, root-owned, the tree's own times)."""
    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for root, dirs, files in os.walk(tree):
            dirs.sort()
            for name in sorted(dirs + files):
                path = Path(root) / name
                tar.add(path, arcname=str(path.relative_to(tree)), recursive=False,
                        filter=normalise)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    images = build(args.cache, force=args.force)
    s = images.summary
    for path in (images.v1, images.v2, images.v2_inplace, images.tar_v1, images.tar_v2):
        print(f"{path}: {path.stat().st_size / MIB:,.1f} MiB, sha256 {sha256_of(path)[:16]}")
    print(f"packages: {s.packages_v1} in v1, {s.packages_upgraded} upgraded")
    print(f"files: v1 {s.files_v1:,} ({s.file_bytes_v1 / MIB:,.1f} MiB), "
          f"v2 {s.files_v2:,} ({s.file_bytes_v2 / MIB:,.1f} MiB)")
    print(f"changed: {s.files_changed} files ({s.file_fraction:.2%} of v1's): "
          + ", ".join(f"{n} {kind}" for kind, n in s.changed.items()))
    print(f"bytes in new or modified files: {s.bytes_touched_v2 / MIB:,.2f} MiB "
          f"({s.byte_fraction:.2%} of v2's file bytes)")


if __name__ == "__main__":
    main()
