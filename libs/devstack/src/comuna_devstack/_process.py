"""Small process helpers shared by the NATS wrapper and the supervisor."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[[int, int], int] | None:
    # Resolved once in the parent: the pre-exec hook runs in a freshly forked child where
    # loading libraries is not safe.
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    prctl: Callable[[int, int], int] = libc.prctl
    return prctl


_prctl = _load_prctl()


def die_with_parent() -> None:
    """Pre-exec hook: have Linux send SIGTERM to the child when its parent dies.

    Runs between fork and exec, where only async-signal-safe work is allowed; it makes one
    call into an already-resolved libc function, which is why ruff's PLW1509 is silenced.

    Covers the parent being SIGKILLed (or crashing), when no Python cleanup can run, so no
    orphaned servers keep ports busy. Caveat of PR_SET_PDEATHSIG: it fires when the *thread*
    that spawned the child exits, so spawn long-lived children from the main thread.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
