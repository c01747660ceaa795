"""Every message the tiers exchange, defined once.

Read top to bottom, this file is the protocol:

* Cloud Manager -> Group Manager (``group.<name>``): build, act on, snapshot, delete
  an instance; list hosts; describe an instance for reconciliation.
* Group Manager -> Instance Manager (``host.<name>``): spawn, power action, snapshot
  a disk, destroy; describe a domain.
* Instance Manager -> Group Manager: host reports (capacity, heartbeat, every
  domain's power state) and instance events (a task finished or failed).
* Group Manager -> Cloud Manager (``cloud``): instance updates, power-state changes,
  group capacity summaries.
* Events on the topic exchange, for anyone who listens: instance and host state
  changes.

Changing a message's fields means bumping its VERSION; the fingerprint test in
``tests/unit/message_bus/test_messages.py`` fails until that is done.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from message_bus.envelope import Kind, Message
from message_bus.lifecycle import Action, Event, PowerState

POWER_ACTIONS = frozenset(
    {Action.START, Action.STOP, Action.REBOOT, Action.REBOOT_HARD, Action.PAUSE,
     Action.UNPAUSE, Action.SUSPEND, Action.RESUME}
)


def _power_only(value: Action) -> Action:
    if value not in POWER_ACTIONS:
        raise ValueError(f"'{value}' is not a power action")
    return value


# The schema lists the power actions only, so that a new non-power action (a snapshot,
# a migration) does not change the messages that carry one.
PowerActionName = Annotated[
    Action, AfterValidator(_power_only),
    WithJsonSchema({"type": "string", "enum": sorted(a.value for a in POWER_ACTIONS)}),
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FlavorSpec(_Part):
    name: str
    vcpus: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    disk_gb: int = Field(ge=0)


class ImageRef(_Part):
    id: str
    name: str
    disk_format: str
    size: int = Field(ge=0)
    sha256: str


class BootImages(_Part):
    """Direct kernel boot (Eucalyptus EKI/ERI, Glance's AMI-style images): the root
    image's ``kernel_id``/``ramdisk_id`` images and its ``os_command_line`` property.
    Without them the root image is a whole disk that boots through the BIOS."""

    kernel: ImageRef
    ramdisk: ImageRef | None = None
    cmdline: str | None = None


USER_DATA_MAX = 65535  # bytes, decoded (Nova's limit)


class GuestConfig(_Part):
    """What the guest reads about itself from its config drive (OpenStack layout:
    ``openstack/latest/meta_data.json`` and ``user_data``)."""

    hostname: str
    project_id: str
    availability_zone: str | None = None
    key_name: str | None = None
    public_key: str | None = None  # OpenSSH format, one line
    user_data: str | None = None  # base64 as the API took it; decoded <= USER_DATA_MAX
    launch_index: int = Field(0, ge=0)


ServerGroupPolicy = Literal["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
SERVER_GROUP_POLICIES: tuple[str, ...] = ("affinity", "anti-affinity", "soft-affinity",
                                          "soft-anti-affinity")


class ServerGroupRef(_Part):
    """A server group a new instance joins: the group's scheduler keeps its members
    together (affinity) or apart (anti-affinity); the soft variants are preferences."""

    id: str
    name: str
    policy: ServerGroupPolicy


class Resources(_Part):
    vcpus: int = Field(ge=0)
    memory_mb: int = Field(ge=0)
    disk_gb: int = Field(ge=0)


class ResourceView(_Part):
    """One resource of one host: capacity = (total - reserved) x allocation_ratio."""

    total: int
    reserved: int
    allocation_ratio: float
    capacity: int
    used: int
    free: int


class HostView(_Part):
    name: str
    group: str
    state: str  # "up" or "down"
    enabled: bool
    hypervisor_type: str
    vcpus: ResourceView
    memory_mb: ResourceView
    disk_gb: ResourceView
    instances: int
    last_seen_at: float | None
    unknown_domains: list[str] = []


class DomainState(_Part):
    instance_id: str
    power_state: PowerState


# --- Cloud Manager -> Group Manager ----------------------------------------------------


class _InstanceMessage(Message):
    instance_id: str

    def ordering_key(self) -> str | None:
        return self.instance_id


class BuildInstance(_InstanceMessage):
    """Place a new instance on a host of the group and have it spawned there.

    1.1: ``server_group``, the server group the instance joins (None: none).
    1.2: ``boot`` (direct kernel boot) and ``guest`` (the config drive's contents).
    """

    NAME: ClassVar[str] = "build_instance"
    VERSION: ClassVar[tuple[int, int]] = (1, 2)
    project_id: str
    name: str
    flavor: FlavorSpec
    image: ImageRef
    task_id: str
    server_group: ServerGroupRef | None = None
    boot: BootImages | None = None
    guest: GuestConfig | None = None

    def idempotency_key(self) -> str:
        return f"build:{self.instance_id}"


class BuildInstances(Message):
    """Several instances created by one request (``min_count``/``max_count``): the group
    places them together, all or nothing down to ``min_count``. If fewer than
    ``min_count`` fit, none is spawned and every one fails with the reason; otherwise
    those that fit are spawned and the rest (beyond ``min_count``) fail.

    1.1: its builds are ``build_instance`` 1.2.
    """

    NAME: ClassVar[str] = "build_instances"
    VERSION: ClassVar[tuple[int, int]] = (1, 1)
    reservation_id: str
    min_count: int = Field(ge=1)
    builds: list[BuildInstance] = Field(min_length=1)

    def ordering_key(self) -> str:
        return f"reservation:{self.reservation_id}"

    def idempotency_key(self) -> str:
        return f"build-batch:{self.reservation_id}"


class InstanceAction(_InstanceMessage):
    """Run a power action on an instance the group placed.

    1.1: the schema of ``action`` lists the power actions only (the body is unchanged).
    """

    NAME: ClassVar[str] = "instance_action"
    VERSION: ClassVar[tuple[int, int]] = (1, 1)
    action: PowerActionName
    task_id: str

    def idempotency_key(self) -> str:
        return f"action:{self.task_id}"


class SnapshotInstance(_InstanceMessage):
    """Copy an instance's disk into ``image_id``, a queued image of the image store.

    The host reports the end with ``instance_event`` (action_done / action_failed).
    """

    NAME: ClassVar[str] = "snapshot_instance"
    task_id: str
    image_id: str

    def idempotency_key(self) -> str:
        return f"snapshot:{self.task_id}"


class DeleteInstance(_InstanceMessage):
    """Destroy an instance's guest and release its claim."""

    NAME: ClassVar[str] = "delete_instance"
    task_id: str

    def idempotency_key(self) -> str:
        return f"delete:{self.task_id}"


class HostList(Message):
    NAME: ClassVar[str] = "host_list"
    KIND: ClassVar[Kind] = "reply"
    group: str
    hosts: list[HostView]


class ListHosts(Message):
    NAME: ClassVar[str] = "list_hosts"
    KIND: ClassVar[Kind] = "call"
    REPLY: ClassVar[type[Message]] = HostList


class InstanceObservation(Message):
    """What a group can tell about one instance right now (for reconciliation)."""

    NAME: ClassVar[str] = "instance_observation"
    KIND: ClassVar[Kind] = "reply"
    instance_id: str
    host: str | None
    power_state: PowerState | None  # None: nobody could tell
    note: str = ""


class DescribeInstance(_InstanceMessage):
    NAME: ClassVar[str] = "describe_instance"
    KIND: ClassVar[Kind] = "call"
    REPLY: ClassVar[type[Message]] = InstanceObservation


CONSOLE_MAX_BYTES = 1024 * 1024  # the most of a console log one answer carries


class ConsoleOutput(Message):
    """The tail of an instance's serial console; ``output`` None when it could not be
    read, and ``note`` says why (no host yet, host down, no domain)."""

    NAME: ClassVar[str] = "console_output"
    KIND: ClassVar[Kind] = "reply"
    instance_id: str
    output: str | None
    truncated: bool = False  # the log is longer than what came back
    note: str = ""


class GetConsoleOutput(Message):
    """Read the tail of an instance's serial console. The Cloud Manager asks the group;
    the group forwards the same message to the instance's host. Not ordered with the
    instance's other messages: a read need not wait behind a minute-long shutdown."""

    NAME: ClassVar[str] = "get_console_output"
    KIND: ClassVar[Kind] = "call"
    REPLY: ClassVar[type[Message]] = ConsoleOutput
    instance_id: str
    max_bytes: int = Field(CONSOLE_MAX_BYTES, ge=1, le=CONSOLE_MAX_BYTES)


# --- Group Manager -> Instance Manager -------------------------------------------------


class Spawn(_InstanceMessage):
    """Create and start the instance's guest on this host.

    1.1: ``boot`` (direct kernel boot) and ``guest`` (the config drive's contents).
    """

    NAME: ClassVar[str] = "spawn"
    VERSION: ClassVar[tuple[int, int]] = (1, 1)
    name: str
    flavor: FlavorSpec
    image: ImageRef
    task_id: str
    boot: BootImages | None = None
    guest: GuestConfig | None = None

    def idempotency_key(self) -> str:
        return f"spawn:{self.instance_id}"


class PowerAction(_InstanceMessage):
    """Run a power action on the instance's guest.

    1.1: the schema of ``action`` lists the power actions only (the body is unchanged).
    """

    NAME: ClassVar[str] = "power_action"
    VERSION: ClassVar[tuple[int, int]] = (1, 1)
    action: PowerActionName
    task_id: str

    def idempotency_key(self) -> str:
        return f"power:{self.task_id}"


class SnapshotDisk(_InstanceMessage):
    """Export the instance's disk and upload the chunks the image store lacks."""

    NAME: ClassVar[str] = "snapshot_disk"
    task_id: str
    image_id: str

    def idempotency_key(self) -> str:
        return f"snapshot-disk:{self.task_id}"


class Destroy(_InstanceMessage):
    NAME: ClassVar[str] = "destroy"
    task_id: str

    def idempotency_key(self) -> str:
        return f"destroy:{self.task_id}"


class DomainReport(Message):
    NAME: ClassVar[str] = "domain_report"
    KIND: ClassVar[Kind] = "reply"
    instance_id: str
    power_state: PowerState


class DescribeDomain(_InstanceMessage):
    NAME: ClassVar[str] = "describe_domain"
    KIND: ClassVar[Kind] = "call"
    REPLY: ClassVar[type[Message]] = DomainReport


# --- Instance Manager -> Group Manager -------------------------------------------------


class HostReport(Message):
    """A host's full picture: sent periodically (the heartbeat), at start and after
    every change. ``boot_id`` changes when the Instance Manager restarts."""

    NAME: ClassVar[str] = "host_report"
    host: str
    group: str
    boot_id: str
    hypervisor_type: str
    capacity: Resources
    reserved: Resources
    domains: list[DomainState]
    unknown_domains: list[str] = []
    observed_at: float  # host clock when the domains were read: older news never wins

    def ordering_key(self) -> str:
        return f"host:{self.host}"


class InstanceEvent(_InstanceMessage):
    """A task on a host finished (or failed)."""

    NAME: ClassVar[str] = "instance_event"
    host: str
    task_id: str
    event: Event
    power_state: PowerState
    reason: str = ""
    observed_at: float

    def idempotency_key(self) -> str:
        return f"event:{self.instance_id}:{self.task_id}:{self.event}"


# --- Group Manager -> Cloud Manager ----------------------------------------------------


class InstanceUpdate(_InstanceMessage):
    """The outcome of a step of an instance's current task."""

    NAME: ClassVar[str] = "instance_update"
    task_id: str
    event: Event
    group: str
    host: str | None = None
    power_state: PowerState | None = None
    reason: str = ""
    observed_at: float | None = None

    def idempotency_key(self) -> str:
        return f"update:{self.instance_id}:{self.task_id}:{self.event}"


class PowerStateChange(_Part):
    instance_id: str
    host: str
    power_state: PowerState
    observed_at: float


class PowerStateSync(Message):
    """Power states that changed outside any task (a guest shut itself down, a domain
    vanished). Last writer wins, so no idempotency key is needed."""

    NAME: ClassVar[str] = "power_state_sync"
    group: str
    changes: list[PowerStateChange]


class GroupSummary(Message):
    """A group's capacity at a glance, for the Cloud Manager's choice of group.

    1.1: ``hosts_empty``.
    """

    NAME: ClassVar[str] = "group_summary"
    VERSION: ClassVar[tuple[int, int]] = (1, 1)
    group: str
    policy: str
    hosts_up: int
    hosts_down: int
    hosts_empty: int = 0  # up hosts running no instance (power-save can turn them off)
    capacity: Resources  # sum over up hosts of capacity
    used: Resources
    largest_free: Resources  # per resource, the most any single up host has free

    def ordering_key(self) -> str:
        return f"group:{self.group}"


# --- Events (topic exchange) -----------------------------------------------------------


class InstanceStateChanged(Message):
    NAME: ClassVar[str] = "instance.state_changed"
    KIND: ClassVar[Kind] = "event"
    instance_id: str
    project_id: str
    status: str
    vm_state: str
    task_state: str | None
    power_state: str | None
    host: str | None
    fault: str | None


class HostStateChanged(Message):
    NAME: ClassVar[str] = "host.state_changed"
    KIND: ClassVar[Kind] = "event"
    host: str
    group: str
    state: str
    reason: str
