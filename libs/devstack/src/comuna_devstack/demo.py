"""The thin consultation cycle, driven through the public REST APIs only.

territory -> consultation -> candidates -> residents sign up to vote online -> voter roll frozen
and loaded -> ballots (online, electronic and paper tables, an offline table) -> certified
result -> grant -> project started -> milestones reported and verified by someone else -> tranches
disbursed -> spending recorded with receipts -> project completed, and a resident's observation
answered in public. Returns a summary; raises StepFailed on any unexpected answer.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from comuna_devstack import demo_funding, demo_projects, record_check
from comuna_devstack.client import PlatformClient, StepFailed, items
from comuna_devstack.demo_offline import OFFLINE_VOTERS, OfflineTable
from comuna_devstack.residents import Account, KeycloakUsers, Progress, RealmAdmin, notice, sign_up
from comuna_devstack.seed import (
    COMMUNES,
    MUNICIPALITY,
    TABLE_OFFICERS,
    DemoResident,
    demo_residents,
    seed_residents,
    staff_username,
)

CANDIDATES = [
    "Rehabilitación del ambulatorio",
    "Sistema de agua potable",
    "Asfaltado de la vialidad",
    "Dotación de la escuela",
    "Alumbrado público",
]
CATEGORIES = dict(zip(CANDIDATES, ["health", "water", "roads", "education", "electricity"], strict=True))


def open_consultation(client: PlatformClient, title: str, now: datetime) -> dict[str, Any]:
    """Open a consultation under the first quarter code not yet taken (the demo may run often)."""
    year = now.year
    while True:
        for quarter in range(1, 5):
            code = f"{year}-Q{quarter}"
            response = client.http.post(
                f"{client.urls['consultations']}/v1/consultations",
                headers=client.auth("operator"),
                json={
                    "code": code,
                    "title": f"{title} {code}",
                    # The published calendar of a cycle; the demo brings voting day forward
                    # with `:amend-schedule` (open_voting) instead of waiting two weeks.
                    "assemblies_open_at": (now - timedelta(minutes=1)).isoformat(),
                    "candidates_close_at": (now + timedelta(days=10)).isoformat(),
                    "roll_cutoff_at": (now + timedelta(days=12)).isoformat(),
                    "voting_opens_at": (now + timedelta(days=14)).isoformat(),
                    "voting_closes_at": (now + timedelta(days=14, hours=12)).isoformat(),
                    "certification_opens_at": (now + timedelta(days=15)).isoformat(),
                    # What the national fund and its co-funders announce per commune (25,000 USD).
                    "funds_per_commune": 2_500_000,
                },
            )
            if response.status_code == 201:
                return dict(response.json())
            if response.status_code != 409:
                raise StepFailed(f"opening consultation {code}: {response.status_code} {response.text[:300]}")
        year += 1


# Far enough ahead that the amendment reaches the server before the dates it sets have passed.
_LEAD = timedelta(seconds=2)


def _amend(client: PlatformClient, consultation_id: str, reason: str, **dates: datetime) -> None:
    body: dict[str, Any] = {"reason": reason, **{name: when.isoformat() for name, when in dates.items()}}
    client.call(
        "POST", "consultations", f"/v1/consultations/{consultation_id}:amend-schedule", as_user="operator", json=body
    )


def _until_phase(client: PlatformClient, consultation_id: str, phase: str) -> None:
    path = f"/v1/consultations/{consultation_id}"
    client.wait_for(f"phase {phase}", lambda: client.call("GET", "consultations", path)["phase"] == phase, timeout=30)


def open_voting(client: PlatformClient, consultation_id: str) -> None:
    """Close registration and open voting a moment from now (a recorded amendment), then wait
    until the server's clock is inside the voting window."""
    now = datetime.now(UTC)
    _amend(
        client,
        consultation_id,
        "demo: voting day brought forward",
        candidates_close_at=now + _LEAD,
        roll_cutoff_at=now + _LEAD,
        voting_opens_at=now + 2 * _LEAD,
    )
    _until_phase(client, consultation_id, "voting")


def close_voting(client: PlatformClient, consultation_id: str) -> None:
    """Close voting and open certification a moment from now, then wait for certification."""
    now = datetime.now(UTC)
    _amend(
        client,
        consultation_id,
        "demo: voting closed early",
        voting_closes_at=now + _LEAD,
        certification_opens_at=now + _LEAD,
    )
    _until_phase(client, consultation_id, "certification")


# Each commune's voting centre has an electronic table and a paper one (see `lay_out_tables`).
TABLE_KINDS = ("electronic", "paper")


def table_code(commune_code: str, kind: str = "electronic") -> str:
    """The demo's table of `kind` in a commune: `T-C001` (electronic), `P-C001` (paper)."""
    return f"{'P' if kind == 'paper' else 'T'}-{commune_code.rsplit('.', 1)[-1]}"


def lay_out_tables(
    client: PlatformClient,
    consultation_id: str,
    communes: list[dict[str, Any]],
    kinds: tuple[str, ...] = TABLE_KINDS,
) -> None:
    """The operator imports one voting centre per commune with an electronic and a paper table
    (idempotent: importing the same rows again changes nothing). Before voting opens only."""
    rows = [
        {
            "centre_code": f"CV-{commune['code'].rsplit('.', 1)[-1]}",
            "centre_name": f"Centro de votación {commune.get('name', commune['code'])}",
            "address": "",
            "commune_code": commune["code"],
            "table_code": table_code(commune["code"], kind),
            "table_kind": kind,
        }
        for commune in communes
        for kind in kinds
    ]
    client.call(
        "POST",
        "consultations",
        f"/v1/consultations/{consultation_id}/voting-centres:import",
        as_user="operator",
        json=rows,
    )


def grant_tables(
    client: PlatformClient,
    consultation_id: str,
    officer: str,
    communes: list[dict[str, Any]],
    kinds: tuple[str, ...] = ("electronic",),
) -> None:
    """The operator lays out the communes' tables (if not yet) and makes `officer` the officer of
    the table of each kind in each commune of this consultation."""
    lay_out_tables(client, consultation_id, communes, kinds)
    subject = client.subject(officer)
    for commune in communes:
        for kind in kinds:
            client.call(
                "POST",
                "identity",
                "/v1/role-assignments",
                as_user="operator",
                expect=(201, 409),
                json={
                    "subject": subject,
                    "role": "table_officer",
                    "territory_code": commune["code"],
                    "consultation_id": consultation_id,
                    "table_code": table_code(commune["code"], kind),
                },
            )


def freeze_roll(client: PlatformClient, consultation_id: str, timeout: float = 600.0) -> dict[str, Any]:
    """The operator freezes the voter roll (cut-off today); wait until consultations has pulled
    it from identity and verified its count and digest."""
    base = f"/v1/consultations/{consultation_id}"
    client.call("POST", "consultations", f"{base}/roll:freeze", as_user="operator", json={}, expect=202)

    def verified() -> dict[str, Any] | None:
        state: dict[str, Any] = client.call("GET", "consultations", f"{base}/roll")
        if state["status"] == "refused":
            raise StepFailed(f"the voter roll was refused: {state['error']}")
        return state if state["status"] == "verified" else None

    return dict(client.wait_for("the voter roll loaded and verified", verified, timeout=timeout))


def _local(commune_code: str) -> str:
    return commune_code.rsplit(".", 1)[-1]


# Of the residents who would vote at an electronic table, every ONLINE_EVERY-th votes online instead
# (ten of the demo census, in each commune): few, so the registrar's rate limit on links costs little.
ONLINE_EVERY = 6


def online_voters(offline_voters: list[DemoResident]) -> list[tuple[int, DemoResident]]:
    """(index in `demo_residents()`, resident) of the adults who vote online: not on paper (every
    fourth), not at the offline table."""
    table = [
        (index, r)
        for index, r in enumerate(demo_residents())
        if index % 4 != 3 and r not in offline_voters and r.birth_date.year < 2000
    ]
    return table[1::ONLINE_EVERY]


def resident_account(realm: str, index: int) -> Account:
    """The demo resident's Keycloak account, `resident-<index in demo_residents()>`: no document
    number in a username."""
    return Account.new(realm, f"resident-{index}", first_name="Residente", last_name=f"Demo {index}")


def run_demo(
    client: PlatformClient,
    passwords: dict[str, str],
    *,
    keycloak: RealmAdmin,
    seed_rng: int = 7,
    before_ballots: Callable[[], None] | None = None,
    after_ballots: Callable[[], None] | None = None,
    progress: Progress | None = notice,
    record_state: Path | None = None,
    witness: record_check.Witness | None = None,
    treasury_target: str | None = None,
) -> dict[str, Any]:
    """The whole cycle, each step by the staff member identity lets do it, with Keycloak tokens.
    `keycloak` creates the accounts of the residents who vote online (`residents.sign_up`).
    `before_ballots` / `after_ballots` run around the ballots (the e2e test counts identity's
    gRPC calls there). It ends by checking the public record as an outsider would: `witness`
    cosigns its checkpoint, then `comuna-verify` checks all of it (`record_state`: where both
    keep the checkpoints they saw; none: a temporary directory). With `treasury_target` (the
    dev stack's reference state treasury) the consultation is co-funded (`demo_funding`) and the
    demo ends with `comuna-verify ledger` too; without it the built-in national grant funds
    each winner."""
    staff = ["operator", "registrar", "auditor", *TABLE_OFFICERS]
    for local, _, _ in COMMUNES:
        staff += [staff_username("spokesperson", local), staff_username("overseer", local)]
    for user in staff:
        client.login(user, passwords[user])
    officer = TABLE_OFFICERS[0]
    seed_residents(client, "registrar")
    rng = random.Random(seed_rng)
    communes = items(client.call("GET", "identity", "/v1/territories", params={"parent_code": MUNICIPALITY}))

    consultation = open_consultation(client, "Consulta Popular Nacional", datetime.now(UTC))
    cid, code = consultation["id"], consultation["code"]
    base = f"/v1/consultations/{cid}"

    candidates: dict[str, list[str]] = {}
    for commune in communes:
        count = rng.randint(2, 4)
        candidates[commune["code"]] = [
            client.call(
                "POST",
                "consultations",
                f"{base}/communes/{commune['id']}/candidates",
                as_user=staff_username("spokesperson", _local(commune["code"])),
                expect=201,
                json={
                    "title": title,
                    "description": f"Priorizado por la asamblea de {commune['name']}",
                    "assembly_priority": priority,
                    "category": CATEGORIES[title],
                    # 5,000 to 25,000 USD: the national grant (10,000) leaves some to co-fund.
                    "estimated_cost": rng.randrange(500_000, 2_500_000, 5_000),
                },
            )["id"]
            for priority, title in enumerate(rng.sample(CANDIDATES, count), start=1)
        ]
    cofunding = None if treasury_target is None else demo_funding.declare(client, cid, treasury_target)
    # officer-1 serves each commune's electronic and paper tables, officer-2 the paper ones (a
    # paper table's tally sheet needs a second officer of the same table to confirm it).
    grant_tables(client, cid, officer, communes, kinds=TABLE_KINDS)
    grant_tables(client, cid, TABLE_OFFICERS[1], communes, kinds=("paper",))
    # One offline table (the first commune's) votes without the network and syncs after the close.
    offline = OfflineTable(client, consultation, communes[0]["code"], officer)
    offline.lay_out()
    offline_voters = [
        r for r in demo_residents() if r.commune_code == offline.commune_code and r.birth_date.year < 2000
    ][-OFFLINE_VOTERS:]
    # Residents who vote online sign up (an account, linked by the registrar) before the roll is
    # frozen: the frozen roll carries each linked resident's login key.
    online = [(resident, resident_account(keycloak.realm, index)) for index, resident in online_voters(offline_voters)]
    with KeycloakUsers(keycloak) as users:
        linked = sign_up(client, users, "registrar", [(r.national_id, a) for r, a in online], progress=progress)
    roll = freeze_roll(client, cid)
    open_voting(client, cid)
    if before_ballots is not None:
        before_ballots()

    commune_ids = {c["code"]: c["id"] for c in communes}
    accepted = refused_double = refused_ineligible = 0
    cast: Counter[str] = Counter()
    voted_here: list[Any] = []
    paper = PaperTables(client, base, {c["code"]: c["id"] for c in communes}, candidates, progress)
    online_accounts = dict(online)
    online_choices: list[tuple[DemoResident, Account, str]] = []
    for index, resident in enumerate(demo_residents()):
        if resident in offline_voters:
            continue
        choice = rng.choice(candidates[resident.commune_code])
        if resident in online_accounts:
            online_choices.append((resident, online_accounts[resident], choice))
            continue
        if index % 4 == 3:
            # Every fourth resident votes on paper: checked in by the officer, counted at close.
            if paper.check_in(officer, resident.commune_code, resident.national_id, choice):
                cast[choice] += 1
            continue
        body = {
            "commune_id": commune_ids[resident.commune_code],
            "candidate_id": choice,
            "national_id": resident.national_id,
            "channel": "table",
            "table_code": table_code(resident.commune_code),
        }
        status = _vote(client, base, body, officer)
        if status == 201:
            accepted += 1
            cast[choice] += 1
            voted_here.append(resident)
            # Every fifth voter tries again: the platform must refuse the second ballot (a table
            # says only "may not vote", whatever the reason).
            if accepted % 5 == 0 and _vote(client, base, body, officer) == 403:
                refused_double += 1
        elif status == 403:
            refused_ineligible += 1
    online_summary = vote_online(client, base, commune_ids, online_choices, officer)
    cast.update(choice for _, _, choice in online_choices)
    # The offline table's voters, and one who already voted at the electronic table (a conflict).
    double = next(r for r in voted_here if r.commune_code == offline.commune_code)
    cast += offline.vote(offline_voters, double, candidates[offline.commune_code], rng)

    if after_ballots is not None:
        after_ballots()
    close_voting(client, cid)
    offline_summary = offline.sync_late()
    paper_summary = paper.submit_and_confirm(officer, TABLE_OFFICERS[1])
    certify(client, base)
    results = client.call("GET", "consultations", f"{base}/results")

    winners = [c for c in results["communes"] if c.get("winner_candidate_id")]
    for commune in results["communes"]:
        for candidate in commune["candidates"]:
            if candidate["votes"] != cast[candidate["candidate_id"]]:
                raise StepFailed(f"certified count differs from ballots cast for {candidate['candidate_id']}")

    if cofunding is not None:
        plan, allocations = demo_funding.wait_funded(client, cid)
        cofunding["unfunded_minor"] = sum(p["unfunded_minor"] or 0 for p in plan["projects"])
    else:
        allocations = client.wait_for(
            "one allocation per winner",
            lambda: _complete(
                items(client.call("GET", "funding", "/v1/allocations", params={"consultation_id": cid})), len(winners)
            ),
        )
    projects = client.wait_for(
        "one project per allocation",
        lambda: _complete(
            items(client.call("GET", "projects", "/v1/projects", params={"consultation_id": cid})), len(allocations)
        ),
    )

    # Residents who voted online have accounts: one of them reports on a project of their commune.
    signed_in = {r.commune_code: a.username for r, a in online}
    watched = next(((p, signed_in[p["commune_code"]]) for p in projects if p["commune_code"] in signed_in), None)
    execution = demo_projects.execute(client, projects, watched=watched)
    projects = client.wait_for(
        "every project completed",
        lambda: _complete(
            [
                p
                for p in items(client.call("GET", "projects", "/v1/projects", params={"consultation_id": cid}))
                if p["status"] == "completed"
            ],
            len(allocations),
        ),
    )

    totals = items(client.call("GET", "funding", "/v1/ledger/totals"))
    record = _check_record(client, cid, record_state, witness, progress)
    ledger_check = None if cofunding is None else demo_funding.verify_ledger(client, progress)
    summary = {
        "consultation": {
            "id": cid,
            "code": code,
            "ballots_accepted": accepted,
            "double_votes_refused": refused_double,
            "ineligible_refused": refused_ineligible,
            "online": {"voters": len(online), "linked_now": linked.linked, "already_linked": linked.already}
            | online_summary,
            "roll": {"entries": roll["expected_count"], "digest": roll["digest"]},
        },
        "offline_table": offline_summary,
        "paper_tables": paper_summary,
        "communes": len(communes),
        "winners": [
            {
                "commune": c["commune_code"],
                "winner": _title(c),
                "votes": c["candidates"][0]["votes"],
                "ballots": c["ballots"],
            }
            for c in winners
        ],
        "allocations": [
            {
                "commune": a["commune_code"],
                "project": a["title"],
                "amount_minor": a["amount_minor"],
                "currency": a["currency"],
                "source": a["funding_source"],
            }
            for a in allocations
        ],
        "projects": [
            {
                "id": p["id"],
                "commune": p["commune_code"],
                "title": p["title"],
                "budget_minor": p["budget_minor"],
                "status": p["status"],
            }
            for p in projects
        ],
        "disbursed_minor": sum(p["disbursed_minor"] for p in projects),
        "spent_minor": sum(p["spent_minor"] for p in projects),
        "execution": execution,
        "open_data": demo_projects.open_data(client, cid),
        "ledger": totals,
        "ledger_balanced": all(t["debits_minor"] == t["credits_minor"] for t in totals),
        "record": record,
        "cofunding": cofunding,
        "ledger_verified": None if ledger_check is None else ledger_check.get("ok", False),
    }
    _check(summary, winners)
    return summary


def _check_record(
    client: PlatformClient,
    consultation_id: str,
    state: Path | None,
    witness: record_check.Witness | None,
    progress: Progress | None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="comuna-record-") as scratch:
        where = state or Path(scratch)
        size = record_check.wait_for_final_checkpoint(client, record_check.record_url(client, consultation_id))
        if progress is not None:
            progress(f"record: checkpoint of {size} entries; checking it")
        if witness is not None:
            record_check.cosign(client, consultation_id, witness, where / "witness", progress)
        verified = record_check.verify(client, consultation_id, where / "verify", witness=witness, progress=progress)
    return {
        "verified": verified.get("ok", False),
        "log_size": verified.get("log", {}).get("size"),
        "communes": verified.get("communes"),
        "ballots": verified.get("ballots"),
        "cosigners": verified.get("cosigners", []),
    }


def vote_online(
    client: PlatformClient,
    base: str,
    commune_ids: dict[str, str],
    voters: list[tuple[DemoResident, Account, str]],
    officer: str,
) -> dict[str, int]:
    """Each resident signs in and casts one online ballot with their own token, all at once (a
    group commit gathers them). Then the first tries a second online ballot (409 `already_voted`)
    and the second is brought to their commune's electronic table (refused: one person, one vote
    across channels). Each receipt is checked. StepFailed on anything else."""

    def cast(voter: tuple[DemoResident, Account, str]) -> str:
        resident, account, choice = voter
        client.login(account.username, account.password)
        body = {"commune_id": commune_ids[resident.commune_code], "candidate_id": choice, "channel": "online"}
        answer = client.call(
            "POST", "consultations", f"{base}/ballots", as_user=account.username, json=body, expect=(201, 403, 409)
        )
        if "receipt" not in answer:
            raise StepFailed(f"online ballot of {account.username}: {answer.get('code')} ({answer.get('detail')})")
        return str(answer["receipt"])

    with ThreadPoolExecutor(max(1, len(voters))) as pool:
        receipts = list(pool.map(cast, voters))
    recorded = sum(
        client.call("GET", "consultations", f"{base}/receipts/{receipt}")["recorded"] is True for receipt in receipts
    )

    (first, first_account, choice), (second, _, second_choice) = voters[0], voters[1]
    again = client.call(
        "POST",
        "consultations",
        f"{base}/ballots",
        as_user=first_account.username,
        json={"commune_id": commune_ids[first.commune_code], "candidate_id": choice, "channel": "online"},
        expect=(201, 409),
    )
    if again.get("code") != "already_voted":
        raise StepFailed(f"a second online ballot of {first_account.username} was not refused: {again}")
    at_table = {
        "commune_id": commune_ids[second.commune_code],
        "candidate_id": second_choice,
        "national_id": second.national_id,
        "channel": "table",
        "table_code": table_code(second.commune_code),
    }
    if _vote(client, base, at_table, officer) != 403:
        raise StepFailed("a resident who voted online was let vote again at a table")
    return {
        "ballots_accepted": len(receipts),
        "receipts_recorded": recorded,
        "double_votes_refused": 1,
        "refused_at_table_after_online": 1,
    }


def certify(client: PlatformClient, base: str) -> None:
    """Certify every commune; a commune whose conflicts could change its winner gets the
    auditor's recorded decision first, then is certified on its own."""
    run = client.call("POST", "consultations", f"{base}:certify", as_user="operator")
    for blocked in run["blocked_communes"]:
        if blocked["code"] != "conflict_decision_required":
            raise StepFailed(f"commune {blocked['commune_code']} cannot be certified: {blocked['detail']}")
        commune = f"{base}/communes/{blocked['commune_id']}"
        reason = "demo: the offline table's double check-in was reviewed; the result stands"
        client.call(
            "POST",
            "consultations",
            f"{commune}/conflict-decision",
            as_user="auditor",
            json={"reason": reason},
            expect=201,
        )
        client.call("POST", "consultations", f"{commune}:certify", as_user="operator", expect=201)


class PaperTables:
    """Each commune's paper table: check-ins during voting, then the tally sheet at close,
    submitted by one officer and confirmed by a second officer of the same table."""

    def __init__(
        self,
        client: PlatformClient,
        base: str,
        commune_ids: dict[str, str],
        candidates: dict[str, list[str]],
        progress: Progress | None = None,
    ) -> None:
        self.client, self.base, self.commune_ids, self.candidates = client, base, commune_ids, candidates
        self.progress = progress
        self.votes: dict[str, Counter[str]] = {code: Counter() for code in commune_ids}

    def check_in(self, officer: str, commune_code: str, national_id: str, choice: str) -> bool:
        """True if checked in (the person then marks `choice` on a paper ballot). An officer's
        check-ins are rate-limited (`TABLE_CHECK_INS`, counted across demo runs by the running
        service): on 429 the officer waits `Retry-After` and checks the person in then."""
        path = f"{self.base}/tables/{table_code(commune_code, 'paper')}/check-ins"
        while True:
            response = self.client.http.post(
                f"{self.client.urls['consultations']}{path}",
                json={"national_id": national_id},
                headers=self.client.auth(officer),
            )
            if response.status_code != 429:
                break
            wait = float(response.headers.get("Retry-After") or 1)
            if self.progress is not None:
                self.progress(f"{officer}: paper check-ins rate-limited, waiting {wait:.0f} s (Retry-After)")
            time.sleep(wait)
        if response.status_code not in (201, 403, 409):
            raise StepFailed(f"paper check-in: unexpected {response.status_code} {response.text[:300]}")
        if response.status_code == 201:
            self.votes[commune_code][choice] += 1
        return response.status_code == 201

    def submit_and_confirm(self, officer: str, second: str) -> list[dict[str, Any]]:
        sheets = []
        for code, votes in self.votes.items():
            path = f"{self.base}/tables/{table_code(code, 'paper')}/tally-sheet"
            checked_in = sum(votes.values())
            scan = hashlib.sha256(f"acta de escrutinio {code}".encode()).hexdigest()
            body = {
                "votes": [{"candidate_id": c, "votes": votes[c]} for c in self.candidates[code]],
                "blank": 0,
                "null": 0,
                "checked_in": checked_in,
                "scan_sha256": scan,
            }
            sheet = self.client.call("POST", "consultations", path, as_user=officer, json=body, expect=201)
            self.client.call("POST", "consultations", f"{path}:confirm", as_user=second, json={"sheet_id": sheet["id"]})
            sheets.append({"table": table_code(code, "paper"), "checked_in": checked_in})
        return sheets


def _vote(client: PlatformClient, base: str, body: dict[str, Any], officer: str) -> int:
    response = client.http.post(
        f"{client.urls['consultations']}{base}/ballots", json=body, headers=client.auth(officer)
    )
    if response.status_code not in (201, 403, 409):
        raise StepFailed(f"ballot: unexpected {response.status_code} {response.text[:300]}")
    return response.status_code


def _complete(rows: list[Any], expected: int) -> list[Any] | None:
    return rows if len(rows) >= expected > 0 else None


def _title(commune_result: dict[str, Any]) -> str:
    winner = commune_result["winner_candidate_id"]
    return str(next(c["title"] for c in commune_result["candidates"] if c["candidate_id"] == winner))


def _check(summary: dict[str, Any], winners: list[Any]) -> None:
    if summary["cofunding"] is None:
        if len(summary["allocations"]) != len(winners) or len(summary["projects"]) != len(winners):
            raise StepFailed("expected one allocation and one project per winner")
        if len({a["amount_minor"] for a in summary["allocations"]}) != 1:
            raise StepFailed("allocations differ from the grant")
    else:
        if len(summary["projects"]) != len(summary["allocations"]):
            raise StepFailed("expected one project per allocation")
        if {a["source"] for a in summary["allocations"]} != {"national", *summary["cofunding"]["funders"]}:
            raise StepFailed(f"not every funder funded: {summary['allocations']}")
        if summary["ledger_verified"] is not True:
            raise StepFailed("comuna-verify ledger did not verify the ledger's journal")
    if not summary["ledger_balanced"]:
        raise StepFailed("ledger is not balanced")
    if summary["disbursed_minor"] != sum(a["amount_minor"] for a in summary["allocations"]):
        raise StepFailed("disbursed amount differs from the allocations")
    online = summary["consultation"]["online"]
    if not online["voters"] == online["ballots_accepted"] == online["receipts_recorded"]:
        raise StepFailed(f"not every resident who signed up voted online once with a recorded receipt: {online}")
