"""Nova v2.1 JSON for servers, flavors, key pairs, server groups and hypervisors.

Shapes follow the compute API reference at microversion 2.1; the schema tests in
tests/integration/openstack check them key by key. Extension keys keep their
upstream prefixes (``OS-EXT-STS:vm_state``); the ``OS-EXT-SRV-ATTR:*`` keys are the
admin's only, as Nova's default policy has it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from typing import Any

from cloud_manager.api.openstack.common import base_url, iso
from cloud_manager.auth import Principal
from cloud_manager.db.models import Flavor, Instance, KeyPair, ServerGroup
from message_bus.lifecycle import status
from message_bus.messages import HostView

# nova.compute.power_state
POWER_STATES = {None: 0, "running": 1, "paused": 3, "shutdown": 4, "crashed": 6,
                "suspended": 7, "missing": 0}


def links(kind: str, ident: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base_url()}/compute/v2.1/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base_url()}/compute/{kind}/{ident}"}]


def usage_time(value: dt.datetime | None) -> str | None:
    """Nova's OS-SRV-USG times: no zone letter, microseconds."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def host_id(project_id: str, host: str | None) -> str:
    """Nova's hostId: the same for a project's servers on one host, opaque across projects."""
    return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""


def server_brief(i: Instance) -> dict[str, Any]:
    return {"id": i.id, "links": links("servers", i.id), "name": i.name}


def server(i: Instance, principal: Principal, addresses: dict[str, Any] | None = None,
           security_groups: list[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "accessIPv4": "", "accessIPv6": "",
        "addresses": addresses or {},
        "config_drive": "True",
        "created": iso(i.created_at),
        "flavor": {"id": i.flavor_id, "links": links("flavors", i.flavor_id)[1:]},
        "hostId": host_id(i.project_id, i.host),
        "id": i.id,
        "image": {"id": i.image_id, "links": links("images", i.image_id)[1:]},
        "key_name": i.key_name,
        "links": links("servers", i.id),
        "metadata": dict(i.server_metadata or {}),
        "name": i.name,
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": i.group_name or "",
        "OS-EXT-STS:power_state": POWER_STATES.get(i.power_state, 0),
        "OS-EXT-STS:task_state": i.task_state,
        "OS-EXT-STS:vm_state": i.vm_state,
        "os-extended-volumes:volumes_attached": [],
        "OS-SRV-USG:launched_at": usage_time(i.launched_at),
        "OS-SRV-USG:terminated_at": usage_time(i.deleted_at),
        "progress": 100 if i.vm_state == "active" else 0,
        "security_groups": [{"name": n} for n in (security_groups or ["default"])],
        "status": status(i.vm_state, i.task_state),
        "tenant_id": i.project_id,
        "updated": iso(i.updated_at),
        "user_id": i.user_id or "",
    }
    if principal.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = i.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = i.host
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{i.id}"
    if i.fault and view["status"] in ("ERROR", "DELETED"):
        view["fault"] = {"code": 500, "created": iso(i.fault_at), "message": i.fault}
    return view


def flavor_brief(f: Flavor) -> dict[str, Any]:
    return {"id": f.id, "links": links("flavors", f.id), "name": f.name}


def flavor(f: Flavor) -> dict[str, Any]:
    return {"id": f.id, "name": f.name, "ram": f.memory_mb, "disk": f.disk_gb,
            "vcpus": f.vcpus, "links": links("flavors", f.id),
            "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": f.is_public, "rxtx_factor": 1.0, "swap": ""}


def keypair_brief(k: KeyPair) -> dict[str, Any]:
    return {"keypair": {"fingerprint": k.fingerprint, "name": k.name,
                        "public_key": k.public_key}}


def keypair(k: KeyPair, user_id: str) -> dict[str, Any]:
    return {"created_at": usage_time(k.created_at), "deleted": False, "deleted_at": None,
            "fingerprint": k.fingerprint, "id": numeric_id(k.id), "name": k.name,
            "public_key": k.public_key, "updated_at": None, "user_id": user_id}


def server_group(sg: ServerGroup, members: list[str]) -> dict[str, Any]:
    return {"id": sg.id, "name": sg.name, "policies": [sg.policy], "members": members,
            "metadata": {}}


def numeric_id(name: str) -> int:
    """A stable integer id where 2.1 documents one (hypervisors, key pairs) but the
    record is keyed by name or uuid: CRC-32 of the key, 31 bits."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def hypervisor_brief(h: HostView) -> dict[str, Any]:
    return {"id": numeric_id(h.name), "hypervisor_hostname": h.name,
            "state": h.state, "status": "enabled" if h.enabled else "disabled"}


def hypervisor(h: HostView) -> dict[str, Any]:
    """Capacities are what the scheduler places against: (total - reserved) x ratio."""
    mem, disk, cpu = h.memory_mb, h.disk_gb, h.vcpus
    return {**hypervisor_brief(h),
            "cpu_info": "{}", "current_workload": 0,
            "disk_available_least": disk.free, "free_disk_gb": disk.free,
            "free_ram_mb": mem.free, "host_ip": "",
            "hypervisor_type": "QEMU" if h.hypervisor_type == "qemu" else "test",
            "hypervisor_version": 1,
            "local_gb": disk.capacity, "local_gb_used": disk.used,
            "memory_mb": mem.capacity, "memory_mb_used": mem.used,
            "running_vms": h.instances,
            "service": {"host": h.name, "id": numeric_id("service:" + h.name),
                        "disabled_reason": None if h.enabled else "disabled by the operator"},
            "vcpus": cpu.capacity, "vcpus_used": cpu.used}
