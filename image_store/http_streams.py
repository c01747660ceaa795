"""The two streamed bodies of the image store's HTTP API: uploads in, downloads out.

Upload: :class:`ironbark.request_body.RequestBody` (shared with the Cloud Manager's
upload proxy) turns every flavour of a body cut short into :class:`UploadInterrupted`.

Download: the status line and headers are sent before the first chunk is read
further on, so a corrupt chunk met half-way cannot become an error response. The
only honest answer is to cut the connection: :class:`DownloadBody` logs, then lets
the error escape to the WSGI server, which (werkzeug and gunicorn alike, both tested)
closes the socket; with ``Content-Length`` set, the client sees a short body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from image_store.store import CorruptImage
from ironbark.request_body import BLOCK, RequestBody, UploadInterrupted

log = logging.getLogger(__name__)

__all__ = ["BLOCK", "DownloadBody", "RequestBody", "UploadInterrupted"]


class DownloadBody:
    """The WSGI body of a download: verified pieces from an ImageStore reader.

    ``first`` was read before the response started (so a corrupt first chunk is still
    a clean 500). ``close`` -- called by the WSGI server when the response ends, the
    client goes away or the server gives up -- always closes the reader, even for a
    body never iterated (a HEAD request).
    """

    def __init__(self, reader: Any, pieces: Iterator[bytes], first: bytes, image_id: str,
                 length: int) -> None:
        self._reader = reader
        self._pieces = pieces
        self._first = first
        self._image_id = image_id
        self._length = length
        self.sent = 0
        self._started = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        self._started = True
        try:
            if self._first:
                first, self._first = self._first, b""
                self.sent += len(first)
                yield first
            for piece in self._pieces:
                self.sent += len(piece)
                yield bytes(piece)
        except CorruptImage as exc:
            log.error("download of image %s aborted after %d of %d bytes (connection cut): %s",
                      self._image_id, self.sent, self._length, exc)
            raise
        except Exception as exc:  # deleted while read, backend down: the same cut
            log.error("download of image %s aborted after %d of %d bytes (connection cut): "
                      "%s: %s", self._image_id, self.sent, self._length,
                      type(exc).__name__, exc)
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started and self.sent < self._length:  # not for HEAD
            log.info("download of image %s stopped after %d of %d bytes", self._image_id,
                     self.sent, self._length)
        self._reader.close()
