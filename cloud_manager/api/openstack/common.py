"""What the OpenStack routes share: the base URL, the caller, body checks, pagination.

Request bodies are checked by hand against the upstream API's documented shapes,
each failure naming the field by its dotted path (``server.flavorRef``), so a
client sees which part of a nested body is wrong; nothing is created before the
whole body has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import request

from cloud_manager.api.native.common import caller, cloud
from cloud_manager.api.native.views import iso
from cloud_manager.auth import Principal
from cloud_manager.db.models import Project
from cloud_manager.errors import BadInput, Forbidden, NotFound

__all__ = ["caller", "cloud", "iso"]  # shared with the native API, re-exported here

T = TypeVar("T")


def require_admin(what: str = "this request") -> Principal:
    principal = caller()
    if not principal.is_admin:
        raise Forbidden(f"Policy doesn't allow {what} to be performed (admin only).")
    return principal


def base_url() -> str:
    """The catalog's base: ``[identity] public_url`` or the URL the client used."""
    configured = cloud().config.identity.public_url
    return (configured or request.host_url).rstrip("/")


def json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("The request body must be a JSON object (malformed request body).")
    return data


def member(body: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``body[key]``, which must be an object (the resource wrapper)."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise BadInput(f"Invalid input for field/attribute {path}. "
                       f"Value: {value!r}. {path} is a required object", field=path)
    return value


_MISSING = object()


def field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str, *,
          required: bool = False, default: Any = None, nullable: bool = False,
          check: Callable[[Any], str | None] | None = None) -> Any:
    """One field of a request body, type-checked strictly (``True`` is not an int)."""
    value = data.get(key, _MISSING)
    name = f"{path}.{key}" if path else key
    if value is _MISSING:
        if required:
            raise BadInput(f"Invalid input for field/attribute {name}: '{key}' is a required "
                           f"property", field=name)
        return default
    if value is None and nullable:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    bad_bool = isinstance(value, bool) and bool not in kinds
    if bad_bool or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise BadInput(f"Invalid input for field/attribute {name}. Value: {value!r}. "
                       f"{value!r} is not of type {names}", field=name)
    if check is not None:
        problem = check(value)
        if problem:
            raise BadInput(f"Invalid input for field/attribute {name}. Value: {value!r}. "
                           f"{problem}", field=name)
    return value


def no_extra(data: dict[str, Any], allowed: Sequence[str], path: str) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise BadInput(f"Invalid input for field/attribute {path}. Additional properties are "
                       f"not allowed ('{extra[0]}' was unexpected)", field=f"{path}.{extra[0]}")


def name_check(limit: int = 255) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not value.strip():
            return "must not be empty or blank"
        if len(value) > limit:
            return f"is longer than {limit} characters"
        return None
    return check


def query_int(name: str, minimum: int = 0) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"Invalid input for query parameter {name}: '{raw}' is not an "
                       f"integer", field=name) from None
    if value < minimum:
        raise BadInput(f"Invalid input for query parameter {name}: must be >= {minimum}",
                       field=name)
    return value


def query_bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on", ""):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise BadInput(f"Invalid input for query parameter {name}: '{raw}' is not a boolean",
                   field=name)


def paginate(rows: Sequence[T], key: Callable[[T], str], limit: int | None,
             marker: str | None, max_limit: int = 1000) -> tuple[list[T], bool]:
    """Rows after ``marker`` (an id, which must be among them: 400 otherwise, as Nova
    says), at most ``limit`` of them; and whether more follow."""
    start = 0
    if marker is not None:
        ids = [key(r) for r in rows]
        if marker not in ids:
            raise BadInput(f"marker [{marker}] not found", field="marker")
        start = ids.index(marker) + 1
    size = min(limit if limit is not None else max_limit, max_limit)
    page = list(rows[start:start + size])
    return page, start + size < len(rows)


def quota_project(project_id: str, policy: str) -> str:
    """A project whose quotas the caller may read: its own, or any for the admin; 404
    for one that does not exist."""
    if project_id != caller().project_id:
        require_admin(policy)
    with cloud().sessions() as session:
        if session.get(Project, project_id) is None:
            raise NotFound(f"Project {project_id} could not be found.")
    return project_id
