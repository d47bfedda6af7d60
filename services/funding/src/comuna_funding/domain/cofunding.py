"""Co-funding: funders, the rules a consultation declares, the plan they give for its certified
results, and the allocations that commit each funder's money to each funded project
(docs/ledger.md, "Funders" and "Co-funding").

Money flow per allocation, by funder kind:

    national  source:national:<CUR>  --grant_commitment (single)-->   allocation:<id>
    pledge    source:<funder>:<CUR>  --grant_commitment (single)-->   allocation:<id>
              (the source may not pay out more than was pledged: a flagged account)
    remote    source:<funder>:<CUR>  --grant_commitment (pending)-->  allocation:<id>
              (posted once the funder's own system confirms: `commitments.SourceCommitments`)

A pledge funder's money enters through its pledges and deposits:

    pledge:<funder>:<CUR>    --pledge_recorded-->  source:<funder>:<CUR>   what an official pledged
    treasury:<funder>:<CUR>  --pledge_deposit-->   pledge:<funder>:<CUR>   deposits, at most the pledges

The plan is applied once, when the whole consultation is certified (every commune's first
version is in): caps are consumed in commune-code order, so the plan is reproducible by anyone
from the published results and rules. A recount after that re-plans with the newest versions and
changes only the difference: each allocation that changes is reversed (its money moved back to
its funder) and the new one created as the next generation; nothing is edited.

Territories are identified by code (identity's register); the pure planner works on ids, so a
code maps to a fixed UUID (`territory_key`), and a commune is known by its own id as well.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.domain import commitments, funding_plan, ids, ledger, postings, rules
from comuna_funding.domain.funding_plan import CertifiedCommune, FundingPlan, PlannedAllocation, RankedCandidate
from comuna_funding.domain.ledger import AccountSpec, NewTransfer, TransferOutcome
from comuna_funding.storage import cofunding_store, ledger_store
from comuna_funding.storage.models import Allocation, Funder
from comuna_funding.vocabulary import AccountKind, AllocationStatus, FunderKind, TransferCode, TransferKind
from comuna_platform.auth.access import Lineage
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, Unavailable
from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)

FUNDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
ENDPOINT = re.compile(r"^[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}$")
TERRITORY_NAMESPACE = uuid.UUID("6f1d2c3b-7a4e-4b8f-9c0d-1e2f3a4b5c6d")


def territory_key(code: str) -> uuid.UUID:
    return uuid.uuid5(TERRITORY_NAMESPACE, code)


# --- accounts ---------------------------------------------------------------------------------


def source_spec(funder: Funder) -> AccountSpec:
    """Where a funder's money enters: a pledge funder's may not pay out more than was pledged."""
    return AccountSpec(
        key=f"source:{funder.name}:{funder.currency}",
        currency=funder.currency,
        kind=AccountKind.SOURCE,
        debits_must_not_exceed_credits=funder.kind == FunderKind.PLEDGE,
    )


def pledge_spec(funder: Funder) -> AccountSpec:
    """What the funder pledged (debits) and deposited (credits): deposits at most the pledges."""
    return AccountSpec(
        key=f"pledge:{funder.name}:{funder.currency}",
        currency=funder.currency,
        kind=AccountKind.SOURCE,
        credits_must_not_exceed_debits=True,
    )


def treasury_spec(funder: Funder) -> AccountSpec:
    """The funder's own treasury, where deposits come from (outside the ledger: no limit)."""
    return AccountSpec(
        key=f"treasury:{funder.name}:{funder.currency}", currency=funder.currency, kind=AccountKind.SOURCE
    )


def commitment_spec(allocation_id: uuid.UUID, currency: str) -> AccountSpec:
    return AccountSpec(
        key=f"allocation:{allocation_id}",
        currency=currency,
        kind=AccountKind.COMMITMENT,
        debits_must_not_exceed_credits=True,
    )


def funder_accounts(funder: Funder) -> list[AccountSpec]:
    if funder.kind == FunderKind.PLEDGE:
        return [source_spec(funder), pledge_spec(funder), treasury_spec(funder)]
    return [source_spec(funder)]


# --- territories ------------------------------------------------------------------------------


async def lineage_of(lineages: TerritoryLineages, code: str, what: str) -> Lineage:
    try:
        return await lineages.of(code)
    except NotFound as exc:
        raise InvalidInput(f"{what}: territory {code} does not exist", code="territory_unknown") from exc


async def territory_tree(
    lineages: TerritoryLineages, codes: Iterable[str], communes: Iterable[tuple[uuid.UUID, str]] = ()
) -> rules.TerritoryTree:
    """The containment of the given territories (by `territory_key`) and communes (by id)."""
    chains: dict[uuid.UUID, list[uuid.UUID]] = {}

    def add(lineage: Lineage) -> None:
        for depth, code in enumerate(lineage.codes):
            chains.setdefault(territory_key(code), [territory_key(c) for c in lineage.codes[:depth]])

    for code in sorted(set(codes)):
        add(await lineage_of(lineages, code, "territory"))
    for commune_id, code in communes:
        lineage = await lineage_of(lineages, code, f"commune {commune_id}")
        add(lineage)
        # A commune is its own id to the planner, and its code's key lies on its chain.
        chains[commune_id] = [territory_key(c) for c in lineage.codes]
    return rules.TerritoryTree(chains)


# --- funders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunderSpec:
    name: str
    display_name: str
    kind: FunderKind
    currency: str
    territory_code: str
    endpoint: str | None = None
    credentials_ref: str | None = None
    tls: bool = False
    deadline_ms: int = 5000


def _check_funder(spec: FunderSpec, known_credentials: frozenset[str]) -> None:
    if not FUNDER_NAME.match(spec.name):
        raise InvalidInput(
            "a funder's name is a lower_snake_case word of at most 32 characters", code="funder_name_invalid"
        )
    if not postings.CURRENCY.match(spec.currency):
        raise InvalidInput(f"{spec.currency!r} is not an ISO 4217 code", code="currency_invalid")
    if spec.kind == FunderKind.NATIONAL:
        raise InvalidInput(
            "the national fund is built in; register remote or pledge funders", code="funder_kind_reserved"
        )
    if spec.kind == FunderKind.REMOTE:
        if spec.endpoint is None or not ENDPOINT.match(spec.endpoint):
            raise InvalidInput("a remote funder needs an endpoint host:port", code="funder_endpoint_invalid")
        if spec.credentials_ref is None or spec.credentials_ref not in known_credentials:
            raise InvalidInput(
                "a remote funder names credentials this deployment holds (COMUNA_FUNDING_SOURCE_CREDENTIALS); "
                "add them to the Secret first",
                code="credentials_unknown",
            )
    elif spec.endpoint is not None or spec.credentials_ref is not None:
        raise InvalidInput("only a remote funder has an endpoint and credentials", code="funder_endpoint_invalid")
    if not 100 <= spec.deadline_ms <= 600_000:
        raise InvalidInput("deadline_ms must be 100 to 600000", code="funder_deadline_invalid")


def _same_funder(spec: FunderSpec, row: Funder) -> bool:
    return (
        spec.display_name,
        spec.kind.value,
        spec.currency,
        spec.territory_code,
        spec.endpoint,
        spec.credentials_ref,
        spec.tls,
        spec.deadline_ms,
    ) == (
        row.display_name,
        row.kind,
        row.currency,
        row.territory_code,
        row.endpoint,
        row.credentials_ref,
        row.tls,
        row.deadline_ms,
    )


async def register_funder(
    session: AsyncSession, lineages: TerritoryLineages, spec: FunderSpec, known_credentials: frozenset[str]
) -> tuple[Funder, bool]:
    """Register a funder (and open its accounts); (the funder, whether it is new). The same
    registration again is a no-op; another one under a taken name is a conflict."""
    _check_funder(spec, known_credentials)
    await lineage_of(lineages, spec.territory_code, "the funder's territory")
    existing = await cofunding_store.funder(session, spec.name)
    if existing is not None:
        if not _same_funder(spec, existing):
            raise Conflict(f"funder {spec.name} is registered with other properties", code="funder_exists")
        return existing, False
    row = Funder(
        name=spec.name,
        display_name=spec.display_name,
        kind=spec.kind.value,
        currency=spec.currency,
        territory_code=spec.territory_code,
        endpoint=spec.endpoint,
        credentials_ref=spec.credentials_ref,
        tls=spec.tls,
        deadline_ms=spec.deadline_ms,
    )
    if not await cofunding_store.insert_funder_if_absent(session, row):
        raise Conflict(f"funder {spec.name} was registered concurrently", code="funder_exists")
    await ledger.ensure_accounts(session, funder_accounts(row))
    return row, True


async def ensure_national(session: AsyncSession, name: str, currency: str, territory_code: str) -> Funder:
    """The built-in national fund (from configuration)."""
    existing = await cofunding_store.funder(session, name)
    if existing is not None:
        return existing
    row = Funder(
        name=name,
        display_name="Fondo nacional",
        kind=FunderKind.NATIONAL.value,
        currency=currency,
        territory_code=territory_code,
        tls=False,
        deadline_ms=5000,
    )
    await cofunding_store.insert_funder_if_absent(session, row)
    found = await cofunding_store.funder(session, name)
    assert found is not None
    await ledger.ensure_accounts(session, funder_accounts(found))
    return found


async def require_funder(session: AsyncSession, name: str) -> Funder:
    found = await cofunding_store.funder(session, name)
    if found is None:
        raise NotFound(f"funder {name} is not registered", code="funder_not_found")
    return found


async def _pledge_move(
    session: AsyncSession, funder: Funder, transfer_id: uuid.UUID, amount: int, reference: str, *, deposit: bool
) -> TransferOutcome:
    if funder.kind != FunderKind.PLEDGE:
        raise FailedPrecondition(f"funder {funder.name} is not a pledge funder", code="funder_not_pledge")
    accounts = {s.key: s for s in funder_accounts(funder)}
    await ledger.ensure_accounts(session, list(accounts.values()))
    debit, credit = (
        (treasury_spec(funder), pledge_spec(funder)) if deposit else (pledge_spec(funder), source_spec(funder))
    )
    try:
        return await ledger.create_transfer(
            session,
            NewTransfer(
                id=transfer_id,
                debit_account_id=debit.id,
                credit_account_id=credit.id,
                amount=amount,
                currency=funder.currency,
                code="pledge_deposit" if deposit else "pledge_recorded",
                reference=reference,
            ),
        )
    except FailedPrecondition as exc:
        if exc.code == "exceeds_debits":
            raise FailedPrecondition(
                f"deposits of {funder.name} would exceed what it pledged", code="deposit_exceeds_pledges"
            ) from exc
        raise


async def record_pledge(
    session: AsyncSession, funder: Funder, transfer_id: uuid.UUID, amount: int, reference: str
) -> TransferOutcome:
    """An official's commitment of `amount`: what the funder may then commit to projects."""
    return await _pledge_move(session, funder, transfer_id, amount, reference, deposit=False)


async def record_deposit(
    session: AsyncSession, funder: Funder, transfer_id: uuid.UUID, amount: int, reference: str
) -> TransferOutcome:
    """Money the funder paid in against its pledges (never more than pledged)."""
    return await _pledge_move(session, funder, transfer_id, amount, reference, deposit=True)


# --- rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleSpec:
    funder: str
    tier: int
    ranks: frozenset[int]
    territory_code: str | None = None
    share_bp: int = rules.FULL_SHARE_BP
    per_project_cap_minor: int | None = None
    total_cap_minor: int | None = None


def _domain_funder(row: Funder) -> rules.Funder:
    return rules.Funder(name=row.name, currency=row.currency, territory_id=territory_key(row.territory_code))


def _domain_rule(spec: RuleSpec) -> rules.Rule:
    return rules.Rule(
        funder=spec.funder,
        order=spec.tier,
        ranks=spec.ranks,
        territory_id=None if spec.territory_code is None else territory_key(spec.territory_code),
        share_bp=spec.share_bp,
        per_project_cap_minor=spec.per_project_cap_minor,
        total_cap_minor=spec.total_cap_minor,
    )


async def _rule_context(
    session: AsyncSession,
    lineages: TerritoryLineages,
    specs: Sequence[RuleSpec],
    communes: Sequence[CertifiedCommune] = (),
) -> tuple[list[rules.Rule], list[rules.Funder], rules.TerritoryTree]:
    funders = await cofunding_store.funders(session, sorted({s.funder for s in specs}))
    codes = [f.territory_code for f in funders.values()] + [s.territory_code for s in specs if s.territory_code]
    tree = await territory_tree(lineages, codes, [(c.commune_id, c.commune_code) for c in communes])
    return [_domain_rule(s) for s in specs], [_domain_funder(f) for f in funders.values()], tree


async def declare_rules(
    session: AsyncSession, lineages: TerritoryLineages, consultation_id: uuid.UUID, specs: Sequence[RuleSpec]
) -> None:
    """Replace the consultation's rules, validated; refused once its plan was applied."""
    if await cofunding_store.applied(session, consultation_id):
        raise FailedPrecondition(
            "the consultation's funding plan was applied: its rules are fixed (a recount re-plans them)",
            code="rules_in_force",
        )
    domain_rules, domain_funders, tree = await _rule_context(session, lineages, specs)
    rules.validate_rules(domain_rules, domain_funders, tree)
    await cofunding_store.replace_rules(
        session,
        consultation_id,
        [
            {
                "funder": s.funder,
                "tier": s.tier,
                "ranks": sorted(s.ranks),
                "territory_code": s.territory_code,
                "share_bp": s.share_bp,
                "per_project_cap_minor": s.per_project_cap_minor,
                "total_cap_minor": s.total_cap_minor,
            }
            for s in specs
        ],
    )


async def declared_rules(session: AsyncSession, consultation_id: uuid.UUID) -> list[RuleSpec]:
    return [
        RuleSpec(
            funder=r.funder,
            tier=r.tier,
            ranks=frozenset(r.ranks),
            territory_code=r.territory_code,
            share_bp=r.share_bp,
            per_project_cap_minor=r.per_project_cap_minor,
            total_cap_minor=r.total_cap_minor,
        )
        for r in await cofunding_store.rules_of(session, consultation_id)
    ]


# --- results and plans ------------------------------------------------------------------------


@dataclass(frozen=True)
class CertifiedResultIn:
    consultation_id: uuid.UUID
    commune: CertifiedCommune
    funds_currency: str


async def record_result(session: AsyncSession, result: CertifiedResultIn) -> bool:
    """Keep a commune's certified version (once); whether it is new."""
    commune = result.commune
    return await cofunding_store.insert_result_if_absent(
        session,
        {
            "consultation_id": result.consultation_id,
            "commune_id": commune.commune_id,
            "version": commune.version,
            "commune_code": commune.commune_code,
            "funds_currency": result.funds_currency,
            "candidates": [
                {
                    "candidate_id": str(k.candidate_id),
                    "rank": k.rank,
                    "title": k.title,
                    "estimated_cost_minor": k.estimated_cost_minor,
                }
                for k in commune.candidates
            ],
        },
    )


async def latest_communes(session: AsyncSession, consultation_id: uuid.UUID) -> list[CertifiedCommune]:
    """The newest certified version of every commune, costs in the consultation's currency."""
    communes = []
    for row in await cofunding_store.latest_results(session, consultation_id):
        communes.append(
            CertifiedCommune(
                commune_id=row.commune_id,
                commune_code=row.commune_code,
                version=row.version,
                candidates=tuple(
                    RankedCandidate(
                        candidate_id=uuid.UUID(str(k["candidate_id"])),
                        rank=int(str(k["rank"])),
                        title=str(k["title"]),
                        estimated_cost_minor=None
                        if k["estimated_cost_minor"] is None
                        else int(str(k["estimated_cost_minor"])),
                        cost_currency=None if k["estimated_cost_minor"] is None else row.funds_currency,
                    )
                    for k in row.candidates
                ),
            )
        )
    return communes


async def plan_for(
    session: AsyncSession,
    lineages: TerritoryLineages,
    consultation_id: uuid.UUID,
    specs: Sequence[RuleSpec] | None = None,
) -> FundingPlan:
    """Who would fund what (the declared rules, or `specs`) for the newest certified version of
    every commune received so far. Moves no money."""
    chosen = list(specs) if specs is not None else await declared_rules(session, consultation_id)
    communes = await latest_communes(session, consultation_id)
    domain_rules, domain_funders, tree = await _rule_context(session, lineages, chosen, communes)
    return funding_plan.plan(domain_rules, domain_funders, tree, communes)


# --- applying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitPolicy:
    # A remote source's pending commitment voids itself after this long without confirmation.
    remote_timeout_seconds: int = 900


class ResultsIncomplete(Unavailable):
    """The consultation's summary arrived before some of its communes' results: retried later
    (a transient failure to the event consumer)."""


async def apply_plan(
    uow: UnitOfWork, lineages: TerritoryLineages, consultation_id: uuid.UUID, communes: int, policy: CommitPolicy
) -> list[uuid.UUID] | None:
    """On the consultation's certification: apply its declared rules (once). None when the
    consultation declared none (the built-in national grant then funds each winner as its
    result arrives); else the allocations created."""
    session = uow.session
    specs = await declared_rules(session, consultation_id)
    if not specs:
        return None
    if not await cofunding_store.claim_application(session, consultation_id, communes):
        return []
    received = await cofunding_store.commune_count(session, consultation_id)
    if received < communes:
        raise ResultsIncomplete(f"{received} of {communes} commune results received", code="results_incomplete")
    plan = await plan_for(session, lineages, consultation_id, specs)
    return await _create(uow, consultation_id, plan.allocations, await _titles(session, consultation_id), policy)


async def apply_recount(
    uow: UnitOfWork, lineages: TerritoryLineages, consultation_id: uuid.UUID, policy: CommitPolicy
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """A recount after the plan was applied: re-plan with the newest versions and change the
    difference (reverse, then allocate the next generation). (reversed, created) ids."""
    session = uow.session
    if not await cofunding_store.applied(session, consultation_id):
        return [], []
    plan = await plan_for(session, lineages, consultation_id)
    live = await cofunding_store.live_allocations(session, consultation_id)
    current = [_planned(a) for a in live if a.status == AllocationStatus.COMMITTED]
    changes = funding_plan.diff_allocations(current, plan.allocations)
    by_key = {(a.commune_id, a.candidate_id, a.funding_source): a for a in live}
    reversed_ids = []
    for old in changes.reverse:
        row = by_key[(old.commune_id, old.candidate_id, old.funder)]
        if await _reverse(session, row):
            reversed_ids.append(row.id)
    created = await _create(uow, consultation_id, changes.create, await _titles(session, consultation_id), policy)
    return reversed_ids, created


def _planned(a: Allocation) -> PlannedAllocation:
    return PlannedAllocation(
        commune_id=a.commune_id,
        commune_code=a.commune_code,
        candidate_id=a.candidate_id,
        rank=a.rank or 1,
        funder=a.funding_source,
        rule_order=a.rule_tier or 0,
        amount_minor=a.amount_minor,
        currency=a.currency,
    )


async def _titles(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, tuple[str, int]]:
    """candidate id -> (title, result version) of the newest results."""
    found: dict[uuid.UUID, tuple[str, int]] = {}
    for commune in await latest_communes(session, consultation_id):
        for candidate in commune.candidates:
            found[candidate.candidate_id] = (candidate.title, commune.version)
    return found


async def _reverse(session: AsyncSession, allocation: Allocation) -> bool:
    """Move a committed allocation's money back to its funder; False when the project already
    reserved or spent some of it (left for a person: the supersession is on record)."""
    accounts = await ledger_store.lock_accounts(session, [allocation.account_id])
    commitment = accounts[allocation.account_id]
    if commitment.debits_posted or commitment.debits_pending:
        log.warning(
            "recount changes a funded project already under way: not reversed",
            extra={"allocation_id": str(allocation.id)},
        )
        return False
    funded = await ledger_store.transfers_by_ids(session, [allocation.transfer_id])
    source_id = funded[allocation.transfer_id].debit_account_id
    reversal_id = ids.allocation_reversal_id_for(allocation.id)
    await ledger.create_transfer(
        session,
        NewTransfer(
            id=reversal_id,
            debit_account_id=allocation.account_id,
            credit_account_id=source_id,
            amount=commitment.credits_posted,
            currency=allocation.currency,
            code=TransferCode.COMMITMENT_REVERSED,
            reference=f"recount consultation:{allocation.consultation_id} commune:{allocation.commune_code}",
        ),
    )
    await cofunding_store.mark_reversed(session, allocation.id, reversal_id)
    return True


async def _create(
    uow: UnitOfWork,
    consultation_id: uuid.UUID,
    planned: Sequence[PlannedAllocation],
    titles: Mapping[uuid.UUID, tuple[str, int]],
    policy: CommitPolicy,
) -> list[uuid.UUID]:
    """Commit each planned allocation from its funder's source; returns the allocations made.
    A pledge funder without enough pledged money commits nothing for that project (logged:
    the plan shows it as funded; the ledger refuses an overdraft)."""
    if not planned:
        return []
    session = uow.session
    funders = await cofunding_store.funders(session, sorted({p.funder for p in planned}))
    generations = await cofunding_store.next_generations(session, consultation_id)
    rows: dict[uuid.UUID, dict[str, object]] = {}
    transfers: list[NewTransfer] = []
    specs: list[AccountSpec] = []
    for funder in funders.values():
        specs.extend(funder_accounts(funder))
    for p in planned:
        funder = funders[p.funder]
        generation = generations.get((p.commune_id, p.candidate_id, p.funder), 1)
        allocation_id = ids.cofunded_allocation_id_for(
            consultation_id, p.commune_id, p.candidate_id, p.funder, generation
        )
        commitment = commitment_spec(allocation_id, p.currency)
        specs.append(commitment)
        remote = funder.kind == FunderKind.REMOTE
        transfer = NewTransfer(
            id=ids.cofunded_transfer_id_for(allocation_id),
            debit_account_id=source_spec(funder).id,
            credit_account_id=commitment.id,
            amount=p.amount_minor,
            currency=p.currency,
            code=TransferCode.GRANT_COMMITMENT,
            reference=f"consultation:{consultation_id} commune:{p.commune_code} candidate:{p.candidate_id}",
            kind=TransferKind.PENDING if remote else TransferKind.SINGLE,
            timeout_seconds=policy.remote_timeout_seconds if remote else None,
        )
        transfers.append(transfer)
        title, version = titles.get(p.candidate_id, ("", 1))
        rows[transfer.id] = {
            "id": allocation_id,
            "consultation_id": consultation_id,
            "commune_id": p.commune_id,
            "commune_code": p.commune_code,
            "candidate_id": p.candidate_id,
            "title": title,
            "amount_minor": p.amount_minor,
            "currency": p.currency,
            "funding_source": p.funder,
            "account_id": commitment.id,
            "transfer_id": transfer.id,
            "rank": p.rank,
            "rule_tier": p.rule_order,
            "result_version": version,
            "generation": generation,
            "status": (AllocationStatus.RESERVING if remote else AllocationStatus.COMMITTED).value,
        }
    await ledger.ensure_accounts(session, specs)
    created: list[uuid.UUID] = []
    for start in range(0, len(transfers), ledger.MAX_BATCH):
        batch = transfers[start : start + ledger.MAX_BATCH]
        decisions = await ledger.submit_transfers(session, batch)
        accepted = [t for t, d in zip(batch, decisions, strict=True) if isinstance(d, TransferOutcome)]
        for t, d in zip(batch, decisions, strict=True):
            if not isinstance(d, TransferOutcome):
                log.warning(
                    "allocation not committed",
                    extra={
                        "funder": rows[t.id]["funding_source"],
                        "commune": rows[t.id]["commune_code"],
                        "code": d.code,
                    },
                )
        inserted = await cofunding_store.insert_allocations_if_absent(session, [rows[t.id] for t in accepted])
        committed = [rows[t.id] for t in accepted if rows[t.id]["id"] in inserted]
        await uow.stage_all(
            [
                commitments.allocation_created(Allocation(**r))
                for r in committed
                if r["status"] == AllocationStatus.COMMITTED.value
            ]
        )
        created.extend(r["id"] for r in committed)  # type: ignore[misc]
    return created
