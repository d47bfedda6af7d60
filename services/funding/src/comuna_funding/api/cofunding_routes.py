"""REST transport of co-funding: funders (the national fund built in; remote sources and
pledges registered by operators), pledges and deposits (by officials where the funder funds),
each consultation's co-funding rules, and the dry run of their plan (docs/ledger.md).

Reads are public (who funds what is open data); writes check the caller against the funder's
territory, from funding's own data.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from comuna_funding.api.routes import transfer_out
from comuna_funding.api.schemas import Currency, MinorUnits, TransferOut
from comuna_funding.domain import cofunding
from comuna_funding.domain.cofunding import FunderSpec, RuleSpec
from comuna_funding.domain.funding_plan import FundingPlan
from comuna_funding.settings import Settings
from comuna_funding.storage import cofunding_store, ledger_store
from comuna_funding.storage.models import Funder
from comuna_funding.vocabulary import FunderKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import CurrentCaller, TerritoryLineagesDep, require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["co-funding"])

Operator = Annotated[Caller, require_assignment(Role.OPERATOR)]
FunderName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# Who records a funder's pledges and deposits: its government's officials, or a national operator.
PLEDGERS = (Role.OPERATOR, Role.REGIONAL_OFFICIAL, Role.MUNICIPAL_OFFICIAL)


class FunderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", examples=["zulia"])
    display_name: str = Field(min_length=1, max_length=200, examples=["Gobernación del Zulia"])
    kind: Literal[FunderKind.REMOTE, FunderKind.PLEDGE]
    currency: Currency
    territory_code: str = Field(min_length=1, max_length=64, description="Where it may fund.", examples=["VE.23"])
    endpoint: str | None = Field(default=None, description="remote: host:port of its comuna.funding.source.v1 server.")
    credentials_ref: str | None = Field(
        default=None,
        max_length=100,
        description="remote: the name of its token in COMUNA_FUNDING_SOURCE_CREDENTIALS (never the token).",
    )
    tls: StrictBool = False
    deadline_ms: StrictInt = Field(default=5000, ge=100, le=600_000)


class FunderOut(BaseModel):
    name: str
    display_name: str
    kind: FunderKind
    currency: str
    territory_code: str
    endpoint: str | None
    credentials_ref: str | None = Field(description="The name of its credentials in configuration; never the secret.")
    tls: bool
    deadline_ms: int
    source_account_id: uuid.UUID = Field(description="Where its money enters the ledger.")


class FunderPage(BaseModel):
    items: list[FunderOut]


class PledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Chosen by the client: the transfer's idempotency key.")
    amount_minor: MinorUnits
    reference: str = Field(default="", max_length=500, examples=["Decreto 1234"])


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    funder: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    tier: StrictInt = Field(ge=1, le=1000, description="Rules apply in ascending tier (the issue's 'order').")
    ranks: list[StrictInt] = Field(min_length=1, max_length=50, description="The ranks it funds, 1 = first.")
    territory_code: str | None = Field(default=None, description="Within the funder's territory; default all of it.")
    share_bp: StrictInt = Field(default=10_000, description="Share of the project's cost, in basis points.")
    per_project_cap_minor: StrictInt | None = None
    total_cap_minor: StrictInt | None = Field(default=None, description="Over the whole consultation (the quarter).")


class RulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn] = Field(max_length=200)


class RulesOut(BaseModel):
    consultation_id: uuid.UUID
    rules: list[RuleIn]
    in_force: bool = Field(description="The plan was applied: the rules are fixed (a recount re-plans them).")


class PlannedAllocationOut(BaseModel):
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID
    rank: int
    funder: str
    tier: int
    amount_minor: int
    currency: str


class ProjectPlanOut(BaseModel):
    commune_id: uuid.UUID
    commune_code: str
    version: int
    candidate_id: uuid.UUID
    rank: int
    title: str
    cost_minor: int | None
    currency: str | None
    funded_minor: int
    unfunded_minor: int | None = Field(description="What no rule funds; null when the cost is unknown.")
    skipped: list[dict[str, object]] = Field(description="Rules that claimed it and paid nothing, and why.")


class FunderUsageOut(BaseModel):
    funder: str
    currency: str
    planned_minor: int
    total_cap_minor: int | None
    cap_left_minor: int | None


class PlanOut(BaseModel):
    consultation_id: uuid.UUID
    allocations: list[PlannedAllocationOut]
    projects: list[ProjectPlanOut]
    funders: list[FunderUsageOut]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.funding_settings
    return settings


async def _national(uow: UnitOfWork, request: Request) -> Funder:
    settings = _settings(request)
    return await cofunding.ensure_national(
        uow.session, settings.funding_source, settings.grant_currency, settings.national_territory
    )


def _funder_out(funder: Funder) -> FunderOut:
    return FunderOut(
        name=funder.name,
        display_name=funder.display_name,
        kind=FunderKind(funder.kind),
        currency=funder.currency,
        territory_code=funder.territory_code,
        endpoint=funder.endpoint,
        credentials_ref=funder.credentials_ref,
        tls=funder.tls,
        deadline_ms=funder.deadline_ms,
        source_account_id=cofunding.source_spec(funder).id,
    )


@router.get("/funders", response_model=FunderPage, summary="Registered funders (public)")
async def list_funders(uow: UnitOfWorkDep, request: Request) -> FunderPage:
    await _national(uow, request)
    return FunderPage(items=[_funder_out(f) for f in (await cofunding_store.funders(uow.session)).values()])


@router.get("/funders/{name}", response_model=FunderOut, summary="One funder (public)")
async def get_funder(name: FunderName, uow: UnitOfWorkDep, request: Request) -> FunderOut:
    await _national(uow, request)
    return _funder_out(await cofunding.require_funder(uow.session, name))


@router.post(
    "/funders",
    response_model=FunderOut,
    status_code=201,
    summary="Register a remote source or a pledge funder (idempotent; 409 for a taken name)",
)
async def register_funder(
    *,
    body: FunderIn,
    uow: UnitOfWorkDep,
    _: Operator,
    lineages: TerritoryLineagesDep,
    request: Request,
    response: Response,
) -> FunderOut:
    spec = FunderSpec(
        name=body.name,
        display_name=body.display_name,
        kind=FunderKind(body.kind),
        currency=body.currency,
        territory_code=body.territory_code,
        endpoint=body.endpoint,
        credentials_ref=body.credentials_ref,
        tls=body.tls,
        deadline_ms=body.deadline_ms,
    )
    known = frozenset(_settings(request).source_credentials)
    funder, created = await cofunding.register_funder(uow.session, lineages, spec, known)
    if not created:
        response.status_code = 200
    return _funder_out(funder)


async def _pledge_or_deposit(
    name: str, body: PledgeIn, uow: UnitOfWork, caller: Caller, lineages: TerritoryLineagesDep, *, deposit: bool
) -> tuple[TransferOut, bool]:
    funder = await cofunding.require_funder(uow.session, name)
    caller.require(PLEDGERS, await lineages.of(funder.territory_code))
    move = cofunding.record_deposit if deposit else cofunding.record_pledge
    outcome = await move(uow.session, funder, body.id, body.amount_minor, body.reference)
    row = outcome.transfer
    keys = await ledger_store.account_keys(uow.session, [row.debit_account_id, row.credit_account_id])
    return transfer_out(row, keys), outcome.status == "created"


@router.post(
    "/funders/{name}/pledges",
    response_model=TransferOut,
    status_code=201,
    summary="Record a pledge funder's commitment: what it may then fund (officials of its territory)",
)
async def record_pledge(
    *,
    name: FunderName,
    body: PledgeIn,
    uow: UnitOfWorkDep,
    caller: CurrentCaller,
    lineages: TerritoryLineagesDep,
    response: Response,
) -> TransferOut:
    out, created = await _pledge_or_deposit(name, body, uow, caller, lineages, deposit=False)
    if not created:
        response.status_code = 200
    return out


@router.post(
    "/funders/{name}/deposits",
    response_model=TransferOut,
    status_code=201,
    summary="Record a deposit against a pledge funder's pledges (never more than pledged)",
)
async def record_deposit(
    *,
    name: FunderName,
    body: PledgeIn,
    uow: UnitOfWorkDep,
    caller: CurrentCaller,
    lineages: TerritoryLineagesDep,
    response: Response,
) -> TransferOut:
    out, created = await _pledge_or_deposit(name, body, uow, caller, lineages, deposit=True)
    if not created:
        response.status_code = 200
    return out


def _rule_spec(rule: RuleIn) -> RuleSpec:
    return RuleSpec(
        funder=rule.funder,
        tier=rule.tier,
        ranks=frozenset(rule.ranks),
        territory_code=rule.territory_code,
        share_bp=rule.share_bp,
        per_project_cap_minor=rule.per_project_cap_minor,
        total_cap_minor=rule.total_cap_minor,
    )


def _rule_in(spec: RuleSpec) -> RuleIn:
    return RuleIn(
        funder=spec.funder,
        tier=spec.tier,
        ranks=sorted(spec.ranks),
        territory_code=spec.territory_code,
        share_bp=spec.share_bp,
        per_project_cap_minor=spec.per_project_cap_minor,
        total_cap_minor=spec.total_cap_minor,
    )


@router.put(
    "/consultations/{consultation_id}/funding-rules",
    response_model=RulesOut,
    summary="Declare the consultation's co-funding rules (validated; replaced until the plan is applied)",
)
async def declare_rules(
    *,
    consultation_id: uuid.UUID,
    body: RulesIn,
    uow: UnitOfWorkDep,
    _: Operator,
    lineages: TerritoryLineagesDep,
    request: Request,
) -> RulesOut:
    await _national(uow, request)
    specs = [_rule_spec(r) for r in body.rules]
    await cofunding.declare_rules(uow.session, lineages, consultation_id, specs)
    return RulesOut(consultation_id=consultation_id, rules=[_rule_in(s) for s in specs], in_force=False)


@router.get(
    "/consultations/{consultation_id}/funding-rules",
    response_model=RulesOut,
    summary="The consultation's co-funding rules (public)",
)
async def get_rules(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> RulesOut:
    specs = await cofunding.declared_rules(uow.session, consultation_id)
    in_force = await cofunding_store.applied(uow.session, consultation_id)
    return RulesOut(consultation_id=consultation_id, rules=[_rule_in(s) for s in specs], in_force=in_force)


def _plan_out(consultation_id: uuid.UUID, plan: FundingPlan) -> PlanOut:
    return PlanOut(
        consultation_id=consultation_id,
        allocations=[
            PlannedAllocationOut(
                commune_id=a.commune_id,
                commune_code=a.commune_code,
                candidate_id=a.candidate_id,
                rank=a.rank,
                funder=a.funder,
                tier=a.rule_order,
                amount_minor=a.amount_minor,
                currency=a.currency,
            )
            for a in plan.allocations
        ],
        projects=[
            ProjectPlanOut(
                commune_id=p.commune_id,
                commune_code=p.commune_code,
                version=p.version,
                candidate_id=p.candidate_id,
                rank=p.rank,
                title=p.title,
                cost_minor=p.cost_minor,
                currency=p.currency,
                funded_minor=p.funded_minor,
                unfunded_minor=p.unfunded_minor,
                skipped=[{"funder": s.funder, "tier": s.rule_order, "reason": str(s.reason)} for s in p.skipped],
            )
            for p in plan.projects
        ],
        funders=[
            FunderUsageOut(
                funder=f.funder,
                currency=f.currency,
                planned_minor=f.planned_minor,
                total_cap_minor=f.total_cap_minor,
                cap_left_minor=f.cap_left_minor,
            )
            for f in plan.funders
        ],
    )


@router.get(
    "/consultations/{consultation_id}/funding-plan",
    response_model=PlanOut,
    summary="Dry run: who the declared rules fund for the certified results received so far (public; moves nothing)",
)
async def funding_plan(
    consultation_id: uuid.UUID, uow: UnitOfWorkDep, lineages: TerritoryLineagesDep, request: Request
) -> PlanOut:
    await _national(uow, request)
    plan = await cofunding.plan_for(uow.session, lineages, consultation_id)
    return _plan_out(consultation_id, plan)


@router.post(
    "/consultations/{consultation_id}/funding-plan/preview",
    response_model=PlanOut,
    summary="Dry run of rules not declared yet, for the certified results received so far (moves nothing)",
)
async def preview_plan(
    *,
    consultation_id: uuid.UUID,
    body: RulesIn,
    uow: UnitOfWorkDep,
    _: Operator,
    lineages: TerritoryLineagesDep,
    request: Request,
) -> PlanOut:
    await _national(uow, request)
    plan = await cofunding.plan_for(uow.session, lineages, consultation_id, [_rule_spec(r) for r in body.rules])
    return _plan_out(consultation_id, plan)
