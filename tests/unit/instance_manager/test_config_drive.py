"""The config drive, read back by pycdlib and by an independent reader (blkid)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path

import pycdlib

from cloud_manager.services.server_create import hostname_of
from instance_manager import config_drive
from message_bus.messages import GuestConfig


def _files(path: Path) -> dict[str, bytes]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        found = {}
        for root, _, names in iso.walk(rr_path="/"):
            for name in names:
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, rr_path=f"{root}/{name}")
                found[f"{root}/{name}".lstrip("/")] = out.getvalue()
        return found
    finally:
        iso.close()


def test_the_drive_holds_openstacks_layout(tmp_path: Path) -> None:
    guest = GuestConfig(hostname="db-1", project_id="p1", availability_zone="az1",
                        key_name="k", public_key="ssh-ed25519 AAAA me", launch_index=2,
                        user_data=base64.b64encode(b"\x00binary\xff").decode())
    path = config_drive.build(tmp_path, "uuid-1", "DB 1", guest)
    assert path == tmp_path / "disk.config"
    label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(path)],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert label == "config-2"
    files = _files(path)
    assert sorted(files) == ["openstack/2012-08-10/meta_data.json",
                             "openstack/2012-08-10/user_data",
                             "openstack/latest/meta_data.json", "openstack/latest/user_data"]
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta == {"uuid": "uuid-1", "name": "DB 1", "hostname": "db-1", "launch_index": 2,
                    "availability_zone": "az1", "project_id": "p1",
                    "public_keys": {"k": "ssh-ed25519 AAAA me"},
                    "keys": [{"name": "k", "type": "ssh", "data": "ssh-ed25519 AAAA me"}],
                    "meta": {}}
    assert files["openstack/latest/user_data"] == b"\x00binary\xff"
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]  # no temporary left


def test_without_key_or_user_data(tmp_path: Path) -> None:
    path = config_drive.build(tmp_path, "u", "n", GuestConfig(hostname="n", project_id="p"))
    files = _files(path)
    assert "openstack/latest/user_data" not in files
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["public_keys"] == {} and meta["keys"] == []


def test_hostnames_are_sanitised_as_nova_does() -> None:
    assert hostname_of("Web_Server.1") == "web-server-1"
    assert hostname_of("--a  b--") == "a-b"
    assert hostname_of("ünïcode!") == "ncode"
    assert hostname_of("!!!") == "server"
    assert len(hostname_of("x" * 100)) == 63
