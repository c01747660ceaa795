"""``/compute/v2.1/flavors``: list (+ detail), show, admin create/delete, extra specs."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from cloud_manager.api.openstack.common import (
    caller,
    cloud,
    field,
    json_body,
    member,
    name_check,
    no_extra,
    paginate,
    query_bool,
    query_int,
    require_admin,
)
from cloud_manager.api.openstack.compute import blueprint, views
from cloud_manager.db.models import Flavor
from cloud_manager.errors import BadInput, NotFound
from cloud_manager.services import flavors

_CREATE_KEYS = ("name", "ram", "vcpus", "disk", "id", "OS-FLV-EXT-DATA:ephemeral", "swap",
                "rxtx_factor", "os-flavor-access:is_public")


def _visible() -> tuple[list[Flavor], bool]:
    with cloud().sessions() as session:
        rows = flavors.visible(session, caller())
    public = request.args.get("is_public")
    if caller().is_admin and public is not None and public.lower() != "none":
        wanted = query_bool("is_public")
        rows = [f for f in rows if f.is_public == wanted]
    for arg, attr in (("minRam", "memory_mb"), ("minDisk", "disk_gb")):
        least = query_int(arg)
        if least is not None:
            rows = [f for f in rows if getattr(f, attr) >= least]
    rows.sort(key=lambda f: f.id)  # Nova's default sort key is flavorid
    return paginate(rows, lambda f: f.id, query_int("limit"), request.args.get("marker"))


@blueprint.get("/v2.1/flavors")
def list_flavors() -> Response:
    rows, _ = _visible()
    return jsonify({"flavors": [views.flavor_brief(f) for f in rows]})


@blueprint.get("/v2.1/flavors/detail")
def list_flavors_detail() -> Response:
    rows, _ = _visible()
    return jsonify({"flavors": [views.flavor(f) for f in rows]})


def _get(session: Any, flavor_id: str) -> Flavor:
    found = session.get(Flavor, flavor_id)
    if found is None or (not found.is_public and not caller().is_admin):
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return found


@blueprint.get("/v2.1/flavors/<flavor_id>")
def show_flavor(flavor_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"flavor": views.flavor(_get(session, flavor_id))})


def _int(data: dict[str, Any], key: str, low: int, high: int, required: bool) -> int:
    value = data.get(key)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"Invalid input for field/attribute {key}. Value: {value!r}. must be "
                       f"an integer from {low} to {high}", field=f"flavor.{key}")
    return value


@blueprint.post("/v2.1/flavors")
def create_flavor() -> Response:
    require_admin("os_compute_api:os-flavor-manage:create")
    data = member(json_body(), "flavor", "flavor")
    no_extra(data, _CREATE_KEYS, "flavor")
    name = field(data, "name", str, "flavor", required=True, check=name_check())
    flavor_id = field(data, "id", str, "flavor", nullable=True)
    if flavor_id is not None and not flavor_id.replace("-", "").replace("_", "") \
            .replace(".", "").isalnum():
        raise BadInput(f"Invalid input for field/attribute id. Value: {flavor_id}",
                       field="flavor.id")
    if _int(data, "OS-FLV-EXT-DATA:ephemeral", 0, 0, False) or data.get("swap") not in \
            (None, "", 0):
        raise BadInput("field 'flavor.swap': ephemeral and swap disks are not supported "
                       "(0 only)", field="flavor.swap")
    is_public = field(data, "os-flavor-access:is_public", bool, "flavor", default=True)
    with cloud().sessions.begin() as session:
        row = flavors.create(session, name=name, vcpus=_int(data, "vcpus", 1, 1024, True),
                             memory_mb=_int(data, "ram", 1, 16 * 1024 * 1024, True),
                             disk_gb=_int(data, "disk", 0, 65536, False), flavor_id=flavor_id,
                             is_public=is_public)
        return jsonify({"flavor": views.flavor(row)})


@blueprint.delete("/v2.1/flavors/<flavor_id>")
def delete_flavor(flavor_id: str) -> tuple[str, int]:
    require_admin("os_compute_api:os-flavor-manage:delete")
    with cloud().sessions.begin() as session:
        session.delete(_get(session, flavor_id))
    return "", 202


# --- extra specs --------------------------------------------------------------------------


def _check_specs(specs: Any, path: str) -> dict[str, str]:
    if not isinstance(specs, dict) or not specs:
        raise BadInput(f"Invalid input for field/attribute {path}: a non-empty object of "
                       f"strings", field=path)
    for key, value in specs.items():
        if not 1 <= len(key) <= 255 or not isinstance(value, str | int | float) \
                or isinstance(value, bool) or len(str(value)) > 255:
            raise BadInput(f"Invalid input for field/attribute {path}.{key}: keys and values "
                           f"are strings of at most 255 characters", field=f"{path}.{key}")
    return {k: str(v) for k, v in specs.items()}


@blueprint.get("/v2.1/flavors/<flavor_id>/os-extra_specs")
def list_specs(flavor_id: str) -> Response:
    with cloud().sessions() as session:
        return jsonify({"extra_specs": dict(_get(session, flavor_id).extra_specs or {})})


@blueprint.post("/v2.1/flavors/<flavor_id>/os-extra_specs")
def add_specs(flavor_id: str) -> Response:
    require_admin("os_compute_api:os-flavor-extra-specs:create")
    specs = _check_specs(json_body().get("extra_specs"), "extra_specs")
    with cloud().sessions.begin() as session:
        row = _get(session, flavor_id)
        row.extra_specs = {**(row.extra_specs or {}), **specs}
    return jsonify({"extra_specs": specs})


@blueprint.get("/v2.1/flavors/<flavor_id>/os-extra_specs/<key>")
def show_spec(flavor_id: str, key: str) -> Response:
    with cloud().sessions() as session:
        specs = _get(session, flavor_id).extra_specs or {}
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return jsonify({key: specs[key]})


@blueprint.put("/v2.1/flavors/<flavor_id>/os-extra_specs/<key>")
def set_spec(flavor_id: str, key: str) -> Response:
    require_admin("os_compute_api:os-flavor-extra-specs:update")
    specs = _check_specs(json_body(), "body")
    if list(specs) != [key]:
        raise BadInput("Request body and URI mismatch", field=key)
    with cloud().sessions.begin() as session:
        row = _get(session, flavor_id)
        row.extra_specs = {**(row.extra_specs or {}), **specs}
    return jsonify(specs)


@blueprint.delete("/v2.1/flavors/<flavor_id>/os-extra_specs/<key>")
def delete_spec(flavor_id: str, key: str) -> tuple[str, int]:
    require_admin("os_compute_api:os-flavor-extra-specs:delete")
    with cloud().sessions.begin() as session:
        row = _get(session, flavor_id)
        specs = dict(row.extra_specs or {})
        if key not in specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        del specs[key]
        row.extra_specs = specs
    return "", 202
