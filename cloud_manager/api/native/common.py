"""What every route of the native API uses: the context, the caller, admin checks."""

from __future__ import annotations

from typing import cast

from flask import current_app, g

from cloud_manager.auth import Principal
from cloud_manager.context import CloudContext
from cloud_manager.errors import Forbidden


def cloud() -> CloudContext:
    return cast(CloudContext, current_app.extensions["ironbark"])


def caller() -> Principal:
    return cast(Principal, g.principal)


def require_admin() -> Principal:
    principal = caller()
    if not principal.is_admin:
        raise Forbidden("this route is for the cloud's administrators")
    return principal
