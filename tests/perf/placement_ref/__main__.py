"""python -m tests.perf.placement_ref [--providers 1000] [--requests 200] [--clients 1,8]

Installs what is missing, starts OpenStack Placement on MariaDB, registers the
providers, runs issue 6's workload with each client count and checks capacity,
printing one figure per line. Placement is slow (a few decisions per second at 1,000
providers), so the defaults keep the whole run to a few minutes.
"""

from __future__ import annotations

import argparse

from tests.perf.placement_ref import compare
from tests.perf.placement_ref.install import InstallError
from tests.perf.placement_ref.mariadb import MariaDBError
from tests.perf.placement_ref.server import DEFAULT_WORKERS, PlacementError
from tests.perf.placement_ref.workload import PlacementCallError


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected counts like 1,8, got {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"counts must be >= 1, got {text!r}")
    return counts


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.perf.placement_ref",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--providers", type=_positive, default=1000)
    parser.add_argument("--requests", type=_positive, default=200,
                        help="measured decisions per client count (plus a short warm-up)")
    parser.add_argument("--clients", type=_counts, default=[1, 8],
                        help="comma-separated concurrent client counts")
    parser.add_argument("--workers", type=_positive, default=DEFAULT_WORKERS,
                        help="gunicorn sync workers serving Placement")
    args = parser.parse_args()
    try:
        compare.run(args.providers, args.requests, args.clients, workers=args.workers)
    except (InstallError, MariaDBError, PlacementError, PlacementCallError) as exc:
        raise SystemExit(f"placement_ref: {type(exc).__name__}: {exc}") from exc


if __name__ == "__main__":
    main()
