"""Ironbark's libvirt hypervisor driver, real or simulated (libvirt's test driver)."""

from instance_manager.driver.libvirt.driver import LibvirtDriver, from_options
from instance_manager.driver.libvirt.simulated import SimulatedHost

__all__ = ["LibvirtDriver", "SimulatedHost", "from_options"]
