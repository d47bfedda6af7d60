"""Ledger throughput through funding's REST API, next to the same workload as plain SQL on the
same PostgreSQL (`comuna-dev bench ledger`, against `make run`). Issue 10's targets: at least
2,500 single and 20,000 batched transfers/s.

Not a test: it reports figures. In one run:

1. setup through the API: a source, `COMMITMENTS` commitment accounts (flag
   `debits_must_not_exceed_credits`) funded from it in batches, `COMMUNES` commune accounts, all
   in the ISO 4217 test currency XTS so the bench's money stays apart from the demo's;
2. single transfers (`POST /v1/transfers`), closed loop at `concurrency` connections, each a
   fresh id from a random commitment to a random commune: transfers/s, p50/p99, statuses;
3. batched transfers (`POST /v1/transfers/batch`) of `batch_size`, `BATCH_CONCURRENCY` at a
   time: transfers/s; and one batch of the largest size the API names (4,000), probed alone;
4. the same workloads as plain SQL with asyncpg in a scratch database of the same PostgreSQL,
   migrated with funding's own migrations (same tables, constraints and guard triggers): one
   transaction per transfer (lock both accounts FOR UPDATE in id order, insert the transfer,
   update both totals in one statement, commit) at the same concurrency, and one transaction
   per batch (unnest); each with and without the journal append the service makes in the same
   transaction (the log row's size, locked until commit, and the entry);
5. correctness after the load: `/v1/ledger/totals` balanced, the transfers created equal the
   201s (and the batches' transfers), the published balances' journal size grew by exactly
   the accounts and transfers written, the bench's own accounts balance and no commitment is
   overdrawn; then `comuna-verify ledger` over the whole journal, timed.

Where the time goes: CPU seconds of the funding process(es), of PostgreSQL (postmaster and
backends, from /proc), of vegeta and of the whole machine, before and after each run, per
transfer, and the rate one whole core would sustain at that cost; the service's own mean
handler time from its /metrics. Load comes from vegeta (`benches.loadgen`), not Python, so the
client does not eat the server's CPU, in rounds of about `ROUND_SECONDS` that each carry a
fresh operator token (a slow run must not outlive its token).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import comuna_funding
from comuna_devstack._process import read_pid_file
from comuna_devstack.benches.loadgen import Request, attack_rounds
from comuna_devstack.client import PlatformClient, StepFailed
from comuna_devstack.stack import console_script
from comuna_platform.migrations import upgrade

CURRENCY = "XTS"  # ISO 4217's code for testing: no real money is ever in it
COMMITMENTS = 1_000
COMMUNES = 1_000
# More than any commitment pays out in a run (at most 100 minor units a transfer).
COMMITMENT_FUNDS = 10**12
CODE = "bench_tranche"
BATCH_CONCURRENCY = 4
# The batch size the API documents as its maximum (TigerBeetle's).
MAX_BATCH = 4_000
# Funding of the commitments, and the setup of the plain SQL ledger, in batches this big.
SETUP_BATCH = 1_000
TARGETS = {"single_per_second": 2_500, "batched_per_second": 20_000}
# Each load is sent in rounds of about this long, each with a fresh token (tokens live 300 s).
ROUND_SECONDS = 90.0
# The first round's size, before any rate is measured: seconds even at tens of transfers/s.
FIRST_ROUND_SINGLE = 500
MIGRATIONS = Path(comuna_funding.__file__).parent / "migrations"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SQL_ORIGIN = "bench.localhost/ledger"
FUNDING_DATABASE = "comuna_funding"


def _notice(message: str) -> None:
    print(f"comuna-dev: bench ledger: {message}", file=sys.stderr, flush=True)


# --- the workload -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    """One transfer of the workload: which commitment pays which commune how much."""

    commitment: int
    commune: int
    amount: int


@dataclass(frozen=True, slots=True)
class Shape:
    """How many accounts the transfers spread over (fewer in tests)."""

    commitments: int = COMMITMENTS
    communes: int = COMMUNES


def workload(count: int, seed: int, shape: Shape) -> list[Move]:
    """The same sequence of moves for the API and the plain SQL (ids are drawn fresh by each)."""
    rng = random.Random(seed)
    return [
        Move(rng.randrange(shape.commitments), rng.randrange(shape.communes), rng.randint(1, 100)) for _ in range(count)
    ]


@dataclass(frozen=True)
class BenchAccounts:
    source: str
    commitments: list[str]
    communes: list[str]

    @property
    def ids(self) -> list[str]:
        return [self.source, *self.commitments, *self.communes]


def _transfer(move: Move, accounts: BenchAccounts) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "debit_account_id": accounts.commitments[move.commitment],
        "credit_account_id": accounts.communes[move.commune],
        "amount_minor": move.amount,
        "currency": CURRENCY,
        "code": CODE,
    }


def _body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- CPU accounting from /proc ----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: fields start after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def _process_seconds(pid: int, *, with_reaped_children: bool = False) -> float:
    """utime + stime of a process (fields 14, 15 of /proc/<pid>/stat), and with
    `with_reaped_children` cutime + cstime: the CPU of the children it waited for (a
    postmaster's exited backends)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _machine_busy_seconds() -> float:
    """CPU seconds every core spent not idle since boot (/proc/stat's first line)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


@dataclass(frozen=True)
class CpuSample:
    at: float
    funding: float | None
    postgres: float | None
    machine: float
    own: float
    # Children this process waited for: vegeta (the load generator).
    children: float


class CpuProbe:
    """CPU used by funding, by PostgreSQL, by this process and by the whole machine between two
    samples. A PostgreSQL backend that exits in between is counted in its postmaster's reaped
    children; the funding processes are read from the stack's pid files."""

    def __init__(self, funding_pids: Sequence[int], postmaster: int | None) -> None:
        self.funding_pids = list(funding_pids)
        self.postmaster = postmaster

    def sample(self) -> CpuSample:
        funding = sum(_process_seconds(p) for p in self.funding_pids) if self.funding_pids else None
        postgres = None
        if self.postmaster is not None:
            postgres = _process_seconds(self.postmaster, with_reaped_children=True) + sum(
                _process_seconds(child) for child in _children(self.postmaster)
            )
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        return CpuSample(
            time.monotonic(),
            funding,
            postgres,
            _machine_busy_seconds(),
            time.process_time(),
            reaped.ru_utime + reaped.ru_stime,
        )

    @staticmethod
    def split(before: CpuSample, after: CpuSample, transfers: int) -> dict[str, Any]:
        """Per transfer (ms of CPU) and as cores kept busy over the run's wall time."""
        wall = after.at - before.at
        machine = after.machine - before.machine
        funding = None if before.funding is None or after.funding is None else after.funding - before.funding
        postgres = None if before.postgres is None or after.postgres is None else after.postgres - before.postgres
        own = after.own - before.own
        load = after.children - before.children
        other = machine - (funding or 0.0) - (postgres or 0.0) - own - load

        def per(seconds: float | None) -> float | None:
            return None if seconds is None or not transfers else round(seconds * 1000 / transfers, 3)

        def cores(seconds: float | None) -> float | None:
            return None if seconds is None or wall <= 0 else round(seconds / wall, 2)

        def ceiling(seconds: float | None) -> int | None:
            return None if not seconds or not transfers else round(transfers / seconds)

        return {
            "wall_seconds": round(wall, 2),
            "cpu_ms_per_transfer": {
                "funding": per(funding),
                "postgres": per(postgres),
                "this_process": per(own),
                "load_generator": per(load),
                "rest_of_machine": per(other),
            },
            "cores_busy": {
                "funding": cores(funding),
                "postgres": cores(postgres),
                "this_process": cores(own),
                "load_generator": cores(load),
                "rest_of_machine": cores(other),
                "machine": cores(machine),
            },
            # What one whole core would sustain at this CPU per transfer (a shared machine
            # gives a process less): the ceiling of one funding process, of PostgreSQL.
            "per_second_with_a_whole_core": {"funding": ceiling(funding), "postgres": ceiling(postgres)},
        }


def funding_pids(state_dir: Path | None) -> list[int]:
    """The funding processes of a `make run` (`funding`, `funding-2`, ...) from its pid files."""
    if state_dir is None:
        return []
    pids = []
    for path in sorted((state_dir / "pids").glob("funding*.pid")):
        if path.stem == "funding" or re.fullmatch(r"funding-\d+", path.stem):
            record = read_pid_file(path)
            if record is not None and record.alive():
                pids.append(record.pid)
    return pids


async def _postmaster_pid(server: str) -> int | None:
    """The postmaster of a local PostgreSQL: the parent of our backend (None if not local)."""
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        # Read while the backend lives: it exits with the connection.
        fields = _stat_fields(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()
    return None if fields is None else int(fields[1])


# --- the service's metrics ---------------------------------------------------------------------


def _handler_seconds(metrics_url: str | None, route: str) -> tuple[float, float] | None:
    """(sum of seconds, count) of POST `route` in the service's request-latency histogram."""
    if metrics_url is None:
        return None
    try:
        text = httpx.get(metrics_url, timeout=10).text
    except httpx.HTTPError:
        return None
    total = count = 0.0
    labels = f'method="POST",route="{route}"'
    for line in text.splitlines():
        if line.startswith("comuna_http_request_duration_seconds_sum{") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("comuna_http_request_duration_seconds_count{") and labels in line:
            count += float(line.rsplit(" ", 1)[1])
    return total, count


def _mean_ms(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]) * 1000, 2)


# --- the API side -------------------------------------------------------------------------------


def _open_accounts(client: PlatformClient, run: str, shape: Shape) -> BenchAccounts:
    def opened(key: str, kind: str, *, limited: bool = False) -> str:
        body: dict[str, Any] = {"key": key, "currency": CURRENCY, "kind": kind}
        if limited:
            body["flags"] = {"debits_must_not_exceed_credits": True}
        return str(client.call("POST", "funding", "/v1/accounts", as_user="operator", expect=201, json=body)["id"])

    source = opened(f"source:bench-{run}:{CURRENCY}", "source")
    commitments = [opened(f"commitment:{uuid.uuid4()}", "commitment", limited=True) for _ in range(shape.commitments)]
    communes = [opened(f"commune:bench-{run}-{i}:{CURRENCY}", "commune") for i in range(shape.communes)]
    return BenchAccounts(source, commitments, communes)


def _fund(client: PlatformClient, accounts: BenchAccounts) -> int:
    transfers = [
        {
            "id": str(uuid.uuid4()),
            "debit_account_id": accounts.source,
            "credit_account_id": commitment,
            "amount_minor": COMMITMENT_FUNDS,
            "currency": CURRENCY,
            "code": "grant_commitment",
        }
        for commitment in accounts.commitments
    ]
    for part in _chunks(transfers, SETUP_BATCH):
        answer = client.call(
            "POST", "funding", "/v1/transfers/batch", as_user="operator", json={"transfers": list(part)}
        )
        if answer["created"] != len(part):
            raise StepFailed(f"funding the commitments: {answer['refused']} refused, {answer['exists']} existed")
    return len(transfers)


def _totals(client: PlatformClient) -> tuple[bool, int]:
    """(the whole ledger balanced, transfers in the bench's currency)."""
    body = client.call("GET", "funding", "/v1/ledger/totals")
    count = sum(int(item["transfers"]) for item in body["items"] if item["currency"] == CURRENCY)
    return bool(body["balanced"]), count


def _balances(client: PlatformClient) -> tuple[int, dict[str, tuple[int, int, int, int]]]:
    """The published balances: (journal size, account id -> its four totals)."""
    response = client.http.get(f"{client.urls['funding']}/v1/ledger/balances")
    if response.status_code != 200:
        raise StepFailed(f"GET funding/v1/ledger/balances: {response.status_code} {response.text[:300]}")
    size = 0
    accounts: dict[str, tuple[int, int, int, int]] = {}
    for line in response.text.splitlines():
        if line.startswith("size "):
            size = int(line.split()[1])
        elif line.startswith("account "):
            _, account, dp, cp, dq, cq = line.split()
            accounts[account] = (int(dp), int(cp), int(dq), int(cq))
    return size, accounts


def _verify(funding_url: str) -> dict[str, Any]:
    """`comuna-verify ledger` over the whole journal, as an outsider runs it; its wall time."""
    started = time.monotonic()
    done = subprocess.run(
        [console_script("comuna-verify"), "ledger", f"{funding_url}/v1/ledger", "--json", "--wait", "300"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = round(time.monotonic() - started, 2)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"ok": False, "exit_status": done.returncode, "seconds": seconds, "error": done.stderr.strip()[-300:]}
    mismatches = report.get("mismatches") or []
    return {
        "ok": bool(report.get("ok")) and done.returncode == 0,
        "exit_status": done.returncode,
        "seconds": seconds,
        "mismatches": len(mismatches),
        "first_mismatches": mismatches[:3],
        **{key: value for key, value in report.items() if key not in ("ok", "mismatches")},
    }


def _per_second(transfers: int, seconds: float) -> int | None:
    return round(transfers / seconds) if seconds else None


# --- plain SQL on the same PostgreSQL -----------------------------------------------------------

_LOCK = (
    "SELECT id, debits_posted, debits_pending, credits_posted, debits_must_not_exceed_credits "
    "FROM accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
)
_INSERT_ONE = (
    "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, code) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)
_INSERT_MANY = (
    "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, code) "
    "SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[])"
)
# Both accounts in one statement: the guard trigger checks each statement balances per currency.
_POST = (
    "UPDATE accounts AS a SET debits_posted = a.debits_posted + v.dp, credits_posted = a.credits_posted + v.cp "
    "FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS v(id, dp, cp) WHERE a.id = v.id"
)
# The journal append as `TransparencyLog.sequence` makes it: the log row, locked until commit.
_APPEND = (
    "INSERT INTO tlog_logs (origin, size) VALUES ($1, $2) "
    "ON CONFLICT (origin) DO UPDATE SET size = tlog_logs.size + EXCLUDED.size RETURNING size"
)
_ENTRIES = (
    "INSERT INTO tlog_entries (origin, idx, data) "
    "SELECT $1, $2::bigint + u.i - 1, u.d FROM unnest($3::bytea[]) WITH ORDINALITY AS u(d, i)"
)


@dataclass(frozen=True, slots=True)
class SqlTransfer:
    id: uuid.UUID
    debit: uuid.UUID
    credit: uuid.UUID
    amount: int


def _entry(t: SqlTransfer) -> bytes:
    # The shape and size of a comuna-transfer/v1 entry (docs/ledger.md).
    return (
        f"comuna-transfer/v1\ntransfer {t.id}\nkind single\npending -\ndebit {t.debit}\ncredit {t.credit}\n"
        f"amount {t.amount}\ncurrency {CURRENCY}\ntimeout -\ncode {CODE}\nreference \nexchange -\n"
        f"at 2026-12-03T06:40:00.123456Z\n"
    ).encode()


async def _apply(conn: asyncpg.Connection, batch: Sequence[SqlTransfer], *, journal: bool) -> int:
    """One transaction: lock, check the limits in memory, insert, post, (journal); how many
    were accepted (a transfer that would overdraw a flagged account is left out)."""
    async with conn.transaction():
        ids = sorted({a for t in batch for a in (t.debit, t.credit)})
        rows = await conn.fetch(_LOCK, ids)
        room = {r["id"]: r["credits_posted"] - r["debits_posted"] - r["debits_pending"] for r in rows if r[4]}
        accepted: list[SqlTransfer] = []
        for t in batch:
            if t.debit in room:
                if room[t.debit] < t.amount:
                    continue
                room[t.debit] -= t.amount
            accepted.append(t)
        if not accepted:
            return 0
        if len(accepted) == 1:
            [t] = accepted
            await conn.execute(_INSERT_ONE, t.id, t.debit, t.credit, t.amount, CURRENCY, CODE)
        else:
            await conn.execute(
                _INSERT_MANY,
                [t.id for t in accepted],
                [t.debit for t in accepted],
                [t.credit for t in accepted],
                [t.amount for t in accepted],
                [CURRENCY] * len(accepted),
                [CODE] * len(accepted),
            )
        deltas: dict[uuid.UUID, list[int]] = {}
        for t in accepted:
            deltas.setdefault(t.debit, [0, 0])[0] += t.amount
            deltas.setdefault(t.credit, [0, 0])[1] += t.amount
        touched = list(deltas)
        await conn.execute(_POST, touched, [deltas[a][0] for a in touched], [deltas[a][1] for a in touched])
        if journal:
            end = await conn.fetchval(_APPEND, SQL_ORIGIN, len(accepted))
            await conn.execute(_ENTRIES, SQL_ORIGIN, end - len(accepted), [_entry(t) for t in accepted])
        return len(accepted)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _sql_run(
    pool: asyncpg.Pool, batches: list[list[SqlTransfer]], workers: int, *, journal: bool, probe: CpuProbe
) -> dict[str, Any]:
    """Every batch once, `workers` connections pulling the next one (a closed loop)."""
    pending = iter(batches)
    latencies: list[float] = []
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        async with pool.acquire() as conn:
            for batch in pending:
                started = time.perf_counter()
                # Not `accepted += await ...`: that reads `accepted` before the await.
                done = await _apply(conn, batch, journal=journal)
                accepted += done
                latencies.append(time.perf_counter() - started)

    before = probe.sample()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    seconds = time.perf_counter() - started
    transfers = sum(len(b) for b in batches)
    return {
        "transfers": transfers,
        "accepted": accepted,
        "transactions": len(batches),
        "connections": workers,
        "journal": journal,
        "seconds": round(seconds, 2),
        "per_second": _per_second(accepted, seconds),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "cpu": CpuProbe.split(before, probe.sample(), accepted),
    }


async def _plain_sql(
    dsn: str,
    single: list[Move],
    batched: list[Move],
    *,
    concurrency: int,
    batch_size: int,
    shape: Shape,
    probe: CpuProbe,
) -> dict[str, Any]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max(concurrency, BATCH_CONCURRENCY))
    try:
        source = uuid.uuid4()
        commitments = [uuid.uuid4() for _ in range(shape.commitments)]
        communes = [uuid.uuid4() for _ in range(shape.communes)]
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO accounts (id, key, currency, kind, debits_must_not_exceed_credits) "
                "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[])",
                [source, *commitments, *communes],
                [f"source:bench:{CURRENCY}"]
                + [f"commitment:{c}" for c in commitments]
                + [f"commune:{c}:{CURRENCY}" for c in communes],
                [CURRENCY] * (1 + len(commitments) + len(communes)),
                ["source"] + ["commitment"] * len(commitments) + ["commune"] * len(communes),
                [False] + [True] * len(commitments) + [False] * len(communes),
            )
            funding = [SqlTransfer(uuid.uuid4(), source, c, COMMITMENT_FUNDS) for c in commitments]
            for part in _chunks(funding, SETUP_BATCH):
                await _apply(conn, part, journal=True)

        def transfers(moves: list[Move]) -> list[SqlTransfer]:
            return [SqlTransfer(uuid.uuid4(), commitments[m.commitment], communes[m.commune], m.amount) for m in moves]

        figures: dict[str, Any] = {}
        for journal in (False, True):
            name = "journaled" if journal else "plain"
            _notice(f"plain SQL, one transaction per transfer ({name}): {len(single)} transfers")
            figures[f"single_{name}"] = await _sql_run(
                pool, [[t] for t in transfers(single)], concurrency, journal=journal, probe=probe
            )
            _notice(f"plain SQL, one transaction per {batch_size} transfers ({name}): {len(batched)} transfers")
            figures[f"batched_{name}"] = await _sql_run(
                pool,
                [list(b) for b in _chunks(transfers(batched), batch_size)],
                BATCH_CONCURRENCY,
                journal=journal,
                probe=probe,
            )
        async with pool.acquire() as conn:
            unbalanced = await conn.fetchval(
                "SELECT count(*) FROM (SELECT currency FROM accounts GROUP BY currency "
                "HAVING sum(debits_posted) <> sum(credits_posted)) AS u"
            )
            overdrawn = await conn.fetchval(
                "SELECT count(*) FROM accounts WHERE debits_must_not_exceed_credits AND debits_posted > credits_posted"
            )
        figures["balanced"] = unbalanced == 0 and overdrawn == 0
        return figures
    finally:
        await pool.close()


def plain_sql(
    admin_url: str,
    single: list[Move],
    batched: list[Move],
    *,
    concurrency: int,
    batch_size: int,
    shape: Shape,
    probe: CpuProbe,
) -> dict[str, Any]:
    """The workloads as plain SQL in a scratch database migrated like funding's, then dropped."""
    server = _server(admin_url)
    name = f"bench_ledger_sql_{os.getpid()}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(f"{server}/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    revision = asyncio.run(_funding_revision(server))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        # Alembic drives its own event loop: outside ours.
        upgrade(MIGRATIONS, f"{admin_url.rsplit('/', 1)[0]}/{name}", revision)
        return asyncio.run(
            _plain_sql(
                f"{server}/{name}",
                single,
                batched,
                concurrency=concurrency,
                batch_size=batch_size,
                shape=shape,
                probe=probe,
            )
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _funding_revision(server: str) -> str:
    """The revision the running funding's database is at: the scratch database gets the same
    schema (not whatever migration is newest in this checkout)."""
    try:
        conn = await asyncpg.connect(f"{server}/{FUNDING_DATABASE}")
    except asyncpg.InvalidCatalogNameError:
        return "head"
    try:
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()
    return str(revision or "head")


def _server(admin_url: str) -> str:
    """postgresql://user@host:port from a SQLAlchemy URL of any database there."""
    return admin_url.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]


# --- the run --------------------------------------------------------------------------------------


class Rounds:
    """The requests of one load in rounds that each last about `ROUND_SECONDS`, measured on
    the rounds before: each round is built (with a fresh operator token) just before it is
    sent, so a load slower than expected never outlives the token it carries."""

    def __init__(
        self,
        items: Sequence[Any],
        request: Callable[[Any, dict[str, str]], Request],
        token: Callable[[], dict[str, str]],
        *,
        first: int,
    ) -> None:
        self.items = items
        self.request = request
        self.token = token
        self.first = first

    def __iter__(self) -> Iterator[Callable[[], list[Request]]]:
        done, size = 0, self.first
        last: tuple[float, int] | None = None  # (when the previous round was built, its size)
        while done < len(self.items):
            if last is not None:
                elapsed = time.monotonic() - last[0]
                size = max(1, int(last[1] / elapsed * ROUND_SECONDS)) if elapsed > 0 else size
            part = self.items[done : done + size]
            done += len(part)
            started = [0.0]

            def build(part: Sequence[Any] = part, started: list[float] = started) -> list[Request]:
                started[0] = time.monotonic()
                headers = {**self.token(), "Content-Type": "application/json"}
                return [self.request(item, headers) for item in part]

            yield build
            last = (started[0], len(part))


def _attack_timed(
    rounds: Rounds,
    *,
    label: str,
    workers: int,
    probe: CpuProbe,
    metrics_url: str | None,
    route: str,
    transfers_of: Callable[[dict[str, Any]], int],
) -> dict[str, Any]:
    handler_before = _handler_seconds(metrics_url, route)
    before = probe.sample()
    summary = attack_rounds(rounds, label=label, workers=workers)
    after = probe.sample()
    transfers = transfers_of(summary)
    return {
        **summary,
        "transfers": transfers,
        "transfers_per_second": _per_second(transfers, summary["seconds"]),
        "handler_mean_ms": _mean_ms(handler_before, _handler_seconds(metrics_url, route)),
        "cpu": CpuProbe.split(before, after, transfers),
    }


def run_bench(
    urls: dict[str, str],
    token_url: str,
    passwords: dict[str, str],
    *,
    single: int,
    batched: int,
    concurrency: int,
    batch_size: int,
    admin_url: str,
    state_dir: Path | None = None,
    metrics_url: str | None = None,
    shape: Shape = Shape(),
    seed: int = 10,
) -> dict[str, Any]:
    client = PlatformClient(urls, token_url=token_url, timeout=300.0)
    client.login("operator", passwords["operator"])
    funding_url = urls["funding"]
    probe = CpuProbe(funding_pids(state_dir), asyncio.run(_postmaster_pid(_server(admin_url))))
    balanced_before, transfers_before = _totals(client)
    size_before, _ = _balances(client)

    run = uuid.uuid4().hex[:8]
    setup_started = time.perf_counter()
    accounts = _open_accounts(client, run, shape)
    funded = _fund(client, accounts)
    setup_seconds = time.perf_counter() - setup_started
    _notice(f"{len(accounts.ids)} accounts opened and {funded} commitments funded in {setup_seconds:.1f} s")

    single_moves = workload(single, seed, shape)
    batched_moves = workload(batched, seed + 1, shape)

    def token() -> dict[str, str]:
        # Signed in anew for each round: a round must not outlive the token it carries.
        client.login("operator", passwords["operator"])
        return client.auth("operator")

    single_url, batch_url = f"{funding_url}/v1/transfers", f"{funding_url}/v1/transfers/batch"
    single_run = _attack_timed(
        Rounds(
            single_moves,
            lambda move, headers: Request("POST", single_url, headers, _body(_transfer(move, accounts))),
            token,
            first=min(single, FIRST_ROUND_SINGLE),
        ),
        label="single transfers",
        workers=concurrency,
        probe=probe,
        metrics_url=metrics_url,
        route="/v1/transfers",
        transfers_of=lambda s: int(s["statuses"].get("201", 0)),
    )
    batches = list(_chunks(batched_moves, batch_size))

    def batch_transfers(summary: dict[str, Any]) -> int:
        # A 200 answers every transfer of its batch (the totals below check they were all
        # created); if some batches failed, which ones is not known here: full ones are assumed.
        ok = int(summary["statuses"].get("200", 0))
        return len(batched_moves) if ok == len(batches) else ok * batch_size

    batch_run = _attack_timed(
        Rounds(
            batches,
            lambda part, headers: Request(
                "POST", batch_url, headers, _body({"transfers": [_transfer(m, accounts) for m in part]})
            ),
            token,
            first=min(len(batches), max(BATCH_CONCURRENCY, FIRST_ROUND_SINGLE // batch_size)),
        ),
        label=f"batches of {batch_size} transfers",
        workers=BATCH_CONCURRENCY,
        probe=probe,
        metrics_url=metrics_url,
        route="/v1/transfers/batch",
        transfers_of=batch_transfers,
    )
    batch_run["batch_size"] = batch_size
    batch_run["concurrent_batches"] = BATCH_CONCURRENCY
    largest = _largest_batch(client, accounts, seed, shape)

    _notice("the same workloads as plain SQL on the same PostgreSQL")
    sql = plain_sql(
        admin_url,
        single_moves,
        batched_moves,
        concurrency=concurrency,
        batch_size=batch_size,
        shape=shape,
        probe=probe,
    )

    api = {"single": single_run, "batched": batch_run, "largest_batch": largest}
    figures = {
        "api": api,
        "plain_sql": sql,
        "targets": TARGETS,
        "meets_targets": {
            "single_per_second": (single_run["transfers_per_second"] or 0) >= TARGETS["single_per_second"],
            "batched_per_second": (batch_run["transfers_per_second"] or 0) >= TARGETS["batched_per_second"],
        },
        "api_to_plain_sql": {
            "single": _ratio(single_run["transfers_per_second"], sql["single_plain"]["per_second"]),
            "single_vs_journaled": _ratio(single_run["transfers_per_second"], sql["single_journaled"]["per_second"]),
            "batched": _ratio(batch_run["transfers_per_second"], sql["batched_plain"]["per_second"]),
            "batched_vs_journaled": _ratio(batch_run["transfers_per_second"], sql["batched_journaled"]["per_second"]),
        },
    }
    # Figures first (stderr), so a failure in the checks after the load does not lose them.
    print(json.dumps(figures), file=sys.stderr)

    client.login("operator", passwords["operator"])
    balanced, transfers_after = _totals(client)
    size_after, balances = _balances(client)
    created = transfers_after - transfers_before
    expected = funded + single_run["transfers"] + batch_run["transfers"] + largest.get("created", 0)
    mine = [balances.get(account) for account in accounts.ids]
    present = [b for b in mine if b is not None]
    commitments = [balances.get(account) for account in accounts.commitments]
    correctness = {
        "ledger_balanced": balanced and balanced_before,
        "transfers_created": created,
        "transfers_expected": expected,
        "created_match": created == expected,
        "journal_entries_added": size_after - size_before,
        "journal_entries_expected": len(accounts.ids) + created,
        "journal_covers": size_after - size_before == len(accounts.ids) + created,
        "bench_accounts_in_balances": len(present) == len(mine),
        "bench_accounts_balanced": sum(b[0] for b in present) == sum(b[1] for b in present),
        "no_commitment_overdrawn": all(b is not None and b[0] + b[2] <= b[1] for b in commitments),
        "plain_sql_balanced": sql["balanced"],
    }
    _notice("comuna-verify ledger over the whole journal")
    verified = _verify(funding_url)
    client.close()
    correctness["verified"] = verified["ok"]
    return {
        "ok": all(v for k, v in correctness.items() if isinstance(v, bool)),
        "single": single,
        "batched": batched,
        "concurrency": concurrency,
        "batch_size": batch_size,
        "accounts": {"commitments": shape.commitments, "communes": shape.communes, "currency": CURRENCY},
        "setup_seconds": round(setup_seconds, 1),
        **figures,
        "correctness": correctness,
        "verify": verified,
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _largest_batch(client: PlatformClient, accounts: BenchAccounts, seed: int, shape: Shape) -> dict[str, Any]:
    """One batch of the largest size the API names, alone: its answer, body size and time."""
    body = _body({"transfers": [_transfer(m, accounts) for m in workload(MAX_BATCH, seed + 2, shape)]})
    started = time.perf_counter()
    response = client.http.post(
        f"{client.urls['funding']}/v1/transfers/batch",
        content=body,
        headers={**client.auth("operator"), "Content-Type": "application/json"},
    )
    seconds = time.perf_counter() - started
    figures: dict[str, Any] = {
        "transfers": MAX_BATCH,
        "body_bytes": len(body),
        "status": response.status_code,
        "seconds": round(seconds, 3),
    }
    if response.status_code == 200:
        created = int(response.json()["created"])
        figures.update(created=created, transfers_per_second=_per_second(created, seconds))
    else:
        figures["problem"] = response.text[:300]
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None
