"""`comuna-table`: run an offline voting table from a laptop without connectivity.

    comuna-table download --server URL --consultation ID --table CODE   (needs the network)
    comuna-table check-in DOCUMENT
    comuna-table vote --candidate ID | --blank                          (electronic mode)
    comuna-table tally --candidate ID=N ... --blank N --null N          (paper mode, at close)
    comuna-table status
    comuna-table sync                                                   (needs the network)

Exit status: 0 done, 2 refused (bad input, a file that fails its checks, the server refusing
the batch) with a one-line reason on stderr, 1 the server unreachable or failing (retry).
Results are one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from comuna_platform import offline_tables
from comuna_platform.documents import normalise_document
from comuna_platform.errors import InvalidInput
from comuna_platform.voter_keys import document_point, multiply
from comuna_table.store import BLANK, NULL, Refused, Snapshot, Store, key_file_of, verified_snapshot

# During voting a batch leaves only with at least this many ballots, so that no batch (and no
# server transaction) holds a lone ballot next to its voter's check-in; after the close,
# whatever remains is sent.
MIN_BALLOTS_PER_BATCH = 5
TOKEN_ENV = "COMUNA_TABLE_TOKEN"  # noqa: S105 (the name of the variable, not a token)


class Unreachable(Exception):
    """The server could not be reached or failed: exit 1, try again later."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comuna-table", description="The program of an offline voting table's device (see docs/offline-tables.md)."
    )
    parser.add_argument("--db", type=Path, default=Path("comuna-table.sqlite"), help="the table's SQLite file")
    parser.add_argument(
        "--key-file", type=Path, help="the table's sync key (default: <db>.key); keep it off the SQLite file's media"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    download = commands.add_parser("download", help="download and verify the table's signed snapshot (online)")
    download.add_argument("--server", required=True, help="consultations' base URL, e.g. https://consultas.example")
    download.add_argument("--consultation", required=True, help="the consultation's id")
    download.add_argument("--table", required=True, help="the table's code")
    download.add_argument("--mode", choices=("electronic", "paper"), default="electronic", help="how votes are kept")
    download.add_argument("--public-key", help="base64 snapshot public key known beforehand (else the server's)")
    _token_options(download)

    check_in = commands.add_parser("check-in", help="check a voter in by the document they show (offline)")
    check_in.add_argument("document", metavar="DOCUMENT", help="the document as shown, e.g. V-12.345.678")

    vote = commands.add_parser("vote", help="record the checked-in voter's ballot (offline, electronic mode)")
    choice = vote.add_mutually_exclusive_group(required=True)
    choice.add_argument("--candidate", help="the chosen candidate's id")
    choice.add_argument("--blank", action="store_true", help="a blank ballot")

    tally = commands.add_parser("tally", help="record a paper table's tally sheet (offline, paper mode)")
    tally.add_argument("--candidate", action="append", default=[], metavar="ID=N", help="votes of one candidate")
    tally.add_argument("--blank", type=int, default=0, help="blank votes")
    tally.add_argument("--null", type=int, default=0, help="null (spoiled) votes")

    commands.add_parser("status", help="what the file holds and what is still to send (offline)")

    sync = commands.add_parser("sync", help="send what was not sent yet; safe to repeat (online)")
    _token_options(sync)
    return parser


def _token_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", help=f"the officer's access token (or ${TOKEN_ENV}, or --token-file)")
    parser.add_argument("--token-file", type=Path, help="a file holding the officer's access token")


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    if args.token_file:
        try:
            return str(args.token_file.read_text().strip())
        except OSError:
            raise Refused(f"cannot read the token file {args.token_file}") from None
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise Refused(f"an officer's token is needed: --token, --token-file or ${TOKEN_ENV}")
    return token


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('code') or body.get('title')}: {body.get('detail')}"
    except ValueError:
        return response.text[:200]


async def _request(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise Unreachable(f"cannot reach the server: {error}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise Unreachable(f"the server answered {response.status_code} ({_problem(response)}); try again later")
    if response.status_code >= 400:
        raise Refused(f"the server refused ({response.status_code}) {_problem(response)}")
    return response


def _window_open(snapshot: Snapshot, now: datetime) -> bool:
    window = snapshot.document["voting_window"]
    return datetime.fromisoformat(window["opens_at"]) <= now < datetime.fromisoformat(window["closes_at"])


def _closed(snapshot: Snapshot, now: datetime) -> bool:
    return now >= datetime.fromisoformat(snapshot.document["voting_window"]["closes_at"])


def _refuse_existing(db: Path, key_file: Path) -> None:
    # Checked before the download as well as at creation: no network round trip for nothing.
    if db.exists() or key_file.exists():
        raise Refused(f"{db} or its key file already exists: a table keeps one file per snapshot")


async def _download(args: argparse.Namespace, key_file: Path, client: httpx.AsyncClient) -> dict[str, Any]:
    try:
        consultation_id = str(uuid.UUID(args.consultation))
    except ValueError:
        raise Refused("--consultation must be a consultation id (a UUID)") from None
    token = _token(args)
    _refuse_existing(args.db, key_file)
    if args.public_key:
        try:
            public_key = offline_tables.unb64(args.public_key)
        except ValueError:
            raise Refused("--public-key is not base64") from None
    else:
        keys = (await _request(client, "GET", "/v1/snapshot-keys")).json()["keys"]
        if not keys:
            raise Refused("the server has no snapshot key: offline tables are not configured there")
        public_key = offline_tables.unb64(keys[0]["public_key"])
    _progress(f"downloading the snapshot of table {args.table}...")
    response = await _request(
        client,
        "GET",
        f"/v1/consultations/{consultation_id}/tables/{args.table}/snapshot",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        body = response.json()
        payload, signature = offline_tables.unb64(body["payload"]), offline_tables.unb64(body["signature"])
        sync_key = offline_tables.unb64(body["sync_key"])
    except (ValueError, KeyError, TypeError):
        raise Refused("the server's answer is not a table snapshot") from None
    _progress(f"verifying the signature ({len(payload)} bytes)...")
    snapshot = verified_snapshot(payload, signature, public_key)
    if snapshot.consultation_id != consultation_id or snapshot.table_code != args.table:
        raise Refused(
            f"the snapshot is for consultation {snapshot.consultation_id} table {snapshot.table_code},"
            f" not the one asked for"
        )
    store = Store.create(
        args.db,
        key_file,
        snapshot=snapshot,
        signature=signature,
        public_key=public_key,
        sync_key=sync_key,
        server=str(client.base_url).rstrip("/"),
        mode=args.mode,
    )
    try:
        return store.status()
    finally:
        store.close()


async def _sync(args: argparse.Namespace, store: Store, client: httpx.AsyncClient, now: datetime) -> dict[str, Any]:
    token = _token(args)
    snapshot = store.verify()
    held_back = False
    if (
        store.meta("mode") == "electronic"
        and not _closed(snapshot, now)
        and store.pending_ballots() < MIN_BALLOTS_PER_BATCH
    ):
        held_back = store.pending_ballots() > 0
    else:
        store.make_batch()
    batches = store.unsent_batches()
    answers = []
    for number, batch in enumerate(batches, start=1):
        _progress(f"sending batch {number}/{len(batches)} ({len(batch['checkins'])} check-ins)...")
        body = {
            name: batch[name] for name in ("batch_id", "snapshot_digest", "checkins", "ballots", "null_votes", "mac")
        }
        response = await _request(
            client,
            "POST",
            f"/v1/consultations/{snapshot.consultation_id}/tables/{snapshot.table_code}:sync",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        answer = response.json()
        store.mark_sent(batch["batch_id"], answer)
        answers.append(answer)
    result: dict[str, Any] = {"sent": answers, "batches_sent_now": len(answers)}
    if held_back:
        result["held_back"] = (
            f"fewer than {MIN_BALLOTS_PER_BATCH} ballots recorded since the last batch: they leave with the next one"
            " (or after the close)"
        )
    return result


def _tally_counts(args: argparse.Namespace) -> dict[str, int]:
    counts: dict[str, int] = {BLANK: args.blank, NULL: args.null}
    for item in args.candidate:
        candidate, sep, number = str(item).partition("=")
        if not sep or not number.strip().isdigit():
            raise Refused(f"--candidate takes ID=N, not {item!r}")
        if candidate in counts:
            raise Refused(f"candidate {candidate} is counted twice")
        counts[candidate] = int(number)
    return counts


def _voter_key(store: Store, document: str) -> str:
    snapshot = store.verify()
    try:
        point = document_point(normalise_document(document))
    except InvalidInput as error:
        raise Refused(str(error)) from None
    return multiply(bytes.fromhex(snapshot.document["device_key"]), point).hex()


async def _run(args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None, now: datetime) -> dict[str, Any]:
    key_file: Path = args.key_file or key_file_of(args.db)
    if args.command == "download":
        async with httpx.AsyncClient(base_url=args.server, transport=transport, timeout=60) as client:
            return await _download(args, key_file, client)
    store = Store.open(args.db, key_file)
    try:
        snapshot = store.verify()
        if args.command == "status":
            return store.status()
        if args.command == "check-in":
            if not _window_open(snapshot, now):
                raise Refused("the voting window of this table is not open")
            store.check_in(_voter_key(store, args.document))
            return {"checked_in": True}
        if args.command == "vote":
            if not _window_open(snapshot, now):
                raise Refused("the voting window of this table is not open")
            store.vote(BLANK if args.blank else str(args.candidate))
            return {"recorded": True}
        if args.command == "tally":
            if not _closed(snapshot, now):
                raise Refused("a tally sheet is recorded after the voting closes")
            store.record_tally(_tally_counts(args))
            return {"recorded": True}
        async with httpx.AsyncClient(base_url=store.meta("server"), transport=transport, timeout=60) as client:
            return await _sync(args, store, client, now)
    finally:
        store.close()


async def run(
    argv: Sequence[str], *, transport: httpx.AsyncBaseTransport | None = None, now: datetime | None = None
) -> int:
    """The program; `transport` and `now` let tests reach an in-process server and set the device clock."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exit_:  # argparse printed its one-line usage error (or --help)
        return int(exit_.code or 0)
    try:
        result = await _run(args, transport, now or datetime.now(UTC))
    except Refused as refusal:
        print(f"comuna-table: {refusal}", file=sys.stderr)
        return 2
    except Unreachable as failure:
        print(f"comuna-table: {failure}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as error:  # e.g. --db in a directory that does not exist
        print(f"comuna-table: cannot use the table's files: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


def main() -> None:
    sys.exit(asyncio.run(run(sys.argv[1:])))
