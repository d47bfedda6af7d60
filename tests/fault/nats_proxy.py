"""A TCP proxy between a service and NATS that reads just enough of the client protocol to see,
and on request drop, JetStream acknowledgements.

Why a proxy: an acknowledgement that never reaches the server is the one fault a real network
produces that no signal to a process can reproduce exactly (a SIGSTOPped server still reads the
ack from its socket buffer when it resumes). Dropping `PUB $JS.ACK...` makes `ack_sync` time out
in the consumer *after* its handler committed, and the server redeliver the message later.

Every acknowledgement that passes (or is dropped) is recorded with the delivery count JetStream
put in the ack subject, so a test can count redeliveries without reading service metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass

_CRLF = b"\r\n"


@dataclass(frozen=True)
class AckRecord:
    """One acknowledgement a consumer sent: which message, at which delivery, and its fate."""

    stream: str
    consumer: str
    delivered: int
    stream_seq: int
    kind: str  # "ack", "nak", "term", "progress"
    dropped: bool
    at: float


def parse_ack_subject(subject: str) -> tuple[str, str, int, int] | None:
    """(stream, consumer, delivery count, stream sequence) of a `$JS.ACK` reply subject.

    Two layouts exist: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
    and the newer one with domain and account hash after `$JS.ACK`.
    """
    tokens = subject.split(".")
    if len(tokens) < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    first = 2 if len(tokens) == 9 else 4
    try:
        return tokens[first], tokens[first + 1], int(tokens[first + 2]), int(tokens[first + 3])
    except (IndexError, ValueError):
        return None


def _ack_kind(payload: bytes) -> str:
    if payload in (b"", b"+ACK"):
        return "ack"
    if payload.startswith(b"-NAK"):
        return "nak"
    if payload.startswith(b"+TERM"):
        return "term"
    return "progress"


class NatsProxy:
    """Listens on 127.0.0.1:`port` (free port chosen at start) and forwards to `upstream_port`.

    Runs its own event loop in a daemon thread, so synchronous tests can use it. If NATS goes
    away the proxied connection closes too, and a reconnecting client is refused until NATS is
    back: the service sees exactly what it would see without the proxy.
    """

    def __init__(self, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream_port = upstream_port
        self.host = host
        self.port = 0
        self._acks: list[AckRecord] = []
        self._drop: dict[str, int] = {}  # stream -> how many more acks to drop
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control (any thread) --------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def drop_acks(self, stream: str, count: int) -> None:
        """Drop the next `count` positive acknowledgements of messages from `stream` (any consumer)."""
        with self._lock:
            self._drop[stream] = count

    def acks(self, since: int = 0) -> list[AckRecord]:
        with self._lock:
            return self._acks[since:]

    def ack_mark(self) -> int:
        """Position in the ack record; pass to `acks(since=...)` to see only what came after."""
        with self._lock:
            return len(self._acks)

    # -- the proxy (its own loop) ----------------------------------------------------------------
    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, self.host, 0)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            client_writer.close()  # NATS is down: the client must see a refused connection
            return
        self._writers.update((client_writer, server_writer))
        to_client = asyncio.create_task(self._relay_raw(server_reader, client_writer))
        to_server = asyncio.create_task(self._relay_client(client_reader, server_writer))
        await asyncio.wait({to_client, to_server}, return_when=asyncio.FIRST_COMPLETED)
        for task in (to_client, to_server):
            task.cancel()
        for writer in (client_writer, server_writer):
            writer.close()
            self._writers.discard(writer)

    async def _relay_raw(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    async def _relay_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward client commands one by one, holding back the acks marked for dropping."""
        buffer = b""
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                buffer += chunk
                out = bytearray()
                while (command := _next_command(buffer)) is not None:
                    raw, subject, payload = command
                    buffer = buffer[len(raw) :]
                    if not (subject is not None and self._drop_or_record(subject, payload)):
                        out += raw
                if out:
                    writer.write(bytes(out))
                    await writer.drain()

    def _drop_or_record(self, subject: str, payload: bytes) -> bool:
        """Record an ack; True if it must be dropped."""
        parsed = parse_ack_subject(subject)
        if parsed is None:
            return False
        stream, consumer, delivered, stream_seq = parsed
        kind = _ack_kind(payload)
        with self._lock:
            # Only positive acks: an in-progress ping or a nak lost is another fault.
            drop = kind == "ack" and self._drop.get(stream, 0) > 0
            if drop:
                self._drop[stream] -= 1
            record = AckRecord(stream, consumer, delivered, stream_seq, kind, drop, time.monotonic())
            self._acks.append(record)
        return drop


def _next_command(buffer: bytes) -> tuple[bytes, str | None, bytes] | None:
    """The first complete client command in `buffer`: (its bytes, PUB subject or None, payload).

    `PUB <subject> [reply] <size>` and `HPUB <subject> [reply] <header size> <total size>` carry a
    payload of the last size after the line; every other command is one line.
    """
    end = buffer.find(_CRLF)
    if end < 0:
        return None
    line = buffer[:end]
    op = line[:5].upper()
    if not (op.startswith(b"PUB ") or op.startswith(b"HPUB ")):
        return buffer[: end + 2], None, b""
    fields = line.split()
    size = int(fields[-1])
    total = end + 2 + size + 2
    if len(buffer) < total:
        return None
    payload = buffer[end + 2 : end + 2 + size]
    if op.startswith(b"HPUB"):
        payload = payload[int(fields[-2]) :]
    return buffer[:total], fields[1].decode(), payload
