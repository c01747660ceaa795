"""Hypervisor drivers: one abstract interface (base) and its libvirt implementation."""
