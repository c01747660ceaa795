"""The image store's HTTP API: a thin Flask layer over :class:`ImageStore`.

Each route validates its input (:mod:`image_store.http_input`), calls the store with
the caller the request acts for, and maps the store's errors to statuses. Only other
tiers call it, with the shared service token; the tier acting for a user says who
with ``X-Ironbark-Project`` / ``X-Ironbark-Admin`` and the store enforces tenancy.
Every error, including the 404/405 of a route that does not exist, is JSON::

    {"error": {"code": 404, "title": "Not Found", "message": "...", "field": "..."}}

(``field`` when the culprit is known). A corrupt chunk's 500 also carries
``"address"`` (and ``"image_id"``/``"offset"`` when reading an image) so a client can
name it without parsing the message.

Image bytes are streamed both ways (:mod:`image_store.http_streams`), so image size
is bounded by disk, not memory.

Choices the contract left open:

- ``Range``: one ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n`` per request (206). A
  malformed, unsatisfiable *or multi-range* header is 416 with ``Content-Range:
  bytes */size`` -- the store's clients (the Cloud Manager's proxy, hosts) ask one
  range at a time, and a refusal tells them more than a silently whole body would.
- A download's first piece is read before the response starts, so a corrupt first
  chunk is a clean 500; a later one cuts the connection (short body).
- ``PUT .../chunks/<address>`` reads at most the policy's ``max`` + 1 bytes (the
  codec byte and a never-larger payload): a longer body is 400 before it is stored.
  Bytes that do not decode to the address are 400 (the client's fault), not 500.
- ``POST /v1/chunks/batch`` streams frames (:mod:`image_store.chunk_batch`): a
  chunk unknown or found corrupt is a frame of its own, not an error status, so one
  bad chunk does not cost the others their trip.
- ``X-Ironbark-Admin`` without ``X-Ironbark-Project`` is 400: no project header
  already means the service itself.
- ``POST /v1/scrub`` takes no body (or ``{}``); ``GET /v1/images`` refuses unknown or
  repeated filters.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Any

import zstandard
from flask import Flask, Response, g, jsonify, request, stream_with_context
from werkzeug.exceptions import HTTPException, Unauthorized
from werkzeug.http import HTTP_STATUS_CODES

from image_store import chunk_batch
from image_store import store as st
from image_store.backends.base import ChunkMissing
from image_store.codec import RAW, ZSTD, CorruptChunk
from image_store.http_input import (
    CREATE_REQUIRED,
    CREATE_TYPES,
    UPDATE_TYPES,
    ApiError,
    addresses_body,
    bad,
    check_address,
    check_object,
    empty_object,
    list_filters,
    manifest_body,
    parse_caller,
    parse_range,
)
from image_store.http_streams import DownloadBody, RequestBody, UploadInterrupted
from message_bus.context import new_request_id, request_id_var, service_var

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Service-Token"
REQUEST_ID_HEADER = "X-Openstack-Request-Id"
CHUNK_MIMETYPE = "application/x-ironbark-chunk"
SERVICE_NAME = "image-store"

_STATUS_OF: tuple[tuple[type[st.ImageStoreError], int], ...] = (
    (st.InvalidImage, 400),
    (st.Forbidden, 403),
    (st.ImageNotFound, 404),
    (st.ChunkNotFound, 404),
    (st.ImageConflict, 409),
    (st.RangeNotSatisfiable, 416),
    (st.CorruptImage, 500),
)


def error_body(code: int, message: str, field: str | None = None,
               **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "title": HTTP_STATUS_CODES.get(code, "Error"),
                             "message": message}
    if field is not None:
        error["field"] = field
    error.update(extra)
    return {"error": error}


def _error_response(code: int, message: str, field: str | None = None,
                    headers: dict[str, str] | None = None, **extra: Any) -> Response:
    response = jsonify(error_body(code, message, field, **extra))
    response.status_code = code
    response.headers.update(headers or {})
    return response


def _plain_length(encoded: bytes) -> int:
    """The uncompressed length of a verified encoded chunk, from its header alone."""
    if encoded[0] == RAW:
        return len(encoded) - 1
    assert encoded[0] == ZSTD
    return int(zstandard.frame_content_size(encoded[1:]))


def _batch_addresses(body: Any) -> list[str]:
    """``{"addresses": [...]}`` of ``POST /v1/chunks/batch``: 1..MAX distinct addresses."""
    addresses = addresses_body(body)
    if not addresses:
        raise bad("addresses", "addresses must name at least one chunk")
    if len(addresses) > chunk_batch.MAX_ADDRESSES:
        raise bad("addresses", f"addresses: at most {chunk_batch.MAX_ADDRESSES} per request, "
                               f"got {len(addresses)}")
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            raise bad("addresses", f"addresses: chunk {address} is named twice")
        seen.add(address)
    return addresses


def _chunk_frames(store: st.ImageStore, addresses: list[str]) -> Iterator[bytes]:
    """One frame per address, each chunk read (and verified) only when its turn comes.

    An unknown chunk and a corrupt one are frames of their own (the others are still
    worth sending); any other failure escapes and cuts the connection, which the
    client sees as a body with too few frames.
    """
    sent = 0
    try:
        for address in addresses:
            try:
                frame = chunk_batch.chunk_frame(address, store.read_chunk(address))
            except st.ChunkNotFound:
                frame = chunk_batch.missing_frame(address)
            except st.CorruptImage as exc:
                log.error("POST /v1/chunks/batch: %s", exc)
                frame = chunk_batch.corrupt_frame(address, exc.reason)
            yield frame
            sent += 1
    except Exception as exc:
        log.error("POST /v1/chunks/batch aborted after %d of %d chunks (connection cut): "
                  "%s: %s", sent, len(addresses), type(exc).__name__, exc)
        raise


def _json_body() -> Any:
    """The request's JSON (``None`` when it is not JSON: the checks then say so)."""
    return request.get_json(force=True, silent=True)


def create_app(store: st.ImageStore, token: str) -> Flask:
    """The WSGI app serving ``store``; every request must carry ``X-Service-Token: token``."""
    app = Flask("image_store")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    expected_token = token.encode()
    max_encoded = store.info()["chunking"]["max"] + 1  # codec byte + never-larger payload

    @app.before_request
    def _authenticate() -> None:
        request_id = request.headers.get(REQUEST_ID_HEADER) or new_request_id()
        g.context_tokens = (request_id_var.set(request_id), service_var.set(SERVICE_NAME))
        g.request_id = request_id
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, expected_token):
            raise Unauthorized(f"missing or wrong {TOKEN_HEADER} header")
        g.caller = parse_caller(request.headers)

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.teardown_request
    def _reset_context(_exc: BaseException | None) -> None:
        tokens = g.pop("context_tokens", None)
        if tokens is not None:
            for var_token in reversed(tokens):
                var_token.var.reset(var_token)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _error_response(exc.code, exc.message, exc.field, exc.headers)

    @app.errorhandler(st.ImageStoreError)
    def _store_error(exc: st.ImageStoreError) -> Response:
        code = next((s for cls, s in _STATUS_OF if isinstance(exc, cls)), 500)
        headers = {}
        if isinstance(exc, st.RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{exc.size}"
        extra = {}
        if isinstance(exc, st.CorruptImage):
            extra = {"image_id": exc.image_id, "address": exc.address, "offset": exc.offset}
        if code >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        return _error_response(code, str(exc), getattr(exc, "field", None), headers, **extra)

    @app.errorhandler(CorruptChunk)
    def _corrupt_chunk(exc: CorruptChunk) -> Response:
        log.error("%s %s: %s", request.method, request.path, exc)
        return _error_response(500, str(exc), address=exc.address)

    @app.errorhandler(ChunkMissing)
    def _chunk_missing(exc: ChunkMissing) -> Response:
        log.error("%s %s: %s", request.method, request.path, exc)
        return _error_response(500, str(exc), address=exc.address)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Keep the exception's own headers (Allow on a 405, for one) but never its HTML.
        response = exc.get_response()
        code = exc.code or 500
        body = error_body(code, exc.description or "")
        response.set_data(app.json.dumps(body, separators=(",", ":")))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return _error_response(500, f"internal error: {type(exc).__name__}")

    def caller() -> st.Caller:
        return g.caller  # type: ignore[no-any-return]

    def service_or_admin(what: str) -> st.Caller:
        who = caller()
        if who.project_id is not None and not who.is_admin:
            raise ApiError(403, f"{what} is for the service and admins only")
        return who

    @app.get("/v1/info")
    def info() -> Response:
        return jsonify(store.info())

    @app.post("/v1/images")
    def create_image() -> tuple[Response, int]:
        body = check_object(_json_body(), CREATE_TYPES, CREATE_REQUIRED)
        kwargs = {("image_id" if k == "id" else k): v for k, v in body.items()}
        record = store.create(caller(), **kwargs)
        return jsonify(record.to_dict()), 201

    @app.get("/v1/images")
    def list_images() -> Response:
        filters = list_filters(request.args.to_dict(flat=False))
        return jsonify({"images": [r.to_dict() for r in store.list(caller(), **filters)]})

    @app.get("/v1/images/<image_id>")
    def show_image(image_id: str) -> Response:
        return jsonify(store.get(caller(), image_id).to_dict())

    @app.patch("/v1/images/<image_id>")
    def update_image(image_id: str) -> Response:
        changes = check_object(_json_body(), UPDATE_TYPES)
        return jsonify(store.update(caller(), image_id, changes).to_dict())

    @app.delete("/v1/images/<image_id>")
    def delete_image(image_id: str) -> tuple[str, int]:
        store.delete(caller(), image_id)
        return "", 204

    @app.put("/v1/images/<image_id>/file")
    def upload_image(image_id: str) -> Response:
        body = RequestBody(request.stream, request.content_length)
        try:
            record = store.upload(caller(), image_id, body)  # type: ignore[arg-type]
        except UploadInterrupted as exc:
            log.warning("upload of image %s interrupted: %s", image_id, exc)
            raise bad(None, f"upload of image {image_id} interrupted: {exc}; "
                            "the image is now killed") from None
        return jsonify(record.to_dict())

    @app.get("/v1/images/<image_id>/file")
    def download_image(image_id: str) -> Response:
        who = caller()
        record = store.get(who, image_id)
        if record.status != "active":
            raise ApiError(409, f"image {image_id} is {record.status}: only an active "
                                "image has bytes to download")
        size = record.size or 0
        range_header = request.headers.get("Range")
        start, end = (0, size) if range_header is None else parse_range(range_header, size)
        reader = store.open(who, image_id, start, end)
        pieces = iter(reader)
        try:  # the first piece now: a corrupt first chunk is still a clean 500
            first = next(pieces, b"")
        except BaseException:
            reader.close()
            raise
        body = DownloadBody(reader, pieces, bytes(first), image_id, end - start)
        status = 200 if range_header is None else 206
        response = Response(body, status=status, mimetype="application/octet-stream",
                            direct_passthrough=True)
        response.headers["Content-Length"] = str(end - start)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers["X-Image-Sha256"] = record.sha256 or ""
        response.headers["X-Image-Md5"] = record.checksum or ""
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return response

    @app.get("/v1/images/<image_id>/chunks")
    def image_chunks(image_id: str) -> Response:
        size, entries = store.manifest(caller(), image_id)
        return jsonify({"size": size,
                        "chunks": [[e.offset, e.length, e.address] for e in entries]})

    @app.post("/v1/images/<image_id>/chunks/missing")
    def missing_chunks(image_id: str) -> Response:
        addresses = addresses_body(_json_body())
        return jsonify({"missing": store.missing(caller(), image_id, addresses)})

    @app.put("/v1/images/<image_id>/chunks/<address>")
    def put_chunk(image_id: str, address: str) -> tuple[str, int]:
        check_address(address)
        try:
            encoded = RequestBody(request.stream, request.content_length).read_all(max_encoded)
        except UploadInterrupted as exc:
            raise bad(None, f"chunk {address} of image {image_id}: {exc}") from None
        except ValueError:
            raise bad(None, f"chunk {address}: an encoded chunk is at most {max_encoded} "
                            "bytes (the store's largest chunk plus the codec byte)") from None
        try:
            store.put_chunk(caller(), image_id, address, encoded)
        except CorruptChunk as exc:  # the client's bytes, not the store's: bad input
            raise bad(None, f"the body does not hold chunk {address}: {exc.reason}") from None
        return "", 204

    @app.post("/v1/images/<image_id>/manifest")
    def commit_manifest(image_id: str) -> Response:
        size, entries = manifest_body(_json_body())
        return jsonify(store.commit_manifest(caller(), image_id, size, entries).to_dict())

    @app.get("/v1/chunks/<address>")
    def get_chunk(address: str) -> Response:
        if caller().project_id is not None:
            raise ApiError(403, "chunks are read by the service only (no "
                                "X-Ironbark-Project header)")
        check_address(address)
        encoded = store.read_chunk(address)
        response = Response(encoded, mimetype=CHUNK_MIMETYPE)
        response.headers["X-Chunk-Length"] = str(_plain_length(encoded))
        return response

    @app.post("/v1/chunks/batch")
    def get_chunks() -> Response:
        if caller().project_id is not None:
            raise ApiError(403, "chunks are read by the service only (no "
                                "X-Ironbark-Project header)")
        addresses = _batch_addresses(_json_body())
        # stream_with_context: the request (and its request id in the logs) lasts
        # until the last frame is sent.
        body = stream_with_context(_chunk_frames(store, addresses))
        return Response(body, mimetype=chunk_batch.MIMETYPE, direct_passthrough=True)

    @app.get("/v1/stats")
    def stats() -> Response:
        service_or_admin("GET /v1/stats")
        return jsonify(store.stats())

    @app.post("/v1/scrub")
    def scrub() -> Response:
        service_or_admin("POST /v1/scrub")
        empty_object(_json_body(), request.get_data(cache=False)[:4096])
        return jsonify(store.scrub())

    return app
