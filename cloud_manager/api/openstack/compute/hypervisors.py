"""``os-hypervisors`` (+ statistics) and ``os-services``: the hosts, for the admin.

The Group Managers own the inventory; the hosts are asked of them live
(``services.hosts``). Memory, disk and vCPUs are shown as the scheduler sees them,
``(total - reserved) x allocation_ratio``, next to what is claimed, so the numbers
answer "how much more fits" (Nova reports the physical totals instead).
"""

from __future__ import annotations

from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import cloud, iso, require_admin
from cloud_manager.api.openstack.compute import blueprint, views
from cloud_manager.errors import NotFound
from cloud_manager.services import groups, hosts
from message_bus.messages import HostView


def _hosts() -> list[HostView]:
    require_admin("os_compute_api:os-hypervisors")
    found, _ = hosts.listing(cloud())
    pattern = request.args.get("hypervisor_hostname_pattern")
    if pattern:
        found = [h for h in found if pattern in h.name]
    return found


@blueprint.get("/v2.1/os-hypervisors")
def list_hypervisors() -> Response:
    return jsonify({"hypervisors": [views.hypervisor_brief(h) for h in _hosts()]})


@blueprint.get("/v2.1/os-hypervisors/detail")
def list_hypervisors_detail() -> Response:
    return jsonify({"hypervisors": [views.hypervisor(h) for h in _hosts()]})


@blueprint.get("/v2.1/os-hypervisors/statistics")
def hypervisor_statistics() -> Response:
    found = [views.hypervisor(h) for h in _hosts()]
    keys = ("current_workload", "disk_available_least", "free_disk_gb", "free_ram_mb",
            "local_gb", "local_gb_used", "memory_mb", "memory_mb_used", "running_vms",
            "vcpus", "vcpus_used")
    stats = {key: sum(h[key] for h in found) for key in keys}
    return jsonify({"hypervisor_statistics": {"count": len(found), **stats}})


@blueprint.get("/v2.1/os-hypervisors/<hypervisor_id>")
def show_hypervisor(hypervisor_id: str) -> Response:
    for h in _hosts():
        if str(views.numeric_id(h.name)) == hypervisor_id or h.name == hypervisor_id:
            return jsonify({"hypervisor": views.hypervisor(h)})
    raise NotFound(f"Hypervisor with ID {hypervisor_id} could not be found.")


@blueprint.get("/v2.1/os-hypervisors/<pattern>/search")
def search_hypervisors(pattern: str) -> Response:
    found = [views.hypervisor_brief(h) for h in _hosts() if pattern in h.name]
    if not found:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return jsonify({"hypervisors": found})


@blueprint.get("/v2.1/os-services")
def list_services() -> Response:
    """One ``nova-compute`` per host (its zone is its group) and one scheduler per
    Group Manager: the processes whose health an operator watches."""
    require_admin("os_compute_api:os-services:list")
    stale = cloud().config.cloud.group_stale_after
    with cloud().sessions() as session:
        known = groups.all_groups(session)
    rows = [{"id": views.numeric_id("group:" + g.name), "binary": "nova-scheduler",
             "disabled_reason": None, "host": f"group-manager-{g.name}",
             "state": "up" if groups.is_fresh(g, stale) else "down", "status": "enabled",
             "updated_at": iso(g.last_seen_at), "zone": "internal"} for g in known]
    found, _ = hosts.listing(cloud())
    for h in found:
        seen = h.last_seen_at
        rows.append({"id": views.numeric_id("service:" + h.name), "binary": "nova-compute",
                     "disabled_reason": None if h.enabled else "disabled by the operator",
                     "host": h.name, "state": h.state,
                     "status": "enabled" if h.enabled else "disabled",
                     "updated_at": iso(seen), "zone": h.group})
    for key in ("binary", "host"):
        if request.args.get(key):
            rows = [r for r in rows if r[key] == request.args[key]]
    return jsonify({"services": rows})
