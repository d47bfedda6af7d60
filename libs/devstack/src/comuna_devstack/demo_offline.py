"""The demo's offline table: one commune's `O-<commune>` table runs `comuna-table` without the
network during voting and syncs late, after the close, before certification.

Laid out with the commune's other tables (before voting opens), then, at the end of the voting
step, the device downloads its signed snapshot, checks in the residents kept for it (plus one
who already voted at the electronic table: a conflict the sync flags, never drops) and records
their ballots; `sync_late` sends them once voting has closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from comuna_devstack.client import PlatformClient, StepFailed
from comuna_devstack.seed import DemoResident
from comuna_table import cli as table_cli

# Residents of the offline table's commune who vote there instead of at its electronic table.
OFFLINE_VOTERS = 6


def offline_table_code(commune_code: str) -> str:
    return f"O-{commune_code.rsplit('.', 1)[-1]}"


class OfflineTable:
    def __init__(self, client: PlatformClient, consultation: dict[str, Any], commune_code: str, officer: str) -> None:
        self.client = client
        self.consultation = consultation
        self.commune_code = commune_code
        self.officer = officer
        self.code = offline_table_code(commune_code)
        self.directory = Path(".devstack") / "offline-tables" / f"{consultation['code']}-{uuid.uuid4().hex[:8]}"
        self.db = self.directory / f"{self.code}.sqlite"
        self.checked_in = 0
        self.ballots = 0
        # The demo's schedule puts voting two weeks ahead (steps are explicit operator actions), so
        # the device's clock is set inside the published window, and after it to sync late.
        self.during = datetime.fromisoformat(consultation["voting_opens_at"]) + timedelta(minutes=5)
        self.after = datetime.fromisoformat(consultation["voting_closes_at"]) + timedelta(minutes=5)

    def lay_out(self) -> None:
        """Before voting opens: the table in the commune's centre, and its officer."""
        local = self.commune_code.rsplit(".", 1)[-1]
        self.client.call(
            "POST",
            "consultations",
            f"/v1/consultations/{self.consultation['id']}/voting-centres:import",
            as_user="operator",
            json=[
                {
                    # A centre of its own (a rural school without connectivity), beside the commune's CV-<commune>.
                    "centre_code": f"CO-{local}",
                    "centre_name": f"Escuela rural {local} (sin conexión)",
                    "address": "",
                    "commune_code": self.commune_code,
                    "table_code": self.code,
                    "table_kind": "offline",
                }
            ],
        )
        self.client.call(
            "POST",
            "identity",
            "/v1/role-assignments",
            as_user="operator",
            expect=(201, 409),
            json={
                "subject": self.client.subject(self.officer),
                "role": "table_officer",
                "territory_code": self.commune_code,
                "consultation_id": self.consultation["id"],
                "table_code": self.code,
            },
        )

    def vote(
        self, voters: list[DemoResident], double: DemoResident, candidates: list[str], rng: random.Random
    ) -> Counter[str]:
        """Download, then check in and record each voter's ballot with no connectivity; `double`
        already voted at the electronic table. Returns the ballots recorded per candidate."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._run(
            "download",
            "--server",
            self.client.urls["consultations"],
            "--consultation",
            self.consultation["id"],
            "--table",
            self.code,
            now=self.during,
        )
        cast: Counter[str] = Counter()
        for resident in [*voters, double]:
            self._run("check-in", resident.national_id, now=self.during)
            choice = rng.choice(candidates)
            self._run("vote", "--candidate", choice, now=self.during)
            cast[choice] += 1
        self.checked_in = self.ballots = len(voters) + 1
        return cast

    def sync_late(self) -> dict[str, Any]:
        """After the close: send everything; a second sync sends nothing again."""
        first = self._run("sync", now=self.after)
        again = self._run("sync", now=self.after)
        if again["batches_sent_now"] != 0:
            raise StepFailed(f"offline table {self.code}: a second sync sent batches again")
        sent = first["sent"]
        return {
            "table": self.code,
            "commune": self.commune_code,
            "checked_in": sum(b["checkins"] for b in sent),
            "ballots": sum(b["ballots"] for b in sent),
            "batches": len(sent),
        }

    def _run(self, *argv: str, now: datetime) -> dict[str, Any]:
        token = self.client.auth(self.officer)["Authorization"].removeprefix("Bearer ")
        options = ["--token", token] if argv[0] in ("download", "sync") else []
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = asyncio.run(table_cli.run(["--db", str(self.db), *argv, *options], now=now))
        if code != 0:
            raise StepFailed(f"comuna-table {argv[0]} at {self.code} exited {code}: {err.getvalue().strip()}")
        result: dict[str, Any] = json.loads(out.getvalue())
        return result
