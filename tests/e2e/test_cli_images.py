"""``ironbark image ...`` end to end: the installed CLI against an ``ironbark up`` subprocess.

A file goes up with ``image create --file``, comes back byte-identical with ``image
download``, is renamed and re-labelled with ``image set``, counted by ``image stats``,
booted by name and deleted, all as a user would type it (the credentials ``ironbark
up`` wrote are the admin's).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import Cloud
from tests.e2e.test_cli import as_json, parse_table, show_fields

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024



def disk_file(path: Path, size: int) -> bytes:
    """Random bytes then zeros (a hole), as a sparse-ish disk would be; written to ``path``."""
    data = os.urandom(size // 2) + bytes(size - size // 2)
    path.write_bytes(data)
    return data


def test_image_create_list_show_download_set_stats_delete(cloud: Cloud, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    data = disk_file(source, 3 * MIB)
    created = cloud.ok("image", "create", "--file", str(source), "--disk-format", "raw",
                       "--property", "os=linux", "--min-ram", "64", "-f", "json", "e2e-disk")
    assert created.err == "", created.describe()  # no progress bar: stderr is not a tty
    image = json.loads(created.out)
    assert image["status"] == "active" and image["size"] == len(data), image
    assert image["sha256"] == hashlib.sha256(data).hexdigest()
    assert image["properties"] == {"os": "linux"} and image["min_ram"] == 64

    rows = {row["Name"]: row for row in parse_table(cloud.ok("image", "list").out)}
    assert rows["e2e-disk"]["ID"] == image["id"]
    assert rows["e2e-disk"]["Status"] == "active"
    assert rows["e2e-disk"]["Size"] == "3.0 MiB"
    assert rows["e2e-disk"]["Visibility"] == "private"

    fields = show_fields(cloud.ok("image", "show", "e2e-disk").out)
    assert fields["id"] == image["id"] and fields["properties.os"] == "linux"

    out = tmp_path / "back.raw"
    got = cloud.ok("image", "download", "e2e-disk", "--file", str(out))
    assert out.read_bytes() == data, got.describe()
    assert not (tmp_path / "back.raw.part").exists()
    assert image["id"] in got.err

    changed = as_json(cloud, "image", "set", "--name", "e2e-disk2", "--property", "tier=gold",
                      "--unset-property", "os", "e2e-disk")
    assert changed["name"] == "e2e-disk2" and changed["properties"] == {"tier": "gold"}

    stats = as_json(cloud, "image", "stats")
    assert stats["images"] >= 2 and stats["logical_bytes"] >= len(data)
    assert isinstance(stats["stored_bytes"], int) and stats["chunk_count"] > 0
    table = show_fields(cloud.ok("image", "stats").out)
    assert table["Images"] == str(stats["images"])
    assert table["Logical size"].endswith("iB") and table["Dedup ratio"].endswith("x")

    cloud.ok("image", "delete", "e2e-disk2")
    assert "e2e-disk2" not in {i["name"] for i in as_json(cloud, "image", "list")}
    gone = cloud.run("image", "delete", "e2e-disk2")
    assert gone.code == 1 and "Error (HTTP 404)" in gone.err, gone.describe()


def test_bad_image_input_is_refused(cloud: Cloud, tmp_path: Path) -> None:
    source = tmp_path / "disk.img"
    disk_file(source, 4096)
    bad_format = cloud.run("image", "create", "--file", str(source), "--disk-format", "vhd",
                           "x")
    assert bad_format.code == 2 and "--disk-format" in bad_format.err, bad_format.describe()
    bad_prop = cloud.run("image", "create", "--file", str(source), "--disk-format", "raw",
                         "--property", "novalue", "x")
    assert bad_prop.code == 2 and "KEY=VALUE" in bad_prop.err, bad_prop.describe()
    no_kernel = cloud.run("image", "create", "--file", str(source), "--disk-format", "raw",
                          "--kernel", "no-such-kernel", "x")
    assert no_kernel.code == 1 and "kernel_id" in no_kernel.err, no_kernel.describe()
    assert "x" not in {i["name"] for i in as_json(cloud, "image", "list")}


def test_boot_from_an_uploaded_image_by_name(cloud: Cloud, tmp_path: Path) -> None:
    source = tmp_path / "boot.raw"
    disk_file(source, 2 * MIB)
    image = as_json(cloud, "image", "create", "--file", str(source), "--disk-format", "raw",
                    "e2e-boot")
    server = as_json(cloud, "server", "create", "--flavor", "m1.tiny", "--image", "e2e-boot",
                     "--wait", "e2e-from-upload")
    assert server["status"] == "ACTIVE", server
    assert server["image"] == {"id": image["id"], "name": "e2e-boot"}
    cloud.ok("server", "delete", "--wait", "e2e-from-upload")
