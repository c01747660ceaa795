"""``ironbark-instance-manager``: one hypervisor host's manager as its own process.

With ``--simulate``, many simulated hosts' managers in one process, on one Bus: the
hosts of the ``[scale]`` plan (ironbark/simulation.py), or with ``--only-group`` just
that group's. Each host keeps its own Instance Manager, libvirt ``test:///``
connection and XML file, image cache and queue; one process per simulated host would
not fit 1,000 hosts on a small machine (each process is tens of MB and three broker
connections)::

    ironbark-instance-manager --simulate --hosts 1000 --groups 4 --only-group az2 \\
        --host-mix 32x128:1,64x256:1
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from image_store.client import ImageStoreClient
from instance_manager.context import HostContext
from instance_manager.driver.libvirt import from_options
from instance_manager.image_cache import ImageCache
from instance_manager.manager import InstanceManager
from ironbark import simulation
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironbark-instance-manager", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML configuration file (or IRONBARK_CONFIG)")
    sim = parser.add_argument_group("scale mode (many simulated hosts in this process)")
    sim.add_argument("--simulate", action="store_true",
                     help="run the simulated hosts of the [scale] plan instead of [host]")
    sim.add_argument("--hosts", type=int, metavar="N", help="hosts in the whole plan "
                     "(scale.hosts)")
    sim.add_argument("--groups", type=int, metavar="N", help="groups in the plan "
                     "(scale.groups: 1 is [group] name, more are az1..azN)")
    sim.add_argument("--host-mix", metavar="MIX", help="sizes VCPUSxGIB[:WEIGHT],... "
                     "(scale.host_mix)")
    sim.add_argument("--seed", type=int, help="which host gets which size (scale.seed)")
    sim.add_argument("--only-group", metavar="NAME",
                     help="run only this group's hosts (default: every host of the plan)")
    return parser


def _scale_overrides(parser: argparse.ArgumentParser, args: argparse.Namespace
                     ) -> dict[str, Any]:
    """The [scale] options given as flags, checked here so errors name the flag."""
    scale_flags = {"hosts": args.hosts, "groups": args.groups, "host_mix": args.host_mix,
                   "seed": args.seed}
    given = {k: v for k, v in scale_flags.items() if v is not None}
    if (given or args.only_group is not None) and not args.simulate:
        parser.error("--hosts, --groups, --host-mix, --seed and --only-group need --simulate")
    try:
        simulation.check_flags(args.hosts, args.groups, args.host_mix)
    except simulation.ScaleError as exc:
        parser.error(str(exc))
    return given


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    scale = _scale_overrides(parser, args)
    cfg = load_config_or_exit(args.config, **({"scale": scale} if scale else {}))
    if args.simulate:
        _serve_simulated(parser, cfg, args.only_group)
        return
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


def _serve_simulated(parser: argparse.ArgumentParser, cfg: Config,
                     only_group: str | None) -> None:
    """Serve the plan's simulated hosts (or one group's) on one Bus until a signal."""
    try:
        layout = simulation.plan(cfg)
    except simulation.ScaleError as exc:
        parser.error(str(exc))
    if only_group is not None and only_group not in layout.groups:
        parser.error(f"--only-group: {only_group!r} is not a group of the plan "
                     f"({', '.join(layout.groups)})")
    specs = layout.hosts if only_group is None else layout.in_group(only_group)
    assert cfg.image_store.url is not None
    bus = Bus(cfg.bus.url, sender=f"hosts.{only_group or 'all'}", namespace=cfg.bus.namespace,
              polling_interval=cfg.bus.polling_interval)
    hosts = simulation.SimulatedHosts(cfg, bus, layout, cfg.image_store.url, list(specs))
    hosts.build()
    hosts.register()
    bus.start()
    hosts.start()
    log.info("serving %d simulated hosts (%s to %s) of %s", len(specs), specs[0].name,
             specs[-1].name, layout.describe())
    wait_for_shutdown()
    log.info("stopping %d simulated hosts", len(specs))
    hosts.stop()
    bus.stop()
    hosts.close()


if __name__ == "__main__":
    main()
