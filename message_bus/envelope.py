"""Typed, versioned bus messages and the envelope that carries them.

A message is a pydantic model declared once (in ``message_bus.messages``) and shared
by every tier. On the wire it travels inside an envelope::

    {"name": "build_instance", "version": "1.0", "id": "...", "request_id": "req-...",
     "idempotency_key": "build:...", "sent_at": 1.7e9, "expires_at": null,
     "sender": "cloud", "body": {...}}

A receiver accepts any minor version of a major it knows (newer minors may add
fields, which it ignores) and rejects an unknown name, an unknown major version or
a body that does not validate, with an error naming the message.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from message_bus.errors import MessageRejected

Kind = Literal["call", "cast", "event", "reply"]

_REGISTRY: dict[str, type[Message]] = {}


class Message(BaseModel):
    """Base of every bus message.

    Subclasses set ``NAME``, ``VERSION`` and ``KIND``; a mutating cast also defines
    ``idempotency_key()`` from its own fields, so that a redelivery (or a resend by
    a sender that crashed after sending) carries the same key and is done once.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    NAME: ClassVar[str]
    VERSION: ClassVar[tuple[int, int]] = (1, 0)
    KIND: ClassVar[Kind] = "cast"
    REPLY: ClassVar[type[Message] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("NAME")
        if name is None:
            return  # an abstract intermediate class
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise TypeError(f"message name '{name}' is defined twice")
        _REGISTRY[name] = cls

    def idempotency_key(self) -> str | None:
        """A key that is equal for redeliveries of the same logical message."""
        return None

    def ordering_key(self) -> str | None:
        """Messages with the same key are handled one at a time, in arrival order."""
        return None


def registry() -> dict[str, type[Message]]:
    return dict(_REGISTRY)


def encode(
    message: Message,
    *,
    request_id: str | None,
    sender: str,
    ttl: float | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    now = time.time()
    return {
        "name": message.NAME,
        "version": "{}.{}".format(*message.VERSION),
        "id": str(uuid.uuid4()),
        "request_id": request_id,
        "idempotency_key": idempotency_key or message.idempotency_key(),
        "sent_at": now,
        "expires_at": now + ttl if ttl is not None else None,
        "sender": sender,
        "body": message.model_dump(mode="json"),
    }


class Envelope(BaseModel):
    """A received envelope, checked for shape before its body is looked at."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    version: str
    id: str
    request_id: str | None = None
    idempotency_key: str | None = None
    sent_at: float
    expires_at: float | None = None
    sender: str = "?"
    body: dict[str, Any]

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) > self.expires_at


def decode(payload: Any) -> tuple[Envelope, Message]:
    """Validate an envelope and its body; raise MessageRejected naming the message."""
    name = payload.get("name", "?") if isinstance(payload, dict) else "?"
    try:
        envelope = Envelope.model_validate(payload)
    except ValidationError as exc:
        raise MessageRejected(str(name), f"malformed envelope: {_first_error(exc)}") from None
    cls = _REGISTRY.get(envelope.name)
    if cls is None:
        raise MessageRejected(envelope.name, "unknown message name")
    try:
        major = int(envelope.version.split(".", 1)[0])
    except ValueError:
        raise MessageRejected(envelope.name, f"bad version '{envelope.version}'") from None
    if major != cls.VERSION[0]:
        raise MessageRejected(
            envelope.name,
            f"unsupported major version {envelope.version} (this side speaks "
            f"{cls.VERSION[0]}.x)",
        )
    try:
        message = cls.model_validate(envelope.body)
    except ValidationError as exc:
        raise MessageRejected(envelope.name, f"malformed body: {_first_error(exc)}") from None
    return envelope, message


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"
