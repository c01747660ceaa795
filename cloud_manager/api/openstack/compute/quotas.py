"""``/compute/v2.1/limits`` and ``os-quota-sets``: a project's limits and usage.

Limits are enforced by ``services.quotas`` inside the transactions that create
(servers, key pairs, server groups, metadata); here they are shown and, by the
admin, changed. Anyone may read their own project's quotas; another project's are
the admin's.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import (
    caller,
    cloud,
    field,
    json_body,
    member,
    quota_project,
    require_admin,
)
from cloud_manager.api.openstack.compute import blueprint
from cloud_manager.errors import BadInput
from cloud_manager.services import quotas

# limits' absolute keys (maxX, totalXUsed) and the quota each reads
_MAX = {"maxTotalInstances": "instances", "maxTotalCores": "cores", "maxTotalRAMSize": "ram",
        "maxTotalKeypairs": "key_pairs", "maxServerMeta": "metadata_items",
        "maxPersonality": "injected_files", "maxPersonalitySize": "injected_file_content_bytes",
        "maxSecurityGroups": "security_groups", "maxSecurityGroupRules": "security_group_rules",
        "maxTotalFloatingIps": "floating_ips", "maxServerGroups": "server_groups",
        "maxServerGroupMembers": "server_group_members", "maxImageMeta": "metadata_items"}
_USED = {"totalInstancesUsed": "instances", "totalCoresUsed": "cores", "totalRAMUsed": "ram",
         "totalSecurityGroupsUsed": "security_groups", "totalFloatingIpsUsed": "floating_ips",
         "totalServerGroupsUsed": "server_groups"}


def _project(project_id: str) -> str:
    return quota_project(project_id, "os_compute_api:os-quota-sets:show")


@blueprint.get("/v2.1/limits")
def limits() -> Response:
    project_id = request.args.get("tenant_id") or caller().project_id
    _project(project_id)
    with cloud().sessions() as session:
        limit, used = quotas.limits(session, project_id), quotas.usage(session, project_id)
    absolute: dict[str, int] = {key: limit[name] for key, name in _MAX.items()}
    absolute.update({key: used[name] for key, name in _USED.items()})
    return jsonify({"limits": {"rate": [], "absolute": absolute}})


def _quota_set(project_id: str, detail: bool = False, defaults: bool = False) -> dict:
    with cloud().sessions() as session:
        limit = quotas.defaults(session) if defaults else quotas.limits(session, project_id)
        used = quotas.usage(session, project_id)
    body: dict[str, Any] = {"id": project_id}
    for name, value in limit.items():
        body[name] = {"in_use": used[name], "limit": value, "reserved": 0} if detail else value
    return {"quota_set": body}


@blueprint.get("/v2.1/os-quota-sets/<project_id>")
def show_quotas(project_id: str) -> Response:
    return jsonify(_quota_set(_project(project_id)))


@blueprint.get("/v2.1/os-quota-sets/<project_id>/detail")
def show_quota_detail(project_id: str) -> Response:
    return jsonify(_quota_set(_project(project_id), detail=True))


@blueprint.get("/v2.1/os-quota-sets/<project_id>/defaults")
def show_quota_defaults(project_id: str) -> Response:
    return jsonify(_quota_set(_project(project_id), defaults=True))


@blueprint.put("/v2.1/os-quota-sets/<project_id>")
def update_quotas(project_id: str) -> Response:
    require_admin("os_compute_api:os-quota-sets:update")
    _project(project_id)
    if request.args.get("user_id"):
        raise BadInput("per-user quotas are not supported", field="user_id")
    data = dict(member(json_body(), "quota_set", "quota_set"))
    force = field(data, "force", (bool, str), "quota_set", default=False)
    data.pop("force", None)
    if isinstance(force, str):
        force = force.lower() in ("true", "1", "yes")
    if not data:
        raise BadInput("field 'quota_set': names no quota to change", field="quota_set")
    with cloud().sessions.begin() as session:
        quotas.update(session, project_id, data, force=bool(force))
    body = _quota_set(project_id)
    body["quota_set"].pop("id")  # Nova's update answer has no id
    return jsonify(body)


@blueprint.delete("/v2.1/os-quota-sets/<project_id>")
def reset_quotas(project_id: str) -> tuple[str, int]:
    require_admin("os_compute_api:os-quota-sets:delete")
    _project(project_id)
    with cloud().sessions.begin() as session:
        quotas.reset(session, project_id)
    return "", 202
