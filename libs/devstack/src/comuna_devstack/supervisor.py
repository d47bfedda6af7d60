"""Run the services as child processes and stop them together.

Children get their own session, so a terminal's Ctrl-C reaches only this process, which then
stops them in an orderly way (SIGTERM to each child's process group, SIGKILL after a grace
period) before the infrastructure under them goes away. If this process is killed outright,
Linux sends the children SIGTERM (PR_SET_PDEATHSIG), so no orphan keeps a port busy for long;
with a `pid_dir`, each child is also recorded there so the next run can stop one still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

import httpx

from comuna_devstack._process import parent_death_hook, tail, write_pid_file


@dataclass
class Child:
    """One started child process."""

    name: str
    process: subprocess.Popen[bytes]
    log_file: Path | None = None
    _log: IO[bytes] | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)


def _pump_lines(name: str, stream: IO[bytes]) -> None:
    """Copy a child's output to our stdout, each line prefixed with `[name]`."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        sys.stdout.write(f"[{name}] {line}\n")
        sys.stdout.flush()
    stream.close()


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class ProcessGroup:
    """Named child processes started, awaited and stopped as one.

    Use as a context manager: leaving it (normally, by exception, Ctrl-C or SIGTERM) stops
    every child. SIGTERM/SIGHUP handling is installed only when entered from the main thread.
    """

    def __init__(self, grace_period: float = 10.0, *, pid_dir: Path | None = None) -> None:
        self.grace_period = grace_period
        self.pid_dir = pid_dir
        self.children: dict[str, Child] = {}
        self._previous_handlers: dict[signal.Signals, Any] = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_file: Path | None = None,
    ) -> Child:
        """Start `argv` as child `name`.

        `env` is added to this process's environment (not a replacement). Output goes to
        `log_file` (appended) if given, else to our stdout with a `[name]` prefix.
        """
        if name in self.children:
            raise ValueError(f"a child named {name!r} already exists")
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        log: IO[bytes] | None = None
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log = log_file.open("ab")
        process = subprocess.Popen(
            list(argv),
            env=child_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=parent_death_hook(signal.SIGTERM),  # noqa: PLW1509 (only calls prctl, see _process)
        )
        child = Child(name, process, log_file, log)
        if self.pid_dir is not None:
            write_pid_file(self.pid_dir / f"{name}.pid", process.pid)
        if log is None:
            assert process.stdout is not None
            child._pump = threading.Thread(
                target=_pump_lines,
                args=(name, process.stdout),
                name=f"pump-{name}",
                daemon=True,
            )
            child._pump.start()
        self.children[name] = child
        return child

    def wait_http_ready(self, name: str, url: str, timeout: float = 30.0) -> None:
        """Poll GET `url` until it answers 200; fail fast if child `name` exits meanwhile."""
        child = self.children[name]
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                code = child.process.poll()
                if code is not None:
                    log = f"\n--- {child.log_file} ---\n{tail(child.log_file)}" if child.log_file else ""
                    raise RuntimeError(f"{name} exited with code {code} before {url} was ready{log}")
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{name}: {url} not ready after {timeout:.0f}s")
                time.sleep(0.1)

    def wait_any(self, poll_interval: float = 0.2) -> tuple[str, int]:
        """Block until some child exits; returns its name and exit code.

        For `run`-style commands: a crashed service should bring the stack down, not go
        unnoticed.
        """
        while True:
            for name, child in self.children.items():
                code = child.process.poll()
                if code is not None:
                    return name, code
            time.sleep(poll_interval)

    def kill(self, name: str) -> int:
        """SIGKILL child `name`'s process group at once (a crash, for fault-injection tests) and
        forget it, so it can be started again under the same name; returns its exit code."""
        child = self.children.pop(name)
        _signal_group(child.process, signal.SIGKILL)
        code = child.process.wait()
        if child._pump is not None:
            child._pump.join(timeout=1.0)
        if child._log is not None:
            child._log.close()
        if self.pid_dir is not None:
            (self.pid_dir / f"{name}.pid").unlink(missing_ok=True)
        return code

    def stop(self) -> None:
        """SIGTERM every child's process group, SIGKILL what is left after the grace period."""
        running = [child for child in self.children.values() if child.process.poll() is None]
        for child in running:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_period
        for child in running:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
        for child in self.children.values():
            if child._pump is not None:
                child._pump.join(timeout=1.0)
            if child._log is not None:
                child._log.close()
            if self.pid_dir is not None:
                (self.pid_dir / f"{child.name}.pid").unlink(missing_ok=True)
        self.children.clear()

    def __enter__(self) -> Self:
        # SIGTERM (kill, systemd) and SIGHUP (terminal closed) then unwind like Ctrl-C does.
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGHUP):
                self._previous_handlers[signum] = signal.signal(signum, _raise_system_exit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            for signum, previous in self._previous_handlers.items():
                signal.signal(signum, previous)
            self._previous_handlers.clear()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Signal the child's whole process group (it leads one: start_new_session=True), so
    workers it forked (uvicorn, multiprocessing) stop too."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
