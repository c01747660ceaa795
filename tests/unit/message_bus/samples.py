"""One minimal, valid instance of every bus message, built explicitly field by field."""

from __future__ import annotations

from message_bus import messages as m
from message_bus.envelope import Message
from message_bus.lifecycle import Action, Event, PowerState

INSTANCE = "3f0c2a1e-0000-4000-8000-000000000001"
TASK = "7d1b9c2e-0000-4000-8000-000000000002"
IMAGE_ID = "5e2a7f3c-0000-4000-8000-000000000003"

FLAVOR = m.FlavorSpec(name="m1.small", vcpus=1, memory_mb=2048, disk_gb=20)
IMAGE = m.ImageRef(id="img-1", name="cirros", disk_format="qcow2", size=16_338_944,
                   sha256="ab" * 32)
CAPACITY = m.Resources(vcpus=16, memory_mb=65536, disk_gb=1000)
RESERVED = m.Resources(vcpus=0, memory_mb=512, disk_gb=0)


def _view(total: int, ratio: float) -> m.ResourceView:
    capacity = int(total * ratio)
    return m.ResourceView(total=total, reserved=0, allocation_ratio=ratio, capacity=capacity,
                          used=1, free=capacity - 1)


HOST_VIEW = m.HostView(
    name="hv1", group="rack1", state="up", enabled=True, hypervisor_type="simulated",
    vcpus=_view(16, 16.0), memory_mb=_view(65536, 1.5), disk_gb=_view(1000, 1.0),
    instances=1, last_seen_at=1.7e9,
)


def samples() -> dict[str, Message]:
    """Every message class by NAME, with only its required fields set."""
    built: list[Message] = [
        m.BuildInstance(instance_id=INSTANCE, project_id="alpha", name="web1", flavor=FLAVOR,
                        image=IMAGE, task_id=TASK),
        m.BuildInstances(reservation_id="r-0123abcd", min_count=1, builds=[
            m.BuildInstance(instance_id=INSTANCE, project_id="alpha", name="web-1",
                            flavor=FLAVOR, image=IMAGE, task_id=TASK,
                            server_group=m.ServerGroupRef(id=IMAGE_ID, name="web",
                                                          policy="anti-affinity"))]),
        m.InstanceAction(instance_id=INSTANCE, action=Action.STOP, task_id=TASK),
        m.SnapshotInstance(instance_id=INSTANCE, task_id=TASK, image_id=IMAGE_ID),
        m.DeleteInstance(instance_id=INSTANCE, task_id=TASK),
        m.HostList(group="rack1", hosts=[HOST_VIEW]),
        m.ListHosts(),
        m.InstanceObservation(instance_id=INSTANCE, host=None, power_state=None),
        m.DescribeInstance(instance_id=INSTANCE),
        m.Spawn(instance_id=INSTANCE, name="web1", flavor=FLAVOR, image=IMAGE, task_id=TASK),
        m.PowerAction(instance_id=INSTANCE, action=Action.PAUSE, task_id=TASK),
        m.SnapshotDisk(instance_id=INSTANCE, task_id=TASK, image_id=IMAGE_ID),
        m.Destroy(instance_id=INSTANCE, task_id=TASK),
        m.DomainReport(instance_id=INSTANCE, power_state=PowerState.RUNNING),
        m.DescribeDomain(instance_id=INSTANCE),
        m.GetConsoleOutput(instance_id=INSTANCE, max_bytes=4096),
        m.ConsoleOutput(instance_id=INSTANCE, output="login: ", truncated=True),
        m.HostReport(host="hv1", group="rack1", boot_id="boot-1", hypervisor_type="simulated",
                     capacity=CAPACITY, reserved=RESERVED,
                     domains=[m.DomainState(instance_id=INSTANCE,
                                            power_state=PowerState.SHUTDOWN)],
                     observed_at=1.7e9),
        m.InstanceEvent(instance_id=INSTANCE, host="hv1", task_id=TASK, event=Event.SPAWNED,
                        power_state=PowerState.RUNNING, observed_at=1.7e9),
        m.InstanceUpdate(instance_id=INSTANCE, task_id=TASK, event=Event.SCHEDULED,
                         group="rack1"),
        m.PowerStateSync(group="rack1", changes=[
            m.PowerStateChange(instance_id=INSTANCE, host="hv1",
                               power_state=PowerState.CRASHED, observed_at=1.7e9)]),
        m.GroupSummary(group="rack1", policy="spread", hosts_up=1, hosts_down=0,
                       hosts_empty=1, capacity=CAPACITY, used=RESERVED, largest_free=CAPACITY),
        m.InstanceStateChanged(instance_id=INSTANCE, project_id="alpha", status="ACTIVE",
                               vm_state="active", task_state=None, power_state="running",
                               host="hv1", fault=None),
        m.HostStateChanged(host="hv1", group="rack1", state="down", reason="no report"),
    ]
    return {msg.NAME: msg for msg in built}


# The casts that change something somewhere: a redelivery must be done once.
MUTATING = {
    "build_instance", "build_instances", "instance_action", "delete_instance", "spawn",
    "power_action",
    "destroy", "instance_event", "instance_update", "snapshot_instance", "snapshot_disk",
}
