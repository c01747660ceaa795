"""A thin wrapper of one libvirt connection.

The Instance Manager lives for days while libvirtd restarts, sockets break and
remote hosts reboot; this class owns the connection so that a broken one is
reopened on the next call instead of failing every later operation. It speaks
libvirt objects and error codes, and is private to the driver package.
"""

from __future__ import annotations

import contextlib
import threading

import libvirt

from instance_manager.driver.libvirt.guest import Guest

# What says the connection itself is gone, not that an operation failed: these
# codes, or any error raised by the transport (RPC/remote layers) rather than by a
# hypervisor driver.
_CONNECTION_CODES = frozenset(
    {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC}
)
_TRANSPORT_DOMAINS = frozenset({libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE})

_silenced = False
_silence_lock = threading.Lock()


def _silence_default_handler() -> None:
    """Stop libvirt printing every error to stderr.

    By default the C library writes "libvirt: error : ..." for each failure, even
    those we expect and handle (a lookup of a missing domain); the exception we
    raise already carries the message. The handler is process-wide, set once.
    """
    global _silenced
    with _silence_lock:
        if not _silenced:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _silenced = True


def is_connection_error(exc: libvirt.libvirtError) -> bool:
    """True when ``exc`` says the connection broke (so it must be reopened)."""
    return (
        exc.get_error_code() in _CONNECTION_CODES
        or exc.get_error_domain() in _TRANSPORT_DOMAINS
    )


class LibvirtHost:
    """One hypervisor connection, opened lazily and reopened once it is broken."""

    def __init__(self, uri: str):
        self.uri = uri
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()
        _silence_default_handler()

    def connection(self) -> libvirt.virConnect:
        """The open connection, (re)opened if there is none or it is no longer alive."""
        with self._lock:
            if self._conn is not None and not self._alive(self._conn):
                self._close_quietly(self._conn)
                self._conn = None
            if self._conn is None:
                self._conn = libvirt.open(self.uri)
            return self._conn

    def reopen(self) -> None:
        """Drop the current connection; the next call opens a fresh one.

        For libvirt's test driver a fresh connection re-reads the host file, so
        anything not persisted to it is lost (the simulated host persists after
        every mutation, so nothing is).
        """
        with self._lock:
            if self._conn is not None:
                self._close_quietly(self._conn)
            self._conn = None

    def close(self) -> None:
        self.reopen()

    def lookup_by_uuid(self, uuid: str) -> Guest | None:
        """The domain with this uuid, or None when there is none."""
        try:
            return Guest(self.connection().lookupByUUIDString(uuid))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def list_guests(self) -> list[Guest]:
        """Every domain, running or only defined."""
        return [Guest(dom) for dom in self.connection().listAllDomains(0)]

    def define(self, xml: str) -> Guest:
        """Define a persistent domain (not started)."""
        return Guest(self.connection().defineXML(xml))

    def info(self) -> list:
        """virNodeGetInfo: [model, memory MiB, cpus, mhz, nodes, sockets, cores, threads]."""
        return self.connection().getInfo()

    def hypervisor_type(self) -> str:
        """The driver name libvirt reports: "TEST" (the test driver), "QEMU", ..."""
        return self.connection().getType()

    @staticmethod
    def _alive(conn: libvirt.virConnect) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    @staticmethod
    def _close_quietly(conn: libvirt.virConnect) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
