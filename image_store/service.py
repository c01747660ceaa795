"""The image store's HTTP API: a thin Flask layer over :class:`ImageStore`.

Only other tiers call it, with the shared service token, so the API is small and
strict: unknown fields are rejected rather than ignored, and every error, including
the 404/405 of a route that does not exist, is a JSON body::

    {"error": {"code": 404, "title": "Not Found", "message": "image ... not found"}}

Image bytes are streamed both ways (1 MiB reads from the request, the stored blob
chunk by chunk in the response), so image size is bounded by disk, not memory.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import IO, Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import BadRequest, ClientDisconnected, HTTPException, Unauthorized
from werkzeug.http import HTTP_STATUS_CODES

from image_store.store import (
    CHUNK_SIZE,
    CorruptImage,
    ImageConflict,
    ImageNotFound,
    ImageStore,
    ImageStoreError,
    InvalidImage,
)
from message_bus.context import new_request_id, request_id_var, service_var

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Service-Token"
REQUEST_ID_HEADER = "X-Openstack-Request-Id"
SERVICE_NAME = "image-store"

CREATE_FIELDS = frozenset({"name", "disk_format", "owner", "visibility", "id", "properties"})
REQUIRED_FIELDS = ("name", "disk_format")

_STATUS_OF: dict[type[ImageStoreError], int] = {
    InvalidImage: 400,
    ImageNotFound: 404,
    ImageConflict: 409,
    CorruptImage: 500,
}


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "title": HTTP_STATUS_CODES.get(code, "Error"),
                      "message": message}}


def _error_response(code: int, message: str) -> Response:
    response = jsonify(error_body(code, message))
    response.status_code = code
    return response


def _read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def create_app(store: ImageStore, token: str) -> Flask:
    """The WSGI app serving ``store``; every request must carry ``X-Service-Token: token``."""
    app = Flask("image_store")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    expected_token = token.encode()

    @app.before_request
    def _authenticate() -> None:
        request_id = request.headers.get(REQUEST_ID_HEADER) or new_request_id()
        g.context_tokens = (request_id_var.set(request_id), service_var.set(SERVICE_NAME))
        g.request_id = request_id
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, expected_token):
            raise Unauthorized(f"missing or wrong {TOKEN_HEADER} header")

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.teardown_request
    def _reset_context(_exc: BaseException | None) -> None:
        tokens = g.pop("context_tokens", None)
        if tokens is not None:
            for var_token in reversed(tokens):
                var_token.var.reset(var_token)

    @app.errorhandler(ImageStoreError)
    def _store_error(exc: ImageStoreError) -> Response:
        code = next((s for cls, s in _STATUS_OF.items() if isinstance(exc, cls)), 500)
        if code >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        return _error_response(code, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Keep the exception's own headers (Allow on a 405, for one) but never its HTML.
        response = exc.get_response()
        code = exc.code or 500
        body = error_body(code, exc.description or "")
        response.set_data(app.json.dumps(body, separators=(",", ":")))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return _error_response(500, f"internal error: {type(exc).__name__}")

    @app.post("/v1/images")
    def create_image() -> tuple[Response, int]:
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise BadRequest(f"unknown field(s): {', '.join(map(str, unknown))}")
        missing = [f for f in REQUIRED_FIELDS if f not in body]
        if missing:
            raise BadRequest(f"missing required field(s): {', '.join(missing)}")
        image_id = body.get("id")
        if image_id is not None and not isinstance(image_id, str):
            raise InvalidImage("id", f"id must be a uuid string, got {image_id!r}")
        record = store.create(
            name=body["name"], disk_format=body["disk_format"], owner=body.get("owner"),
            visibility=body.get("visibility", "private"), image_id=image_id,
            properties=body.get("properties"),
        )
        return jsonify(record.to_dict()), 201

    @app.get("/v1/images")
    def list_images() -> Response:
        return jsonify({"images": [r.to_dict() for r in store.list()]})

    @app.get("/v1/images/<image_id>")
    def show_image(image_id: str) -> Response:
        return jsonify(store.get(image_id).to_dict())

    @app.put("/v1/images/<image_id>/file")
    def upload_image(image_id: str) -> Response:
        try:
            record = store.upload(image_id, _read_chunks(request.stream))
        except ClientDisconnected:
            raise BadRequest(
                f"upload of image {image_id} interrupted: the request body ended early; "
                "the image is now killed"
            ) from None
        return jsonify(record.to_dict())

    @app.get("/v1/images/<image_id>/file")
    def download_image(image_id: str) -> Response:
        record = store.get(image_id)
        chunks = store.open(image_id)  # verified; raises CorruptImage before any byte
        response = Response(chunks, mimetype="application/octet-stream")
        response.headers["Content-Length"] = str(record.size)
        response.headers["X-Image-Sha256"] = record.sha256 or ""
        response.headers["X-Image-Md5"] = record.md5 or ""
        return response

    @app.delete("/v1/images/<image_id>")
    def delete_image(image_id: str) -> tuple[str, int]:
        store.delete(image_id)
        return "", 204

    return app
