"""The config drive: what a guest reads about itself, as an ISO 9660 image labelled
``config-2`` in OpenStack's layout, so that cloud-init and similar agents find it
unchanged.

    openstack/latest/meta_data.json   uuid, name, hostname, keys, zone, launch index
    openstack/latest/user_data        the user data, decoded (only when given)
    openstack/2012-08-10/...          the same, for agents that ask for a dated version

Built with pycdlib (a maintained pure-Python ISO 9660 writer, Joliet and Rock Ridge
included) rather than a Debian tool: no subprocess on the spawn path, no package a
host must install. Written to a temporary file and renamed, so a half-written drive
is never attached.
"""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pycdlib

from message_bus.messages import GuestConfig

LABEL = "config-2"
VERSIONS = ("latest", "2012-08-10")
FILE_NAME = "disk.config"


def meta_data(instance_id: str, name: str, guest: GuestConfig) -> dict[str, object]:
    """``meta_data.json`` as Nova writes it (the keys cloud-init reads)."""
    keys = {}
    if guest.key_name is not None and guest.public_key is not None:
        keys[guest.key_name] = guest.public_key
    return {
        "uuid": instance_id,
        "name": name,
        "hostname": guest.hostname,
        "launch_index": guest.launch_index,
        "availability_zone": guest.availability_zone,
        "project_id": guest.project_id,
        "public_keys": keys,
        "keys": [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()],
        "meta": {},
    }


def build(instance_dir: Path, instance_id: str, name: str, guest: GuestConfig) -> Path:
    """Write ``<instance_dir>/disk.config`` and return its path."""
    files: dict[str, bytes] = {
        "meta_data.json": json.dumps(meta_data(instance_id, name, guest), indent=2,
                                     sort_keys=True).encode(),
    }
    if guest.user_data is not None:
        files["user_data"] = base64.b64decode(guest.user_data)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    try:
        _add_dir(iso, "OPENSTACK", "openstack")
        for version in VERSIONS:
            iso_dir = f"/OPENSTACK/{_iso_name(version)}"
            _add_dir(iso, iso_dir, f"openstack/{version}")
            for file_name, data in files.items():
                iso.add_fp(io.BytesIO(data), len(data), f"{iso_dir}/{_iso_name(file_name)};1",
                           rr_name=file_name,
                           joliet_path=f"/openstack/{version}/{file_name}")
        path = instance_dir / FILE_NAME
        temporary = path.with_name(f".{FILE_NAME}.tmp")
        iso.write(str(temporary))
    finally:
        iso.close()
    os.replace(temporary, path)
    return path


def _add_dir(iso: pycdlib.PyCdlib, iso_path: str, real_path: str) -> None:
    if not iso_path.startswith("/"):
        iso_path = f"/{iso_path}"
    iso.add_directory(iso_path, rr_name=real_path.rsplit("/", 1)[-1],
                      joliet_path=f"/{real_path}")


def _iso_name(name: str) -> str:
    """ISO 9660's plain names: upper case, digits and '_' (Rock Ridge and Joliet carry
    the real ones; readers in the guest use those)."""
    cleaned = "".join(c if c.isalnum() else "_" for c in name.upper())
    stem, _, ext = name.upper().partition(".")
    if ext:
        cleaned = "".join(c if c.isalnum() else "_" for c in stem) + "." + ext
    return cleaned
