"""Errors of the dev stack that the person running it can fix."""

from __future__ import annotations


class DevStackError(Exception):
    """A problem with the machine or the state directory, not a bug: `comuna-dev` prints the
    message on one line and exits with status 2, before (or instead of) starting anything."""


class PortInUse(DevStackError):
    """A port the stack needs is held by a program that is not part of this stack."""

    def __init__(self, port: int, setting: str) -> None:
        super().__init__(f"port {port} is in use by another program; stop it or set {setting}")
        self.port = port
        self.setting = setting
