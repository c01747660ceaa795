"""A simulated host: libvirt's test driver, backed by one XML file that survives restarts.

The test driver (``test:///path/host.xml``) reads its whole "hypervisor" -- node
sizes, storage pools, domains -- from a file when a connection opens, then keeps
everything in that connection's memory and never writes back. On its own a
simulated host would thus forget every guest when the Instance Manager restarts.
This class closes the gap: after each mutating operation the driver has it
rewrite the file with every domain's definition and run state, using the test
driver's own XML extensions (``<test:runstate>``, ``<test:hasmanagedsave>``), so
that reopening the file restores each domain as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import libvirt

from instance_manager.driver.base import DriverError

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
POOL_NAME = "default"
_GIB = 1024**3
_MHZ = "2000"

ET.register_namespace("test", TEST_NS)


@dataclass(frozen=True)
class DomainSnapshot:
    """One domain as the host file records it."""

    xml: str  # the inactive (persistent) definition
    runstate: int  # libvirt's state number: VIR_DOMAIN_RUNNING, _PAUSED, _SHUTOFF, ...
    managed_save: bool


class SimulatedHost:
    """The host file of one simulated hypervisor, and the sizes it advertises."""

    def __init__(self, path: Path, vcpus: int, memory_mb: int, disk_gb: int):
        if not path.is_absolute():
            raise DriverError(f"a simulated host file needs an absolute path, not {path}")
        self.path = path
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.disk_gb = disk_gb
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"test://{self.path}"

    @staticmethod
    def path_from_uri(uri: str) -> Path:
        """The host file of a ``test:///abs/path.xml`` URI."""
        parsed = urlparse(uri)
        if parsed.scheme != "test" or parsed.netloc or not parsed.path:
            raise DriverError(f"{uri!r} is not a simulated host URI (test:///path/host.xml)")
        if parsed.path == "/default":
            raise DriverError("test:///default keeps no state; a simulated host needs a file")
        return Path(parsed.path)

    def ensure(self) -> None:
        """Write the host file, or update its sizes in place keeping the domains.

        Sizes come from configuration and may change between restarts; the
        domains in the file are the state of the guests and must never be lost.
        """
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            root = self._read() if self.path.exists() else ET.Element("node")
            self._set_sizes(root)
            self._write(list(root))

    def persist(self, collect: Callable[[], Iterable[DomainSnapshot]]) -> None:
        """Rewrite the file with the domains ``collect`` returns, atomically.

        ``collect`` runs under the lock, so that a snapshot taken earlier can
        never overwrite one taken later by another thread.
        """
        with self._lock:
            keep = [child for child in self._read() if child.tag != "domain"]
            domains = [self._domain_element(s) for s in collect()]
            self._write(keep + domains)

    def _read(self) -> ET.Element:
        try:
            root = ET.parse(self.path).getroot()
        except (ET.ParseError, OSError) as exc:
            raise DriverError(f"cannot read simulated host file {self.path}: {exc}") from None
        if root.tag != "node":
            raise DriverError(f"simulated host file {self.path} has no <node> root")
        return root

    def _set_sizes(self, root: ET.Element) -> None:
        """Replace <cpu>, <memory> and the default pool, leaving every other element."""
        for child in list(root):
            is_pool = child.tag == "pool" and child.findtext("name") == POOL_NAME
            if child.tag in ("cpu", "memory") or is_pool:
                root.remove(child)
        cpu = ET.Element("cpu")
        # One socket of vcpus cores: the test driver counts nodes*sockets*cores*threads
        # and lets <active> only lower it, so any count is representable this way.
        for tag, value in (("mhz", _MHZ), ("model", "x86_64"), ("nodes", "1"),
                           ("sockets", "1"), ("cores", str(self.vcpus)),
                           ("threads", "1"), ("active", str(self.vcpus))):
            ET.SubElement(cpu, tag).text = value
        ET.indent(cpu, space="  ", level=1)
        memory = ET.Element("memory")
        memory.text = str(self.memory_mb * 1024)  # KiB
        root[0:0] = [cpu, memory, self._pool_element()]

    def _pool_element(self) -> ET.Element:
        """The ``default`` dir pool, sized disk_gb.

        libvirt's test driver ignores the capacity written here (every pool it
        loads reports 100 GiB); it is recorded for people reading the file, and
        the driver takes the disk size from ``disk_gb``.
        """
        pool = ET.Element("pool", {"type": "dir"})
        ET.SubElement(pool, "name").text = POOL_NAME
        ET.SubElement(pool, "uuid").text = str(uuid.uuid5(uuid.NAMESPACE_URL, self.uri))
        size = str(self.disk_gb * _GIB)
        ET.SubElement(pool, "capacity", {"unit": "bytes"}).text = size
        ET.SubElement(pool, "allocation", {"unit": "bytes"}).text = "0"
        ET.SubElement(pool, "available", {"unit": "bytes"}).text = size
        target = ET.SubElement(pool, "target")
        ET.SubElement(target, "path").text = str(self.path.parent)
        ET.indent(pool, space="  ", level=1)
        return pool

    @staticmethod
    def _domain_element(snapshot: DomainSnapshot) -> ET.Element:
        domain = ET.fromstring(snapshot.xml)
        for child in list(domain):
            if child.tag.startswith(f"{{{TEST_NS}}}"):
                domain.remove(child)
        ET.SubElement(domain, f"{{{TEST_NS}}}runstate").text = str(snapshot.runstate)
        if snapshot.managed_save and snapshot.runstate == libvirt.VIR_DOMAIN_SHUTOFF:
            ET.SubElement(domain, f"{{{TEST_NS}}}hasmanagedsave").text = "yes"
        return domain

    def _write(self, children: list[ET.Element]) -> None:
        """Replace the file atomically: a crash leaves the old file or the new one.

        Each child is serialized on its own so that it declares its namespaces
        itself, as libvirt wrote them, instead of on <node>.
        """
        body = "".join(
            "  " + ET.tostring(child, encoding="unicode").strip() + "\n" for child in children
        )
        text = f"<node>\n{body}</node>\n"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
