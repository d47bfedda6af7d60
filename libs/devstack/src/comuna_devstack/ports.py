"""TCP port helpers shared by the embedded servers and the tests."""

from __future__ import annotations

import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now.

    The kernel picks it (bind to port 0), so parallel test sessions do not collide the way
    hard-coded ports would. It is only a snapshot: another process may grab it before we
    bind, which is acceptable for tests and local runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_tcp(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until host:port accepts connections, or raise TimeoutError.

    Polling the port is much cheaper than letting a client retry: nats-py's reconnect loop
    alone costs ~2 s, while a server is usually listening within tens of milliseconds.
    """
    deadline = time.monotonic() + timeout
    while not port_is_open(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.1f}s")
        time.sleep(0.02)
