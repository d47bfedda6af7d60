"""Command-line plumbing both programs share: one-line usage errors, exit statuses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from comuna_verify.http import UsageError

OK, MISMATCH, USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (what is wrong, what to do) and exit 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}; see {self.prog} --help\n")
        sys.exit(USAGE)


def run(program: str, body: Callable[[], int]) -> int:
    """Run a command: UsageError is one line and exit 2, Ctrl-C exit 130."""
    try:
        return body()
    except UsageError as exc:
        sys.stderr.write(f"{program}: {exc}\n")
        return USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"{program}: interrupted\n")
        return 130
