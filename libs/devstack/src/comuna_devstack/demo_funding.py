"""The demo's co-funding (docs/ledger.md): the national fund pays rank 1 up to 10,000 USD, the
state pays rank 2 through its own treasury (the reference `comuna-treasury`, a remote source)
up to a quarterly cap, and the municipality matches 30% of rank 1 through a pledge. Declared
before certification; applied by funding when the consultation is certified. The demo ends by
checking the ledger's public journal with `comuna-verify ledger`, as an outsider would."""

from __future__ import annotations

import uuid
from typing import Any

from comuna_devstack import record_check
from comuna_devstack.client import PlatformClient, StepFailed, items
from comuna_devstack.residents import Progress
from comuna_devstack.seed import MUNICIPALITY, STATE
from comuna_devstack.stack import DEV_TREASURY_CREDENTIALS

STATE_FUNDER = "estado_demo"
MUNICIPAL_FUNDER = "municipio_demo"
# 10,000.00 USD, the national grant since 2024; the state's quarter; the municipality's pledge.
NATIONAL_CAP = 1_000_000
STATE_QUARTER_CAP = 2_000_000
MUNICIPAL_PLEDGE = 1_500_000
MUNICIPAL_SHARE_BP = 3_000
MUNICIPAL_PROJECT_CAP = 300_000


def declare(client: PlatformClient, consultation_id: str, treasury_target: str) -> dict[str, Any]:
    """Register the state's treasury and the municipality's pledge, pledge, and declare the rules."""
    funders = [
        {
            "name": STATE_FUNDER,
            "display_name": "Gobernación (tesorería de referencia)",
            "kind": "remote",
            "currency": "USD",
            "territory_code": STATE,
            "endpoint": treasury_target,
            "credentials_ref": DEV_TREASURY_CREDENTIALS,
        },
        {
            "name": MUNICIPAL_FUNDER,
            "display_name": "Alcaldía (compromiso)",
            "kind": "pledge",
            "currency": "USD",
            "territory_code": MUNICIPALITY,
        },
    ]
    for funder in funders:
        client.call("POST", "funding", "/v1/funders", as_user="operator", json=funder, expect=(200, 201))
    # Idempotent by id: a second demo run on the same stack pledges nothing more.
    pledge_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"comuna-demo:pledge:{MUNICIPAL_FUNDER}:{consultation_id}"))
    client.call(
        "POST",
        "funding",
        f"/v1/funders/{MUNICIPAL_FUNDER}/pledges",
        as_user="operator",
        json={"id": pledge_id, "amount_minor": MUNICIPAL_PLEDGE, "reference": "Acuerdo municipal de cofinanciamiento"},
        expect=(200, 201),
    )
    rules = [
        {"funder": "national", "tier": 1, "ranks": [1], "per_project_cap_minor": NATIONAL_CAP},
        {"funder": STATE_FUNDER, "tier": 2, "ranks": [2], "total_cap_minor": STATE_QUARTER_CAP},
        {
            "funder": MUNICIPAL_FUNDER,
            "tier": 3,
            "ranks": [1],
            "share_bp": MUNICIPAL_SHARE_BP,
            "per_project_cap_minor": MUNICIPAL_PROJECT_CAP,
        },
    ]
    client.call(
        "PUT",
        "funding",
        f"/v1/consultations/{consultation_id}/funding-rules",
        as_user="operator",
        json={"rules": rules},
    )
    return {"rules": rules, "funders": [f["name"] for f in funders]}


def wait_funded(client: PlatformClient, consultation_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dry run of the certified results, and the allocations once funding made them all
    (the state's committed through its treasury)."""
    rules = f"/v1/consultations/{consultation_id}/funding-rules"
    # Applied once every commune's result reached funding: the plan is then the whole one.
    client.wait_for("the co-funding plan applied", lambda: client.call("GET", "funding", rules)["in_force"] or None)
    plan = client.call("GET", "funding", f"/v1/consultations/{consultation_id}/funding-plan")
    expected = len(plan["allocations"])
    if not expected:
        raise StepFailed("the co-funding plan funds nothing")

    def committed() -> list[dict[str, Any]] | None:
        found = items(
            client.call("GET", "funding", "/v1/allocations", params={"consultation_id": consultation_id, "limit": 500})
        )
        live = [a for a in found if a["status"] == "committed"]
        if any(a["status"] in ("refused", "failed") for a in found):
            raise StepFailed(f"a funder did not commit: {[a for a in found if a['status'] in ('refused', 'failed')]}")
        return live if len(live) == expected else None

    return plan, client.wait_for(f"{expected} allocations committed", committed)


def verify_ledger(client: PlatformClient, progress: Progress | None) -> dict[str, Any]:
    """`comuna-verify ledger` on funding's public journal (its key from `.../record/keys`)."""
    base = f"{client.urls['funding']}/v1/ledger"
    keys = client.call("GET", "funding", "/v1/ledger/record/keys")
    command = [record_check.tool("comuna-verify"), "ledger", base, "--json", "--wait", "60"]
    for key in keys["verifier_keys"]:
        command += ["--log-key", key]
    return record_check.run_tool(command, "comuna-verify ledger", progress)
