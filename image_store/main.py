"""``ironbark-image-store [serve]`` and ``ironbark-image-store scrub``.

``serve`` (the default) runs the HTTP API under gunicorn. It reads the same
configuration as every other tier (``[image_store]``) and generates the service
token on first start, so the other tiers of a single-machine cloud find it in
``data_dir/secrets.toml``.

``scrub`` opens the store from the same configuration, verifies every chunk and
prints a report; its exit status says whether the store is damaged (0 clean, 1
corrupt or missing chunks, 2 bad configuration), so it can run from cron or a
monitoring check. It opens the store without start-up recovery, so it may run
beside a serving ``ironbark-image-store`` (recovery would kill its uploads in
flight); the scrub's orphan removal waits out a grace period for the same reason.

A configuration the store cannot use (a chunk size FastCDC refuses, say) is found
before gunicorn starts: the master opens the store once, so the command exits 2
naming the option instead of leaving a worker that fails to boot.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from flask import Flask

from image_store.factory import open_store
from image_store.scrub_report import is_clean, render
from image_store.service import SERVICE_NAME, create_app
from image_store.store import ImageStore
from ironbark import logs
from ironbark.config import Config, ConfigError, ImageStoreOptions, ensure_secrets, load
from ironbark.wsgi import run_gunicorn
from message_bus.context import service_var

log = logging.getLogger(__name__)

PROG = "ironbark-image-store"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Serve the Ironbark image store API, or scrub its chunks.")
    parser.add_argument("command", nargs="?", choices=("serve", "scrub"), default="serve",
                        help="serve the API (default) or verify every stored chunk")
    parser.add_argument("--config", metavar="FILE",
                        help="TOML configuration file (default: $IRONBARK_CONFIG)")
    parser.add_argument("--json", action="store_true",
                        help="scrub: print the result as JSON instead of a report")
    return parser


def _config(config_file: str | None, with_secrets: bool) -> Config:
    try:
        cfg = load(config_file)
        return ensure_secrets(cfg) if with_secrets else cfg
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        sys.exit(2)


def _open(options: ImageStoreOptions, *, recover: bool) -> ImageStore:
    """The store, or exit 2 naming the option it cannot work with."""
    try:
        return open_store(options, recover=recover)
    except ValueError as exc:
        print(f"{PROG}: invalid configuration: {exc}", file=sys.stderr)
        sys.exit(2)


def serve(cfg: Config) -> None:
    options = cfg.image_store
    assert options.token is not None  # filled by ensure_secrets
    token: str = options.token
    _open(options, recover=True).close()  # check it opens (and recover) before forking

    def app_factory() -> Flask:
        return create_app(open_store(options), token)  # recovered already: harmless again

    log.info("image store (%s backend, data in %s) serving on %s:%d", options.backend,
             options.data_dir, options.host, options.port)
    # One worker: the store's start-up recovery assumes it is alone on its catalog.
    run_gunicorn(app_factory, host=options.host, port=options.port, workers=1)


def scrub(cfg: Config, as_json: bool) -> int:
    store = _open(cfg.image_store, recover=False)
    try:
        result = store.scrub()
    finally:
        store.close()
    print(json.dumps(result, indent=2) if as_json else render(result))
    return 0 if is_clean(result) else 1


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.json and args.command != "scrub":
        print(f"{PROG}: --json only applies to scrub", file=sys.stderr)
        sys.exit(2)
    cfg = _config(args.config, with_secrets=args.command == "serve")
    logs.setup(cfg.logging.level, cfg.logging.json_lines, cfg.logging.file)
    service_var.set(SERVICE_NAME)
    if args.command == "scrub":
        sys.exit(scrub(cfg, args.json))
    serve(cfg)


if __name__ == "__main__":
    main()
