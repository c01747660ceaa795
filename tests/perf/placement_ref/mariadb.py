"""Start MariaDB on a machine without an init system, and run SQL on it as root.

Debian's package cannot start the server here: ``/usr/sbin/policy-rc.d`` forbids package
scripts to start services (and must stay), and there is no systemd. So the server is
started the way its SysV script would, with ``mysqld_safe``, detached into its own
session, and we wait for its socket. Errors go to a file we can show, because
Debian's ``mysqld_safe`` sends them to syslog, which does not run here either.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.perf.placement_ref import config


class MariaDBError(RuntimeError):
    """MariaDB is missing, will not start, or refused a statement."""


def has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def sql(statement: str, database: str | None = None) -> str:
    """Run SQL as MariaDB's root through the socket (root authenticates by its Unix
    user, so no password is involved) and return the tab-separated output."""
    if not shutil.which("mariadb"):
        raise MariaDBError("the `mariadb` client is not installed: run "
                           "`python -m tests.perf.placement_ref.install`")
    command = ["mariadb", "--user=root", f"--socket={config.MARIADB_SOCKET}",
               "--batch", "--skip-column-names", "--execute", statement]
    if database:
        command.append(database)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise MariaDBError(f"MariaDB refused {statement!r}: {done.stderr.strip()}")
    return done.stdout


def is_running() -> bool:
    if not config.MARIADB_SOCKET.exists() or not shutil.which("mariadb-admin"):
        return False
    done = subprocess.run(["mariadb-admin", "--user=root",
                           f"--socket={config.MARIADB_SOCKET}", "ping"],
                          capture_output=True, text=True, timeout=30)
    return done.returncode == 0


def start(timeout: float = 60.0) -> bool:
    """Start the server unless it answers already; True when this call started it."""
    if is_running():
        return False
    if not shutil.which("mysqld_safe"):
        raise MariaDBError("mysqld_safe is not installed: run "
                           "`python -m tests.perf.placement_ref.install`")
    config.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    watchdog = None
    if has_systemd():
        subprocess.run(["systemctl", "start", "mariadb"], check=True, timeout=120)
    else:
        # The package creates /run/mysqld, but /run is a tmpfs on a rebooted machine.
        run_dir = config.MARIADB_SOCKET.parent
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(run_dir, "mysql", "root")
        # The server writes its log as the mysql user.
        config.MARIADB_ERROR_LOG.touch()
        shutil.chown(config.MARIADB_ERROR_LOG, "mysql", "mysql")
        watchdog = subprocess.Popen(
            ["mysqld_safe", "--skip-syslog", f"--log-error={config.MARIADB_ERROR_LOG}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # outlives us, like a service would
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_running():
            return True
        if watchdog is not None and watchdog.poll() is not None:
            break  # mysqld_safe gave up: the server died at start
        time.sleep(0.5)
    waited = time.monotonic() - deadline + timeout
    log = config.MARIADB_ERROR_LOG
    raise MariaDBError(f"MariaDB did not start (no answer on {config.MARIADB_SOCKET} after "
                       f"{waited:.0f} s); the end of {log}:\n{_tail(log)}")


def create_database(name: str) -> None:
    """An empty database; plain CREATE DATABASE as Placement's install guide has it (the
    server's default character set)."""
    sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`")


def drop_database(name: str) -> None:
    sql(f"DROP DATABASE IF EXISTS `{name}`")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"
