"""Logging set-up shared by every process: each line carries the request id.

Text lines read ``2026-11-22 10:00:00,123 INFO group_manager.scheduler [req-… host.h1]
message``; with ``json = true`` every line is one JSON object with the same fields,
for machines (``jq 'select(.request_id == "req-…")'`` follows one request through
every tier).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from message_bus.context import instance_id_var, request_id_var, service_var


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        record.instance_id = instance_id_var.get()
        record.service = service_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "service": getattr(record, "service", "-"),
            "request_id": getattr(record, "request_id", "-"),
            "instance_id": getattr(record, "instance_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not when the
    handler was made: a stream swapped out and closed since (a test runner's capture, a
    CLI's redirection) must not turn later log lines into "Logging error" tracebacks."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(service)s] %(message)s"


def setup(level: str = "INFO", json_lines: bool = False, file: Path | None = None) -> None:
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file)
    else:
        handler = StderrHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # kombu and amqp are chatty at INFO about every (re)connection.
    for noisy in ("kombu", "amqp", "werkzeug"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
