"""``/v1/images``: thin routes over ``services.images``, which proxies the image store.

Image bytes stream through in both directions (1 MiB pieces), so the API's memory
does not grow with an image; a download passes the store's status and range
headers on, and drops the store's connection when its own client goes away.
"""

from __future__ import annotations

from flask import Response, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from cloud_manager.api.image_schemas import ImageCreate, ImageUpdate
from cloud_manager.api.native import blueprint, views
from cloud_manager.api.native.common import caller, cloud
from cloud_manager.api.schemas import parse_body, parse_query
from cloud_manager.errors import BadInput
from cloud_manager.services import images
from ironbark.request_body import UploadInterrupted


@blueprint.get("/images")
def list_images() -> Response:
    query = parse_query({"name", "status", "visibility"})
    found = images.listing(cloud(), caller(), name=query.get("name"),
                           status=query.get("status"), visibility=query.get("visibility"))
    return jsonify({"images": [views.image(i) for i in found]})


@blueprint.post("/images")
def create_image() -> tuple[Response, int]:
    body = parse_body(ImageCreate)
    record = images.create(cloud(), caller(), name=body.name, disk_format=body.disk_format,
                           visibility=body.visibility, properties=body.properties,
                           kernel_id=body.kernel_id, ramdisk_id=body.ramdisk_id,
                           min_disk=body.min_disk, min_ram=body.min_ram)
    return jsonify({"image": views.image(record)}), 201


# A static rule wins over <ref> in werkzeug's routing, so this is never an image name.
@blueprint.get("/images/stats")
def image_stats() -> Response:
    parse_query(set())
    return jsonify({"stats": images.stats(cloud(), caller())})


@blueprint.get("/images/<ref>")
def show_image(ref: str) -> Response:
    return jsonify({"image": views.image(images.get(cloud(), caller(), ref))})


@blueprint.patch("/images/<ref>")
def update_image(ref: str) -> Response:
    changes = parse_body(ImageUpdate).changes()
    return jsonify({"image": views.image(images.update(cloud(), caller(), ref, changes))})


@blueprint.delete("/images/<ref>")
def delete_image(ref: str) -> tuple[str, int]:
    images.delete(cloud(), caller(), ref)
    return "", 204


@blueprint.put("/images/<ref>/file")
def upload_image(ref: str) -> Response:
    body = images.RequestBody(request.stream, request.content_length)
    try:
        record = images.upload(cloud(), caller(), ref, body)
    except (ClientDisconnected, UploadInterrupted) as exc:
        raise BadInput(f"upload of image '{ref}' interrupted: {exc}; "
                       f"the image is killed") from None
    return jsonify({"image": views.image(record)})


@blueprint.get("/images/<ref>/file")
def download_image(ref: str) -> Response:
    try:
        download = images.open_download(cloud(), caller(), ref, request.headers.get("Range"))
    except images.RangeNotSatisfiable as exc:
        response = jsonify({"error": {"code": 416, "title": exc.title, "message": exc.message}})
        response.status_code = 416
        if exc.size is not None:
            response.headers["Content-Range"] = f"bytes */{exc.size}"
        return response
    response = Response(download, status=download.status, headers=download.headers,
                        mimetype="application/octet-stream", direct_passthrough=True)
    response.call_on_close(download.close)
    return response
