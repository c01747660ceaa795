"""``ironbark-cloud-manager``: the Cloud Manager as its own process, under gunicorn.

Migrations run once, in the master, before any worker starts. Each gunicorn worker
then builds its own engine, bus connection and background jobs (they cannot cross a
fork); several workers consume the ``cloud`` queue as competing consumers, which is
safe because every handler is idempotent and transactional.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from cloud_manager import bootstrap
from cloud_manager.manager import CloudManager
from image_store.client import ImageStoreClient
from ironbark.config import Config
from ironbark.db import create_engine
from ironbark.runtime import load_config_or_exit
from ironbark.wsgi import run_gunicorn
from message_bus import Bus

log = logging.getLogger(__name__)

_running: dict[str, Any] = {}


def build(cfg: Config, bus: Bus) -> CloudManager:
    assert cfg.database.url is not None
    return CloudManager(cfg, bus, create_engine(cfg.database.url))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ironbark-cloud-manager", description=__doc__)
    parser.add_argument("--config", help="TOML configuration file (or IRONBARK_CONFIG)")
    parser.add_argument("command", nargs="?", choices=["serve", "bootstrap"], default="serve",
                        help="serve the API (default), or migrate the database and seed the "
                             "classic flavors and the demo image, then exit")
    args = parser.parse_args(argv)
    cfg = load_config_or_exit(args.config)
    assert cfg.database.url is not None
    manager = CloudManager(cfg, Bus(cfg.bus.url, sender="cloud"),
                           create_engine(cfg.database.url))
    manager.migrate()
    if args.command == "bootstrap":
        assert cfg.image_store.url is not None and cfg.image_store.token is not None
        with ImageStoreClient(cfg.image_store.url, cfg.image_store.token) as store:
            bootstrap.seed(manager.sessions, store)
        log.info("bootstrapped: classic flavors and the demo image are in place")
        return

    def app_factory() -> Any:
        bus = Bus(cfg.bus.url, sender="cloud", namespace=cfg.bus.namespace,
                  polling_interval=cfg.bus.polling_interval)
        manager = build(cfg, bus)
        manager.register()
        bus.start()
        manager.start()
        _running.update(bus=bus, manager=manager)
        log.info("cloud manager serving on %s:%d", cfg.api.host, cfg.api.port)
        return manager.app()

    def on_exit(_worker: Any) -> None:
        if "manager" in _running:
            _running["manager"].stop()
            _running["bus"].stop()

    run_gunicorn(app_factory, host=cfg.api.host, port=cfg.api.port, workers=cfg.api.workers,
                 threads=cfg.api.threads, on_worker_exit=on_exit)


if __name__ == "__main__":
    main()
