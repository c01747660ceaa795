"""The multi-process lab: the scale cloud of ``[scale]`` with every tier its own process.

    ironbark up --multi-process --hosts 1000 --groups 4 --host-mix 32x128:1,64x256:1 \\
        --bus-url amqp://guest:guest@127.0.0.1:5672// \\
        --database-url postgresql://ironbark:ironbark@127.0.0.1/ironbark

(or ``python -m ironbark.lab`` with the same options). Started from the tiers' own
console scripts, as an operator would (see tests/integration/test_multiprocess.py):
the image store, ``ironbark-cloud-manager bootstrap``, the Cloud Manager (gunicorn),
then per group one ``ironbark-group-manager`` with its own database and one
``ironbark-instance-manager --simulate --only-group <group>`` serving that group's
simulated hosts on one Bus. Every process computes the same plan from the same
configuration (ironbark/simulation.py), so nothing but options passes between them.

The children run in their own sessions (a Ctrl-C in the terminal reaches only the
lab, which stops them in order: hosts, groups, cloud, store) and get SIGTERM if the
lab itself dies (``PR_SET_PDEATHSIG``). Each child logs to ``<data_dir>/logs/``;
``<data_dir>/lab.json`` names the API and every child's pid. ``ironbark down``
stops a lab like an all-in-one.

With a PostgreSQL ``--database-url`` the groups get databases of their own on the
same server, ``<name>_<group>``, created when missing (``scale.group_database_url``
chooses others).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa

from ironbark import keystone, simulation
from ironbark.config import Config
from ironbark.db import normalise_url

_PR_SET_PDEATHSIG = 1
_BIN = Path(sys.executable).parent
_MODULES = {"ironbark-image-store": "image_store.main",
            "ironbark-cloud-manager": "cloud_manager.main",
            "ironbark-group-manager": "group_manager.main",
            "ironbark-instance-manager": "instance_manager.main"}


class LabError(Exception):
    """The lab could not start (a child failed, or it was asked to stop meanwhile)."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the lab exits, however it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _command(script: str) -> list[str]:
    """The tier's console script beside this interpreter, else ``python -m``."""
    path = _BIN / script
    return [str(path)] if path.exists() else [sys.executable, "-m", _MODULES[script]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Child:
    """One tier's process, in its own session, logging to ``logs/<name>.log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=out,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Signal the child's whole session (gunicorn's workers too)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


def group_database_urls(cfg: Config, layout: simulation.Layout) -> dict[str, str]:
    """Each group's database: ``scale.group_database_url``; with a PostgreSQL cloud
    database and no template, ``<database>_<group>`` on the same server; else the
    all-in-one's choice (SQLite files in data_dir)."""
    assert cfg.database.url is not None
    cloud_url = sa.engine.make_url(normalise_url(cfg.database.url))
    if cfg.scale.group_database_url is None and cloud_url.get_backend_name() == "postgresql":
        return {g: cloud_url.set(database=f"{cloud_url.database}_{g}")
                .render_as_string(hide_password=False) for g in layout.groups}
    return {g: simulation.group_database_url(cfg, layout, g) for g in layout.groups}


def create_databases(admin_url: str, urls: list[str]) -> list[str]:
    """Create the PostgreSQL databases of ``urls`` that do not exist yet (connecting
    through ``admin_url``, an existing database of the same server); the created."""
    wanted = [sa.engine.make_url(normalise_url(u)) for u in urls]
    wanted = [u for u in wanted if u.get_backend_name() == "postgresql"]
    if not wanted:
        return []
    created = []
    engine = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for url in wanted:
                name = url.database
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": name}).first()
                if exists is None:
                    quoted = '"' + str(name).replace('"', '""') + '"'
                    conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
                    created.append(str(name))
    finally:
        engine.dispose()
    return created


class Lab:
    """The scale cloud of ``cfg`` as separate processes; ``start`` returns when every
    group's hosts are up in the Cloud Manager's view.

    Every child gets this environment, ``config_path`` (``IRONBARK_CONFIG``) and, as
    ``IRONBARK_…`` variables on top, what the lab decided or was told on its command
    line (bus, databases, ports, tokens, [scale], API workers, log level), so each
    loads the configuration the lab did. Other options given to ``Lab`` only as
    overrides (not in the file or the environment) do not reach the children.
    """

    def __init__(self, cfg: Config, config_path: Path | None = None):
        if cfg.bus.url.startswith("memory://"):
            raise LabError("bus.url: the multi-process lab needs a broker (amqp://...); "
                           "memory:// cannot cross processes")
        assert cfg.database.url is not None
        self.cfg, self.layout = cfg, simulation.plan(cfg)
        self.logs = cfg.data_dir / "logs"
        self.api_port = cfg.api.port or free_port()
        self.store_port = cfg.image_store.port or free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.group_databases = group_database_urls(cfg, self.layout)
        self.children: dict[str, Child] = {}
        self._config_path = config_path
        self._abort = threading.Event()
        self._admin_token: str | None = None

    # --- environment ---------------------------------------------------------------------

    def _env(self, name: str, **extra: str) -> dict[str, str]:
        cfg = self.cfg
        assert cfg.identity.admin_password is not None and cfg.image_store.token is not None
        assert cfg.database.url is not None
        env = dict(os.environ)
        if self._config_path is not None:
            env["IRONBARK_CONFIG"] = str(self._config_path)
        env.update({
            "IRONBARK_DATA_DIR": str(cfg.data_dir),
            "IRONBARK_BUS_URL": cfg.bus.url, "IRONBARK_BUS_NAMESPACE": cfg.bus.namespace,
            "IRONBARK_DATABASE_URL": cfg.database.url,
            "IRONBARK_API_PORT": str(self.api_port),
            "IRONBARK_API_WORKERS": str(cfg.api.workers),
            "IRONBARK_API_THREADS": str(cfg.api.threads),
            "IRONBARK_IDENTITY_ADMIN_PASSWORD": cfg.identity.admin_password,
            "IRONBARK_IMAGE_STORE_PORT": str(self.store_port),
            "IRONBARK_IMAGE_STORE_URL": f"http://127.0.0.1:{self.store_port}",
            "IRONBARK_IMAGE_STORE_TOKEN": cfg.image_store.token,
            "IRONBARK_SCALE_HOSTS": str(len(self.layout.hosts)),
            "IRONBARK_SCALE_GROUPS": str(cfg.scale.groups),
            "IRONBARK_SCALE_HOST_MIX": cfg.scale.host_mix,
            "IRONBARK_SCALE_SEED": str(cfg.scale.seed),
            "IRONBARK_LOGGING_LEVEL": cfg.logging.level,
            "IRONBARK_LOGGING_FILE": str(self.logs / f"{name}.log"),
            **extra,
        })
        return env

    def _child(self, name: str, script: str, *args: str, **extra: str) -> Child:
        child = Child(name, [*_command(script), *args], self._env(name, **extra),
                      self.logs / f"{name}.log")
        self.children[name] = child
        return child.start()

    # --- start -----------------------------------------------------------------------------

    def start(self, ready_timeout: float | None = None) -> Lab:
        """Start every tier in order; raise LabError (children stopped) on failure."""
        timeout = ready_timeout or 60.0 + 0.2 * len(self.layout.hosts)
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, deadline: float) -> None:
        assert self.cfg.database.url is not None
        create_databases(self.cfg.database.url, list(self.group_databases.values()))
        self._child("image-store", "ironbark-image-store")
        self._wait(lambda: _listening(self.store_port), deadline, "the image store to listen")
        boot = self._child("bootstrap", "ironbark-cloud-manager", "bootstrap")
        self._wait(lambda: not boot.alive(), deadline, "the bootstrap to finish")
        assert boot.proc is not None
        if boot.proc.returncode != 0:
            raise LabError(f"ironbark-cloud-manager bootstrap failed:\n{boot.tail()}")
        del self.children["bootstrap"]
        self._child("cloud", "ironbark-cloud-manager")
        for group in self.layout.groups:
            self._child(f"group-{group}", "ironbark-group-manager",
                        IRONBARK_GROUP_NAME=group,
                        IRONBARK_GROUP_DATABASE_URL=self.group_databases[group],
                        IRONBARK_GROUP_HOST_DOWN_AFTER=str(self.layout.host_down_after))
        for group in self.layout.groups:
            self._child(f"hosts-{group}", "ironbark-instance-manager", "--simulate",
                        "--only-group", group)
        self._wait(self._ready, deadline, "every group's hosts to report")
        self._write_state()

    def _wait(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        while not condition():
            if self._abort.is_set():
                raise LabError("interrupted while starting")
            dead = self.dead()
            if dead is not None:
                raise LabError(f"{dead.name} exited while waiting for {what}:\n{dead.tail()}")
            if time.monotonic() > deadline:
                raise LabError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def admin_token(self) -> str:
        """A token of the first admin (signed in once, then kept)."""
        if self._admin_token is None:
            self._admin_token = keystone.first_admin_token(self.api_url, self.cfg.identity)
        return self._admin_token

    def _ready(self) -> bool:
        try:
            r = requests.get(f"{self.api_url}/v1/groups", timeout=5,
                             headers={"Authorization": f"Bearer {self.admin_token()}"})
        except (requests.RequestException, PermissionError):
            return False
        if r.status_code != 200:
            return False
        up = {g["name"]: g["hosts_up"] for g in r.json()["groups"]}
        return all(up.get(g) == n for g, n in self.layout.counts().items())

    def _write_state(self) -> None:
        state = {"api_url": self.api_url, "pid": os.getpid(),
                 "children": {n: c.pid for n, c in self.children.items()},
                 "group_databases": {g: sa.engine.make_url(normalise_url(u))
                                     .render_as_string(hide_password=True)
                                     for g, u in self.group_databases.items()}}
        (self.cfg.data_dir / "lab.json").write_text(json.dumps(state, indent=2) + "\n")

    # --- run and stop ------------------------------------------------------------------------

    def dead(self) -> Child | None:
        """A child that exited on its own (the bootstrap is expected to)."""
        for child in self.children.values():
            if child.name != "bootstrap" and child.proc is not None and not child.alive():
                return child
        return None

    def abort(self) -> None:
        """Ask a start in progress to give up (from a signal handler)."""
        self._abort.set()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the tiers in reverse order of dependence, then SIGKILL stragglers."""
        stages = [[c for n, c in self.children.items() if n.startswith("hosts-")],
                  [c for n, c in self.children.items() if n.startswith("group-")],
                  [c for n, c in self.children.items() if n in ("cloud", "bootstrap")],
                  [c for n, c in self.children.items() if n == "image-store"]]
        for stage in stages:
            for child in stage:
                child.signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for child in stage:
                assert child.proc is not None
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.signal(signal.SIGKILL)
                    child.proc.wait(timeout=10)


# --- ironbark up --multi-process / python -m ironbark.lab -------------------------------------


def run(*, hosts: int | None = None, groups: int | None = None, host_mix: str | None = None,
        seed: int | None = None, port: int = 8774, data_dir: str | Path | None = None,
        config_path: str | Path | None = None, bus_url: str | None = None,
        database_url: str | None = None) -> int:
    """Start the lab, serve until SIGINT/SIGTERM (or a child dies), stop it; exit code."""
    from ironbark.allinone import announce, lock_data_dir, scale_overrides
    from ironbark.runtime import load_config_or_exit

    overrides: dict[str, Any] = {"api": {"port": port}}
    scale = scale_overrides(hosts, groups, host_mix, seed)
    if scale:
        overrides["scale"] = scale
    if bus_url is not None:
        overrides["bus"] = {"url": bus_url}
    if database_url is not None:
        overrides["database"] = {"url": database_url}
    if data_dir is not None:
        overrides["data_dir"] = Path(data_dir).expanduser().resolve()
    path = Path(config_path).resolve() if config_path is not None else None
    cfg = load_config_or_exit(path, **overrides)
    try:
        lab = Lab(cfg, path)
    except (LabError, simulation.ScaleError) as exc:
        print(f"ironbark: {exc}", file=sys.stderr)
        return 2
    lock = lock_data_dir(cfg.data_dir)
    pid_file = cfg.data_dir / "ironbark.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        lab.abort()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    print(f"starting the multi-process lab: {lab.layout.describe()}", flush=True)
    started = time.monotonic()
    status = 0
    try:
        lab.start()
        print(f"Ironbark multi-process lab is up in {time.monotonic() - started:.1f} s "
              f"({len(lab.children)} processes, logs in {lab.logs})")
        announce(cfg, lab.api_url)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            dead = lab.dead()
            if dead is not None:
                print(f"ironbark: {dead.name} exited; stopping the lab\n{dead.tail()}",
                      file=sys.stderr)
                status = 1
                break
    except LabError as exc:
        print(f"ironbark: {exc}", file=sys.stderr)
        status = 1
    finally:
        print("stopping...", flush=True)
        lab.stop()
        pid_file.unlink(missing_ok=True)
        lock.close()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ironbark.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, help="simulated hosts (scale.hosts)")
    parser.add_argument("--groups", type=int, help="groups az1..azN (scale.groups)")
    parser.add_argument("--host-mix", help="sizes VCPUSxGIB[:WEIGHT],... (scale.host_mix)")
    parser.add_argument("--seed", type=int, help="size draw seed (scale.seed)")
    parser.add_argument("--port", type=int, default=8774, help="API port (0: any free)")
    parser.add_argument("--data-dir", help="where every tier keeps its state and logs")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--bus-url", help="amqp:// URL of the broker (bus.url)")
    parser.add_argument("--database-url", help="the Cloud Manager's database (database.url)")
    args = parser.parse_args(argv)
    try:
        simulation.check_flags(args.hosts, args.groups, args.host_mix)
    except simulation.ScaleError as exc:
        parser.error(str(exc))
    return run(hosts=args.hosts, groups=args.groups, host_mix=args.host_mix, seed=args.seed,
               port=args.port, data_dir=args.data_dir, config_path=args.config,
               bus_url=args.bus_url, database_url=args.database_url)


if __name__ == "__main__":
    sys.exit(main())
