"""Server snapshots through the API of an all-in-one cloud: every tier, for real.

The snapshot's disk crosses Cloud Manager -> Group Manager -> Instance Manager ->
libvirt's test driver and qemu-img -> the image store, and comes back as an image
that boots. Faults are real: an overlay deleted under a running guest, and a
snapshot held up on its host (the driver's lock on the instance held by the test,
as a long disk copy would hold it) until its deadline passes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ironbark.allinone import AllInOne
from ironbark.cli.client import ApiClient
from ironbark.cli.snapshot_wait import wait_for_snapshot
from ironbark.cli.wait import WaitError, wait_for_server
from tests.conftest import CloudFactory
from tests.helpers import Api, wait_for
from tests.identity import member_token

GIB = 1024 ** 3
SMALL = {"name": "snap.small", "vcpus": 1, "memory_mb": 256, "disk_gb": 0}


def small_flavor(admin: Api) -> str:
    """A flavor whose disk is its image's size: a 1 MiB snapshot, quick to cut and hash
    (m1.tiny's 1 GiB costs seconds; one test keeps it, as the realistic case)."""
    r = admin.post("/v1/flavors", SMALL)
    assert r.status == 201, r
    return SMALL["name"]


def snapshot(api: Api, server_id: str, body: Any) -> Any:
    return api.post(f"/v1/servers/{server_id}/action", {"create_image": body})


def image_of(api: Api, image_id: str) -> dict[str, Any]:
    r = api.get(f"/v1/images/{image_id}")
    assert r.status == 200, r
    return r.body["image"]


def wait_snapshot(api: Api, server_id: str, image_id: str,
                  timeout: float = 30.0) -> tuple[dict[str, Any], list[str]]:
    """Poll until the server has no task and the image is active; the image and every
    status the server showed meanwhile."""
    shown: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        server = api.server(server_id)
        shown.append(server["status"])
        image = image_of(api, image_id)
        if server["task_state"] is None and image["status"] == "active":
            return image, shown
        assert image["status"] in ("queued", "saving", "active"), image
        if time.monotonic() > deadline:
            raise AssertionError(f"snapshot stuck: server {server}, image {image}")
        time.sleep(0.02)


def project_images(api: Api) -> list[str]:
    return sorted(i["id"] for i in api.get("/v1/images").body["images"])


@contextlib.contextmanager
def held_on_its_host(cloud: AllInOne, server: dict[str, Any]) -> Iterator[None]:
    """Hold the host driver's lock on the instance, as a long disk copy holds it: a
    snapshot sent meanwhile waits on its host, in flight."""
    im = next(im for im in cloud.instance_managers if im.ctx.name == server["host"])
    with im.ctx.driver._locks.hold(server["id"]):  # type: ignore[attr-defined]
        yield


# --- a snapshot, end to end ---------------------------------------------------------------


def test_snapshot_becomes_an_active_image_of_the_project_that_boots(
        alpha: Api, beta: Api, admin: Api) -> None:
    server = alpha.boot("source")
    assert server["status"] == "ACTIVE"

    r = snapshot(alpha, server["id"], {"name": "source-snap",
                                       "properties": {"purpose": "backup"}})

    assert r.status == 202, r
    image = r.body["image"]
    assert image["status"] == "queued" and image["name"] == "source-snap"
    assert r.headers["Location"].endswith(f"/v1/images/{image['id']}")
    done, shown = wait_snapshot(alpha, server["id"], image["id"])
    assert set(shown) == {"ACTIVE"}  # a snapshot never changes the server's status
    after = alpha.server(server["id"])
    assert (after["status"], after["task_state"], after["fault"]) == ("ACTIVE", None, None)
    assert done["owner"] == server["project_id"]
    assert (done["visibility"], done["disk_format"]) == ("private", "raw")
    assert done["size"] == GIB  # the flavor's disk, m1.tiny
    assert done["properties"] == {"purpose": "backup", "image_type": "snapshot",
                                  "instance_uuid": server["id"],
                                  "base_image_ref": server["image"]["id"]}
    assert beta.get(f"/v1/images/{image['id']}").status == 404  # private to alpha

    booted = alpha.boot("from-snap", flavor=small_flavor(admin), image=image["id"])
    assert booted["status"] == "ACTIVE", booted
    assert booted["image"]["id"] == image["id"]
    # the admin may snapshot any server: the image is still the server's project's
    r = snapshot(admin, booted["id"], {"name": "by-admin"})
    assert r.status == 202, r
    by_admin, _ = wait_snapshot(admin, booted["id"], r.body["image"]["id"])
    assert by_admin["owner"] == server["project_id"]
    assert by_admin["size"] == GIB  # its disk is its image's: the first snapshot's size
    assert by_admin["properties"]["base_image_ref"] == image["id"]


def test_snapshot_of_a_stopped_server_keeps_it_stopped(alpha: Api, admin: Api) -> None:
    server = alpha.boot("stopped", flavor=small_flavor(admin))
    assert alpha.act(server["id"], "stop").status == 202
    assert alpha.wait(server["id"])["status"] == "SHUTOFF"
    r = snapshot(alpha, server["id"], {"name": "cold"})
    assert r.status == 202, r
    _, shown = wait_snapshot(alpha, server["id"], r.body["image"]["id"])
    assert set(shown) == {"SHUTOFF"}
    assert alpha.server(server["id"])["power_state"] == "shutdown"


# --- refusals: nothing is created --------------------------------------------------------


def test_snapshot_in_a_state_that_forbids_it_answers_409(alpha: Api, admin: Api) -> None:
    r = admin.post("/v1/flavors", {"name": "huge", "vcpus": 1, "memory_mb": 16_000_000,
                                   "disk_gb": 1})
    assert r.status == 201, r
    failed = alpha.boot("unplaceable", flavor="huge")
    assert failed["status"] == "ERROR"
    before = project_images(alpha)

    r = snapshot(alpha, failed["id"], {"name": "nope"})

    assert r.status == 409, r
    assert r.body["error"]["message"] == "cannot snapshot an instance in status ERROR"
    assert project_images(alpha) == before


def test_another_projects_server_is_not_found(alpha: Api, beta: Api, admin: Api) -> None:
    server = alpha.boot("mine", flavor=small_flavor(admin))
    before = project_images(beta)
    r = snapshot(beta, server["id"], {"name": "theirs"})
    assert r.status == 404, r
    assert project_images(beta) == before
    assert alpha.server(server["id"])["task_state"] is None


BAD_BODIES = [
    ({}, "create_image.name"),
    ({"name": ""}, "create_image.name"),
    ({"name": "   "}, "create_image.name"),
    ({"name": "x" * 256}, "create_image.name"),
    ({"name": 42}, "create_image.name"),
    ({"name": "ok", "properties": {"a": 1}}, "create_image.properties.a"),
    ({"name": "ok", "properties": ["a"]}, "create_image.properties"),
    ({"name": "ok", "properties": {"image_type": "golden"}}, "create_image.properties"),
    ({"name": "ok", "properties": {"k": "v" * 256}}, "create_image.properties.k"),
    ({"name": "ok", "colour": "blue"}, "create_image.colour"),
    ("ok", "create_image"),
]


def test_bad_bodies_answer_400_naming_the_field_and_change_nothing(
        alpha: Api, admin: Api) -> None:
    server = alpha.boot("target", flavor=small_flavor(admin))
    before = project_images(alpha)
    for body, field in BAD_BODIES:
        r = snapshot(alpha, server["id"], body)
        assert r.status == 400, (body, r)
        assert r.body["error"]["field"] == field, (body, r)
        assert f"'{field}'" in r.body["error"]["message"], (body, r)
    r = alpha.post(f"/v1/servers/{server['id']}/action",
                   {"create_image": {"name": "ok"}, "action": "stop"})
    assert (r.status, r.body["error"]["field"]) == (400, "action"), r
    assert project_images(alpha) == before
    after = alpha.server(server["id"])
    assert (after["status"], after["task_state"]) == ("ACTIVE", None)


# --- while it runs, and when it fails --------------------------------------------------------


@pytest.fixture
def slow_cloud(make_cloud: CloudFactory) -> AllInOne:
    """A cloud whose snapshots are overdue after 2 s, and whose calls wait 1 s."""
    return make_cloud(hosts=1, bus={"rpc_timeout": 1.0},
                      cloud={"task_deadlines": {"image_uploading": 2.0}})


def test_a_snapshot_in_flight_blocks_other_actions_and_an_overdue_one_is_settled(
        slow_cloud: AllInOne) -> None:
    api = Api(slow_cloud.api_url, slow_cloud.admin_token)
    server = api.boot("busy", flavor=small_flavor(api))
    with held_on_its_host(slow_cloud, server):
        r = snapshot(api, server["id"], {"name": "slow"})
        assert r.status == 202, r
        image_id = r.body["image"]["id"]
        during = api.server(server["id"])
        assert (during["status"], during["task_state"]) == ("ACTIVE", "image_uploading")
        again = snapshot(api, server["id"], {"name": "second"})
        assert again.status == 409, again
        assert "task 'image_uploading' is in progress (status ACTIVE)" in (
            again.body["error"]["message"])
        stop = api.act(server["id"], "stop")
        assert stop.status == 409 and "image_uploading" in stop.body["error"]["message"]

        settled = api.wait(server["id"], timeout=10)  # the deadline sweep ends the task

        assert settled["status"] == "ACTIVE"
        # The host is busy with that instance (its messages are handled in order), so
        # it cannot say how the guest is: the server keeps its state, the fault says why.
        fault = settled["fault"]["message"]
        assert fault.startswith("task 'image_uploading' did not finish within 2 s; "
                                "host host1: "), fault
        assert "did not answer" in fault, fault
        assert fault.endswith(f"; its image {image_id} is deleted"), fault
        wait_for(lambda: api.get(f"/v1/images/{image_id}").status == 404,
                 what="the unfinished image to be deleted")
    # Released: the copy runs now, finds its image gone, and its late failure changes
    # nothing; the server takes actions again.
    time.sleep(0.5)
    assert api.server(server["id"])["fault"] == settled["fault"]
    assert api.act(server["id"], "stop").status == 202
    assert api.wait(server["id"])["status"] == "SHUTOFF"


def test_deleting_a_server_mid_snapshot_deletes_the_unfinished_image(
        cloud: AllInOne, alpha: Api, admin: Api) -> None:
    server = alpha.boot("doomed", flavor=small_flavor(admin))
    with held_on_its_host(cloud, admin.server(server["id"])):
        r = snapshot(alpha, server["id"], {"name": "never"})
        assert r.status == 202, r
        image_id = r.body["image"]["id"]
        assert image_of(alpha, image_id)["status"] == "queued"
        assert alpha.delete(f"/v1/servers/{server['id']}").status == 202
        assert alpha.get(f"/v1/images/{image_id}").status == 404
    wait_for(lambda: alpha.get(f"/v1/servers/{server['id']}").status == 404,
             what="the server to be deleted")
    assert image_id not in project_images(alpha)


def test_a_snapshot_that_fails_on_its_host_deletes_its_image(
        cloud: AllInOne, alpha: Api, admin: Api) -> None:
    server = alpha.boot("broken", flavor=small_flavor(admin))
    host = admin.server(server["id"])["host"]
    disk = cloud.config.data_dir / "hosts" / host / "instances" / server["id"] / "disk"
    disk.unlink()  # the overlay is gone under the running guest

    r = snapshot(alpha, server["id"], {"name": "doomed"})
    assert r.status == 202, r
    image_id = r.body["image"]["id"]

    after = alpha.wait(server["id"])
    assert (after["status"], after["task_state"]) == ("ACTIVE", None)
    message = after["fault"]["message"]
    assert message.startswith(f"snapshot into image {image_id} failed: qemu-img convert failed")
    assert "No such file or directory" in message
    wait_for(lambda: alpha.get(f"/v1/images/{image_id}").status == 404,
             what="the failed snapshot's image to be deleted")


# --- the CLI's wait, with the CLI's client, against this cloud -------------------------------


def test_the_cli_waits_for_a_snapshot_and_reports_a_failed_one(cloud: AllInOne) -> None:
    client = ApiClient(cloud.api_url, member_token(cloud, "alpha"))
    flavor = small_flavor(Api(cloud.api_url, cloud.admin_token))
    server = client.create_server("waited", flavor, "demo")
    server = wait_for_server(client, server, 20.0, interval=0.02)

    image = client.create_server_image(server["id"], "waited-snap", {"k": "v"})
    done = wait_for_snapshot(client, image, server["id"], 30.0, interval=0.02)
    assert (done["id"], done["status"], done["properties"]["k"]) == (image["id"], "active", "v")

    host = Api(cloud.api_url, cloud.admin_token).server(server["id"])["host"]
    (cloud.config.data_dir / "hosts" / host / "instances" / server["id"] / "disk").unlink()
    doomed = client.create_server_image(server["id"], "doomed")
    with pytest.raises(WaitError) as failed:
        wait_for_snapshot(client, doomed, server["id"], 30.0, interval=0.02)
    message = str(failed.value)
    assert message.startswith(f"the snapshot of server 'waited' ({server['id']}) failed: "
                              f"snapshot into image {doomed['id']} failed: qemu-img convert")
    assert message.endswith(f"(its image {doomed['id']} was deleted)")
