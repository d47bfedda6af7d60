"""`comuna-verify`: check a consultation's public record, what one receipt proves, or a funding
ledger's public log and balances.

Exit status: 0 everything verified, 1 a mismatch (each listed), 2 bad usage or a record that
cannot be fetched (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from comuna_verify import consultation, ledger, receipt
from comuna_verify.args import MISMATCH, OK, Parser, run
from comuna_verify.http import TIMEOUT, UsageError
from comuna_verify.report import print_report

PROG = "comuna-verify"


def parser() -> Parser:
    top = Parser(
        prog=PROG,
        description="Verify a Comuna consultation's public record, or a funding ledger's public log, "
        "independently of the platform.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    whole = commands.add_parser(
        "consultation",
        help="download the whole record and check every entry, signature, count and result",
        description="Download the record (checkpoint, tiles, entries, bulletins, results) and check that it is "
        "signed, complete and adds up, commune by commune. Run it after voting has closed everywhere.",
    )
    whole.add_argument("base", metavar="BASE", help="the consultation's public base URL, .../v1/consultations/<id>")
    _common(whole)
    _witness_key(whole)

    one = commands.add_parser(
        "receipt",
        help="check what a voter's receipt proves",
        description="Check that the ballot with this receipt is in the signed log, in which batch, and that the "
        "batch counted it. It cannot show the ballot's choice: nothing in the record pairs receipts with choices.",
    )
    one.add_argument("base", metavar="BASE", help="the consultation's public base URL, .../v1/consultations/<id>")
    one.add_argument("receipt", metavar="RECEIPT", help="the 22-character receipt given when the ballot was cast")
    _common(one)

    books = commands.add_parser(
        "ledger",
        help="rebuild every account of a funding ledger from its public log and check the published balances",
        description="Download the published balances, a signed checkpoint covering them and every entry of the "
        "ledger's log; check the signatures and the tree, every rule of the ledger (open accounts, currencies, "
        "pending transfers resolved once, limits, exchange rates) and that the balances rebuilt from the entries "
        "equal the published ones.",
    )
    books.add_argument("base", metavar="BASE", help="the funding service's public ledger URL, .../v1/ledger")
    _common(books)
    _witness_key(books)
    books.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_seconds,
        default=ledger.WAIT,
        help="how long to wait for a checkpoint covering the published balances (default %(default)g)",
    )
    books.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=TIMEOUT,
        help="timeout of each HTTP request (default %(default)g)",
    )
    return top


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def _witness_key(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--witness-key",
        metavar="VKEY",
        action="append",
        default=[],
        help="a witness's cosignature/v1 verifier key: its cosignatures are verified (repeatable)",
    )


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--state",
        metavar="DIR",
        type=Path,
        help="directory of checkpoints seen before: the new one must be consistent with them (then it is saved)",
    )
    command.add_argument(
        "--log-key",
        metavar="VKEY",
        action="append",
        default=[],
        help="pin the log's verifier key instead of trusting BASE/record/keys (repeatable, for a rotation)",
    )
    command.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def state_dir(path: Path | None) -> Path | None:
    if path is not None and path.exists() and not path.is_dir():
        raise UsageError(f"--state {path} is not a directory; give a directory (it is created if missing)")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        state = state_dir(args.state)
        if args.command == "consultation":
            report = consultation.verify(
                consultation.Options(args.base, state, args.log_key, args.witness_key), progress=True
            )
        elif args.command == "ledger":
            options = ledger.Options(args.base, state, args.log_key, args.witness_key, args.wait, args.timeout)
            report = ledger.verify(options, progress=True)
        else:
            report = receipt.verify(receipt.Options(args.base, args.receipt, state, args.log_key))
        print_report(report, args.json)
        return OK if report.ok else MISMATCH

    return run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
