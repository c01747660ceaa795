"""``POST /v1/chunks/batch`` and ``ImageStoreClient.fetch_chunks``, over a real server.

The frames are parsed here by hand, from the format docs/image-store.md gives, so a
change of the wire format shows even if the store and the client changed together.
Faults are real: chunk files damaged or replaced in the store's own directory.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from image_store import chunk_batch
from image_store.client import CorruptImage, Forbidden, ImageStoreClient, ImageStoreClientError
from image_store.client import NotFound as ClientNotFound
from image_store.codec import address, decode
from image_store.store import ImageStore

from .http_util import (
    ALPHA,
    KIB,
    Api,
    assert_error,
    chunk_file,
    data_entries,
    flip_byte,
    image_bytes,
)

MISSING, CORRUPT = 0xFFFF_FFFF, 0xFFFF_FFFE
NOBODY = address(b"no image holds this chunk")


@pytest.fixture
def image(api: Api) -> tuple[str, bytes, list[list[Any]]]:
    """An active image of a dozen-odd random chunks: (id, bytes, its data entries)."""
    data = image_bytes(1024 * KIB, seed=21)
    record = api.create()
    api.upload(record["id"], data)
    entries = data_entries(api.get(f"/v1/images/{record['id']}/chunks").json())
    assert len(entries) >= 4
    return record["id"], data, entries


def parse(body: bytes) -> list[tuple[str, int, bytes]]:
    """(address, length field, payload or reason) of each frame of a batch body."""
    frames, at = [], 0
    while at < len(body):
        name = body[at:at + 64].decode("ascii")
        (length,) = struct.unpack(">I", body[at + 64:at + 68])
        at += 68
        if length == MISSING:
            payload = b""
        elif length == CORRUPT:
            (n,) = struct.unpack(">H", body[at:at + 2])
            payload, at = body[at + 2:at + 2 + n], at + 2 + n
        else:
            payload, at = body[at:at + length], at + length
        assert at <= len(body), "a frame runs past the end of the body"
        frames.append((name, length, payload))
    return frames


def piece(data: bytes, entry: list[Any]) -> bytes:
    offset, length, _address = entry
    return data[offset:offset + length]


# -- the route --------------------------------------------------------------------------


def test_frames_carry_the_verified_chunks_in_the_order_asked(
        api: Api, image: tuple[str, bytes, list[list[Any]]]) -> None:
    _image_id, data, entries = image
    asked = list(reversed(entries))

    response = api.post("/v1/chunks/batch", json={"addresses": [e[2] for e in asked]})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-ironbark-chunks"
    assert "Content-Length" not in response.headers  # streamed, frame by frame
    frames = parse(response.content)
    assert [f[0] for f in frames] == [e[2] for e in asked]
    for (name, length, encoded), entry in zip(frames, asked, strict=True):
        assert length == len(encoded)
        assert decode(encoded, name, entry[1]) == piece(data, entry)


def test_a_missing_and_a_corrupt_chunk_are_frames_of_their_own(
        api: Api, image: tuple[str, bytes, list[list[Any]]], tmp_path: Path) -> None:
    image_id, data, entries = image
    first, bad, last = entries[0], entries[1], entries[-1]
    flip_byte(chunk_file(tmp_path, bad[2]))

    response = api.post("/v1/chunks/batch",
                        json={"addresses": [first[2], NOBODY, bad[2], last[2]]})

    assert response.status_code == 200
    frames = parse(response.content)
    assert [(f[0], f[1]) for f in frames[1:3]] == [(NOBODY, MISSING), (bad[2], CORRUPT)]
    assert frames[1][2] == b""
    assert frames[2][2]  # a reason in UTF-8
    frames[2][2].decode("utf-8")
    assert decode(frames[0][2], first[2]) == piece(data, first)
    assert decode(frames[3][2], last[2]) == piece(data, last)  # after the bad ones
    record = api.get(f"/v1/images/{image_id}").json()
    assert bad[2] in str(record["corrupt_chunks"])  # marked, as any read marks it


@pytest.mark.parametrize(("body", "field"), [
    ({}, "addresses"),
    ({"addresses": "x"}, "addresses"),
    ({"addresses": []}, "addresses"),
    ({"addresses": ["ABC"]}, "addresses"),
    ({"addresses": [1]}, "addresses"),
    ({"addresses": [NOBODY, NOBODY]}, "addresses"),
    ({"addresses": [address(str(i).encode()) for i in range(257)]}, "addresses"),
    ({"addresses": [NOBODY], "more": 1}, "more"),
    ([NOBODY], None),
])
def test_a_bad_body_is_400_naming_the_field(api: Api, body: Any, field: str | None) -> None:
    assert_error(api.post("/v1/chunks/batch", json=body), 400, field=field)


def test_the_most_addresses_allowed_are_served(api: Api) -> None:
    addresses = [address(str(i).encode()) for i in range(chunk_batch.MAX_ADDRESSES)]
    response = api.post("/v1/chunks/batch", json={"addresses": addresses})
    assert response.status_code == 200
    assert parse(response.content) == [(a, MISSING, b"") for a in addresses]


def test_only_the_service_reads_chunks(
        api: Api, image: tuple[str, bytes, list[list[Any]]]) -> None:
    body = {"addresses": [image[2][0][2]]}
    assert_error(api.post("/v1/chunks/batch", project=ALPHA, admin=True, json=body), 403)
    assert_error(api.post("/v1/chunks/batch", project=ALPHA, admin=False, json=body), 403)
    assert_error(api.post("/v1/chunks/batch", token=None, json=body), 401)
    assert_error(api.post("/v1/chunks/batch", token="wrong", json=body), 401)
    assert_error(api.get("/v1/chunks/batch"), 400, field="address")  # the one-chunk route
    assert api.post("/v1/chunks/batch", json=body).status_code == 200


# -- the client --------------------------------------------------------------------------


def test_fetch_chunks_yields_each_chunk_in_order(
        client: ImageStoreClient, api: Api, image: tuple[str, bytes, list[list[Any]]]) -> None:
    _image_id, data, entries = image
    got = list(client.fetch_chunks(e[2] for e in entries))
    assert [a for a, _ in got] == [e[2] for e in entries]
    for (name, encoded), entry in zip(got, entries, strict=True):
        assert decode(encoded, name, entry[1]) == piece(data, entry)
        assert encoded == client.fetch_chunk(name)  # the same bytes as one at a time
    assert list(client.fetch_chunks([])) == []


def test_fetch_chunks_raises_naming_a_missing_or_corrupt_chunk(
        client: ImageStoreClient, image: tuple[str, bytes, list[list[Any]]],
        tmp_path: Path) -> None:
    _image_id, _data, entries = image
    good, bad = entries[0][2], entries[1][2]
    flip_byte(chunk_file(tmp_path, bad))

    got: list[str] = []
    with pytest.raises(ClientNotFound, match=NOBODY) as missing:
        got.extend(a for a, _ in client.fetch_chunks([good, NOBODY, bad]))
    assert got == [good]  # what came before was yielded
    assert missing.value.status == 404

    got.clear()
    with pytest.raises(CorruptImage, match=bad) as corrupt:
        got.extend(a for a, _ in client.fetch_chunks([good, bad, NOBODY]))
    assert got == [good]
    assert (corrupt.value.status, corrupt.value.address) == (500, bad)
    assert "corrupt" in str(corrupt.value)


def test_fetch_chunks_raises_when_the_stream_is_cut(
        client: ImageStoreClient, store: ImageStore,
        image: tuple[str, bytes, list[list[Any]]], tmp_path: Path) -> None:
    _image_id, _data, entries = image
    # A backend the store cannot read (not missing, not corrupt: an I/O error) aborts
    # the response after the frames already sent.
    broken = chunk_file(tmp_path, entries[2][2])
    broken.unlink()
    broken.mkdir()

    got: list[str] = []
    with pytest.raises(ImageStoreClientError, match="cut short") as caught:
        got.extend(a for a, _ in client.fetch_chunks(e[2] for e in entries))
    assert not isinstance(caught.value, CorruptImage | ClientNotFound)
    assert got == [entries[0][2], entries[1][2]]
    assert list(client.fetch_chunks([entries[0][2]]))  # the client still works


def test_fetch_chunks_closed_early_leaves_the_client_usable(
        client: ImageStoreClient, image: tuple[str, bytes, list[list[Any]]]) -> None:
    entries = image[2]
    stream = client.fetch_chunks(e[2] for e in entries)
    assert next(stream)[0] == entries[0][2]
    stream.close()  # type: ignore[attr-defined]
    assert [a for a, _ in client.fetch_chunks([entries[-1][2]])] == [entries[-1][2]]


def test_fetch_chunks_is_refused_to_projects_and_bad_lists(
        client: ImageStoreClient, image: tuple[str, bytes, list[list[Any]]]) -> None:
    one = [image[2][0][2]]
    with pytest.raises(Forbidden):
        list(client.for_caller(ALPHA, True).fetch_chunks(one))
    with pytest.raises(ImageStoreClientError) as caught:
        list(client.fetch_chunks(one * 2))
    assert (caught.value.status, caught.value.field) == (400, "addresses")


# -- the framing itself -------------------------------------------------------------------


def _reader(body: bytes) -> Any:
    at = 0

    def read(n: int) -> bytes:
        nonlocal at
        out = body[at:at + n]
        at += len(out)
        return out

    return read


def test_read_frames_refuses_what_does_not_follow_the_framing() -> None:
    a, b = address(b"a"), address(b"b")
    good = chunk_batch.chunk_frame(a, b"\x00a")
    assert list(chunk_batch.read_frames(_reader(good), [a])) == [(a, b"\x00a")]
    with pytest.raises(chunk_batch.FrameError, match="names chunk"):
        list(chunk_batch.read_frames(_reader(good), [b]))
    with pytest.raises(chunk_batch.FrameError, match="ended in frame 1"):
        list(chunk_batch.read_frames(_reader(good[:-1]), [a]))
    with pytest.raises(chunk_batch.FrameError, match="ended at frame 2"):
        list(chunk_batch.read_frames(_reader(good), [a, b]))
    with pytest.raises(chunk_batch.FrameError, match="length marker"):
        list(chunk_batch.read_frames(_reader(a.encode() + b"\xff\xff\xff\xf8"), [a]))
    with pytest.raises(chunk_batch.ChunkAbsent, match="corrupt: why") as caught:
        list(chunk_batch.read_frames(_reader(chunk_batch.corrupt_frame(a, "why")), [a]))
    assert caught.value.reason == "why"
    long_reason = chunk_batch.corrupt_frame(a, "é" * 2000)
    assert len(long_reason) <= 68 + 2 + chunk_batch.MAX_REASON

