"""API objects shaped exactly as docs/api.md describes them, for the output tests."""

from __future__ import annotations

import copy
from typing import Any

SERVER_ID = "0b5c6a7e-8a0e-4b43-9c1a-6f0d3a2b9e11"

SERVER: dict[str, Any] = {
    "id": SERVER_ID,
    "name": "web1",
    "project_id": "demo",
    "status": "ACTIVE",
    "vm_state": "active",
    "task_state": None,
    "power_state": "running",
    "flavor": {"id": "f1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "disk_gb": 1},
    "image": {"id": "5d2b1c7a-0000-4000-8000-000000000001", "name": "demo"},
    "group": "rack1",
    "host": None,
    "fault": None,
    "created_at": "2026-11-22T10:00:00Z",
    "updated_at": "2026-11-22T10:00:05Z",
    "launched_at": "2026-11-22T10:00:05Z",
    "request_id": "req-3f1c2a4e-1111-4222-8333-944455556666",
    "server_group": None,
    "reservation_id": None,
}

FLAVOR: dict[str, Any] = {
    "id": "f1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "disk_gb": 1,
    "is_public": True, "created_at": "2026-11-22T09:00:00Z",
}

IMAGE: dict[str, Any] = {
    "id": "5d2b1c7a-0000-4000-8000-000000000001", "name": "demo", "status": "active",
    "disk_format": "qcow2", "size": 13_107_200, "sha256": "ab" * 32,
    "visibility": "public", "owner": "admin",
    "created_at": "2026-11-22T09:00:00Z", "updated_at": "2026-11-22T09:00:00Z",
}


def _resource(total: int, reserved: int, ratio: float, used: int) -> dict[str, Any]:
    capacity = int((total - reserved) * ratio)
    return {"total": total, "reserved": reserved, "allocation_ratio": ratio,
            "capacity": capacity, "used": used, "free": capacity - used}


HOST: dict[str, Any] = {
    "name": "hv1", "group": "rack1", "state": "up", "enabled": True,
    "hypervisor_type": "fake", "instances": 3, "last_seen_at": "2026-11-22T10:00:00Z",
    "unknown_domains": [],
    "vcpus": _resource(8, 0, 4.0, 3),
    "memory_mb": _resource(16384, 512, 1.5, 1536),
    "disk_gb": _resource(100, 0, 1.0, 3),
}

GROUP: dict[str, Any] = {
    "name": "rack1", "state": "up", "policy": "spread", "hosts_up": 2, "hosts_down": 0,
    "hosts_empty": 1,
    "capacity": {"vcpus": 64, "memory_mb": 47616, "disk_gb": 200},
    "used": {"vcpus": 3, "memory_mb": 1536, "disk_gb": 3},
    "largest_free": {"vcpus": 32, "memory_mb": 23808, "disk_gb": 100},
    "last_seen_at": "2026-11-22T10:00:00Z",
}


def server(**changes: Any) -> dict[str, Any]:
    """A copy of SERVER with some fields changed."""
    obj = copy.deepcopy(SERVER)
    obj.update(changes)
    return obj


SERVER_GROUP: dict[str, Any] = {
    "id": "7a1f0c3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b", "name": "web", "policy": "anti-affinity",
    "project_id": "demo", "group": "rack1", "members": [SERVER_ID],
    "created_at": "2026-11-22T09:30:00Z",
}
