"""``/compute/v2.1/os-availability-zone``: each host group is a zone.

A zone is available while its Group Manager reports with hosts up; ``/detail``
(admin) lists each zone's hosts, as Nova lists its compute services.
"""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import cloud, iso, require_admin
from cloud_manager.api.openstack.compute import blueprint
from cloud_manager.services import groups, hosts


def _zones() -> list[tuple[str, bool]]:
    stale = cloud().config.cloud.group_stale_after
    with cloud().sessions() as session:
        return [(g.name, groups.is_fresh(g, stale) and g.hosts_up > 0)
                for g in groups.all_groups(session)]


@blueprint.get("/v2.1/os-availability-zone")
def list_zones() -> Response:
    return jsonify({"availabilityZoneInfo": [
        {"zoneName": name, "zoneState": {"available": up}, "hosts": None}
        for name, up in _zones()]})


@blueprint.get("/v2.1/os-availability-zone/detail")
def list_zones_detail() -> Response:
    require_admin("os_compute_api:os-availability-zone:detail")
    found, _ = hosts.listing(cloud())
    by_zone: dict[str, dict] = {}
    for h in found:
        seen = iso(h.last_seen_at)
        by_zone.setdefault(h.group, {})[h.name] = {"nova-compute": {
            "available": h.state == "up", "active": h.enabled, "updated_at": seen}}
    return jsonify({"availabilityZoneInfo": [
        {"zoneName": name, "zoneState": {"available": up}, "hosts": by_zone.get(name)}
        for name, up in _zones()]})
