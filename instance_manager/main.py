"""``ironbark-instance-manager``: one hypervisor host's manager as its own process."""

from __future__ import annotations

import argparse
import logging

from image_store.client import ImageStoreClient
from instance_manager.context import HostContext
from instance_manager.driver.libvirt import from_options
from instance_manager.image_cache import ImageCache
from instance_manager.manager import InstanceManager
from ironbark.config import Config
from ironbark.runtime import load_config_or_exit, wait_for_shutdown
from message_bus import Bus

log = logging.getLogger(__name__)


def build(cfg: Config, bus: Bus) -> InstanceManager:
    """An Instance Manager for the host ``cfg.host`` describes, on ``bus``."""
    assert cfg.host.state_dir is not None and cfg.image_store.url is not None
    assert cfg.image_store.token is not None
    store = ImageStoreClient(cfg.image_store.url, cfg.image_store.token)
    images = ImageCache.for_host(cfg.host, store)
    return InstanceManager(HostContext(cfg.host, from_options(cfg.host), bus, images,
                                       store=store))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ironbark-instance-manager", description=__doc__)
    parser.add_argument("--config", help="TOML configuration file (or IRONBARK_CONFIG)")
    args = parser.parse_args(argv)
    cfg = load_config_or_exit(args.config)
    bus = Bus(cfg.bus.url, sender=f"host.{cfg.host.name}", namespace=cfg.bus.namespace,
              polling_interval=cfg.bus.polling_interval)
    manager = build(cfg, bus)
    manager.register()
    bus.start()
    manager.start()
    log.info("instance manager for host %s (group %s) serving", cfg.host.name, cfg.host.group)
    wait_for_shutdown()
    log.info("instance manager for host %s stopping", cfg.host.name)
    manager.stop()
    bus.stop()
    manager.close()


if __name__ == "__main__":
    main()
