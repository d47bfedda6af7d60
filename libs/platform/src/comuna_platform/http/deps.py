"""FastAPI dependencies for reaching the running service's connections from a route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request

from comuna_platform.runtime import Runtime
from comuna_platform.uow import UnitOfWork


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread
# pool, a thread hop per request for what is an attribute lookup.
async def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


# `runtime: RuntimeDep` in a route: the running service's connections.
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    async with (await get_runtime(request)).db.unit_of_work() as uow:
        yield uow


# `uow: UnitOfWorkDep` in a route: one transaction for the request, handed to the use case.
# scope="function": it commits when the route function returns, BEFORE the response is sent,
# so a failed commit is an error response, never a 2xx for a change that did not happen; an
# exception in the route rolls it back.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work, scope="function")]
