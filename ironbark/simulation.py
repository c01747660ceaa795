"""Scale mode: the plan of a cloud of many simulated hosts, and the hosts themselves.

One plan, computed the same way by every process that needs it: the all-in-one
(``ironbark up --hosts 1000 --groups 4``), each Instance Manager process of the
multi-process lab (``ironbark-instance-manager --simulate --only-group az2``) and the
benchmark's checks. From ``[scale]`` (hosts, groups, host_mix, seed) it names the
groups (``[group] name`` alone, or ``az1..azN``), gives each group a contiguous block
of ``host1..hostN`` and draws each host's size from the mix (ironbark/host_mix.py).

The hosts are the real Instance Manager, each with its own ``HostContext``, libvirt
``test:///`` connection and XML file, image cache directory, idempotency journal,
``host.<name>`` queue and reporter: only the process, the Bus and the image store's
HTTP connection pool are shared. One process per host would not fit here: an idle
single-host ``ironbark-instance-manager`` is ~77 MB of RSS with its own three broker
connections, so 1,000 of them would need ~77 GB and 3,000 connections on a 2-core
machine; 1,000 hosts in one all-in-one process peak at ~380 MB.

Heartbeats: every report is a libvirt listing, a bus message and a transaction in the
group's database. Measured on this machine (2 cores, shared): 2.6-3.8 ms of CPU per
report across the tiers, so 1,000 hosts reporting every 10 s (100 reports/s) idle at
26-38 % of a core before any server is asked for. ``scale.max_reports_per_second``
(20) caps the whole cloud's heartbeats: the report interval grows to ``hosts /
max_reports_per_second`` (50 s at 1,000 hosts: 9 % of a core measured) and
``host_down_after`` to three intervals (150 s), the ratio of the defaults (10 s /
30 s). A report after every change is unaffected, so what the scheduler sees of busy
hosts stays as fresh as at any size; only a dead host is noticed later.
"""

from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from image_store.client import ImageStoreClient
from instance_manager.context import HostContext
from instance_manager.driver.libvirt import from_options
from instance_manager.image_cache import ImageCache
from instance_manager.manager import InstanceManager
from ironbark.config import Config, GroupOptions, HostOptions
from ironbark.host_mix import draw, parse_host_mix
from message_bus import Bus

log = logging.getLogger(__name__)

HEARTBEATS_PER_DOWN = 3  # host_down_after = this many report intervals (10 s / 30 s)
_BUILD_THREADS = 4  # hosts built at once: opening libvirt and fsyncing overlap
MAX_HOSTS = 10000  # ScaleOptions.hosts' bound
MAX_GROUPS = 64  # ScaleOptions.groups' bound


class ScaleError(ValueError):
    """The scale settings cannot make a cloud; the message names the option."""


@dataclass(frozen=True)
class SimulatedHostSpec:
    """One simulated host of the plan: its name, group and size."""

    name: str
    group: str
    vcpus: int
    memory_mb: int


@dataclass(frozen=True)
class Layout:
    """The whole simulated cloud: groups, hosts, and the heartbeat they all use."""

    groups: tuple[str, ...]
    hosts: tuple[SimulatedHostSpec, ...]
    report_interval: float
    host_down_after: float

    def in_group(self, group: str) -> list[SimulatedHostSpec]:
        return [h for h in self.hosts if h.group == group]

    def counts(self) -> dict[str, int]:
        """Hosts per group, every group listed."""
        per = Counter(h.group for h in self.hosts)
        return {g: per[g] for g in self.groups}

    def describe(self) -> str:
        """One line for people: groups, hosts per group, sizes and heartbeat."""
        counts = self.counts()
        sizes = Counter(f"{h.vcpus} vCPU/{h.memory_mb // 1024} GiB" for h in self.hosts)
        per_group = ", ".join(f"{g}: {n}" for g, n in counts.items())
        mix = ", ".join(f"{n} x {size}" for size, n in sorted(sizes.items()))
        return (f"{len(self.hosts)} simulated hosts in {len(self.groups)} group(s) "
                f"({per_group}); sizes {mix}; reports every {self.report_interval:g} s, "
                f"down after {self.host_down_after:g} s")


def check_flags(hosts: int | None, groups: int | None, host_mix: str | None) -> None:
    """Command-line scale options, checked before the configuration so that the error
    names the flag (``--hosts``) rather than the option (``scale.hosts``)."""
    if hosts is not None and not 1 <= hosts <= MAX_HOSTS:
        raise ScaleError(f"--hosts: must be 1 to {MAX_HOSTS}, got {hosts}")
    if groups is not None and not 1 <= groups <= MAX_GROUPS:
        raise ScaleError(f"--groups: must be 1 to {MAX_GROUPS}, got {groups}")
    if hosts is not None and groups is not None and hosts < groups:
        raise ScaleError(f"--hosts: {hosts} hosts cannot fill {groups} groups "
                         f"(every group needs a host)")
    if host_mix is not None:
        try:
            parse_host_mix(host_mix)
        except ValueError as exc:
            raise ScaleError(f"--host-mix: {exc}") from None


def group_names(cfg: Config) -> tuple[str, ...]:
    """``scale.group_names``, or ``az1..azN`` for ``scale.groups`` > 1, or the one
    ``[group] name`` (today's single-group cloud)."""
    scale = cfg.scale
    if scale.group_names:
        return tuple(scale.group_names)
    if scale.groups == 1:
        return (cfg.group.name,)
    return tuple(f"az{i}" for i in range(1, scale.groups + 1))


def heartbeat(cfg: Config, hosts: int) -> tuple[float, float]:
    """(report interval, host_down_after) for ``hosts`` hosts: the configured ones,
    lengthened so that the cloud sends at most ``scale.max_reports_per_second``."""
    interval = max(cfg.host.report_interval, hosts / cfg.scale.max_reports_per_second)
    return interval, max(cfg.group.host_down_after, HEARTBEATS_PER_DOWN * interval)


def plan(cfg: Config, hosts: int | None = None) -> Layout:
    """The simulated cloud ``cfg`` asks for; ``hosts`` overrides ``scale.hosts``."""
    count = cfg.scale.hosts if hosts is None else hosts
    # 0 hosts is a cloud whose group has no host yet (the tests' "nothing fits" case).
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ScaleError(f"scale.hosts: must be a whole number >= 0, got {count!r}")
    groups = group_names(cfg)
    if 0 < count < len(groups):
        raise ScaleError(f"scale.hosts: {count} hosts cannot fill {len(groups)} groups "
                         f"(every group needs a host)")
    try:
        mix = parse_host_mix(cfg.scale.host_mix)
    except ValueError as exc:
        raise ScaleError(f"scale.host_mix: {exc}") from None
    sizes = ([(s.vcpus, s.memory_mb) for s in draw(mix, count, cfg.scale.seed)] if mix
             else [(cfg.host.simulated_vcpus, cfg.host.simulated_memory_mb)] * count)
    specs: list[SimulatedHostSpec] = []
    base, extra = divmod(count, len(groups))
    for position, group in enumerate(groups):
        for _ in range(base + (1 if position < extra else 0)):
            vcpus, memory_mb = sizes[len(specs)]
            specs.append(SimulatedHostSpec(f"host{len(specs) + 1}", group, vcpus, memory_mb))
    interval, down_after = heartbeat(cfg, count)
    return Layout(groups, tuple(specs), interval, down_after)


def group_database_url(cfg: Config, layout: Layout, group: str) -> str:
    """Each group's own database: ``[group] database_url`` when the cloud has just
    that group, else ``scale.group_database_url`` with the name filled in (default:
    ``group-<name>.db`` in data_dir)."""
    assert cfg.group.database_url is not None
    if layout.groups == (cfg.group.name,):
        return cfg.group.database_url
    template = cfg.scale.group_database_url
    if template is None:
        derived = f"sqlite:///{cfg.data_dir / f'group-{cfg.group.name}.db'}"
        if cfg.group.database_url != derived:
            raise ScaleError("scale.group_database_url: several groups cannot share "
                             f"group.database_url ({cfg.group.database_url}); give a URL "
                             "with {group} where each group's name goes")
        template = f"sqlite:///{cfg.data_dir / 'group-{group}.db'}"
    return template.replace("{group}", group)


def group_options(cfg: Config, layout: Layout, group: str) -> GroupOptions:
    """``[group]`` for one group of the layout: its name, database and heartbeat."""
    if group not in layout.groups:
        raise ScaleError(f"group {group!r} is not in the plan ({', '.join(layout.groups)})")
    return cfg.group.model_copy(update={
        "name": group, "database_url": group_database_url(cfg, layout, group),
        "host_down_after": layout.host_down_after,
    })


def is_real(cfg: Config, layout: Layout, spec: SimulatedHostSpec) -> bool:
    """With ``host.hypervisor = "qemu"`` the plan's first host is this machine, running
    real guests through libvirtd; the others stay simulated (a lab on one machine)."""
    return cfg.host.hypervisor == "qemu" and spec == layout.hosts[0]


def host_options(cfg: Config, layout: Layout, spec: SimulatedHostSpec) -> HostOptions:
    """``[host]`` for one host of the plan: its own name, group, size and state dir."""
    state_dir = cfg.data_dir / "hosts" / spec.name
    if is_real(cfg, layout, spec):
        hypervisor, uri = "qemu", cfg.host.hypervisor_uri or "qemu:///system"
        if uri.startswith("test:"):  # derived for the simulated default
            uri = "qemu:///system"
    else:
        hypervisor, uri = "simulated", f"test://{state_dir / 'host.xml'}"
    return HostOptions.model_validate({
        **cfg.host.model_dump(), "name": spec.name, "group": spec.group,
        "state_dir": state_dir, "hypervisor": hypervisor, "hypervisor_uri": uri,
        "simulated_vcpus": spec.vcpus, "simulated_memory_mb": spec.memory_mb,
        "report_interval": layout.report_interval,
    })


class SimulatedHosts:
    """The Instance Managers of ``specs``, in this process, on one Bus.

    Shared: the Bus (one consumer thread serves every ``host.<name>`` queue) and one
    ``ImageStoreClient`` (a thread-safe HTTP connection pool). Not shared: each host's
    image cache, which stands for that host's own disk, so every host fetches an
    image the first time it boots it, as a real host would.
    """

    def __init__(self, cfg: Config, bus: Bus, layout: Layout, store_url: str,
                 specs: list[SimulatedHostSpec] | None = None):
        assert cfg.image_store.token is not None
        self.cfg, self.bus, self.layout = cfg, bus, layout
        self.specs = list(layout.hosts if specs is None else specs)
        self.store = ImageStoreClient(store_url, cfg.image_store.token)
        self.managers: list[InstanceManager] = []

    def build(self) -> SimulatedHosts:
        """Open every host (its XML file, libvirt connection, cache index, journal)."""
        with ThreadPoolExecutor(_BUILD_THREADS, thread_name_prefix="build-host") as pool:
            self.managers = list(pool.map(self._manager, self.specs))
        return self

    def _manager(self, spec: SimulatedHostSpec) -> InstanceManager:
        options = host_options(self.cfg, self.layout, spec)
        cache = ImageCache.for_host(options, self.store)
        return InstanceManager(HostContext(options, from_options(options), self.bus, cache,
                                           store=self.store))

    def register(self) -> None:
        for manager in self.managers:
            manager.register()

    def start(self) -> None:
        for manager in self.managers:
            manager.start()

    def stop(self) -> None:
        """Stop reporting (before the Bus stops)."""
        for manager in self.managers:
            manager.stop()

    def close(self) -> None:
        """Release every host's journal, hypervisor and cache (after the Bus stopped)."""
        for manager in self.managers:
            manager.close()
            manager.ctx.images.close()
        self.store.close()

    def state_dirs(self) -> dict[str, Path]:
        return {m.ctx.name: m.ctx.options.state_dir for m in self.managers
                if m.ctx.options.state_dir is not None}
