"""OpenStack Placement on MariaDB as a measured reference for Ironbark's scheduler (issue 6).

Placement is the service Nova's scheduler asks for allocation candidates and claims
against; running the same workload through it, on the same machine and in the same run,
gives Ironbark's decisions per second something honest to be compared with.

    python -m tests.perf.placement_ref.install      # MariaDB, database, Placement venv
    python -m tests.perf.placement_ref [--providers 1000] [--requests 200] [--clients 1,8]

Modules: ``config`` (paths, credentials), ``mariadb`` (start it without an init system,
run SQL as root), ``install`` (idempotent set-up), ``server`` (``PlacementServer``:
fresh database, gunicorn), ``workload`` (``populate``, ``run``, ``check_capacity``),
``compare`` (the whole sequence, for ``tests/perf/bench_placement.py``).
"""
