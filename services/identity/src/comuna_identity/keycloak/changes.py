"""What a sync changed (or, in a dry run, would change): one tidy line each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REMOVE = "remove"


SIGNS = {Action.CREATE: "+", Action.UPDATE: "~", Action.REMOVE: "-"}


@dataclass(frozen=True)
class Change:
    action: Action
    # realm, role, client, client-secret, audience-mapper, service-account-role, group, user,
    # user-password, group-member, territory, assignment
    kind: str
    name: str
    fields: tuple[str, ...] = ()

    def line(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{SIGNS[self.action]} {self.kind} {self.name}{detail}"

    def as_json(self) -> dict[str, object]:
        return {"action": self.action.value, "kind": self.kind, "name": self.name, "fields": list(self.fields)}
