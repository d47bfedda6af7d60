"""Serve a service's gRPC API on a free port, as `serve` does, for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from comuna_devstack.ports import free_port
from comuna_platform.rpc import create_grpc_server
from comuna_platform.runtime import ServiceSpec
from tests.support.service import RunningService


@asynccontextmanager
async def grpc_server(spec: ServiceSpec, service: RunningService) -> AsyncIterator[str]:
    """Yields the target (`127.0.0.1:port`)."""
    port = free_port()
    server = create_grpc_server(
        host="127.0.0.1",
        port=port,
        verifier=service.runtime.verifier,
        register=lambda s: spec.grpc_register(service.runtime, s),
    )
    await server.server.start()
    await server.set_serving(True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.server.stop(grace=None)
