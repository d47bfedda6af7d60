"""`comuna-witness`: cosign a log's checkpoints, only ever along one growing tree.

A witness keeps, per origin, the last checkpoint it cosigned (`<state>/<origin key>.cosigned`).
It cosigns a new checkpoint only when the log signed it and it extends that one: same size and
root, or larger with a consistency proof that verifies (computed from the public hash tiles).
A fork or a shrink is written down (`<origin key>.refused`, with both checkpoints) and the
witness refuses that log from then on, until a person removes the file. The origin each base
URL serves is remembered too: a log that changes it is refused.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from comuna_verify import record
from comuna_verify.args import MISMATCH, OK, Parser, run
from comuna_verify.http import Client, UsageError
from comuna_verify.notes import COSIGNATURE_V1, ED25519, NoteError, PrivateKey, cosign, parse_skey
from comuna_verify.report import Report, print_report
from comuna_verify.state import consistency_problem, origin_key, read_checkpoint_file, write_atomically
from comuna_verify.tiles import TileReader

PROG = "comuna-witness"


class Refused(Exception):
    """The witness will not cosign this checkpoint (a mismatch: exit 1)."""


def parser() -> Parser:
    top = Parser(
        prog=PROG,
        description="A witness of Comuna's public records: cosigns checkpoints that extend "
        "the ones it cosigned before, and refuses forks.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    keygen = commands.add_parser(
        "keygen",
        help="make a new cosignature/v1 key pair",
        description="Print a new cosignature/v1 private key (first line) and its verifier key (second line); "
        "with --out, write the private key to FILE (mode 0600) and print the verifier key.",
    )
    keygen.add_argument(
        "name", metavar="NAME", help="the witness's key name (no spaces or '+'), e.g. witness.example.org"
    )
    keygen.add_argument("--out", metavar="FILE", type=Path, help="write the private key here instead of stdout")

    watch = commands.add_parser(
        "watch",
        help="cosign a consultation log's checkpoints as it grows",
        description="Fetch the checkpoint, check the log's signature and its consistency with the last one this "
        "witness cosigned, then cosign it, save it and submit it to BASE/record/cosignatures.",
    )
    watch.add_argument("base", metavar="BASE", help="the consultation's public base URL, .../v1/consultations/<id>")
    watch.add_argument(
        "--key", metavar="FILE", type=Path, required=True, help="the witness's private key (keygen --out)"
    )
    watch.add_argument("--state", metavar="DIR", type=Path, required=True, help="where cosigned checkpoints are kept")
    watch.add_argument(
        "--log-key", metavar="VKEY", action="append", required=True, help="the log's verifier key (repeatable)"
    )
    watch.add_argument("--once", action="store_true", help="one round, then exit (0 cosigned, 1 refused)")
    watch.add_argument("--interval", metavar="SECONDS", type=float, default=10.0, help="seconds between rounds (10)")
    watch.add_argument("--no-submit", action="store_true", help="cosign and save, but do not POST the cosignature")
    watch.add_argument("--json", action="store_true", help="print one JSON object per round instead of a table")
    return top


def keygen(name: str, out: Path | None) -> int:
    try:
        key = PrivateKey.generate(name, COSIGNATURE_V1)
    except NoteError as exc:
        raise UsageError(f"{exc}; choose a name without spaces or '+'") from exc
    if out is None:
        sys.stdout.write(f"{key.skey}\n{key.public.vkey}\n")
        return OK
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise UsageError(f"{out} exists; choose another file or remove it") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key.skey + "\n")
    sys.stdout.write(f"{key.public.vkey}\n")
    return OK


def load_key(path: Path) -> PrivateKey:
    try:
        key = parse_skey(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read --key {path}: {exc.strerror}") from exc
    except (NoteError, UnicodeDecodeError) as exc:
        raise UsageError(f"--key {path}: {exc}; make one with {PROG} keygen NAME --out FILE") from exc
    if key.key_type != COSIGNATURE_V1:
        raise UsageError(f"--key {path} is not a cosignature/v1 key; make one with {PROG} keygen")
    return key


@dataclass(frozen=True, slots=True)
class Witness:
    client: Client
    key: PrivateKey
    state: Path
    log_keys: tuple[str, ...]
    submit: bool

    def _check_origin(self, origin: str) -> None:
        """A log keeps its origin: one that serves another would start a fresh history, out of
        reach of the checkpoints cosigned so far (`<state>/<base key>.origin` remembers it)."""
        pinned = self.state / f"{origin_key(self.client.base)}.origin"
        if not pinned.exists():
            write_atomically(pinned, origin + "\n")
            return
        before = pinned.read_text(encoding="utf-8").strip()
        if before != origin:
            raise Refused(
                f"the log at {self.client.base} had origin {before}, now {origin}; remove {pinned} if intended"
            )

    def round(self, report: Report) -> None:
        """One round: cosign and submit, or raise Refused saying why."""
        keys = record.parse_keys(self.log_keys, "--log-key", ED25519)
        signed = record.fetch_checkpoint(self.client, keys, (), None)
        checkpoint = signed.checkpoint
        report.row("log", f"{checkpoint.origin}, size {checkpoint.size}, root {checkpoint.root_b64}")
        report.data.update(log={"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root_b64})
        if signed.problems:
            raise Refused("; ".join(signed.problems))
        self._check_origin(checkpoint.origin)
        name = origin_key(checkpoint.origin)
        cosigned, refused = self.state / f"{name}.cosigned", self.state / f"{name}.refused"
        if refused.exists():
            reason = refused.read_text(encoding="utf-8").split("\n", 1)[0]
            raise Refused(f"refusing this log since: {reason}; remove {refused} once resolved")
        if cosigned.exists():
            previous = read_checkpoint_file(cosigned)
            problem = consistency_problem(previous, checkpoint, TileReader(self.client))
            if problem:
                if problem.startswith(("fork", "the log shrank")):
                    # Evidence for people: the reason, then both signed checkpoints.
                    write_atomically(refused, f"{problem}\n\n{cosigned.read_text(encoding='utf-8')}\n{signed.note}")
                raise Refused(problem)
        line = cosign(checkpoint.body, self.key, int(time.time()))
        write_atomically(cosigned, signed.note + line.line)
        report.row("cosigned", f"yes, as {self.key.name} at time {int.from_bytes(line.signature[:8], 'big')}")
        report.data.update(cosigned=True, witness=self.key.name)
        if not self.submit:
            report.row("submitted", "no (--no-submit)")
            return
        response = self.client.post("record/cosignatures", (checkpoint.body + "\n" + line.line).encode(), "text/plain")
        if response.status not in (200, 201):
            raise UsageError(
                f"cosigned size {checkpoint.size} (saved), but {response.url} refused it: "
                f"{response.status} {response.problem()}"
            )
        report.row("submitted", f"yes ({response.status})")
        report.data.update(submitted=response.status)


def watch(witness: Witness, once: bool, interval: float, as_json: bool) -> int:
    while True:
        report = Report()
        try:
            witness.round(report)
        except Refused as exc:
            report.row("cosigned", "REFUSED")
            report.data.update(cosigned=False)
            report.mismatches.append(str(exc))
        except UsageError as exc:
            if once:
                raise
            sys.stderr.write(f"{PROG}: {exc}\n")  # the platform may be back next round
            report = Report()
        if report.rows:
            print_report(report, as_json)
            sys.stdout.flush()
        if once:
            return OK if report.ok else MISMATCH
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        if args.command == "keygen":
            return keygen(args.name, args.out)
        if args.interval <= 0:
            raise UsageError("--interval must be a positive number of seconds")
        if args.state.exists() and not args.state.is_dir():
            raise UsageError(f"--state {args.state} is not a directory")
        record.parse_keys(args.log_key, "--log-key", ED25519)  # a bad key is a usage error before any round
        witness = Witness(Client(args.base), load_key(args.key), args.state, tuple(args.log_key), not args.no_submit)
        return watch(witness, args.once, args.interval, args.json)

    return run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
