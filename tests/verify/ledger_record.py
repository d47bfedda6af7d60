"""A funding ledger's public journal for the verifier's tests: a small double-entry book written
here from docs/ledger.md (not with the code under test), its entries put in a log built with
the platform's own `comuna_platform.tlog`, written to a directory and served over HTTP the way
the funding service serves `/v1/ledger` (record/checkpoint, record/tile/..., record/keys,
balances).

`Books` writes every entry as stated and applies it as written, without judging it: honest
workloads come from callers that keep the rules (`Books.allows` answers whether a movement
keeps an account's limit), dishonest ones from callers that break one on purpose, so that the
published balances still agree with the entries and only the broken rule is a mismatch.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from comuna_platform.tlog.checkpoint import Checkpoint
from comuna_platform.tlog.note import Signer
from tests.verify import record

ORIGIN = "comuna.localhost/record/ledger"
BASE_PATH = "/v1/ledger"
START = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)
DEBITS_LIMITED = "debits_must_not_exceed_credits"
CREDITS_LIMITED = "credits_must_not_exceed_debits"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def round_half_even(value: Fraction) -> int:
    whole, rest = divmod(value.numerator, value.denominator)
    twice = 2 * rest
    if twice > value.denominator or (twice == value.denominator and whole % 2):
        whole += 1
    return whole


@dataclass
class Account:
    id: str
    key: str
    currency: str
    kind: str
    flags: tuple[str, ...]
    totals: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # dp, cp, dq, cq
    closed: bool = False


@dataclass
class Held:
    debit: str
    credit: str
    currency: str
    amount: int
    expires: datetime | None


class Books:
    def __init__(self) -> None:
        self.entries: list[str] = []
        self.accounts: dict[str, Account] = {}
        self.pending: dict[str, Held] = {}
        self.now = START
        self._ids = 0

    # ids and time
    def new_id(self, space: int) -> str:
        self._ids += 1
        return str(uuid.UUID(int=(space << 120) | (0x4000 << 64) | self._ids))

    def tick(self, seconds: float = 1.0) -> str:
        self.now += timedelta(seconds=seconds)
        return stamp(self.now)

    # entries
    def open(self, key: str, currency: str, kind: str, flags: tuple[str, ...] = ()) -> str:
        account = Account(self.new_id(0xA), key, currency, kind, tuple(sorted(flags)))
        self.accounts[account.id] = account
        self.entries.append(
            "comuna-account/v1\n"
            f"account {account.id}\nkey {key}\ncurrency {currency}\nkind {kind}\n"
            f"flags {','.join(account.flags) or '-'}\nat {self.tick()}\n"
        )
        return account.id

    def close(self, account_id: str) -> None:
        self.accounts[account_id].closed = True
        self.entries.append(f"comuna-account-closed/v1\naccount {account_id}\nat {self.tick()}\n")

    def transfer(
        self,
        kind: str,
        debit: str,
        credit: str,
        amount: int,
        *,
        pending: str | None = None,
        timeout: int | None = None,
        code: str = "tranche",
        reference: str = "",
        exchange: str | None = None,
        transfer_id: str | None = None,
        seconds: float = 1.0,
    ) -> str:
        """Write a transfer and apply it as written; returns its id."""
        tid = transfer_id or self.new_id(0xB)
        currency = self.accounts[debit].currency
        at = self.tick(seconds)
        self.entries.append(
            "comuna-transfer/v1\n"
            f"transfer {tid}\nkind {kind}\npending {pending or '-'}\ndebit {debit}\ncredit {credit}\n"
            f"amount {amount}\ncurrency {currency}\ntimeout {'-' if timeout is None else timeout}\n"
            f"code {code}\nreference {reference}\nexchange {exchange or '-'}\nat {at}\n"
        )
        d, c = self.accounts[debit].totals, self.accounts[credit].totals
        if kind == "single":
            d[0] += amount
            c[1] += amount
        elif kind == "pending":
            d[2] += amount
            c[3] += amount
            expires = None if timeout is None else self.now + timedelta(seconds=timeout)
            self.pending[tid] = Held(debit, credit, currency, amount, expires)
        else:
            assert pending is not None
            held = self.pending.pop(pending, None)
            if held is not None:
                self.accounts[held.debit].totals[2] -= held.amount
                self.accounts[held.credit].totals[3] -= held.amount
            if kind == "post":
                d[0] += amount
                c[1] += amount
        return tid

    def single(self, debit: str, credit: str, amount: int, **kwargs: object) -> str:
        return self.transfer("single", debit, credit, amount, **kwargs)  # type: ignore[arg-type]

    def hold(self, debit: str, credit: str, amount: int, timeout: int | None = 3600) -> str:
        return self.transfer("pending", debit, credit, amount, timeout=timeout)

    def resolve(self, kind: str, pending: str, amount: int | None = None, seconds: float = 1.0) -> str:
        held = self.pending[pending]
        value = held.amount if amount is None else amount
        return self.transfer(kind, held.debit, held.credit, value, pending=pending, seconds=seconds)

    def exchange(
        self, payer: str, clearing_base: str, clearing_counter: str, payee: str, amount: int, rate: str
    ) -> int:
        """A linked pair at `rate` (counter minor units per base minor unit); the counter amount."""
        base, counter = self.new_id(0xB), self.new_id(0xB)
        line = f"{base} {counter} {rate}"
        counter_amount = round_half_even(amount * Fraction(rate))
        self.single(payer, clearing_base, amount, code="exchange", exchange=line, transfer_id=base)
        self.single(clearing_counter, payee, counter_amount, code="exchange", exchange=line, transfer_id=counter)
        return counter_amount

    # the rules an honest caller keeps
    def allows(self, debit: str, credit: str, amount: int, pending: bool = False) -> bool:
        """Whether a new transfer keeps both accounts open and within their limits."""
        d, c = self.accounts[debit], self.accounts[credit]
        if d.closed or c.closed or d.currency != c.currency or debit == credit:
            return False
        dp, cp, dq, cq = d.totals
        if DEBITS_LIMITED in d.flags and dp + dq + amount > cp:
            return False
        dp, cp, dq, cq = c.totals
        return not (CREDITS_LIMITED in c.flags and cp + cq + amount > dp)

    def balances(self, origin: str = ORIGIN, size: int | None = None) -> str:
        """The published balances now (of `size` entries, the current count unless told)."""
        lines = [f"comuna-balances/v1\norigin {origin}\nsize {len(self.entries) if size is None else size}\n"]
        for account_id in sorted(self.accounts):
            dp, cp, dq, cq = self.accounts[account_id].totals
            lines.append(f"account {account_id} {dp} {cp} {dq} {cq}\n")
        return "".join(lines)


def scenario() -> tuple[Books, dict[str, str]]:
    """A small honest ledger: a national USD fund and a state's VES treasury, a commitment
    paying a commune's tranches (held, then posted in part; one voided, one expired), an exchange
    USD -> VES through the clearing accounts, and a closed account. Returns the books and the
    ids worth naming in tests."""
    books = Books()
    usd = books.open("source:national:USD", "USD", "source")
    ves = books.open("source:state-01:VES", "VES", "source")
    commitment = books.open("commitment:national:p1:USD", "USD", "commitment", (DEBITS_LIMITED,))
    commune = books.open("commune:c1:USD", "USD", "commune", (DEBITS_LIMITED,))
    commune_ves = books.open("commune:c1:VES", "VES", "commune", (DEBITS_LIMITED,))
    project = books.open("project:p1:USD", "USD", "project")
    clear_usd = books.open("clearing:USD", "USD", "clearing")
    clear_ves = books.open("clearing:VES", "VES", "clearing")
    spare = books.open("commitment:national:p2:USD", "USD", "commitment", (DEBITS_LIMITED,))
    grant = books.single(usd, commitment, 1_000_000, code="grant_commitment", reference="national fund 2027")
    books.single(ves, commune_ves, 5_000, code="grant_commitment")
    posted = books.hold(commitment, commune, 300_000)
    books.resolve("post", posted, 250_000)
    voided = books.hold(commitment, commune, 100_000)
    books.resolve("void", voided)
    expired = books.hold(commitment, commune, 50_000, timeout=60)
    books.resolve("expire", expired, seconds=61)
    books.single(commune, project, 200_000, code="spend", reference="cement, 40 bags")
    books.exchange(commune, clear_usd, clear_ves, commune_ves, 12_345, "36.4218")
    open_hold = books.hold(commitment, commune, 1_000)
    books.close(spare)
    ids = {
        "usd": usd,
        "ves": ves,
        "commitment": commitment,
        "commune": commune,
        "commune_ves": commune_ves,
        "project": project,
        "clear_usd": clear_usd,
        "clear_ves": clear_ves,
        "spare": spare,
        "grant": grant,
        "posted": posted,
        "expired": expired,
        "open_hold": open_hold,
    }
    return books, ids


@dataclass
class LedgerLog(record.Log):
    """The platform-built log, of the ledger's origin."""

    origin: str = ORIGIN

    def checkpoint_body(self) -> str:
        return Checkpoint(self.origin, self.size, self.root()).text


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def publish(
    root: Path,
    entries: list[str],
    balances: str,
    signer: Signer,
    *,
    checkpoint_size: int | None = None,
    tweak: Callable[[list[bytes]], list[bytes]] | None = None,
) -> LedgerLog:
    """Write the ledger's public files under `root`: the log of `entries` (changed by `tweak`
    first: a dishonest but consistently signed log), its checkpoint (of the first
    `checkpoint_size` entries, all unless told) and `balances`."""
    data = [e.encode() for e in entries]
    if tweak is not None:
        data = tweak(data)
    full = LedgerLog(data, signer)
    signed = full if checkpoint_size is None else LedgerLog(data[:checkpoint_size], signer)
    base = root / BASE_PATH.lstrip("/")
    tiles = base / "record" / "tile"
    if tiles.exists():
        for f in sorted(tiles.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
    _write(base / "record" / "keys", json.dumps({"origin": ORIGIN, "verifier_keys": [signer.verifier.vkey]}))
    _write(base / "record" / "checkpoint", signed.checkpoint())
    for log in {id(full): full, id(signed): signed}.values():  # the signed size's partial tiles too
        for path, content in log.tile_files().items():
            _write(base / "record" / path, content)
    _write(base / "balances", balances)
    return signed


class Handler(BaseHTTPRequestHandler):
    server: LedgerServer

    def log_message(self, format: str, *args: object) -> None:  # quiet tests
        pass

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self, detail: str) -> None:
        self._answer(404, json.dumps({"status": 404, "detail": detail}).encode(), "application/problem+json")

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.fetched.append(path)
        if path == BASE_PATH + "/record/checkpoint" and self.server.checkpoints:
            # A log signed a little after it grows: the queued checkpoints first, one a request
            # (None: not signed yet).
            queued = self.server.checkpoints.pop(0)
            if queued is None:
                self._not_found("the ledger's journal has no signed checkpoint yet")
            else:
                self._answer(200, queued.encode(), "text/plain; charset=utf-8")
            return
        file = self.server.root / path.lstrip("/")
        if ".." in path or not file.is_file():
            self._not_found(f"not found: {path}")
            return
        self._answer(200, file.read_bytes(), "application/octet-stream")


class LedgerServer(ThreadingHTTPServer):
    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.checkpoints: list[str | None] = []
        self.fetched: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{BASE_PATH}"


@contextmanager
def serving(root: Path) -> Iterator[LedgerServer]:
    server = LedgerServer(root)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def new_signer() -> Signer:
    return Signer.generate(ORIGIN)
