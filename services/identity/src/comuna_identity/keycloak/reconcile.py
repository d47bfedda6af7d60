"""Compare the realm Comuna wants with what Keycloak has, and apply only the difference.

Nothing is ever deleted: roles, clients and groups an operator added by hand stay. The one
removal is a seeded user's membership of a territory group their seed no longer names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from keycloak import KeycloakAdmin, KeycloakGetError

from comuna_identity.keycloak.changes import Action, Change
from comuna_identity.keycloak.passwords import PasswordBook
from comuna_identity.keycloak.spec import ClientSpec, GroupSpec, RealmSpec, UserSpec, audience_mapper

NOT_FOUND = 404


def differing(desired: dict[str, Any], actual: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of the desired fields whose actual value differs (lists compare as sets)."""
    fields: list[str] = []
    for key, want in desired.items():
        have = actual.get(key)
        if isinstance(want, dict):
            fields += differing(want, have if isinstance(have, dict) else {}, f"{prefix}{key}.")
        elif isinstance(want, list):
            if not isinstance(have, list) or sorted(map(str, want)) != sorted(map(str, have)):
                fields.append(prefix + key)
        elif have != want:
            fields.append(prefix + key)
    return fields


class Reconciler:
    """One pass over the realm. `record` receives every change, applied or (dry run) not."""

    def __init__(
        self,
        admin: KeycloakAdmin,
        spec: RealmSpec,
        *,
        passwords: PasswordBook,
        dry_run: bool,
        record: Callable[[Change], None],
    ) -> None:
        self.admin = admin
        self.spec = spec
        self.passwords = passwords
        self.dry_run = dry_run
        self.record = record
        # Keycloak ids of the territory groups, by code; "" for groups a dry run would create.
        self.group_ids: dict[str, str] = {}

    def run(self) -> dict[str, str | None]:
        """Reconcile everything; returns each seeded username's Keycloak id (None: not created, dry run)."""
        exists = self.realm()
        if not exists and self.dry_run:
            self._report_all_new()
            return {user.username: None for user in self.spec.users}
        self.roles()
        for client in self.spec.clients:
            self.client(client)
        self.groups()
        return {user.username: self.user(user) for user in self.spec.users}

    def _change(self, action: Action, kind: str, name: str, fields: Iterable[str] = ()) -> None:
        self.record(Change(action, kind, name, tuple(fields)))

    # The realm and its settings.
    def realm(self) -> bool:
        try:
            actual = self.admin.get_realm(self.spec.realm)
        except KeycloakGetError as exc:
            if exc.response_code != NOT_FOUND:
                raise
            self._change(Action.CREATE, "realm", self.spec.realm)
            if not self.dry_run:
                # skip_exists: creating a realm can outlast the request timeout, and the HTTP
                # client retries once; the retry then meets the realm the first try created.
                self.admin.create_realm({"realm": self.spec.realm, **self.spec.settings}, skip_exists=True)
            return False
        fields = differing(self.spec.settings, actual)
        if fields:
            self._change(Action.UPDATE, "realm", self.spec.realm, fields)
            if not self.dry_run:
                self.admin.update_realm(self.spec.realm, self.spec.settings)
        return True

    def _report_all_new(self) -> None:
        for name in self.spec.roles:
            self._change(Action.CREATE, "role", name)
        for client in self.spec.clients:
            self._change(Action.CREATE, "client", client.client_id)
            for role in client.service_account_roles:
                self._change(Action.CREATE, "service-account-role", f"{client.client_id}:{role}")
        for group in self.spec.groups:
            self._change(Action.CREATE, "group", group.code, [group.name])
        for user in self.spec.users:
            self._change(Action.CREATE, "user", user.username)
            for code in user.groups:
                self._change(Action.CREATE, "group-member", f"{user.username}@{code}")

    # Realm roles: names only; none is assigned to a person.
    def roles(self) -> None:
        actual = {role["name"]: role for role in self.admin.get_realm_roles(brief_representation=False)}
        for name, description in self.spec.roles.items():
            have = actual.get(name)
            if have is None:
                self._change(Action.CREATE, "role", name)
                if not self.dry_run:
                    self.admin.create_realm_role({"name": name, "description": description})
            elif have.get("description") != description:
                self._change(Action.UPDATE, "role", name, ["description"])
                if not self.dry_run:
                    self.admin.update_realm_role(name, {"name": name, "description": description})

    # Clients, their audience mapper, secret and service account roles.
    def client(self, client: ClientSpec) -> None:
        desired = {"clientId": client.client_id, **client.representation}
        found = [c for c in self.admin.get_clients() if c.get("clientId") == client.client_id]
        if not found:
            self._change(Action.CREATE, "client", client.client_id)
            if self.dry_run:
                return
            payload = {**desired, "protocolMappers": [audience_mapper(self.spec.audience)]}
            if client.secret is not None:
                payload["secret"] = client.secret
            uuid = self.admin.create_client(payload)
            self.service_account_roles(client, uuid)
            return
        actual = found[0]
        uuid = actual["id"]
        fields = differing(desired, actual)
        if fields:
            self._change(Action.UPDATE, "client", client.client_id, fields)
            if not self.dry_run:
                self.admin.update_client(uuid, desired)
        self.mapper(client, uuid)
        if client.secret is not None and self.admin.get_client_secrets(uuid).get("value") != client.secret:
            self._change(Action.UPDATE, "client-secret", client.client_id)
            if not self.dry_run:
                self.admin.update_client(uuid, {"clientId": client.client_id, "secret": client.secret})
        if actual.get("serviceAccountsEnabled") or not self.dry_run:
            self.service_account_roles(client, uuid)

    def mapper(self, client: ClientSpec, uuid: str) -> None:
        desired = audience_mapper(self.spec.audience)
        found = [m for m in self.admin.get_mappers_from_client(uuid) if m.get("name") == desired["name"]]
        if not found:
            self._change(Action.CREATE, "audience-mapper", client.client_id)
            if not self.dry_run:
                self.admin.add_mapper_to_client(uuid, desired)
            return
        fields = differing(desired, found[0])
        if fields:
            self._change(Action.UPDATE, "audience-mapper", client.client_id, fields)
            if not self.dry_run:
                self.admin.update_client_mapper(uuid, found[0]["id"], {**desired, "id": found[0]["id"]})

    def service_account_roles(self, client: ClientSpec, uuid: str) -> None:
        if not client.service_account_roles:
            return
        user = self.admin.get_client_service_account_user(uuid)
        held = {role["name"] for role in self.admin.get_realm_roles_of_user(user["id"])}
        for name in client.service_account_roles:
            if name in held:
                continue
            self._change(Action.CREATE, "service-account-role", f"{client.client_id}:{name}")
            if not self.dry_run:
                self.admin.assign_realm_roles(user["id"], [self.admin.get_realm_role(name)])

    # Groups: one per government and commune, nested like the register.
    def groups(self) -> None:
        actual = self._actual_groups()
        # The spec lists parents first (`groups_from_register`, by the register's parent links).
        for group in self.spec.groups:
            have = actual.get(group.code)
            desired = {"name": group.code, "attributes": group.attributes}
            if have is None:
                self._change(Action.CREATE, "group", group.code, [group.name])
                parent = self.group_ids.get(group.parent_code or "") or None
                if self.dry_run:
                    self.group_ids[group.code] = ""
                    continue
                created = self.admin.create_group(desired, parent=parent)
                assert created is not None
                self.group_ids[group.code] = created
                continue
            self.group_ids[group.code] = have["id"]
            fields = differing(desired, have)
            if fields:
                self._change(Action.UPDATE, "group", group.code, fields)
                if not self.dry_run:
                    self.admin.update_group(have["id"], desired)

    def _actual_groups(self) -> dict[str, dict[str, Any]]:
        """Every group, by name (our groups are named by territory code), walking the tree."""
        found: dict[str, dict[str, Any]] = {}
        pending = list(self.admin.get_groups(query={"briefRepresentation": False}))
        while pending:
            group = pending.pop()
            found.setdefault(group["name"], group)
            if group.get("subGroupCount"):
                pending += self.admin.get_group_children(group["id"], query={"briefRepresentation": False})
        return found

    # Seeded staff: the user, their password (generated once, kept in the passwords file) and
    # their territory groups.
    def user(self, user: UserSpec) -> str | None:
        desired: dict[str, Any] = {
            "username": user.username,
            "firstName": user.first_name,
            "lastName": user.last_name,
            "enabled": True,
        }
        if user.email:
            desired |= {"email": user.email, "emailVerified": True}
        found = self.admin.get_users({"username": user.username, "exact": True})
        if not found:
            self._change(Action.CREATE, "user", user.username)
            for code in user.groups:
                self._change(Action.CREATE, "group-member", f"{user.username}@{code}")
            if self.dry_run:
                return None
            password = self.passwords.get(user.username) or self.passwords.generate(user.username)
            created: str = self.admin.create_user(
                {**desired, "credentials": [{"type": "password", "value": password, "temporary": False}]}
            )
            self.passwords.save()
            for code in user.groups:
                self.admin.group_user_add(created, self.group_ids[code])
            return created
        actual = found[0]
        user_id: str = actual["id"]
        fields = differing(desired, actual)
        if fields:
            self._change(Action.UPDATE, "user", user.username, fields)
            if not self.dry_run:
                self.admin.update_user(user_id, desired)
        if self.passwords.get(user.username) is None:
            # The user exists but its password was not kept: give it a new one, saved after it is set
            # (a crash in between only means the next run sets another).
            self._change(Action.UPDATE, "user-password", user.username)
            if not self.dry_run:
                self.admin.set_user_password(user_id, self.passwords.generate(user.username), temporary=False)
                self.passwords.save()
        self.memberships(user, user_id)
        return user_id

    def memberships(self, user: UserSpec, user_id: str) -> None:
        held = {
            g["attributes"]["territory_code"][0]: g["id"]
            for g in self.admin.get_user_groups(user_id, brief_representation=False)
            if g.get("attributes", {}).get("territory_code")
        }
        for code in user.groups:
            if code not in held:
                self._change(Action.CREATE, "group-member", f"{user.username}@{code}")
                if not self.dry_run:
                    self.admin.group_user_add(user_id, self.group_ids[code])
        for code, group_id in held.items():
            if code not in user.groups:
                self._change(Action.REMOVE, "group-member", f"{user.username}@{code}")
                if not self.dry_run:
                    self.admin.group_user_remove(user_id, group_id)


def groups_from_register(territories: Iterable[tuple[str, str, str, str | None]]) -> tuple[GroupSpec, ...]:
    """(code, name, kind, parent_code) rows -> group specs, parents first (by their depth in the
    parent links: codes say nothing about where a unit sits)."""
    rows = list(territories)
    parents = {code: parent for code, _, _, parent in rows}
    depths: dict[str, int] = {}

    def depth(code: str) -> int:
        if code not in depths:
            chain: list[str] = []
            node = code
            while node in parents and node not in depths and len(chain) <= len(parents):
                chain.append(node)
                node = parents[node] or ""
            base = depths.get(node, -1)
            for offset, item in enumerate(reversed(chain), start=1):
                depths[item] = base + offset
        return depths[code]

    return tuple(
        GroupSpec(code=code, name=name, kind=kind, parent_code=parent if parent in parents else None)
        for code, name, kind, parent in sorted(rows, key=lambda row: (depth(row[0]), row[0]))
    )
