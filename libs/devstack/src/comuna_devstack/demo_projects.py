"""The demo's project execution under public oversight (docs/projects.md): each commune's
spokesperson starts the project, reports every milestone done; the commune's overseer (someone
else) verifies it, which releases its tranche; once paid, the spokesperson uploads the receipt,
records the spending of everything disbursed and a final progress report with a photo, and
completes the project. A resident files an observation, which the overseer reviews, answers in
public and closes."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from typing import Any

from comuna_devstack.client import PlatformClient, StepFailed, items
from comuna_devstack.seed import staff_username


def png(text: str) -> bytes:
    """A tiny valid PNG (one grey pixel) whose bytes differ per `text`: a distinct photo each."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    pixels = zlib.compress(b"\x00\x80")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + text.encode())
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def _local(commune_code: str) -> str:
    return commune_code.rsplit(".", 1)[-1]


def _upload(client: PlatformClient, user: str, text: str) -> str:
    stored = client.call("POST", "projects", "/v1/evidence:upload", as_user=user, content=png(text), expect=201)
    return str(stored["sha256"])


def execute(
    client: PlatformClient, projects: list[dict[str, Any]], *, watched: tuple[dict[str, Any], str] | None
) -> dict[str, Any]:
    """Run every project from planned to completed; `watched`: a project and a resident of its
    commune (a username) who files an observation on it. Returns what the summary shows."""
    evidence: list[str] = []
    for project in projects:
        pid, local = project["id"], _local(project["commune_code"])
        spokesperson, overseer = staff_username("spokesperson", local), staff_username("overseer", local)
        client.call(
            "POST", "projects", f"/v1/projects/{pid}:start", as_user=spokesperson, json={"spokespeople": ["Vocera"]}
        )
        detail = client.call("GET", "projects", f"/v1/projects/{pid}")
        for milestone in sorted(detail["milestones"], key=lambda m: m["sequence"]):
            path = f"/v1/projects/{pid}/milestones/{milestone['id']}"
            client.call("POST", "projects", f"{path}:report", as_user=spokesperson, json={"note": "Obra terminada"})
            client.call(
                "POST",
                "projects",
                f"{path}:verify",
                as_user=overseer,
                json={"note": "Verificado en sitio por la contraloría comunal"},
            )
    paid = client.wait_for("every tranche disbursed", lambda: _all_paid(client, projects))
    for project, disbursed in zip(projects, paid, strict=True):
        pid, local = project["id"], _local(project["commune_code"])
        spokesperson = staff_username("spokesperson", local)
        receipt = _upload(client, spokesperson, f"factura {pid}")
        photo = _upload(client, spokesperson, f"foto {pid}")
        evidence += [receipt, photo]
        client.call(
            "POST",
            "projects",
            f"/v1/projects/{pid}/expenditures",
            as_user=spokesperson,
            expect=201,
            json={
                "amount_minor": disbursed,
                "currency": project["currency"],
                "spent_on": datetime.now(UTC).date().isoformat(),
                "supplier": "Ferretería Comunal",
                "description": "Materiales y mano de obra",
                "receipt_sha256": receipt,
            },
        )
        client.call(
            "POST",
            "projects",
            f"/v1/projects/{pid}/progress-reports",
            as_user=spokesperson,
            expect=201,
            json={"percent_complete": 100, "text": "Obra entregada a la comunidad", "evidence": [photo]},
        )
        client.call("POST", "projects", f"/v1/projects/{pid}:complete", as_user=spokesperson)
    oversight = None if watched is None else _oversight(client, *watched)
    return {"evidence_files": len(set(evidence)), "oversight_report": oversight}


def open_data(client: PlatformClient, consultation_id: str) -> dict[str, Any]:
    """What the public sees of the consultation's projects: the aggregates and the OC4IDS export."""
    scope = {"consultation_id": consultation_id}
    stats = client.call("GET", "projects", "/v1/stats", params=scope)
    package = client.call("GET", "projects", "/v1/exports/projects", params=scope)
    paid = [t for p in package["projects"] for t in p.get("transactions", [])]
    met = [m for p in package["projects"] for m in p["milestones"] if m["type"] == "payment" and m["status"] == "met"]
    return {
        "projects": stats["projects"],
        "by_status": {g["key"]: g["projects"] for g in stats["by_status"]},
        "money": stats["money"],
        "oc4ids_projects": len(package["projects"]),
        "oc4ids_transactions": len(paid),
        "oc4ids_payments_met": len(met),
    }


def _oversight(client: PlatformClient, project: dict[str, Any], resident: str) -> str:
    pid, overseer = project["id"], staff_username("overseer", _local(project["commune_code"]))
    photo = _upload(client, resident, f"observación {pid}")
    filed = client.call(
        "POST",
        "projects",
        f"/v1/projects/{pid}/oversight-reports",
        as_user=resident,
        expect=201,
        json={"kind": "observation", "text": "La obra quedó bien; falta señalizarla.", "evidence": [photo]},
    )
    path = f"/v1/projects/{pid}/oversight-reports/{filed['id']}"
    client.call("POST", "projects", f"{path}:review", as_user=overseer)
    client.call("POST", "projects", f"{path}:answer", as_user=overseer, json={"answer": "Se colocará un letrero."})
    closed = client.call("POST", "projects", f"{path}:close", as_user=overseer)
    public = items(client.call("GET", "projects", f"/v1/projects/{pid}/oversight-reports"))
    if [r["state"] for r in public] != ["closed"] or "filed_by" in public[0]:
        raise StepFailed(f"the oversight report is not public as it should be: {public}")
    return str(closed["state"])


def _all_paid(client: PlatformClient, projects: list[dict[str, Any]]) -> list[int] | None:
    amounts = []
    for project in projects:
        detail = client.call("GET", "projects", f"/v1/projects/{project['id']}")
        if any(m["status"] != "funded" for m in detail["milestones"]):
            return None
        amounts.append(int(detail["disbursed_minor"]))
    return amounts
