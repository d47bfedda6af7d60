"""gRPC server and client plumbing: health, reflection, auth, tracing and error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from prometheus_client import Counter

from comuna_platform.auth.errors import AuthenticationError, PermissionDeniedError
from comuna_platform.auth.grpc import AuthInterceptor, current_principal, status_trailers
from comuna_platform.auth.principal import Principal
from comuna_platform.auth.verifier import TokenVerifier
from comuna_platform.db_errors import DATABASE_ERRORS, classify
from comuna_platform.errors import Forbidden, InvalidInput, ProblemError, Unauthenticated
from comuna_platform.input_safety import InputProblem, message_problems

log = logging.getLogger(__name__)

# Calls served per method and status: lets operators (and the e2e test) see which peers call
# what, e.g. that voting makes no call to identity per ballot.
GRPC_REQUESTS = Counter("comuna_grpc_requests_total", "gRPC requests served", ["method", "code"])


def _status_for(exc: ProblemError) -> tuple[grpc.StatusCode, tuple[tuple[str, bytes], ...]]:
    """A google.rpc.Status with an ErrorInfo carrying our stable error code."""
    metadata = {k: str(v) for k, v in exc.extra.items()}
    return exc.grpc_code, status_trailers(exc.grpc_code, exc.code, exc.detail, metadata)


def _invalid_request(problems: list[InputProblem]) -> InvalidInput:
    fields = ",".join(".".join(str(part) for part in problem.location) for problem in problems)
    return InvalidInput(f"{fields}: {problems[0].message}", code="invalid_characters", field=fields)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Refuses requests with characters PostgreSQL cannot store (INVALID_ARGUMENT naming the
    fields) before the servicer runs; turns domain errors into status codes and database errors
    into INVALID_ARGUMENT / ALREADY_EXISTS / UNAVAILABLE; anything else becomes INTERNAL without
    detail."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_stream is not None:
            return self._server_streaming(handler, method)
        if handler.unary_unary is None:
            return handler
        inner: Any = handler.unary_unary

        async def behavior(request: Any, context: Any) -> Any:
            try:
                _check_request(request)
                reply = await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)
                return None
            GRPC_REQUESTS.labels(method, "OK").inc()
            return reply

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    @staticmethod
    def _server_streaming(handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        """The same checks and error mapping for a server-streaming method, also for errors
        raised between two messages of the stream."""
        inner: Any = handler.unary_stream

        async def behavior(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                _check_request(request)
                async for message in inner(request, context):
                    yield message
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(exc, context, method)
            GRPC_REQUESTS.labels(method, "OK").inc()

        return grpc.unary_stream_rpc_method_handler(
            behavior,
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


def _check_request(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidInput("the request message cannot be decoded", code="invalid_message")
    if isinstance(request, Message) and (problems := message_problems(request)):
        raise _invalid_request(problems)


async def _abort_for(exc: Exception, context: Any, method: str) -> None:
    """Abort the call with the status `exc` stands for (always raises AbortError)."""
    try:
        await _abort_with_status(exc, context, method)
    finally:
        code = context.code()
        GRPC_REQUESTS.labels(method, getattr(code, "name", str(code))).inc()


async def _abort_with_status(exc: Exception, context: Any, method: str) -> None:
    if isinstance(exc, ProblemError):
        code, trailers = _status_for(exc)
        await context.abort(code, exc.detail, trailing_metadata=trailers)
    elif isinstance(exc, PermissionDeniedError):
        code, trailers = _status_for(Forbidden(exc.detail, code=exc.code))
        await context.abort(code, exc.detail, trailing_metadata=trailers)
    elif isinstance(exc, AuthenticationError):
        code, trailers = _status_for(Unauthenticated(exc.detail, code=exc.code))
        await context.abort(code, exc.detail, trailing_metadata=trailers)
    elif isinstance(exc, DATABASE_ERRORS):
        problem = classify(exc)
        if problem is None:
            log.exception("unhandled gRPC error", extra={"method": method})
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            return
        # Type and SQLSTATE only: the message may quote values that are personal data.
        log.warning(
            "database error answered as %s", problem.code, extra={"method": method, "error": type(exc).__name__}
        )
        code, trailers = _status_for(problem)
        await context.abort(code, problem.detail, trailing_metadata=trailers)
    else:
        log.exception("unhandled gRPC error", extra={"method": method}, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")


class _Undecodable:
    """Stands for a request whose bytes are not the expected message (e.g. invalid UTF-8 in a
    string field): grpc would answer INTERNAL for a deserializer error, the caller's mistake is
    INVALID_ARGUMENT."""


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return _Undecodable()

    return deserialize


def error_code_of(error: grpc.aio.AioRpcError) -> str | None:
    """The stable error code a Comuna server put in the status details, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return None


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    health_servicer: health.aio.HealthServicer
    service_names: list[str]

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING (or NOT_SERVING while draining) overall and for each service."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health_servicer.set(name, status)


def create_grpc_server(
    *,
    host: str,
    port: int,
    verifier: TokenVerifier,
    register: Callable[[grpc.aio.Server], Sequence[str]],
    reuse_port: bool = False,
) -> GrpcServer:
    """A server with our interceptors, the standard health service and reflection.

    `register` adds the service's servicers and returns their full service names. The port is
    exclusive (a second server on it fails to start) unless `reuse_port` (settings.reuse_port).
    """
    server = grpc.aio.server(
        interceptors=[
            aio_server_interceptor(),  # type: ignore[no-untyped-call]
            AuthInterceptor(verifier),
            ErrorInterceptor(),
        ],
        options=[("grpc.so_reuseport", int(reuse_port))],
    )
    names = list(register(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    server.add_insecure_port(f"{host}:{port}")
    return GrpcServer(server=server, health_servicer=health_servicer, service_names=names)


def client_channel(target: str, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    """An insecure channel (mTLS is the mesh's job in Kubernetes) with tracing and auth."""
    return grpc.aio.insecure_channel(
        target,
        interceptors=[*aio_client_interceptors(), *interceptors],  # type: ignore[no-untyped-call]
    )


def require_service_caller() -> Principal:
    """Inside a servicer method: the caller must be another service (role `service`)."""
    principal = current_principal()
    if not principal.has_role("service"):
        raise Forbidden("only services may call this gRPC API", code="forbidden_role")
    return principal
