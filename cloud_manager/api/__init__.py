"""The Cloud Manager's HTTP API: app factory, request ids, auth, policy and JSON errors.

One Flask app serves every API: the native one under ``/v1`` and the OpenStack
families under ``/identity``, ``/compute``, ``/image`` and ``/network``
(``api.openstack``). Authentication and the coarse policy are here, once, for all:
a valid token (``X-Auth-Token`` or ``Authorization: Bearer``), scoped to a project
outside the identity API, and a role that may write for anything but a read.
Finer rules (admin-only routes, whose resource) are the routes' and services'.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from cloud_manager.api import native, openstack
from cloud_manager.api.openstack import faults
from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.errors import CloudError, Forbidden, Unauthorized
from cloud_manager.identity import tokens
from message_bus import context

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PUBLIC = {"/", "/v1", "/v1/"}
_READS = {"GET", "HEAD", "OPTIONS"}
# What any valid token may do, whatever its roles: sign in, look at or drop itself,
# change its own password (the identity routes check whose).
_ANY_ROLE = ("/identity/v3/auth/", "/identity/v3/users/")


def error_body(status: int, title: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The native API's error shape, or the OpenStack family's for its paths."""
    kind = faults.family(request.path) if request else None
    if kind is not None:
        return faults.body(kind, status, message, title)
    body: dict[str, Any] = {"code": status, "title": title, "message": message}
    if field is not None:
        body["field"] = field
    return {"error": body}


def create_app(ctx: CloudContext) -> Flask:
    app = Flask("cloud_manager")
    app.extensions["ironbark"] = ctx
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.before_request
    def _begin() -> None:
        given = request.headers.get("X-Openstack-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else context.new_request_id()
        g.context_token = context.request_id_var.set(g.request_id)
        g.started = time.perf_counter()
        if request.path not in _PUBLIC and not openstack.is_public(request):
            g.principal = _authenticate(ctx)
            _check_policy(g.principal)

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
    openstack.register(app)
    return app


def token_of_request() -> str | None:
    token = request.headers.get("X-Auth-Token", "").strip()
    if token:
        return token
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return bearer.strip()
    return None


def _authenticate(ctx: CloudContext) -> Principal:
    token = token_of_request()
    if token is None:
        raise Unauthorized("missing token (header 'X-Auth-Token: <token>' or "
                           "'Authorization: Bearer <token>'); get one with POST "
                           "/identity/v3/auth/tokens")
    with ctx.sessions() as session:
        found = tokens.validate(session, token)
        if found is None:
            raise Unauthorized(f"{tokens.NOT_AUTHENTICATED} (the token is unknown, expired "
                               f"or revoked)")
        g.token = found
        return found.principal()


def _check_policy(principal: Principal) -> None:
    if faults.family(request.path) == "identity":
        if request.method not in _READS and not principal.can_write \
                and not request.path.startswith(_ANY_ROLE):
            raise Forbidden("You are not authorized to perform the requested action: "
                            "your roles on this project do not allow changes.")
        return
    if not principal.scoped:
        raise Forbidden("this token is not scoped to a project; ask for a project-scoped "
                        "token (auth.scope.project)")
    if request.method not in _READS and not principal.can_write:
        raise Forbidden(f"your roles on project {principal.project_name} "
                        f"({', '.join(sorted(principal.roles)) or 'none'}) only allow reading")
