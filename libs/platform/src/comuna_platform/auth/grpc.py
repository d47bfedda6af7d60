"""gRPC plumbing for tokens: a server interceptor that authenticates every non-public call and
enforces the contracts' allow-list, and a client interceptor that attaches this service's own
token to outgoing calls.

Authentication and the allow-list happen once, in the interceptor, so no servicer can forget
them; servicers read
the caller with `current_principal()`. grpc.aio runs the interceptors and the handler of one
call in the same fresh `contextvars.Context`, which is what makes the ContextVar safe here:
a principal can never leak from one call into another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from .allow_list import AllowList
from .bearer import bearer_token
from .errors import AuthenticationError, KeySetUnavailableError, PermissionDeniedError
from .principal import Principal
from .token_source import ClientCredentialsTokenSource, TokenProvider

__all__ = [
    "DEFAULT_PUBLIC_SERVICES",
    "ERROR_DOMAIN",
    "AuthInterceptor",
    "BearerTokenUnaryStreamInterceptor",
    "BearerTokenUnaryUnaryInterceptor",
    "ClientCredentialsTokenSource",
    "bearer_token_interceptors",
    "current_principal",
    "optional_principal",
    "status_trailers",
]

# `domain` of the google.rpc.ErrorInfo detail carrying Comuna's stable error code.
ERROR_DOMAIN = "comuna.dev"

# Load balancers and tooling must reach these without credentials.
DEFAULT_PUBLIC_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
)

_principal: ContextVar[Principal | None] = ContextVar("comuna_principal", default=None)


def current_principal() -> Principal:
    """The caller of the current RPC; `AuthenticationError` inside a public method."""
    principal = _principal.get()
    if principal is None:
        raise AuthenticationError("token_missing", "no authenticated caller in this context")
    return principal


def optional_principal() -> Principal | None:
    """The caller of the current RPC, or None (public method, or not inside an RPC)."""
    return _principal.get()


class PrincipalVerifier(Protocol):
    async def verify(self, token: str) -> Principal: ...


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """Rejects non-public calls without a valid bearer token, or from a caller the method's
    contract does not list, before any handler runs.

    `public_methods` holds full method names (`/pkg.Service/Method`); health and reflection
    services are always public. Unknown methods are treated as protected, so probing method
    names without a token only ever yields UNAUTHENTICATED, and with a token PERMISSION_DENIED.
    """

    def __init__(
        self,
        verifier: PrincipalVerifier,
        public_methods: Iterable[str] = (),
        allow_list: AllowList | None = None,
    ) -> None:
        self._verifier = verifier
        self._public_methods = frozenset(public_methods)
        self._allow_list = allow_list or AllowList()

    def is_public(self, method: str) -> bool:
        service = method.lstrip("/").partition("/")[0]
        return method in self._public_methods or service in DEFAULT_PUBLIC_SERVICES

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        method = handler_call_details.method
        if self.is_public(method):
            return await continuation(handler_call_details)
        try:
            token = bearer_token(_single_header(handler_call_details.invocation_metadata))
            principal = await self._verifier.verify(token)
            self._allow_list.check(method, principal)
        except AuthenticationError as exc:
            handler = await continuation(handler_call_details)
            return _aborting_handler(handler, grpc.StatusCode.UNAUTHENTICATED, exc.code)
        except KeySetUnavailableError as exc:
            handler = await continuation(handler_call_details)
            return _aborting_handler(handler, grpc.StatusCode.UNAVAILABLE, exc.code)
        except PermissionDeniedError as exc:
            handler = await continuation(handler_call_details)
            trailers = status_trailers(grpc.StatusCode.PERMISSION_DENIED, exc.code, exc.detail)
            return _aborting_handler(handler, grpc.StatusCode.PERMISSION_DENIED, exc.detail, trailers)
        _principal.set(principal)
        return await continuation(handler_call_details)


def status_trailers(
    code: Any, reason: str, message: str, metadata: Mapping[str, str] | None = None
) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata with a google.rpc.Status whose ErrorInfo carries our stable error code."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=dict(metadata or {}))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


def _single_header(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    values = [value for key, value in metadata or () if key.lower() == "authorization"]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        raise AuthenticationError("token_invalid", "exactly one authorization header expected")
    return values[0]


def _aborting_handler(handler: Any, code: Any, details: str, trailers: tuple[tuple[str, bytes], ...] = ()) -> Any:
    """A handler of the same streaming shape as `handler` that only aborts.

    No deserializer is installed, so a refused caller's payload is never parsed.
    """

    async def abort(_request: object, context: Any) -> None:
        await context.abort(code, details, trailing_metadata=trailers)

    async def abort_stream(_request: object, context: Any) -> AsyncIterator[Any]:
        # An async generator, as a streaming handler is: whoever wraps it iterates it.
        await context.abort(code, details, trailing_metadata=trailers)
        yield  # never reached

    request_streaming = bool(handler is not None and handler.request_streaming)
    response_streaming = bool(handler is not None and handler.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)


class _BearerMetadata:
    """Shared part of the client interceptors: call details plus a fresh bearer token."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens

    async def _authorised(self, details: Any) -> Any:
        token = await self._tokens.token()
        existing = [(k, v) for k, v in details.metadata or () if k.lower() != "authorization"]
        metadata = grpc.aio.Metadata(*existing, ("authorization", f"Bearer {token}"))
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class BearerTokenUnaryUnaryInterceptor(
    _BearerMetadata,
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc, unused-ignore]
):
    """Adds `authorization: Bearer <token>` to outgoing unary calls."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        return await continuation(await self._authorised(client_call_details), request)


class BearerTokenUnaryStreamInterceptor(
    _BearerMetadata,
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc, unused-ignore]
):
    """Adds `authorization: Bearer <token>` to outgoing server-streaming calls."""

    async def intercept_unary_stream(
        self,
        continuation: Callable[[Any, Any], Awaitable[Any]],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        return await continuation(await self._authorised(client_call_details), request)


def bearer_token_interceptors(tokens: TokenProvider) -> list[Any]:
    """Client interceptors for `grpc.aio.insecure_channel(target, interceptors=...)`.

    Two objects, not one class implementing both interfaces: grpc.aio files each interceptor
    under the FIRST interface it matches (grpc/grpc#31442), so a combined class would
    silently skip server-streaming calls.
    """
    return [BearerTokenUnaryUnaryInterceptor(tokens), BearerTokenUnaryStreamInterceptor(tokens)]
