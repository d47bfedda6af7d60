"""Which failures a consumer waits out (never parking) and which count towards parking."""

from __future__ import annotations

import asyncpg.exceptions
import nats.errors
import pytest
from sqlalchemy import exc as sa_exc

from comuna_platform.errors import Unavailable
from comuna_platform.events.failures import UnprocessableEvent, is_transient


def wrapped(error: BaseException) -> sa_exc.DBAPIError:
    """As SQLAlchemy raises a driver error: the original on `.orig` and as the cause."""
    try:
        try:
            raise error
        except BaseException as inner:
            raise sa_exc.DBAPIError("SELECT 1", {}, inner) from inner
    except sa_exc.DBAPIError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        OSError("Network is unreachable"),
        TimeoutError(),
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sa_exc.TimeoutError("QueuePool limit reached"),
        wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")),
        wrapped(asyncpg.exceptions.SerializationError("could not serialize access")),
        wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")),
        nats.errors.ConnectionClosedError(),
        nats.errors.NoServersError(),
        Unavailable("identity is unreachable"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_outages_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("bug"),
        KeyError("commune"),
        UnprocessableEvent("not a UUID"),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        wrapped(asyncpg.exceptions.CheckViolationError("violates check constraint")),
        wrapped(asyncpg.exceptions.StringDataRightTruncationError("value too long")),
    ],
    ids=lambda error: type(error).__name__,
)
def test_handler_errors_are_not(error: BaseException) -> None:
    assert not is_transient(error)


def test_an_outage_handled_earlier_does_not_make_a_later_bug_transient() -> None:
    try:
        try:
            raise ConnectionResetError("earlier, already dealt with")
        except ConnectionResetError:
            raise RuntimeError("the handler's own bug") from None
    except RuntimeError as error:
        assert not is_transient(error)
    try:
        try:
            raise OSError("implicit context")
        except OSError:
            raise ValueError("raised while handling it")  # noqa: B904 - the implicit context is the point
    except ValueError as error:
        assert not is_transient(error)


def test_an_unprocessable_event_caused_by_an_outage_is_still_unprocessable() -> None:
    error = UnprocessableEvent("ids are not ids")
    error.__cause__ = ConnectionResetError()
    assert not is_transient(error)
