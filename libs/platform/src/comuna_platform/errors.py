"""Domain errors with a stable machine-readable code.

Domain code raises these; the REST layer renders them as RFC 9457 problem+json and the gRPC
layer as a status code with an ErrorInfo detail. One definition, two transports.
"""

from __future__ import annotations

from typing import Any

import grpc


class ProblemError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"
    grpc_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(ProblemError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"
    grpc_code = grpc.StatusCode.NOT_FOUND


class Conflict(ProblemError):
    """The request is well-formed but clashes with existing state (e.g. a second vote)."""

    status = 409
    code = "conflict"
    title = "Conflict"
    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ProblemError):
    """The resource is not in a state that allows this (e.g. voting on a closed consultation)."""

    status = 409
    code = "failed_precondition"
    title = "Failed precondition"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(ProblemError):
    status = 401
    code = "unauthenticated"
    title = "Unauthenticated"
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"
    title = "Forbidden"
    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ProblemError):
    """A dependency (another service) could not be reached; the client may retry."""

    status = 503
    code = "dependency_unavailable"
    title = "Service unavailable"
    grpc_code = grpc.StatusCode.UNAVAILABLE


class RateLimited(ProblemError):
    """The caller used up its allowance under a rate limit (`comuna_platform.rate_limit`).

    `retry_after` (whole seconds) becomes the REST `Retry-After` header and a field of the
    problem; on gRPC, RESOURCE_EXHAUSTED with `retry_after` in the ErrorInfo metadata.
    """

    status = 429
    code = "rate_limited"
    title = "Too many requests"
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code, retry_after=retry_after)
        self.retry_after = retry_after
