"""``/image/v2/images``: create, upload, download, list, show, JSON-patch, delete.

Every call is the image store's, through ``services.images`` (the store enforces
tenancy: another project's private image is 404). What Glance has and this cloud
does not (tags, protection, shared/community visibility, image import, locations)
is refused with a 400 naming it rather than accepted and forgotten.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from cloud_manager.api.openstack.common import (
    base_url,
    caller,
    cloud,
    json_body,
    paginate,
    query_bool,
    query_int,
)
from cloud_manager.api.openstack.image import blueprint, views
from cloud_manager.errors import BadInput, CloudError, NotFound
from cloud_manager.services import images
from ironbark.request_body import UploadInterrupted

DISK_FORMATS = ("raw", "qcow2", "ami", "aki", "ari")
CONTAINER_FORMATS = ("bare", "ami", "aki", "ari", "ovf", "ova", "docker", "compressed")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


class UnsupportedMedia(CloudError):
    status, title = 415, "Unsupported Media Type"


@blueprint.get("")
@blueprint.get("/")
@blueprint.get("/versions")
def versions() -> tuple[Response, int]:
    doc = {"id": "v2.0", "status": "CURRENT",
           "links": [{"rel": "self", "href": f"{base_url()}/image/v2/"}]}
    return jsonify({"versions": [doc]}), 300 if request.path.rstrip("/") == "/image" else 200


def _found(image_id: str) -> dict[str, Any]:
    """By id only (Glance has no lookup by name at this path)."""
    if not _UUID.match(image_id):
        raise NotFound(f"No image found with ID {image_id}")
    try:
        return images.get(cloud(), caller(), image_id)
    except NotFound:
        raise NotFound(f"No image found with ID {image_id}") from None


def _check_value(key: str, value: Any) -> None:
    if key in views.READ_ONLY:
        raise BadInput(f"Attribute '{key}' is read-only.", field=key)
    if key == "disk_format" and value not in DISK_FORMATS:
        raise BadInput(f"Invalid value '{value}' for disk_format: one of "
                       f"{', '.join(DISK_FORMATS)}", field="disk_format")
    if key == "container_format" and value not in CONTAINER_FORMATS:
        raise BadInput(f"Invalid value '{value}' for container_format: one of "
                       f"{', '.join(CONTAINER_FORMATS)}", field="container_format")
    if key == "visibility" and value not in ("public", "private"):
        raise BadInput(f"Invalid value '{value}' for visibility: this cloud has public and "
                       f"private images (no shared or community ones)", field="visibility")
    if key in ("min_disk", "min_ram") and (isinstance(value, bool) or not isinstance(
            value, int) or not 0 <= value < 2**31):
        raise BadInput(f"Invalid value '{value}' for {key}: a non-negative integer", field=key)
    if key == "name" and (not isinstance(value, str) or len(value) > 255):
        raise BadInput("Invalid value for name: a string of at most 255 characters",
                       field="name")
    if key in ("tags", "protected", "os_hidden") and value not in ([], False, None):
        raise BadInput(f"'{key}' is not supported by this cloud", field=key)
    if key not in ("name", "visibility", "min_disk", "min_ram", "tags", "protected",
                   "os_hidden") and not isinstance(value, str):
        raise BadInput(f"Invalid value for '{key}': properties are strings", field=key)


@blueprint.post("/v2/images")
def create_image() -> tuple[Response, int]:
    body = json_body()
    for key, value in body.items():
        if key != "id":
            _check_value(key, value)
    image_id = body.get("id")
    if image_id is not None and (not isinstance(image_id, str) or not _UUID.match(image_id)):
        raise BadInput(f"Invalid value '{image_id}' for id: a UUID", field="id")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadInput("field 'name': an image needs a name here", field="name")
    disk_format = body.get("disk_format", "raw")
    known = ("id", "name", "disk_format", "container_format", "visibility", "min_disk",
             "min_ram", "tags", "protected", "os_hidden", "kernel_id", "ramdisk_id")
    properties = {k: v for k, v in body.items() if k not in known}
    properties[views.CONTAINER] = body.get("container_format", "bare")
    record = images.create(cloud(), caller(), name=name, disk_format=disk_format,
                           visibility=body.get("visibility", "private"), properties=properties,
                           kernel_id=body.get("kernel_id"), ramdisk_id=body.get("ramdisk_id"),
                           min_disk=body.get("min_disk", 0), min_ram=body.get("min_ram", 0),
                           image_id=image_id)
    answer = jsonify(views.image(record))
    answer.headers["Location"] = f"{base_url()}/image/v2/images/{record['id']}"
    return answer, 201


@blueprint.get("/v2/images")
def list_images() -> Response:
    allowed = {"name", "status", "visibility", "owner", "disk_format", "container_format",
               "limit", "marker", "sort_key", "sort_dir", "member_status", "os_hidden",
               "protected", "tag", "size_min", "size_max", "id"}
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise BadInput(f"Invalid filter '{unknown[0]}'", field=unknown[0])
    visibility = request.args.get("visibility")
    if visibility == "all":
        visibility = None
    name = request.args.get("name")
    rows = images.listing(cloud(), caller(), name=None if _is_in(name) else name,
                          status=request.args.get("status"), visibility=visibility)
    shown = [views.image(r) for r in rows]
    for key in ("id", "name"):  # Glance's "in:a,b" operator (the openstack CLI uses id=in:)
        wanted = request.args.get(key)
        if key == "id" and wanted is not None and not _is_in(wanted):
            shown = [i for i in shown if i["id"] == wanted]
        elif _is_in(wanted):
            assert wanted is not None
            values = set(wanted[3:].split(","))
            shown = [i for i in shown if i[key] in values]
    for key in ("owner", "disk_format", "container_format"):
        if request.args.get(key):
            shown = [i for i in shown if i.get(key) == request.args[key]]
    # No image here is hidden, protected or tagged: asking for those finds none.
    for key in ("os_hidden", "protected"):
        if query_bool(key):
            shown = []
    if request.args.get("tag"):
        shown = []
    for key, keep in (("size_min", lambda size, n: size >= n),
                      ("size_max", lambda size, n: size <= n)):
        bound = query_int(key)
        if bound is not None:
            shown = [i for i in shown if i["size"] is not None and keep(i["size"], bound)]
    sort_key = request.args.get("sort_key", "created_at")
    if sort_key not in ("created_at", "updated_at", "name", "id", "size", "status"):
        raise BadInput(f"Invalid sort key: {sort_key}", field="sort_key")
    sort_dir = request.args.get("sort_dir", "desc")
    if sort_dir not in ("asc", "desc"):
        raise BadInput(f"Invalid sort direction: {sort_dir}", field="sort_dir")
    shown.sort(key=lambda i: (str(i.get(sort_key) or ""), i["id"]), reverse=sort_dir == "desc")
    page, more = paginate(shown, lambda i: i["id"], query_int("limit"),
                          request.args.get("marker"))
    body: dict[str, Any] = {"images": page, "schema": "/v2/schemas/images",
                            "first": "/v2/images"}
    if more and page:
        args = {k: v for k, v in request.args.items() if k != "marker"}
        args["marker"] = page[-1]["id"]
        body["next"] = "/v2/images?" + "&".join(f"{k}={v}" for k, v in args.items())
    return jsonify(body)


def _is_in(value: str | None) -> bool:
    return value is not None and value.startswith("in:")


@blueprint.get("/v2/images/<image_id>")
def show_image(image_id: str) -> Response:
    return jsonify(views.image(_found(image_id)))


@blueprint.patch("/v2/images/<image_id>")
def update_image(image_id: str) -> Response:
    """RFC 6902 as Glance takes it: add/replace/remove of top-level attributes."""
    kind = (request.content_type or "").split(";")[0].strip()
    if kind not in (PATCH_TYPE, "application/json-patch+json"):
        raise UnsupportedMedia(f"Unsupported Content-Type '{kind}': use {PATCH_TYPE}")
    ops = request.get_json(silent=True, force=True)
    if not isinstance(ops, list):
        raise BadInput("the body must be a JSON array of patch operations")
    record = _found(image_id)
    current = views.image(record)
    changes: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for index, op in enumerate(ops):
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") \
                or not isinstance(op.get("path"), str) or op["path"].count("/") != 1:
            raise BadInput(f"operation {index}: give 'op' (add, replace or remove) and a "
                           f"top-level 'path' such as '/name'", field=f"patch.{index}")
        key = op["path"][1:]
        if op["op"] == "remove":
            if key in views.CORE:
                raise BadInput(f"Attribute '{key}' cannot be removed", field=key)
            if key not in current and key not in props:
                raise BadInput(f"Property '{key}' does not exist", field=key)
            props[key] = None
            continue
        if "value" not in op:
            raise BadInput(f"operation {index}: 'value' is required", field=f"patch.{index}")
        value = op["value"]
        _check_value(key, value)
        if op["op"] == "replace" and key not in current and key not in props:
            raise BadInput(f"Property '{key}' does not exist; use 'add'", field=key)
        if key in ("name", "visibility", "min_disk", "min_ram", "disk_format"):
            changes[key] = value
        elif key == views.CONTAINER:
            props[views.CONTAINER] = value
        elif key in ("kernel_id", "ramdisk_id"):
            changes[key] = value
        elif key in ("tags", "protected", "os_hidden"):
            continue  # the empty/false values _check_value lets through change nothing
        else:
            props[key] = value
    if "disk_format" in changes and record.get("status") != "queued":
        raise BadInput("disk_format can only change before the image has data",
                       field="disk_format")
    if props:
        changes["properties"] = props
    if changes:
        record = images.update(cloud(), caller(), image_id, changes)
    return jsonify(views.image(record))


@blueprint.delete("/v2/images/<image_id>")
def delete_image(image_id: str) -> tuple[str, int]:
    _found(image_id)
    images.delete(cloud(), caller(), image_id)
    return "", 204


@blueprint.put("/v2/images/<image_id>/file")
def upload_file(image_id: str) -> tuple[str, int]:
    _found(image_id)
    body = images.RequestBody(request.stream, request.content_length)
    try:
        images.upload(cloud(), caller(), image_id, body)
    except (ClientDisconnected, UploadInterrupted) as exc:
        raise BadInput(f"upload of image {image_id} interrupted: {exc}; the image is "
                       f"killed") from None
    return "", 204


@blueprint.get("/v2/images/<image_id>/file")
def download_file(image_id: str) -> Response | tuple[str, int]:
    record = _found(image_id)
    if record.get("status") != "active":
        return "", 204  # Glance: an image without data has no content
    download = images.open_download(cloud(), caller(), image_id, request.headers.get("Range"))
    headers = dict(download.headers)
    if record.get("checksum"):
        headers["Content-MD5"] = record["checksum"]
    response = Response(download, status=download.status, headers=headers,
                        mimetype="application/octet-stream", direct_passthrough=True)
    response.call_on_close(download.close)
    return response
