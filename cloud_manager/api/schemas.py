"""Request bodies and query strings, validated strictly.

Strict models: a string where a number belongs is an error, not a conversion, and an
unknown field is an error, not ignored. Every failure answers 400 with the name of
the field at fault, before anything is created.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from cloud_manager.errors import BadInput
from message_bus.messages import USER_DATA_MAX, ServerGroupPolicy

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"\S")]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ServerCreate(_Strict):
    name: Name
    flavor: Ref
    image: Ref
    group: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,255}$")] | None = None
    server_group: Ref | None = None
    # Bounds and min <= max are checked by services.server_create (one message for both).
    min_count: int = 1
    max_count: int = 1
    key_name: Ref | None = None
    # base64; decoded and bounded by services.server_create (the message's limit).
    user_data: Annotated[str, StringConstraints(max_length=4 * USER_DATA_MAX // 3 + 4)] | None \
        = None


class KeyPairCreate(_Strict):
    """No ``public_key``: the cloud generates the pair and returns the private key once."""

    name: Ref  # the pattern is the service's (one message for API and CLI)
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=16384)] | None = None


class ServerGroupCreate(_Strict):
    name: Name
    policy: ServerGroupPolicy


class ServerAction(_Strict):
    action: Literal["start", "stop", "reboot", "pause", "unpause", "suspend", "resume"]
    type: Literal["soft", "hard"] | None = None


class FlavorCreate(_Strict):
    name: Name
    vcpus: int = Field(ge=1, le=1024)
    memory_mb: int = Field(ge=64, le=16 * 1024 * 1024)
    disk_gb: int = Field(ge=0, le=65536)
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,36}$")] | None = None
    is_public: bool = True


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M]) -> M:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object")
    return _validate(model, data)


def parse_query(allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise BadInput(f"unknown query parameter '{unknown[0]}'", field=unknown[0])
    return {k: v for k, v in request.args.items()}


def parse_bool(name: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadInput(f"field '{name}': expected true or false, got '{value}'", field=name)


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise BadInput(f"field '{field}': {message}", field=field) from None
