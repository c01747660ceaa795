"""The snapshot workflow: a real libvirt test:/// host, a real image store over HTTP.

Instances run on libvirt's test driver (a simulated host file under the test's
directory) with real qcow2 overlays over bases assembled by the real image cache
from a real ``ImageStore`` behind its Flask app on a real ``ThreadedServer``. Events
go over a real memory:// bus to a recorder serving the group's queue. Faults are
real too: a WSGI layer in front of the store's app that refuses chunk uploads, an
overlay deleted under the domain, an image deleted from the store.

The guest never writes its disk under the test driver, so "changes" are written
into the overlay with ``qemu-io``, as a guest would write them.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from image_store.client import ImageStoreClient
from image_store.service import create_app
from image_store.store import ImageStore
from instance_manager import snapshot
from instance_manager.context import HostContext
from instance_manager.driver.base import InstanceSpec
from instance_manager.driver.libvirt import LibvirtDriver, SimulatedHost
from instance_manager.image_cache import ImageCache
from instance_manager.manager import InstanceManager
from ironbark.config import HostOptions
from message_bus import Bus
from message_bus.lifecycle import Event, PowerState
from message_bus.messages import HostReport, ImageRef, InstanceEvent, SnapshotDisk
from tests.unit.instance_manager.conftest import AVG_KIB, TOKEN, serving, store_client

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MAX_CHUNK = 4 * AVG_KIB * KIB
BASE_DATA = 3 * MIB  # random bytes, then a 1 MiB hole: a 4 MiB raw base
HOST, GROUP = "hv1", "rack1"


# -- the image store, served for real, with a fault injector in front ----------------------


class RefuseChunkPuts:
    """WSGI layer in front of the store's app: while ``on``, every chunk upload fails
    with 503 (what a store that ran out of disk, or a proxy in trouble, answers)."""

    def __init__(self, app: Any) -> None:
        self.app, self.on = app, False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if (self.on and environ.get("REQUEST_METHOD") == "PUT"
                and "/chunks/" in environ.get("PATH_INFO", "")):
            body = b'{"error": {"code": 503, "title": "Service Unavailable", ' \
                   b'"message": "no space left for chunks"}}'
            start_response("503 Service Unavailable", [("Content-Type", "application/json"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


@pytest.fixture
def faults(store: ImageStore) -> RefuseChunkPuts:
    return RefuseChunkPuts(create_app(store, TOKEN))


@pytest.fixture
def client(faults: RefuseChunkPuts) -> Iterator[ImageStoreClient]:
    with serving(faults) as srv, store_client(srv) as c:
        yield c


# -- the host: driver, cache, bus and a recorder of what it tells its group ----------------


class Host:
    """One simulated host with its context, and the events it sent its group."""

    def __init__(self, ctx: HostContext, events: queue.Queue[InstanceEvent]) -> None:
        self.ctx, self._events = ctx, events

    def event(self, timeout: float = 10.0) -> InstanceEvent:
        return self._events.get(timeout=timeout)

    def no_more_events(self, wait: float = 0.3) -> bool:
        try:
            extra = self._events.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected event {extra}")

    def boot(self, base: ImageRef, disk_gb: int = 1) -> str:
        instance_id = str(uuid.uuid4())
        path = self.ctx.images.ensure(base, instance_id)
        assert self.ctx.options.state_dir is not None
        self.ctx.driver.spawn(InstanceSpec(
            instance_id=instance_id, name="vm", vcpus=1, memory_mb=512, disk_gb=disk_gb,
            image_id=base.id, image_path=path, image_format="raw",
            instance_dir=self.ctx.options.state_dir / "instances" / instance_id))
        return instance_id

    def instance_dir(self, instance_id: str) -> Path:
        assert self.ctx.options.state_dir is not None
        return self.ctx.options.state_dir / "instances" / instance_id


@pytest.fixture
def host(tmp_path: Path, client: ImageStoreClient) -> Iterator[Host]:
    state_dir = tmp_path / HOST
    options = HostOptions(name=HOST, group=GROUP, state_dir=state_dir, image_fetch_workers=2)
    sim = SimulatedHost(state_dir / "host.xml", vcpus=8, memory_mb=16384, disk_gb=200)
    driver = LibvirtDriver(sim.uri, simulated=sim)
    cache = ImageCache(state_dir / "images", client, limit_bytes=GIB, fetch_workers=2)
    bus = Bus("memory://", sender=f"host.{HOST}", namespace=f"test-{uuid.uuid4().hex[:12]}",
              polling_interval=0.001)
    events: queue.Queue[InstanceEvent] = queue.Queue()
    bus.serve(f"group.{GROUP}", {InstanceEvent: events.put, HostReport: lambda _m: None},
              workers=1)
    bus.start()
    try:
        yield Host(HostContext(options, driver, bus, cache, store=client), events)
    finally:
        bus.stop()
        cache.close()
        driver.close()


# -- images ---------------------------------------------------------------------------------


def upload_base(client: ImageStoreClient, tmp_path: Path) -> tuple[ImageRef, bytes]:
    data = random.Random(7).randbytes(BASE_DATA) + bytes(MIB)
    path = tmp_path / "base.raw"
    path.write_bytes(data)
    record = client.upload(client.create(name="base", disk_format="raw")["id"], path)
    assert record["status"] == "active"
    return ImageRef(id=record["id"], name="base", disk_format="raw", size=record["size"],
                    sha256=record["sha256"]), data


def queued_image(client: ImageStoreClient) -> str:
    return str(client.create(name="snap", disk_format="raw")["id"])


def request(instance_id: str, image_id: str) -> SnapshotDisk:
    return SnapshotDisk(instance_id=instance_id, task_id=str(uuid.uuid4()), image_id=image_id)


def leftovers(host: Host, instance_id: str) -> list[Path]:
    return sorted(host.instance_dir(instance_id).glob("snapshot-*"))


def write_into_overlay(host: Host, instance_id: str, offset: int, data: bytes,
                       tmp_path: Path) -> None:
    """Change the instance's disk as its guest would: through qcow2, with qemu-io."""
    source = tmp_path / "written.bin"
    source.write_bytes(data)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                    f"write -s {source} {offset} {len(data)}",
                    str(host.instance_dir(instance_id) / "disk")],
                   check=True, capture_output=True)


def sha256_of_disk(prefix: bytes, size: int) -> str:
    """The sha256 of ``prefix`` followed by zeros up to ``size`` bytes."""
    digest = hashlib.sha256(prefix)
    left, zeros = size - len(prefix), bytes(MIB)
    while left > 0:
        digest.update(zeros[:min(left, MIB)])
        left -= MIB
    return digest.hexdigest()


# -- the driver's export ------------------------------------------------------------------


def test_export_is_a_sparse_raw_copy_and_puts_the_guest_back_as_it_was(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, data = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=1)
    driver = host.ctx.driver
    dest = tmp_path / "export.raw"
    for state, act in ((PowerState.RUNNING, None), (PowerState.PAUSED, driver.pause),
                       (PowerState.SHUTDOWN, lambda i: driver.power_off(i, 5.0)),
                       (PowerState.SUSPENDED, lambda i: (driver.power_on(i),
                                                         driver.suspend(i)))):
        if act is not None:
            act(instance_id)
        assert driver.power_state(instance_id) is state
        driver.export_disk(instance_id, dest)
        assert driver.power_state(instance_id) is state  # a running guest is resumed
        assert dest.stat().st_size == GIB  # grown to the flavor's disk
        assert dest.stat().st_blocks * 512 <= BASE_DATA + MIB  # the zeros are holes
        with dest.open("rb") as f:
            assert f.read(len(data)) == data


# -- the workflow -----------------------------------------------------------------------------


def test_snapshot_of_an_unchanged_disk_sends_no_chunk_the_store_has(
        tmp_path: Path, client: ImageStoreClient, host: Host,
        caplog: pytest.LogCaptureFixture) -> None:
    base, data = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=1)
    image_id = queued_image(client)
    msg = request(instance_id, image_id)

    with caplog.at_level(logging.INFO, logger="instance_manager.snapshot"):
        counters = snapshot.snapshot(host.ctx, msg)

    event = host.event()
    assert (event.event, event.task_id, event.power_state) == (
        Event.ACTION_DONE, msg.task_id, PowerState.RUNNING)
    assert counters is not None
    assert (f"snapshot of {instance_id} into image {image_id}: sent 0 of "
            f"{counters['chunks']} chunks (0 bytes)") in caplog.messages
    base_chunks = [a for _o, _n, a in client.chunks(base.id)["chunks"] if a is not None]
    assert counters["chunks"] == len(base_chunks)
    assert counters["sent_chunks"] == 0 and counters["sent_bytes"] == 0
    # the zeros beyond the base's data are holes, never sent (bar the edge of its last chunk)
    assert GIB - BASE_DATA - MAX_CHUNK <= counters["zero_bytes"] <= GIB - BASE_DATA
    record = client.get(image_id)
    assert record["status"] == "active" and record["size"] == GIB
    assert record["sha256"] == sha256_of_disk(data, GIB)
    assert leftovers(host, instance_id) == []
    assert host.ctx.driver.power_state(instance_id) is PowerState.RUNNING


def test_snapshot_sends_only_the_chunks_the_guest_changed(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, data = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)  # the base's size: a 1 GiB disk is slow to cut
    written = random.Random(11).randbytes(64 * KIB)
    write_into_overlay(host, instance_id, MIB, written, tmp_path)
    image_id = queued_image(client)

    counters = snapshot.snapshot(host.ctx, request(instance_id, image_id))

    assert host.event().event is Event.ACTION_DONE
    assert counters is not None
    # the 64 KiB written, plus at most the chunks cut differently at either edge
    assert 64 * KIB <= counters["sent_bytes"] <= 64 * KIB + 2 * MAX_CHUNK + 1 * KIB
    assert counters["sent_chunks"] <= 64 * KIB // (AVG_KIB * KIB // 4) + 2
    assert counters["sent_chunks"] < counters["chunks"] // 10
    changed = data[:MIB] + written + data[MIB + len(written):]
    assert client.get(image_id)["sha256"] == hashlib.sha256(changed).hexdigest()
    assert leftovers(host, instance_id) == []


def test_snapshot_sends_every_chunk_when_the_store_has_none_of_them(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, data = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)  # the disk is the base's size
    client.delete(base.id)  # the host's cache keeps its base; the store forgets the chunks
    image_id = queued_image(client)

    counters = snapshot.snapshot(host.ctx, request(instance_id, image_id))

    assert host.event().event is Event.ACTION_DONE
    assert counters is not None
    assert counters["sent_chunks"] == counters["chunks"] > 0
    assert BASE_DATA <= counters["sent_bytes"] <= BASE_DATA * 1.01  # random: incompressible
    assert client.get(image_id)["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("rest", ["pause", "stop", "suspend"])
def test_snapshot_of_a_resting_guest_leaves_it_resting(
        tmp_path: Path, client: ImageStoreClient, host: Host, rest: str) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    driver = host.ctx.driver
    {"pause": driver.pause, "stop": lambda i: driver.power_off(i, 5.0),
     "suspend": driver.suspend}[rest](instance_id)
    before = driver.power_state(instance_id)

    snapshot.snapshot(host.ctx, request(instance_id, queued_image(client)))

    event = host.event()
    assert (event.event, event.power_state) == (Event.ACTION_DONE, before)
    assert driver.power_state(instance_id) is before


def test_a_redelivered_snapshot_whose_image_is_active_is_done_without_an_upload(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    msg = request(instance_id, queued_image(client))
    assert snapshot.snapshot(host.ctx, msg) is not None
    assert host.event().event is Event.ACTION_DONE

    assert snapshot.snapshot(host.ctx, msg) is None  # nothing exported, nothing sent
    again = host.event()
    assert (again.event, again.task_id) == (Event.ACTION_DONE, msg.task_id)
    assert leftovers(host, instance_id) == []


# -- failures: ACTION_FAILED with a reason, nothing left behind -----------------------------


def test_an_image_that_is_not_queued_is_refused(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    snapshot.snapshot(host.ctx, request(instance_id, base.id))  # an active image of someone
    event = host.event()
    assert event.event is Event.ACTION_DONE  # active: taken for an earlier, finished run
    busy = queued_image(client)
    client.missing(busy, [])  # a dedup upload started elsewhere: now saving
    snapshot.snapshot(host.ctx, request(instance_id, busy))
    event = host.event()
    assert event.event is Event.ACTION_FAILED
    assert f"image {busy} is saving, not queued" in event.reason
    assert event.power_state is PowerState.RUNNING


def test_a_deleted_image_fails_the_snapshot(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    image_id = queued_image(client)
    client.delete(image_id)
    assert snapshot.snapshot(host.ctx, request(instance_id, image_id)) is None
    event = host.event()
    assert event.event is Event.ACTION_FAILED
    assert event.reason == f"image {image_id} no longer exists in the image store"


def test_a_missing_instance_fails_the_snapshot(client: ImageStoreClient, host: Host) -> None:
    instance_id = str(uuid.uuid4())
    snapshot.snapshot(host.ctx, request(instance_id, queued_image(client)))
    event = host.event()
    assert (event.event, event.power_state) == (Event.ACTION_FAILED, PowerState.MISSING)
    assert f"no domain for instance {instance_id}" in event.reason


def test_a_failed_export_fails_the_snapshot_and_resumes_the_guest(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    (host.instance_dir(instance_id) / "disk").unlink()  # the overlay is gone under the guest
    image_id = queued_image(client)

    assert snapshot.snapshot(host.ctx, request(instance_id, image_id)) is None

    event = host.event()
    assert (event.event, event.power_state) == (Event.ACTION_FAILED, PowerState.RUNNING)
    assert event.reason.startswith(f"snapshot into image {image_id} failed: qemu-img convert")
    assert "No such file or directory" in event.reason
    assert host.ctx.driver.power_state(instance_id) is PowerState.RUNNING
    assert leftovers(host, instance_id) == []
    assert client.get(image_id)["status"] == "queued"  # nothing was sent


def test_a_failed_upload_fails_the_snapshot_and_removes_the_export(
        tmp_path: Path, client: ImageStoreClient, host: Host, faults: RefuseChunkPuts) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    write_into_overlay(host, instance_id, 0, random.Random(3).randbytes(64 * KIB), tmp_path)
    image_id = queued_image(client)
    faults.on = True

    assert snapshot.snapshot(host.ctx, request(instance_id, image_id)) is None

    event = host.event()
    assert event.event is Event.ACTION_FAILED
    assert event.reason.startswith(f"snapshot into image {image_id} failed: ")
    assert "no space left for chunks" in event.reason
    assert leftovers(host, instance_id) == []
    assert client.get(image_id)["status"] != "active"


def test_a_host_without_a_store_client_fails_the_snapshot(
        client: ImageStoreClient, host: Host) -> None:
    ctx = host.ctx
    without = HostContext(ctx.options, ctx.driver, ctx.bus, ctx.images, store=None)
    instance_id = str(uuid.uuid4())
    snapshot.snapshot(without, request(instance_id, queued_image(client)))
    event = host.event()
    assert event.event is Event.ACTION_FAILED
    assert event.reason == f"host {HOST} has no image store client to upload to"


# -- through the Instance Manager's queue ---------------------------------------------------


def test_the_instance_manager_serves_snapshot_disk_once_per_task(
        tmp_path: Path, client: ImageStoreClient, host: Host) -> None:
    base, _ = upload_base(client, tmp_path)
    instance_id = host.boot(base, disk_gb=0)
    manager = InstanceManager(host.ctx)
    manager.register()
    host.ctx.bus.wait_until_consuming()
    msg = request(instance_id, queued_image(client))

    host.ctx.bus.cast(f"host.{HOST}", msg)
    host.ctx.bus.cast(f"host.{HOST}", msg)  # a redelivery: same idempotency key

    event = host.event()
    assert (event.event, event.task_id, event.instance_id) == (
        Event.ACTION_DONE, msg.task_id, instance_id)
    assert client.get(msg.image_id)["status"] == "active"
    assert host.no_more_events()
