"""Images through the native API: the Cloud Manager proxies the image store, which owns
the records and enforces tenancy. Bytes go up and down for real (streamed), servers
boot from what was uploaded, and a chunk damaged on disk is named wherever it shows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import sqlalchemy

from ironbark.allinone import AllInOne
from tests.helpers import Api, Response

MIB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------------


def put(api: Api, path: str, data: Any, **headers: str) -> Response:
    return Response(api.session.put(api.url + path, data=data, headers=headers, timeout=60))


def patch(api: Api, path: str, body: Any) -> Response:
    return Response(api.session.patch(api.url + path, json=body, timeout=30))


def pieces(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    """The body as a generator: requests sends it chunked (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def create(api: Api, name: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/v1/images", {"name": name, "disk_format": "raw", **extra})
    assert r.status == 201, r
    return r.body["image"]


def upload(api: Api, image_id: str, data: bytes) -> dict[str, Any]:
    r = put(api, f"/v1/images/{image_id}/file", data)
    assert r.status == 200, r
    return r.body["image"]


def image_with(api: Api, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return upload(api, create(api, name, **extra)["id"], data)


def download(api: Api, ref: str, **headers: str) -> requests.Response:
    return api.session.get(f"{api.url}/v1/images/{ref}/file", headers=headers, timeout=60)


def error(r: Response, status: int, field: str | None = None) -> str:
    """The error message of ``r``, after checking its status (and field)."""
    assert r.status == status, r
    if field is not None:
        assert r.body["error"]["field"] == field, r
    return str(r.body["error"]["message"])


def names(api: Api) -> set[str]:
    return {i["name"] for i in api.get("/v1/images").body["images"]}


def chunk_file(cloud: AllInOne, address: str) -> Path:
    data_dir = cloud.config.image_store.data_dir
    assert data_dir is not None
    (found,) = [p for p in Path(data_dir).rglob(address) if p.is_file()]
    return found


def flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


# --- bytes up and down -----------------------------------------------------------------------


def test_create_upload_download_round_trip(alpha: Api) -> None:
    data = os.urandom(3 * MIB + 12345) + bytes(MIB)  # random bytes, then a hole
    created = create(alpha, "rt", properties={"os": "linux"}, min_ram=64)
    assert created["status"] == "queued" and created["size"] is None
    assert created["visibility"] == "private" and created["properties"] == {"os": "linux"}
    assert created["owner"] is not None and created["min_ram"] == 64
    assert "chunk_count" not in created and "stored_size" not in created

    uploaded = upload(alpha, created["id"], pieces(data))  # streamed, chunked
    assert uploaded["status"] == "active" and uploaded["size"] == len(data)
    assert uploaded["sha256"] == hashlib.sha256(data).hexdigest()
    assert uploaded["checksum"] == hashlib.md5(data).hexdigest()

    got = download(alpha, "rt")  # by name
    assert got.status_code == 200, got.text
    assert got.content == data
    assert got.headers["Content-Length"] == str(len(data))
    assert got.headers["Accept-Ranges"] == "bytes"
    assert got.headers["X-Image-Sha256"] == uploaded["sha256"]
    assert got.headers["X-Image-Md5"] == uploaded["checksum"]

    # With a Content-Length, too.
    small = os.urandom(100_000)
    second = image_with(alpha, "rt2", small)
    assert download(alpha, second["id"]).content == small


def test_ranges_206_and_416(alpha: Api) -> None:
    data = os.urandom(MIB)
    image = image_with(alpha, "ranged", data)
    part = download(alpha, image["id"], Range="bytes=1000-1999")
    assert part.status_code == 206, part.text
    assert part.content == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert part.headers["Content-Length"] == "1000"

    tail = download(alpha, image["id"], Range=f"bytes={len(data) - 10}-")
    assert tail.status_code == 206 and tail.content == data[-10:]

    beyond = download(alpha, image["id"], Range=f"bytes={len(data)}-{len(data) + 5}")
    assert beyond.status_code == 416, beyond.text
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    assert beyond.json()["error"]["code"] == 416


def test_status_rules_409(alpha: Api) -> None:
    image = image_with(alpha, "once", os.urandom(5000))
    again = put(alpha, f"/v1/images/{image['id']}/file", b"more bytes")
    assert "active" in error(again, 409)
    queued = create(alpha, "empty")
    assert error(Response(download(alpha, queued["id"])), 409)


# --- bad input --------------------------------------------------------------------------------


BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"name": "x", "disk_format": "vhd"}, "disk_format"),
    ({"name": "x"}, "disk_format"),
    ({"disk_format": "raw"}, "name"),
    ({"name": "", "disk_format": "raw"}, "name"),
    ({"name": "x", "disk_format": "raw", "visibility": "shared"}, "visibility"),
    ({"name": "x", "disk_format": "raw", "min_disk": -1}, "min_disk"),
    ({"name": "x", "disk_format": "raw", "min_ram": "64"}, "min_ram"),
    ({"name": "x", "disk_format": "raw", "properties": {"k": 1}}, "properties.k"),
    ({"name": "x", "disk_format": "raw", "kernel_id": "no-such-kernel"}, "kernel_id"),
    ({"name": "x", "disk_format": "raw", "owner": "someone"}, "owner"),
    ({"name": "x", "disk_format": "raw", "colour": "blue"}, "colour"),
]


def test_bad_input_names_the_field_and_creates_nothing(alpha: Api) -> None:
    before = alpha.get("/v1/images").body["images"]
    for body, field in BAD_CREATES:
        message = error(alpha.post("/v1/images", body), 400, field)
        assert field.split(".")[0] in message, (body, message)
    assert alpha.get("/v1/images").body["images"] == before

    image = create(alpha, "patched")
    for body, field in [({"name": None}, "name"), ({"min_ram": -5}, "min_ram"),
                        ({"visibility": "everyone"}, "visibility"), ({"size": 5}, "size"),
                        ({"kernel_id": "nope"}, "kernel_id")]:
        error(patch(alpha, f"/v1/images/{image['id']}", body), 400, field)
    assert error(patch(alpha, f"/v1/images/{image['id']}", {}), 400)
    assert alpha.get(f"/v1/images/{image['id']}").body["image"] == image
    assert error(alpha.get("/v1/images", status="done"), 400, "status")
    assert error(alpha.get("/v1/images", colour="blue"), 400, "colour")


def test_unknown_image_is_404(alpha: Api) -> None:
    missing = "0b5f9a2e-1c3d-4e5f-8a9b-0c1d2e3f4a5b"
    for r in (alpha.get(f"/v1/images/{missing}"), alpha.get("/v1/images/no-such-image"),
              alpha.delete(f"/v1/images/{missing}"),
              patch(alpha, f"/v1/images/{missing}", {"name": "y"}),
              put(alpha, f"/v1/images/{missing}/file", b"data"),
              Response(download(alpha, missing))):
        error(r, 404)


def test_update_and_delete(alpha: Api) -> None:
    kernel = image_with(alpha, "vmlinuz", os.urandom(2000))
    image = create(alpha, "app", properties={"a": "1", "b": "2"})
    r = patch(alpha, f"/v1/images/{image['id']}",
              {"name": "app-v2", "properties": {"a": None, "c": "3"}, "min_disk": 2,
               "kernel_id": "vmlinuz"})
    assert r.status == 200, r
    changed = r.body["image"]
    assert changed["name"] == "app-v2" and changed["properties"] == {"b": "2", "c": "3"}
    assert changed["min_disk"] == 2 and changed["kernel_id"] == kernel["id"]
    assert alpha.get("/v1/images", name="app-v2").body["images"] == [changed]
    cleared = patch(alpha, "/v1/images/app-v2", {"kernel_id": None})
    assert cleared.status == 200 and cleared.body["image"]["kernel_id"] is None, cleared

    twin = create(alpha, "vmlinuz")
    assert "use the image's id" in error(alpha.get("/v1/images/vmlinuz"), 409)
    assert alpha.delete(f"/v1/images/{twin['id']}").status == 204
    assert alpha.delete("/v1/images/app-v2").status == 204
    error(alpha.get(f"/v1/images/{image['id']}"), 404)
    assert "app-v2" not in names(alpha)


# --- tenancy ----------------------------------------------------------------------------------


def test_tenancy(admin: Api, alpha: Api, beta: Api) -> None:
    private = image_with(alpha, "alpha-only", os.urandom(4000))
    assert "alpha-only" not in names(beta)
    assert "alpha-only" in names(admin)  # the admin sees every project's images
    error(beta.get(f"/v1/images/{private['id']}"), 404)
    error(beta.get("/v1/images/alpha-only"), 404)
    error(Response(download(beta, private["id"])), 404)
    error(beta.delete(f"/v1/images/{private['id']}"), 404)
    error(patch(beta, f"/v1/images/{private['id']}", {"name": "mine"}), 404)
    booted = beta.post("/v1/servers", {"name": "vm", "flavor": "m1.tiny",
                                       "image": private["id"]})
    error(booted, 400, "image")

    # A public image someone else owns: visible, not changeable.
    assert "demo" in names(beta)
    error(beta.delete("/v1/images/demo"), 403)
    error(patch(beta, "/v1/images/demo", {"name": "stolen"}), 403)
    error(put(beta, "/v1/images/demo/file", b"x"), 403)

    # Publicising is for the admin.
    error(alpha.post("/v1/images", {"name": "pub", "disk_format": "raw",
                                    "visibility": "public"}), 403)
    error(patch(alpha, f"/v1/images/{private['id']}", {"visibility": "public"}), 403)
    assert "pub" not in names(admin)
    r = patch(admin, f"/v1/images/{private['id']}", {"visibility": "public"})
    assert r.status == 200 and r.body["image"]["visibility"] == "public", r
    assert "alpha-only" in names(beta)
    assert alpha.get("/v1/images", visibility="public").body["images"][-1]["id"] == private["id"]


def test_stats_are_for_the_admin(admin: Api, alpha: Api) -> None:
    data = os.urandom(300_000)
    image_with(alpha, "one", data)
    image_with(alpha, "same-bytes", data)  # deduplicated
    error(alpha.get("/v1/images/stats"), 403)
    r = admin.get("/v1/images/stats")
    assert r.status == 200, r
    stats = r.body["stats"]
    assert stats["images"] >= 3 and stats["active_images"] >= 3  # with demo
    assert stats["logical_bytes"] >= 2 * len(data)
    assert stats["stored_bytes"] < stats["logical_bytes"]
    assert stats["dedup_ratio"] > 1 and stats["chunk_count"] > 0


# --- booting ----------------------------------------------------------------------------------


def test_boot_from_uploaded_image_by_id_and_name(alpha: Api) -> None:
    image = image_with(alpha, "bootme", os.urandom(MIB))
    by_id = alpha.boot("by-id", image=image["id"])
    assert by_id["status"] == "ACTIVE", by_id
    assert by_id["image"] == {"id": image["id"], "name": "bootme"}

    newer = image_with(alpha, "bootme", os.urandom(MIB))  # same name: the newest wins
    create(alpha, "bootme")  # ...among the active ones
    by_name = alpha.boot("by-name", image="bootme")
    assert by_name["status"] == "ACTIVE", by_name
    assert by_name["image"]["id"] == newer["id"]


def test_boot_refuses_images_it_cannot_use(alpha: Api) -> None:
    queued = create(alpha, "not-yet")
    for ref in (queued["id"], "not-yet"):
        r = alpha.post("/v1/servers", {"name": "vm", "flavor": "m1.tiny", "image": ref})
        assert "queued" in error(r, 400, "image")
    big = image_with(alpha, "needs-ram", os.urandom(1000), min_ram=1_000_000)
    r = alpha.post("/v1/servers", {"name": "vm", "flavor": "m1.tiny", "image": big["id"]})
    assert "1000000" in error(r, 400, "flavor")
    assert alpha.get("/v1/servers").body["servers"] == []


# --- corruption -------------------------------------------------------------------------------


def test_a_corrupt_chunk_is_named_by_download_and_boot(cloud: AllInOne, alpha: Api) -> None:
    # Small enough to be one chunk: its address is the sha256 of the whole image.
    data = os.urandom(8192)
    image = image_with(alpha, "fragile", data)
    address = hashlib.sha256(data).hexdigest()
    flip_last_byte(chunk_file(cloud, address))

    message = error(Response(download(alpha, image["id"])), 500)
    assert image["id"] in message and address in message, message

    server = alpha.boot("doomed", image=image["id"])
    assert server["status"] == "ERROR", server
    assert address in server["fault"]["message"], server


def test_a_corrupt_chunk_mid_stream_cuts_the_download(cloud: AllInOne, alpha: Api) -> None:
    data = os.urandom(4 * MIB)
    image = image_with(alpha, "long", data)
    store_dir = Path(cloud.config.image_store.data_dir or "")
    # The last chunk holds the image's last bytes (stored raw: random data does not
    # compress, so the file is one codec byte and the bytes): find it by content.
    candidates = [p for p in store_dir.rglob("*") if p.is_file() and len(p.name) == 64
                  and p.stat().st_size > 1 and data.endswith(p.read_bytes()[1:])]
    assert len(candidates) == 1, candidates
    flip_last_byte(candidates[0])

    received = 0
    with alpha.session.get(f"{alpha.url}/v1/images/{image['id']}/file", stream=True,
                           timeout=60) as r:
        assert r.status_code == 200  # the first chunk is fine: the status line goes out
        try:
            for piece in r.iter_content(65536):
                received += len(piece)
        except requests.RequestException:
            pass
    assert received < len(data)
    shown = alpha.get(f"/v1/images/{image['id']}").body["image"]
    corrupt = [c if isinstance(c, str) else c["address"] for c in shown["corrupt_chunks"]]
    assert corrupt == [candidates[0].name], shown


# --- the Cloud Manager's schema ----------------------------------------------------------------


def test_the_images_table_is_dropped_and_comes_back_on_downgrade(tmp_path: Path) -> None:
    """The image store owns image records: migration c0002 drops the Cloud Manager's copy."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from cloud_manager.db import MIGRATIONS, VERSION_TABLE
    from ironbark.db import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'cloud.db'}")

    def migrate(step: Any, revision: str) -> set[str]:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["version_table"] = VERSION_TABLE
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)
        return set(sqlalchemy.inspect(engine).get_table_names())

    try:
        assert "images" not in migrate(command.upgrade, "head")
        assert "images" in migrate(command.downgrade, "c0001")
        assert [i["name"] for i in sqlalchemy.inspect(engine).get_indexes("images")] \
            == ["ix_images_name"]
        assert "images" not in migrate(command.upgrade, "head")
    finally:
        engine.dispose()
