"""The one mapping of failed calls to identity (ResolvePrincipal, GetTerritory) to platform
errors: always 503, never an answer; a refused service token dropped; only the unexpected
logged as errors (pure logic: errors built by hand, no server)."""

from __future__ import annotations

import logging

import grpc
import pytest

from comuna_platform.auth.errors import TokenSourceError
from comuna_platform.auth.identity_errors import identity_unavailable
from comuna_platform.errors import Unavailable


class Tokens:
    def __init__(self) -> None:
        self.invalidated = 0

    def invalidate(self) -> None:
        self.invalidated += 1


def rpc_error(code: grpc.StatusCode, details: str = "boom") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def mapped(exc: grpc.aio.AioRpcError | TokenSourceError, tokens: Tokens | None) -> Unavailable:
    return identity_unavailable(exc, method="GetTerritory", unable="identity could not say X", tokens=tokens)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_identity_down_or_slow_is_503_without_an_error_line(
    code: grpc.StatusCode, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = Tokens()
    with caplog.at_level(logging.INFO, logger="comuna_platform.auth.identity_errors"):
        error = mapped(rpc_error(code), tokens)
    assert (error.status, error.code, str(error)) == (503, "identity_unavailable", "identity could not say X")
    assert tokens.invalidated == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_refused_token_is_dropped_so_the_next_call_fetches_a_new_one(caplog: pytest.LogCaptureFixture) -> None:
    tokens = Tokens()
    with caplog.at_level(logging.ERROR, logger="comuna_platform.auth.identity_errors"):
        error = mapped(rpc_error(grpc.StatusCode.UNAUTHENTICATED, "token expired"), tokens)
    assert (error.status, error.code) == (503, "identity_unavailable")
    assert tokens.invalidated == 1
    assert "GetTerritory" in caplog.text and "UNAUTHENTICATED" in caplog.text
    # Without a token source (a client built without one), the same answer.
    assert mapped(rpc_error(grpc.StatusCode.UNAUTHENTICATED), None).code == "identity_unavailable"


@pytest.mark.parametrize("code", [grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN])
def test_any_other_refusal_is_503_and_logged_as_an_error(
    code: grpc.StatusCode, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = Tokens()
    with caplog.at_level(logging.ERROR, logger="comuna_platform.auth.identity_errors"):
        error = mapped(rpc_error(code, "not for you"), tokens)
    assert (error.status, error.code) == (503, "identity_unavailable")
    assert tokens.invalidated == 0
    assert "identity GetTerritory failed" in caplog.text and "not for you" in caplog.text


def test_no_service_token_is_its_own_503(caplog: pytest.LogCaptureFixture) -> None:
    tokens = Tokens()
    with caplog.at_level(logging.ERROR, logger="comuna_platform.auth.identity_errors"):
        error = mapped(TokenSourceError("issuer down"), tokens)
    assert (error.status, error.code) == (503, "service_token_unavailable")
    assert tokens.invalidated == 0
    assert "issuer down" in caplog.text
