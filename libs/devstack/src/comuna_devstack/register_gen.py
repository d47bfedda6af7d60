"""A synthetic national territory register with the real counts, for demos, benchmarks and tests.

1 country, 24 states, 335 municipalities, about 1,100 parishes (optional), about 5,400 communes
and communal circuits, about 47,000 communal councils: about 53,900 units. Deterministic for a
seed. Codes are human identifiers of each kind (`MU0042`, `CC012345`), deliberately not paths:
where a unit sits is its `parent_code`. Rows come parents first, in the import's columns
`code,name,kind,parent_code,valid_from,status`.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

COLUMNS = ("code", "name", "kind", "parent_code", "valid_from", "status")
VALID_FROM = "2000-01-01"


@dataclass(frozen=True)
class Counts:
    states: int = 24
    municipalities: int = 335
    parishes: int = 1_100
    communes: int = 3_600
    circuits: int = 1_800
    councils: int = 47_000

    @property
    def total(self) -> int:
        return 1 + self.states + self.municipalities + self.parishes + self.communes + self.circuits + self.councils


NATIONAL = Counts()

Row = tuple[str, str, str, str, str, str]


def _split(total: int, buckets: int, rng: random.Random) -> list[int]:
    """`total` items over `buckets`, at least one each, unevenly (as real units are)."""
    if total < buckets:
        raise ValueError(f"cannot spread {total} units over {buckets} parents")
    weights = [rng.uniform(0.3, 1.7) for _ in range(buckets)]
    scale = (total - buckets) / sum(weights)
    shares = [1 + int(w * scale) for w in weights]
    for index in rng.sample(range(buckets), total - sum(shares)):
        shares[index] += 1
    return shares


def generate(
    seed: int = 1, counts: Counts = NATIONAL, *, parishes: bool = True, progress: Callable[[str], None] | None = None
) -> Iterator[Row]:
    """The register's rows, parents first."""
    rng = random.Random(seed)
    say = progress or (lambda _: None)
    yield ("VE", "Venezuela", "country", "", VALID_FROM, "active")
    states = [f"ST{i:02d}" for i in range(1, counts.states + 1)]
    for number, code in enumerate(states, start=1):
        yield (code, f"Estado {number:02d}", "state", "VE", VALID_FROM, "active")
    municipalities: list[str] = []
    for state, share in zip(states, _split(counts.municipalities, len(states), rng), strict=True):
        for _ in range(share):
            code = f"MU{len(municipalities) + 1:04d}"
            municipalities.append(code)
            yield (code, f"Municipio {len(municipalities):04d}", "municipality", state, VALID_FROM, "active")
    say(f"{len(municipalities)} municipalities")
    holders: Sequence[str] = municipalities
    if parishes:
        parish_codes: list[str] = []
        for municipality, share in zip(municipalities, _split(counts.parishes, len(municipalities), rng), strict=True):
            for _ in range(share):
                code = f"PA{len(parish_codes) + 1:05d}"
                parish_codes.append(code)
                yield (code, f"Parroquia {len(parish_codes):05d}", "parish", municipality, VALID_FROM, "active")
        say(f"{len(parish_codes)} parishes")
        holders = parish_codes
    total_communes = counts.communes + counts.circuits
    kinds = ["commune"] * counts.communes + ["communal_circuit"] * counts.circuits
    rng.shuffle(kinds)
    communes: list[str] = []
    for holder, share in zip(holders, _split(total_communes, len(holders), rng), strict=True):
        for _ in range(share):
            kind = kinds[len(communes)]
            code = f"CO{len(communes) + 1:05d}"
            communes.append(code)
            label = "Comuna" if kind == "commune" else "Circuito Comunal"
            yield (code, f"{label} {len(communes):05d}", kind, holder, VALID_FROM, "active")
    say(f"{len(communes)} communes and communal circuits")
    councils = 0
    for commune, share in zip(communes, _split(counts.councils, len(communes), rng), strict=True):
        for _ in range(share):
            councils += 1
            yield (
                f"CC{councils:06d}",
                f"Consejo Comunal {councils:06d}",
                "communal_council",
                commune,
                VALID_FROM,
                "active",
            )
            if councils % 10_000 == 0:
                say(f"{councils} communal councils")
    say(f"{councils} communal councils")


def write(rows: Iterator[Row], out: IO[str], file_format: str) -> int:
    """Write `rows` as CSV (with header) or a JSON array; returns how many."""
    count = 0
    if file_format == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow(row)
            count += 1
        return count
    out.write("[")
    for row in rows:
        out.write(
            ("\n" if count == 0 else ",\n") + json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False)
        )
        count += 1
    out.write("\n]\n")
    return count


def stderr_progress(message: str) -> None:
    print(f"generate register: {message}", file=sys.stderr, flush=True)
