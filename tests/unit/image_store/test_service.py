"""The HTTP API over a real server (werkzeug's, in a thread) on a real store.

Plain ``requests`` calls rather than the client, so every header, status and body is
the one on the wire.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from image_store.codec import address, decode, encode
from ironbark.wsgi import ThreadedServer

from .http_util import (
    ALPHA,
    BETA,
    KIB,
    MIB,
    TOKEN,
    Api,
    assert_error,
    chunk_file,
    data_entries,
    flip_byte,
    image_bytes,
    raw_http,
)

# -- records ----------------------------------------------------------------------------


def test_info_names_the_chunking_policy(api: Api) -> None:
    info = api.get("/v1/info").json()
    assert info["codec"] == "zstd"
    assert info["backend"] == "local"
    assert set(info["chunking"]) == {"kind", "min", "avg", "max"}
    assert info["chunking"]["min"] <= info["chunking"]["avg"] <= info["chunking"]["max"]


def test_create_show_list_update_delete(api: Api) -> None:
    wanted = str(uuid.uuid4())
    image = api.create(id=wanted, name="ubuntu", disk_format="qcow2", visibility="public",
                       properties={"os_distro": "ubuntu"}, min_disk=2, min_ram=512)
    assert image["id"] == wanted
    assert image["status"] == "queued"
    assert (image["visibility"], image["min_disk"], image["min_ram"]) == ("public", 2, 512)
    assert image["created_at"].endswith("Z")
    other = api.create(name="cirros")

    assert api.get(f"/v1/images/{wanted}").json() == image
    assert [i["id"] for i in api.get("/v1/images").json()["images"]] == [wanted, other["id"]]
    assert [i["id"] for i in api.get("/v1/images?name=cirros").json()["images"]] == [
        other["id"]]
    assert api.get("/v1/images?status=active").json() == {"images": []}

    changed = api.patch(f"/v1/images/{wanted}", json={
        "name": "ubuntu-24.04", "min_ram": 1024, "properties": {"os_distro": None, "a": "b"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "ubuntu-24.04"
    assert changed.json()["min_ram"] == 1024
    assert changed.json()["properties"] == {"a": "b"}

    deleted = api.delete(f"/v1/images/{wanted}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(api.get(f"/v1/images/{wanted}"), 404, wanted)
    assert [i["id"] for i in api.get("/v1/images").json()["images"]] == [other["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "cirros", "disk_format": "vmdk"}, "disk_format"),
        ({"name": "", "disk_format": "raw"}, "name"),
        ({"name": 7, "disk_format": "raw"}, "name"),
        ({"name": "cirros", "disk_format": "raw", "visibility": "shared"}, "visibility"),
        ({"name": "cirros", "disk_format": "raw", "id": "nope"}, "id"),
        ({"name": "cirros", "disk_format": "raw", "id": 7}, "id"),
        ({"name": "cirros", "disk_format": "raw", "properties": {"a": 1}}, "properties"),
        ({"name": "cirros", "disk_format": "raw", "properties": ["a"]}, "properties"),
        ({"name": "cirros", "disk_format": "raw", "min_disk": -1}, "min_disk"),
        ({"name": "cirros", "disk_format": "raw", "min_ram": "512"}, "min_ram"),
        ({"name": "cirros", "disk_format": "raw", "min_ram": True}, "min_ram"),
        ({"name": "cirros", "disk_format": "raw", "kernel_id": 5}, "kernel_id"),
        ({"name": "cirros", "disk_format": "raw", "size": 10}, "size"),
        ({"name": "cirros", "disk_format": "raw", "status": "active"}, "status"),
        ({"disk_format": "raw"}, "name"),
        ({"name": "cirros"}, "disk_format"),
    ],
)
def test_bad_create_is_400_naming_the_field(api: Api, body: dict, field: str) -> None:
    error = assert_error(api.post("/v1/images", json=body), 400, field, field=field)
    assert error["message"]
    assert api.get("/v1/images").json() == {"images": []}


@pytest.mark.parametrize("data", [b"not json", b"[1]", b"null", b""])
def test_body_must_be_a_json_object(api: Api, data: bytes) -> None:
    assert_error(api.post("/v1/images", data=data), 400, "JSON object")
    image = api.create()
    assert_error(api.patch(f"/v1/images/{image['id']}", data=data), 400, "JSON object")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"status": "active"}, "status"),
        ({"size": 1}, "size"),
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"visibility": "everyone"}, "visibility"),
        ({"min_disk": 1.5}, "min_disk"),
        ({"properties": {"a": 1}}, "properties"),
        ({"properties": "a=b"}, "properties"),
    ],
)
def test_bad_update_is_400_and_changes_nothing(api: Api, changes: dict, field: str) -> None:
    image = api.create()
    assert_error(api.patch(f"/v1/images/{image['id']}", json=changes), 400, field=field)
    assert api.get(f"/v1/images/{image['id']}").json() == image


def test_list_refuses_unknown_or_repeated_filters(api: Api) -> None:
    assert_error(api.get("/v1/images?colour=red"), 400, "colour", field="colour")
    assert_error(api.get("/v1/images?name=a&name=b"), 400, "name", field="name")


def test_taken_id_is_409(api: Api) -> None:
    image = api.create()
    assert_error(api.post("/v1/images", json={"name": "x", "disk_format": "raw",
                                              "id": image["id"]}), 409, image["id"])


def test_unknown_image_is_404_everywhere(api: Api) -> None:
    missing = str(uuid.uuid4())
    address_ = address(b"x")
    for method, path, kwargs in [
        ("GET", "", {}), ("PATCH", "", {"json": {"name": "y"}}), ("DELETE", "", {}),
        ("GET", "/file", {}), ("PUT", "/file", {"data": b"x"}), ("GET", "/chunks", {}),
        ("POST", "/chunks/missing", {"json": {"addresses": [address_]}}),
        ("PUT", f"/chunks/{address_}", {"data": encode(b"x")}),
        ("POST", "/manifest", {"json": {"size": 1, "chunks": [[0, 1, address_]]}}),
    ]:
        response = api.request(method, f"/v1/images/{missing}{path}", **kwargs)
        assert_error(response, 404, missing)


def test_unknown_route_and_method_are_json(api: Api) -> None:
    assert_error(api.get("/v2/nothing"), 404)
    response = api.put("/v1/images")
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("token", [None, "wrong", ""])
@pytest.mark.parametrize("path", ["/v1/images", "/v1/info", "/nowhere"])
def test_missing_or_wrong_token_is_401(api: Api, token: str | None, path: str) -> None:
    assert_error(api.get(path, token=token), 401, "X-Service-Token")
    assert_error(api.post("/v1/images", token=token, json={"name": "x", "disk_format": "raw"}),
                 401)
    assert api.get("/v1/images").json() == {"images": []}


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Ironbark-Project": ALPHA, "X-Ironbark-Admin": "yes"}, "X-Ironbark-Admin"),
        ({"X-Ironbark-Admin": "true"}, "X-Ironbark-Admin"),
        ({"X-Ironbark-Project": "two words"}, "X-Ironbark-Project"),
        ({"X-Ironbark-Project": ""}, "X-Ironbark-Project"),
        ({"X-Ironbark-Project": "x" * 256}, "X-Ironbark-Project"),
    ],
)
def test_malformed_caller_headers_are_400(api: Api, headers: dict, field: str) -> None:
    assert_error(api.get("/v1/images", headers=headers), 400, field, field=field)
    assert_error(api.post("/v1/images", headers=headers,
                          json={"name": "x", "disk_format": "raw"}), 400, field=field)
    assert api.get("/v1/images").json() == {"images": []}


def test_request_id_is_echoed_or_minted(api: Api) -> None:
    response = api.get("/v1/images", headers={"X-Openstack-Request-Id": "req-abc"})
    assert response.headers["X-Openstack-Request-Id"] == "req-abc"
    assert api.get("/v1/images").headers["X-Openstack-Request-Id"].startswith("req-")


# -- tenancy ----------------------------------------------------------------------------


def test_projects_see_public_and_their_own_images(api: Api) -> None:
    private = api.create(name="alpha-private", project=ALPHA, admin=False)
    assert private["owner"] == ALPHA
    public = api.create(name="public", owner=ALPHA, visibility="public")

    def names(project: str) -> list[str]:
        listed = api.get("/v1/images", project=project, admin=False).json()["images"]
        return [i["name"] for i in listed]

    assert names(ALPHA) == ["alpha-private", "public"]
    assert names(BETA) == ["public"]
    for method, path in [("GET", ""), ("GET", "/file"), ("DELETE", ""), ("GET", "/chunks")]:
        response = api.request(method, f"/v1/images/{private['id']}{path}", project=BETA,
                               admin=False)
        assert_error(response, 404, private["id"])
    assert_error(api.put(f"/v1/images/{private['id']}/file", data=b"x", project=BETA,
                         admin=False), 404)

    # Visible but not BETA's: changing it is 403, not 404.
    assert_error(api.delete(f"/v1/images/{public['id']}", project=BETA, admin=False), 403)
    assert_error(api.patch(f"/v1/images/{public['id']}", json={"name": "mine"},
                           project=BETA, admin=False), 403)
    assert_error(api.put(f"/v1/images/{public['id']}/file", data=b"x", project=BETA,
                         admin=False), 403)
    assert api.get(f"/v1/images/{public['id']}").json()["status"] == "queued"

    # The owner and another project's admin may.
    renamed = api.patch(f"/v1/images/{public['id']}", json={"name": "renamed"},
                        project=ALPHA, admin=False)
    assert renamed.status_code == 200, renamed.text
    assert api.delete(f"/v1/images/{private['id']}", project=BETA,
                      admin=True).status_code == 204


def test_projects_cannot_publish_or_give_images_away(api: Api) -> None:
    assert_error(api.post("/v1/images", project=ALPHA, admin=False, json={
        "name": "x", "disk_format": "raw", "owner": BETA}), 400, field="owner")
    assert_error(api.post("/v1/images", project=ALPHA, admin=False, json={
        "name": "x", "disk_format": "raw", "visibility": "public"}), 403)
    mine = api.create(project=ALPHA, admin=False)
    assert_error(api.patch(f"/v1/images/{mine['id']}", project=ALPHA, admin=False,
                           json={"visibility": "public"}), 403)
    published = api.patch(f"/v1/images/{mine['id']}", project=ALPHA, admin=True,
                          json={"visibility": "public"})
    assert published.json()["visibility"] == "public"


# -- whole-image upload and download ----------------------------------------------------


def test_upload_then_download(api: Api) -> None:
    data = image_bytes(3 * MIB + 7, holes=[(MIB, MIB)])
    image = api.create(disk_format="qcow2")
    record = api.upload(image["id"], data)
    assert record["status"] == "active"
    assert record["size"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["checksum"] == hashlib.md5(data).hexdigest()

    response = api.get(f"/v1/images/{image['id']}/file")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["X-Image-Sha256"] == record["sha256"]
    assert response.headers["X-Image-Md5"] == record["checksum"]
    assert response.content == data


def test_head_of_the_file_sends_the_headers_only(api: Api) -> None:
    data = image_bytes(300 * KIB, seed=10)
    image = api.create()
    record = api.upload(image["id"], data)
    response = api.request("HEAD", f"/v1/images/{image['id']}/file")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(data))
    assert response.headers["X-Image-Sha256"] == record["sha256"]
    assert response.content == b""
    assert api.get(f"/v1/images/{image['id']}/file").content == data


def test_upload_to_an_active_image_is_409(api: Api) -> None:
    image = api.create()
    api.upload(image["id"], b"first")
    assert_error(api.put(f"/v1/images/{image['id']}/file", data=b"second"), 409, "active")
    assert api.get(f"/v1/images/{image['id']}/file").content == b"first"


def test_download_of_a_queued_image_is_409(api: Api) -> None:
    image = api.create()
    assert_error(api.get(f"/v1/images/{image['id']}/file"), 409, "queued")
    assert_error(api.get(f"/v1/images/{image['id']}/chunks"), 409)


def _wait_for_status(api: Api, image_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        record = api.get(f"/v1/images/{image_id}").json()
        if record["status"] == status or time.monotonic() > deadline:
            return record  # type: ignore[no-any-return]
        time.sleep(0.01)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_vanishing_mid_upload_kills_the_image(
    api: Api, server: ThreadedServer, framing: str
) -> None:
    image = api.create()
    half = image_bytes(MIB + 123, seed=1)
    if framing == "chunked":
        length_header = "Transfer-Encoding: chunked"
        body = f"{4 * MIB:x}\r\n".encode() + half
    else:
        length_header = f"Content-Length: {4 * MIB}"
        body = half
    head = (f"PUT /v1/images/{image['id']}/file HTTP/1.1\r\nHost: x\r\n"
            f"X-Service-Token: {TOKEN}\r\n{length_header}\r\n\r\n")
    with raw_http(server.host, server.port, head, body):
        pass  # closes half-way

    assert _wait_for_status(api, image["id"], "killed")["status"] == "killed"
    assert_error(api.put(f"/v1/images/{image['id']}/file", data=b"again"), 409)
    again = api.create()
    data = image_bytes(MIB + 123, seed=1)
    assert api.upload(again["id"], data)["sha256"] == hashlib.sha256(data).hexdigest()
    assert api.delete(f"/v1/images/{image['id']}").status_code == 204


def test_malformed_chunked_upload_is_400_and_kills(api: Api, server: ThreadedServer) -> None:
    image = api.create()
    head = (f"PUT /v1/images/{image['id']}/file HTTP/1.1\r\nHost: x\r\n"
            f"X-Service-Token: {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n")
    with raw_http(server.host, server.port, head, b"zz\r\nnot hex\r\n0\r\n\r\n") as sock:
        received = b""
        while piece := sock.recv(65536):  # until the server closes the connection
            received += piece
    answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 400"), answer
    assert "interrupted" in answer
    assert api.get(f"/v1/images/{image['id']}").json()["status"] == "killed"


# -- ranges -----------------------------------------------------------------------------


@pytest.fixture
def ranged(api: Api) -> tuple[str, bytes, dict[str, Any]]:
    """An active image of several chunks with a hole: (id, bytes, manifest)."""
    data = image_bytes(2 * MIB + 333, holes=[(600 * KIB, 900 * KIB)], seed=2)
    image = api.create()
    api.upload(image["id"], data)
    manifest = api.get(f"/v1/images/{image['id']}/chunks").json()
    return image["id"], data, manifest


def _range(api: Api, image_id: str, spec: str) -> requests.Response:
    return api.get(f"/v1/images/{image_id}/file", headers={"Range": spec})


def test_manifest_covers_the_image(ranged: tuple[str, bytes, dict[str, Any]]) -> None:
    _, data, manifest = ranged
    assert manifest["size"] == len(data)
    offset = 0
    for entry_offset, length, entry_address in manifest["chunks"]:
        assert entry_offset == offset
        piece = data[offset:offset + length]
        if entry_address is None:
            assert piece == bytes(length)
        else:
            assert address(piece) == entry_address
        offset += length
    assert offset == len(data)
    assert any(e[2] is None for e in manifest["chunks"])


def test_ranges(api: Api, ranged: tuple[str, bytes, dict[str, Any]]) -> None:
    image_id, data, manifest = ranged
    size = len(data)
    boundary = data_entries(manifest)[1][0]
    hole = next(e for e in manifest["chunks"] if e[2] is None)
    cases = {
        "bytes=0-0": (0, 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size),
        f"bytes={boundary - 100}-{boundary + 99}": (boundary - 100, boundary + 100),
        f"bytes={hole[0] + 10}-{hole[0] + 20}": (hole[0] + 10, hole[0] + 21),
        f"bytes={hole[0] - 5}-{hole[0] + hole[1] + 5}": (hole[0] - 5, hole[0] + hole[1] + 6),
        "bytes=1000-": (1000, size),
        "bytes=-100": (size - 100, size),
        f"bytes=-{size + 50}": (0, size),
        f"bytes=10-{size + 1000}": (10, size),
    }
    for spec, (start, end) in cases.items():
        response = _range(api, image_id, spec)
        assert response.status_code == 206, (spec, response.text)
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", spec
        assert response.headers["Content-Length"] == str(end - start), spec
        assert response.content == data[start:end], spec


@pytest.mark.parametrize("spec", ["bytes={size}-", "bytes={size}-{size2}", "bytes=-0",
                                  "bytes=10-5", "bytes=abc", "bytes=", "items=0-1",
                                  "bytes=0-1,5-6"])
def test_bad_or_unsatisfiable_range_is_416(
    api: Api, ranged: tuple[str, bytes, dict[str, Any]], spec: str
) -> None:
    image_id, data, _ = ranged
    spec = spec.format(size=len(data), size2=len(data) + 10)
    response = _range(api, image_id, spec)
    assert_error(response, 416, field="Range")
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


def test_any_range_of_an_empty_image_is_416(api: Api) -> None:
    image = api.create()
    api.upload(image["id"], b"")
    assert api.get(f"/v1/images/{image['id']}/file").content == b""
    response = _range(api, image["id"], "bytes=0-")
    assert_error(response, 416)
    assert response.headers["Content-Range"] == "bytes */0"


def test_client_going_away_mid_download_closes_the_reader(
    api: Api, server: ThreadedServer, caplog: pytest.LogCaptureFixture
) -> None:
    size = 64 * MIB  # mostly a hole: more than the socket buffers hold, cheap to make
    image = api.create()
    api.upload(image["id"], image_bytes(MIB, seed=3) + bytes(size - MIB))
    caplog.set_level(logging.INFO, logger="image_store.http_streams")
    head = (f"GET /v1/images/{image['id']}/file HTTP/1.1\r\nHost: x\r\n"
            f"X-Service-Token: {TOKEN}\r\n\r\n")
    with raw_http(server.host, server.port, head) as sock:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")

    deadline = time.monotonic() + 10
    while not any("stopped after" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the server never noticed the client left"
        time.sleep(0.02)
    # The store is fine afterwards.
    assert len(api.get(f"/v1/images/{image['id']}/file").content) == size


# -- corruption -------------------------------------------------------------------------


def test_corrupt_chunk_before_the_first_byte_is_500_naming_it(
    api: Api, ranged: tuple[str, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    image_id, _, manifest = ranged
    offset, _, bad = data_entries(manifest)[1]
    flip_byte(chunk_file(tmp_path, bad))

    error = assert_error(_range(api, image_id, f"bytes={offset}-"), 500, image_id, bad,
                         "corrupt")
    assert error["address"] == bad
    assert error["image_id"] == image_id
    assert error["offset"] == offset
    record = api.get(f"/v1/images/{image_id}").json()
    assert bad in str(record["corrupt_chunks"])

    error = assert_error(api.get(f"/v1/chunks/{bad}"), 500, bad)
    assert error["address"] == bad


def test_corrupt_chunk_mid_stream_cuts_the_connection(
    api: Api, ranged: tuple[str, bytes, dict[str, Any]], tmp_path: Path
) -> None:
    image_id, data, manifest = ranged
    _, _, bad = data_entries(manifest)[-1]
    flip_byte(chunk_file(tmp_path, bad))

    response = api.get(f"/v1/images/{image_id}/file", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(data))
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for piece in response.iter_content(64 * KIB):
            received += piece
    assert 0 < len(received) < len(data)
    assert data.startswith(bytes(received))
    record = api.get(f"/v1/images/{image_id}").json()
    assert bad in str(record["corrupt_chunks"])


# -- the dedup upload protocol ----------------------------------------------------------


def test_dedup_protocol_by_hand(api: Api) -> None:
    first, second = b"a" * 5000, image_bytes(7000, seed=4)
    a1, a2 = address(first), address(second)
    image = api.create()
    path = f"/v1/images/{image['id']}"

    missing = api.post(f"{path}/chunks/missing", json={"addresses": [a1, a2, a1]})
    assert missing.status_code == 200, missing.text
    assert sorted(missing.json()["missing"]) == sorted([a1, a2])
    assert api.get(path).json()["status"] == "saving"
    for data in (first, second):
        response = api.put(f"{path}/chunks/{address(data)}", data=encode(data),
                           headers={"Content-Type": "application/x-ironbark-chunk"})
        assert response.status_code == 204, response.text
    chunks = [[0, 5000, a1], [5000, 4096, None], [9096, 7000, a2]]
    committed = api.post(f"{path}/manifest", json={"size": 16096, "chunks": chunks})
    assert committed.status_code == 200, committed.text
    whole = first + bytes(4096) + second
    assert committed.json()["status"] == "active"
    assert committed.json()["sha256"] == hashlib.sha256(whole).hexdigest()
    assert api.get(f"{path}/file").content == whole
    assert api.get(f"{path}/chunks").json() == {"size": 16096, "chunks": chunks}

    # A second image holding the same chunk needs nothing sent.
    other = api.create()
    assert api.post(f"/v1/images/{other['id']}/chunks/missing",
                    json={"addresses": [a2]}).json() == {"missing": []}

    fetched = api.get(f"/v1/chunks/{a2}")
    assert fetched.headers["Content-Type"] == "application/x-ironbark-chunk"
    assert fetched.headers["X-Chunk-Length"] == "7000"
    assert decode(fetched.content, a2, 7000) == second


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "addresses"),
        ({"addresses": "x"}, "addresses"),
        ({"addresses": ["ABC"]}, "addresses"),
        ({"addresses": [1]}, "addresses"),
        ({"addresses": [], "more": 1}, "more"),
    ],
)
def test_bad_missing_request_is_400(api: Api, body: dict, field: str) -> None:
    image = api.create()
    assert_error(api.post(f"/v1/images/{image['id']}/chunks/missing", json=body), 400,
                 field=field)
    assert api.get(f"/v1/images/{image['id']}").json()["status"] == "queued"


def test_bad_chunk_upload_is_400(api: Api) -> None:
    image = api.create()
    path = f"/v1/images/{image['id']}"
    data = image_bytes(3000, seed=5)
    api.post(f"{path}/chunks/missing", json={"addresses": [address(data)]})

    assert_error(api.put(f"{path}/chunks/not-an-address", data=encode(data)), 400,
                 field="address")
    assert_error(api.put(f"{path}/chunks/{address(b'other')}", data=encode(data)), 400)
    assert_error(api.put(f"{path}/chunks/{address(data)}", data=b"\x07garbage"), 400)
    assert_error(api.put(f"{path}/chunks/{address(data)}", data=b""), 400)
    too_big = api.get("/v1/info").json()["chunking"]["max"] + 2
    assert_error(api.put(f"{path}/chunks/{address(data)}", data=bytes(too_big)), 400,
                 "at most")
    assert api.put(f"{path}/chunks/{address(data)}", data=encode(data)).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"size": 10}, "chunks"),
        ({"chunks": []}, "size"),
        ({"size": "10", "chunks": []}, "size"),
        ({"size": 10, "chunks": {}}, "chunks"),
        ({"size": 10, "chunks": [[0, 10]]}, "chunks"),
        ({"size": 10, "chunks": [[0, "10", None]]}, "chunks"),
        ({"size": 10, "chunks": [[0, 10, "zz"]]}, "chunks"),
        ({"size": 10, "chunks": [], "name": "x"}, "name"),
    ],
)
def test_malformed_manifest_is_400(api: Api, body: dict, field: str) -> None:
    image = api.create()
    path = f"/v1/images/{image['id']}"
    api.post(f"{path}/chunks/missing", json={"addresses": []})
    assert_error(api.post(f"{path}/manifest", json=body), 400, field=field)
    assert api.get(path).json()["status"] == "saving"


def test_manifest_with_a_gap_or_an_absent_chunk_is_refused(api: Api) -> None:
    data = image_bytes(4000, seed=6)
    image = api.create()
    path = f"/v1/images/{image['id']}"
    api.post(f"{path}/chunks/missing", json={"addresses": [address(data)]})

    gap = api.post(f"{path}/manifest", json={"size": 5000, "chunks": [[0, 4000, None]]})
    assert_error(gap, 400)
    absent = api.post(f"{path}/manifest", json={"size": 4000,
                                                "chunks": [[0, 4000, address(data)]]})
    assert absent.status_code in (400, 409), absent.text
    assert api.get(path).json()["status"] == "saving"


def test_chunks_are_for_the_service_only(api: Api) -> None:
    image = api.create()
    api.upload(image["id"], image_bytes(5000, seed=7))
    (entry,) = data_entries(api.get(f"/v1/images/{image['id']}/chunks").json())
    assert_error(api.get(f"/v1/chunks/{entry[2]}", project=ALPHA, admin=True), 403)
    assert_error(api.get(f"/v1/chunks/{address(b'nobody has this')}"), 404)
    assert_error(api.get("/v1/chunks/XYZ"), 400, field="address")
    assert api.get(f"/v1/chunks/{entry[2]}").status_code == 200


# -- operations -------------------------------------------------------------------------


def test_stats(api: Api) -> None:
    data = image_bytes(MIB, holes=[(0, 256 * KIB)], seed=8)
    for _ in range(2):  # the same bytes twice: stored once
        api.upload(api.create()["id"], data)
    stats = api.get("/v1/stats").json()
    assert set(stats) == {"images", "active_images", "logical_bytes", "stored_bytes",
                          "zero_bytes", "chunk_count", "dedup_ratio"}
    assert (stats["images"], stats["active_images"]) == (2, 2)
    assert stats["logical_bytes"] == 2 * MIB
    assert stats["zero_bytes"] >= 2 * 200 * KIB
    assert stats["stored_bytes"] < MIB
    assert stats["dedup_ratio"] > 1.9
    assert api.get("/v1/stats", project=ALPHA, admin=True).json() == stats
    assert_error(api.get("/v1/stats", project=ALPHA, admin=False), 403)


def test_scrub(api: Api, tmp_path: Path) -> None:
    data = image_bytes(MIB, seed=9)
    image = api.create()
    api.upload(image["id"], data)
    clean = api.post("/v1/scrub").json()
    assert set(clean) == {"checked", "bytes", "corrupt", "missing", "orphans_removed"}
    assert clean["corrupt"] == [] and clean["missing"] == []
    assert clean["checked"] == len(data_entries(api.get(f"/v1/images/{image['id']}/chunks")
                                                .json()))

    bad = data_entries(api.get(f"/v1/images/{image['id']}/chunks").json())[0][2]
    flip_byte(chunk_file(tmp_path, bad))
    result = api.post("/v1/scrub", project=ALPHA, admin=True, json={}).json()
    assert [c["address"] for c in result["corrupt"]] == [bad]
    assert result["corrupt"][0]["images"] == [image["id"]]

    assert_error(api.post("/v1/scrub", project=ALPHA, admin=False), 403)
    assert_error(api.post("/v1/scrub", json={"deep": True}), 400)
