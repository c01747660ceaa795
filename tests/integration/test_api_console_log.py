"""``GET /v1/servers/<id>/console-log``: the tail of a guest's serial console, read on
its host through the group (libvirt's simulated hypervisor writes no console, so the
test plays the guest by appending to the file the domain's serial port names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironbark.allinone import AllInOne
from tests.helpers import Api


def _console_file(cloud: AllInOne, server_id: str) -> Path:
    host = Api(cloud.api_url, cloud.admin_token).server(server_id)["host"]
    (im,) = [im for im in cloud.instance_managers if im.ctx.name == host]
    return Path(im.ctx.options.state_dir) / "instances" / server_id / "console.log"


def test_read_the_whole_log_or_its_last_lines(cloud: AllInOne, alpha: Api, beta: Api) -> None:
    server = alpha.boot("talker")
    r = alpha.get(f"/v1/servers/{server['id']}/console-log")
    assert r.status == 200 and r.body == {"output": ""}, r
    log = _console_file(cloud, server["id"])
    log.write_bytes(b"booting\nready \xff\nlogin: ")
    assert alpha.get(f"/v1/servers/{server['id']}/console-log").body["output"] == \
        "booting\nready \ufffd\nlogin: "
    last = alpha.get(f"/v1/servers/{server['id']}/console-log", lines="2").body["output"]
    assert last == "ready \ufffd\nlogin: "
    # Stopped: the log is still there to read.
    assert alpha.act(server["id"], "stop").status == 202
    assert alpha.wait(server["id"])["status"] == "SHUTOFF"
    assert alpha.get(f"/v1/servers/{server['id']}/console-log", lines="1").body == \
        {"output": "login: "}
    assert beta.get(f"/v1/servers/{server['id']}/console-log").status == 404
    assert alpha.get("/v1/servers/no-such-server/console-log").status == 404


@pytest.mark.parametrize("lines", ["0", "-1", "x", "10001", "1.5", ""])
def test_bad_lines_are_refused(alpha: Api, lines: str) -> None:
    server = alpha.boot("x")
    r = alpha.get(f"/v1/servers/{server['id']}/console-log", lines=lines)
    assert r.status == 400 and "lines" in r.body["error"]["message"], r


def test_a_server_without_a_host_has_no_log(admin: Api, alpha: Api) -> None:
    giant = {"name": "giant", "vcpus": 1024, "memory_mb": 4096, "disk_gb": 1}
    assert admin.post("/v1/flavors", giant).status == 201
    server = alpha.boot("huge", flavor="giant")
    assert server["status"] == "ERROR", server  # no valid host: never placed
    r = alpha.get(f"/v1/servers/{server['id']}/console-log")
    assert r.status == 409 and "no host" in r.body["error"]["message"], r
