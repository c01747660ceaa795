"""Errors of the Cloud Manager's services; the API turns each into its HTTP status."""

from __future__ import annotations


class CloudError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, message: str, field: str | None = None):
        self.message, self.field = message, field
        super().__init__(message)


class BadInput(CloudError):
    status, title = 400, "Bad Request"


class Unauthorized(CloudError):
    status, title = 401, "Unauthorized"


class Forbidden(CloudError):
    status, title = 403, "Forbidden"


class NotFound(CloudError):
    status, title = 404, "Not Found"


class Conflict(CloudError):
    status, title = 409, "Conflict"


class Unavailable(CloudError):
    status, title = 503, "Service Unavailable"
