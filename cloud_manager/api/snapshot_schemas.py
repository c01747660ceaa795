"""The body of a server's ``create_image`` action, as strict as every other body.

``{"create_image": {"name": "...", "properties": {"k": "v"}}}`` (Nova's createImage,
with ``properties`` for its ``metadata``). Property bounds are the image API's
(``image_schemas``); the keys the cloud sets on every snapshot may not be given.
"""

from __future__ import annotations

from pydantic import field_validator

from cloud_manager.api.image_schemas import MAX_PROPERTIES, PropertyKey, PropertyValue
from cloud_manager.api.schemas import Name, _Strict
from cloud_manager.services.snapshots import SYSTEM_PROPERTIES


class SnapshotRequest(_Strict):
    name: Name
    properties: dict[PropertyKey, PropertyValue] | None = None

    @field_validator("properties")
    @classmethod
    def _own_keys_only(cls, properties: dict[str, str] | None) -> dict[str, str] | None:
        if properties is None:
            return None
        room = MAX_PROPERTIES - len(SYSTEM_PROPERTIES)
        if len(properties) > room:
            raise ValueError(f"at most {room} properties, got {len(properties)}")
        reserved = sorted(set(properties) & set(SYSTEM_PROPERTIES))
        if reserved:
            raise ValueError(f"'{reserved[0]}' is set by the cloud on every snapshot")
        return properties


class CreateImageAction(_Strict):
    create_image: SnapshotRequest
