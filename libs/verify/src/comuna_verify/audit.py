"""What the entries of a log must add up to, commune by commune.

`Ledger.add` takes entries in log order and keeps counters only (per commune and choice, per
table), never receipts or ballots, so memory does not grow with the number of ballots.
`Ledger.finish` then checks each commune's latest certified result against the bulletins of
that version, and the bulletins against the ballots, offline batches and tally sheets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from comuna_verify import entries, ranking
from comuna_verify.entries import ELECTRONIC, Bulletin, EntryError, Result, Tally

Key = tuple[str, str]  # (commune, table)


def _nonzero(tally: Iterable[tuple[str, int]]) -> dict[str, int]:
    return {choice: n for choice, n in tally if n}


def _add(total: Counter[str], tally: Tally) -> None:
    for choice, n in tally.items():
        total[choice] += n


def result_tally(result: Result) -> dict[str, int]:
    tally = {c.candidate_id: c.votes for c in result.candidates}
    tally["blank"], tally["null"] = result.blank, result.null
    return _nonzero(tally.items())


@dataclass(slots=True)
class LatestResult:
    index: int
    result: Result


@dataclass(slots=True)
class Ledger:
    consultation_id: str
    mismatches: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    receipts: Counter[str] = field(default_factory=Counter)  # commune -> receipt lines
    ballots: dict[str, Counter[str]] = field(default_factory=dict)  # commune -> choice -> batch tallies
    offline: dict[Key, Counter[str]] = field(default_factory=dict)
    offline_batches: set[str] = field(default_factory=set)
    sheets: dict[Key, tuple[int, entries.Sheet]] = field(default_factory=dict)  # the latest per table
    bulletins: dict[int, tuple[Bulletin, bytes]] = field(default_factory=dict)  # index -> (bulletin, entry)
    results: dict[str, LatestResult] = field(default_factory=dict)  # commune -> latest version
    communes: set[str] = field(default_factory=set)  # every commune an entry names

    def add(self, index: int, data: bytes) -> None:
        try:
            kind, consultation, lines = entries.split_entry(data)
        except EntryError as exc:
            self.mismatches.append(f"entry {index}: malformed entry: {exc}")
            return
        if kind not in (entries.BALLOTS, entries.OFFLINE, entries.SHEET, entries.BULLETIN, entries.RESULT):
            self.mismatches.append(f"unknown entry type at index {index}: {kind[:60]!r}")
            return
        self.kinds[kind] += 1
        if consultation != self.consultation_id:
            self.mismatches.append(
                f"entry {index}: is for consultation {consultation[:40]}, not {self.consultation_id}"
            )
        try:
            entry = entries.parse(kind, lines)
        except EntryError as exc:
            self.mismatches.append(f"entry {index}: malformed {kind} entry: {exc}")
            return
        if isinstance(entry, entries.Ballots):
            self.receipts.update(entry.receipts)
            for commune, tally in entry.tallies.items():
                _add(self.ballots.setdefault(commune, Counter()), tally)
            self.communes.update(entry.receipts, entry.tallies)
        elif isinstance(entry, entries.Offline):
            if entry.batch in self.offline_batches:
                self.mismatches.append(f"entry {index}: offline batch {entry.batch} is logged twice")
            self.offline_batches.add(entry.batch)
            _add(self.offline.setdefault((entry.commune, entry.table), Counter()), entry.tally)
            self.communes.add(entry.commune)
        elif isinstance(entry, entries.Sheet):
            self.sheets[(entry.commune, entry.table)] = (index, entry)
            self.communes.add(entry.commune)
        elif isinstance(entry, Bulletin):
            self.bulletins[index] = (entry, data)
            self.communes.add(entry.commune)
        else:
            self._add_result(index, entry)

    def _add_result(self, index: int, result: Result) -> None:
        name = f"commune {result.code}"
        previous = self.results.get(result.commune)
        expected = previous.result.version + 1 if previous else 1
        if result.version != expected:
            self.mismatches.append(f"{name}: result version {result.version} at index {index}, expected {expected}")
        ordered = ranking.rank(result.candidates, result.tie_break, result.draw_seed)
        stated = sorted(result.candidates, key=lambda c: c.rank)
        if [c.candidate_id for c in stated] != ordered or [c.rank for c in stated] != list(range(1, len(stated) + 1)):
            said = ", ".join(f"{c.candidate_id}={c.rank}" for c in result.candidates)
            computed = ", ".join(f"{cid}={n}" for n, cid in enumerate(ordered, start=1))
            self.mismatches.append(
                f"{name}: ranks of result version {result.version} ({said}) disagree with the tie-break ({computed})"
            )
        winner = ranking.winner(result.candidates, ordered)
        if winner != result.winner:
            self.mismatches.append(
                f"{name}: result version {result.version} names winner {result.winner or 'none'}, "
                f"the count and tie-break give {winner or 'none'}"
            )
        self.results[result.commune] = LatestResult(index, result)
        self.communes.add(result.commune)

    def commune_name(self, commune: str) -> str:
        latest = self.results.get(commune)
        return f"commune {latest.result.code}" if latest else f"commune {commune}"

    @property
    def ballots_counted(self) -> int:
        return sum(latest.result.ballots for latest in self.results.values())

    def finish(self) -> list[str]:
        """The per-commune checks, once every entry was added; all mismatches so far."""
        for commune in sorted(self.communes - self.results.keys()):
            self.mismatches.append(f"commune {commune}: entries in the log but no result entry (not certified yet?)")
        grouped: dict[tuple[str, int], list[tuple[int, Bulletin]]] = {}
        for index, (bulletin, _) in sorted(self.bulletins.items()):
            grouped.setdefault((bulletin.commune, bulletin.version), []).append((index, bulletin))
        for commune, latest in sorted(self.results.items(), key=lambda item: item[1].result.code):
            self._check_commune(commune, latest, grouped.get((commune, latest.result.version), []))
        return self.mismatches

    def _check_commune(self, commune: str, latest: LatestResult, mine: list[tuple[int, Bulletin]]) -> None:
        """`mine`: the bulletins of the commune's latest version, in log order."""
        result, name, problems = latest.result, self.commune_name(commune), self.mismatches
        version = result.version
        before = [b for i, b in mine if i < latest.index]
        for i, _ in mine:
            if i > latest.index:
                problems.append(f"bulletin {i}: {name} version {version} comes after its result entry")
        if len(before) != result.bulletins:
            problems.append(
                f"{name}: result version {version} says bulletins {result.bulletins}, "
                f"the log has {len(before)} before it"
            )
        seen: set[tuple[str, str]] = set()
        for b in before:
            if (b.channel, b.table) in seen:
                problems.append(f"{name}: two bulletins of version {version} for channel {b.channel} table {b.table}")
            seen.add((b.channel, b.table))

        total: Counter[str] = Counter()
        for b in before:
            _add(total, b.tally)
        self._compare(
            name, f"bulletins of version {version} give", total, "the result entry says", result_tally(result)
        )
        participations = sum(b.participations for b in before)
        if participations != result.participations:
            problems.append(
                f"{name}: bulletins of version {version} give participations={participations}, "
                f"the result entry says {result.participations}"
            )
        if result.participations > result.roll:
            problems.append(f"{name}: participations {result.participations} exceed the roll of {result.roll}")

        self._check_tables(commune, name, before)
        self._check_electronic(commune, name, result, before)

    def _check_tables(self, commune: str, name: str, bulletins: list[Bulletin]) -> None:
        paper = {b.table: b for b in bulletins if b.channel == "paper"}
        for (sheet_commune, table), (_, sheet) in sorted(self.sheets.items()):
            if sheet_commune == commune and table not in paper:
                self.mismatches.append(f"{name} table {table}: tally sheet {sheet.sheet} is in no paper bulletin")
        for table, b in sorted(paper.items()):
            found = self.sheets.get((commune, table))
            if found is None:
                self.mismatches.append(f"{name} table {table}: paper bulletin has no tally sheet in the log")
                continue
            self._compare(
                f"{name} table {table}", "paper bulletin gives", b.tally, "the tally sheet says", found[1].tally
            )

        offline = {b.table: b for b in bulletins if b.channel == "offline"}
        for (batch_commune, table), _ in sorted(self.offline.items()):
            if batch_commune == commune and table not in offline:
                self.mismatches.append(f"{name} table {table}: offline batches are in no offline bulletin")
        for table, b in sorted(offline.items()):
            batches = self.offline.get((commune, table), Counter())
            self._compare(
                f"{name} table {table}", "offline bulletin gives", b.tally, "its offline batches sum to", batches
            )

    def _check_electronic(self, commune: str, name: str, result: Result, bulletins: list[Bulletin]) -> None:
        electronic: Counter[str] = Counter()
        for b in bulletins:
            if b.channel in ELECTRONIC:
                _add(electronic, b.tally)
        for choice, n in sorted(result.remainder.items()):
            if n < 0:
                self.mismatches.append(f"{name}: remainder {choice}={n} is negative")
        logged = Counter(self.ballots.get(commune, Counter()))
        _add(logged, result.remainder)
        self._compare(
            name,
            "ballots in the log (batches and remainder) give",
            logged,
            "the online and table bulletins say",
            electronic,
        )
        counted = sum(n for choice, n in electronic.items() if choice != "null")
        if self.receipts[commune] != counted:
            self.mismatches.append(
                f"{name}: {self.receipts[commune]} receipts in the log, "
                f"the online and table bulletins count {counted} ballots"
            )

    def _compare(self, name: str, left: str, a: Tally | Counter[str], right: str, b: Tally | Counter[str]) -> None:
        x, y = _nonzero(a.items()), _nonzero(b.items())
        for choice in sorted(x.keys() | y.keys()):
            if x.get(choice, 0) != y.get(choice, 0):
                self.mismatches.append(f"{name}: {left} {choice}={x.get(choice, 0)}, {right} {y.get(choice, 0)}")
