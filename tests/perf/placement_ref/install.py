"""Idempotent set-up of the Placement reference: MariaDB, its database and user, and a
virtualenv holding openstack-placement.

    python -m tests.perf.placement_ref.install

Placement gets its own virtualenv, never the project's: openstack-placement pins a
family of oslo libraries (and an SQLAlchemy range) that have nothing to do with
Ironbark's dependencies. Each step checks first and says something only when it acts,
so a second run is silent; a failing step stops everything with what it printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.perf.placement_ref import config, mariadb


class InstallError(RuntimeError):
    """A set-up step failed; the message carries the step's own output."""


def _run(command: list[str], what: str, timeout: float = 1800) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=_quiet_env())
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise InstallError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n"
                           + "\n".join(output[-30:]))
    return done.stdout


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # The project venv's variables must not leak into the Placement venv's pip.
    env.pop("VIRTUAL_ENV", None)
    return env


def _missing_apt_packages() -> list[str]:
    missing = []
    for package in config.APT_PACKAGES:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                              capture_output=True, text=True)
        if done.returncode != 0 or "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


def ensure_apt_packages() -> None:
    """MariaDB from Debian, the production database the issue asks for. The package
    scripts' attempt to start it is refused by policy-rc.d; ``mariadb.start`` does it."""
    missing = _missing_apt_packages()
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise InstallError(f"{', '.join(missing)} missing and there is no apt-get here")
    print(f"placement_ref: apt-get install {' '.join(missing)}", flush=True)
    _run(["apt-get", "update", "-qq"], "apt-get update")
    _run(["apt-get", "install", "-y", "-qq", *missing], "apt-get install")


def ensure_mariadb() -> None:
    if mariadb.start():
        print("placement_ref: started MariaDB (mysqld_safe)", flush=True)


def ensure_database_user() -> None:
    """The placement user, allowed on the benchmark's databases only, from both names the
    server may give a local TCP client (with name resolution on, 127.0.0.1 is
    'localhost')."""
    statements = []
    for host in ("localhost", "127.0.0.1"):
        account = f"'{config.DB_USER}'@'{host}'"
        statements += [
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{config.DB_PASSWORD}'",
            f"ALTER USER {account} IDENTIFIED BY '{config.DB_PASSWORD}'",
            f"GRANT ALL PRIVILEGES ON `{config.DB_PREFIX}%`.* TO {account}",
        ]
    mariadb.sql("; ".join(statements))


def venv_ready() -> bool:
    if not config.VENV_PYTHON.exists():
        return False
    done = subprocess.run([str(config.VENV_PYTHON), "-c",
                           "import placement.wsgi, pymysql, gunicorn"],
                          capture_output=True, timeout=120)
    return done.returncode == 0


def ensure_venv() -> None:
    if venv_ready():
        return
    # The interpreter running this script (the project's Python 3.11), not the venv it
    # may be running in.
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"placement_ref: creating {config.VENV} with {', '.join(config.VENV_PACKAGES)}",
          flush=True)
    if config.VENV.exists():
        shutil.rmtree(config.VENV)  # half-made or built on a Python that is gone
    config.BENCH_DIR.mkdir(parents=True, exist_ok=True)
    _run([base, "-m", "venv", str(config.VENV)], "creating the Placement virtualenv")
    _run([str(config.VENV_PYTHON), "-m", "pip", "install", "-q", *config.VENV_PACKAGES],
         "pip install into the Placement virtualenv")
    if not venv_ready():
        raise InstallError(f"{config.VENV} was built but cannot import placement, "
                           "pymysql and gunicorn")


def placement_version() -> str:
    return _run([str(config.VENV_PYTHON), "-c",
                 "from importlib.metadata import version; "
                 "print(version('openstack-placement'), version('gunicorn'), "
                 "version('PyMySQL'), version('SQLAlchemy'))"],
                "reading installed versions").strip()


def ensure() -> None:
    """Every step, in order; each one a no-op when already done."""
    ensure_apt_packages()
    ensure_mariadb()
    ensure_database_user()
    ensure_venv()


def main() -> None:
    try:
        ensure()
    except (InstallError, mariadb.MariaDBError) as exc:
        raise SystemExit(f"placement_ref install: {exc}") from exc


if __name__ == "__main__":
    main()
