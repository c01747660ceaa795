"""Host size mixes for scale mode: ``"32x128:1,64x256:1"`` -> sizes and weights.

A real cloud is rarely one host model: a scheduler that looks good on identical
hosts can fall apart when the big hosts fill last or the small ones run out of RAM
first. So a scale cloud draws each simulated host's size from a weighted mix.

The draw gives every size its exact share of the hosts (largest remainder, so 1,000
hosts at 1:1 are exactly 500 + 500, not 487 + 513), then a seeded shuffle decides
which host gets which size. The same mix, count and seed give the same hosts in
every process that computes them (the all-in-one, each multi-process Instance
Manager, the benchmark's checks), with nothing to pass between them.

Pure parsing and arithmetic: no imports from the tiers, so ``ironbark.config`` can
validate the option with it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

MAX_VCPUS = 4096  # HostOptions.simulated_vcpus' upper bound
MAX_MEMORY_GIB = 64 * 1024  # HostOptions.simulated_memory_mb's bound, in GiB
_ENTRY = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*(?::\s*([0-9]*\.?[0-9]+)\s*)?$")


class HostMixError(ValueError):
    """The mix is not ``VCPUSxGIB[:WEIGHT],...``; the message says which entry and why."""


@dataclass(frozen=True)
class HostSize:
    """One host model of the mix: ``vcpus`` and ``memory_gib``, drawn with ``weight``."""

    vcpus: int
    memory_gib: int
    weight: float = 1.0

    @property
    def memory_mb(self) -> int:
        return self.memory_gib * 1024

    @property
    def label(self) -> str:
        return f"{self.vcpus}x{self.memory_gib}"


def parse_host_mix(text: str) -> tuple[HostSize, ...]:
    """The sizes of ``"32x128:1,64x256:3"`` (vCPUs x GiB of RAM, optional weight,
    default 1). Empty text is an empty mix (every host takes the [host] sizes)."""
    if not isinstance(text, str):
        raise HostMixError(f"expected text like '32x128:1,64x256:1', got {text!r}")
    if not text.strip():
        return ()
    sizes: list[HostSize] = []
    for raw in text.split(","):
        match = _ENTRY.match(raw)
        if match is None:
            raise HostMixError(f"entry {raw.strip()!r} is not VCPUSxGIB[:WEIGHT] "
                               f"(e.g. 32x128:1)")
        vcpus, gib = int(match.group(1)), int(match.group(2))
        weight = float(match.group(3)) if match.group(3) is not None else 1.0
        label = raw.strip()
        if not 1 <= vcpus <= MAX_VCPUS:
            raise HostMixError(f"entry {label!r}: vCPUs must be 1 to {MAX_VCPUS}, got {vcpus}")
        if not 1 <= gib <= MAX_MEMORY_GIB:
            raise HostMixError(f"entry {label!r}: memory must be 1 to {MAX_MEMORY_GIB} GiB, "
                               f"got {gib}")
        if weight <= 0:
            raise HostMixError(f"entry {label!r}: the weight must be above 0, got {weight:g}")
        if any(s.vcpus == vcpus and s.memory_gib == gib for s in sizes):
            raise HostMixError(f"size {vcpus}x{gib} is listed twice")
        sizes.append(HostSize(vcpus, gib, weight))
    return tuple(sizes)


def format_host_mix(sizes: tuple[HostSize, ...]) -> str:
    """The text :func:`parse_host_mix` reads back as ``sizes``."""
    return ",".join(f"{s.label}:{s.weight:g}" for s in sizes)


def shares(sizes: tuple[HostSize, ...], count: int) -> list[int]:
    """How many of ``count`` hosts get each size: proportional to the weights,
    rounded by largest remainder (ties to the earlier size), summing to ``count``."""
    if not sizes:
        raise HostMixError("the mix has no sizes")
    total = sum(s.weight for s in sizes)
    exact = [count * s.weight / total for s in sizes]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[:count - sum(counts)]:
        counts[i] += 1
    return counts


def draw(sizes: tuple[HostSize, ...], count: int, seed: int) -> list[HostSize]:
    """The size of each of ``count`` hosts: exact shares, shuffled by ``seed``."""
    drawn = [size for size, n in zip(sizes, shares(sizes, count), strict=True)
             for _ in range(n)]
    random.Random(seed).shuffle(drawn)
    return drawn
