"""Errors of the message bus, each naming the target and message involved."""

from __future__ import annotations


class BusError(Exception):
    """Base of every bus failure."""


class CallTimeout(BusError):
    """Nobody answered a call in time: the target is absent, down or overloaded."""

    def __init__(self, target: str, name: str, timeout: float):
        self.target, self.name, self.timeout = target, name, timeout
        super().__init__(f"no reply from '{target}' to '{name}' within {timeout:g} s")


class RemoteError(BusError):
    """The handler of a call raised; its type and message come back as data."""

    def __init__(self, target: str, name: str, error_type: str, message: str):
        self.target, self.name, self.error_type, self.message = target, name, error_type, message
        super().__init__(f"'{target}' failed '{name}': {error_type}: {message}")


class MessageRejected(BusError):
    """A received message was malformed, unknown or of an unsupported major version."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"rejected message '{name}': {reason}")
