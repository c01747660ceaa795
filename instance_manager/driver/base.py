"""The hypervisor driver interface.

Everything an Instance Manager asks of a hypervisor, in typed methods. libvirt ids,
XML and error codes never leave an implementation: callers see instance uuids,
``PowerState`` values and the exceptions below.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

from message_bus.lifecycle import PowerState


class DriverError(Exception):
    """The hypervisor refused or failed an operation; the message says what and why."""


class InstanceNotFound(DriverError):
    def __init__(self, instance_id: str):
        self.instance_id = instance_id
        super().__init__(f"no domain for instance {instance_id} on this host")


@dataclass(frozen=True)
class HostInfo:
    """What the host has, as the hypervisor sees it (before reservations and ratios)."""

    hypervisor_type: str  # e.g. "test" (libvirt's simulated hypervisor), "qemu", "kvm"
    vcpus: int
    memory_mb: int
    disk_gb: int


@dataclass(frozen=True)
class InstanceSpec:
    """Everything needed to define a guest."""

    instance_id: str
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    image_id: str
    image_path: Path  # the cached base image on this host
    image_format: str  # raw | qcow2
    instance_dir: Path  # where this instance's disk and files live
    # Direct kernel boot: the cached kernel and ramdisk images and the command line.
    # Without a kernel the disk boots through the BIOS.
    kernel_path: Path | None = None
    ramdisk_path: Path | None = None
    kernel_cmdline: str | None = None
    config_drive: Path | None = None  # an ISO 9660 image labelled config-2, read-only


@dataclass(frozen=True)
class DomainInfo:
    instance_id: str
    name: str
    power_state: PowerState


@dataclass(frozen=True)
class Inventory:
    """Every domain on the host: ours (by instance id) and foreign ones (by name)."""

    instances: list[DomainInfo]
    foreign: list[str] = field(default_factory=list)


class HypervisorDriver(abc.ABC):
    """One host's hypervisor. Every method is idempotent where the name allows it:
    destroying a missing instance or starting a running one is not an error."""

    @abc.abstractmethod
    def host_info(self) -> HostInfo: ...

    @abc.abstractmethod
    def inventory(self) -> Inventory: ...

    @abc.abstractmethod
    def power_state(self, instance_id: str) -> PowerState:
        """The instance's power state; PowerState.MISSING if it has no domain here."""

    @abc.abstractmethod
    def spawn(self, spec: InstanceSpec) -> PowerState:
        """Create the instance's disk and domain and start it; return its power state."""

    @abc.abstractmethod
    def destroy(self, instance_id: str) -> None:
        """Stop the domain, undefine it and delete its disk; no error if already gone."""

    @abc.abstractmethod
    def power_on(self, instance_id: str) -> None:
        """Start a stopped guest, or restore a suspended one."""

    @abc.abstractmethod
    def power_off(self, instance_id: str, timeout: float) -> None:
        """Ask the guest to shut down; pull the plug if it has not within ``timeout``."""

    @abc.abstractmethod
    def reboot(self, instance_id: str, hard: bool) -> None: ...

    @abc.abstractmethod
    def pause(self, instance_id: str) -> None:
        """Freeze the guest's vCPUs in memory."""

    @abc.abstractmethod
    def unpause(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def suspend(self, instance_id: str) -> None:
        """Save the guest's memory to disk and stop it (resumable after a host restart)."""

    @abc.abstractmethod
    def resume(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def export_disk(self, instance_id: str, dest: Path) -> None:
        """Write a consistent raw image of the instance's disk to ``dest`` (sparse).

        Consistent: the bytes are the disk at one instant, never a mix of before and
        after a guest write. A hypervisor that cannot copy a running guest's disk live
        pauses the guest for the copy and puts it back as it was afterwards, whatever
        happens. ``dest`` is overwritten; on failure it may be left half written (the
        caller removes it). Raises InstanceNotFound, or DriverError naming the cause.
        """

    @abc.abstractmethod
    def console_log(self, instance_id: str, max_bytes: int) -> tuple[bytes, bool]:
        """The last ``max_bytes`` the guest wrote to its serial console, and whether
        there is more before them. Empty when it wrote nothing yet (libvirt's simulated
        hypervisor never writes); InstanceNotFound without a domain."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the hypervisor connection."""
