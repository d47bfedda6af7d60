"""The hash-chained audit log on real PostgreSQL: appends chain gap-free (also concurrently),
roll back with their transaction, and `comuna-identity audit verify` finds every kind of
tampering done directly in the database; the runtime role can only read and append."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

import comuna_identity
from comuna_devstack.db_roles import DatabaseRoles, provision
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.cli import audit as audit_cli
from comuna_identity.domain import audit
from comuna_identity.domain.audit import GENESIS, AuditEntry
from comuna_identity.settings import Settings
from comuna_identity.storage import audit_log
from comuna_platform.db import Database
from comuna_platform.migrations import migrate

pytestmark = pytest.mark.asyncio

MIGRATIONS = Path(comuna_identity.__file__).parent / "migrations"


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Log:
    """A fresh identity database with its owner and runtime roles, migrated as `make run` does."""

    roles: DatabaseRoles
    admin_url: str  # the superuser, on this database
    runtime_url: str
    owner_url: str
    db: Database  # as the runtime role, as the service runs

    async def superuser(self) -> asyncpg.Connection:
        return await asyncpg.connect(plain(self.admin_url))

    async def append(self, count: int, *, actor: str = "subject-a", start: int = 0) -> audit.Head:
        async with self.db.transaction() as session:
            return await audit.append_entries(session, entries(count, actor=actor, start=start))

    async def verify(self, *pins: audit.Pin) -> audit.Verification:
        connection = await self.superuser()
        try:
            return await audit.verify(audit_log.walk(connection, batch=7), pins=pins)
        finally:
            await connection.close()

    async def tamper(self, *statements: str) -> None:
        """As the superuser, with the append-only trigger disabled for these statements only."""
        connection = await self.superuser()
        try:
            async with connection.transaction():
                await connection.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                for statement in statements:
                    await connection.execute(statement)
                await connection.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        finally:
            await connection.close()


def entries(count: int, *, actor: str = "subject-a", start: int = 0) -> list[AuditEntry]:
    return [
        AuditEntry(
            actor=actor,
            action="territory.created" if i % 2 else "territory.renamed",
            object_kind="territory",
            object_id=str(uuid.UUID(int=start + i)),
            before=None if i % 2 else {"name": f"Old {i}", "kind": "commune"},
            after={"name": f"Nombre {i} ñ", "id": uuid.UUID(int=start + i), "valid_from": datetime(2026, 3, 1).date()},
        )
        for i in range(count)
    ]


@pytest_asyncio.fixture
async def log(embedded_postgres: EmbeddedPostgres) -> AsyncIterator[Log]:
    database = f"identity_audit_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(database)
    admin = embedded_postgres.dsn("postgres")
    roles = DatabaseRoles.for_database(database, uuid.uuid4().hex, uuid.uuid4().hex)
    await provision(admin, roles)
    migrate(MIGRATIONS, Settings(database_url=roles.url(admin), migration_database_url=roles.url(admin, owner=True)))
    db = Database(roles.url(admin), pool_size=10)
    try:
        yield Log(roles, embedded_postgres.dsn(database), roles.url(admin), roles.url(admin, owner=True), db)
    finally:
        await db.dispose()


async def rows(log: Log) -> list[asyncpg.Record]:
    connection = await log.superuser()
    try:
        return list(await connection.fetch("SELECT * FROM audit_log ORDER BY seq"))
    finally:
        await connection.close()


# --- appending ------------------------------------------------------------------------------


async def test_appends_chain_from_the_genesis_hash_and_verify_intact(log: Log) -> None:
    empty = await log.verify()
    assert (empty.intact, empty.entries, empty.head.seq, empty.head.entry_hash) == (True, 0, 0, GENESIS)

    first = await log.append(3)
    second = await log.append(4, start=3)
    stored = await rows(log)
    assert [row["seq"] for row in stored] == list(range(1, 8))
    assert stored[0]["prev_hash"] == GENESIS
    assert all(stored[i]["prev_hash"] == stored[i - 1]["entry_hash"] for i in range(1, 7))
    assert (first.seq, second.seq, second.entry_hash) == (3, 7, stored[-1]["entry_hash"])
    # The documented encodings, recomputed by hand for one entry.
    row = stored[1]
    state = {"id": str(uuid.UUID(int=1)), "name": "Nombre 1 ñ", "valid_from": "2026-03-01"}
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert row["after_hash"] == hashlib.sha256(canonical).digest()
    assert row["before_hash"] is None
    micros = (row["at"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)

    def s(text: str) -> bytes:
        return len(text.encode()).to_bytes(4, "big") + text.encode()

    encoded = (
        b"comuna-audit-log/v1\x00"
        + row["prev_hash"]
        + (2).to_bytes(8, "big")
        + micros.to_bytes(8, "big", signed=True)
        + s(row["actor"])
        + s(row["action"])
        + s(row["object_kind"])
        + s(row["object_id"])
        + b"\x00"
        + b"\x01"
        + row["after_hash"]
    )
    assert row["entry_hash"] == hashlib.sha256(encoded).digest()

    result = await log.verify()
    assert (result.intact, result.entries, result.head.seq, result.head.entry_hash) == (
        True,
        7,
        7,
        stored[-1]["entry_hash"],
    )


async def test_an_append_rolls_back_with_its_transaction_and_leaves_no_gap(log: Log) -> None:
    await log.append(2)
    with pytest.raises(RuntimeError, match="the change failed"):
        async with log.db.transaction() as session:
            await audit.append(session, entries(5, start=100))
            raise RuntimeError("the change failed")
    await log.append(1, start=200)
    assert [(row["seq"], row["object_id"]) for row in await rows(log)] == [
        (1, str(uuid.UUID(int=0))),
        (2, str(uuid.UUID(int=1))),
        (3, str(uuid.UUID(int=200))),
    ]
    assert (await log.verify()).intact


async def test_an_entry_that_cannot_be_encoded_fails_the_append_and_writes_nothing(log: Log) -> None:
    await log.append(2)
    unencodable = AuditEntry("subject-a", "territory.renamed", "territory", "t", None, {"names": {"a", "b"}})
    with pytest.raises(TypeError, match="JSON-able"):
        async with log.db.transaction() as session:
            await audit.append(session, [*entries(3, start=50), unencodable])
    await log.append(1, start=60)  # the pool's connection is fine afterwards
    assert [row["seq"] for row in await rows(log)] == [1, 2, 3]
    assert (await log.verify()).intact


async def test_concurrent_writers_never_fork_the_chain(log: Log) -> None:
    started = asyncio.Event()

    async def writer(n: int) -> None:
        await started.wait()
        for batch in range(3):
            async with log.db.transaction() as session:
                await audit.append(session, entries(5, actor=f"writer-{n}", start=1000 * n + 10 * batch))

    tasks = [asyncio.create_task(writer(n)) for n in range(8)]
    started.set()
    await asyncio.gather(*tasks)
    stored = await rows(log)
    assert [row["seq"] for row in stored] == list(range(1, 121))
    # Each append's five entries stay together, in order.
    for first in range(0, 120, 5):
        assert len({row["actor"] for row in stored[first : first + 5]}) == 1
    result = await log.verify()
    assert (result.intact, result.entries) == (True, 120)


async def test_the_runtime_role_can_only_read_and_append(log: Log) -> None:
    await log.append(2)
    runtime = await asyncpg.connect(plain(log.runtime_url))
    try:
        assert await runtime.fetchval("SELECT count(*) FROM audit_log") == 2
        for statement in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            "DROP TABLE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(statement)
    finally:
        await runtime.close()
    # The trigger stops even the owner (who holds every privilege on its table).
    owner = await asyncpg.connect(plain(log.owner_url))
    try:
        for statement in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log WHERE seq = 2",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await owner.execute(statement)
    finally:
        await owner.close()
    assert len(await rows(log)) == 2


# --- tampering, found by verify -------------------------------------------------------------


Tamper = Callable[[Log], Awaitable[None]]


async def altered_field(log: Log) -> None:
    await log.tamper("UPDATE audit_log SET actor = 'someone else' WHERE seq = 4")


async def altered_state_hash(log: Log) -> None:
    await log.tamper("UPDATE audit_log SET after_hash = sha256('forged') WHERE seq = 4")


async def deleted_row(log: Log) -> None:
    await log.tamper("DELETE FROM audit_log WHERE seq = 4")


async def reordered_rows(log: Log) -> None:
    await log.tamper(
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq IN (4, 5)",
        "UPDATE audit_log SET seq = CASE seq WHEN 1004 THEN 5 ELSE 4 END WHERE seq > 1000",
    )


async def forged_row_appended(log: Log) -> None:
    # Chained to the real head, but its hash made up: the forger does not know the encoding.
    await log.tamper(
        "INSERT INTO audit_log SELECT 9, at, 'forger', action, object_kind, object_id, before_hash, after_hash, "
        "entry_hash, sha256('made up') FROM audit_log WHERE seq = 8"
    )


async def forged_row_with_a_valid_hash(log: Log) -> None:
    """Entry 4 replaced by a well-formed entry (hash recomputed): entry 5 no longer links to it."""
    connection = await log.superuser()
    try:
        row = await connection.fetchrow("SELECT * FROM audit_log WHERE seq = 4")
    finally:
        await connection.close()
    forged = audit.entry_hash_of(
        seq=4,
        at=row["at"],
        actor="forger",
        action=row["action"],
        object_kind=row["object_kind"],
        object_id=row["object_id"],
        before_hash=row["before_hash"],
        after_hash=row["after_hash"],
        prev_hash=row["prev_hash"],
    )
    await log.tamper(f"UPDATE audit_log SET actor = 'forger', entry_hash = '\\x{forged.hex()}' WHERE seq = 4")


@pytest.mark.parametrize(
    ("tamper", "seq", "kind"),
    [
        (altered_field, 4, "altered"),
        (altered_state_hash, 4, "altered"),
        (deleted_row, 4, "missing"),
        (reordered_rows, 4, "altered"),
        (forged_row_appended, 9, "altered"),
        (forged_row_with_a_valid_hash, 5, "broken_link"),
    ],
)
async def test_verify_names_the_first_tampered_entry(
    log: Log, tamper: Tamper, seq: int, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await log.append(8)
    assert (await log.verify()).intact
    await tamper(log)
    result = await log.verify()
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (seq, kind)
    # The command says the same and exits 1 (run as the runtime role, as operators do).
    status = await run_verify(monkeypatch, log.runtime_url, "--json")
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["intact"] is False
    assert (report["first_problem"]["seq"], report["first_problem"]["kind"]) == (seq, kind)


async def test_a_truncated_tail_is_found_against_a_pinned_head(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    head = await log.append(8)
    pin = f"{head.seq}:{head.entry_hash.hex()}"
    await log.tamper("DELETE FROM audit_log WHERE seq >= 7")
    # The chain that is left is consistent by itself ...
    assert await run_verify(monkeypatch, log.runtime_url) == 0
    assert "6 entries" in capsys.readouterr().out
    # ... but the head published earlier is gone.
    assert await run_verify(monkeypatch, log.runtime_url, "--pin", pin) == 1
    assert "audit log broken at entry 8 (missing)" in capsys.readouterr().out


async def test_a_rewritten_chain_is_found_against_a_pinned_head(log: Log) -> None:
    head = await log.append(5)
    await log.tamper("DELETE FROM audit_log")
    async with log.db.transaction() as session:  # the whole history rewritten from the genesis
        await audit.append(session, entries(5, actor="rewriter"))
    assert (await log.verify()).intact
    result = await log.verify(audit.Pin(head.seq, head.entry_hash))
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (5, "pin_mismatch")


# --- the command ----------------------------------------------------------------------------


async def run_verify(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("COMUNA_IDENTITY_DATABASE_URL", url)
    parser = argparse.ArgumentParser()
    audit_cli.configure(parser)
    args = parser.parse_args(["verify", "--quiet", *argv])
    # The command runs its own event loop, as from a shell.
    return await asyncio.to_thread(audit_cli.run, args)


async def test_verify_summarises_an_intact_log(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    head = await log.append(12)
    assert await run_verify(monkeypatch, log.runtime_url) == 0
    line = capsys.readouterr().out
    assert f"audit log intact: 12 entries, head 12 {head.entry_hash.hex()}" in line
    assert await run_verify(monkeypatch, log.runtime_url, "--json", "--pin", f"12:{head.entry_hash.hex()}") == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: report[k] for k in ("intact", "entries", "head_seq", "head_hash")} == {
        "intact": True,
        "entries": 12,
        "head_seq": 12,
        "head_hash": head.entry_hash.hex(),
    }
    assert report["seconds"] >= 0


@pytest.mark.parametrize("pin", ["12", "0:" + "00" * 32, "3:abc", "x:" + "00" * 32])
async def test_a_bad_pin_is_a_usage_error(
    log: Log, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pin: str
) -> None:
    assert await run_verify(monkeypatch, log.runtime_url, "--pin", pin) == 2
    err = capsys.readouterr().err
    assert err.startswith("comuna-identity audit: invalid --pin") and err.count("\n") == 1


async def test_an_unreachable_database_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_verify(monkeypatch, f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/x") == 1
    assert "database is unavailable" in capsys.readouterr().err


async def console(*argv: str) -> tuple[int, str, str]:
    script = Path(sys.executable).parent / "comuna-identity"
    process = await asyncio.create_subprocess_exec(
        script, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_console_script_has_audit_verify() -> None:
    status, out, _ = await console("audit", "verify", "--help")
    assert status == 0
    assert "--pin SEQ:HASH" in out and "--json" in out
    status, _, err = await console("audit")
    assert status == 2
    assert err.strip() == "comuna-identity audit: audit needs a command: verify (see --help)"


async def test_the_runtime_role_may_analyze_the_roll_tables_it_bulk_writes_and_nothing_else(log: Log) -> None:
    """The freeze ANALYZEs the entries it wrote (and a prepare its keys): as the runtime role,
    which owns neither table, that needs MAINTAIN (PostgreSQL 17+), granted by `migrate`."""
    runtime = await asyncpg.connect(plain(log.runtime_url))
    notices: list[str] = []
    runtime.add_log_listener(lambda _conn, message: notices.append(str(message)))
    try:
        privileges = {
            table: await runtime.fetchval("SELECT has_table_privilege(current_user, $1, 'MAINTAIN')", table)
            for table in ("voter_roll_entries", "voter_roll_keys", "residents", "audit_log")
        }
        await runtime.execute("ANALYZE voter_roll_entries")
        await runtime.execute("ANALYZE residents")
    finally:
        await runtime.close()
    assert privileges == {
        "voter_roll_entries": True,
        "voter_roll_keys": True,
        "residents": False,
        "audit_log": False,
    }
    # Where the role may not, ANALYZE only warns and skips: what a freeze without the grant would do.
    assert len(notices) == 1 and "residents" in notices[0]
