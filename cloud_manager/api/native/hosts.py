"""``/v1/hosts`` (admin) and ``/v1/groups``."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import cloud, require_admin
from cloud_manager.api.schemas import parse_query
from cloud_manager.services import groups, hosts


@blueprint.get("/hosts")
def list_hosts() -> Response:
    require_admin()
    parse_query(set())
    found, unreachable = hosts.listing(cloud())
    return jsonify({"hosts": [views.host(h) for h in found], "unreachable_groups": unreachable})


@blueprint.get("/hosts/<name>")
def show_host(name: str) -> Response:
    require_admin()
    return jsonify({"host": views.host(hosts.get(cloud(), name))})


@blueprint.get("/groups")
def list_groups() -> Response:
    parse_query(set())
    stale_after = cloud().config.cloud.group_stale_after
    with cloud().sessions() as session:
        return jsonify({"groups": [views.group(g, groups.is_fresh(g, stale_after))
                                   for g in groups.all_groups(session)]})
