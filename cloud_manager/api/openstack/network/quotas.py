"""``/network/v2.0/quotas``: a project's Neutron quotas (and usage in ``/details``)."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import (
    cloud,
    json_body,
    member,
    quota_project,
    require_admin,
)
from cloud_manager.api.openstack.network import blueprint
from cloud_manager.services.network import quotas


def _project(project_id: str) -> str:
    return quota_project(project_id, "get_quota")


@blueprint.get("/v2.0/quotas/<project_id>")
@blueprint.get("/v2.0/quotas/<project_id>.json")
def show_quota(project_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"quota": quotas.limits(session, _project(project_id))})


@blueprint.get("/v2.0/quotas/<project_id>/details.json")
@blueprint.get("/v2.0/quotas/<project_id>/details")
def show_quota_details(project_id: str) -> Response:
    with cloud().sessions() as session:
        limit = quotas.limits(session, _project(project_id))
        used = quotas.usage(session, project_id)
    return jsonify({"quota": {k: {"limit": v, "used": used[k], "reserved": 0}
                              for k, v in limit.items()}})


@blueprint.get("/v2.0/quotas/<project_id>/default")
def show_quota_default(project_id: str) -> Response:
    _project(project_id)
    return jsonify({"quota": dict(quotas.DEFAULTS)})


@blueprint.put("/v2.0/quotas/<project_id>")
def update_quota(project_id: str) -> Response:
    require_admin("update_quota")
    _project(project_id)
    data = member(json_body(), "quota", "quota")
    with cloud().sessions.begin() as session:
        quotas.update(session, project_id, data)
        return jsonify({"quota": quotas.limits(session, project_id)})


@blueprint.delete("/v2.0/quotas/<project_id>")
def reset_quota(project_id: str) -> tuple[str, int]:
    require_admin("delete_quota")
    _project(project_id)
    with cloud().sessions.begin() as session:
        quotas.reset(session, project_id)
    return "", 204
