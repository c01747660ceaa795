"""Where Placement's time goes, cheaply: CPU seconds of the gunicorn workers, of
MariaDB and of the benchmark's own process, read from /proc before and after a run.

On two cores a decision's wall time is mostly somebody's CPU time; splitting it
between Placement's Python, the database and the client says which one to blame
without a profiler inside a process we do not own.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
MARIADB_PID_FILE = Path("/run/mysqld/mysqld.pid")


def process_cpu(pid: int) -> float:
    """User + system seconds of one process, all its threads; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def mariadb_pid() -> int:
    try:
        return int(MARIADB_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return 0


@dataclass(frozen=True)
class Sample:
    placement: float
    mariadb: float
    client: float


def sample(gunicorn_pid: int) -> Sample:
    """The gunicorn master does no request work; its workers (its children) do."""
    workers = sum(process_cpu(pid) for pid in children(gunicorn_pid))
    own = resource.getrusage(resource.RUSAGE_SELF)
    return Sample(workers, process_cpu(mariadb_pid()), own.ru_utime + own.ru_stime)


def breakdown(before: Sample, after: Sample, decisions: int) -> str:
    """CPU milliseconds per decision, by process."""
    if decisions < 1:
        return "no decisions"
    per = {name: (getattr(after, name) - getattr(before, name)) * 1000 / decisions
           for name in ("placement", "mariadb", "client")}
    return ", ".join(f"{name} {ms:.1f} ms" for name, ms in per.items())
