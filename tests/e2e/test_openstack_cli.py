"""The ``openstack`` CLI (python-openstackclient), run as a subprocess against an
``ironbark up`` subprocess, from the clouds.yaml entry ``ironbark up`` wrote."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ironbark import demo_image
from tests.e2e.conftest import Cloud

pytestmark = pytest.mark.e2e

OPENSTACK = Path(sys.executable).parent / "openstack"


def osc(cloud: Cloud, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run([str(OPENSTACK), "--os-cloud", "ironbark", *args], env=cloud.env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (f"`openstack {' '.join(args)}` exited {proc.returncode}\n"
                                  f"{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def osc_json(cloud: Cloud, *args: str) -> Any:
    return json.loads(osc(cloud, *args, "-f", "json"))


def _status(cloud: Cloud, name: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        shown = osc_json(cloud, "server", "show", name)
        if shown["status"] == wanted:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)


def test_the_openstack_cli_runs_a_server_from_start_to_end(cloud: Cloud, tmp_path: Path) -> None:
    token = osc_json(cloud, "token", "issue")
    assert token["id"] and token["project_id"] and token["expires"]

    raw = tmp_path / "disk.raw"
    raw.write_bytes(demo_image.build())
    image = osc_json(cloud, "image", "create", "--file", str(raw), "--disk-format", "raw",
                     "--container-format", "bare", "cli-image")
    assert image["status"] == "active", image
    flavors = {f["Name"] for f in osc_json(cloud, "flavor", "list")}
    assert "m1.tiny" in flavors

    network = osc_json(cloud, "network", "create", "cli-net")
    subnet = osc_json(cloud, "subnet", "create", "--network", "cli-net", "--subnet-range",
                      "10.55.0.0/24", "cli-subnet")
    assert subnet["network_id"] == network["id"] and subnet["gateway_ip"] == "10.55.0.1"
    key = osc(cloud, "keypair", "create", "cli-key")
    assert "PRIVATE KEY" in key

    created = osc_json(cloud, "server", "create", "--wait", "--image", "cli-image", "--flavor",
                       "m1.tiny", "--network", "cli-net", "--key-name", "cli-key", "cli-vm")
    assert created["status"] == "ACTIVE", created
    listed = {s["Name"]: s for s in osc_json(cloud, "server", "list")}
    assert listed["cli-vm"]["Status"] == "ACTIVE" and listed["cli-vm"]["Image"] == "cli-image"
    assert listed["cli-vm"]["Networks"] == {"cli-net": ["10.55.0.2"]}, listed
    shown = osc_json(cloud, "server", "show", "cli-vm")
    assert shown["key_name"] == "cli-key" and shown["OS-EXT-SRV-ATTR:host"]

    osc(cloud, "server", "stop", "cli-vm")
    _status(cloud, "cli-vm", "SHUTOFF")
    osc(cloud, "server", "start", "cli-vm")
    _status(cloud, "cli-vm", "ACTIVE")

    stats = osc_json(cloud, "hypervisor", "stats", "show")
    assert stats["count"] == cloud.hosts and stats["vcpus_used"] == 1, stats
    hypervisors = osc_json(cloud, "hypervisor", "list", "--long")
    assert len(hypervisors) == cloud.hosts
    assert sum(h["vCPUs Used"] for h in hypervisors) == 1
    quota = {row["Resource"]: row["Limit"] for row in osc_json(cloud, "quota", "show")}
    assert quota["instances"] == 10 and quota["cores"] == 20 and quota["networks"] == 100
    usage = osc_json(cloud, "usage", "list")
    assert [[s["name"] for s in u["Servers"]] for u in usage] == [["cli-vm"]], usage
    assert usage[0]["Project"] == token["project_id"] and usage[0]["CPU Hours"] > 0

    osc(cloud, "server", "delete", "--wait", "cli-vm")
    assert osc_json(cloud, "server", "list") == []
    assert osc_json(cloud, "port", "list", "--network", "cli-net") == []
