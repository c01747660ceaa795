"""A thin wrapper of one libvirt domain.

It names the few domain operations the driver needs and maps libvirt's state
numbers onto Ironbark's ``PowerState`` in one place. It raises ``libvirtError``
untouched: deciding what an error means (missing instance, refused operation,
broken connection) is the driver's job.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import libvirt

from instance_manager.driver.libvirt.domain_xml import METADATA_NS, InstanceMetadata
from message_bus.lifecycle import PowerState

_RUNNING_STATES = frozenset(
    {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_SHUTDOWN}
)


class Guest:
    """One virDomain. Short-lived: look it up, act, drop it."""

    def __init__(self, domain: libvirt.virDomain):
        self._dom = domain

    @property
    def name(self) -> str:
        return self._dom.name()

    @property
    def uuid(self) -> str:
        return self._dom.UUIDString()

    def state(self) -> int:
        """libvirt's state number (VIR_DOMAIN_RUNNING, ...), without the reason."""
        return self._dom.state()[0]

    def is_active(self) -> bool:
        return bool(self._dom.isActive())

    def has_managed_save(self) -> bool:
        return bool(self._dom.hasManagedSaveImage(0))

    def power_state(self) -> PowerState:
        """What Ironbark calls the guest's state.

        A shut-off domain with a managed-save image is *suspended*: starting it
        restores its memory, which is what the API's SUSPENDED promises.
        """
        state = self.state()
        if state in _RUNNING_STATES:
            return PowerState.RUNNING
        if state == libvirt.VIR_DOMAIN_PAUSED:
            return PowerState.PAUSED
        if state == libvirt.VIR_DOMAIN_SHUTOFF:
            return PowerState.SUSPENDED if self.has_managed_save() else PowerState.SHUTDOWN
        if state == libvirt.VIR_DOMAIN_CRASHED:
            return PowerState.CRASHED
        if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
            return PowerState.SUSPENDED
        # NOSTATE: libvirt does not know yet; judge by whether it is active.
        return PowerState.RUNNING if self.is_active() else PowerState.SHUTDOWN

    def metadata(self) -> InstanceMetadata | None:
        """Ironbark's metadata element, or None for a domain Ironbark did not define."""
        try:
            text = self._dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise
        return InstanceMetadata.from_element(ET.fromstring(text))

    def inactive_xml(self) -> str:
        """The persistent definition (what a restarted hypervisor would boot)."""
        return self._dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

    def start(self) -> None:
        """Boot the guest, or restore it from its managed-save image if it has one."""
        self._dom.create()

    def shutdown(self) -> None:
        """Ask the guest OS to power off (ACPI); returns before it has."""
        self._dom.shutdown()

    def destroy(self) -> None:
        """Pull the plug."""
        self._dom.destroy()

    def reboot(self) -> None:
        """Ask the guest OS to reboot."""
        self._dom.reboot(0)

    def suspend(self) -> None:
        """Pause the vCPUs (libvirt's "suspend" is Ironbark's pause)."""
        self._dom.suspend()

    def resume(self) -> None:
        """Unpause the vCPUs."""
        self._dom.resume()

    def managed_save(self) -> None:
        """Save memory to disk and stop; the next start restores it, running.

        VIR_DOMAIN_SAVE_RUNNING: a guest saved while paused comes back running,
        so that resume always ends in RUNNING.
        """
        self._dom.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING)

    def remove_managed_save(self) -> None:
        if self.has_managed_save():
            self._dom.managedSaveRemove(0)

    def undefine(self) -> None:
        """Forget the domain, including a managed-save image (libvirt refuses otherwise)."""
        self._dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
