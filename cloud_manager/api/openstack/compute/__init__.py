"""Compute v2.1 (Nova's API, the subset in docs/openstack-api.md): ``/compute``.

Microversions: this cloud implements exactly 2.1 (MIN_VERSION = MAX_VERSION), so
each response has the 2.1 shape. A request may name its version in
``OpenStack-API-Version: compute X.Y`` or ``X-OpenStack-Nova-API-Version: X.Y``
(``latest`` is 2.1); anything outside the range is refused with 406 before the
route runs, and every answer echoes the version it was served at.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, g, request

from cloud_manager.errors import BadInput, CloudError

blueprint = Blueprint("compute", __name__)

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 1)
_VERSION = re.compile(r"^(\d+)\.(\d+)$")


class NotAcceptable(CloudError):
    status, title = 406, "Not Acceptable"


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def requested_version() -> tuple[int, int]:
    raw = None
    header = request.headers.get("OpenStack-API-Version", "")
    for part in header.split(","):
        service, _, value = part.strip().partition(" ")
        if service.lower() == "compute":
            raw = value.strip()
    if raw is None:
        raw = request.headers.get("X-OpenStack-Nova-API-Version", "").strip() or None
    if raw is None:
        return MIN_VERSION
    if raw.lower() == "latest":
        return MAX_VERSION
    match = _VERSION.match(raw)
    if match is None:
        raise BadInput(f"API Version String {raw} is of invalid format. Must be of format "
                       f"MajorNum.MinorNum.", field="OpenStack-API-Version")
    version = (int(match.group(1)), int(match.group(2)))
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise NotAcceptable(f"Version {raw} is not supported by the API. Minimum is "
                            f"{_text(MIN_VERSION)} and maximum is {_text(MAX_VERSION)}.")
    return version


@blueprint.before_request
def _negotiate() -> None:
    g.compute_version = MIN_VERSION  # what the error answer below is served at
    g.compute_version = requested_version()


@blueprint.after_request
def _echo(response: Response) -> Response:
    version = _text(g.get("compute_version", MIN_VERSION))
    response.headers["OpenStack-API-Version"] = f"compute {version}"
    response.headers["X-OpenStack-Nova-API-Version"] = version
    response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    return response


from cloud_manager.api.openstack.compute import (  # noqa: E402, F401
    actions,
    flavors,
    hypervisors,
    keypairs,
    quotas,
    server_groups,
    servers,
    usage,
    versions,
    zones,
)
