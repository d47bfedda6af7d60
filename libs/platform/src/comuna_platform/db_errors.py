"""What a database error that escaped a use case means to the client: its input was wrong (422),
it clashes with stored state (409), or the database cannot be reached right now (503).

The input edge (`comuna_platform.input_safety`) stops what it can recognise up front; this is
the net under it, so that no value PostgreSQL refuses (a string too long for its column, a
number out of range, a CHECK constraint) and no outage ever surfaces as a 500. REST and gRPC
both translate through `classify`, so the two transports agree.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc

from comuna_platform.errors import Conflict, InvalidInput, ProblemError, Unavailable

# Seconds a client should wait before retrying while the database is unavailable.
RETRY_AFTER_SECONDS = 2

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_DATA_EXCEPTION_CLASS = "22"  # string too long, numeric out of range, invalid text representation...
_INVALID_INPUT_CODES = frozenset({"23502", "23514"})  # not-null and CHECK violations
_CONFLICT_CLASS = "23"  # unique, foreign key, exclusion: clashes with stored rows
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57"})  # connection, resources, operator intervention
_UNAVAILABLE_CODES = frozenset({"40001", "40P01"})  # serialization failure, deadlock: retry


class DatabaseUnavailable(Unavailable):
    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__("the database is unavailable right now; retry later", retry_after=RETRY_AFTER_SECONDS)


def classify(error: BaseException) -> ProblemError | None:
    """The problem a database error stands for, or None if it is not one (a genuine bug)."""
    if isinstance(error, sa_exc.DBAPIError):
        cause = error.orig.__cause__ if error.orig is not None else None
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(cause, "sqlstate", None)
        return _by_sqlstate(sqlstate) or _by_driver_error(cause) or _by_wrapper(error)
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        # No pooled connection became free in time, or the pool found its connection dead.
        return DatabaseUnavailable()
    if isinstance(error, asyncpg.PostgresError):
        return _by_sqlstate(getattr(error, "sqlstate", None)) or _by_driver_error(error)
    return _by_driver_error(error)


def _by_sqlstate(sqlstate: str | None) -> ProblemError | None:
    if not sqlstate:
        return None
    if sqlstate.startswith(_DATA_EXCEPTION_CLASS) or sqlstate in _INVALID_INPUT_CODES:
        return InvalidInput("a value in the request cannot be stored (wrong format, too long or out of range)")
    if sqlstate == "23505":
        return Conflict("this already exists", code="already_exists")
    if sqlstate.startswith(_CONFLICT_CLASS):
        return Conflict("the request conflicts with stored data")
    if sqlstate[:2] in _UNAVAILABLE_CLASSES or sqlstate in _UNAVAILABLE_CODES:
        return DatabaseUnavailable()
    return None


def _by_driver_error(error: BaseException | None) -> ProblemError | None:
    if error is None:
        return None
    if isinstance(error, asyncpg.exceptions.DataError):
        # Refused by asyncpg before sending: e.g. an integer beyond int64, text it cannot encode.
        return InvalidInput("a value in the request cannot be stored (wrong format, too long or out of range)")
    if isinstance(
        error,
        asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError | asyncpg.InterfaceError | OSError,
    ):
        return DatabaseUnavailable()
    return None


def _by_wrapper(error: sa_exc.DBAPIError) -> ProblemError | None:
    if error.connection_invalidated or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return DatabaseUnavailable()
    return None


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)
