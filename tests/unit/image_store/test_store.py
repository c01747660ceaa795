"""ImageStore on a real directory and a real SQLite catalog: records, chunked uploads,
holes, ranges, deduplication and its accounting, tenancy, the dedup upload protocol.

Corruption, crashes and concurrency are in test_store_faults.py.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import random

import pytest

from image_store import codec
from image_store.catalog import chunk_index as ci
from image_store.chunking import ChunkingPolicy, cut
from image_store.store import (
    SERVICE,
    Caller,
    ChunkNotFound,
    Entry,
    Forbidden,
    ImageConflict,
    ImageNotFound,
    ImageStore,
    InvalidImage,
    RangeNotSatisfiable,
)

from .conftest import MIB, StoreFactory, chunk_files, payload
from .store_util import (
    SMALL,
    FailingStream,
    ReadOnlyStream,
    assert_consistent,
    check_record,
    noise,
    read,
    rows,
    staged,
    text_like,
    upload,
)

ALPHA = Caller("alpha")
BETA = Caller("beta")
ADMIN = Caller("alpha", is_admin=True)

BOUNDARY_SIZES = [0, 1, 1023, 1024, 1025, 4096, 16383, 16384, 16385, 2 * 16384,
                  2 * 16384 + 1, 300_001]


@pytest.fixture
def small(make_store: StoreFactory) -> ImageStore:
    """A store cutting small chunks (1/4/16 KiB), so small images have many."""
    return make_store(policy=SMALL)


# -- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("disk_format", ["raw", "qcow2"])
@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_round_trip_is_byte_identical(small: ImageStore, size: int, disk_format: str) -> None:
    data = payload(size)
    record = upload(small, data, disk_format=disk_format)
    check_record(record, data)
    assert record.disk_format == disk_format
    assert read(small, record.id) == data
    total, entries = small.manifest(SERVICE, record.id)
    assert total == size == sum(e.length for e in entries)
    assert all(e.length <= SMALL.max_size for e in entries if e.address)
    assert record.chunk_count == len([e for e in entries if e.address])
    assert (record.stored_size or 0) > 0 if size else record.stored_size == 0
    assert_consistent(small)
    assert staged(small) == []


@pytest.mark.parametrize("policy", [ChunkingPolicy("fixed", 4096, 4096, 4096), SMALL],
                         ids=["fixed", "cdc"])
def test_round_trip_through_a_read_only_stream(make_store: StoreFactory,
                                               policy: ChunkingPolicy) -> None:
    store = make_store(policy=policy)
    data = text_like(200_000)
    record = store.create(SERVICE, name="ro", disk_format="qcow2")
    record = store.upload(SERVICE, record.id, ReadOnlyStream(data))  # type: ignore[arg-type]
    check_record(record, data)
    assert read(store, record.id) == data
    # Compressible bytes are stored compressed.
    assert record.stored_size is not None and record.stored_size < len(data) // 2


def test_a_multi_mib_image_with_the_default_policy(store: ImageStore) -> None:
    data = noise(3 * MIB + 7, seed=1) + text_like(2 * MIB, seed=2)
    record = upload(store, data)
    check_record(record, data)
    assert read(store, record.id) == data
    assert store.info() == {"chunking": {"kind": "cdc", "min": 16384, "avg": 65536,
                                         "max": 262144},
                            "codec": "zstd", "backend": "local"}


def test_holes_are_merged_and_never_stored(small: ImageStore) -> None:
    zeros = bytes(10 * SMALL.max_size + 123)
    data = zeros + noise(50_000, 1) + zeros + zeros + noise(20_000, 2) + bytes(5000)
    record = upload(small, data)
    check_record(record, data)
    _, entries = small.manifest(SERVICE, record.id)
    holes = [e for e in entries if e.address is None]
    assert holes and all(a.address or b.address for a, b in itertools.pairwise(entries))
    assert sum(e.length for e in holes) >= 3 * len(zeros) - 4 * SMALL.max_size  # edges
    assert max(e.length for e in holes) > SMALL.max_size  # merged across chunks
    # Only the data chunks are stored: holes cost nothing.
    assert len(chunk_files(small)) == len({e.address for e in entries if e.address})
    assert read(small, record.id) == data
    stats = small.stats()
    assert stats["zero_bytes"] == sum(e.length for e in holes)
    assert stats["logical_bytes"] == len(data)
    assert_consistent(small)


def test_an_image_of_zeros_only(small: ImageStore) -> None:
    data = bytes(100_000)
    record = upload(small, data)
    check_record(record, data)
    assert small.manifest(SERVICE, record.id) == (100_000, [Entry(0, 100_000, None)])
    assert (record.chunk_count, record.stored_size) == (0, 0)
    assert read(small, record.id, 99_999) == b"\0"
    assert chunk_files(small) == []


def test_ranges_read_exactly_the_slice(small: ImageStore) -> None:
    data = noise(40_000, 3) + bytes(70_000) + text_like(90_000, 4)
    record = upload(small, data)
    _, entries = small.manifest(SERVICE, record.id)
    edges = sorted({e.offset for e in entries} | {len(data)})
    rng = random.Random(5)
    cases = [(0, len(data)), (0, 1), (len(data) - 1, len(data)), (45_000, 46_000),
             (39_999, 110_001), (5, 5)]
    cases += [(max(0, e - 1), min(len(data), e + 1)) for e in edges[1:-1]]
    for _ in range(30):
        a = rng.randrange(len(data))
        cases.append((a, rng.randint(a + 1, len(data))))
    for start, end in cases:
        assert read(small, record.id, start, end) == data[start:end], (start, end)
    assert read(small, record.id, 150_000) == data[150_000:]


@pytest.mark.parametrize("start,end", [(-1, 10), (10, 5), (0, 200_001), (200_000, None),
                                       (200_000, 200_000)])
def test_ranges_outside_the_image_are_refused(small: ImageStore, start: int,
                                              end: int | None) -> None:
    record = upload(small, noise(200_000))
    with pytest.raises(RangeNotSatisfiable) as err:
        small.open(SERVICE, record.id, start, end)
    assert err.value.size == 200_000


def test_the_empty_image_reads_as_nothing(small: ImageStore) -> None:
    record = upload(small, b"")
    assert read(small, record.id) == b""
    assert small.manifest(SERVICE, record.id) == (0, [])
    with pytest.raises(RangeNotSatisfiable):
        small.open(SERVICE, record.id, 0, 1)


def test_a_reader_closed_early_stops_cleanly(store: ImageStore) -> None:
    data = noise(4 * MIB)
    record = upload(store, data)
    reader = store.open(SERVICE, record.id)
    first = next(reader)
    reader.close()
    assert data.startswith(first)
    assert list(reader) == []
    store.delete(SERVICE, record.id)  # nothing is left holding the image's chunks
    assert chunk_files(store) == []


def test_read_chunk_serves_verified_encoded_bytes(small: ImageStore) -> None:
    data = text_like(60_000)
    record = upload(small, data)
    _, entries = small.manifest(SERVICE, record.id)
    for e in entries:
        assert e.address is not None
        encoded = small.read_chunk(e.address)
        assert codec.decode(encoded, e.address, e.length) == data[e.offset:e.offset + e.length]
    with pytest.raises(ChunkNotFound):
        small.read_chunk("0" * 64)
    with pytest.raises(InvalidImage) as err:
        small.read_chunk("not-an-address")
    assert err.value.field == "address"


# -- deduplication and its accounting ------------------------------------------------------


def test_two_images_share_chunks_and_deletes_free_only_unshared_ones(small: ImageStore) -> None:
    base = text_like(400_000, 7)
    edited = base[:200_000] + b"a small edit in the middle" + base[200_000:]
    first = upload(small, base, name="first")
    files_after_first = set(chunk_files(small))
    second = upload(small, edited, name="second")
    _, first_entries = small.manifest(SERVICE, first.id)
    _, second_entries = small.manifest(SERVICE, second.id)
    first_set = {e.address for e in first_entries}
    second_set = {e.address for e in second_entries}
    shared = first_set & second_set
    assert len(shared) >= 0.8 * len(first_set)  # CDC re-synchronises after the edit
    stats = small.stats()
    assert stats["chunk_count"] == len(first_set | second_set) == len(chunk_files(small))
    assert stats["logical_bytes"] == len(base) + len(edited)
    assert stats["stored_bytes"] == sum(r.stored_size for r in rows(small, ci.chunks))
    assert stats["dedup_ratio"] == round(stats["logical_bytes"] / stats["stored_bytes"], 3)
    assert stats["dedup_ratio"] > 1.8
    assert second.stored_size is not None and second.stored_size > 0
    assert len(chunk_files(small)) - len(files_after_first) == len(second_set - first_set)
    assert_consistent(small)

    small.delete(SERVICE, first.id)
    assert {r.address for r in rows(small, ci.chunks)} == second_set
    assert len(chunk_files(small)) == len(second_set)
    assert read(small, second.id) == edited
    assert_consistent(small)

    small.delete(SERVICE, second.id)
    assert rows(small, ci.chunks) == [] and rows(small, ci.image_refs) == []
    assert rows(small, ci.entries) == [] and rows(small, ci.images) == []
    assert chunk_files(small) == [] and list(small.backend.addresses()) == []
    assert small.stats() == {"images": 0, "active_images": 0, "logical_bytes": 0,
                             "stored_bytes": 0, "zero_bytes": 0, "chunk_count": 0,
                             "dedup_ratio": 0.0}


def test_an_image_repeating_a_chunk_holds_it_once(make_store: StoreFactory) -> None:
    store = make_store(policy=ChunkingPolicy("fixed", 4096, 4096, 4096))
    data = noise(4096, 9) * 6
    record = upload(store, data)
    assert record.chunk_count == 6
    assert len(chunk_files(store)) == 1
    assert [r.refs for r in rows(store, ci.chunks)] == [1]
    assert record.stored_size == rows(store, ci.chunks)[0].stored_size
    assert read(store, record.id) == data
    store.delete(SERVICE, record.id)
    assert chunk_files(store) == []


def test_stats_count_statuses(small: ImageStore) -> None:
    upload(small, noise(10_000))
    small.create(SERVICE, name="queued", disk_format="raw")
    stats = small.stats()
    assert (stats["images"], stats["active_images"], stats["logical_bytes"]) == (2, 1, 10_000)


# -- failed uploads ------------------------------------------------------------------------


def test_a_stream_that_breaks_kills_the_image_and_leaves_nothing(small: ImageStore) -> None:
    kept = upload(small, text_like(100_000, 1), name="kept")
    record = small.create(SERVICE, name="broken", disk_format="raw")
    with pytest.raises(ConnectionResetError):
        small.upload(SERVICE, record.id, FailingStream(text_like(300_000, 2)))
    broken = small.get(SERVICE, record.id)
    assert broken.status == "killed" and broken.size is None
    assert_consistent(small)
    assert staged(small) == []
    assert {r.address for r in rows(small, ci.chunks)} == {
        e.address for e in small.manifest(SERVICE, kept.id)[1]}
    with pytest.raises(ImageConflict):
        small.upload(SERVICE, record.id, io.BytesIO(b"again"))
    small.delete(SERVICE, record.id)


def test_upload_only_to_a_queued_image(small: ImageStore) -> None:
    record = upload(small, b"data")
    with pytest.raises(ImageConflict) as err:
        small.upload(SERVICE, record.id, io.BytesIO(b"other"))
    assert "active" in str(err.value)
    assert read(small, record.id) == b"data"
    with pytest.raises(ImageNotFound):
        small.upload(SERVICE, "6b8e0a50-5f0c-4a43-b3ab-bf0e3a6b6f1e", io.BytesIO(b"x"))


def test_reading_a_queued_image_is_a_conflict(small: ImageStore) -> None:
    record = small.create(SERVICE, name="q", disk_format="raw")
    with pytest.raises(ImageConflict):
        small.open(SERVICE, record.id)
    with pytest.raises(ImageConflict):
        small.manifest(SERVICE, record.id)


# -- records and bad input -----------------------------------------------------------------


def test_record_fields(small: ImageStore) -> None:
    kernel = small.create(SERVICE, name="vmlinuz", disk_format="raw", visibility="public")
    record = small.create(
        SERVICE, name="cirros", disk_format="qcow2", owner="alpha",
        image_id="6B8E0A50-5F0C-4A43-B3AB-BF0E3A6B6F1E", properties={"os_distro": "cirros"},
        kernel_id=kernel.id, min_disk=1, min_ram=64)
    d = record.to_dict()
    assert d["id"] == "6b8e0a50-5f0c-4a43-b3ab-bf0e3a6b6f1e"
    assert set(d) == {"id", "name", "disk_format", "status", "size", "checksum", "sha256",
                      "owner", "visibility", "kernel_id", "ramdisk_id", "min_disk",
                      "min_ram", "properties", "chunk_count", "stored_size", "created_at",
                      "updated_at"}
    assert (d["status"], d["size"], d["checksum"], d["sha256"], d["stored_size"]) == (
        "queued", None, None, None, None)
    assert (d["owner"], d["visibility"], d["kernel_id"], d["ramdisk_id"]) == (
        "alpha", "private", kernel.id, None)
    assert (d["min_disk"], d["min_ram"], d["properties"]) == (1, 64, {"os_distro": "cirros"})
    assert d["created_at"].endswith("Z") and d["updated_at"].endswith("Z")
    assert small.get(SERVICE, record.id.upper()) == record


def test_update_changes_fields_and_removes_properties(small: ImageStore) -> None:
    record = small.create(ALPHA, name="a", disk_format="raw", properties={"k": "v", "x": "y"})
    ramdisk = small.create(ALPHA, name="initrd", disk_format="raw")
    updated = small.update(ALPHA, record.id, {
        "name": "b", "min_disk": 2, "min_ram": 128, "ramdisk_id": ramdisk.id,
        "properties": {"k": None, "new": "1"}})
    assert (updated.name, updated.min_disk, updated.min_ram) == ("b", 2, 128)
    assert updated.ramdisk_id == ramdisk.id
    assert updated.properties == {"x": "y", "new": "1"}
    assert updated.updated_at > record.updated_at
    assert small.get(ALPHA, record.id) == updated
    cleared = small.update(ALPHA, record.id, {"ramdisk_id": None})
    assert cleared.ramdisk_id is None


CREATE_ERRORS = [
    ({"name": ""}, "name"),
    ({"name": "x" * 256}, "name"),
    ({"name": 5}, "name"),
    ({"disk_format": "vmdk"}, "disk_format"),
    ({"visibility": "shared"}, "visibility"),
    ({"image_id": "not-a-uuid"}, "id"),
    ({"properties": {"": "v"}}, "properties"),
    ({"properties": {"bad name": "v"}}, "properties"),
    ({"properties": {"name": "v"}}, "properties"),
    ({"properties": {"k": 5}}, "properties"),
    ({"properties": {"k": "v" * 65536}}, "properties"),
    ({"properties": ["k"]}, "properties"),
    ({"min_disk": -1}, "min_disk"),
    ({"min_ram": -1}, "min_ram"),
    ({"min_ram": True}, "min_ram"),
    ({"min_disk": "1"}, "min_disk"),
    ({"kernel_id": "6b8e0a50-5f0c-4a43-b3ab-bf0e3a6b6f1e"}, "kernel_id"),
    ({"ramdisk_id": "nope"}, "ramdisk_id"),
    ({"owner": ""}, "owner"),
]


@pytest.mark.parametrize("change,field", CREATE_ERRORS)
def test_bad_create_input_names_the_field_and_changes_nothing(
        small: ImageStore, change: dict, field: str) -> None:
    kwargs = {"name": "ok", "disk_format": "raw", **change}
    with pytest.raises(InvalidImage) as err:
        small.create(SERVICE, **kwargs)
    assert err.value.field == field
    assert small.list(SERVICE) == []


def test_an_id_is_taken_once(small: ImageStore) -> None:
    image_id = "6b8e0a50-5f0c-4a43-b3ab-bf0e3a6b6f1e"
    small.create(SERVICE, name="a", disk_format="raw", image_id=image_id)
    with pytest.raises(ImageConflict):
        small.create(SERVICE, name="b", disk_format="raw", image_id=image_id.upper())
    assert [r.name for r in small.list(SERVICE)] == ["a"]


UPDATE_ERRORS = [
    ({"status": "active"}, "status"),
    ({"size": 5}, "size"),
    ({"name": ""}, "name"),
    ({"visibility": "everyone"}, "visibility"),
    ({"min_disk": -5}, "min_disk"),
    ({"properties": {"bad key": "v"}}, "properties"),
    ({"properties": {"k": 1}}, "properties"),
    ({"kernel_id": "6b8e0a50-5f0c-4a43-b3ab-bf0e3a6b6f1e"}, "kernel_id"),
]


@pytest.mark.parametrize("changes,field", UPDATE_ERRORS)
def test_bad_updates_name_the_field_and_change_nothing(small: ImageStore, changes: dict,
                                                       field: str) -> None:
    record = small.create(SERVICE, name="a", disk_format="raw", properties={"k": "v"})
    with pytest.raises(InvalidImage) as err:
        small.update(SERVICE, record.id, {"name": "renamed", **changes})
    assert err.value.field == field
    assert small.get(SERVICE, record.id) == record


def test_an_image_cannot_be_its_own_kernel(small: ImageStore) -> None:
    record = small.create(SERVICE, name="a", disk_format="raw")
    with pytest.raises(InvalidImage) as err:
        small.update(SERVICE, record.id, {"kernel_id": record.id})
    assert err.value.field == "kernel_id"


def test_unknown_ids_are_not_found(small: ImageStore) -> None:
    for image_id in ("6b8e0a50-5f0c-4a43-b3ab-bf0e3a6b6f1e", "../../etc/passwd", ""):
        with pytest.raises(ImageNotFound):
            small.get(SERVICE, image_id)
        with pytest.raises(ImageNotFound):
            small.delete(SERVICE, image_id)


def test_list_filters_and_order(small: ImageStore) -> None:
    a = small.create(SERVICE, name="a", disk_format="raw", visibility="public")
    b = small.create(ALPHA, name="b", disk_format="raw")
    c = upload(small, b"x", BETA, name="a")
    assert [r.id for r in small.list(SERVICE)] == [a.id, b.id, c.id]
    assert [r.id for r in small.list(SERVICE, name="a")] == [a.id, c.id]
    assert [r.id for r in small.list(SERVICE, status="active")] == [c.id]
    assert [r.id for r in small.list(SERVICE, visibility="public")] == [a.id]
    assert [r.id for r in small.list(SERVICE, owner="alpha")] == [b.id]
    with pytest.raises(InvalidImage) as err:
        small.list(SERVICE, status="gone")
    assert err.value.field == "status"


# -- tenancy -------------------------------------------------------------------------------


def test_a_project_sees_public_and_its_own_images_only(small: ImageStore) -> None:
    public = upload(small, b"public bytes", name="public", visibility="public")
    mine = upload(small, b"alpha bytes", ALPHA, name="mine")
    theirs = upload(small, b"beta bytes", BETA, name="theirs")
    assert mine.owner == "alpha" and mine.visibility == "private"
    assert [r.id for r in small.list(ALPHA)] == [public.id, mine.id]
    assert [r.id for r in small.list(BETA)] == [public.id, theirs.id]
    assert len(small.list(ADMIN)) == len(small.list(SERVICE)) == 3
    assert read(small, public.id, caller=BETA) == b"public bytes"
    # Another project's private image does not exist, whatever one tries.
    for attempt in (lambda: small.get(BETA, mine.id), lambda: small.open(BETA, mine.id),
                    lambda: small.manifest(BETA, mine.id),
                    lambda: small.delete(BETA, mine.id),
                    lambda: small.update(BETA, mine.id, {"name": "x"}),
                    lambda: small.missing(BETA, mine.id, [])):
        with pytest.raises(ImageNotFound):
            attempt()
    assert small.get(ADMIN, mine.id).name == "mine"


def test_a_public_image_of_someone_else_is_read_only(small: ImageStore) -> None:
    public = small.create(SERVICE, name="public", disk_format="raw", visibility="public")
    for attempt in (lambda: small.update(ALPHA, public.id, {"name": "mine now"}),
                    lambda: small.delete(ALPHA, public.id),
                    lambda: small.upload(ALPHA, public.id, io.BytesIO(b"x")),
                    lambda: small.missing(ALPHA, public.id, []),
                    lambda: small.commit_manifest(ALPHA, public.id, 0, [])):
        with pytest.raises(Forbidden):
            attempt()
    assert small.get(SERVICE, public.id) == public
    small.update(ADMIN, public.id, {"name": "renamed by admin"})


def test_owner_and_publicity_rules_on_create_and_update(small: ImageStore) -> None:
    with pytest.raises(InvalidImage) as err:
        small.create(ALPHA, name="x", disk_format="raw", owner="beta")
    assert err.value.field == "owner"
    with pytest.raises(Forbidden):
        small.create(ALPHA, name="x", disk_format="raw", visibility="public")
    assert small.list(SERVICE) == []
    own = small.create(ALPHA, name="x", disk_format="raw", owner="alpha")
    with pytest.raises(Forbidden):
        small.update(ALPHA, own.id, {"visibility": "public"})
    assert small.update(ADMIN, own.id, {"visibility": "public"}).visibility == "public"
    assert small.update(ALPHA, own.id, {"visibility": "private"}).visibility == "private"
    assert small.create(SERVICE, name="y", disk_format="raw").owner is None
    assert small.create(ADMIN, name="z", disk_format="raw", owner="beta").owner == "beta"


def test_kernel_and_ramdisk_must_be_visible_to_the_caller(small: ImageStore) -> None:
    hidden = small.create(BETA, name="beta kernel", disk_format="raw")
    with pytest.raises(InvalidImage) as err:
        small.create(ALPHA, name="x", disk_format="raw", kernel_id=hidden.id)
    assert err.value.field == "kernel_id"
    public = small.create(SERVICE, name="k", disk_format="raw", visibility="public")
    assert small.create(ALPHA, name="x", disk_format="raw",
                        ramdisk_id=public.id).ramdisk_id == public.id


# -- the dedup upload protocol -------------------------------------------------------------


def _cut(policy: ChunkingPolicy, data: bytes) -> tuple[list[Entry], dict[str, bytes]]:
    """What a client does: cut the same way, holes for zero chunks, encode the others."""
    entries: list[Entry] = []
    encoded: dict[str, bytes] = {}
    for offset, piece in cut(io.BytesIO(data), policy):
        if codec.is_zero(piece):
            entries.append(Entry(offset, len(piece), None))
            continue
        address = codec.address(piece)
        encoded[address] = codec.encode(piece)
        entries.append(Entry(offset, len(piece), address))
    return entries, encoded


def _merged(entries: list[Entry]) -> list[Entry]:
    out: list[Entry] = []
    for e in entries:
        if e.address is None and out and out[-1].address is None:
            out[-1] = Entry(out[-1].offset, out[-1].length + e.length, None)
        else:
            out.append(e)
    return out


def _dedup_upload(store: ImageStore, data: bytes, caller: Caller = SERVICE,
                  name: str = "snap") -> tuple[str, list[str]]:
    entries, encoded = _cut(store.policy, data)
    record = store.create(caller, name=name, disk_format="qcow2")
    missing = store.missing(caller, record.id, list(encoded))
    for address in missing:
        store.put_chunk(caller, record.id, address, encoded[address])
    committed = store.commit_manifest(caller, record.id, len(data), entries)
    check_record(committed, data)
    return record.id, missing


def test_dedup_upload_sends_only_missing_chunks(small: ImageStore) -> None:
    base = text_like(300_000, 11) + bytes(50_000) + noise(30_000, 12)
    first = upload(small, base, name="base")
    snapshot = base[:100_000] + b"changed!" + base[100_000:]
    snap_id, missing = _dedup_upload(small, snapshot)
    _, encoded = _cut(SMALL, snapshot)
    assert 0 < len(missing) <= 0.2 * len(encoded)  # only the chunks around the edit
    assert read(small, snap_id) == snapshot
    client_entries, _ = _cut(SMALL, snapshot)
    assert small.manifest(SERVICE, snap_id) == (len(snapshot), _merged(client_entries))
    # Holes of a dedup manifest count as for a streamed upload.
    assert small.get(SERVICE, snap_id).chunk_count == sum(
        1 for e in small.manifest(SERVICE, snap_id)[1] if e.address)
    again_id, again_missing = _dedup_upload(small, snapshot, name="again")
    assert again_missing == []
    assert_consistent(small)
    for image_id in (first.id, snap_id, again_id):
        small.delete(SERVICE, image_id)
    assert chunk_files(small) == [] and rows(small, ci.chunks) == []


def test_dedup_references_not_used_by_the_manifest_are_released(small: ImageStore) -> None:
    other = upload(small, text_like(100_000, 21), name="other")
    _, other_chunks = _cut(SMALL, text_like(100_000, 21))
    data = noise(40_000, 22)
    entries, encoded = _cut(SMALL, data)
    record = small.create(SERVICE, name="snap", disk_format="raw")
    # The client asks about more than it ends up using (present ones get referenced).
    asked = list(encoded) + list(other_chunks)
    missing = small.missing(SERVICE, record.id, asked)
    assert sorted(missing) == sorted(encoded)
    assert small.get(SERVICE, record.id).status == "saving"
    for address in missing:
        small.put_chunk(SERVICE, record.id, address, encoded[address])
    small.commit_manifest(SERVICE, record.id, len(data), entries)
    assert_consistent(small)  # the extra references are gone again
    small.delete(SERVICE, other.id)
    assert {r.address for r in rows(small, ci.chunks)} == set(encoded)


def test_dedup_protocol_refuses_bad_manifests_and_chunks(small: ImageStore) -> None:
    data = text_like(60_000, 31)
    entries, encoded = _cut(SMALL, data)
    record = small.create(SERVICE, name="snap", disk_format="raw")
    addresses = list(encoded)
    small.missing(SERVICE, record.id, addresses[:-1])
    for address in addresses[:-1]:
        small.put_chunk(SERVICE, record.id, address, encoded[address])
    # A chunk whose bytes are not what its address says is refused.
    with pytest.raises(codec.CorruptChunk):
        small.put_chunk(SERVICE, record.id, addresses[-1], encoded[addresses[0]])
    bad_manifests = [
        (len(data), entries[:-1], "chunks"),                    # does not cover size
        (len(data) + 1, entries, "chunks"),
        (len(data), entries[1:], "chunks"),                     # gap at 0
        (len(data), [Entry(0, len(data), None), *entries][:1] + entries[1:], "chunks"),
        (-1, entries, "size"),
        (len(data), "nope", "chunks"),
        (len(data), [(0, len(data), "xyz")], "chunks"),
        (len(data), entries, "chunks"),                         # last chunk never put
    ]
    for size, manifest, field in bad_manifests:
        with pytest.raises(InvalidImage) as err:
            small.commit_manifest(SERVICE, record.id, size, manifest)  # type: ignore[arg-type]
        assert err.value.field == field, (size, field)
    assert small.get(SERVICE, record.id).status == "saving"
    for bad in (["xyz"], "abc", [1]):
        with pytest.raises(InvalidImage) as err:
            small.missing(SERVICE, record.id, bad)  # type: ignore[arg-type]
        assert err.value.field == "addresses"
    small.put_chunk(SERVICE, record.id, addresses[-1], encoded[addresses[-1]])
    committed = small.commit_manifest(SERVICE, record.id, len(data),
                                      [[e.offset, e.length, e.address] for e in entries])
    check_record(committed, data)
    with pytest.raises(ImageConflict):
        small.commit_manifest(SERVICE, record.id, len(data), entries)
    with pytest.raises(ImageConflict):
        small.missing(SERVICE, record.id, addresses)


def test_a_chunk_larger_than_the_policy_allows_is_refused(small: ImageStore) -> None:
    big = noise(SMALL.max_size + 1)
    record = small.create(SERVICE, name="snap", disk_format="raw")
    with pytest.raises(InvalidImage) as err:
        small.put_chunk(SERVICE, record.id, codec.address(big), codec.encode(big))
    assert err.value.field == "chunk"
    assert small.get(SERVICE, record.id).status == "queued"


def test_an_all_hole_manifest_commits_straight_from_queued(small: ImageStore) -> None:
    record = small.create(SERVICE, name="blank", disk_format="raw")
    committed = small.commit_manifest(SERVICE, record.id, 3 * MIB,
                                      [Entry(0, MIB, None), Entry(MIB, 2 * MIB, None)])
    check_record(committed, bytes(3 * MIB))
    assert small.manifest(SERVICE, record.id) == (3 * MIB, [Entry(0, 3 * MIB, None)])
    assert hashlib.sha256(read(small, record.id)).hexdigest() == committed.sha256
