"""Error bodies in each OpenStack API family's own shape.

Clients key on these: novaclient/openstacksdk read ``{"itemNotFound": {"code",
"message"}}`` from Nova, ``{"NeutronError": {"type", "message", "detail"}}`` from
Neutron, Keystone's ``{"error": {"code", "title", "message"}}``, and Glance's webob
body ``{"code": "404 Not Found", "title", "message"}``. The family is the first
part of the path; anything else is the native API's shape.
"""

from __future__ import annotations

from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

# nova.api.openstack.wsgi.Fault._fault_names
_NOVA_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}
_NEUTRON_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
                  404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 409: "HTTPConflict",
                  413: "HTTPRequestEntityTooLarge", 503: "HTTPServiceUnavailable"}

FAMILIES = ("identity", "compute", "image", "network")


def family(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in FAMILIES else None


def body(kind: str, status: int, message: str, title: str | None = None,
         neutron_type: str | None = None) -> dict[str, Any]:
    title = title or HTTP_STATUS_CODES.get(status, "Error")
    if status == 401 or kind == "identity":
        # keystonemiddleware answers 401 in Keystone's shape for every service.
        return {"error": {"code": status, "title": title, "message": message}}
    if kind == "compute":
        return {_NOVA_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    if kind == "network":
        return {"NeutronError": {"type": neutron_type or _NEUTRON_TYPES.get(
            status, "HTTPInternalServerError"), "message": message, "detail": ""}}
    if kind == "image":
        return {"code": f"{status} {title}", "title": title, "message": message}
    raise ValueError(kind)
