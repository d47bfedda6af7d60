"""The HTTP servers of a service process: the public REST API and the internal metrics port.

uvicorn's httptools protocol buffers a request head of any size (a 32 MB Authorization header
was read in full), so the REST server uses a subclass that counts the bytes of the head as they
arrive and answers 431 problem+json, closing the connection, as soon as they exceed
`max_header_bytes`. The edge middleware checks the same limit again for any other server.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from comuna_platform.http.metrics import metrics_app
from comuna_platform.http.problems import PROBLEM_MEDIA_TYPE, problem_body
from comuna_platform.settings import ServiceSettings

_LINGER_SECONDS = 2.0


class HeadLimitedProtocol(HttpToolsProtocol):
    """httptools, with a bound on the request line plus headers of each request."""

    max_head_bytes = 16 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._discarding = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        super().data_received(data)
        # A chunk that ended inside a head counts whole: exact enough for a limit meant to stop
        # megabytes, and it bounds what httptools buffers to the limit plus one read.
        if self._reading_head and self.transport is not None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()

    def _refuse_head(self) -> None:
        body = problem_body(
            status=431,
            code="headers_too_large",
            title="Request header fields too large",
            detail=f"The request line and headers exceed {self.max_head_bytes} bytes.",
            instance="",
        )
        content = json.dumps(body, separators=(",", ":")).encode()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
                    b"content-length: " + str(len(content)).encode() + b"\r\n",
                    b"x-content-type-options: nosniff\r\n",
                    b"cache-control: no-store\r\n",
                    b"connection: close\r\n\r\n",
                    content,
                ]
            )
        )
        # Lingering close: closing at once with the client's bytes still unread would send a
        # TCP reset, which can destroy the answer before the client reads it. So: end our side,
        # drop whatever else arrives (never buffered), and close after a short grace.
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)


def head_limited_protocol(max_head_bytes: int) -> type[asyncio.Protocol]:
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {"max_head_bytes": max_head_bytes})


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runtime owns the signals: one stop event drains REST, gRPC and the workers together.
        yield


def rest_server(app: FastAPI, settings: ServiceSettings) -> uvicorn.Server:
    return _Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            http=head_limited_protocol(settings.max_header_bytes),
            # The edge middleware decides about X-Forwarded-Proto (trusted proxies only);
            # uvicorn must not rewrite the scheme or client address on its own.
            proxy_headers=False,
            server_header=False,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
    )


def metrics_server(settings: ServiceSettings) -> uvicorn.Server:
    """Prometheus' own port: internal, not behind the Ingress, nothing else served there."""
    return _Server(
        uvicorn.Config(
            metrics_app,
            host=settings.metrics_host,
            port=settings.metrics_port,
            http=head_limited_protocol(settings.max_header_bytes),
            proxy_headers=False,
            server_header=False,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )


def rest_sockets(settings: ServiceSettings) -> list[socket.socket] | None:
    """With `reuse_port`, the REST listening socket bound with SO_REUSEPORT (uvicorn binds its
    own, exclusive, otherwise: None)."""
    if not settings.reuse_port:
        return None
    sock = socket.socket(socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.http_host, settings.http_port))
    sock.listen(2048)
    sock.setblocking(False)
    return [sock]
