"""Process plumbing shared by every tier's entry point: load config, log, wait for a signal."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from ironbark import config, logs


def load_config_or_exit(path: str | Path | None, **overrides: object) -> config.Config:
    """Load and validate the configuration; on error print it and exit with status 2."""
    try:
        cfg = config.ensure_secrets(config.load(path, **overrides))
    except config.ConfigError as exc:
        print(f"ironbark: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.setup(cfg.logging.level, cfg.logging.json_lines, cfg.logging.file)
    return cfg


def wait_for_shutdown() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
