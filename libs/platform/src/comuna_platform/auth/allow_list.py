"""Which service may call which gRPC method, read from the contracts in `proto/`.

Every rpc declares its callers with the `(comuna.common.v1.allowed_callers)` method option. The
caller of a call is the service whose client-credentials token it presents: a token with the
realm role `service` issued to the Keycloak client `svc-<service>` (`azp`). A method that
declares no callers, or that the descriptor pool does not know, is refused to everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from google.protobuf import descriptor_pool

from comuna.common.v1 import options_pb2

from .errors import PermissionDeniedError
from .principal import Principal

__all__ = ["SERVICE_CLIENT_PREFIX", "AllowList", "calling_service", "declared_callers"]

# Keycloak client id of a service's own client: `svc-identity`, `svc-consultations`, ...
SERVICE_CLIENT_PREFIX = "svc-"
SERVICE_ROLE = "service"

_ALLOWED_CALLERS: Any = options_pb2.allowed_callers


@cache
def declared_callers(method: str) -> frozenset[str]:
    """The services `/pkg.Service/Method` lets in; empty for an undeclared or unknown method."""
    service_name, _, method_name = method.lstrip("/").partition("/")
    try:
        service = descriptor_pool.Default().FindServiceByName(service_name)
    except KeyError:
        return frozenset()
    descriptor = service.methods_by_name.get(method_name)
    if descriptor is None:
        return frozenset()
    return frozenset(str(name) for name in descriptor.GetOptions().Extensions[_ALLOWED_CALLERS])


def calling_service(principal: Principal) -> str | None:
    """The service a principal acts for, or None for a person or a foreign client."""
    client_id = principal.client_id
    if not principal.has_role(SERVICE_ROLE) or client_id is None or not client_id.startswith(SERVICE_CLIENT_PREFIX):
        return None
    return client_id.removeprefix(SERVICE_CLIENT_PREFIX) or None


class AllowList:
    """Decides, before any handler runs, whether a principal may call a method."""

    def __init__(self, callers_of: Callable[[str], frozenset[str]] = declared_callers) -> None:
        self._callers_of = callers_of

    def check(self, method: str, principal: Principal) -> None:
        """Raise `PermissionDeniedError` unless the contract lets this principal's service call `method`."""
        allowed = self._callers_of(method)
        if not allowed:
            raise PermissionDeniedError("method_not_allowed", f"{method} declares no allowed callers")
        service = calling_service(principal)
        if service is None:
            raise PermissionDeniedError("forbidden_role", "only services may call this gRPC API")
        if service not in allowed:
            raise PermissionDeniedError("forbidden_caller", f"service {service} may not call {method}")
