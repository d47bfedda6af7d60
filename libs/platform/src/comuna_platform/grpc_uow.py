"""The unit of work for gRPC methods: the servicer-side twin of `http.deps.UnitOfWorkDep`.

    class FundingServicer(...):
        def __init__(self, runtime: Runtime) -> None:
            self.db = runtime.db

        @with_unit_of_work
        async def GetAllocation(self, request: pb.GetAllocationRequest, uow: UnitOfWork) -> pb.Allocation:
            ...

The method runs inside one transaction, committed when it returns and rolled back when it
raises (the error interceptor then maps the error to a status).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from comuna_platform.db import Database
from comuna_platform.uow import UnitOfWork

Request = TypeVar("Request")
Response = TypeVar("Response")


class HasDatabase(Protocol):
    db: Database


S = TypeVar("S", bound=HasDatabase)


def with_unit_of_work(
    method: Callable[[S, Request, UnitOfWork], Awaitable[Response]],
) -> Callable[[S, Request, Any], Awaitable[Response]]:
    @functools.wraps(method)
    async def rpc(self: S, request: Request, context: Any) -> Response:
        async with self.db.unit_of_work() as uow:
            return await method(self, request, uow)

    return rpc
