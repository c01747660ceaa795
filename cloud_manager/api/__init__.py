"""The Cloud Manager's HTTP API: app factory, request ids, auth and JSON errors."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from cloud_manager.api import native
from cloud_manager.auth import TokenTable
from cloud_manager.context import CloudContext
from cloud_manager.errors import CloudError, Unauthorized
from message_bus import context

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PUBLIC = {"/", "/v1", "/v1/"}


def error_body(status: int, title: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status, "title": title, "message": message}
    if field is not None:
        body["field"] = field
    return {"error": body}


def create_app(ctx: CloudContext) -> Flask:
    app = Flask("cloud_manager")
    app.extensions["ironbark"] = ctx
    app.extensions["ironbark.tokens"] = TokenTable(ctx.config.api)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def _begin() -> None:
        given = request.headers.get("X-Openstack-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else context.new_request_id()
        g.context_token = context.request_id_var.set(g.request_id)
        g.started = time.perf_counter()
        if request.path not in _PUBLIC:
            g.principal = _authenticate(app)

    @app.after_request
    def _end(response: Response) -> Response:
        response.headers["X-Openstack-Request-Id"] = g.get("request_id", "")
        took = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %d %.1f ms", request.method, request.full_path.rstrip("?"),
                 response.status_code, took)
        return response

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("context_token", None)
        if token is not None:
            context.request_id_var.reset(token)

    @app.errorhandler(CloudError)
    def _cloud_error(exc: CloudError) -> tuple[Response, int]:
        return jsonify(error_body(exc.status, exc.title, exc.message, exc.field)), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        return jsonify(error_body(status, exc.name, exc.description or exc.name)), status

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return jsonify(error_body(500, "Internal Server Error",
                                  f"unexpected error; see the logs for request "
                                  f"{g.get('request_id')}")), 500

    @app.get("/")
    @app.get("/v1")
    def _versions() -> Response:
        link = {"rel": "self", "href": request.host_url + "v1"}
        return jsonify({"versions": [{"id": "v1", "status": "CURRENT", "links": [link]}]})

    app.register_blueprint(native.blueprint, url_prefix="/v1")
    return app


def _authenticate(app: Flask) -> Any:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token (header 'Authorization: Bearer <token>')")
    principal = app.extensions["ironbark.tokens"].authenticate(token.strip())
    if principal is None:
        raise Unauthorized("invalid token")
    return principal
