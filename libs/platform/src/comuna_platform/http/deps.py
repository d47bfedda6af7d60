"""FastAPI dependencies for reaching the running service's connections from a route."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from fastapi import Request

if TYPE_CHECKING:
    from comuna_platform.runtime import Runtime


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, a thread hop per request for what is an attribute lookup.
async def get_runtime(request: Request) -> Runtime:
    return cast("Runtime", request.app.state.runtime)
