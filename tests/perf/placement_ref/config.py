"""Where the Placement reference lives on this machine and how it reaches MariaDB.

Everything sits under /var/tmp (outside the work tree, kept across sessions on the same
machine) so that the slow steps, the apt install and the virtualenv, are paid once.
Override the directory with ``IRONBARK_BENCH_DIR`` (not an ``IRONBARK_<SECTION>_…`` name,
so Ironbark's own configuration loader never sees it as a typo).
"""

from __future__ import annotations

import os
from pathlib import Path

BENCH_DIR = Path(os.environ.get("IRONBARK_BENCH_DIR", "/var/tmp/ironbark-bench"))
VENV = BENCH_DIR / "placement-venv"
VENV_PYTHON = VENV / "bin" / "python"
RUN_DIR = BENCH_DIR / "placement-run"  # one directory per server: conf and logs
MARIADB_ERROR_LOG = BENCH_DIR / "mariadb.err"

# Newest openstack-placement at the time of writing (16.0.0) installs and runs on
# Python 3.11; it is not pinned so a later release is picked up, and the version in use
# is printed by the CLI.
VENV_PACKAGES = ("openstack-placement", "PyMySQL", "gunicorn")
APT_PACKAGES = ("mariadb-server", "mariadb-client")

MARIADB_SOCKET = Path("/run/mysqld/mysqld.sock")
DB_HOST = "127.0.0.1"
DB_PORT = 3306
# Each server makes its own database, DB_PREFIX + 8 hex digits, and drops it when it stops,
# so two benchmarks running at once never share or drop each other's.
DB_PREFIX = "placement_bench_"
DB_USER = "placement"
# A benchmark database bound to 127.0.0.1 only; the password just has to be the same in
# the GRANT and in placement.conf.
DB_PASSWORD = "placement-bench"


def database_url(name: str) -> str:
    """The SQLAlchemy URL Placement uses: PyMySQL (pure Python, no build step) over TCP,
    as a Placement API host would reach a database server."""
    return (f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{DB_HOST}:{DB_PORT}/{name}"
            "?charset=utf8")
