"""`comuna-verify ledger`: rebuild every account of a funding ledger from its public log and
check it against the published balances and the signed checkpoints (docs/ledger.md).

The balances (`BASE/balances`) reflect the first S entries of the log. A signed checkpoint of
size C >= S is needed (it is polled for up to `--wait` seconds: the log is signed a little after
it grows). The C entries are streamed bundle by bundle: the tree rebuilt from them must give the
checkpoint's root, every entry must keep the ledger's rules (`ledger_rules`), and after exactly
S entries the rebuilt totals must equal the published ones, account by account.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from comuna_verify import merkle, record
from comuna_verify.checkpoint import SignedCheckpoint
from comuna_verify.consultation import TreeCheck, bundles, cosigner_rows
from comuna_verify.entries import EntryError
from comuna_verify.http import TIMEOUT, Client, UsageError
from comuna_verify.ledger_entries import TOTALS, Balances, parse_balances
from comuna_verify.ledger_rules import Rebuild
from comuna_verify.notes import COSIGNATURE_V1, PublicKey
from comuna_verify.report import Progress, Report
from comuna_verify.tiles import WIDTH, EntriesNotPublic, TileError, TileReader

WAIT = 30.0  # seconds a checkpoint covering the balances is waited for, by default
POLL = 1.0  # seconds between two fetches of the checkpoint while waiting


@dataclass(frozen=True, slots=True)
class Options:
    base: str
    state: Path | None
    log_keys: Sequence[str]
    witness_keys: Sequence[str]
    wait: float = WAIT
    timeout: float = TIMEOUT
    poll: float = POLL


def fetch_balances(client: Client, report: Report) -> Balances | None:
    """The published balances; None (and a mismatch) if they are malformed."""
    text = client.get_ok("balances").text()
    try:
        balances = parse_balances(text)
    except EntryError as exc:
        report.mismatches.append(f"balances: malformed comuna-balances/v1: {exc}; the balances were not compared")
        return None
    report.mismatches.extend(balances.problems)
    return balances


def covering_checkpoint(
    client: Client,
    keys: tuple[Sequence[PublicKey], Sequence[PublicKey], str | None],
    size: int,
    options: Options,
    progress: bool,
) -> SignedCheckpoint:
    """The latest checkpoint, fetched again until it covers `size` or the wait is over; `keys`
    are the log keys, the witness keys and the published origin. A new ledger may have no
    signed checkpoint yet: that too is waited for (then UsageError, exit 2)."""
    deadline = time.monotonic() + options.wait
    while True:
        try:
            signed: SignedCheckpoint | None = record.fetch_checkpoint(client, *keys)
        except UsageError:
            if time.monotonic() >= deadline:
                raise
            signed = None
        if signed is not None and signed.checkpoint.size >= size:
            return signed
        left = deadline - time.monotonic()
        if left <= 0 and signed is not None:
            return signed
        if progress:
            latest = "none" if signed is None else signed.checkpoint.size
            sys.stderr.write(f"waiting for a checkpoint of size {size} (latest: {latest})\n")
        time.sleep(max(0.0, min(options.poll, left)))


def verify(options: Options, progress: bool = True) -> Report:
    client = Client(options.base, options.timeout)
    report = Report()
    keys, origin, key_problems = record.log_keys(client, options.log_keys)
    report.mismatches.extend(key_problems)
    witnesses = record.parse_keys(options.witness_keys, "--witness-key", COSIGNATURE_V1)
    balances = fetch_balances(client, report)
    wanted = balances.size if balances is not None else 0
    signed = covering_checkpoint(client, (keys, witnesses, origin), wanted, options, progress)
    report.mismatches.extend(signed.problems)
    checkpoint = signed.checkpoint
    reader = TileReader(client)
    if options.state is not None:
        report.mismatches.extend(record.check_state(options.state, signed, reader))
    if balances is not None and balances.origin != checkpoint.origin:
        report.mismatches.append(f"balances: origin {balances.origin} is not the log's origin {checkpoint.origin}")
    published = None if balances is None else (balances.size, len(balances.accounts))
    if balances is not None and balances.size > checkpoint.size:
        report.mismatches.append(
            f"balances: no checkpoint covers the published balances: they reflect log size {balances.size}, "
            f"the latest checkpoint has size {checkpoint.size} (waited {options.wait:g} s); "
            f"the first {checkpoint.size} entries were checked, the balances not compared"
        )
        balances = None

    cosigners, listed = cosigner_rows(signed)
    report.row("ledger", client.base)
    report.row("log", f"{checkpoint.origin}, size {checkpoint.size}, root {checkpoint.root_b64}")
    report.row("signed by", ", ".join(signed.signers) or "NOBODY")
    report.row("cosigned by", cosigners)
    report.data.update(
        ledger=client.base,
        log={"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root_b64},
        signers=signed.signers,
        cosigners=listed,
    )
    settled = balances.size if balances is not None else checkpoint.size
    rebuild = Rebuild(balances)
    tree = TreeCheck(checkpoint.size)
    meter = Progress("entries", checkpoint.size, stream=sys.stderr) if progress else None
    try:
        for n, bundle, tile in bundles(reader, checkpoint.size):
            tree.add_tile(n, [merkle.leaf_hash(e) for e in bundle], tile)
            for i, entry in enumerate(bundle):
                rebuild.add(n * WIDTH + i, entry)
            if meter:
                meter.update(n * WIDTH + len(bundle))
    except (TileError, EntriesNotPublic) as exc:
        report.mismatches.extend([*tree.problems, f"entries: {exc}; the tree and the balances were not checked"])
        return report
    tree.check_root(checkpoint.root)
    tree.check_upper(reader)
    report.mismatches.extend(tree.problems)
    report.mismatches.extend(rebuild.finish(settled))
    summarize(report, rebuild, published)
    return report


def summarize(report: Report, rebuild: Rebuild, published: tuple[int, int] | None) -> None:
    """The summary rows and data; `published`: the balances' size and accounts, if parsed."""
    kinds, transfers = rebuild.kinds, rebuild.transfers()
    shown = ", ".join(f"{kind} {n}" for kind, n in transfers.items())
    count = sum(transfers.values())
    entries = f"{rebuild.size} (accounts {kinds['account']}, closings {kinds['closed']}, transfers {count}"
    report.row("entries", entries + (f", malformed {kinds['malformed']})" if kinds["malformed"] else ")"))
    report.row("transfers", f"{shown}; exchanges {rebuild.exchanges}; pending still open {len(rebuild.open)}")
    size, accounts = published or (None, None)
    if published is None:
        report.row("balances", "malformed, NOT COMPARED")
    elif rebuild.compared:
        report.row("balances", f"{accounts} accounts at size {size}, compared with the log")
    else:
        report.row("balances", f"{accounts} accounts at size {size}, NOT COMPARED: no checkpoint covers them")
    at = size if rebuild.compared else rebuild.size
    currencies = {
        currency: {"accounts": totals[4], **dict(zip(TOTALS, totals[:4], strict=True))}
        for currency, totals in rebuild.currencies.items()
    }
    label = f"currencies at size {at}"
    report.row(
        label,
        "; ".join(
            f"{c} {v['accounts']} accounts, posted {v['credits_posted']}, pending {v['credits_pending']}"
            for c, v in currencies.items()
        )
        or "none",
    )
    report.data.update(
        entries={"total": rebuild.size, **{k: kinds[k] for k in ("account", "closed", "malformed")}},
        transfers=transfers,
        exchanges=rebuild.exchanges,
        open_pending=len(rebuild.open),
        balances={"size": size, "accounts": accounts, "compared": rebuild.compared},
        currencies=currencies,
        currencies_at=at,
    )
