"""Image v2 over the image store: create queued, upload, download, hashes, list filters
and pagination, JSON-patch, visibility, delete."""

from __future__ import annotations

import hashlib

from tests.helpers import Api

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}


def _image(api: Api, name: str, data: bytes | None = None, **extra: object) -> dict:
    r = api.post("/image/v2/images", {"name": name, "disk_format": "raw",
                                      "container_format": "bare", **extra})
    assert r.status == 201 and r.body["status"] == "queued", r
    if data is not None:
        assert api.raw("PUT", f"/image/v2/images/{r.body['id']}/file", data=data, headers={
            "Content-Type": "application/octet-stream"}).status == 204
    return api.get(f"/image/v2/images/{r.body['id']}").body


def test_upload_download_and_hashes(os_alpha: Api) -> None:
    data = bytes(range(256)) * 4096 + b"tail"
    image = _image(os_alpha, "bytes", data, architecture="x86_64")
    assert image["status"] == "active" and image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()  # Glance: MD5
    assert (image["os_hash_algo"], image["os_hash_value"]) == (
        "sha256", hashlib.sha256(data).hexdigest())
    assert image["architecture"] == "x86_64" and image["container_format"] == "bare"
    down = os_alpha.raw("GET", f"/image/v2/images/{image['id']}/file")
    assert down.status == 200 and down.body == data
    assert down.headers["Content-MD5"] == image["checksum"]
    empty = _image(os_alpha, "empty")
    assert os_alpha.raw("GET", f"/image/v2/images/{empty['id']}/file").status == 204


def test_list_filters_pagination_patch_and_delete(os_alpha: Api, os_admin: Api,
                                                  os_beta: Api) -> None:
    made = [_image(os_alpha, f"img-{i}", b"x" * (i + 1)) for i in range(3)]
    mine = os_alpha.get("/image/v2/images", visibility="private").body["images"]
    assert {i["name"] for i in mine} == {"img-0", "img-1", "img-2"}
    page = os_alpha.get("/image/v2/images", limit=2, visibility="private",
                        sort_key="name", sort_dir="asc").body
    assert [i["name"] for i in page["images"]] == ["img-0", "img-1"]
    rest = os_alpha.get(page["next"].replace("/v2/", "/image/v2/", 1)).body
    assert [i["name"] for i in rest["images"]] == ["img-2"] and "next" not in rest
    assert [i["name"] for i in os_alpha.get("/image/v2/images", name="img-1")
            .body["images"]] == ["img-1"]
    both = os_alpha.get("/image/v2/images", id=f"in:{made[0]['id']},{made[2]['id']}")
    assert {i["name"] for i in both.body["images"]} == {"img-0", "img-2"}
    assert {i["name"] for i in os_alpha.get("/image/v2/images", name="in:img-0,img-1")
            .body["images"]} == {"img-0", "img-1"}

    target = made[0]["id"]
    r = os_alpha.raw("PATCH", f"/image/v2/images/{target}", headers=PATCH, json=[
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/os_distro", "value": "debian"},
        {"op": "replace", "path": "/min_ram", "value": 128}])
    assert r.status == 200, r
    assert (r.body["name"], r.body["os_distro"], r.body["min_ram"]) == ("renamed", "debian", 128)
    r = os_alpha.raw("PATCH", f"/image/v2/images/{target}", headers=PATCH, json=[
        {"op": "remove", "path": "/os_distro"}])
    assert "os_distro" not in r.body
    assert os_alpha.raw("PATCH", f"/image/v2/images/{target}", json=[], headers={
        "Content-Type": "application/json"}).status == 415

    assert os_beta.get(f"/image/v2/images/{target}").status == 404
    public = os_admin.raw("PATCH", f"/image/v2/images/{target}", headers=PATCH, json=[
        {"op": "replace", "path": "/visibility", "value": "public"}])
    assert public.status == 200 and public.body["visibility"] == "public"
    assert os_beta.get(f"/image/v2/images/{target}").status == 200
    assert os_beta.delete(f"/image/v2/images/{target}").status in (403, 404)
    assert os_alpha.delete(f"/image/v2/images/{target}").status == 204
    assert os_alpha.get(f"/image/v2/images/{target}").status == 404
