"""One error type for every failure a user or client can cause, rendered as a page or JSON."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal with a stable code, a human message and an HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: Any, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class SeedError(DomainError):
    """Seed data on disk is malformed; names the file and the field."""

    code = "seed_invalid"
