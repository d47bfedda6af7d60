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


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now.

    Binding (with SO_REUSEADDR, as servers do) rather than connecting also catches a socket
    that is bound but not listening yet, and ignores connections lingering in TIME_WAIT.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


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
