"""Issue 6's workload against a Placement API, driven the way Nova drives it.

Providers are registered as nova-compute's resource tracker registers a compute node
(``POST /resource_providers`` then ``PUT .../inventories``). A scheduling decision
repeats what Nova's scheduler and its report client (``nova/scheduler/client/report.py``)
send for one instance:

1. ``GET /allocation_candidates?resources=...&required=!COMPUTE_STATUS_DISABLED&limit=1000``
   at microversion 1.36 (Nova's ``SAME_SUBTREE_VERSION``). The forbidden trait is what
   Nova's mandatory ``compute_status_filter`` pre-filter adds to every request;
   1000 is Nova's default ``[scheduler] max_placement_results``.
2. Weigh the candidates: most free RAM first, the order Nova's default RAMWeigher gives
   (CPU and disk weighers agree here: every host and every request is the same shape).
3. ``claim_resources`` for the best candidate: ``GET /allocations/{consumer}`` at 1.28
   (Nova's check for a move in progress), then ``PUT /allocations/{consumer}`` at 1.36
   with ``project_id``, ``user_id`` and ``consumer_generation: null`` (a new consumer).
   A 409 (another client won the provider, or it filled up meanwhile) moves on to the
   next candidate in weighed order, as the scheduler moves to its next host; it is
   counted as a conflict. Nova's report client would first sleep a random 0-2 s and try
   the same host again; we skip that sleep, which can only flatter Placement.

A decision's latency runs from the candidates request to the successful claim. Each
client thread has its own ``requests.Session``, as each scheduler worker has its own.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from requests import RequestException

# Issue 6's host: 32 vCPU x 16.0, 128 GiB x 1.5 with 512 MiB reserved, 2,000 GB x 1.0,
# as nova-compute reports it (min_unit 1, max_unit = total, step_size 1).
INVENTORY: dict[str, dict[str, float | int]] = {
    "VCPU": {"total": 32, "reserved": 0, "allocation_ratio": 16.0},
    "MEMORY_MB": {"total": 131072, "reserved": 512, "allocation_ratio": 1.5},
    "DISK_GB": {"total": 2000, "reserved": 0, "allocation_ratio": 1.0},
}
REQUEST = {"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}
MAX_PLACEMENT_RESULTS = 1000  # Nova's [scheduler] max_placement_results default
FORBIDDEN_TRAIT = "COMPUTE_STATUS_DISABLED"  # Nova's compute_status_filter

CANDIDATES_VERSION = "placement 1.36"  # Nova: SAME_SUBTREE_VERSION, also for the claim
CONSUMER_GENERATION_VERSION = "placement 1.28"  # Nova's pre-claim GET /allocations
PROVIDER_VERSION = "placement 1.20"  # Nova: POST_RPS_RETURNS_PAYLOAD_API_VERSION
USAGES_VERSION = "placement 1.9"

PROJECT_ID = "5e1f0c1b6a2d4c9e8f7a6b5c4d3e2f10"
USER_ID = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"
TIMEOUT = 300.0  # one GET at 1,000 providers takes a fraction of a second; this is a hang


class PlacementCallError(RuntimeError):
    """Placement answered with a status the workload cannot go on from."""


class Client:
    """One HTTP session to Placement, as each Nova scheduler worker holds one."""

    def __init__(self, url: str) -> None:
        self.base = url.rstrip("/")
        self.session = requests.Session()
        # noauth2: the token is the user; 'admin' gets the admin role, as Nova's service
        # user has.
        self.session.headers.update({"X-Auth-Token": "admin", "Accept": "application/json"})

    def call(self, method: str, path: str, version: str, expect: Iterable[int],
             **kwargs: Any) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=TIMEOUT,
                                        headers={"OpenStack-API-Version": version}, **kwargs)
        if response.status_code not in tuple(expect):
            raise PlacementCallError(f"{method} {path} -> {response.status_code}: "
                                     f"{response.text[:500]}")
        return response


def _per_thread(url: str) -> Callable[[], Client]:
    """A getter for this thread's own Client (sessions are not shared across threads)."""
    local = threading.local()

    def get() -> Client:
        if not hasattr(local, "client"):
            local.client = Client(url)
        return local.client

    return get


# --- populate ---------------------------------------------------------------------------

def _register(client: Client, index: int) -> None:
    """One compute node, as the resource tracker creates it on its first update."""
    rp_uuid = str(uuid.uuid4())
    body = client.call("POST", "/resource_providers", PROVIDER_VERSION, (200,),
                       json={"uuid": rp_uuid, "name": f"compute{index:05d}"}).json()
    inventories = {
        rc: {**inv, "min_unit": 1, "max_unit": inv["total"], "step_size": 1}
        for rc, inv in INVENTORY.items()}
    client.call("PUT", f"/resource_providers/{rp_uuid}/inventories", CANDIDATES_VERSION,
                (200,), json={"resource_provider_generation": body["generation"],
                              "inventories": inventories})


def populate(url: str, providers: int, threads: int = 4) -> float:
    """Register ``providers`` compute nodes; returns the seconds it took. A few threads
    keep both gunicorn workers busy (two requests per provider, each a short
    transaction); many more would only queue."""
    if providers < 1:
        raise ValueError(f"providers must be at least 1, got {providers}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    client = _per_thread(url)

    def one(index: int) -> None:
        _register(client(), index)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(providers)))  # re-raises the first failure
    return time.perf_counter() - started


# --- run ----------------------------------------------------------------------------------

@dataclass
class Result:
    """One run's figures; latencies in seconds, one per successful decision."""

    decisions: int
    seconds: float
    latencies: list[float] = field(repr=False)
    conflicts: int
    errors: int
    first_error: str = ""

    @property
    def decisions_per_second(self) -> float:
        return self.decisions / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def p99_ms(self) -> float:
        """The same rank as tests/perf/bench_placement.py takes for Ironbark's p99."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    def line(self, label: str) -> str:
        text = (f"{label}: {self.decisions} decisions in {self.seconds:.2f} s = "
                f"{self.decisions_per_second:,.1f} decisions/s, p50 {self.p50_ms:.1f} ms, "
                f"p99 {self.p99_ms:.1f} ms, {self.conflicts} conflicts")
        if self.errors:
            text += f", {self.errors} ERRORS (first: {self.first_error})"
        return text


def candidates_query() -> str:
    resources = ",".join(f"{rc}:{amount}" for rc, amount in sorted(REQUEST.items()))
    return (f"/allocation_candidates?resources={resources}&required=!{FORBIDDEN_TRAIT}"
            f"&limit={MAX_PLACEMENT_RESULTS}")


def _weighed(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Allocation requests, most free RAM first (stable, so ties keep Placement's order)."""
    summaries = body["provider_summaries"]

    def free_ram(request: dict[str, Any]) -> float:
        (rp_uuid,) = request["allocations"]  # one provider: no sharing, no nesting
        ram = summaries[rp_uuid]["resources"]["MEMORY_MB"]
        return ram["capacity"] - ram["used"]

    return sorted(body["allocation_requests"], key=free_ram, reverse=True)


def decide(client: Client) -> int:
    """Place one new instance; returns the conflicts met on the way. Raises
    PlacementCallError when Placement fails or no candidate could be claimed."""
    consumer = str(uuid.uuid4())
    conflicts = 0
    for _ in range(3):  # ask again if every candidate was lost to other clients
        body = client.call("GET", candidates_query(), CANDIDATES_VERSION, (200,)).json()
        if not body["allocation_requests"]:
            raise PlacementCallError("no allocation candidates (no valid host)")
        for request in _weighed(body):
            client.call("GET", f"/allocations/{consumer}", CONSUMER_GENERATION_VERSION, (200,))
            payload = {**request, "project_id": PROJECT_ID, "user_id": USER_ID,
                       "consumer_generation": None}
            response = client.call("PUT", f"/allocations/{consumer}", CANDIDATES_VERSION,
                                   (204, 409), json=payload)
            if response.status_code == 204:
                return conflicts
            conflicts += 1
    raise PlacementCallError(f"no candidate could be claimed after {conflicts} conflicts")


def run(url: str, requests: int, clients: int) -> Result:
    """``requests`` decisions, made one after another (``clients=1``) or by ``clients``
    threads at once. A failed decision is counted, not fatal, so one bad answer does not
    hide the rest of the figures; callers must look at ``errors``."""
    if requests < 1:
        raise ValueError(f"requests must be at least 1, got {requests}")
    if clients < 1:
        raise ValueError(f"clients must be at least 1, got {clients}")
    latencies: list[float] = []
    tally = {"conflicts": 0, "errors": 0}
    first_error: list[str] = []
    lock = threading.Lock()
    client = _per_thread(url)

    def one(_: int) -> None:
        started = time.perf_counter()
        try:
            conflicts = decide(client())
        except (PlacementCallError, RequestException, KeyError, ValueError) as exc:
            with lock:
                tally["errors"] += 1
                first_error[:] = first_error or [str(exc)[:300]]
            return
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            tally["conflicts"] += conflicts

    started = time.perf_counter()
    if clients == 1:
        for index in range(requests):
            one(index)
    else:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    return Result(len(latencies), seconds, latencies, tally["conflicts"], tally["errors"],
                  first_error[0] if first_error else "")


# --- check --------------------------------------------------------------------------------

def check_capacity(url: str, expected_decisions: int | None = None,
                   threads: int = 4) -> list[str]:
    """Every provider's usage against (total - reserved) x ratio, read back from
    Placement; empty when fine. With ``expected_decisions``, the project's total usage
    must also be exactly that many requests' worth: nothing lost, nothing doubled."""
    main = Client(url)
    providers = main.call("GET", "/resource_providers", CANDIDATES_VERSION,
                          (200,)).json()["resource_providers"]
    client = _per_thread(url)

    def read(provider: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, int]]:
        base = f"/resource_providers/{provider['uuid']}"
        inventories = client().call("GET", base + "/inventories", CANDIDATES_VERSION,
                                    (200,)).json()["inventories"]
        usages = client().call("GET", base + "/usages", CANDIDATES_VERSION,
                               (200,)).json()["usages"]
        return provider["name"], inventories, usages

    problems = []
    totals = dict.fromkeys(REQUEST, 0)
    with ThreadPoolExecutor(threads) as pool:
        for name, inventories, usages in pool.map(read, providers):
            for rc, used in usages.items():
                inv = inventories[rc]
                capacity = (inv["total"] - inv["reserved"]) * inv["allocation_ratio"]
                if used > capacity + 1e-9:
                    problems.append(f"{name}: {rc} used {used} > capacity {capacity:g}")
                totals[rc] = totals.get(rc, 0) + used
    if expected_decisions is not None:
        project = main.call("GET", f"/usages?project_id={PROJECT_ID}", USAGES_VERSION,
                            (200,)).json()["usages"]
        for rc, amount in REQUEST.items():
            want = amount * expected_decisions
            if totals.get(rc, 0) != want or project.get(rc, 0) != want:
                problems.append(f"{rc}: providers hold {totals.get(rc, 0)}, project usage "
                                f"{project.get(rc, 0)}, expected {want} "
                                f"({expected_decisions} decisions)")
    return problems
