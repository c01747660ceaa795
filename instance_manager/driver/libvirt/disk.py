"""Instance disks: a qcow2 overlay over the cached base image, and its raw export.

Copy-on-write overlays make a spawn take milliseconds whatever the image size,
and leave the cached base untouched so that many instances share it. A snapshot
flattens overlay and base back into one raw image.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from instance_manager.driver.base import DriverError

GIB = 1024**3
_TIMEOUT = 120.0  # seconds; qemu-img only writes metadata here, so this is generous
# A convert copies the whole disk; the Cloud Manager's deadline for the snapshot task
# (an hour by default) is the real bound, this only stops a qemu-img that hangs.
_CONVERT_TIMEOUT = 3600.0


def _qemu_img(*args: str, timeout: float = _TIMEOUT) -> str:
    """Run qemu-img; DriverError with its stderr when it fails."""
    cmd = ["qemu-img", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise DriverError("qemu-img is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise DriverError(f"qemu-img {args[0]} took longer than {timeout:g} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
        raise DriverError(f"qemu-img {args[0]} failed: {detail}")
    return done.stdout


def virtual_size(path: Path, fmt: str) -> int:
    """The image's virtual size in bytes (what the guest sees, not the file size).

    ``--force-share``: the base may be open read-only by running guests.
    """
    out = _qemu_img("info", "--force-share", "--output=json", "-f", fmt, str(path))
    try:
        return int(json.loads(out)["virtual-size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DriverError(f"qemu-img info gave no virtual size for {path}: {exc}") from None


# How qemu names an image's format: an EC2 machine image (ami) is a raw disk.
DISK_FORMAT_OF = {"ami": "raw"}


def create_overlay(base: Path, base_format: str, dest: Path, size_gb: int) -> None:
    """Create ``dest``, a qcow2 overlay backed by ``base``, of ``size_gb`` GiB.

    A disk cannot be smaller than its image, so when ``size_gb`` is 0 (the flavor
    does not say) or too small, the overlay takes the base's virtual size.
    """
    base_format = DISK_FORMAT_OF.get(base_format, base_format)
    base_bytes = virtual_size(base, base_format)
    size = f"{size_gb}G" if size_gb > 0 and size_gb * GIB >= base_bytes else str(base_bytes)
    _qemu_img(
        "create", "-q", "-f", "qcow2", "-F", base_format,
        "-b", str(base.resolve()), str(dest), size,
    )


def export_raw(source: Path, source_format: str, dest: Path, force_share: bool) -> None:
    """Write ``source`` (with its backing chain) to ``dest`` as one raw image.

    qemu-img leaves runs of zeros as holes, so ``dest`` is sparse. ``force_share``
    (``-U``) reads an image a guest holds open: qemu's lock would refuse otherwise,
    and the caller has made the read safe by pausing the guest.
    """
    share = ["-U"] if force_share else []
    _qemu_img("convert", "-q", *share, "-f", source_format, "-O", "raw",
              str(source), str(dest), timeout=_CONVERT_TIMEOUT)
