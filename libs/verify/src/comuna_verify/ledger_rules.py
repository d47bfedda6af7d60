"""The rules a funding ledger's log must keep, checked entry by entry while the balances are
rebuilt (docs/ledger.md).

`Rebuild.add` takes entries in log order. It keeps the accounts (their four totals), the
pending transfers not yet resolved, the exchange legs still waiting for their other leg, and
one integer per transfer id (ids must be unique, and a resolution must name an earlier pending
transfer): memory grows with accounts and open pending transfers, plus ~80 bytes per transfer.

An entry that breaks a rule is still applied as written, as far as its accounts exist: the
ledger stored it, so the published balances hold it, and one bad entry is named once rather
than again as a difference in every later balance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from comuna_verify.entries import EntryError
from comuna_verify.ledger_entries import (
    CLEARING,
    CLOSED_FLAG,
    CREDITS_LIMITED,
    DEBITS_LIMITED,
    EXPIRE,
    PENDING,
    POST,
    SINGLE,
    TOTALS,
    TRANSFER_KINDS,
    VOID,
    Balances,
    Closed,
    Exchange,
    Opened,
    Totals,
    Transfer,
    format_time,
    parse_entry,
)

SHOWN = 20  # mismatches listed per kind before "and N more": a broken national ledger has thousands


class Problems:
    """Mismatches by kind, at most SHOWN of each listed, the rest counted."""

    def __init__(self, shown: int = SHOWN) -> None:
        self.shown = shown
        self.listed: list[str] = []
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, text: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] <= self.shown:
            self.listed.append(text)

    def lines(self) -> list[str]:
        more = [f"and {n - self.shown} more {kind} mismatches" for kind, n in self.counts.items() if n > self.shown]
        return [*self.listed, *more]


class Account:
    __slots__ = ("closed_at", "credits_limited", "currency", "debits_limited", "id", "key", "kind", "totals")

    def __init__(self, opened: Opened, index: int) -> None:
        self.id, self.key, self.currency, self.kind = opened.account, opened.key, opened.currency, opened.kind
        self.debits_limited = DEBITS_LIMITED in opened.flags
        self.credits_limited = CREDITS_LIMITED in opened.flags
        self.closed_at: int | None = index if CLOSED_FLAG in opened.flags else None
        # debits_posted, credits_posted, debits_pending, credits_pending
        self.totals = [0, 0, 0, 0]

    @property
    def name(self) -> str:
        return f"{self.id} ({self.key})"

    def over_limit(self) -> str | None:
        """Which limit the account is past, with its numbers (None: within its flags)."""
        debits, credits, debits_pending, credits_pending = self.totals
        if self.debits_limited and debits + debits_pending > credits:
            return f"{DEBITS_LIMITED}: debits posted {debits} + pending {debits_pending} > credits posted {credits}"
        if self.credits_limited and credits + credits_pending > debits:
            return f"{CREDITS_LIMITED}: credits posted {credits} + pending {credits_pending} > debits posted {debits}"
        return None


@dataclass(frozen=True, slots=True)
class Pending:
    debit: str
    credit: str
    currency: str
    amount: int
    expires: int | None  # microseconds since the epoch; None: no timeout
    index: int


@dataclass(frozen=True, slots=True)
class Leg:
    transfer: str
    exchange: Exchange
    amount: int
    currency: str
    clearing: bool  # it debits or credits a clearing account
    index: int


def transfer_id(text: str) -> int:
    return int(text.replace("-", ""), 16)


def exchanged(amount: int, rate: Decimal) -> int:
    """amount × rate rounded half to even, exactly (precision enough for u128 × any rate)."""
    with localcontext() as context:
        context.prec = 120
        return int((Decimal(amount) * rate).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class Rebuild:
    """Rebuilds every account's totals from the entries, naming each broken rule; compares
    them with the published balances once `balances.size` entries are in."""

    def __init__(self, balances: Balances | None, shown: int = SHOWN) -> None:
        self.problems = Problems(shown)
        self.balances = balances
        self.accounts: dict[str, Account] = {}
        self.open: dict[str, Pending] = {}
        self.ids: set[int] = set()
        self.resolved: set[int] = set()
        self.awaiting: dict[str, Leg] = {}  # the other leg's id -> the leg that names it
        self.over: set[str] = set()  # accounts past their limit now (named once, when they pass it)
        self.kinds: Counter[str] = Counter()  # account, closed, malformed and each transfer kind
        self.exchanges = 0
        self.size = 0
        self.compared = False
        self.currencies: dict[str, list[int]] = {}  # the totals at the balances' size (or the end)
        if balances is not None and balances.size == 0:
            self._compare()

    def add(self, index: int, data: bytes) -> None:
        self.size = index + 1
        try:
            entry = parse_entry(data)
        except EntryError as exc:
            self.kinds["malformed"] += 1
            self.problems.add("entry", f"entry {index}: {exc}")
        else:
            if isinstance(entry, Opened):
                self._opened(index, entry)
            elif isinstance(entry, Closed):
                self._closed(index, entry)
            else:
                self._transfer(index, entry)
        if self.balances is not None and self.size == self.balances.size:
            self._compare()

    def _opened(self, index: int, opened: Opened) -> None:
        self.kinds["account"] += 1
        first = self.accounts.get(opened.account)
        if first is not None:
            self.problems.add("id", f"entry {index}: account {opened.account} is opened again")
            return
        self.accounts[opened.account] = Account(opened, index)

    def _closed(self, index: int, closed: Closed) -> None:
        self.kinds["closed"] += 1
        where = f"entry {index} (close of account {closed.account})"
        account = self.accounts.get(closed.account)
        if account is None:
            self.problems.add("account", f"{where}: the account is not opened before it")
            return
        if account.closed_at is not None:
            self.problems.add("account", f"{where}: the account was already closed at entry {account.closed_at}")
            return
        _, _, debits_pending, credits_pending = account.totals
        if debits_pending or credits_pending:
            self.problems.add(
                "account",
                f"{where}: closed with pending debits {debits_pending} and pending credits {credits_pending}",
            )
        account.closed_at = index

    def _account(self, where: str, side: str, account_id: str, currency: str) -> Account | None:
        account = self.accounts.get(account_id)
        if account is None:
            self.problems.add("account", f"{where}: {side} account {account_id} is not opened before it")
            return None
        if account.closed_at is not None:
            self.problems.add(
                "account", f"{where}: {side} account {account.name} was closed at entry {account.closed_at}"
            )
        if account.currency != currency:
            self.problems.add(
                "currency", f"{where}: {side} account {account.name} holds {account.currency}, the transfer {currency}"
            )
        return account

    def _transfer(self, index: int, t: Transfer) -> None:
        self.kinds[t.kind] += 1
        where = f"entry {index} (transfer {t.transfer})"
        number = transfer_id(t.transfer)
        if number in self.ids:
            self.problems.add("id", f"{where}: the transfer id is used again")
        self.ids.add(number)
        debit = self._account(where, "debit", t.debit, t.currency)
        credit = self._account(where, "credit", t.credit, t.currency)
        if t.debit == t.credit:
            self.problems.add("account", f"{where}: debits and credits the same account")
        touched = [a for a in (debit, credit) if a is not None]
        if t.kind == SINGLE:
            self._move(debit, credit, 0, t.amount)
        elif t.kind == PENDING:
            self._move(debit, credit, 2, t.amount)
            expires = None if t.timeout is None else t.at + t.timeout * 1_000_000
            self.open[t.transfer] = Pending(t.debit, t.credit, t.currency, t.amount, expires, index)
        else:
            touched += self._resolve(where, t, debit, credit)
        for account in touched:
            self._limits(where, account)
        if t.exchange is not None or t.transfer in self.awaiting:
            self._exchange(where, index, t, [a for a in (debit, credit) if a is not None])

    @staticmethod
    def _move(debit: Account | None, credit: Account | None, field: int, amount: int) -> None:
        """Add `amount` to the debits (field 0 posted, 2 pending) and the mirror credits."""
        if debit is not None:
            debit.totals[field] += amount
        if credit is not None:
            credit.totals[field + 1] += amount

    def _resolve(self, where: str, t: Transfer, debit: Account | None, credit: Account | None) -> list[Account]:
        """Post, void or expire: release the pending amount, post what a post posts; the
        pending transfer's accounts when they are not the entry's (also touched)."""
        assert t.pending is not None  # the parser requires it of post, void and expire
        pending = self.open.pop(t.pending, None)
        number = transfer_id(t.pending)
        if pending is None:
            if number in self.resolved:
                self.problems.add("pending", f"{where}: {t.kind} of pending transfer {t.pending}, already resolved")
            elif number in self.ids:
                self.problems.add("pending", f"{where}: {t.kind} names {t.pending}, which is not a pending transfer")
            else:
                self.problems.add("pending", f"{where}: {t.kind} names {t.pending}, which is no earlier transfer")
            if t.kind == POST:
                self._move(debit, credit, 0, t.amount)
            return []
        self.resolved.add(number)
        named = (t.debit, t.credit, t.currency)
        if named != (pending.debit, pending.credit, pending.currency):
            self.problems.add(
                "pending",
                f"{where}: {t.kind} names debit {t.debit}, credit {t.credit}, {t.currency}; the pending "
                f"transfer {t.pending} (entry {pending.index}) debit {pending.debit}, credit {pending.credit}, "
                f"{pending.currency}",
            )
        if t.kind == POST and t.amount > pending.amount:
            self.problems.add(
                "pending", f"{where}: posts {t.amount}, more than the {pending.amount} pending in {t.pending}"
            )
        if t.kind in (VOID, EXPIRE) and t.amount != pending.amount:
            self.problems.add(
                "pending",
                f"{where}: {t.kind} releases {t.amount}, the pending transfer {t.pending} holds {pending.amount}",
            )
        if t.kind == EXPIRE:
            if pending.expires is None:
                self.problems.add("pending", f"{where}: expires {t.pending}, which has no timeout")
            elif t.at < pending.expires:
                self.problems.add(
                    "pending",
                    f"{where}: expires {t.pending} at {format_time(t.at)}, "
                    f"before its timeout ends at {format_time(pending.expires)}",
                )
        held_debit, held_credit = self.accounts.get(pending.debit), self.accounts.get(pending.credit)
        self._move(held_debit, held_credit, 2, -pending.amount)
        if t.kind == POST:
            self._move(debit, credit, 0, t.amount)
        return [a for a in (held_debit, held_credit) if a is not None and a not in (debit, credit)]

    def _limits(self, where: str, account: Account) -> None:
        past = account.over_limit()
        if past is None:
            self.over.discard(account.id)
        elif account.id not in self.over:
            self.over.add(account.id)
            self.problems.add("limit", f"{where}: account {account.name} passes its limit {past}")

    def _exchange(self, where: str, index: int, t: Transfer, accounts: list[Account]) -> None:
        named_by = self.awaiting.pop(t.transfer, None)
        x = t.exchange
        if x is None:
            assert named_by is not None
            self.problems.add(
                "exchange",
                f"{where}: transfer {named_by.transfer} names it as its exchange leg; it has no exchange line",
            )
            return
        if t.transfer not in (x.base, x.counter):
            self.problems.add("exchange", f"{where}: its exchange line names legs {x.base} and {x.counter}, not itself")
            return
        other = x.counter if t.transfer == x.base else x.base
        leg = Leg(t.transfer, x, t.amount, t.currency, any(a.kind == CLEARING for a in accounts), index)
        if named_by is None:
            if transfer_id(other) in self.ids:
                self.problems.add(
                    "exchange",
                    f"{where}: its other exchange leg {other} is in the log before it, without this exchange",
                )
            else:
                self.awaiting[other] = leg
            return
        if named_by.exchange.line != x.line:
            self.problems.add(
                "exchange",
                f"{where}: exchange line {x.line!r} differs from leg {named_by.transfer}'s {named_by.exchange.line!r}",
            )
            return
        self.exchanges += 1
        base, counter = (named_by, leg) if named_by.transfer == x.base else (leg, named_by)
        pair = f"exchange {base.transfer} -> {counter.transfer}"
        if base.currency == counter.currency:
            self.problems.add("exchange", f"{pair}: both legs are in {base.currency}")
        for one in (base, counter):
            if not one.clearing:
                self.problems.add("exchange", f"{pair}: leg {one.transfer} touches no clearing account")
        expected = exchanged(base.amount, x.rate)
        if counter.amount != expected:
            self.problems.add(
                "exchange",
                f"{pair}: the counter leg moves {counter.amount} {counter.currency}; "
                f"{base.amount} {base.currency} at rate {x.rate} is {expected}",
            )

    def _currency_totals(self) -> dict[str, list[int]]:
        totals: dict[str, list[int]] = {}
        for account in self.accounts.values():
            sums = totals.setdefault(account.currency, [0, 0, 0, 0, 0])
            for i, value in enumerate(account.totals):
                sums[i] += value
            sums[4] += 1
        return dict(sorted(totals.items()))

    def _compare(self) -> None:
        """The published balances against the rebuilt ones, at exactly their size."""
        assert self.balances is not None
        self.compared = True
        self.currencies = self._currency_totals()
        published = self.balances.accounts
        size = self.balances.size
        for account_id in sorted(published.keys() - self.accounts.keys()):
            self.problems.add(
                "balance", f"balances: account {account_id} is published but not opened in the first {size} entries"
            )
        for account_id, account in self.accounts.items():
            totals = published.get(account_id)
            if totals is None:
                self.problems.add(
                    "balance", f"balances: account {account.name} is in the log but not in the published balances"
                )
                continue
            rebuilt: Totals = tuple(account.totals)  # type: ignore[assignment]
            if totals != rebuilt:
                differ = ", ".join(
                    f"{name} published {a}, the log gives {b}"
                    for name, a, b in zip(TOTALS, totals, rebuilt, strict=True)
                    if a != b
                )
                self.problems.add("balance", f"balances: account {account.name}: {differ}")
        self.balances = None  # compared once; the published totals are no longer kept

    def finish(self, settled: int) -> list[str]:
        """Every mismatch; `settled`: the size up to which an exchange leg must have its pair
        (past the balances' size the other leg may lie beyond the checkpoint)."""
        for other, leg in self.awaiting.items():
            if leg.index < settled:
                self.problems.add(
                    "exchange",
                    f"entry {leg.index} (transfer {leg.transfer}): its other exchange leg {other} is not in the log",
                )
        if not self.compared:
            self.currencies = self._currency_totals()
        for currency, (debits, credits, debits_pending, credits_pending, _) in self._currency_totals().items():
            if debits != credits:
                self.problems.add("currency", f"{currency}: debits posted {debits} but credits posted {credits}")
            if debits_pending != credits_pending:
                self.problems.add(
                    "currency", f"{currency}: debits pending {debits_pending} but credits pending {credits_pending}"
                )
        return self.problems.lines()

    def transfers(self) -> dict[str, int]:
        return {kind: self.kinds[kind] for kind in TRANSFER_KINDS}
