"""What the store's API speaks: errors, callers, manifest entries, image records.

Also the checks on every record field a caller may set, so that a bad value is
refused with an error naming the field before anything is written.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Glance's names for EC2-style images: ami a machine (root disk, raw) booted with an
# aki kernel and an ari ramdisk.
DISK_FORMATS = ("raw", "qcow2", "ami", "aki", "ari")
VISIBILITIES = ("public", "private")
QUEUED, SAVING, ACTIVE, KILLED = "queued", "saving", "active", "killed"
STATUSES = (QUEUED, SAVING, ACTIVE, KILLED)

MAX_NAME_LENGTH = 255
MAX_OWNER_LENGTH = 255
MAX_PROPERTIES = 128
MAX_PROPERTY_VALUE_LENGTH = 65535
MAX_MIN_VALUE = 2**31 - 1
# Property names end up as keys in JSON, in Glance-style flat views and in log lines:
# letters, digits and the separators metadata keys use (os_distro, hw:cpu_policy).
_PROPERTY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# A property may not shadow a field of the record itself.
_RESERVED_PROPERTIES = frozenset({
    "id", "name", "disk_format", "status", "size", "checksum", "sha256", "owner",
    "visibility", "kernel_id", "ramdisk_id", "min_disk", "min_ram", "properties",
    "chunk_count", "stored_size", "created_at", "updated_at", "corrupt_chunks",
})


class ImageStoreError(Exception):
    """Base of every error the store raises on purpose (the service maps each to a status)."""


class InvalidImage(ImageStoreError):
    """Bad input; ``field`` names the offending field so callers can report it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(ImageStoreError):
    """The caller sees the image but may not change it (someone else's public image)."""


class ImageNotFound(ImageStoreError):
    """No image has this id, or the caller may not see it (never told apart)."""


class ChunkNotFound(ImageStoreError):
    """No chunk has this address."""


class ImageConflict(ImageStoreError):
    """The request does not fit the image's state (id taken, upload to a non-queued image)."""


class RangeNotSatisfiable(ImageStoreError):
    """A byte range outside the image; ``size`` is the image's size."""

    def __init__(self, size: int, message: str) -> None:
        super().__init__(message)
        self.size = size


class CorruptImage(ImageStoreError):
    """Stored bytes do not match their address: they were not (and are never) served.

    ``image_id`` and ``offset`` are None when a chunk is read on its own.
    """

    def __init__(self, image_id: str | None, address: str, offset: int | None,
                 reason: str) -> None:
        where = f"chunk {address}" if offset is None else f"chunk {address} at offset {offset}"
        prefix = "" if image_id is None else f"image {image_id}: "
        super().__init__(f"{prefix}{where} is corrupt: {reason}")
        self.image_id = image_id
        self.address = address
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who a call acts for: a project (maybe admin), or the service (``project_id`` None)."""

    project_id: str | None
    is_admin: bool = False

    @property
    def privileged(self) -> bool:
        """The service and admins see and change every image."""
        return self.project_id is None or self.is_admin


SERVICE = Caller(None, True)


@dataclass(frozen=True)
class Entry:
    """One manifest entry: ``length`` bytes at ``offset``; ``address`` None is a hole."""

    offset: int
    length: int
    address: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class ImageRecord:
    """An image as the API shows it (docs/image-store.md, "Image record")."""

    id: str
    name: str
    disk_format: str
    status: str
    size: int | None
    checksum: str | None
    sha256: str | None
    owner: str | None
    visibility: str
    kernel_id: str | None
    ramdisk_id: str | None
    min_disk: int
    min_ram: int
    properties: dict[str, str]
    chunk_count: int
    stored_size: int | None
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    corrupt_chunks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; ``corrupt_chunks`` only appears when some chunk is damaged."""
        data = dataclasses.asdict(self)
        data["created_at"] = iso(self.created_at)
        data["updated_at"] = iso(self.updated_at)
        if not self.corrupt_chunks:
            del data["corrupt_chunks"]
        return data


# -- field checks ------------------------------------------------------------------------


def canonical_id(value: object) -> str | None:
    """The lower-case hyphenated uuid, or None when ``value`` is not one."""
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value.lower()
    return None


def new_image_id(value: object) -> str:
    if value is None:
        return str(uuid.uuid4())
    canonical = canonical_id(value)
    if canonical is None:
        raise InvalidImage("id", f"id must be a uuid, got {value!r:.80}")
    return canonical


def check_name(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidImage("name", f"name must be a string of 1 to {MAX_NAME_LENGTH} "
                                   f"characters, got {value!r:.80}")
    return value


def check_disk_format(value: object) -> str:
    if value not in DISK_FORMATS:
        raise InvalidImage("disk_format", f"disk_format must be one of "
                                          f"{', '.join(DISK_FORMATS)}, got {value!r:.80}")
    return value  # type: ignore[return-value]


def check_visibility(value: object) -> str:
    if value not in VISIBILITIES:
        raise InvalidImage("visibility", f"visibility must be one of "
                                         f"{', '.join(VISIBILITIES)}, got {value!r:.80}")
    return value  # type: ignore[return-value]


def check_owner(value: object) -> str | None:
    if value is not None and (not isinstance(value, str)
                              or not 1 <= len(value) <= MAX_OWNER_LENGTH):
        raise InvalidImage("owner", f"owner must be null or a string of 1 to "
                                    f"{MAX_OWNER_LENGTH} characters, got {value!r:.80}")
    return value


def check_minimum(field_name: str, value: object) -> int:
    """min_disk (GB) / min_ram (MiB): a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MIN_VALUE:
        raise InvalidImage(field_name, f"{field_name} must be an integer from 0 to "
                                       f"{MAX_MIN_VALUE}, got {value!r:.80}")
    return value


def check_status(value: object) -> str:
    if value not in STATUSES:
        raise InvalidImage("status", f"status must be one of {', '.join(STATUSES)}, "
                                     f"got {value!r:.80}")
    return value  # type: ignore[return-value]


def _check_property_name(key: object) -> str:
    if not isinstance(key, str) or not _PROPERTY_NAME.fullmatch(key):
        raise InvalidImage("properties", f"properties: name {key!r:.80} must be 1 to 255 "
                                         "letters, digits and _.:- (starting with a letter "
                                         "or digit)")
    if key in _RESERVED_PROPERTIES:
        raise InvalidImage("properties", f"properties: {key!r} is a field of the image "
                                         "record, not a property")
    return key


def _check_property_value(key: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_PROPERTY_VALUE_LENGTH:
        raise InvalidImage("properties", f"properties: the value of {key!r} must be a string "
                                         f"of at most {MAX_PROPERTY_VALUE_LENGTH} characters")
    return value


def check_properties(value: object) -> dict[str, str]:
    """Properties given on create: ``{name: string}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidImage("properties", "properties must be an object of string values")
    props = {_check_property_name(k): _check_property_value(k, v) for k, v in value.items()}
    if len(props) > MAX_PROPERTIES:
        raise InvalidImage("properties", f"properties: at most {MAX_PROPERTIES} are allowed")
    return props


def merge_properties(current: dict[str, str], patch: object) -> dict[str, str]:
    """Properties after an update: a ``None`` value removes the key."""
    if not isinstance(patch, dict):
        raise InvalidImage("properties", "properties must be an object of string (or null) "
                                         "values")
    merged = dict(current)
    for key, value in patch.items():
        _check_property_name(key)
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _check_property_value(key, value)
    if len(merged) > MAX_PROPERTIES:
        raise InvalidImage("properties", f"properties: at most {MAX_PROPERTIES} are allowed")
    return merged
