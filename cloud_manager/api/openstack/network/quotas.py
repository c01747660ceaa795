"""``/network/v2.0/quotas``: a project's Neutron quotas (and usage in ``/details``)."""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import caller, cloud, json_body, member, require_admin
from cloud_manager.api.openstack.network import blueprint
from cloud_manager.db.models import Project, Quota
from cloud_manager.errors import BadInput, NotFound
from cloud_manager.services.network import quotas


def _project(project_id: str) -> str:
    if project_id != caller().project_id:
        require_admin("get_quota")
    with cloud().sessions() as session:
        if session.get(Project, project_id) is None:
            raise NotFound(f"Project {project_id} could not be found.")
    return project_id


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
    for key, value in data.items():
        if key not in quotas.DEFAULTS:
            raise BadInput(f"Unrecognized attribute(s) '{key}'", field=f"quota.{key}")
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise BadInput(f"Invalid input for {key}. Reason: '{value}' is not an integer "
                           f">= -1.", field=f"quota.{key}")
    with cloud().sessions.begin() as session:
        for key, value in data.items():
            row = session.get(Quota, (project_id, key))
            if row is None:
                session.add(Quota(project_id=project_id, resource=key, hard_limit=value))
            else:
                row.hard_limit = value
        session.flush()
        return jsonify({"quota": quotas.limits(session, project_id)})


@blueprint.delete("/v2.0/quotas/<project_id>")
def reset_quota(project_id: str) -> tuple[str, int]:
    require_admin("delete_quota")
    _project(project_id)
    with cloud().sessions.begin() as session:
        for row in session.query(Quota).filter(Quota.project_id == project_id,
                                               Quota.resource.in_(list(quotas.DEFAULTS))):
            session.delete(row)
    return "", 204
