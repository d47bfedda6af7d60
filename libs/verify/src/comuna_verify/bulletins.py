"""The signed table bulletins: every bulletin entry of the log is listed at `record/bulletins`,
and each listed one is served as a note a log key signed whose text is exactly the log entry
(the note is what a table's QR code carries, so a person can check a printed bulletin too)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from comuna_verify.audit import Ledger
from comuna_verify.http import Client, UsageError
from comuna_verify.notes import ED25519, NoteError, PublicKey, split_note, verify_line
from comuna_verify.report import Progress

WORKERS = 4  # thousands of bulletins in a national consultation: fetched a few at a time


def check_bulletins(client: Client, ledger: Ledger, keys: Sequence[PublicKey], progress: bool = True) -> list[str]:
    response = client.get("record/bulletins")
    if response.status != 200:
        return [f"bulletins: record/bulletins not served ({response.status}: {response.problem()})"]
    listing = response.json()
    if not isinstance(listing, dict) or not isinstance(listing.get("bulletins"), list):
        return ["bulletins: record/bulletins is not an object with a list of bulletins"]
    problems: list[str] = []
    listed: dict[int, dict[str, Any]] = {}
    for item in listing["bulletins"]:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            problems.append("bulletins: an item of record/bulletins has no integer index")
            continue
        if index in listed:
            problems.append(f"bulletin {index}: listed twice in record/bulletins")
        listed[index] = item
    meter = Progress("bulletins", len(listed), stream=sys.stderr) if progress and listed else None
    log_keys = [k for k in keys if k.key_type == ED25519]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        checked = pool.map(lambda i: _check_one(client, ledger, i, listed[i], log_keys), sorted(listed))
        for done, found in enumerate(checked, start=1):
            problems.extend(found)
            if meter:
                meter.update(done)
    for index in sorted(ledger.bulletins.keys() - listed.keys()):
        problems.append(f"bulletin {index}: in the log but not listed in record/bulletins")
    return problems


def _check_one(
    client: Client, ledger: Ledger, index: int, item: dict[str, Any], keys: Sequence[PublicKey]
) -> list[str]:
    found = ledger.bulletins.get(index)
    if found is None:
        return [f"bulletin {index}: listed, but the log entry at {index} is no bulletin"]
    bulletin, entry = found
    problems = []
    described = (item.get("commune_id"), item.get("channel"), item.get("table_code") or "-", item.get("version"))
    if described != (bulletin.commune, bulletin.channel, bulletin.table, bulletin.version):
        problems.append(f"bulletin {index}: record/bulletins describes it as {described}, the log entry differs")
    response = client.get(f"record/bulletins/{index}")
    if response.status != 200:
        return [*problems, f"bulletin {index}: signed note not served ({response.status})"]
    try:
        text, lines = split_note(response.text())
    except (NoteError, UsageError) as exc:
        return [*problems, f"bulletin {index}: not a signed note ({exc})"]
    if not any(verify_line(text, key, line) is not None for line in lines for key in keys):
        problems.append(f"bulletin {index}: no valid signature by a log key")
    if text.encode() != entry:
        problems.append(f"bulletin {index}: signed note differs from log entry")
    return problems
