"""FastAPI dependencies for reaching the running service's connections from a route."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import Request

if TYPE_CHECKING:
    from comuna_platform.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return cast("Runtime", request.app.state.runtime)
