"""A WSGI request body read safely: a client that vanishes mid-upload is never an image.

WSGI servers disagree on what a client that vanishes mid-body looks like. werkzeug's
stream raises ``ClientDisconnected`` (and its chunked reader, given a bytearray, can
return bytes past the end of a cut chunk: a memoryview makes it raise instead);
gunicorn (``wsgi.input_terminated``) just returns end-of-data early, which a naive
reader would store as a complete, truncated image. :class:`RequestBody` counts bytes
against ``Content-Length`` and turns every flavour of early end into
:class:`UploadInterrupted`. The image store and the Cloud Manager's upload proxy both
read uploads through it.
"""

from __future__ import annotations

from typing import Any, BinaryIO

BLOCK = 1024 * 1024


class UploadInterrupted(Exception):
    """The request body ended (or broke) before the client had sent all of it."""


class RequestBody:
    """A request's body as a file-like object that never mistakes a cut for the end.

    Reads go through the WSGI input's ``readinto`` when it has one, into a memoryview:
    werkzeug's chunked-body reader resizes the buffer it is given when the body is cut
    mid-chunk, which a bytearray silently allows (and ``RawIOBase.read`` then copies
    past its end: a crash) but a memoryview refuses with an exception.
    """

    def __init__(self, stream: BinaryIO, content_length: int | None) -> None:
        self._stream = stream
        self._expected = content_length
        self.received = 0

    def _fill(self, view: memoryview) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return readinto(view)  # type: ignore[no-any-return]
        data = self._stream.read(len(view))
        if data is None or len(data) > len(view):
            raise ValueError(f"read({len(view)}) returned "
                             f"{'nothing' if data is None else len(data)} bytes")
        view[:len(data)] = data
        return len(data)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view)
        if self._expected is not None:
            want = min(want, self._expected - self.received)
        if want <= 0:
            return 0
        try:
            n = self._fill(view[:want])
        except Exception as exc:  # werkzeug's ClientDisconnected, gunicorn's NoMoreData...
            raise UploadInterrupted(
                f"the request body broke after {self.received} bytes ({exc})") from exc
        if n is None:  # never from a blocking WSGI input; never taken for the end
            raise UploadInterrupted("the request body returned no data (non-blocking read)")
        self.received += n
        if n == 0 and self._expected is not None:
            raise UploadInterrupted(f"the request body ended after {self.received} of "
                                    f"{self._expected} bytes")
        return int(n)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while part := self.read(BLOCK):
                parts.append(part)
            return b"".join(parts)
        buffer = bytearray(size)
        n = self.readinto(buffer)
        del buffer[n:]
        return bytes(buffer)

    def readable(self) -> bool:
        return True

    def read_all(self, limit: int) -> bytes:
        """The whole body if it is at most ``limit`` bytes, else ``ValueError``."""
        parts = []
        total = 0
        while data := self.read(min(1024 * 1024, limit + 1 - total)):
            parts.append(data)
            total += len(data)
            if total > limit:
                raise ValueError(f"the body is longer than {limit} bytes")
        return b"".join(parts)
