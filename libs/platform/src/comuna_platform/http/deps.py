"""FastAPI dependencies for reaching the running service's connections from a route."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from comuna_platform.runtime import Runtime


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, a thread hop per request for what is an attribute lookup.
async def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


# `runtime: RuntimeDep` in a route: the running service's connections.
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
