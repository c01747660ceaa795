"""The test guest (scripts/test-guest.sh) for tests and benchmarks: build it once, read
its console markers, and boot it on a bare ``qemu-system-x86_64`` (the baseline the
boot benchmark subtracts)."""

from __future__ import annotations

import fcntl
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "test-guest.sh"
CACHE = Path("/var/cache/ironbark/test-guest")

MARKER = re.compile(r"IRONBARK-GUEST-READY uuid=(\S+) hostname=(\S+) key=(\S+)")
POWEROFF = "IRONBARK-GUEST-POWEROFF"


@dataclass(frozen=True)
class GuestFiles:
    root: Path

    @property
    def kernel(self) -> Path:
        return self.root / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.root / "initrd.img"

    @property
    def disk_raw(self) -> Path:
        return self.root / "disk.raw"

    @property
    def disk_qcow2(self) -> Path:
        return self.root / "disk.qcow2"


@dataclass(frozen=True)
class Marker:
    uuid: str
    hostname: str
    key: str  # the whole public key line (the guest prints its spaces as "~")


def build() -> GuestFiles:
    """Build (or find in the cache) the test guest; one builder at a time across
    pytest-xdist workers."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run([str(SCRIPT)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{SCRIPT} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return GuestFiles(Path(done.stdout.strip().splitlines()[-1]))


def parse_markers(text: str) -> list[Marker]:
    return [Marker(u, h, k.replace("~", " ")) for u, h, k in MARKER.findall(text)]


def read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def wait_for_markers(path: Path, count: int, timeout: float = 60.0,
                     poll: float = 0.01) -> list[Marker]:
    """Until the console file at ``path`` holds ``count`` READY markers."""
    deadline = time.monotonic() + timeout
    while True:
        found = parse_markers(read(path))
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} of {count} guest markers in {path} after "
                                 f"{timeout:g} s; the console ends:\n{read(path)[-1500:]}")
        time.sleep(poll)


@dataclass(frozen=True)
class BareBoot:
    seconds_to_marker: float
    marker: Marker


def boot_bare(guest: GuestFiles, config_drive: Path, work: Path, *, memory_mb: int = 512,
              cmdline: str = "console=ttyS0", timeout: float = 60.0) -> BareBoot:
    """Boot the guest's kernel and initramfs on ``qemu-system-x86_64`` alone, as libvirt
    would run it (TCG, the config drive on an IDE cdrom), timed from the process start
    to the READY marker on its serial console; then kill it."""
    console = work / "bare-console.log"
    console.unlink(missing_ok=True)
    command = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", str(memory_mb),
               "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
               "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
               "-append", cmdline, "-serial", f"file:{console}",
               "-drive", f"file={config_drive},media=cdrom,readonly=on,if=ide,index=3"]
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        (marker,) = wait_for_markers(console, 1, timeout, poll=0.005)[:1]
        return BareBoot(time.monotonic() - start, marker)
    finally:
        process.kill()
        process.wait()
