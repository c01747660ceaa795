"""The HTTP API through Flask's test client, on a real store."""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from image_store.store import ImageStore

from .conftest import MIB, TOKEN, blob_files, payload, temp_files


def assert_error(response: TestResponse, code: int, *words: str) -> dict[str, Any]:
    assert response.status_code == code, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["title"]
    for word in words:
        assert word in error["message"]
    return error


def create(http: FlaskClient, **body: Any) -> dict[str, Any]:
    response = http.post("/v1/images", json={"name": "cirros", "disk_format": "qcow2", **body})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def put_file(http: FlaskClient, image_id: str, data: bytes) -> TestResponse:
    return http.put(f"/v1/images/{image_id}/file", data=data,
                    content_type="application/octet-stream")


@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, 3 * MIB + 7])
def test_upload_and_download_round_trip(http: FlaskClient, size: int) -> None:
    data = payload(size)
    image = create(http, owner="demo", properties={"os_distro": "cirros"})
    assert image["status"] == "queued"

    uploaded = put_file(http, image["id"], data)
    assert uploaded.status_code == 200
    record = uploaded.get_json()
    assert record["status"] == "active"
    assert record["size"] == size
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["md5"] == hashlib.md5(data).hexdigest()

    downloaded = http.get(f"/v1/images/{image['id']}/file")
    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Length"] == str(size)
    assert downloaded.headers["X-Image-Sha256"] == record["sha256"]
    assert downloaded.get_data() == data


def test_create_show_list_delete(http: FlaskClient) -> None:
    wanted = str(uuid.uuid4())
    image = create(http, id=wanted, visibility="public", owner="demo")
    assert image["id"] == wanted
    assert image["visibility"] == "public"
    assert image["created_at"].endswith("Z")

    assert http.get(f"/v1/images/{wanted}").get_json() == image
    assert http.get("/v1/images").get_json() == {"images": [image]}

    deleted = http.delete(f"/v1/images/{wanted}")
    assert deleted.status_code == 204
    assert deleted.get_data() == b""
    assert_error(http.get(f"/v1/images/{wanted}"), 404, wanted)
    assert http.get("/v1/images").get_json() == {"images": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "cirros", "disk_format": "vmdk"}, "disk_format"),
        ({"name": "", "disk_format": "raw"}, "name"),
        ({"name": "cirros", "disk_format": "raw", "visibility": "shared"}, "visibility"),
        ({"name": "cirros", "disk_format": "raw", "id": "nope"}, "id"),
        ({"name": "cirros", "disk_format": "raw", "id": 7}, "id"),
        ({"name": "cirros", "disk_format": "raw", "properties": {"a": 1}}, "properties"),
        ({"name": "cirros", "disk_format": "raw", "size": 10}, "size"),
        ({"disk_format": "raw"}, "name"),
        ({"name": "cirros"}, "disk_format"),
    ],
)
def test_bad_input_is_400_naming_the_field(http: FlaskClient, body: dict, field: str) -> None:
    assert_error(http.post("/v1/images", json=body), 400, field)
    assert http.get("/v1/images").get_json() == {"images": []}


def test_body_must_be_a_json_object(http: FlaskClient) -> None:
    assert_error(http.post("/v1/images", data=b"not json"), 400, "JSON object")
    assert_error(http.post("/v1/images", json=["name"]), 400, "JSON object")


def test_taken_id_is_409(http: FlaskClient) -> None:
    image = create(http)
    assert_error(http.post("/v1/images", json={"name": "x", "disk_format": "raw",
                                               "id": image["id"]}), 409, image["id"])


def test_upload_to_an_active_image_is_409(http: FlaskClient) -> None:
    image = create(http)
    assert put_file(http, image["id"], b"first").status_code == 200
    assert_error(put_file(http, image["id"], b"second"), 409, "active")
    assert http.get(f"/v1/images/{image['id']}/file").get_data() == b"first"


def test_download_of_a_queued_image_is_409(http: FlaskClient) -> None:
    image = create(http)
    assert_error(http.get(f"/v1/images/{image['id']}/file"), 409, "queued")


def test_unknown_image_is_404(http: FlaskClient) -> None:
    missing = str(uuid.uuid4())
    assert_error(http.get(f"/v1/images/{missing}"), 404, missing)
    assert_error(http.get(f"/v1/images/{missing}/file"), 404, missing)
    assert_error(put_file(http, missing, b"x"), 404, missing)
    assert_error(http.delete(f"/v1/images/{missing}"), 404, missing)


def test_unknown_route_and_method_are_json(http: FlaskClient) -> None:
    assert_error(http.get("/v2/nothing"), 404)
    assert_error(http.get("/"), 404)
    response = http.patch("/v1/images")
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("headers", [{}, {"X-Service-Token": "wrong"},
                                     {"X-Service-Token": ""}])
@pytest.mark.parametrize("path", ["/v1/images", "/nowhere"])
def test_missing_or_wrong_token_is_401(app: Flask, headers: dict, path: str) -> None:
    anonymous = app.test_client()
    assert_error(anonymous.get(path, headers=headers), 401, "X-Service-Token")
    assert_error(anonymous.post("/v1/images", headers=headers,
                                json={"name": "x", "disk_format": "raw"}), 401)


def test_request_id_is_echoed(http: FlaskClient) -> None:
    response = http.get("/v1/images", headers={"X-Openstack-Request-Id": "req-abc"})
    assert response.headers["X-Openstack-Request-Id"] == "req-abc"
    assert http.get("/v1/images").headers["X-Openstack-Request-Id"].startswith("req-")


def test_corrupt_blob_is_500_naming_the_image(http: FlaskClient, store: ImageStore) -> None:
    image = create(http)
    record = put_file(http, image["id"], payload(10_000)).get_json()
    (blob,) = blob_files(store)
    damaged = bytearray(blob.read_bytes())
    damaged[5000] ^= 0xFF
    blob.write_bytes(bytes(damaged))

    error = assert_error(http.get(f"/v1/images/{image['id']}/file"), 500, image["id"])
    assert "corrupt" in error["message"]
    assert record["sha256"] in error["message"]


class BrokenBody(io.BytesIO):
    """A 4 MiB request body that fails after its first megabyte, like a dropped connection."""

    def __init__(self) -> None:
        super().__init__(bytes(4 * MIB))

    def _check(self) -> None:
        if self.tell() >= MIB:
            raise ConnectionResetError("connection reset by peer")

    def read(self, size: int | None = -1) -> bytes:
        self._check()
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        self._check()
        return super().readinto(buffer)


def test_upload_failing_midway_kills_the_image(http: FlaskClient, store: ImageStore) -> None:
    image = create(http)
    response = http.put(f"/v1/images/{image['id']}/file", input_stream=BrokenBody())
    assert_error(response, 400, image["id"], "interrupted")
    assert http.get(f"/v1/images/{image['id']}").get_json()["status"] == "killed"
    assert temp_files(store) == []
    assert blob_files(store) == []


def test_token_is_compared_whole(app: Flask) -> None:
    prefix = app.test_client()
    response = prefix.get("/v1/images", headers={"X-Service-Token": TOKEN[:-1]})
    assert_error(response, 401)
