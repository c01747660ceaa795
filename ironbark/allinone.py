"""The all-in-one cloud: every tier in one process, on embedded defaults.

One memory:// bus, SQLite files, libvirt's simulated hypervisor (one XML file per
host) and a local image directory, all under one data directory, so state survives
a restart. The tiers are the same classes the standalone processes run; only the
transport and the process boundary differ. ``ironbark up`` runs this in the
foreground; the tests start it in-process.

By default: two hosts in one group (``[group] name``). In scale mode (``[scale]``,
``ironbark up --hosts 1000 --groups 4 --host-mix 32x128:1,64x256:1``) the hosts are
spread over several groups, each with its own Group Manager and database, and their
sizes come from a mix (see ironbark/simulation.py).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from cloud_manager import bootstrap
from cloud_manager.manager import CloudManager
from group_manager.manager import GroupManager
from image_store.client import ImageStoreClient
from image_store.factory import open_store
from image_store.service import create_app as image_store_app
from instance_manager.manager import InstanceManager
from ironbark import keystone, simulation
from ironbark.config import Config
from ironbark.db import create_engine
from ironbark.wsgi import ThreadedServer
from message_bus import Bus

log = logging.getLogger(__name__)


class AllInOne:
    """Every tier of a cloud with ``hosts`` simulated hosts (default ``scale.hosts``),
    in this process. ``group`` is the first group's manager, ``groups`` all of them."""

    def __init__(self, config: Config, hosts: int | None = None):
        if config.bus.url != "memory://" and not config.bus.url.startswith("amqp"):
            raise ValueError(f"unsupported bus URL {config.bus.url}")
        self.layout = simulation.plan(config, hosts)
        self.config, self.host_count = config, len(self.layout.hosts)
        self.bus = Bus(config.bus.url, sender="all-in-one", namespace=config.bus.namespace,
                       polling_interval=config.bus.polling_interval)
        self.instance_managers: list[InstanceManager] = []
        self.groups: list[GroupManager] = []
        self._hosts: simulation.SimulatedHosts | None = None
        self._servers: list[ThreadedServer] = []
        self._admin_token: str | None = None
        self.stopped = False

    # --- start and stop ------------------------------------------------------------------

    def start(self, ready_timeout: float = 60.0) -> AllInOne:
        cfg = self.config
        assert cfg.image_store.data_dir is not None and cfg.image_store.token is not None
        assert cfg.database.url is not None and cfg.group.database_url is not None
        store_server = ThreadedServer(image_store_app(open_store(cfg.image_store),
                                                      cfg.image_store.token),
                                      cfg.image_store.host, cfg.image_store.port).start()
        self._servers.append(store_server)

        # The store's port is known only once it listens (port 0 in tests), so the
        # Cloud Manager gets its client here rather than from image_store.url.
        self.cloud = CloudManager(cfg, self.bus, create_engine(cfg.database.url),
                                  images=ImageStoreClient(store_server.url,
                                                          cfg.image_store.token))
        self.cloud.migrate()
        self.cloud.register()
        for name in self.layout.groups:
            options = simulation.group_options(cfg, self.layout, name)
            assert options.database_url is not None
            manager = GroupManager(options, self.bus, create_engine(options.database_url),
                                   cfg.bus.rpc_timeout)
            manager.migrate()
            manager.register()
            self.groups.append(manager)
        self.group = self.groups[0]
        self._hosts = simulation.SimulatedHosts(cfg, self.bus, self.layout,
                                                store_server.url).build()
        self.instance_managers = self._hosts.managers
        self._hosts.register()

        self.bus.start()
        for group in self.groups:
            group.start()
        self._hosts.start()
        self.cloud.start()
        self._seed(store_server.url)
        api = ThreadedServer(self.cloud.app(), cfg.api.host, cfg.api.port).start()
        self._servers.append(api)
        self.api_url = api.url
        self._wait_ready(ready_timeout)
        return self

    def _seed(self, store_url: str) -> None:
        assert self.config.image_store.token is not None
        with ImageStoreClient(store_url, self.config.image_store.token) as store:
            bootstrap.seed(self.cloud.sessions, store)

    def _wait_ready(self, timeout: float) -> None:
        """Until every host has reported and the cloud has every group's summary."""
        from cloud_manager.services import groups

        expected = self.layout.counts()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.cloud.sessions() as session:
                known = {g.name: g.hosts_up for g in groups.all_groups(session)}
            if all(known.get(name) == count for name, count in expected.items()):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the cloud did not become ready within {timeout:g} s "
                           f"(group summary: {known})")

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for server in reversed(self._servers[1:]):
            server.stop()
        self.cloud.stop()
        if self._hosts is not None:
            self._hosts.stop()
        for group in self.groups:
            group.stop()
        self.bus.stop()
        if self._hosts is not None:
            self._hosts.close()
        if self._servers:
            self._servers[0].stop()

    @property
    def admin_token(self) -> str:
        """A token of the first admin, signed in with its password once and kept."""
        if self._admin_token is None:
            self._admin_token = keystone.first_admin_token(self.api_url, self.config.identity)
        return self._admin_token


# --- ironbark up / ironbark down -----------------------------------------------------------


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the data directory's lock while a cloud runs on it (``ironbark down`` waits
    for it), or exit saying a cloud already runs there."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "ironbark.lock", "w")  # noqa: SIM115 (held while running)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"ironbark: a cloud is already running on {data_dir} "
                         f"(stop it with `ironbark down`)") from None
    return handle


def scale_overrides(hosts: int | None = None, groups: int | None = None,
                    host_mix: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The ``[scale]`` options given on the command line (None: from the config)."""
    given = {"hosts": hosts, "groups": groups, "host_mix": host_mix, "seed": seed}
    return {key: value for key, value in given.items() if value is not None}


def run(hosts: int | None = None, port: int = 8774, data_dir: str | Path | None = None,
        config_path: str | Path | None = None, *, groups: int | None = None,
        host_mix: str | None = None, seed: int | None = None,
        hypervisor: str | None = None) -> int:
    """``ironbark up``: start the all-in-one cloud and serve until Ctrl-C.

    ``hosts``, ``groups``, ``host_mix`` and ``seed`` override ``[scale]``;
    ``hypervisor="qemu"`` makes the first host this machine (real QEMU guests)."""
    from ironbark.runtime import load_config_or_exit, wait_for_shutdown

    # The image store is internal to this process (its clients are the in-process
    # tiers), so it takes any free port rather than contend for a fixed one.
    overrides: dict[str, Any] = {"api": {"port": port}, "bus": {"url": "memory://"},
                                 "image_store": {"port": 0}}
    scale = scale_overrides(hosts, groups, host_mix, seed)
    if scale:
        overrides["scale"] = scale
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir).expanduser().resolve()
    if hypervisor is not None:
        overrides["host"] = {"hypervisor": hypervisor}
    cfg = load_config_or_exit(config_path, **overrides)
    try:
        layout = simulation.plan(cfg)
    except simulation.ScaleError as exc:
        print(f"ironbark: {exc}", file=sys.stderr)
        return 2
    lock = lock_data_dir(cfg.data_dir)
    pid_file = cfg.data_dir / "ironbark.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    if len(layout.hosts) > 50:
        print(f"starting {len(layout.hosts)} simulated hosts...", flush=True)
    started = time.monotonic()
    try:
        cloud = AllInOne(cfg).start(ready_timeout=60.0 + len(layout.hosts) * 0.1)
    except OSError as exc:
        print(f"ironbark: cannot start: {exc} (is port {port} in use?)", file=sys.stderr)
        return 1
    print(f"Ironbark all-in-one cloud is up in {time.monotonic() - started:.1f} s: "
          f"{layout.describe()}; data in {cfg.data_dir}")
    announce(cfg, cloud.api_url)
    print("  try: ironbark server create --flavor m1.small --image demo --wait vm1")
    print("       openstack --os-cloud ironbark server list")
    print("Press Ctrl-C to stop.", flush=True)
    try:
        wait_for_shutdown()
    finally:
        print("stopping...", flush=True)
        cloud.stop()
        pid_file.unlink(missing_ok=True)
        lock.close()
    return 0


def announce(cfg: Config, api_url: str) -> None:
    """Write the ``ironbark`` clouds.yaml entry (the admin) and say where and who."""
    identity = cfg.identity
    assert identity.admin_password is not None
    path = keystone.write_cloud(keystone.cloud_entry(
        api_url, identity.admin_user, identity.admin_password, identity.admin_project,
        identity.region))
    print(f"  API endpoint: {api_url}   (identity: {keystone.auth_url(api_url)}/v3)")
    print(f"  admin:        user '{identity.admin_user}', password "
          f"'{identity.admin_password}', project '{identity.admin_project}'")
    print(f"  clouds.yaml entry '{keystone.CLOUD_NAME}' written to {path} "
          f"(OS_CLIENT_CONFIG_FILE overrides)")


def stop_running(data_dir: str | Path | None = None, timeout: float = 60.0) -> int:
    """``ironbark down``: ask the cloud running on ``data_dir`` to stop, and wait."""
    from ironbark.runtime import load_config_or_exit

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir).expanduser().resolve()
    cfg = load_config_or_exit(None, **overrides)
    pid_file, lock_file = cfg.data_dir / "ironbark.pid", cfg.data_dir / "ironbark.lock"
    if not lock_file.exists() or _unlocked(lock_file):
        # No cloud holds the lock: a pid file left behind may name an unrelated process.
        print(f"ironbark: no cloud is running on {cfg.data_dir}", file=sys.stderr)
        return 1
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        print(f"ironbark: no cloud is running on {cfg.data_dir}", file=sys.stderr)
        return 1
    # The cloud holds the data directory's lock until it has shut down; a process
    # that has exited but is not yet reaped (a zombie) still answers kill(pid, 0).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _unlocked(lock_file):
            print(f"stopped the cloud on {cfg.data_dir} (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"ironbark: pid {pid} did not stop within {timeout:g} s", file=sys.stderr)
    return 1


def _unlocked(lock_file: Path) -> bool:
    """True if no process holds the data directory's lock (no cloud runs on it)."""
    with open(lock_file, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True
