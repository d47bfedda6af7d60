"""RFC 9457 problem+json for every error a REST client can see.

Clients get a stable `code`, a human `detail` and the request's trace id; never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from comuna_platform.auth.errors import AuthenticationError, KeySetUnavailableError, PermissionDeniedError
from comuna_platform.db_errors import DATABASE_ERRORS, RETRY_AFTER_SECONDS, classify
from comuna_platform.errors import ProblemError, RateLimited, Unavailable
from comuna_platform.telemetry import current_trace_id

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://comuna.dev/problems/"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
    429: "too_many_requests",
}


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status=status, code=code, title=title, detail=detail, instance=request.url.path, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_body(*, status: int, code: str, title: str, detail: str, instance: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        "trace_id": current_trace_id(),
        **extra,
    }


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    headers = None
    if isinstance(exc, Unavailable):
        # A dependency is down, not the request wrong: tell clients when to try the same again.
        headers = {"Retry-After": str(exc.extra.get("retry_after", RETRY_AFTER_SECONDS))}
    elif isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem_response(
        request, status=exc.status, code=exc.code, title=exc.title, detail=exc.detail, headers=headers, **exc.extra
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error a use case let through: the client's input or an outage, never a 500."""
    problem = classify(exc)
    if problem is None:
        return await _unexpected_error(request, exc)
    # Type and SQLSTATE only: the message may quote the values, which may be personal data.
    log.warning(
        "database error answered as %s",
        problem.code,
        extra={"error": type(exc).__name__, "sqlstate": getattr(getattr(exc, "orig", None), "sqlstate", None)},
    )
    return await _problem_error(request, problem)


async def _authentication_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthenticationError)
    return problem_response(
        request,
        status=401,
        code=exc.code,
        title="Unauthenticated",
        detail=str(exc),
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def _permission_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PermissionDeniedError)
    return problem_response(request, status=403, code=exc.code, title="Forbidden", detail=str(exc))


async def _keyset_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The issuer is down, not the caller's token bad: 503 so clients retry with the same token.
    return problem_response(
        request,
        status=503,
        code="jwks_unavailable",
        title="Service unavailable",
        detail="token keys cannot be fetched right now; retry later",
        headers={"Retry-After": "2"},
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Echo where and why, never the submitted values (they may hold id numbers).
    errors = [
        {
            "location": [str(part) for part in err.get("loc", ())],
            "message": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    return problem_response(
        request,
        status=422,
        code="validation_error",
        title="Invalid request",
        detail="The request did not pass validation.",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        title=code.replace("_", " ").capitalize(),
        detail=str(exc.detail),
        headers=dict(exc.headers or {}),
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal error",
        detail="An unexpected error occurred; it has been logged.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(AuthenticationError, _authentication_error)
    app.add_exception_handler(PermissionDeniedError, _permission_error)
    app.add_exception_handler(KeySetUnavailableError, _keyset_unavailable)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for error_type in DATABASE_ERRORS:
        app.add_exception_handler(error_type, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
