"""Small process helpers shared by the embedded servers, the supervisor and the stack.

Two mechanisms keep a killed dev stack from leaving servers behind:
- children die with their parent (PR_SET_PDEATHSIG), which covers `kill -9` of the parent;
- every long-lived child is recorded in a pid file (pid and kernel start time), so the next
  run of the same state directory can find and stop whatever is still shutting down, without
  ever signalling an unrelated process that reused the pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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


def parent_death_hook(signum: int) -> Callable[[], None] | None:
    """A pre-exec hook delivering `signum` to the child when this process dies, or None.

    None off the main thread: the kernel fires the signal when the spawning *thread* exits,
    so a server started from a worker thread would be stopped as soon as that thread ends.
    Such servers are still found and stopped by the next run through their pid files.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl = _prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signum)

    return hook


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is gone or a zombie.

    Together with the pid it names one process for good: a recycled pid has another start time.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3 of stat); start time is field 22.
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a running (not zombie) process."""
    return start_time(pid) is not None


def command_name(pid: int) -> str:
    """The executable name of `pid` ('' if unknown)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class PidRecord:
    """One recorded process: what a pid file under the state directory holds."""

    name: str
    pid: int
    started: int

    def alive(self) -> bool:
        """Still the very process that was recorded (same pid *and* start time)."""
        return start_time(self.pid) == self.started


def write_pid_file(path: Path, pid: int) -> None:
    """Record `pid` (with its start time) in `path`, atomically."""
    started = start_time(pid)
    if started is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(f"{pid} {started}\n")
    staging.replace(path)


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in `path`, or None if it is missing or unreadable."""
    try:
        pid, started = path.read_text().split()
        return PidRecord(path.stem, int(pid), int(started))
    except (OSError, ValueError):
        return None


def wait_gone(record: PidRecord, timeout: float) -> bool:
    """Poll until the recorded process has exited; False if it is still there at the deadline."""
    deadline = time.monotonic() + timeout
    while record.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_recorded(record: PidRecord, *, grace_period: float = 10.0) -> None:
    """SIGTERM the recorded process's group (or the process alone), SIGKILL after the grace period."""
    for signum, timeout in ((signal.SIGTERM, grace_period), (signal.SIGKILL, 5.0)):
        if not record.alive():
            return
        try:
            # Children of the supervisor lead their own process group (start_new_session).
            if os.getpgid(record.pid) == record.pid:
                os.killpg(record.pid, signum)
            else:
                os.kill(record.pid, signum)
        except ProcessLookupError:
            return
        if wait_gone(record, timeout):
            return


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group `process` leads (it was started with `start_new_session=True`),
    SIGKILL it if it has not exited after `timeout` seconds; returns once it is gone."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
