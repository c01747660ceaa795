"""Retrying requests that a server dropped on a reused keep-alive connection.

A server closes an idle keep-alive connection on its own schedule (gunicorn after
``keepalive`` seconds). A client that sends on that connection in the same instant
gets a reset or an empty answer, before any response byte: the request may or may not
have been seen. Browsers and urllib3 settle this the same way, and so do we: resend
requests whose repetition changes nothing (RFC 9110, 9.2.2: GET, HEAD, OPTIONS, and
read-only requests the caller vouches for), never a create or an upload.

urllib3's ``Retry`` does the work: ``connect`` counts failures to open a connection
(nothing was sent), ``read`` counts requests that were sent and answered with nothing,
which it only resends for ``allowed_methods``. HTTP error statuses are never retried
here: they are answers, and the caller reports them.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A dropped connection is resent at once: the server has just closed it, so the next
# attempt opens a fresh one. A second failure in a row is a real outage; the short
# back-off spares a restarting server a burst.
ATTEMPTS = 3
BACKOFF = 0.1


class _DroppedOnly(Retry):
    """urllib3's policy, less read timeouts: a server too slow to answer within the
    timeout would only be asked again, multiplying the caller's wait."""

    def increment(self, method: str | None = None, url: str | None = None,
                  *args: Any, **kwargs: Any) -> Retry:
        error = kwargs.get("error")
        if isinstance(error, ReadTimeoutError):
            raise error
        return super().increment(method, url, *args, **kwargs)


def retry(methods: frozenset[str] = SAFE_METHODS) -> Retry:
    """The retry policy for ``methods``: connection failures and empty answers only."""
    return _DroppedOnly(total=ATTEMPTS, connect=ATTEMPTS, read=ATTEMPTS, status=0, other=0,
                 redirect=0, allowed_methods=methods, backoff_factor=BACKOFF,
                 raise_on_status=False, raise_on_redirect=False,
                 respect_retry_after_header=False)


def adapter(methods: frozenset[str] = SAFE_METHODS, pool_maxsize: int = 10) -> HTTPAdapter:
    return HTTPAdapter(max_retries=retry(methods), pool_maxsize=pool_maxsize)


def session(pool_maxsize: int = 10) -> requests.Session:
    """A session that resends safe requests dropped by the server."""
    s = requests.Session()
    for scheme in ("http://", "https://"):
        s.mount(scheme, adapter(pool_maxsize=pool_maxsize))
    return s


def allow_read_only_post(s: requests.Session, url_prefix: str,
                         pool_maxsize: int = 10) -> None:
    """Resend POSTs under ``url_prefix`` too: the caller vouches they only read.

    requests picks a session's adapter by the longest matching URL prefix, so this
    adapter serves those URLs alone (with its own connection pool).
    """
    s.mount(url_prefix, adapter(SAFE_METHODS | {"POST"}, pool_maxsize))
