"""Offline tables: a signed snapshot goes to `comuna-table`, batches come back, once each.

Real identity, Keycloak tokens, PostgreSQL; the device program (`comuna_table.cli.run`) talks
HTTP to the in-process consultations app, with its own clock set inside or after the window.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from nacl.signing import SigningKey
from sqlalchemy import text

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform import offline_tables
from comuna_table import cli
from comuna_table.store import Store, key_file_of
from tests.consultations.conftest import open_stack
from tests.consultations.helpers import (
    ADULT,
    SCHEDULE,
    Consultation,
    Stack,
    close_voting,
    link_resident,
    officer,
    register_residents,
    rows,
    transition,
    vote,
    vote_online,
    voting_consultation,
)
from tests.support.identity import person
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2 = "VE.01.01.C1", "VE.01.01.C2"
# Per `voting` consultation, the headers of the residents (by index in its voters) who may vote online.
ONLINE: dict[str, dict[int, dict[str, str]]] = {}
SIGNING_SEED = bytes(range(32))
DURING = datetime.fromisoformat(SCHEDULE["voting_opens_at"]) + timedelta(hours=1)
AFTER = datetime.fromisoformat(SCHEDULE["voting_closes_at"]) + timedelta(hours=1)


@pytest_asyncio.fixture(scope="module")
async def stack(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    seed = base64.b64encode(SIGNING_SEED).decode()
    async with open_stack(
        embedded_postgres, embedded_nats, issuer, uuid.uuid4().hex[:10], snapshot_signing_key=seed
    ) as stack:
        yield stack


async def add_table(stack: Stack, consultation: Consultation, commune: str, code: str, kind: str = "offline") -> None:
    """A centre with one table (the TABLES import API is another helper's; rows are enough here)."""
    commune_id = stack.commune_ids[commune]
    centre_id = uuid.uuid4()
    async with stack.consultations.runtime.db.transaction() as session:
        await session.execute(
            text("INSERT INTO voting_centres (id, consultation_id, code, name) VALUES (:id, :c, :code, 'Escuela')"),
            {"id": centre_id, "c": uuid.UUID(consultation.id), "code": f"CENTRE-{code}"},
        )
        await session.execute(
            text("INSERT INTO voting_centre_communes VALUES (:centre, :commune, :c)"),
            {"centre": centre_id, "commune": commune_id, "c": uuid.UUID(consultation.id)},
        )
        await session.execute(
            text(
                "INSERT INTO voting_tables (id, consultation_id, centre_id, commune_id, code, kind)"
                " VALUES (:id, :c, :centre, :commune, :code, :kind)"
            ),
            {
                "id": uuid.uuid4(),
                "c": uuid.UUID(consultation.id),
                "centre": centre_id,
                "commune": commune_id,
                "code": code,
                "kind": kind,
            },
        )


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@dataclass
class Device:
    """One table's laptop: its SQLite file under tmp_path, reaching the app in-process."""

    db: Path
    stack: Stack
    capsys: pytest.CaptureFixture[str]
    transport: httpx.AsyncBaseTransport | None = None

    async def run(self, *argv: str, now: datetime = DURING) -> tuple[int, dict[str, Any], str]:
        self.capsys.readouterr()
        code = await cli.run(
            ["--db", str(self.db), *argv],
            transport=self.transport or self.stack.consultations.client._transport,
            now=now,
        )
        out, err = self.capsys.readouterr()
        return code, (json.loads(out) if code == 0 and out.startswith("{") else {}), err

    async def download(self, consultation: Consultation, table: str, token: str, *extra: str) -> tuple[int, str]:
        code, _, err = await self.run(
            "download",
            "--server",
            "http://testserver",
            "--consultation",
            consultation.id,
            "--table",
            table,
            "--token",
            token,
            *extra,
        )
        return code, err


@pytest_asyncio.fixture
async def voting(stack: Stack, issuer: TestIssuer) -> AsyncIterator[tuple[Consultation, list[str]]]:
    """A consultation in voting with eight C1 residents and an offline table OFF1 in C1."""
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 8)
    # voters[0] and voters[2] have Keycloak accounts linked before the roll is frozen: they may vote online.
    linked = {index: await link_resident(stack, issuer, voters[index]) for index in (0, 2)}
    consultation = await voting_consultation(stack, issuer, {C1: 2, C2: 1})
    ONLINE[consultation.id] = {index: person(issuer, subject) for index, subject in linked.items()}
    await add_table(stack, consultation, C1, "OFF1")
    yield consultation, voters


def device(tmp_path: Path, stack: Stack, capsys: pytest.CaptureFixture[str], name: str = "table") -> Device:
    return Device(tmp_path / f"{name}.sqlite", stack, capsys)


async def vote_offline(table: Device, consultation: Consultation, voters: list[str], choices: list[str | None]) -> None:
    for voter, choice in zip(voters, choices, strict=True):
        code, _, err = await table.run("check-in", voter)
        assert code == 0, err
        code, _, err = await table.run("vote", *(["--blank"] if choice is None else ["--candidate", choice]))
        assert code == 0, err


async def sync_token(stack: Stack, consultation: Consultation, table: str = "OFF1", commune: str = C1) -> str:
    return token_of(await officer(stack, consultation.id, commune, table))


async def scalar(stack: Stack, sql: str, **params: Any) -> Any:
    async with stack.consultations.runtime.db.transaction() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def offline_rows(stack: Stack, consultation: Consultation) -> dict[str, int]:
    """Everything a sync may write, counted."""
    c = uuid.UUID(consultation.id)
    return {
        "participations": await rows(stack, "participations", consultation.id),
        "ballots": await rows(stack, "ballots", consultation.id),
        "conflicts": await rows(stack, "participation_conflicts", consultation.id),
        "syncs": int(await scalar(stack, "SELECT count(*) FROM offline_syncs WHERE consultation_id = :c", c=c)),
    }


NOTHING = {"participations": 0, "ballots": 0, "conflicts": 0, "syncs": 0}


def batches_of(table: Device) -> list[dict[str, Any]]:
    with sqlite3.connect(table.db) as db:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM batches")]


def sync_key_of(table: Device) -> bytes:
    return offline_tables.unb64((table.db.with_name(table.db.name + ".key")).read_text().strip())


def sealed(table: Device, batch: dict[str, Any]) -> dict[str, Any]:
    """A batch MACed with the table's key, as a forger holding the key file could."""
    batch["mac"] = offline_tables.b64(offline_tables.batch_mac(sync_key_of(table), batch))
    return {k: batch[k] for k in ("batch_id", "snapshot_digest", "checkins", "ballots", "null_votes", "mac")}


async def post_sync(
    stack: Stack, consultation: Consultation, table_code: str, body: dict[str, Any], token: str
) -> httpx.Response:
    return await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/tables/{table_code}:sync",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_double_vote_offline_and_online_or_at_another_table_counts_once_and_is_flagged(
    stack: Stack, issuer: TestIssuer, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    first, second = consultation.candidates[C1]
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys)
    assert (await table.download(consultation, "OFF1", token))[0] == 0
    # voters[0] votes online, voters[1] at an electronic table; both then turn up at the offline table.
    online = await vote_online(stack, consultation, C1, first, ONLINE[consultation.id][0])
    assert online.status_code == 201, online.text
    assert (await vote(stack, issuer, consultation, C1, second, voters[1])).status_code == 201
    await vote_offline(table, consultation, voters[:5], [first, second, None, first, second])

    code, result, err = await table.run("sync", "--token", token)
    assert code == 0, err
    assert result["batches_sent_now"] == 1
    assert result["sent"][0]["checkins"] == 5 and result["sent"][0]["ballots"] == 5

    c = uuid.UUID(consultation.id)
    # One participation per person whatever the channel: 2 earlier + 3 new offline.
    assert await rows(stack, "participations", consultation.id) == 5
    assert (
        await scalar(stack, "SELECT count(*) FROM participations WHERE consultation_id=:c AND channel='offline'", c=c)
        == 3
    )
    # The two second participations are flagged, their ballots stay in the offline table's count.
    conflicts = await scalar(
        stack,
        "SELECT json_agg(json_build_object('channel', f.channel, 'table', t.code, 'counted', f.ballot_counted,"
        " 'commune', f.commune_id)) FROM participation_conflicts f JOIN voting_tables t ON t.id = f.table_id"
        " WHERE f.consultation_id = :c",
        c=c,
    )
    commune = str(stack.commune_ids[C1])
    assert (
        sorted(conflicts, key=str) == [{"channel": "offline", "table": "OFF1", "counted": True, "commune": commune}] * 2
    )
    assert await scalar(stack, "SELECT count(*) FROM ballots WHERE consultation_id=:c AND channel='offline'", c=c) == 5
    assert (
        await scalar(
            stack,
            "SELECT count(*) FROM ballots b JOIN voting_tables t ON t.id = b.table_id"
            " WHERE b.consultation_id=:c AND t.code='OFF1' AND b.candidate_id IS NULL",
            c=c,
        )
        == 1
    )
    # And the other way round: who voted offline cannot vote online afterwards.
    again = await vote_online(stack, consultation, C1, first, ONLINE[consultation.id][2])
    assert again.status_code == 409


async def test_sync_is_idempotent_even_when_the_answer_is_lost(
    stack: Stack, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    first, second = consultation.candidates[C1]
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys)
    assert (await table.download(consultation, "OFF1", token))[0] == 0
    await vote_offline(table, consultation, voters[:5], [first, first, second, None, first])

    # The server commits, then the answer is lost on the way back: the device must retry.
    class LosesAnswers(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await stack.consultations.client._transport.handle_async_request(request)
            raise httpx.ReadError("connection reset", request=request)

    table.transport = LosesAnswers()
    code, _, err = await table.run("sync", "--token", token)
    assert code == 1 and "cannot reach the server" in err
    after_first = await offline_rows(stack, consultation)
    assert after_first == {"participations": 5, "ballots": 5, "conflicts": 0, "syncs": 1}

    table.transport = None
    code, result, err = await table.run("sync", "--token", token)
    assert code == 0, err
    assert result["batches_sent_now"] == 1  # the same batch again, answered from the server's record
    assert await offline_rows(stack, consultation) == after_first
    code, result, _ = await table.run("sync", "--token", token)
    assert (code, result["batches_sent_now"]) == (0, 0)  # nothing twice
    code, status, _ = await table.run("status")
    assert status["batches_sent"] == 1 and status["batches_unsent"] == 0 and status["checkins_unsent"] == 0

    # Replayed by hand: same answer, nothing new; the same id with other content: refused.
    (batch,) = batches_of(table)
    body = {k: batch[k] for k in ("batch_id", "snapshot_digest", "checkins", "ballots", "null_votes", "mac")}
    replies = [await post_sync(stack, consultation, "OFF1", body, token) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200] and replies[0].json() == replies[1].json()
    reused = await post_sync(stack, consultation, "OFF1", {**body, "null_votes": 1}, token)
    assert reused.status_code == 409 and reused.json()["code"] == "batch_id_reused"
    assert await offline_rows(stack, consultation) == after_first


def copy_device(table: Device, name: str) -> Device:
    copy = Device(table.db.with_name(f"{name}.sqlite"), table.stack, table.capsys)
    copy.db.write_bytes(table.db.read_bytes())
    copy.db.with_name(copy.db.name + ".key").write_bytes(table.db.with_name(table.db.name + ".key").read_bytes())
    return copy


def edit(table: Device, sql: str, *params: Any) -> None:
    with sqlite3.connect(table.db) as db:
        db.execute(sql, params)


async def test_a_tampered_file_is_refused_and_nothing_is_written(
    stack: Stack, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    first, second = consultation.candidates[C1]
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys)
    assert (await table.download(consultation, "OFF1", token))[0] == 0
    await vote_offline(table, consultation, voters[:5], [first, first, second, None, first])

    edits = {
        "more votes": ("UPDATE votes SET pending = pending + 3 WHERE choice = ?", first),
        "a vote moved": (
            "UPDATE votes SET pending = pending + (CASE WHEN choice = ? THEN 1 ELSE -1 END)"
            " WHERE choice IN (?, 'blank')",
            second,
            second,
        ),
        "a check-in removed": ("DELETE FROM checkins WHERE key = (SELECT min(key) FROM checkins)",),
        "a check-in added": ("INSERT INTO checkins VALUES (?, NULL)", "ab" * 32),
        "a signature flipped": (
            "UPDATE meta SET value = ? WHERE name = 'signature'",
            base64.b64encode(bytes(64)).decode(),
        ),
    }
    for name, (sql, *params) in edits.items():
        copy = copy_device(table, name.replace(" ", "-"))
        edit(copy, sql, *params)
        code, _, err = await copy.run("sync", "--token", token)
        assert code == 2, name
        assert err.startswith("comuna-table: ") and err.count("\n") == 1, err
        assert "tampered" in err or "signature" in err, (name, err)
        assert (await copy.run("status"))[0] == 2
    assert await offline_rows(stack, consultation) == NOTHING

    # A batch edited on its way (or by someone without the key file): the server refuses it.
    store = Store.open(table.db, key_file_of(table.db))
    store.make_batch()
    store.close()
    (batch,) = batches_of(table)
    body = {k: batch[k] for k in ("batch_id", "snapshot_digest", "checkins", "ballots", "null_votes", "mac")}
    body["ballots"] = [{**b, "count": b["count"] + 1} if b["candidate_id"] == first else b for b in body["ballots"]]
    body["checkins"] = [*body["checkins"], "cd" * 32]
    refused = await post_sync(stack, consultation, "OFF1", body, token)
    assert refused.status_code == 422 and refused.json()["code"] == "batch_not_authentic", refused.text
    assert await offline_rows(stack, consultation) == NOTHING
    # A batch row edited in the file is caught by the device before anything leaves.
    edit(table, "UPDATE batches SET body = replace(body, ?, ?)", '"null_votes": 0', '"null_votes": 1')
    code, _, err = await table.run("sync", "--token", token)
    assert code == 2 and "tampered" in err
    assert await offline_rows(stack, consultation) == NOTHING


async def test_a_snapshot_of_another_consultation_is_refused_on_the_device_and_by_the_server(
    stack: Stack, issuer: TestIssuer, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    other = await voting_consultation(stack, issuer, {C1: 1})
    await add_table(stack, other, C1, "OFF1")
    token, other_token = await sync_token(stack, consultation), await sync_token(stack, other)
    mine, theirs = device(tmp_path, stack, capsys, "mine"), device(tmp_path, stack, capsys, "theirs")
    assert (await mine.download(consultation, "OFF1", token))[0] == 0
    assert (await theirs.download(other, "OFF1", other_token))[0] == 0

    # A server (or someone in between) answering with the other consultation's snapshot.
    class Redirects(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            url = request.url.copy_with(path=request.url.path.replace(consultation.id, other.id))
            forwarded = httpx.Request(request.method, url, headers=request.headers, content=request.content)
            return await stack.consultations.client._transport.handle_async_request(forwarded)

    redirected = device(tmp_path, stack, capsys, "redirected")
    redirected.transport = Redirects()
    code, err = await redirected.download(consultation, "OFF1", other_token)
    assert code == 2 and "not the one asked for" in err
    assert not redirected.db.exists() and not key_file_of(redirected.db).exists()

    # The other consultation's (validly signed) snapshot swapped into this table's file.
    await vote_offline(mine, consultation, voters[:1], [consultation.candidates[C1][0]])
    with sqlite3.connect(theirs.db) as db:
        swapped = dict(db.execute("SELECT name, value FROM meta WHERE name IN ('payload', 'signature')").fetchall())
    for name, value in swapped.items():
        edit(mine, "UPDATE meta SET value = ? WHERE name = ?", value, name)
    code, _, err = await mine.run("sync", "--token", token, now=AFTER)
    assert code == 2 and "tampered" in err

    # The other consultation's batch sent here: its MAC is for another table of another consultation.
    forged = sealed(
        theirs,
        {
            "format": offline_tables.BATCH_FORMAT,
            "batch_id": str(uuid.uuid4()),
            "consultation_id": other.id,
            "table_code": "OFF1",
            "snapshot_digest": "0" * 64,
            "checkins": [],
            "ballots": [{"candidate_id": consultation.candidates[C1][0], "count": 0}],
            "null_votes": 0,
        },
    )
    refused = await post_sync(stack, consultation, "OFF1", forged, token)
    assert refused.status_code == 422 and refused.json()["code"] == "batch_not_authentic"
    assert await offline_rows(stack, consultation) == NOTHING
    assert await offline_rows(stack, other) == NOTHING


async def test_only_an_officer_of_that_offline_table_gets_its_snapshot_or_syncs_it(
    stack: Stack, issuer: TestIssuer, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    await add_table(stack, consultation, C1, "OFF2")
    await add_table(stack, consultation, C1, "ELEC1", kind="electronic")
    client = stack.consultations.client

    async def snapshot(table_code: str, headers: dict[str, str]) -> httpx.Response:
        return await client.get(f"/v1/consultations/{consultation.id}/tables/{table_code}/snapshot", headers=headers)

    off1 = await officer(stack, consultation.id, C1, "OFF1")
    assert (await snapshot("OFF1", off1)).status_code == 200
    foreign = await snapshot("OFF2", off1)
    assert foreign.status_code == 403 and foreign.json()["code"] == "forbidden_table"
    other_commune = await officer(stack, consultation.id, C2, "OFF1")
    assert (await snapshot("OFF1", other_commune)).status_code == 403
    elsewhere = await officer(stack, str(uuid.uuid4()), C1, "OFF1")  # same code, another consultation
    assert (await snapshot("OFF1", elsewhere)).status_code == 403
    not_offline = await snapshot("ELEC1", await officer(stack, consultation.id, C1, "ELEC1"))
    assert not_offline.status_code == 409 and not_offline.json()["code"] == "table_not_offline"
    assert (await snapshot("NOPE", off1)).status_code == 404
    anonymous = await client.get(f"/v1/consultations/{consultation.id}/tables/OFF1/snapshot")
    assert anonymous.status_code == 401

    # OFF2's device syncing with OFF1's officer: refused, nothing written.
    off2 = device(tmp_path, stack, capsys, "off2")
    assert (await off2.download(consultation, "OFF2", await sync_token(stack, consultation, "OFF2")))[0] == 0
    await vote_offline(off2, consultation, voters[:1], [None])
    code, _, err = await off2.run("sync", "--token", token_of(off1), now=AFTER)
    assert code == 2 and "403" in err and "forbidden_table" in err
    assert await offline_rows(stack, consultation) == NOTHING


async def test_a_snapshot_whose_signature_fails_is_never_stored(
    stack: Stack, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, _ = voting
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys)
    wrong_key = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    code, err = await table.download(consultation, "OFF1", token, "--public-key", wrong_key)
    assert code == 2 and "signature" in err
    assert not table.db.exists() and not key_file_of(table.db).exists()
    # With the key published by the server (and pinned on the device), it verifies.
    keys = (await stack.consultations.client.get("/v1/snapshot-keys")).json()["keys"]
    assert keys[0]["public_key"] == base64.b64encode(bytes(SigningKey(SIGNING_SEED).verify_key)).decode()
    assert (await table.download(consultation, "OFF1", token, "--public-key", keys[0]["public_key"]))[0] == 0
    code, status, _ = await table.run("status")
    assert code == 0 and status["roll_entries"] >= 8 and status["table_code"] == "OFF1"


async def test_the_server_checks_a_correctly_sealed_batch_against_the_roll_and_the_check_ins(
    stack: Stack, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    """Someone holding the device's key file can seal anything; the server still refuses what the
    signed snapshot does not allow."""
    consultation, voters = voting
    first, _ = consultation.candidates[C1]
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys)
    assert (await table.download(consultation, "OFF1", token))[0] == 0
    await vote_offline(table, consultation, voters[:1], [first])
    with sqlite3.connect(table.db) as db:
        (checkin,) = [key for (key,) in db.execute("SELECT key FROM checkins")]
    c2_candidate = consultation.candidates[C2][0]
    snapshot_digest = "0" * 64

    def batch(checkins: list[str], ballots: list[dict[str, Any]]) -> dict[str, Any]:
        return sealed(
            table,
            {
                "format": offline_tables.BATCH_FORMAT,
                "batch_id": str(uuid.uuid4()),
                "consultation_id": consultation.id,
                "table_code": "OFF1",
                "snapshot_digest": snapshot_digest,
                "checkins": checkins,
                "ballots": ballots,
                "null_votes": 0,
            },
        )

    # A point that is no entry of the roll (the blinded key of a document nobody registered).
    stranger = "58" + "66" * 31  # the edwards25519 base point: a valid point, no one's entry
    cases = {
        "checkin_not_on_roll": batch([checkin, stranger], [{"candidate_id": first, "count": 1}]),
        "votes_exceed_checkins": batch([checkin], [{"candidate_id": first, "count": 2}]),
        "candidate_not_in_commune": batch([checkin], [{"candidate_id": c2_candidate, "count": 1}]),
        "duplicate_checkin": batch([checkin, checkin], []),
    }
    for expected, body in cases.items():
        response = await post_sync(stack, consultation, "OFF1", body, token)
        assert response.status_code == 422 and response.json()["code"] == expected, (expected, response.text)
    assert await offline_rows(stack, consultation) == NOTHING
    # The honest batch goes through.
    assert (
        await post_sync(stack, consultation, "OFF1", batch([checkin], [{"candidate_id": first, "count": 1}]), token)
    ).status_code == 200
    assert await offline_rows(stack, consultation) == {"participations": 1, "ballots": 1, "conflicts": 0, "syncs": 1}


async def test_the_program_exits_2_with_one_line_on_bad_input_and_1_when_the_server_is_unreachable(
    stack: Stack, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    first, _ = consultation.candidates[C1]
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys)
    assert (await table.run("status"))[0] == 2  # no file yet
    assert (await table.download(consultation, "OFF1", token))[0] == 0
    assert (await table.download(consultation, "OFF1", token))[0] == 2  # one file per snapshot

    async def exit_of(*argv: str, now: datetime = DURING) -> tuple[int, str]:
        code, _, err = await table.run(*argv, now=now)
        return code, err

    assert (await exit_of("--help"))[0] == 0
    assert (await exit_of())[0] == 2
    assert (await exit_of("vote"))[0] == 2  # neither --candidate nor --blank
    assert (await exit_of("vote", "--blank"))[0] == 2  # nobody checked in
    assert (await exit_of("check-in", "not a document"))[0] == 2
    assert (await exit_of("check-in", "V99999999"))[0] == 2  # not on this table's roll
    assert (await exit_of("check-in", voters[0], now=AFTER))[0] == 2  # window closed
    assert (await exit_of("check-in", voters[0]))[0] == 0
    assert (await exit_of("check-in", voters[1]))[0] == 2  # the previous voter has not voted
    assert (await exit_of("vote", "--candidate", str(uuid.uuid4())))[0] == 2  # not a candidate here
    assert (await exit_of("tally", "--blank", "1", now=AFTER))[0] == 2  # an electronic table
    assert (await exit_of("vote", "--candidate", first))[0] == 0
    assert (await exit_of("check-in", voters[0]))[0] == 2  # already checked in here
    code, err = await exit_of("sync")
    assert code == 2 and "token" in err
    for _, err in [await exit_of("check-in", "V99999999"), await exit_of("sync")]:
        assert err.startswith("comuna-table: ") and err.count("\n") == 1

    class Down(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("connection refused", request=request)

    table.transport = Down()
    code, _, err = await table.run("sync", "--token", token, now=AFTER)
    assert code == 1 and "cannot reach the server" in err
    assert await offline_rows(stack, consultation) == NOTHING
    table.transport = None
    assert (await table.run("sync", "--token", token, now=AFTER))[0] == 0
    assert (await offline_rows(stack, consultation))["ballots"] == 1


async def test_a_late_sync_after_the_close_counts_and_none_after_certification(
    stack: Stack, issuer: TestIssuer, voting: tuple[Consultation, list[str]], tmp_path: Path, capsys: Any
) -> None:
    consultation, voters = voting
    first, second = consultation.candidates[C1]
    token = await sync_token(stack, consultation)
    table = device(tmp_path, stack, capsys, "electronic")
    paper = device(tmp_path, stack, capsys, "paper")
    await add_table(stack, consultation, C1, "OFF-PAPER")
    paper_token = await sync_token(stack, consultation, "OFF-PAPER")
    assert (await table.download(consultation, "OFF1", token))[0] == 0
    assert (await paper.download(consultation, "OFF-PAPER", paper_token, "--mode", "paper"))[0] == 0

    await vote_offline(table, consultation, voters[:2], [first, second])
    code, result, _ = await table.run("sync", "--token", token)
    assert code == 0 and result["batches_sent_now"] == 0 and "held_back" in result  # no lone ballots
    assert await offline_rows(stack, consultation) == NOTHING
    for voter in voters[2:6]:
        assert (await paper.run("check-in", voter))[0] == 0
    assert (await paper.run("vote", "--blank"))[0] == 2  # a paper table keeps a tally, not ballots
    assert (await paper.run("tally", "--blank", "1"))[0] == 2  # before the close
    over = await paper.run("tally", "--candidate", f"{first}=4", "--blank", "1", now=AFTER)
    assert over[0] == 2 and "checked in" in over[2]
    tally = ("tally", "--candidate", f"{first}=2", "--candidate", f"{second}=1", "--null", "1")
    assert (await paper.run(*tally, now=AFTER))[0] == 0

    await close_voting(stack, issuer, consultation)
    assert (await table.run("sync", "--token", token, now=AFTER))[0] == 0
    code, result, err = await paper.run("sync", "--token", paper_token, now=AFTER)
    assert code == 0, err
    assert result["sent"][0] | {"batch_id": None} == {
        "batch_id": None,
        "recorded": True,
        "checkins": 4,
        "ballots": 3,
        "null_votes": 1,
    }
    assert await offline_rows(stack, consultation) == {"participations": 6, "ballots": 5, "conflicts": 0, "syncs": 2}

    assert (await transition(stack, issuer, consultation.id, "certify")).status_code == 200
    code, _, err = await table.run("sync", "--token", token, now=AFTER)  # nothing left: no request
    assert code == 0
    late = await stack.consultations.client.get(
        f"/v1/consultations/{consultation.id}/tables/OFF1/snapshot", headers={"Authorization": f"Bearer {token}"}
    )
    assert late.status_code == 409 and late.json()["code"] == "offline_tables_closed"
    after_certification = sealed(
        table,
        {
            "format": offline_tables.BATCH_FORMAT,
            "batch_id": str(uuid.uuid4()),
            "consultation_id": consultation.id,
            "table_code": "OFF1",
            "snapshot_digest": "0" * 64,
            "checkins": [],
            "ballots": [],
            "null_votes": 0,
        },
    )
    refused = await post_sync(stack, consultation, "OFF1", after_certification, token)
    assert refused.status_code == 409 and refused.json()["code"] == "offline_tables_closed"
    assert await offline_rows(stack, consultation) == {"participations": 6, "ballots": 5, "conflicts": 0, "syncs": 2}
