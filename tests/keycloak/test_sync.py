"""`comuna-identity keycloak sync` against a real Keycloak and identity's real database."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keycloak import KeycloakAdmin, KeycloakAuthenticationError, KeycloakError, KeycloakOpenID, KeycloakPostError

import comuna_identity
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.auth.roles import SERVICE_ROLE, Role
from tests.keycloak.conftest import KeycloakServer
from tests.keycloak.support import SyncEnv, claims, client_secrets, insert_territories, sql
from tests.support.service import fresh_database

MIGRATIONS = Path(comuna_identity.__file__).parent / "migrations"
REALM = "comuna-sync-test"
SERVICE_CLIENTS = ["svc-identity", "svc-consultations", "svc-funding", "svc-projects"]

REGISTER = [
    ("VE", "Venezuela", "country"),
    ("VE.01", "Estado Uno", "state"),
    ("VE.01.01", "Municipio Uno", "municipality"),
    ("VE.01.01.C1", "Comuna Uno", "commune"),
    ("VE.01.01.C1.CC1", "Consejo Uno", "communal_council"),
]

SEED: dict[str, Any] = {
    "territories": [
        {"code": "VE.01.01.C2", "name": "Comuna Dos", "kind": "commune", "parent_code": "VE.01.01"},
        {"code": "VE.01.01.K1", "name": "Circuito Uno", "kind": "communal_circuit", "parent_code": "VE.01.01"},
    ],
    "staff": [
        {
            "username": "olga.operator",
            "email": "Olga@Example.org",
            "first_name": "Olga",
            "last_name": "Operadora",
            "assignments": [{"role": "operator", "territory_code": "VE"}],
        },
        {
            "username": "sara.spokes",
            "email": "sara@example.org",
            "first_name": "Sara",
            "last_name": "Vocera",
            "assignments": [{"role": "spokesperson", "territory_code": "VE.01.01.C2"}],
        },
        {
            "username": "rita.registrar",
            "email": "rita@example.org",
            "first_name": "Rita",
            "last_name": "Registradora",
            "assignments": [
                {"role": "registrar", "territory_code": "VE.01.01.C1.CC1"},
                {"role": "overseer", "territory_code": "VE.01.01.K1"},
            ],
        },
        {
            "username": "lola.locked",
            "email": "lola@example.org",
            "first_name": "Lola",
            "last_name": "Bloqueada",
            "assignments": [{"role": "registrar", "territory_code": "VE.01"}],
        },
    ],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keycloak-sync")


@pytest.fixture(scope="module")
def env(embedded_postgres: EmbeddedPostgres, keycloak_admin: KeycloakServer, workdir: Path) -> SyncEnv:
    url = fresh_database(embedded_postgres, f"identity_kc_{uuid.uuid4().hex[:8]}", MIGRATIONS)
    insert_territories(url, REGISTER)
    secrets_file = workdir / "client-secrets.json"
    secrets_file.write_text(json.dumps(client_secrets()))
    (workdir / "seed.json").write_text(json.dumps(SEED))
    return SyncEnv(
        server=keycloak_admin,
        database_url=url,
        realm=REALM,
        secrets_file=secrets_file,
        passwords_file=workdir / "staff-passwords.json",
    )


@pytest.fixture(scope="module")
def dry_first_sync(env: SyncEnv, workdir: Path) -> list[str]:
    """A dry run before the realm exists: what the first sync will do."""
    result = env.run("--seed", workdir / "seed.json", "--passwords-file", env.passwords_file, "--dry-run")
    assert result.status == 0, result.stderr
    return result.lines


@pytest.fixture(scope="module")
def first_sync(env: SyncEnv, workdir: Path, dry_first_sync: list[str]) -> list[str]:
    """The first sync of the realm, with the seed; its output lines."""
    result = env.run("--seed", workdir / "seed.json", "--passwords-file", env.passwords_file)
    assert result.status == 0, result.stderr
    return result.lines


@pytest.fixture(scope="module")
def admin(keycloak_admin: KeycloakServer, first_sync: list[str]) -> KeycloakAdmin:
    return KeycloakAdmin(
        server_url=keycloak_admin.base_url,
        username=keycloak_admin.admin_username,
        password=keycloak_admin.admin_password,
        realm_name=REALM,
        user_realm_name="master",
    )


def passwords(env: SyncEnv) -> dict[str, str]:
    return json.loads(env.passwords_file.read_text())  # type: ignore[no-any-return]


def public_client(server: KeycloakServer, realm: str = REALM) -> KeycloakOpenID:
    return KeycloakOpenID(server_url=server.base_url, realm_name=realm, client_id="comuna-cli")


def user_id(admin: KeycloakAdmin, username: str) -> str:
    found = admin.get_users({"username": username, "exact": True})
    assert len(found) == 1, found
    return str(found[0]["id"])


def test_first_sync_reports_each_change_and_a_count(first_sync: list[str]) -> None:
    count = int(first_sync[-1].split()[0])
    assert first_sync[-1] == f"{count} changes"
    assert count == len(first_sync) - 1 > 20
    assert f"+ realm {REALM}" in first_sync
    assert "+ territory VE.01.01.C2 (Comuna Dos)" in first_sync
    assert "+ assignment operator@VE for olga.operator" in first_sync


def test_a_dry_run_first_announces_exactly_what_the_sync_then_does(
    dry_first_sync: list[str], first_sync: list[str], env: SyncEnv
) -> None:
    count = len(first_sync) - 1
    assert dry_first_sync[-1] == f"{count} changes (dry run, nothing applied)"
    assert sorted(dry_first_sync[:-1]) == sorted(first_sync[:-1])


def test_the_realm_has_its_settings_roles_and_clients(admin: KeycloakAdmin) -> None:
    realm = admin.get_realm(REALM)
    assert realm["enabled"] is True
    assert realm["bruteForceProtected"] is True
    assert realm["failureFactor"] == 5
    assert realm["passwordPolicy"] == "length(12) and notUsername and notEmail and passwordHistory(3)"
    assert realm["accessTokenLifespan"] == 300
    roles = {role["name"] for role in admin.get_realm_roles()}
    assert {*(role.value for role in Role), SERVICE_ROLE} <= roles
    clients = {client["clientId"]: client for client in admin.get_clients()}
    cli = clients["comuna-cli"]
    assert cli["publicClient"] is True
    assert cli["standardFlowEnabled"] is True
    assert cli["directAccessGrantsEnabled"] is True  # development
    assert cli["attributes"]["pkce.code.challenge.method"] == "S256"
    assert "http://127.0.0.1/*" in cli["redirectUris"]
    for client_id in ["comuna-cli", *SERVICE_CLIENTS]:
        mappers = admin.get_mappers_from_client(clients[client_id]["id"])
        audience = [m for m in mappers if m["protocolMapper"] == "oidc-audience-mapper"]
        assert [m["config"]["included.custom.audience"] for m in audience] == ["comuna"], client_id
    for client_id in SERVICE_CLIENTS:
        client = clients[client_id]
        assert client["publicClient"] is False
        assert client["serviceAccountsEnabled"] is True
        assert client["standardFlowEnabled"] is False
        assert client["directAccessGrantsEnabled"] is False
        assert admin.get_client_secrets(client["id"])["value"] == client_secrets()[client_id]
        account = admin.get_client_service_account_user(client["id"])
        assert SERVICE_ROLE in {r["name"] for r in admin.get_realm_roles_of_user(account["id"])}


def test_groups_mirror_the_register_without_councils(admin: KeycloakAdmin) -> None:
    paths = {}
    for code in ["VE.01.01.C1", "VE.01.01.C2", "VE.01.01.K1"]:
        group = admin.get_group_by_path(f"/VE/VE.01/VE.01.01/{code}")
        paths[code] = group["attributes"]["territory_code"]
    assert paths == {code: [code] for code in paths}
    commune = admin.get_group_by_path("/VE/VE.01/VE.01.01/VE.01.01.C1")
    assert commune["attributes"]["territory_kind"] == ["commune"]
    assert commune["subGroupCount"] == 0  # the council is not a group
    assert admin.get_group_by_path("/VE")["attributes"]["territory_name"] == ["Venezuela"]


def test_staff_are_users_in_their_territory_groups(admin: KeycloakAdmin, env: SyncEnv) -> None:
    groups = {
        username: sorted(g["path"] for g in admin.get_user_groups(user_id(admin, username)))
        for username in ["olga.operator", "sara.spokes", "rita.registrar", "lola.locked"]
    }
    assert groups == {
        "olga.operator": ["/VE"],
        "sara.spokes": ["/VE/VE.01/VE.01.01/VE.01.01.C2"],
        "rita.registrar": ["/VE/VE.01/VE.01.01/VE.01.01.C1", "/VE/VE.01/VE.01.01/VE.01.01.K1"],
        "lola.locked": ["/VE/VE.01"],
    }
    # Persons hold no Comuna role in Keycloak: identity's assignments decide.
    held = {r["name"] for r in admin.get_realm_roles_of_user(user_id(admin, "olga.operator"))}
    assert not held & {role.value for role in Role}
    mode = stat.S_IMODE(os.stat(env.passwords_file).st_mode)
    assert mode == 0o600
    assert set(passwords(env)) == {"olga.operator", "sara.spokes", "rita.registrar", "lola.locked"}


def test_assignments_are_recorded_in_identity_with_keycloak_subjects(admin: KeycloakAdmin, env: SyncEnv) -> None:
    rows = sql(
        env.database_url,
        "SELECT a.subject, a.role, t.code FROM role_assignments a JOIN territories t ON t.id = a.territory_id "
        "WHERE a.revoked_at IS NULL ORDER BY t.code, a.role",
    )
    got = {(row["subject"], row["role"], row["code"]) for row in rows}
    assert got == {
        (user_id(admin, "olga.operator"), "operator", "VE"),
        (user_id(admin, "lola.locked"), "registrar", "VE.01"),
        (user_id(admin, "sara.spokes"), "spokesperson", "VE.01.01.C2"),
        (user_id(admin, "rita.registrar"), "registrar", "VE.01.01.C1.CC1"),
        (user_id(admin, "rita.registrar"), "overseer", "VE.01.01.K1"),
    }
    codes = {row["code"] for row in sql(env.database_url, "SELECT code FROM territories")}
    assert {"VE.01.01.C2", "VE.01.01.K1"} <= codes


def test_second_sync_changes_nothing(admin: KeycloakAdmin, env: SyncEnv, workdir: Path) -> None:
    before = passwords(env)
    result = env.run("--seed", workdir / "seed.json", "--passwords-file", env.passwords_file)
    assert result.status == 0, result.stderr
    assert result.lines == ["0 changes"]
    assert passwords(env) == before
    as_json = env.run("--seed", workdir / "seed.json", "--passwords-file", env.passwords_file, "--json")
    assert json.loads(as_json.stdout) == {"realm": REALM, "dry_run": False, "count": 0, "changes": []}


def test_dry_run_reports_drift_and_applies_nothing(admin: KeycloakAdmin, env: SyncEnv) -> None:
    admin.update_realm(REALM, {"failureFactor": 30, "accessTokenLifespan": 3600})
    dry = env.run("--dry-run", "--json")
    assert dry.status == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    assert report["changes"] == [
        {"action": "update", "kind": "realm", "name": REALM, "fields": ["failureFactor", "accessTokenLifespan"]}
    ]
    assert admin.get_realm(REALM)["failureFactor"] == 30
    fixed = env.run()
    assert fixed.lines == [f"~ realm {REALM} (failureFactor, accessTokenLifespan)", "1 change"]
    assert admin.get_realm(REALM)["failureFactor"] == 5
    assert env.run().lines == ["0 changes"]


def test_staff_token_from_the_public_client_carries_the_audience_and_no_territory(
    keycloak_admin: KeycloakServer, env: SyncEnv, first_sync: list[str]
) -> None:
    token = public_client(keycloak_admin).token("sara.spokes", passwords(env)["sara.spokes"])
    access = claims(token["access_token"])
    audience = access["aud"] if isinstance(access["aud"], list) else [access["aud"]]
    assert "comuna" in audience
    assert access["azp"] == "comuna-cli"
    assert access["preferred_username"] == "sara.spokes"
    assert "comuna_territories" not in access
    assert not set(access.get("realm_access", {}).get("roles", [])) & {role.value for role in Role}


def test_service_client_credentials_token_holds_the_service_role(
    keycloak_admin: KeycloakServer, first_sync: list[str]
) -> None:
    client = KeycloakOpenID(
        server_url=keycloak_admin.base_url,
        realm_name=REALM,
        client_id="svc-consultations",
        client_secret_key=client_secrets()["svc-consultations"],
    )
    access = claims(client.token(grant_type="client_credentials")["access_token"])
    assert SERVICE_ROLE in access["realm_access"]["roles"]
    assert access["azp"] == "svc-consultations"
    assert "comuna" in (access["aud"] if isinstance(access["aud"], list) else [access["aud"]])
    wrong = KeycloakOpenID(
        server_url=keycloak_admin.base_url, realm_name=REALM, client_id="svc-consultations", client_secret_key="nope"
    )
    with pytest.raises(KeycloakAuthenticationError):
        wrong.token(grant_type="client_credentials")


def test_brute_force_locks_the_account_after_the_failure_factor(
    keycloak_admin: KeycloakServer, env: SyncEnv, admin: KeycloakAdmin
) -> None:
    cli = public_client(keycloak_admin)
    right = passwords(env)["lola.locked"]
    assert cli.token("lola.locked", right)["access_token"]  # the password itself is good
    for attempt in range(5):
        with pytest.raises(KeycloakError) as wrong:
            cli.token("lola.locked", f"wrong-password-{attempt}")
        assert b"invalid_grant" in (wrong.value.response_body or b"")
    # Locked: the right password is refused too (Keycloak does not say why, on purpose). Failures
    # this fast also trip the quick-login check, which locks before the fifth one.
    with pytest.raises(KeycloakError) as refused:
        cli.token("lola.locked", right)
    assert b"invalid_grant" in (refused.value.response_body or b"")
    status = admin.get_bruteforce_detection_status(user_id(admin, "lola.locked"))
    assert status["disabled"] is True
    assert status["numFailures"] >= 1


def test_without_development_the_password_grant_is_refused(
    keycloak_admin: KeycloakServer, env: SyncEnv, workdir: Path
) -> None:
    production = SyncEnv(
        server=keycloak_admin,
        database_url=env.database_url,
        realm=f"{REALM}-production",
        secrets_file=env.secrets_file,
        passwords_file=workdir / "production-passwords.json",
        development=False,
    )
    result = production.run()
    assert result.status == 0, result.stderr
    admin = KeycloakAdmin(
        server_url=keycloak_admin.base_url,
        username=keycloak_admin.admin_username,
        password=keycloak_admin.admin_password,
        realm_name=production.realm,
        user_realm_name="master",
    )
    cli = next(c for c in admin.get_clients() if c["clientId"] == "comuna-cli")
    assert cli["directAccessGrantsEnabled"] is False
    user = admin.create_user(
        {
            "username": "pat.person",
            "email": "pat@example.org",
            "firstName": "Pat",
            "lastName": "Person",
            "enabled": True,
            "credentials": [{"type": "password", "value": "a-long-password-1", "temporary": False}],
        }
    )
    assert user
    with pytest.raises((KeycloakAuthenticationError, KeycloakPostError)) as refused:
        public_client(keycloak_admin, production.realm).token("pat.person", "a-long-password-1")
    assert b"unauthorized_client" in (refused.value.response_body or b"")


@pytest.fixture
def other_realm_env(env: SyncEnv, workdir: Path) -> Iterator[SyncEnv]:
    yield SyncEnv(
        server=env.server,
        database_url=env.database_url,
        realm=f"never-{uuid.uuid4().hex[:6]}",
        secrets_file=env.secrets_file,
        passwords_file=workdir / f"never-{uuid.uuid4().hex[:6]}.json",
    )


def assert_one_line_refusal(result: Any, *needles: str) -> None:
    assert result.status == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("comuna-identity keycloak sync: ")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unreachable_keycloak_exits_2_with_one_line(other_realm_env: SyncEnv) -> None:
    result = other_realm_env.run(COMUNA_IDENTITY_KEYCLOAK_URL=f"http://127.0.0.1:{free_port()}")
    assert_one_line_refusal(result, "cannot reach Keycloak", "COMUNA_IDENTITY_KEYCLOAK_URL")


def test_wrong_admin_password_exits_2_with_one_line(other_realm_env: SyncEnv, admin: KeycloakAdmin) -> None:
    result = other_realm_env.run(COMUNA_IDENTITY_KEYCLOAK_ADMIN_PASSWORD="not-the-password")
    assert_one_line_refusal(result, "refused admin user 'admin'", "_ADMIN_PASSWORD")
    assert other_realm_env.realm not in {r["realm"] for r in admin.get_realms()}


def test_unknown_admin_realm_exits_2_with_one_line(other_realm_env: SyncEnv) -> None:
    result = other_realm_env.run(COMUNA_IDENTITY_KEYCLOAK_ADMIN_REALM="no-such-realm")
    assert_one_line_refusal(result, "no realm 'no-such-realm'", "COMUNA_IDENTITY_KEYCLOAK_ADMIN_REALM")


def test_missing_client_secret_exits_2_with_one_line(other_realm_env: SyncEnv, workdir: Path) -> None:
    partial = workdir / "partial-secrets.json"
    partial.write_text(json.dumps({"svc-identity": "only-this-one-0123456789"}))
    result = other_realm_env.run(COMUNA_IDENTITY_KEYCLOAK_CLIENT_SECRETS_FILE=str(partial))
    assert_one_line_refusal(result, "no secret for svc-consultations, svc-funding, svc-projects")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "is not JSON"),
        (
            json.dumps({"staff": [{"username": "x", "assignments": [{"role": "king", "territory_code": "VE"}]}]}),
            "staff.0.assignments.0.role",
        ),
        (
            json.dumps(
                {"staff": [{"username": "y", "assignments": [{"role": "registrar", "territory_code": "XX.9"}]}]}
            ),
            "territory 'XX.9' is unknown",
        ),
        (
            json.dumps(
                {
                    "territories": [
                        {"code": "VE.02.07", "name": "Sin Padre", "kind": "municipality", "parent_code": "VE.02"}
                    ]
                }
            ),
            "parent 'VE.02'",
        ),
        (
            json.dumps(
                {"territories": [{"code": "VE.01.01.C9", "name": "Mal", "kind": "state", "parent_code": "VE.01.01"}]}
            ),
            "cannot sit under",
        ),
        (json.dumps({"staff": [{"username": "Upper Case"}]}), "staff.0.username"),
        # identity's own rule: a regional official acts in a state, not a commune.
        (
            json.dumps(
                {
                    "staff": [
                        {
                            "username": "reg",
                            "email": "reg@example.org",
                            "assignments": [{"role": "regional_official", "territory_code": "VE.01.01.C1"}],
                        }
                    ]
                }
            ),
            "seed refused by identity",
        ),
    ],
)
def test_bad_seed_exits_2_and_applies_nothing(
    other_realm_env: SyncEnv, admin: KeycloakAdmin, workdir: Path, content: str, needle: str
) -> None:
    seed = workdir / f"bad-{uuid.uuid4().hex[:6]}.json"
    seed.write_text(content)
    before = sql(other_realm_env.database_url, "SELECT count(*) AS n FROM territories")[0]["n"]
    result = other_realm_env.run("--seed", seed, "--passwords-file", other_realm_env.passwords_file)
    assert_one_line_refusal(result, needle)
    assert other_realm_env.realm not in {r["realm"] for r in admin.get_realms()}
    assert sql(other_realm_env.database_url, "SELECT count(*) AS n FROM territories")[0]["n"] == before
    assert not other_realm_env.passwords_file.exists()
