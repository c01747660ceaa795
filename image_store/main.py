"""``ironbark-image-store``: serve the image store API under gunicorn.

Reads the same configuration as every other tier (``[image_store]`` holds host, port,
data_dir and the service token) and generates the token on first start, so the other
tiers of a single-machine cloud find it in ``data_dir/secrets.toml``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from flask import Flask

from image_store.service import SERVICE_NAME, create_app
from image_store.store import ImageStore
from ironbark import logs
from ironbark.config import ConfigError, ensure_secrets, load
from ironbark.wsgi import run_gunicorn
from message_bus.context import service_var

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ironbark-image-store", description="Serve the Ironbark image store API."
    )
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: $IRONBARK_CONFIG)")
    args = parser.parse_args(argv)
    try:
        cfg = ensure_secrets(load(args.config))
    except ConfigError as exc:
        print(f"ironbark-image-store: {exc}", file=sys.stderr)
        sys.exit(2)
    logs.setup(cfg.logging.level, cfg.logging.json_lines, cfg.logging.file)
    service_var.set(SERVICE_NAME)
    options = cfg.image_store
    assert options.data_dir is not None and options.token is not None  # filled by load/ensure
    data_dir: Path = options.data_dir
    token: str = options.token

    def app_factory() -> Flask:
        return create_app(ImageStore(data_dir), token)

    log.info("image store serving %s on %s:%d", data_dir, options.host, options.port)
    # One worker: ImageStore's lock keeps records and blobs consistent within a process.
    run_gunicorn(app_factory, host=options.host, port=options.port, workers=1)


if __name__ == "__main__":
    main()
