"""Pure pieces of the sync, without a server: the diff, the seed checks, the secret sources,
the passwords file and the platform's extra-subcommand hook."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest

from comuna_identity.keycloak.client_secrets import ConfigurationError, load_client_secrets
from comuna_identity.keycloak.passwords import PasswordBook, PasswordFileError
from comuna_identity.keycloak.reconcile import differing, groups_from_register
from comuna_identity.keycloak.seed import Seed, SeedError, check_seed_against, load_seed
from comuna_identity.keycloak.spec import SERVICE_CLIENT_IDS
from comuna_identity.service import SPEC
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.cli import Subcommand, build_parser


def test_differing_names_only_the_fields_that_differ() -> None:
    desired = {"enabled": True, "uris": ["b", "a"], "attributes": {"pkce": "S256"}, "n": 5}
    actual = {"enabled": True, "uris": ["a", "b"], "attributes": {"pkce": "plain", "other": "x"}, "n": 5, "extra": 1}
    assert differing(desired, actual) == ["attributes.pkce"]
    assert differing(desired, {}) == ["enabled", "uris", "attributes.pkce", "n"]
    assert differing({"n": 0}, {"n": False}) == []  # 0 == False in Python: documented JSON equality


def test_groups_come_parents_first() -> None:
    groups = groups_from_register(
        [("VE.01.01", "M", "municipality", "VE.01"), ("VE", "V", "country", None), ("VE.01", "S", "state", "VE")]
    )
    assert [g.code for g in groups] == ["VE", "VE.01", "VE.01.01"]
    assert groups[2].attributes == {
        "territory_code": ["VE.01.01"],
        "territory_name": ["M"],
        "territory_kind": ["municipality"],
    }


def test_groups_nest_by_parent_links_not_by_codes() -> None:
    groups = groups_from_register(
        [
            ("CC-A", "C", "commune", "MU-9"),
            ("MU-9", "M", "municipality", "LARA"),
            ("LARA", "S", "state", "VE"),
            ("VE", "V", "country", None),
        ]
    )
    assert [(g.code, g.parent_code) for g in groups] == [
        ("VE", None),
        ("LARA", "VE"),
        ("MU-9", "LARA"),
        ("CC-A", "MU-9"),
    ]


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(document))
    return path


def test_seed_refuses_repeats_and_residents(tmp_path: Path) -> None:
    twice = {"staff": [{"username": "a"}, {"username": "a"}]}
    with pytest.raises(SeedError, match="username 'a' appears more than once"):
        load_seed(write(tmp_path, twice))
    resident = {"staff": [{"username": "r", "assignments": [{"role": "resident", "territory_code": "VE"}]}]}
    with pytest.raises(SeedError, match="residents are enrolled"):
        load_seed(write(tmp_path, resident))
    table = {"staff": [{"username": "t", "assignments": [{"role": "table_officer", "territory_code": "VE.01.01.C1"}]}]}
    with pytest.raises(SeedError, match="consultation_id and table_code"):
        load_seed(write(tmp_path, table))
    with pytest.raises(SeedError, match="extra"):
        load_seed(write(tmp_path, {"staff": [], "extra": 1}))
    with pytest.raises(SeedError, match="cannot read seed file"):
        load_seed(tmp_path / "missing.json")


def test_seed_against_the_register() -> None:
    known = {"VE": TerritoryKind.COUNTRY, "VE.01": TerritoryKind.STATE}
    seed = Seed.model_validate(
        {
            "territories": [
                {"code": "VE.01.01", "name": "M", "kind": "municipality", "parent_code": "VE.01"},
                {"code": "VE.01.01.C1", "name": "C", "kind": "commune", "parent_code": "VE.01.01"},
            ],
            "staff": [{"username": "s", "assignments": [{"role": "spokesperson", "territory_code": "VE.01.01.C1"}]}],
        }
    )
    check_seed_against(seed, known)  # parents earlier in the file count
    clash = Seed.model_validate(
        {"territories": [{"code": "VE.01", "name": "S", "kind": "municipality", "parent_code": "VE"}]}
    )
    with pytest.raises(SeedError, match="registered as a state"):
        check_seed_against(clash, known)
    # Codes are names, not paths: any code will do; the kind must fit the parent's.
    any_code = Seed.model_validate(
        {"territories": [{"code": "LARA2", "name": "X", "kind": "state", "parent_code": "VE"}]}
    )
    check_seed_against(any_code, known)
    misplaced = Seed.model_validate(
        {"territories": [{"code": "CC9", "name": "X", "kind": "communal_council", "parent_code": "VE.01"}]}
    )
    with pytest.raises(SeedError, match="cannot sit under a state"):
        check_seed_against(misplaced, known)


def test_client_secrets_from_a_file_and_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "secrets.json"
    file.write_text(json.dumps({cid: f"file-{cid}" for cid in SERVICE_CLIENT_IDS} | {"other": "ignored"}))
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "svc-funding").write_text("from-dir\n")
    got = load_client_secrets(file, directory)
    assert got == {cid: f"file-{cid}" for cid in SERVICE_CLIENT_IDS} | {"svc-funding": "from-dir"}
    with pytest.raises(ConfigurationError, match="no secret for svc-identity, svc-consultations, svc-projects"):
        load_client_secrets(None, directory)
    file.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="must be a JSON object"):
        load_client_secrets(file, None)


def test_passwords_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "passwords.json"
    book = PasswordBook(path)
    first = book.generate("ana")
    assert len(first) >= 12
    book.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PasswordBook(path).get("ana") == first
    path.write_text('{"ana": 5}')
    with pytest.raises(PasswordFileError, match="username -> password"):
        PasswordBook(path)


def test_a_service_adds_its_own_subcommand() -> None:
    seen: list[argparse.Namespace] = []

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--flag", action="store_true")

    sub = Subcommand(name="extra", help="an extra command", configure=configure, run=lambda a: seen.append(a) or 0)
    args = build_parser(SPEC, [sub]).parse_args(["extra", "--flag"])
    assert args.command == "extra" and args.flag is True
    with pytest.raises(SystemExit):
        build_parser(SPEC).parse_args(["extra"])


def test_run_cli_dispatches_to_the_subcommand_and_exits_with_its_status(tmp_path: Path) -> None:
    from comuna_platform.cli import run_cli

    calls: list[str] = []

    def run(args: argparse.Namespace) -> int:
        calls.append(args.command)
        return 2

    sub = Subcommand(name="extra", help="an extra command", configure=lambda parser: None, run=run)
    with pytest.raises(SystemExit) as exited:
        run_cli(SPEC, tmp_path, ["extra"], extra=[sub])
    assert exited.value.code == 2
    assert calls == ["extra"]
