"""``/compute/v2.1/os-simple-tenant-usage``: what each project used over a period.

Computed from the instance rows, which stay (soft-deleted) after a delete: each
server counts from its creation to its deletion (or now), clipped to
``start``..``end``; hours x vCPUs, x MiB, x GB as Nova totals them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import caller, cloud, query_bool, require_admin
from cloud_manager.api.openstack.compute import blueprint, views
from cloud_manager.db.models import Instance
from cloud_manager.errors import BadInput
from ironbark.db import utcnow
from message_bus.lifecycle import status


def _when(name: str, default: dt.datetime) -> dt.datetime:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"Invalid input for query parameter {name}: '{raw}' is not an "
                       f"ISO 8601 time", field=name) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _period() -> tuple[dt.datetime, dt.datetime]:
    now = utcnow()
    end = _when("end", now)
    start = _when("start", end - dt.timedelta(days=1))
    if start > end:
        raise BadInput("Invalid start time: the start is after the end", field="start")
    return start, end


def _usage(project_id: str, rows: list[Instance], start: dt.datetime, end: dt.datetime,
           detailed: bool) -> dict[str, Any]:
    now = utcnow()
    totals = {"total_hours": 0.0, "total_local_gb_usage": 0.0,
              "total_memory_mb_usage": 0.0, "total_vcpus_usage": 0.0}
    servers = []
    for i in rows:
        began, ended = max(i.created_at, start), min(i.deleted_at or now, end)
        hours = max(0.0, (ended - began).total_seconds() / 3600)
        totals["total_hours"] += hours
        totals["total_local_gb_usage"] += hours * i.disk_gb
        totals["total_memory_mb_usage"] += hours * i.memory_mb
        totals["total_vcpus_usage"] += hours * i.vcpus
        if detailed:
            shown = status(i.vm_state, i.task_state)
            servers.append({
                "ended_at": views.usage_time(i.deleted_at), "flavor": i.flavor_name,
                "hours": hours, "instance_id": i.id, "local_gb": i.disk_gb,
                "memory_mb": i.memory_mb, "name": i.name, "started_at":
                views.usage_time(i.created_at), "state": "terminated" if i.deleted_at
                else shown.lower() if shown != "SHUTOFF" else "stopped",
                "tenant_id": i.project_id, "uptime": int((ended - i.created_at)
                                                         .total_seconds()),
                "vcpus": i.vcpus})
    body: dict[str, Any] = {"tenant_id": project_id, **totals,
                            "start": views.usage_time(start), "stop": views.usage_time(end)}
    if detailed:
        body["server_usages"] = servers
    return body


def _rows(start: dt.datetime, end: dt.datetime, project_id: str | None) -> list[Instance]:
    query = sa.select(Instance).where(Instance.created_at < end, sa.or_(
        Instance.deleted_at.is_(None), Instance.deleted_at > start))
    if project_id is not None:
        query = query.where(Instance.project_id == project_id)
    with cloud().sessions() as session:
        return list(session.scalars(query.order_by(Instance.created_at)))


@blueprint.get("/v2.1/os-simple-tenant-usage")
def list_usage() -> Response:
    require_admin("os_compute_api:os-simple-tenant-usage:list")
    start, end = _period()
    detailed = query_bool("detailed") or False
    by_project: dict[str, list[Instance]] = {}
    for row in _rows(start, end, None):
        by_project.setdefault(row.project_id, []).append(row)
    return jsonify({"tenant_usages": [_usage(p, rows, start, end, detailed)
                                      for p, rows in sorted(by_project.items())]})


@blueprint.get("/v2.1/os-simple-tenant-usage/<project_id>")
def show_usage(project_id: str) -> Response:
    if project_id != caller().project_id:
        require_admin("os_compute_api:os-simple-tenant-usage:show")
    start, end = _period()
    rows = _rows(start, end, project_id)
    if not rows:
        return jsonify({"tenant_usage": {}})
    return jsonify({"tenant_usage": _usage(project_id, rows, start, end, True)})
