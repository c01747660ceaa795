"""ImageStore on a real directory: records, content-addressed blobs, failure handling."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from image_store.store import (
    CorruptImage,
    ImageConflict,
    ImageNotFound,
    ImageStore,
    InvalidImage,
)

from .conftest import MIB, blob_files, payload, temp_files

SIZES = [0, 1, MIB - 1, MIB, 3 * MIB + 7]


def chunked(data: bytes, size: int = 300_001) -> Iterator[bytes]:
    """Odd-sized chunks, so nothing lines up with the store's own 1 MiB reads."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def new_image(store: ImageStore, name: str = "cirros") -> str:
    return store.create(name=name, disk_format="qcow2", owner="demo").id


def upload(store: ImageStore, data: bytes, name: str = "cirros") -> str:
    image_id = new_image(store, name)
    store.upload(image_id, chunked(data))
    return image_id


def read_all(store: ImageStore, image_id: str) -> bytes:
    return b"".join(store.open(image_id))


def blob_of(store: ImageStore, image_id: str) -> Path:
    sha = store.get(image_id).sha256
    assert sha is not None
    return store.data_dir / "blobs" / sha[:2] / sha


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_is_byte_identical_with_right_checksums(store: ImageStore, size: int) -> None:
    data = payload(size)
    image_id = new_image(store)

    record = store.upload(image_id, chunked(data))

    assert record.status == "active"
    assert record.size == size
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.md5 == hashlib.md5(data).hexdigest()
    assert store.get(image_id) == record
    assert read_all(store, image_id) == data
    assert blob_of(store, image_id).read_bytes() == data
    assert temp_files(store) == []


def test_create_records_a_queued_image_as_json(store: ImageStore) -> None:
    record = store.create(name="ubuntu", disk_format="raw", owner=None, visibility="public",
                          properties={"os_distro": "ubuntu"})

    assert record.status == "queued"
    assert uuid.UUID(record.id)
    assert (record.size, record.sha256, record.md5) == (None, None, None)
    on_disk = json.loads((store.data_dir / "records" / f"{record.id}.json").read_text())
    assert on_disk == record.to_dict()
    assert on_disk["properties"] == {"os_distro": "ubuntu"}
    assert on_disk["visibility"] == "public"
    assert on_disk["owner"] is None
    for key in ("created_at", "updated_at"):
        assert on_disk[key].endswith("Z")
        assert datetime.fromisoformat(on_disk[key]).tzinfo == UTC


def test_upload_passes_through_saving(store: ImageStore) -> None:
    image_id = new_image(store)
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        seen.append(store.get(image_id).status)
        yield b"x" * 10

    store.upload(image_id, chunks())
    assert seen == ["saving"]
    assert store.get(image_id).status == "active"


def test_records_survive_a_new_store_on_the_same_directory(store: ImageStore) -> None:
    data = payload(4096)
    image_id = upload(store, data)

    reopened = ImageStore(store.data_dir)

    assert reopened.get(image_id) == store.get(image_id)
    assert read_all(reopened, image_id) == data


def test_given_id_is_used_and_a_taken_one_conflicts(store: ImageStore) -> None:
    wanted = str(uuid.uuid4())
    assert store.create(name="a", disk_format="raw", owner=None, image_id=wanted).id == wanted
    with pytest.raises(ImageConflict, match=wanted):
        store.create(name="b", disk_format="raw", owner=None, image_id=wanted.upper())


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("disk_format", {"disk_format": "vmdk"}),
        ("name", {"name": ""}),
        ("name", {"name": "n" * 256}),
        ("visibility", {"visibility": "shared"}),
        ("id", {"image_id": "../../etc/passwd"}),
        ("owner", {"owner": 42}),
        ("properties", {"properties": {"k": 1}}),
        ("properties", {"properties": ["k"]}),
    ],
)
def test_bad_input_names_the_field(store: ImageStore, field: str, kwargs: dict) -> None:
    args = {"name": "cirros", "disk_format": "raw", "owner": "demo", **kwargs}
    with pytest.raises(InvalidImage, match=field) as info:
        store.create(**args)
    assert info.value.field == field
    assert store.list() == []


def test_upload_to_an_active_image_conflicts(store: ImageStore) -> None:
    image_id = upload(store, b"first")
    with pytest.raises(ImageConflict, match="active"):
        store.upload(image_id, [b"second"])
    assert read_all(store, image_id) == b"first"


def test_unknown_ids_are_not_found(store: ImageStore) -> None:
    missing = str(uuid.uuid4())
    for bad in (missing, "not-a-uuid", "../records/x"):
        with pytest.raises(ImageNotFound):
            store.get(bad)
        with pytest.raises(ImageNotFound):
            store.upload(bad, [b"x"])
        with pytest.raises(ImageNotFound):
            store.open(bad)
        with pytest.raises(ImageNotFound):
            store.delete(bad)


def test_only_active_images_can_be_read(store: ImageStore) -> None:
    image_id = new_image(store)
    with pytest.raises(ImageConflict, match="queued"):
        store.open(image_id)


def test_identical_content_is_stored_once_and_freed_with_the_last_user(
    store: ImageStore,
) -> None:
    data = payload(MIB + 3)
    first, second = upload(store, data, "a"), upload(store, data, "b")
    other = upload(store, b"something else", "c")

    assert len(blob_files(store)) == 2
    assert blob_of(store, first) == blob_of(store, second)

    store.delete(first)
    assert len(blob_files(store)) == 2
    assert read_all(store, second) == data

    store.delete(second)
    assert blob_files(store) == [blob_of(store, other)]
    with pytest.raises(ImageNotFound):
        store.get(second)

    store.delete(other)
    assert blob_files(store) == []
    assert store.list() == []


def test_flipped_byte_in_a_blob_is_refused(store: ImageStore) -> None:
    image_id = upload(store, payload(2 * MIB))
    blob = blob_of(store, image_id)
    damaged = bytearray(blob.read_bytes())
    damaged[MIB + 17] ^= 0x01
    blob.write_bytes(bytes(damaged))

    with pytest.raises(CorruptImage, match=image_id):
        store.open(image_id)


def test_truncated_or_missing_blob_is_refused(store: ImageStore) -> None:
    image_id = upload(store, payload(1000))
    blob = blob_of(store, image_id)
    blob.write_bytes(blob.read_bytes()[:-1])
    with pytest.raises(CorruptImage, match=image_id):
        store.open(image_id)
    blob.unlink()
    with pytest.raises(CorruptImage, match=image_id):
        store.open(image_id)


def test_reuploading_identical_content_repairs_a_damaged_blob(store: ImageStore) -> None:
    data = payload(5000)
    image_id = upload(store, data)
    blob_of(store, image_id).write_bytes(b"garbage")

    again = upload(store, data, "again")

    assert read_all(store, image_id) == data
    assert read_all(store, again) == data


def test_a_failing_stream_kills_the_image_and_leaves_no_temp_files(store: ImageStore) -> None:
    image_id = new_image(store)

    def chunks() -> Iterator[bytes]:
        yield payload(MIB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.upload(image_id, chunks())

    record = store.get(image_id)
    assert record.status == "killed"
    assert (record.size, record.sha256) == (None, None)
    assert temp_files(store) == []
    assert blob_files(store) == []
    with pytest.raises(ImageConflict, match="killed"):
        store.upload(image_id, [b"retry"])


def test_start_up_clears_what_a_crash_left(store: ImageStore) -> None:
    kept = upload(store, b"kept")
    stuck = new_image(store, "stuck")
    record_file = store.data_dir / "records" / f"{stuck}.json"
    on_disk = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**on_disk, "status": "saving"}))
    (store.data_dir / "tmp" / "upload-half").write_bytes(b"half an image")
    orphan = store.data_dir / "blobs" / ("ab" * 32)[:2] / ("ab" * 32)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"no record uses me")

    reopened = ImageStore(store.data_dir)

    assert reopened.get(stuck).status == "killed"
    assert temp_files(reopened) == []
    assert not orphan.exists()
    assert read_all(reopened, kept) == b"kept"


def test_list_returns_every_image_oldest_first(store: ImageStore) -> None:
    ids = [new_image(store, f"image-{i}") for i in range(3)]
    assert [r.id for r in store.list()] == ids


def test_concurrent_uploads_of_the_same_content(store: ImageStore) -> None:
    data = payload(MIB // 2)
    ids = [new_image(store, f"image-{i}") for i in range(8)]
    errors: list[BaseException] = []

    def worker(image_id: str) -> None:
        try:
            store.upload(image_id, chunked(data, 4096))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(blob_files(store)) == 1
    for image_id in ids:
        assert read_all(store, image_id) == data
    for image_id in ids:
        store.delete(image_id)
    assert blob_files(store) == []
