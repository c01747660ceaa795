"""``ironbark server image create`` end to end: the installed CLI against ``ironbark up``.

A server's snapshot is taken with ``--wait`` and a new server boots from it, the way
a user would make a golden image, with nothing imported from the product.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cloud
from tests.e2e.test_cli import as_json

pytestmark = pytest.mark.e2e



def test_snapshot_with_wait_then_boot_from_it(cloud: Cloud) -> None:
    source = as_json(cloud, "server", "create", "--flavor", "m1.tiny", "--image", "demo",
                     "--wait", "golden-source")
    assert source["status"] == "ACTIVE", source

    image = as_json(cloud, "server", "image", "create", "--property", "role=web",
                    "--property", "tier=gold", "--wait", "golden-source", "golden")

    assert (image["name"], image["status"], image["disk_format"]) == ("golden", "active", "raw")
    assert image["owner"] == source["project_id"]
    assert image["properties"] == {"role": "web", "tier": "gold", "image_type": "snapshot",
                                   "instance_uuid": source["id"],
                                   "base_image_ref": source["image"]["id"]}
    after = as_json(cloud, "server", "show", "golden-source")
    assert (after["status"], after["task_state"]) == ("ACTIVE", None)
    listed = cloud.ok("image", "list").out
    assert "golden" in listed

    booted = as_json(cloud, "server", "create", "--flavor", "m1.tiny", "--image", "golden",
                     "--wait", "from-golden")
    assert booted["status"] == "ACTIVE", booted
    assert booted["image"]["id"] == image["id"]

    refused = cloud.run("server", "image", "create", "--property", "novalue", "golden-source",
                        "x")
    assert refused.code == 2 and "'novalue' is not KEY=VALUE" in refused.err, refused.describe()
