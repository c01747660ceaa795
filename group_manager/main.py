"""``ironbark-group-manager``: one group's manager as its own process."""

from __future__ import annotations

import argparse
import logging

from group_manager.manager import GroupManager
from ironbark.db import create_engine
from ironbark.runtime import load_config_or_exit, wait_for_shutdown
from message_bus import Bus

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ironbark-group-manager", description=__doc__)
    parser.add_argument("--config", help="TOML configuration file (or IRONBARK_CONFIG)")
    args = parser.parse_args(argv)
    cfg = load_config_or_exit(args.config)
    assert cfg.group.database_url is not None
    bus = Bus(cfg.bus.url, sender=f"group.{cfg.group.name}", namespace=cfg.bus.namespace,
              polling_interval=cfg.bus.polling_interval)
    manager = GroupManager(cfg.group, bus, create_engine(cfg.group.database_url),
                           cfg.bus.rpc_timeout)
    manager.migrate()
    manager.register()
    bus.start()
    manager.start()
    log.info("group manager '%s' serving (policy %s)", cfg.group.name,
             cfg.group.scheduler_policy)
    wait_for_shutdown()
    log.info("group manager '%s' stopping", cfg.group.name)
    manager.stop()
    bus.stop()


if __name__ == "__main__":
    main()
