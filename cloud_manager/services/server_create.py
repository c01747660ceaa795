"""One create request: one server, or N of them (``min_count``/``max_count``), maybe
joining a server group.

Every instance of a request is written in one transaction, goes to one host group
and leaves in one bus message: ``build_instance`` for a single server, or one
``build_instances`` for a multi-create, so that the Group Manager can place the
servers together, all or nothing down to ``min_count``. The rows are written before
the message is sent; if the bus refuses it, every row is removed again (and a
server group pinned by this request is unpinned): 503, nothing created.

Names follow Nova's default template: ``<name>-1`` .. ``<name>-N`` when
``max_count`` > 1, and the servers share a reservation id (``r-`` + 8 hex digits).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.db.models import Flavor, Instance
from cloud_manager.errors import BadInput, Unavailable
from cloud_manager.services import flavors, groups, images, keypairs, quotas, server_groups
from cloud_manager.services.network import server_ports
from cloud_manager.services.network.server_ports import NetworkRequest
from cloud_manager.services.notify import state_changed
from ironbark.db import utcnow
from message_bus import context
from message_bus.lifecycle import TaskState, VmState
from message_bus.messages import (
    USER_DATA_MAX,
    BootImages,
    BuildInstance,
    BuildInstances,
    FlavorSpec,
    GuestConfig,
    ServerGroupRef,
)

log = logging.getLogger(__name__)

MAX_COUNT = 100  # servers one request may ask for
NAME_LENGTH = 255


@dataclass(frozen=True)
class CreateRequest:
    """What ``POST /v1/servers`` asks for; references are ids or names."""

    name: str
    flavor_ref: str
    image_ref: str
    group: str | None = None
    server_group: str | None = None
    min_count: int = 1
    max_count: int = 1
    key_name: str | None = None
    user_data: str | None = None  # base64
    metadata: dict[str, str] | None = None
    networks: NetworkRequest | None = None  # None: Nova's default (the only network)

    @property
    def multi(self) -> bool:
        return self.max_count > 1


@dataclass(frozen=True)
class Created:
    """The servers of one request, in name order; ``reservation_id`` None for one server."""

    instances: list[Instance]
    reservation_id: str | None


def group_target(group: str) -> str:
    """The bus target of a host group's Group Manager."""
    return f"group.{group}"


def check(request: CreateRequest) -> None:
    """The counts and the names they make; the API's schema checks the types."""
    for field, value in (("min_count", request.min_count), ("max_count", request.max_count)):
        if not 1 <= value <= MAX_COUNT:
            raise BadInput(f"field '{field}': must be between 1 and {MAX_COUNT}, got {value}",
                           field=field)
    if request.min_count > request.max_count:
        raise BadInput(f"field 'min_count': {request.min_count} is more than max_count "
                       f"{request.max_count}", field="min_count")
    if request.user_data is not None:
        check_user_data(request.user_data)
    longest = names(request)[-1]
    if len(longest) > NAME_LENGTH:
        raise BadInput(f"field 'name': with max_count {request.max_count} the names would be "
                       f"up to {len(longest)} characters (at most {NAME_LENGTH})", field="name")


def check_user_data(encoded: str) -> None:
    """Base64 of at most USER_DATA_MAX bytes (Nova's limit), or a 400 naming it."""
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("field 'user_data': not valid base64", field="user_data") from None
    if len(decoded) > USER_DATA_MAX:
        raise BadInput(f"field 'user_data': {len(decoded)} bytes decoded, at most "
                       f"{USER_DATA_MAX}", field="user_data")


def names(request: CreateRequest) -> list[str]:
    if not request.multi:
        return [request.name]
    return [f"{request.name}-{i}" for i in range(1, request.max_count + 1)]


def new_reservation_id() -> str:
    return f"r-{secrets.token_hex(4)}"


def create(ctx: CloudContext, principal: Principal, request: CreateRequest) -> Created:
    check(request)
    now = utcnow()
    with ctx.sessions() as session:
        if flavors.find(session, principal, request.flavor_ref) is None:
            raise _no_flavor(request.flavor_ref)
    # The image store owns image records: ask it (over HTTP) outside any transaction.
    image = images.bootable(ctx, principal, request.image_ref)
    boot = images.boot_images(ctx, principal, image)
    with ctx.sessions.begin() as session:
        flavor = flavors.find(session, principal, request.flavor_ref)
        if flavor is None:
            raise _no_flavor(request.flavor_ref)
        _check_fits(flavor, image)
        allowed = quotas.servers_allowed(session, principal.project_id, flavor.vcpus,
                                         flavor.memory_mb, request.min_count,
                                         request.max_count)
        if allowed < request.max_count:  # as Nova: fewer servers, if min_count still fit
            request = dataclasses.replace(request, max_count=allowed)
        networks = request.networks or NetworkRequest()
        server_ports.check(session, principal, networks, request.max_count)
        key = (keypairs.for_server(session, principal, request.key_name)
               if request.key_name is not None else None)
        server_group, pinned = None, None
        if request.server_group is not None:
            # Locked until commit: a concurrent first member waits, then sees our pin.
            server_group = server_groups.lock_for_member(session, principal,
                                                         request.server_group)
            pinned = server_groups.pinned_group(session, server_group)
            server_groups.check_requested(server_group, pinned, request.group)
            quotas.check_count(session, principal.project_id, "server_group_members",
                               len(server_groups.members(session, [server_group.id])
                                   .get(server_group.id, [])) + request.max_count)
        chosen = pinned or groups.choose(session, request.group, flavor,
                                         ctx.config.cloud.group_stale_after)
        newly_pinned = server_group is not None and pinned is None and chosen is not None
        if newly_pinned:
            assert server_group is not None
            server_group.group_name = chosen
        reservation_id = new_reservation_id() if request.multi else None
        instances = [
            _instance(ctx, principal, name, flavor, image, chosen, now,
                      server_group.id if server_group else None, reservation_id)
            for name in names(request)
        ]
        for instance in instances:
            instance.key_name = key.name if key else None
            instance.key_data = key.public_key if key else None
            instance.user_data = request.user_data
            instance.user_id = principal.user_id or None
            instance.server_metadata = dict(request.metadata or {})
        session.add_all(instances)
        if chosen is not None:
            session.flush()
            server_ports.allocate(session, principal, instances, networks)
        group_ref = server_groups.ref(server_group) if server_group else None
        builds = [_build(i, flavor, image, group_ref, boot, index)
                  for index, i in enumerate(instances)]
        server_group_id = server_group.id if newly_pinned and server_group else None
    if chosen is None:
        log.warning("%d server(s) in ERROR: %s", len(instances), instances[0].fault)
    else:
        message: BuildInstance | BuildInstances = builds[0]
        if reservation_id is not None:
            message = BuildInstances(reservation_id=reservation_id,
                                     min_count=request.min_count, builds=builds)
        _send_or_remove(ctx, chosen, message, [i.id for i in instances], server_group_id)
        log.info("%d server(s) (%s) sent to group %s%s", len(instances), request.name, chosen,
                 f" as reservation {reservation_id}" if reservation_id else "")
    for instance in instances:
        state_changed(ctx, instance)
    return Created(instances, reservation_id)


def _no_flavor(ref: str) -> BadInput:
    return BadInput(f"no flavor with id or name '{ref}'", field="flavor")


def _check_fits(flavor: Flavor, image: dict[str, Any]) -> None:
    """The image's minimums, as Nova checks them (a 0 GB root disk takes the image's size)."""
    min_ram, min_disk = image.get("min_ram") or 0, image.get("min_disk") or 0
    if flavor.memory_mb < min_ram:
        raise BadInput(f"flavor '{flavor.name}' has {flavor.memory_mb} MiB of memory; image "
                       f"'{image['name']}' needs at least {min_ram} MiB", field="flavor")
    if flavor.disk_gb and flavor.disk_gb < min_disk:
        raise BadInput(f"flavor '{flavor.name}' has a {flavor.disk_gb} GB disk; image "
                       f"'{image['name']}' needs at least {min_disk} GB", field="flavor")


def _instance(ctx: CloudContext, principal: Principal, name: str, flavor: Flavor,
              image: dict[str, Any], chosen: str | None, now: dt.datetime,
              server_group_id: str | None, reservation_id: str | None) -> Instance:
    """A new row in BUILD/scheduling; in ERROR at once when no group can take it."""
    instance = Instance(
        id=str(uuid.uuid4()), project_id=principal.project_id, name=name,
        flavor_id=flavor.id, flavor_name=flavor.name, vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb, disk_gb=flavor.disk_gb, image_id=image["id"],
        image_name=image["name"], vm_state=VmState.BUILDING.value,
        task_state=TaskState.SCHEDULING.value, task_id=str(uuid.uuid4()),
        task_deadline=ctx.deadline(TaskState.SCHEDULING, now), group_name=chosen,
        request_id=context.current_request_id(), created_at=now,
        server_group_id=server_group_id, reservation_id=reservation_id,
    )
    if chosen is None:
        stale = ctx.config.cloud.group_stale_after
        instance.vm_state, instance.task_state = VmState.ERROR.value, None
        instance.task_id = instance.task_deadline = None
        instance.fault = (f"No valid host: no Group Manager with hosts up has reported "
                          f"in the last {stale:g} s")
        instance.fault_at = now
    return instance


def _build(instance: Instance, flavor: Flavor, image: dict[str, Any],
           server_group: ServerGroupRef | None, boot: BootImages | None,
           launch_index: int) -> BuildInstance:
    return BuildInstance(
        instance_id=instance.id, project_id=instance.project_id, name=instance.name,
        flavor=FlavorSpec(name=flavor.name, vcpus=flavor.vcpus, memory_mb=flavor.memory_mb,
                          disk_gb=flavor.disk_gb),
        image=images.image_ref(image),
        task_id=instance.task_id or "", server_group=server_group, boot=boot,
        guest=_guest(instance, launch_index),
    )


def _guest(instance: Instance, launch_index: int) -> GuestConfig:
    """What the instance's config drive tells the guest about itself."""
    return GuestConfig(hostname=hostname_of(instance.name), project_id=instance.project_id,
                       availability_zone=instance.group_name, key_name=instance.key_name,
                       public_key=instance.key_data, user_data=instance.user_data,
                       launch_index=launch_index)


def hostname_of(name: str) -> str:
    """The guest's hostname from its display name, as Nova sanitises it: lowercase
    letters, digits and '-', at most 63 characters, no '-' at either end."""
    cleaned = re.sub(r"[ _.]", "-", name.lower())
    cleaned = re.sub(r"[^a-z0-9-]", "", cleaned)
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:63].strip("-")
    return cleaned or "server"



def _send_or_remove(ctx: CloudContext, group: str, message: BuildInstance | BuildInstances,
                    instance_ids: list[str], pinned_server_group: str | None) -> None:
    """Cast the build; if the bus refuses it, remove what this request wrote."""
    try:
        ctx.bus.cast(group_target(group), message)
    except Exception as exc:
        with ctx.sessions.begin() as session:
            server_ports.release(session, instance_ids)
            session.execute(sa.delete(Instance).where(Instance.id.in_(instance_ids)))
            if pinned_server_group is not None:
                server_groups.unpin_if_empty(session, pinned_server_group, group)
        raise Unavailable(f"the message bus is unavailable ({exc}); nothing was created") \
            from exc
