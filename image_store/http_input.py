"""Checking what a request to the image store's HTTP API carries, before the store sees it.

The API is called by other tiers only, so it is strict: an unknown field is a bug in
the caller and is refused (never silently ignored), a value of the wrong JSON type is
refused naming the field, and headers that say who the caller is must be well formed.
Value checks that need the store's knowledge (disk formats, id syntax, tenancy) stay
in :class:`~image_store.store.ImageStore`; this module only makes sure the store is
handed the Python types it expects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from image_store.codec import is_address
from image_store.store import SERVICE, Caller, Entry

PROJECT_HEADER = "X-Ironbark-Project"
ADMIN_HEADER = "X-Ironbark-Admin"

# uuids (the Cloud Manager's project ids) and readable names alike; nothing a log line
# or a header could be confused by.
_PROJECT_RE = re.compile(r"[A-Za-z0-9._:@-]{1,255}")
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")

CREATE_TYPES: dict[str, tuple[str, ...]] = {
    "name": ("str",), "disk_format": ("str",), "id": ("str",), "owner": ("str", "null"),
    "visibility": ("str",), "properties": ("properties",), "kernel_id": ("str", "null"),
    "ramdisk_id": ("str", "null"), "min_disk": ("int",), "min_ram": ("int",),
}
CREATE_REQUIRED = ("name", "disk_format")
UPDATE_TYPES: dict[str, tuple[str, ...]] = {
    "name": ("str",), "visibility": ("str",), "kernel_id": ("str", "null"),
    "ramdisk_id": ("str", "null"), "min_disk": ("int",), "min_ram": ("int",),
    "properties": ("properties_patch",),
}
LIST_FILTERS = ("name", "status", "visibility", "owner")


class ApiError(Exception):
    """An HTTP error the service answers with; ``field`` names the culprit when known."""

    def __init__(self, code: int, message: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def bad(field: str | None, message: str) -> ApiError:
    return ApiError(400, message, field)


def parse_caller(headers: Mapping[str, str]) -> Caller:
    """Who the request acts for: a project (maybe admin), or the service itself.

    An admin flag without a project is refused rather than guessed: the service (no
    project header) already has full access, so such a request is a caller's bug.
    """
    project = headers.get(PROJECT_HEADER)
    admin = headers.get(ADMIN_HEADER)
    is_admin = False
    if admin is not None:
        if admin.strip().lower() not in ("true", "false"):
            raise bad(ADMIN_HEADER, f"{ADMIN_HEADER} must be true or false, got {admin!r:.80}")
        is_admin = admin.strip().lower() == "true"
    if project is None:
        if admin is not None:
            raise bad(ADMIN_HEADER, f"{ADMIN_HEADER} needs {PROJECT_HEADER} (a request "
                                    "without a project acts as the service itself)")
        return SERVICE
    if not _PROJECT_RE.fullmatch(project):
        raise bad(PROJECT_HEADER, f"{PROJECT_HEADER} must be 1 to 255 characters of "
                                  f"letters, digits and ._:@-, got {project!r:.80}")
    return Caller(project, is_admin)


def _type_error(field: str, wanted: Iterable[str], value: Any) -> ApiError:
    names = {"str": "a string", "null": "null", "int": "an integer",
             "properties": "an object of string values",
             "properties_patch": "an object of string (or null) values"}
    return bad(field, f"{field} must be {' or '.join(names[w] for w in wanted)}, "
                      f"got {_json_type(value)}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r:.80}"
    return "an array" if isinstance(value, list) else "an object"


def _matches(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("properties", "properties_patch"):
        allow_null = kind == "properties_patch"
        return isinstance(value, dict) and all(
            isinstance(v, str) or (allow_null and v is None) for v in value.values())
    raise AssertionError(kind)


def check_object(body: Any, types: Mapping[str, tuple[str, ...]],
                 required: Iterable[str] = ()) -> dict[str, Any]:
    """``body`` as a dict, if it is a JSON object of known fields of the right types."""
    if not isinstance(body, dict):
        raise bad(None, "the request body must be a JSON object")
    unknown = sorted(set(body) - set(types))
    if unknown:
        raise bad(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    for field in required:
        if field not in body:
            raise bad(field, f"missing required field: {field}")
    for field, value in body.items():
        if not any(_matches(kind, value) for kind in types[field]):
            raise _type_error(field, types[field], value)
    return body


def list_filters(args: Mapping[str, list[str]]) -> dict[str, str]:
    """The list route's query filters (each at most once; nothing else)."""
    unknown = sorted(set(args) - set(LIST_FILTERS))
    if unknown:
        raise bad(unknown[0], f"unknown query parameter(s): {', '.join(unknown)} "
                              f"(filters: {', '.join(LIST_FILTERS)})")
    filters = {}
    for name, values in args.items():
        if len(values) != 1:
            raise bad(name, f"query parameter {name} given {len(values)} times")
        filters[name] = values[0]
    return filters


def check_address(value: str, field: str = "address") -> str:
    if not is_address(value):
        raise bad(field, f"{field} must be 64 lower-case hex characters (a SHA-256), "
                         f"got {value!r:.80}")
    return value


def addresses_body(body: Any) -> list[str]:
    """``{"addresses": [...]}`` of ``POST .../chunks/missing``."""
    addresses = _object_with(body, "addresses")["addresses"]
    if not isinstance(addresses, list):
        raise bad("addresses", f"addresses must be an array, got {_json_type(addresses)}")
    for i, value in enumerate(addresses):
        if not isinstance(value, str) or not is_address(value):
            raise bad("addresses", f"addresses[{i}] must be 64 lower-case hex characters "
                                   f"(a SHA-256), got {_json_type(value)}")
    return addresses


def _object_with(body: Any, *fields: str) -> dict[str, Any]:
    """A JSON object holding exactly ``fields`` (any JSON types: checked by the caller)."""
    if not isinstance(body, dict):
        raise bad(None, "the request body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise bad(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    for field in fields:
        if field not in body:
            raise bad(field, f"missing required field: {field}")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def manifest_body(body: Any) -> tuple[int, list[Entry]]:
    """``{"size": N, "chunks": [[offset, length, address|null], ...]}`` as store types.

    Only shapes and types are checked here; coverage and presence of the chunks are
    the store's to judge.
    """
    body = _object_with(body, "size", "chunks")
    size, chunks = body["size"], body["chunks"]
    if not _is_int(size):
        raise bad("size", f"size must be an integer, got {_json_type(size)}")
    if not isinstance(chunks, list):
        raise bad("chunks", f"chunks must be an array, got {_json_type(chunks)}")
    entries = []
    for i, item in enumerate(chunks):
        where = f"chunks[{i}]"
        if not isinstance(item, list) or len(item) != 3:
            raise bad("chunks", f"{where} must be [offset, length, address|null], "
                                f"got {_json_type(item)}")
        offset, length, address = item
        if not _is_int(offset) or not _is_int(length):
            raise bad("chunks", f"{where}: offset and length must be integers")
        if address is not None and (not isinstance(address, str) or not is_address(address)):
            raise bad("chunks", f"{where}: the address must be 64 lower-case hex characters "
                                f"or null, got {_json_type(address)}")
        entries.append(Entry(offset, length, address))
    return size, entries


def empty_object(body: Any, raw: bytes) -> None:
    """Routes that take no parameters accept no body, or ``{}``."""
    if raw.strip() and body != {}:
        raise bad(None, "this request takes no body (or an empty JSON object)")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """``(start, end)`` (end exclusive) of a single ``Range: bytes=...`` within ``size``.

    Forms: ``a-b``, ``a-`` and the suffix ``-n``; ``b`` past the end is clamped (RFC
    9110). A malformed, unsatisfiable or multi-range header raises a 416 carrying
    ``Content-Range: bytes */size``: the store's clients ask one range at a time, and
    a refusal is clearer to them than a silently whole body.
    """
    unsatisfiable = {"Content-Range": f"bytes */{size}"}
    spec = header.strip()
    if "," in spec:
        raise ApiError(416, f"multiple ranges are not supported ({header!r:.80}): "
                            "ask for one range at a time", "Range", unsatisfiable)
    match = _RANGE_RE.fullmatch(spec)
    if match is None or match.group(1) == match.group(2) == "":
        raise ApiError(416, f"Range must be bytes=first-last, bytes=first- or bytes=-count, "
                            f"got {header!r:.80}", "Range", unsatisfiable)
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix: the last n bytes
        count = int(last)
        if count == 0 or size == 0:
            raise ApiError(416, f"range {header!r:.80} selects no byte of the {size}-byte "
                                "image", "Range", unsatisfiable)
        return max(0, size - count), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        raise ApiError(416, f"range {header!r:.80}: the last byte is before the first",
                       "Range", unsatisfiable)
    if start >= size:
        raise ApiError(416, f"range {header!r:.80} starts beyond the end of the {size}-byte "
                            "image", "Range", unsatisfiable)
    return start, end
