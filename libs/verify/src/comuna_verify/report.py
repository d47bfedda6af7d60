"""What the programs print: progress on stderr, a table (or one JSON object) on stdout."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(slots=True)
class Report:
    rows: list[tuple[str, str]] = field(default_factory=list)  # the summary table, for people
    data: dict[str, Any] = field(default_factory=dict)  # the same, for programs (--json)
    mismatches: list[str] = field(default_factory=list)

    def row(self, label: str, value: object) -> None:
        self.rows.append((label, str(value)))

    @property
    def ok(self) -> bool:
        return not self.mismatches


def print_report(report: Report, as_json: bool, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if as_json:
        stream.write(json.dumps({**report.data, "ok": report.ok, "mismatches": report.mismatches}) + "\n")
        return
    rows = [*report.rows, ("mismatches", str(len(report.mismatches)))]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        stream.write(f"{label.ljust(width)}  {value}\n")
    for mismatch in report.mismatches:
        stream.write(f"MISMATCH {mismatch}\n")


class Progress:
    """`<what> <done>/<total>` on stderr, at most once a second (and once at the end)."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None, every: float = 1.0) -> None:
        self.what, self.total, self.every = what, total, every
        self.stream = stream or sys.stderr
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if done >= self.total or now - self._last >= self.every:
            self._last = now
            self.stream.write(f"{self.what} {done}/{self.total}\n")
            self.stream.flush()
