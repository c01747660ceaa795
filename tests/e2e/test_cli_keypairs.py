"""``ironbark keypair ...`` and ``server create --key-name --user-data`` end to end: the
installed CLI against an ``ironbark up`` subprocess."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import Cloud
from tests.e2e.test_cli import as_json, parse_table, show_fields

pytestmark = pytest.mark.e2e


def test_keypair_create_import_list_show_delete(cloud: Cloud, tmp_path: Path) -> None:
    key_file = tmp_path / "made.pem"
    made = show_fields(cloud.ok("keypair", "create", "--private-key", str(key_file),
                                "made").out)
    assert made["name"] == "made" and made["type"] == "ssh"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    private = serialization.load_ssh_private_key(key_file.read_bytes(), None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    assert made["public_key"] == public
    again = cloud.run("keypair", "create", "--private-key", str(key_file), "other")
    assert again.code == 2 and "not overwriting" in again.err, again.describe()

    printed = cloud.ok("keypair", "create", "printed").out
    assert "-----BEGIN OPENSSH PRIVATE KEY-----" in printed

    pub = tmp_path / "id.pub"
    pub.write_text(public + " me@desk\n")
    shown = as_json(cloud, "keypair", "import", "--public-key", str(pub), "imported")
    assert shown["public_key"] == public + " me@desk" and "private_key" not in shown
    rows = {r["Name"]: r for r in parse_table(cloud.ok("keypair", "list").out)}
    assert set(rows) == {"made", "printed", "imported"}
    assert rows["imported"]["Fingerprint"] == rows["made"]["Fingerprint"]  # same key
    assert as_json(cloud, "keypair", "show", "made")["fingerprint"] == made["fingerprint"]

    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 nonsense\n")
    refused = cloud.run("keypair", "import", "--public-key", str(bad), "bad")
    assert refused.code == 1 and "public_key" in refused.err, refused.describe()

    result = cloud.run("keypair", "delete", "no-such-key", "made", "printed", "imported")
    assert result.code == 1 and "HTTP 404" in result.err, result.describe()
    assert as_json(cloud, "keypair", "list") == []


def test_server_create_with_key_and_user_data(cloud: Cloud, tmp_path: Path) -> None:
    cloud.ok("keypair", "create", "--private-key", str(tmp_path / "k"), "boot-key")
    data = tmp_path / "user-data"
    data.write_bytes(b"#!/bin/sh\necho hi\n")
    server = as_json(cloud, "server", "create", "--flavor", "m1.tiny", "--image", "demo",
                     "--key-name", "boot-key", "--user-data", str(data), "--wait", "keyed")
    assert server["status"] == "ACTIVE" and server["key_name"] == "boot-key", server
    missing = cloud.run("server", "create", "--flavor", "m1.tiny", "--image", "demo",
                        "--key-name", "nope", "never")
    assert missing.code == 1 and "key_name" in missing.err, missing.describe()
    too_big = tmp_path / "big"
    too_big.write_bytes(b"x" * 70000)
    refused = cloud.run("server", "create", "--flavor", "m1.tiny", "--image", "demo",
                        "--user-data", str(too_big), "never")
    assert refused.code == 1 and "user_data" in refused.err, refused.describe()
    assert as_json(cloud, "server", "list", "--name", "never") == []
