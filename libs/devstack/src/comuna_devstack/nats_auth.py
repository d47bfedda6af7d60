"""Who may publish and subscribe what on NATS: one user per service, and a read-only user.

A service publishes its own events (`<service>.>`) and manages its own stream; it reads other
services' streams only through its own durable pull consumers. The read-only user (dashboards,
the press) may create its own consumers on every stream, fetch and acknowledge, and publish no
event subject. Everything else is refused by the server, so a forged
`consultations.commune_result.certified` from anyone but consultations never reaches a stream.

The same permissions are documented for production in docs/operations.md (a test keeps that
snippet in step with `render_permissions`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from comuna_platform.auth.identity_resolver import INVALIDATION_SUBJECTS
from comuna_platform.events.registry import stream_name
from comuna_platform.events.streams import service_inbox_prefix

# The durable consumers each service keeps on other services' streams:
# {service: {producing service (whose stream it reads): durables}}.
# A consumer missing here cannot bind (the server refuses its CONSUMER.CREATE), which the
# end-to-end and NATS-auth tests would show at once.
SERVICE_CONSUMERS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "identity": {},
    "consultations": {},
    "funding": {
        "consultations": ("funding-commune-results",),
        "projects": ("funding-disbursements",),
    },
    "projects": {
        "consultations": ("projects-candidates",),
        "funding": ("projects-allocations", "projects-disbursements", "projects-rejections"),
    },
}
READER = "reader"
IDENTITY = "identity"


@dataclass(frozen=True)
class Permissions:
    publish_allow: tuple[str, ...]
    subscribe_allow: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()

    def as_config(self) -> dict[str, Any]:
        """The `permissions` block of a nats-server user."""
        publish: dict[str, list[str]] = {"allow": list(self.publish_allow)}
        if self.publish_deny:
            publish["deny"] = list(self.publish_deny)
        return {"publish": publish, "subscribe": {"allow": list(self.subscribe_allow)}}


def _durable_subjects(stream: str, durable: str) -> list[str]:
    """Every subject a pull consumer `durable` on `stream` publishes to (nats-py and the server)."""
    return [
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def service_permissions(service: str, consumers: Mapping[str, Iterable[str]] | None = None) -> Permissions:
    """Publish its own events and run its own stream; bind only its own durables elsewhere
    (`consumers`: producing service -> durables, default `SERVICE_CONSUMERS[service]`)."""
    own = stream_name(service)
    publish = [
        f"{service}.>",
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{own}",
        f"$JS.API.STREAM.CREATE.{own}",
        f"$JS.API.STREAM.UPDATE.{own}",
    ]
    for producer, durables in (SERVICE_CONSUMERS[service] if consumers is None else consumers).items():
        stream = stream_name(producer)
        publish.append(f"$JS.API.STREAM.INFO.{stream}")
        for durable in durables:
            publish += _durable_subjects(stream, durable)
    # Replies (publish acknowledgements, fetched messages, API answers) come to its own inbox
    # prefix only, so no service reads another's replies. Services that ask identity where a
    # caller may act also hear identity's role-assignment events (to drop cached answers).
    subscribe = [f"{service_inbox_prefix(service)}.>"]
    if service != IDENTITY:
        subscribe.append(INVALIDATION_SUBJECTS)
    return Permissions(publish_allow=tuple(publish), subscribe_allow=tuple(subscribe))


def reader_permissions(services: Iterable[str] = tuple(SERVICE_CONSUMERS)) -> Permissions:
    """Consumers of its own on every stream; no event subject, no stream or service-durable change."""
    names = list(services)
    streams = [stream_name(s) for s in names]
    service_durables = [
        subject
        for consumers in SERVICE_CONSUMERS.values()
        for producer, durables in consumers.items()
        for durable in durables
        for subject in [
            *_durable_subjects(stream_name(producer), durable),
            f"$JS.API.CONSUMER.DELETE.{stream_name(producer)}.{durable}",
        ]
    ]
    publish = [
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.LIST",
        *(f"$JS.API.STREAM.INFO.{stream}" for stream in streams),
        *(f"$JS.API.STREAM.MSG.GET.{stream}" for stream in streams),
        *(f"$JS.API.CONSUMER.{verb}.{stream}" for stream in streams for verb in ("CREATE", "LIST", "NAMES")),
        *(f"$JS.API.CONSUMER.CREATE.{stream}.>" for stream in streams),
        *(
            f"$JS.API.CONSUMER.{verb}.{stream}.*"
            for stream in streams
            for verb in ("INFO", "DURABLE.CREATE", "MSG.NEXT", "DELETE")
        ),
        *(f"$JS.ACK.{stream}.>" for stream in streams),
    ]
    # Taking over a service's durable would let a reader fetch and acknowledge the events that
    # service must apply (a tranche never paid); the server refuses those subjects.
    return Permissions(
        publish_allow=tuple(publish),
        subscribe_allow=("_INBOX.>", *(f"{s}.>" for s in names)),
        publish_deny=tuple(service_durables),
    )


def accounts_config(passwords: Mapping[str, str]) -> dict[str, Any]:
    """The `accounts` block of a nats-server config: one JetStream account, a user per service
    plus the read-only user, each with its password. No anonymous user exists."""
    users = [
        {"user": service, "password": passwords[service], "permissions": service_permissions(service).as_config()}
        for service in SERVICE_CONSUMERS
    ]
    users.append({"user": READER, "password": passwords[READER], "permissions": reader_permissions().as_config()})
    return {"COMUNA": {"jetstream": "enabled", "users": users}}


def password_variable(user: str) -> str:
    """The environment variable the production config reads a user's password from."""
    return f"{user.upper()}_NATS_PASSWORD"


def render_accounts_config() -> str:
    """The `accounts` block for a production nats-server, in its config syntax. Passwords come
    from environment variables (`$FUNDING_NATS_PASSWORD`, ...) set from a Secret; for NKeys,
    replace `user`/`password` with `nkey: <the user's public key>`. docs/operations.md carries
    this text (a test keeps it in step)."""

    def strings(values: Iterable[str]) -> str:
        return ", ".join(f'"{v}"' for v in values)

    lines = ["accounts {", "  COMUNA {", "    jetstream: enabled", "    users: ["]
    for user, permissions in [
        *((s, service_permissions(s)) for s in SERVICE_CONSUMERS),
        (READER, reader_permissions()),
    ]:
        lines.append(f"      {{user: {user}, password: ${password_variable(user)}, permissions: {{")
        lines.append(f"        publish: {{allow: [{strings(permissions.publish_allow)}]")
        if permissions.publish_deny:
            lines.append(f"                  deny: [{strings(permissions.publish_deny)}]")
        lines.append("        }")
        lines.append(f"        subscribe: {{allow: [{strings(permissions.subscribe_allow)}]}}")
        lines.append("      }}")
    lines += ["    ]", "  }", "}"]
    return "\n".join(lines)
