"""Each placement policy's order, on host rows as the scheduler reads them."""

from __future__ import annotations

from group_manager.db.models import Host
from group_manager.scheduler.weighers import POLICIES, RoundRobin, order


def host(name: str, *, vcpus: int = 16, memory_mb: int = 65536, used_vcpus: int = 0,
         used_memory_mb: int = 0, instances: int = 0) -> Host:
    return Host(name=name, group_name="g", vcpus=vcpus, memory_mb=memory_mb, disk_gb=1000,
                reserved_vcpus=0, reserved_memory_mb=0, reserved_disk_gb=0,
                cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
                vcpus_used=used_vcpus, memory_mb_used=used_memory_mb, disk_gb_used=0,
                instances=instances)


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


def test_spread_and_pack_are_each_others_reverse_on_load() -> None:
    hosts = [host("a", used_vcpus=8, used_memory_mb=32768, instances=4),
             host("b", used_vcpus=2, used_memory_mb=8192, instances=1),
             host("c")]
    assert names(order(POLICIES["spread"](), "g", hosts)) == ["c", "b", "a"]
    assert names(order(POLICIES["pack"](), "g", hosts)) == ["a", "b", "c"]


def test_power_save_never_wakes_a_small_empty_host_while_a_busy_one_fits() -> None:
    big_busy = host("big", vcpus=64, memory_mb=262144, used_vcpus=2, used_memory_mb=4096,
                    instances=1)
    small_empty = host("small", vcpus=4, memory_mb=8192)
    other_empty = host("spare", vcpus=4, memory_mb=8192)
    hosts = [small_empty, big_busy, other_empty]
    # pack prefers whatever has least free: the small empty host (it wakes it up)...
    assert names(order(POLICIES["pack"](), "g", hosts))[0] == "small"
    # ...power-save keeps the running host first and wakes empty ones by name.
    assert names(order(POLICIES["power-save"](), "g", hosts)) == ["big", "small", "spare"]


def test_power_save_packs_among_running_hosts() -> None:
    hosts = [host("a", used_vcpus=2, used_memory_mb=4096, instances=1),
             host("b", used_vcpus=8, used_memory_mb=32768, instances=4),
             host("c")]
    assert names(order(POLICIES["power-save"](), "g", hosts)) == ["b", "a", "c"]


def test_round_robin_starts_after_the_host_chosen_last_whatever_the_load() -> None:
    rr = RoundRobin()
    hosts = [host("h3", instances=9, used_vcpus=15), host("h1"), host("h2")]
    assert names(order(rr, "g", hosts)) == ["h1", "h2", "h3"]
    rr.chosen("g", "h1")
    assert names(order(rr, "g", hosts)) == ["h2", "h3", "h1"]
    rr.chosen("g", "h3")
    assert names(order(rr, "g", hosts)) == ["h1", "h2", "h3"]
    # A host that left the candidates (full, down) is skipped, the rotation goes on.
    rr.chosen("g", "h2")
    assert names(order(rr, "g", [h for h in hosts if h.name != "h3"])) == ["h1", "h2"]
    # Each group rotates on its own.
    assert names(order(rr, "other", hosts)) == ["h1", "h2", "h3"]
