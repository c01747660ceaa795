"""Request bodies of ``/v1/images``, as strict as the other routes' (see ``schemas``).

The image store validates again (it is the owner of the records), but checking here
first means a bad request never reaches it and the error names the API's field.
Bounds follow Glance: property keys and values up to 255 characters, at most 128
properties, ``min_disk``/``min_ram`` non-negative 32-bit integers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from cloud_manager.api.schemas import Name, Ref, _Strict
from cloud_manager.errors import BadInput

MAX_PROPERTIES = 128
PropertyKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^\S")]
PropertyValue = Annotated[str, StringConstraints(max_length=255)]
Size = Annotated[int, Field(ge=0, le=2**31 - 1)]
DiskFormat = Literal["raw", "qcow2", "ami", "aki", "ari"]
Visibility = Literal["public", "private"]


def _few_enough(properties: dict[str, object] | None) -> dict[str, object] | None:
    if properties is not None and len(properties) > MAX_PROPERTIES:
        raise ValueError(f"at most {MAX_PROPERTIES} properties, got {len(properties)}")
    return properties


class ImageCreate(_Strict):
    name: Name
    disk_format: DiskFormat
    visibility: Visibility = "private"
    properties: dict[PropertyKey, PropertyValue] | None = None
    kernel_id: Ref | None = None
    ramdisk_id: Ref | None = None
    min_disk: Size = 0
    min_ram: Size = 0

    _check_properties = field_validator("properties")(_few_enough)


class ImageUpdate(_Strict):
    """Only the fields present change; ``null`` clears kernel/ramdisk or a property."""

    name: Name | None = None
    visibility: Visibility | None = None
    properties: dict[PropertyKey, PropertyValue | None] | None = None
    kernel_id: Ref | None = None
    ramdisk_id: Ref | None = None
    min_disk: Size | None = None
    min_ram: Size | None = None

    _check_properties = field_validator("properties")(_few_enough)

    def changes(self) -> dict[str, object]:
        """The fields the body gave, as the store's update takes them.

        ``name``, ``visibility``, ``min_disk``, ``min_ram`` and ``properties`` cannot be
        null (say which field); ``kernel_id``/``ramdisk_id`` null means "no kernel".
        """
        given = {k: getattr(self, k) for k in self.model_fields_set}
        if not given:
            raise BadInput("the request body names nothing to change (fields: "
                           f"{', '.join(type(self).model_fields)})")
        for key in ("name", "visibility", "min_disk", "min_ram", "properties"):
            if key in given and given[key] is None:
                raise BadInput(f"field '{key}': may not be null", field=key)
        return given
