"""The libvirt hypervisor driver: Ironbark's instances as libvirt domains.

Callers speak instance uuids and ``PowerState``; this module translates to libvirt
and back, and turns every libvirt failure into ``InstanceNotFound`` or a
``DriverError`` that says which instance and why. Only domains carrying Ironbark's
metadata are ever acted on; foreign domains on the same host are reported and
left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import libvirt

from instance_manager.driver.base import (
    DomainInfo,
    DriverError,
    HostInfo,
    HypervisorDriver,
    InstanceNotFound,
    InstanceSpec,
    Inventory,
)
from instance_manager.driver.libvirt import disk, virt_type
from instance_manager.driver.libvirt.domain_xml import (
    build_domain_xml,
    console_path,
    disk_path,
    disk_source,
)
from instance_manager.driver.libvirt.guest import Guest
from instance_manager.driver.libvirt.host import LibvirtHost, is_connection_error
from instance_manager.driver.libvirt.simulated import DomainSnapshot, SimulatedHost
from message_bus.lifecycle import PowerState

if TYPE_CHECKING:
    from ironbark.config import HostOptions

log = logging.getLogger(__name__)

_GIB = 1024**3
_POLL_FIRST, _POLL_MAX = 0.05, 1.0  # seconds between checks while a guest shuts down


class _KeyedLocks:
    """One lock per instance, dropped when nobody holds or waits for it.

    Two deliveries of the same spawn (the bus delivers at least once) must not
    interleave: the second would redefine the first's domain, fail to start it,
    and clean up -- destroying a healthy guest.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]


class LibvirtDriver(HypervisorDriver):
    """A hypervisor reached through libvirt at ``uri``.

    With ``simulated``, the URI is that simulated host's ``test://`` file, which is
    created or resized now and rewritten after every change. ``storage_dir`` is
    where instance disks live on a real host; its filesystem size is the host's
    disk_gb.
    """

    def __init__(
        self,
        uri: str,
        simulated: SimulatedHost | None = None,
        storage_dir: Path | None = None,
        virt_type: str = "auto",
    ):
        self._simulated = simulated
        self._storage_dir = storage_dir
        self._virt_type = virt_type
        if simulated is not None:
            simulated.ensure()
        self._host = LibvirtHost(uri)
        self._locks = _KeyedLocks()
        with self._errors("connect to the hypervisor", None):
            self._host.connection()

    # -- queries ---------------------------------------------------------------

    def host_info(self) -> HostInfo:
        with self._errors("read host information", None):
            info = self._host.info()
            hypervisor_type = self._domain_type()  # "test", or what guests run under
        return HostInfo(
            hypervisor_type=hypervisor_type,
            vcpus=int(info[2]),
            memory_mb=int(info[1]),
            disk_gb=self._disk_gb(),
        )

    def _disk_gb(self) -> int:
        """The simulated size, or the size of the filesystem holding instance disks.

        Not the test driver's pool capacity: it reports 100 GiB whatever the file says.
        """
        if self._simulated is not None:
            return self._simulated.disk_gb
        where = Path(self._storage_dir or "/").absolute()
        while not where.exists():  # not created yet: measure the filesystem it will be on
            where = where.parent
        st = os.statvfs(where)
        return st.f_blocks * st.f_frsize // _GIB

    def inventory(self) -> Inventory:
        instances: list[DomainInfo] = []
        foreign: list[str] = []
        with self._errors("list domains", None):
            for guest in self._host.list_guests():
                try:
                    meta = guest.metadata()
                    if meta is None:
                        foreign.append(guest.name)
                        continue
                    state = guest.power_state()
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        continue  # undefined while we were listing
                    raise
                instances.append(DomainInfo(meta.instance_id, meta.name, state))
        instances.sort(key=lambda d: d.instance_id)
        return Inventory(instances=instances, foreign=sorted(foreign))

    def power_state(self, instance_id: str) -> PowerState:
        try:
            with self._errors("read the power state of", instance_id):
                guest = self._find(instance_id)
                return PowerState.MISSING if guest is None else guest.power_state()
        except InstanceNotFound:  # undefined between the lookup and the state query
            return PowerState.MISSING

    # -- spawn and destroy -----------------------------------------------------

    def spawn(self, spec: InstanceSpec) -> PowerState:
        _check_spec(spec)
        with self._locks.hold(spec.instance_id):
            with self._errors("spawn", spec.instance_id):
                guest = self._find(spec.instance_id)
            if guest is not None:
                # A repeated spawn: the domain exists, make sure it runs.
                self._start(spec.instance_id, guest)
                with self._errors("spawn", spec.instance_id):
                    return guest.power_state()
            return self._spawn_new(spec)

    def _spawn_new(self, spec: InstanceSpec) -> PowerState:
        made_dir = not spec.instance_dir.exists()
        overlay = disk_path(spec)
        guest: Guest | None = None
        try:
            spec.instance_dir.mkdir(parents=True, exist_ok=True)
            disk.create_overlay(spec.image_path, spec.image_format, overlay, spec.disk_gb)
            domain_type = self._domain_type()
            guest = self._host.define(build_domain_xml(spec, domain_type))
            guest.start()
            self._persist()
            return guest.power_state()
        except (libvirt.libvirtError, DriverError, OSError) as exc:
            cause = _describe(exc)
            self._clean_failed_spawn(spec, guest, made_dir, overlay)
            if isinstance(exc, libvirt.libvirtError) and is_connection_error(exc):
                self._host.reopen()
            raise DriverError(f"cannot spawn instance {spec.instance_id}: {cause}") from exc

    def _clean_failed_spawn(
        self, spec: InstanceSpec, guest: Guest | None, made_dir: bool, overlay: Path
    ) -> None:
        """Undo a failed spawn; log, never raise, so the original cause is reported."""
        try:
            if guest is not None:
                if guest.is_active():
                    guest.destroy()
                guest.undefine()
                self._persist()
        except (libvirt.libvirtError, DriverError, OSError) as exc:
            log.warning("cleanup of failed spawn of %s: %s", spec.instance_id, _describe(exc))
        if made_dir:
            shutil.rmtree(spec.instance_dir, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                overlay.unlink()

    def _domain_type(self) -> str:
        """libvirt's domain type for our guests: "test", or "kvm"/"qemu" as configured or
        probed (``virt_type.choose``: /dev/kvm alone proves nothing)."""
        if self._host.hypervisor_type().lower() == "test":
            return "test"
        return virt_type.choose(self._host.connection(), self._virt_type).virt_type

    def destroy(self, instance_id: str) -> None:
        with self._locks.hold(instance_id), self._errors("destroy", instance_id):
            guest = self._find(instance_id)
            if guest is None:
                return
            meta = guest.metadata()
            try:
                if guest.is_active():
                    guest.destroy()
                guest.remove_managed_save()
                guest.undefine()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
            self._persist()
            if meta is not None:
                _remove_instance_dir(meta.instance_dir)

    # -- power operations ------------------------------------------------------

    def power_on(self, instance_id: str) -> None:
        with self._locks.hold(instance_id):
            self._start(instance_id, self._get(instance_id))

    def resume(self, instance_id: str) -> None:
        self.power_on(instance_id)

    def _start(self, instance_id: str, guest: Guest) -> None:
        """Bring the guest to RUNNING from wherever it rests; no-op if it runs."""
        with self._errors("start", instance_id):
            state = guest.power_state()
            if state is PowerState.RUNNING:
                return
            if state is PowerState.PAUSED:
                guest.resume()
            else:
                if guest.is_active():  # crashed but not torn down
                    guest.destroy()
                guest.start()
            self._persist()

    def power_off(self, instance_id: str, timeout: float) -> None:
        with self._locks.hold(instance_id), self._errors("power off", instance_id):
            guest = self._get(instance_id)
            if not guest.is_active():
                return
            try:
                guest.shutdown()
            except libvirt.libvirtError:
                if guest.is_active():
                    raise
            deadline = time.monotonic() + timeout
            pause = _POLL_FIRST
            while guest.is_active() and time.monotonic() < deadline:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, _POLL_MAX)
            if guest.is_active():
                log.info("instance %s ignored shutdown for %g s; destroying", instance_id, timeout)
                with contextlib.suppress(libvirt.libvirtError):
                    guest.destroy()
                if guest.is_active():
                    raise DriverError(f"cannot power off instance {instance_id}: still running")
            self._persist()

    def reboot(self, instance_id: str, hard: bool) -> None:
        with self._locks.hold(instance_id), self._errors("reboot", instance_id):
            guest = self._get(instance_id)
            if not hard:
                state = guest.power_state()
                if state is not PowerState.RUNNING:
                    raise DriverError(
                        f"cannot reboot instance {instance_id}: the guest is {state.value} "
                        "(a hard reboot starts it)"
                    )
                guest.reboot()
            else:
                if guest.is_active():
                    guest.destroy()
                guest.remove_managed_save()
                guest.start()
            self._persist()

    def pause(self, instance_id: str) -> None:
        with self._locks.hold(instance_id), self._errors("pause", instance_id):
            guest = self._get(instance_id)
            state = guest.power_state()
            if state is PowerState.PAUSED:
                return
            _require(state, PowerState.RUNNING, "pause", instance_id)
            guest.suspend()
            self._persist()

    def unpause(self, instance_id: str) -> None:
        with self._locks.hold(instance_id), self._errors("unpause", instance_id):
            guest = self._get(instance_id)
            state = guest.power_state()
            if state is PowerState.RUNNING:
                return
            _require(state, PowerState.PAUSED, "unpause", instance_id)
            guest.resume()
            self._persist()

    def suspend(self, instance_id: str) -> None:
        with self._locks.hold(instance_id), self._errors("suspend", instance_id):
            guest = self._get(instance_id)
            state = guest.power_state()
            if state is PowerState.SUSPENDED:
                return
            if state not in (PowerState.RUNNING, PowerState.PAUSED):
                raise DriverError(
                    f"cannot suspend instance {instance_id}: the guest is {state.value}"
                )
            guest.managed_save()
            self._persist()

    # -- disks -----------------------------------------------------------------

    def export_disk(self, instance_id: str, dest: Path) -> None:
        """``qemu-img convert`` of the overlay (and its base) to raw.

        qemu-img cannot copy a running guest's disk consistently, so a running guest
        is paused for the copy and resumed after, whatever happens; a paused, shut off
        or suspended guest writes nothing and stays as it is. The instance's lock is
        held throughout, so a power action or destroy waits for the copy.
        """
        with self._locks.hold(instance_id), self._errors("export the disk of", instance_id):
            guest = self._get(instance_id)
            found = disk_source(guest.inactive_xml())
            if found is None:
                raise DriverError(f"cannot export the disk of instance {instance_id}: "
                                  "its domain has no disk file")
            source, fmt = found
            paused_here = guest.power_state() is PowerState.RUNNING
            if paused_here:
                guest.suspend()
            try:
                disk.export_raw(source, fmt, dest, force_share=guest.is_active())
            finally:
                if paused_here:
                    guest.resume()

    def console_log(self, instance_id: str, max_bytes: int) -> tuple[bytes, bool]:
        """Read from the end of the serial log: a guest's log can be far larger than
        what anyone reads of it."""
        with self._errors("read the console of", instance_id):
            path = console_path(self._get(instance_id).inactive_xml())
            if path is None:
                return b"", False
            try:
                with path.open("rb") as log_file:
                    size = log_file.seek(0, os.SEEK_END)
                    log_file.seek(max(0, size - max_bytes))
                    return log_file.read(max_bytes), size > max_bytes
            except FileNotFoundError:
                return b"", False  # the guest has not written yet

    def close(self) -> None:
        self._host.close()

    # -- helpers ---------------------------------------------------------------

    def _find(self, instance_id: str) -> Guest | None:
        """Our domain for the instance, or None (foreign domains count as none)."""
        try:
            uuid.UUID(instance_id)
        except ValueError:
            return None
        guest = self._host.lookup_by_uuid(instance_id)
        if guest is None or guest.metadata() is None:
            return None
        return guest

    def _get(self, instance_id: str) -> Guest:
        guest = self._find(instance_id)
        if guest is None:
            raise InstanceNotFound(instance_id)
        return guest

    def _persist(self) -> None:
        """Record every domain in the simulated host's file (no-op on a real host)."""
        if self._simulated is None:
            return

        def collect() -> list[DomainSnapshot]:
            snapshots = []
            for guest in self._host.list_guests():
                try:
                    snapshots.append(
                        DomainSnapshot(guest.inactive_xml(), guest.state(),
                                       guest.has_managed_save())
                    )
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return snapshots

        self._simulated.persist(collect)

    @contextlib.contextmanager
    def _errors(self, action: str, instance_id: str | None) -> Iterator[None]:
        """Translate libvirt's errors into the driver's, naming what failed."""
        try:
            yield
        except libvirt.libvirtError as exc:
            if instance_id is not None and exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise InstanceNotFound(instance_id) from None
            if is_connection_error(exc):
                self._host.reopen()  # the next call reconnects
            what = f"{action} instance {instance_id}" if instance_id else action
            raise DriverError(f"cannot {what}: {_describe(exc)}") from exc
        except OSError as exc:
            what = f"{action} instance {instance_id}" if instance_id else action
            raise DriverError(f"cannot {what}: {exc}") from exc


def from_options(options: HostOptions) -> LibvirtDriver:
    """The driver a host's configuration asks for."""
    uri = options.hypervisor_uri
    if uri is None:
        if options.state_dir is None:
            raise DriverError("host.hypervisor_uri or host.state_dir must be set")
        uri = f"test://{Path(options.state_dir).resolve() / 'host.xml'}"
    if options.hypervisor == "simulated":
        simulated = SimulatedHost(
            SimulatedHost.path_from_uri(uri),
            vcpus=options.simulated_vcpus,
            memory_mb=options.simulated_memory_mb,
            disk_gb=options.simulated_disk_gb,
        )
        return LibvirtDriver(uri, simulated=simulated, storage_dir=options.state_dir)
    return LibvirtDriver(uri, storage_dir=options.state_dir, virt_type=options.virt_type)


def _check_spec(spec: InstanceSpec) -> None:
    """Refuse what libvirt would refuse with a misleading message (or not at all)."""
    try:
        uuid.UUID(spec.instance_id)
    except ValueError:
        raise DriverError(f"instance id {spec.instance_id!r} is not a uuid") from None
    if spec.vcpus < 1 or spec.memory_mb < 1 or spec.disk_gb < 0:
        raise DriverError(
            f"cannot spawn instance {spec.instance_id}: needs at least 1 vCPU and 1 MiB "
            f"(got {spec.vcpus} vCPUs, {spec.memory_mb} MiB, {spec.disk_gb} GiB)"
        )


def _require(state: PowerState, wanted: PowerState, action: str, instance_id: str) -> None:
    if state is not wanted:
        raise DriverError(f"cannot {action} instance {instance_id}: the guest is {state.value}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return exc.get_error_message() or str(exc)
    return str(exc)


def _remove_instance_dir(path: Path) -> None:
    """Delete the instance's directory, refusing paths that cannot be one."""
    if not path.is_absolute() or len(path.parts) < 3:
        log.warning("not deleting suspicious instance directory %r", str(path))
        return
    shutil.rmtree(path, ignore_errors=True)
