"""`comuna-verify ledger` against an honest funding ledger's public journal, and against each
kind of tampering: entries, balances, checkpoints, the ledger's rules, a fork."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comuna_platform.tlog import note
from comuna_verify import cli, ledger
from tests.verify import ledger_record
from tests.verify.conftest import Runner
from tests.verify.ledger_record import DEBITS_LIMITED, Books, LedgerLog
from tests.verify.test_cli import script


@dataclass
class Journal:
    root: Path
    server: ledger_record.LedgerServer
    signer: note.Signer
    books: Books
    ids: dict[str, str]
    log: LedgerLog

    @property
    def base(self) -> str:
        return self.server.base

    def file(self, path: str) -> Path:
        return self.root / ledger_record.BASE_PATH.lstrip("/") / path

    def republish(self, books: Books | None = None, balances: str | None = None, **kwargs: object) -> LedgerLog:
        self.books = books or self.books
        text = self.books.balances() if balances is None else balances
        self.log = ledger_record.publish(self.root, self.books.entries, text, self.signer, **kwargs)  # type: ignore[arg-type]
        return self.log


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    books, ids = ledger_record.scenario()
    signer = ledger_record.new_signer()
    root = tmp_path / "www"
    log = ledger_record.publish(root, books.entries, books.balances(), signer)
    with ledger_record.serving(root) as server:
        yield Journal(root, server, signer, books, ids, log)


def verify(run: Runner, journal: Journal, *args: str) -> tuple[int, list[str], dict[str, object]]:
    ran = run(cli.main, "ledger", journal.base, "--json", "--wait", "0", *args)
    assert ran.status in (0, 1), ran.err
    report = json.loads(ran.out)
    assert report["ok"] == (ran.status == 0)
    return ran.status, report["mismatches"], report


def test_an_honest_ledger_verifies(run: Runner, journal: Journal) -> None:
    ran = run(cli.main, "ledger", journal.base)
    assert ran.status == 0, ran.out
    size = journal.log.size
    assert f"entries {size}/{size}" in ran.err  # progress on stderr
    lines = dict(line.split("  ", 1) for line in ran.out.splitlines())
    assert lines["mismatches"].strip() == "0" and "MISMATCH" not in ran.out
    assert lines["entries"].strip() == f"{size} (accounts 9, closings 1, transfers 12)"
    assert lines["transfers"].strip() == (
        "single 5, pending 4, post 1, void 1, expire 1; exchanges 1; pending still open 1"
    )
    assert lines["balances"].strip() == f"9 accounts at size {size}, compared with the log"
    counter = ledger_record.round_half_even(12_345 * Fraction("36.4218"))  # 449,627.121
    assert counter == 449_627
    currencies = lines[f"currencies at size {size}"].strip()
    assert currencies == (
        f"USD 6 accounts, posted 1462345, pending 1000; VES 3 accounts, posted {5_000 + counter}, pending 0"
    )
    report = json.loads(run(cli.main, "ledger", journal.base, "--json").out)
    assert report["ok"] is True and report["log"]["size"] == size
    assert report["transfers"] == {"single": 5, "pending": 4, "post": 1, "void": 1, "expire": 1}
    assert report["open_pending"] == 1 and report["exchanges"] == 1
    usd = report["currencies"]["USD"]
    assert usd["debits_posted"] == usd["credits_posted"] == 1_000_000 + 250_000 + 200_000 + 12_345
    assert usd["debits_pending"] == usd["credits_pending"] == 1_000
    assert report["balances"] == {"size": size, "accounts": 9, "compared": True}


def test_help() -> None:
    done = subprocess.run([script("comuna-verify"), "ledger", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: comuna-verify ledger"), done.stderr
    for option in ("--state DIR", "--log-key VKEY", "--witness-key VKEY", "--json", "--wait SECONDS", "--timeout"):
        assert option in done.stdout
    top = subprocess.run([script("comuna-verify"), "--help"], capture_output=True, text=True, check=False)
    assert "ledger" in top.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["ledger"],
        ["ledger", "ftp://example.org/v1/ledger"],
        ["ledger", "http://127.0.0.1:1/v1/ledger", "--wait", "-1"],
        ["ledger", "http://127.0.0.1:1/v1/ledger", "--wait", "soon"],
        ["ledger", "http://127.0.0.1:1/v1/ledger", "--timeout", "nan"],
    ],
)
def test_usage_errors(run: Runner, argv: list[str]) -> None:
    ran = run(cli.main, *argv)
    assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1, ran.err


def test_a_base_that_is_not_a_ledger(run: Runner, journal: Journal) -> None:
    ran = run(cli.main, "ledger", journal.base + "/nothing")
    assert ran.status == 2 and ran.err.count("\n") == 1 and "answered 404" in ran.err


def test_a_changed_amount_in_an_entry(run: Runner, journal: Journal) -> None:
    bundle = journal.file(f"record/tile/entries/000.p/{journal.log.size}")
    data = bundle.read_bytes()
    assert data.count(b"amount 200000\n") == 1
    bundle.write_bytes(data.replace(b"amount 200000\n", b"amount 200001\n"))
    index = next(i for i, e in enumerate(journal.books.entries) if "amount 200000\n" in e)
    status, mismatches, _ = verify(run, journal)
    assert status == 1
    size = journal.log.size
    assert f"tile 0/000.p/{size}: hash at {index} is not the hash of entry {index}" in mismatches
    assert any(m.startswith(f"root: the {size} entries give root") for m in mismatches)
    commune, project = (journal.books.accounts[journal.ids[k]] for k in ("commune", "project"))
    assert (
        f"balances: account {commune.id} ({commune.key}): debits_posted published {commune.totals[0]}, "
        f"the log gives {commune.totals[0] + 1}"
    ) in mismatches
    assert any(m.startswith(f"balances: account {project.id} ") for m in mismatches)


def test_a_published_balance_that_differs(run: Runner, journal: Journal) -> None:
    commitment = journal.books.accounts[journal.ids["commitment"]]
    honest = journal.books.balances()
    line = f"account {commitment.id} {' '.join(map(str, commitment.totals))}\n"
    dp, cp, dq, cq = commitment.totals
    journal.file("balances").write_text(honest.replace(line, f"account {commitment.id} {dp} {cp + 5} {dq} {cq}\n"))
    status, mismatches, _ = verify(run, journal)
    assert status == 1
    assert mismatches == [
        f"balances: account {commitment.id} ({commitment.key}): credits_posted published {cp + 5}, the log gives {cp}"
    ]


def test_an_account_missing_from_the_balances_and_one_too_many(run: Runner, journal: Journal) -> None:
    project = journal.books.accounts[journal.ids["project"]]
    lines = journal.books.balances().splitlines(keepends=True)
    lines = [line for line in lines if not line.startswith(f"account {project.id} ")]
    ghost = "ffffffff-0000-4000-8000-000000000000"
    lines.append(f"account {ghost} 0 0 0 0\n")
    journal.file("balances").write_text("".join(lines))
    status, mismatches, _ = verify(run, journal)
    assert status == 1
    size = journal.log.size
    assert sorted(mismatches) == sorted([
        f"balances: account {project.id} ({project.key}) is in the log but not in the published balances",
        f"balances: account {ghost} is published but not opened in the first {size} entries",
    ])  # fmt: skip


def test_malformed_balances(run: Runner, journal: Journal) -> None:
    honest = journal.books.balances()
    lines = honest.splitlines(keepends=True)
    lines[4], lines[5] = lines[5], lines[4]  # not sorted
    lines.append("account nope 1 2 3\n")
    journal.file("balances").write_text("".join(lines))
    status, mismatches, _ = verify(run, journal)
    assert status == 1
    assert any(m.startswith("balances: line 6: account ") and "not sorted by id" in m for m in mismatches)
    assert any(m.startswith(f"balances: line {len(lines)}: not 'account <id>") for m in mismatches)
    journal.file("balances").write_text("comuna-balances/v2\n")
    status, mismatches, report = verify(run, journal)
    assert status == 1 and mismatches == [
        "balances: malformed comuna-balances/v1: the first line is 'comuna-balances/v2', not 'comuna-balances/v1'; "
        "the balances were not compared"
    ]
    assert report["balances"] == {"size": None, "accounts": None, "compared": False}
    journal.file("balances").write_text(honest.replace(f"origin {ledger_record.ORIGIN}", "origin elsewhere"))
    status, mismatches, _ = verify(run, journal)
    assert mismatches == [f"balances: origin elsewhere is not the log's origin {ledger_record.ORIGIN}"]


def test_a_double_post_of_one_pending(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    hold = books.hold(ids["commitment"], ids["commune"], 10_000)
    books.resolve("post", hold, 4_000)
    second = books.transfer("post", ids["commitment"], ids["commune"], 6_000, pending=hold)
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    index = len(books.entries) - 1
    assert status == 1 and mismatches == [
        f"entry {index} (transfer {second}): post of pending transfer {hold}, already resolved"
    ]


def test_a_post_above_the_pending_amount(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    hold = books.hold(ids["commitment"], ids["commune"], 10_000)
    post = books.resolve("post", hold, 10_001)
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    index = len(books.entries) - 1
    assert status == 1 and mismatches == [
        f"entry {index} (transfer {post}): posts 10001, more than the 10000 pending in {hold}"
    ]


def test_an_overdraft_of_a_flagged_account(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    commitment = books.accounts[ids["commitment"]]
    dp, cp, dq, _ = commitment.totals
    available = cp - dp - dq
    assert books.allows(commitment.id, ids["commune"], available)
    assert not books.allows(commitment.id, ids["commune"], available + 1)
    over = books.single(commitment.id, ids["commune"], available + 1)
    books.single(commitment.id, ids["commune"], 1)  # still past it: named once, when it passed
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    index = len(books.entries) - 2
    assert status == 1 and mismatches == [
        f"entry {index} (transfer {over}): account {commitment.id} ({commitment.key}) passes its limit "
        f"{DEBITS_LIMITED}: debits posted {dp + available + 1} + pending {dq} > credits posted {cp}"
    ]


def test_a_hold_past_the_limit_and_a_credit_limited_account(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    capped = books.open("source:pledge:USD", "USD", "source", (ledger_record.CREDITS_LIMITED,))
    books.single(capped, ids["project"], 10)  # debits first: 10 may come back
    back = books.hold(ids["project"], capped, 11)
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    key = "source:pledge:USD"
    assert status == 1 and mismatches == [
        f"entry {len(books.entries) - 1} (transfer {back}): account {capped} ({key}) passes its limit "
        f"credits_must_not_exceed_debits: credits posted 0 + pending 11 > debits posted 10"
    ]


def test_a_transfer_after_close_and_a_close_with_pending(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    late = books.single(ids["usd"], ids["spare"], 5)
    books.close(ids["commune"])  # holds the open pending credit of 1,000
    books.close(ids["spare"])
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    n = len(books.entries)
    spare = books.accounts[ids["spare"]]
    closed_at = next(i for i, e in enumerate(books.entries) if e.startswith("comuna-account-closed/v1\n"))
    assert status == 1 and mismatches == [
        f"entry {n - 3} (transfer {late}): credit account {spare.id} ({spare.key}) was closed at entry {closed_at}",
        f"entry {n - 2} (close of account {ids['commune']}): closed with pending debits 0 and pending credits 1000",
        f"entry {n - 1} (close of account {spare.id}): the account was already closed at entry {closed_at}",
    ]


def test_an_expire_before_its_timeout(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    hold = books.hold(ids["commitment"], ids["commune"], 700, timeout=600)
    held_at = books.now
    expire = books.resolve("expire", hold, seconds=599)
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    ends = ledger_record.stamp(held_at + timedelta(seconds=600))
    assert status == 1 and mismatches == [
        f"entry {len(books.entries) - 1} (transfer {expire}): expires {hold} at {ledger_record.stamp(books.now)}, "
        f"before its timeout ends at {ends}"
    ]


def test_resolutions_that_do_not_match_their_pending(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    a = books.hold(ids["commitment"], ids["commune"], 700)
    void = books.resolve("void", a, 600)
    b = books.hold(ids["commitment"], ids["commune"], 800, timeout=None)
    expire = books.resolve("expire", b, seconds=10**6)
    c = books.hold(ids["commitment"], ids["commune"], 900)
    other = books.transfer("post", ids["commitment"], ids["project"], 900, pending=c)
    nothing = "bbbbbbbb-0000-4000-8000-000000000000"
    stray = books.transfer("void", ids["commitment"], ids["commune"], 5, pending=nothing)
    resolved = books.transfer("void", ids["commitment"], ids["commune"], 5, pending=ids["posted"])
    single = books.transfer("post", ids["usd"], ids["commitment"], 5, pending=ids["grant"])
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    n = len(books.entries)
    project, commune = ids["project"], ids["commune"]
    assert status == 1 and mismatches == [
        f"entry {n - 8} (transfer {void}): void releases 600, the pending transfer {a} holds 700",
        f"entry {n - 6} (transfer {expire}): expires {b}, which has no timeout",
        f"entry {n - 4} (transfer {other}): post names debit {ids['commitment']}, credit {project}, USD; the pending "
        f"transfer {c} (entry {n - 5}) debit {ids['commitment']}, credit {commune}, USD",
        f"entry {n - 3} (transfer {stray}): void names {nothing}, which is no earlier transfer",
        f"entry {n - 2} (transfer {resolved}): void of pending transfer {ids['posted']}, already resolved",
        f"entry {n - 1} (transfer {single}): post names {ids['grant']}, which is not a pending transfer",
    ], mismatches


def test_currencies_ids_and_unopened_accounts(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    cross = books.single(ids["usd"], ids["commune_ves"], 5)  # USD debit, VES credit
    again = books.single(ids["usd"], ids["project"], 5, transfer_id=cross)
    ghost = "aaaaaaaa-0000-4000-8000-00000000dead"
    books.accounts[ghost] = ledger_record.Account(ghost, "ghost", "USD", "project", ())
    unopened = books.single(ids["usd"], ghost, 5)
    del books.accounts[ghost]
    same = books.single(ids["usd"], ids["usd"], 5)
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    n = len(books.entries)
    ves = books.accounts[ids["commune_ves"]]
    held = books.accounts.values()
    sums = {c: [sum(a.totals[i] for a in held if a.currency == c) for i in (0, 1)] for c in ("USD", "VES")}
    assert sums["USD"][0] == sums["USD"][1] + 10 and sums["VES"][1] == sums["VES"][0] + 5
    assert status == 1 and mismatches == [
        f"entry {n - 4} (transfer {cross}): credit account {ves.id} ({ves.key}) holds VES, the transfer USD",
        f"entry {n - 3} (transfer {again}): the transfer id is used again",
        f"entry {n - 2} (transfer {unopened}): credit account {ghost} is not opened before it",
        f"entry {n - 1} (transfer {same}): debits and credits the same account",
        # The cross-currency 5 and the 5 to an unopened account leave USD's books unbalanced.
        f"USD: debits posted {sums['USD'][0]} but credits posted {sums['USD'][1]}",
        f"VES: debits posted {sums['VES'][0]} but credits posted {sums['VES'][1]}",
    ], mismatches


def test_exchange_rounding_is_checked(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    args = (ids["commune"], ids["clear_usd"], ids["clear_ves"], ids["commune_ves"])
    counter = books.exchange(*args, 1_000, "36.4218")
    assert counter == 36_422  # 36,421.8
    base_index = len(books.entries) - 2
    base_id, counter_id = (books.entries[i].split("\n")[1].split(" ")[1] for i in (base_index, base_index + 1))
    for i in (base_index, base_index + 1):  # the same lines on both legs, a rate the amounts do not keep
        books.entries[i] = books.entries[i].replace(" 36.4218\n", " 36.4208\n")
    assert books.exchange(*args, 5, "0.5") == 2  # half to even: 2.5 -> 2
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    assert status == 1 and mismatches == [
        f"exchange {base_id} -> {counter_id}: the counter leg moves 36422 VES; 1000 USD at rate 36.4208 is 36421"
    ]


def tid(n: int) -> str:
    return f"bbbbbbbb-0000-4000-8000-{n:012x}"


def test_exchange_legs_that_do_not_pair(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    commune, clear_usd, clear_ves, commune_ves = (ids[k] for k in ("commune", "clear_usd", "clear_ves", "commune_ves"))
    books.single(commune, clear_usd, 7, exchange=f"{tid(1)} {tid(2)} 1.5", transfer_id=tid(1))  # alone
    books.single(commune, clear_usd, 7, transfer_id=tid(3))
    books.single(clear_ves, commune_ves, 14, exchange=f"{tid(3)} {tid(4)} 2", transfer_id=tid(4))  # 3 came before
    books.single(commune, clear_usd, 10, exchange=f"{tid(5)} {tid(6)} 2", transfer_id=tid(5))
    books.single(clear_ves, commune_ves, 20, exchange=f"{tid(5)} {tid(6)} 2.0", transfer_id=tid(6))  # not the same
    books.single(commune, clear_usd, 10, exchange=f"{tid(90)} {tid(91)} 2", transfer_id=tid(7))  # not itself
    books.single(commune, clear_usd, 10, exchange=f"{tid(8)} {tid(9)} 2", transfer_id=tid(8))
    books.single(clear_ves, commune_ves, 20, transfer_id=tid(9))  # named, but without the line
    books.single(commune, ids["project"], 10, exchange=f"{tid(10)} {tid(11)} 1", transfer_id=tid(10))
    books.single(ids["commitment"], commune, 10, exchange=f"{tid(10)} {tid(11)} 1", transfer_id=tid(11))
    journal.republish(books)
    status, mismatches, _ = verify(run, journal)
    n = len(books.entries)
    pair = f"exchange {tid(10)} -> {tid(11)}"
    assert status == 1 and mismatches == [
        f"entry {n - 8} (transfer {tid(4)}): its other exchange leg {tid(3)} is in the log before it, without "
        "this exchange",
        f"entry {n - 6} (transfer {tid(6)}): exchange line '{tid(5)} {tid(6)} 2.0' differs from leg {tid(5)}'s "
        f"'{tid(5)} {tid(6)} 2'",
        f"entry {n - 5} (transfer {tid(7)}): its exchange line names legs {tid(90)} and {tid(91)}, not itself",
        f"entry {n - 3} (transfer {tid(9)}): transfer {tid(8)} names it as its exchange leg; it has no exchange line",
        f"{pair}: both legs are in USD",
        f"{pair}: leg {tid(10)} touches no clearing account",
        f"{pair}: leg {tid(11)} touches no clearing account",
        f"entry {n - 10} (transfer {tid(1)}): its other exchange leg {tid(2)} is not in the log",
    ], mismatches


def test_malformed_and_unknown_entries(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    books.entries.append("comuna-mystery/v1\n")
    books.entries.append(books.entries[-2].replace("comuna-account-closed/v1\n", "comuna-account-closed/v1\nx\n"))
    books.single(ids["usd"], ids["commitment"], 1)
    books.entries[-1] = books.entries[-1].replace("amount 1\n", "amount 1.5\n")
    journal.republish(books, balances=books.balances())
    status, mismatches, report = verify(run, journal)
    n = len(books.entries)
    assert status == 1
    assert mismatches[:3] == [
        f"entry {n - 3}: unknown entry type 'comuna-mystery/v1'",
        f"entry {n - 2}: malformed comuna-account-closed/v1 entry: expected 'account', got 'x'",
        f"entry {n - 1}: malformed comuna-transfer/v1 entry: amount '1.5' is not a decimal integer of minor units",
    ]
    assert report["entries"]["malformed"] == 3  # type: ignore[index]


def test_a_wrong_checkpoint_signature(run: Runner, journal: Journal) -> None:
    checkpoint = journal.file("record/checkpoint")
    body, (honest,) = note.split_note(checkpoint.read_text())
    forged = note.sign_note(body, note.Signer.generate(ledger_record.ORIGIN))
    checkpoint.write_text(note.format_note(body, [note.Signature(honest.name, honest.key_id, forged.signature)]))
    status, mismatches, _ = verify(run, journal)
    assert status == 1 and mismatches == [
        f"checkpoint: invalid signature by log key {journal.signer.name}",
        "checkpoint: no valid signature by a log key",
    ]
    checkpoint.write_text(journal.log.checkpoint())
    assert verify(run, journal, "--log-key", journal.signer.verifier.vkey)[:2] == (0, [])
    other = note.Signer.generate(ledger_record.ORIGIN).verifier.vkey
    assert verify(run, journal, "--log-key", other)[:2] == (1, ["checkpoint: no valid signature by a log key"])


def test_a_forked_log_with_state(run: Runner, journal: Journal, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert verify(run, journal, "--state", str(state))[:2] == (0, [])
    assert len(list(state.rglob("checkpoint-*"))) == 1
    books, ids = ledger_record.scenario()
    books.entries[-1] = books.entries[-1].replace("at 2026", "at 2027")  # the same size, another history
    journal.republish(books)
    status, mismatches, _ = verify(run, journal, "--state", str(state))
    assert status == 1 and len(mismatches) == 1
    assert mismatches[0].startswith(f"fork: the log signed two roots for size {journal.log.size}")
    # An extension of the first history is consistent with it.
    books, ids = ledger_record.scenario()
    books.single(ids["usd"], ids["commitment"], 3)
    state2 = tmp_path / "state2"
    small = ledger_record.scenario()[0]
    journal.republish(small)
    assert verify(run, journal, "--state", str(state2))[:2] == (0, [])
    journal.republish(books)
    assert verify(run, journal, "--state", str(state2))[:2] == (0, [])
    assert len(list(state2.rglob("checkpoint-*"))) == 2


def test_a_checkpoint_larger_than_the_balances(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    balances = books.balances()
    size = len(books.entries)
    for n in range(300):  # a second bundle: tiles and an upper level beyond the balances' size
        books.single(ids["usd"], ids["commitment"], n + 1)
    journal.republish(books, balances=balances)
    status, mismatches, report = verify(run, journal)
    assert (status, mismatches) == (0, [])
    assert report["balances"] == {"size": size, "accounts": 9, "compared": True}
    assert report["log"]["size"] == size + 300  # type: ignore[index]
    assert report["currencies_at"] == size


def test_waiting_for_a_checkpoint_that_covers_the_balances(
    run: Runner, journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    books, ids = ledger_record.scenario()
    small = len(books.entries)
    books.single(ids["usd"], ids["commitment"], 3)
    journal.republish(books, checkpoint_size=small)
    old = journal.log.checkpoint()
    status, mismatches, report = verify(run, journal)
    assert status == 1 and mismatches == [
        f"balances: no checkpoint covers the published balances: they reflect log size {small + 1}, the latest "
        f"checkpoint has size {small} (waited 0 s); the first {small} entries were checked, the balances not compared"
    ]
    assert report["balances"] == {"size": small + 1, "accounts": 9, "compared": False}
    full = journal.republish(books)
    # Not signed yet, then the old size twice, then the signed growth.
    journal.server.checkpoints = [None, old, old]
    journal.server.fetched.clear()
    capsys.readouterr()
    options = ledger.Options(journal.base, None, [], [], wait=30, poll=0.01)
    verified = ledger.verify(options, progress=True)
    assert verified.ok, verified.mismatches
    err = capsys.readouterr().err
    assert err.count(f"waiting for a checkpoint of size {full.size} (latest: none)") == 1
    assert err.count(f"waiting for a checkpoint of size {full.size} (latest: {small})") == 2
    assert journal.server.fetched.count(ledger_record.BASE_PATH + "/record/checkpoint") == 4
    # A ledger that never signs a checkpoint: exit 2, after the wait.
    journal.server.checkpoints = [None] * 3
    ran = run(cli.main, "ledger", journal.base, "--wait", "0")
    assert ran.status == 2 and ran.err.count("\n") == 1 and "no signed checkpoint yet" in ran.err


def test_cosignatures_are_listed(run: Runner, journal: Journal) -> None:
    from comuna_platform.tlog import cosignature

    witness = note.Signer.generate("witness.example", note.COSIGNATURE_V1)
    body = journal.log.checkpoint_body()
    journal.log.extra_signatures = [cosignature.cosign(body, witness, 1234)]
    journal.file("record/checkpoint").write_text(journal.log.checkpoint())
    ran = run(cli.main, "ledger", journal.base, "--witness-key", witness.verifier.vkey)
    assert ran.status == 0 and "witness.example (verified, time 1234)" in ran.out


def test_a_missing_bundle_is_a_mismatch(run: Runner, journal: Journal) -> None:
    journal.file(f"record/tile/entries/000.p/{journal.log.size}").unlink()
    status, mismatches, _ = verify(run, journal)
    assert status == 1 and mismatches == [
        f"entries: entries 000.p/{journal.log.size}: not served (404); the tree and the balances were not checked"
    ]


# Random honest workloads: whatever an honest ledger does, it verifies.

Op = tuple[str, int, int, int]


@st.composite
def workloads(draw: st.DrawFn) -> list[Op]:
    kinds = st.sampled_from(
        ["single"] * 3 + ["hold"] * 3 + ["post"] * 2 + ["exchange"] * 2 + ["void", "expire", "close", "open"]
    )
    op = st.tuples(kinds, st.integers(0, 50), st.integers(0, 50), st.integers(1, 5_000))
    return draw(st.lists(op, min_size=5, max_size=60))


def honest_books(ops: list[Op]) -> Books:
    """Apply what an honest ledger would accept of `ops`; refuse the rest, as the ledger does."""
    books = Books()
    rates = {("USD", "VES"): "36.4218", ("VES", "USD"): "0.0275"}
    clearing = {c: books.open(f"clearing:{c}", c, "clearing") for c in ("USD", "VES")}
    for c in ("USD", "VES"):
        source = books.open(f"source:national:{c}", c, "source")
        books.single(source, books.open(f"commitment:seed:{c}", c, "commitment", (DEBITS_LIMITED,)), 1_000_000)
    n = 0
    for kind, a, b, amount in ops:
        ids = list(books.accounts)
        debit = ids[a % len(ids)]
        same = [x for x in ids if books.accounts[x].currency == books.accounts[debit].currency and x != debit]
        credit = same[b % len(same)]
        if kind == "open":
            n += 1
            currency = ("USD", "VES")[a % 2]
            flags = [(), (DEBITS_LIMITED,), (ledger_record.CREDITS_LIMITED,)][b % 3]
            books.open(f"commune:c{n}:{currency}", currency, ("commune", "project", "source")[b % 3], flags)
        elif kind == "single" and books.allows(debit, credit, amount):
            books.single(debit, credit, amount, reference=f"op {n}" if a % 2 else "")
        elif kind == "hold" and books.allows(debit, credit, amount, pending=True):
            books.hold(debit, credit, amount, timeout=[None, 60, 3600][b % 3])
        elif kind in ("post", "void", "expire") and books.pending:
            pending = list(books.pending)[a % len(books.pending)]
            held = books.pending[pending]
            if kind == "post":
                books.resolve("post", pending, 1 + amount % held.amount)
            elif kind == "void":
                books.resolve("void", pending)
            elif held.expires is not None:
                wait = max(0.0, (held.expires - books.now).total_seconds()) + (b % 3)
                books.resolve("expire", pending, seconds=wait)
        elif kind == "exchange":
            payer = books.accounts[debit]
            payees = [x for x in books.accounts.values() if x.currency != payer.currency and x.kind != "clearing"]
            payee = payees[b % len(payees)]
            if payer.kind == "clearing":
                continue
            counter = books.accounts[clearing[payee.currency]]
            rate = rates[(payer.currency, payee.currency)]
            counter_amount = ledger_record.round_half_even(amount * ledger_record.Fraction(rate))
            if (
                counter_amount > 0
                and books.allows(payer.id, clearing[payer.currency], amount)
                and books.allows(counter.id, payee.id, counter_amount)
            ):
                books.exchange(payer.id, clearing[payer.currency], counter.id, payee.id, amount, rate)
        elif kind == "close":
            account = books.accounts[debit]
            held_here = any(account.id in (h.debit, h.credit) for h in books.pending.values())
            if not account.closed and not held_here and account.kind != "clearing":
                books.close(account.id)
    return books


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.integers(0, 3))
def test_random_honest_workloads_verify(ops: list[Op], extra: int) -> None:
    books = honest_books(ops)
    balances = books.balances()
    for n in range(extra):  # the log grows past the balances before it is signed
        books.open(f"project:late{n}:USD", "USD", "project")
    with tempfile.TemporaryDirectory() as directory, ledger_record.serving(Path(directory)) as server:
        signer = ledger_record.new_signer()
        ledger_record.publish(Path(directory), books.entries, balances, signer)
        status = cli.main(["ledger", server.base, "--json", "--wait", "0"])
    assert status == 0


def test_accounts_opened_after_use_or_twice(run: Runner, journal: Journal) -> None:
    books, ids = ledger_record.scenario()
    grant = next(i for i, e in enumerate(books.entries) if f"transfer {ids['grant']}\n" in e)
    opening = next(i for i, e in enumerate(books.entries) if f"account {ids['commitment']}\n" in e)
    books.entries.append(books.entries[opening])
    books.entries.append(f"comuna-account-closed/v1\naccount {tid(99)}\nat {books.tick()}\n")

    def grant_first(entries: list[bytes]) -> list[bytes]:
        moved = entries[grant]
        return [moved, *entries[:grant], *entries[grant + 1 :]]

    journal.republish(books, tweak=grant_first)
    status, mismatches, _ = verify(run, journal)
    n = len(books.entries)
    assert status == 1
    assert mismatches[:2] == [
        f"entry 0 (transfer {ids['grant']}): debit account {ids['usd']} is not opened before it",
        f"entry 0 (transfer {ids['grant']}): credit account {ids['commitment']} is not opened before it",
    ]
    assert f"entry {n - 2}: account {ids['commitment']} is opened again" in mismatches
    assert f"entry {n - 1} (close of account {tid(99)}): the account is not opened before it" in mismatches
    # The grant was not applied to accounts that did not exist yet: the commitment pays out what
    # it never received, and the rebuilt balances differ from the published ones.
    assert any(f"account {ids['commitment']} (commitment:national:p1:USD) passes its limit" in m for m in mismatches)
    assert f"balances: account {ids['usd']} (source:national:USD): debits_posted published " in " ".join(mismatches)


@pytest.mark.parametrize(
    ("replace", "why"),
    [
        (("at 2026-12-01T08:00:10.123456Z", "at 2026-02-30T08:00:13.123456Z"), "time '2026-02-30T08:00:13.123456Z': "),
        (("at 2026-12-01T08:00:10.123456Z", "at 2026-12-01T08:00:10Z"), "time '2026-12-01T08:00:10Z' is not UTC"),
        (("timeout -", "timeout 60"), "a single transfer has timeout '-', not '60'"),
        (("kind single", "kind refund"), "unknown transfer kind 'refund'"),
        (("pending -", "pending " + "b" * 8 + "-0000-4000-8000-000000000001"), "a single transfer has pending '-'"),
        (("code grant_commitment", "code Grant"), "code 'Grant' is not a lower_snake_case word"),
        (("currency USD", "currency usd"), "currency 'usd' is not an ISO 4217 code"),
        (("amount 1000000", "amount 0"), "amount 0: a transfer moves a positive amount"),
        (("amount 1000000", "amount 01000000"), "amount '01000000' is not a decimal integer"),
        (("reference national fund 2027\n", ""), "expected 'reference', got 'exchange -'"),
        (("exchange -", "exchange -\nat"), "line 'at' has no value"),
        (("Z\n", "Z\nextra\n"), "unexpected line 'extra'"),
        (("exchange -", "exchange a b 1"), "exchange base leg 'a' is not a lowercase UUID"),
        (("\n", "\r\n"), "lines must end in a newline"),
    ],
)
def test_malformed_transfers_are_named(replace: tuple[str, str], why: str) -> None:
    from comuna_verify.entries import EntryError
    from comuna_verify.ledger_entries import parse_entry

    books, ids = ledger_record.scenario()
    grant = next(e for e in books.entries if f"transfer {ids['grant']}\n" in e)
    assert "\nat 2026-12-01T08:00:10.123456Z\n" in grant
    parse_entry(grant.encode())
    with pytest.raises(EntryError) as caught:
        parse_entry(grant.replace(*replace, 1).encode())
    assert why in str(caught.value)


def test_entry_forms_the_spec_allows() -> None:
    from comuna_verify.ledger_entries import Transfer, parse_entry, time_of

    books, ids = ledger_record.scenario()
    spend = next(e for e in books.entries if "code spend\n" in e)
    empty = spend.replace("reference cement, 40 bags\n", "reference \n")
    bare = spend.replace("reference cement, 40 bags\n", "reference\n")
    for text in (empty, bare):
        entry = parse_entry(text.encode())
        assert isinstance(entry, Transfer) and entry.reference == ""
    entry = parse_entry(spend.encode())
    assert isinstance(entry, Transfer) and entry.reference == "cement, 40 bags"
    assert time_of("1970-01-01T00:00:01.000002Z") == 1_000_002
    hold = next(e for e in books.entries if f"transfer {ids['open_hold']}\n" in e)
    no_timeout = parse_entry(hold.replace("timeout 3600\n", "timeout -\n").encode())
    assert isinstance(no_timeout, Transfer) and no_timeout.timeout is None


def test_account_flags_must_be_known_sorted_and_distinct() -> None:
    from comuna_verify.entries import EntryError
    from comuna_verify.ledger_entries import Opened, parse_entry

    books, _ = ledger_record.scenario()
    opening = next(e for e in books.entries if "kind commitment\n" in e)
    both = "flags credits_must_not_exceed_debits,debits_must_not_exceed_credits\n"
    entry = parse_entry(opening.replace(f"flags {DEBITS_LIMITED}\n", both).encode())
    assert isinstance(entry, Opened) and len(entry.flags) == 2
    for flags, why in [
        ("debits_must_not_exceed_credits,credits_must_not_exceed_debits", "not sorted and distinct"),
        ("debits_must_not_exceed_credits,debits_must_not_exceed_credits", "not sorted and distinct"),
        ("frozen", "unknown flag 'frozen'"),
        ("", "line 'flags' has no value"),
    ]:
        with pytest.raises(EntryError, match=why):
            parse_entry(opening.replace(f"flags {DEBITS_LIMITED}\n", f"flags {flags}\n").encode())


def test_mismatches_of_one_kind_are_listed_up_to_a_limit() -> None:
    from comuna_verify.ledger_rules import Rebuild

    books, ids = ledger_record.scenario()
    for n in range(5):  # five commitments, each overdrawn once
        commitment = books.open(f"commitment:c{n}:USD", "USD", "commitment", (DEBITS_LIMITED,))
        books.single(commitment, ids["commune"], 1)
    rebuild = Rebuild(None, shown=2)
    for index, entry in enumerate(books.entries):
        rebuild.add(index, entry.encode())
    mismatches = rebuild.finish(len(books.entries))
    assert len(mismatches) == 3 and "passes its limit" in mismatches[1]
    assert mismatches[2] == "and 3 more limit mismatches"
