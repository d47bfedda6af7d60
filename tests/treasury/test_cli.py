"""`comuna-treasury` as a program: --help everywhere; bad input is exit status 2 with one line;
migrate is idempotent and never changes the account's currency; deposit and balance in JSON."""

from __future__ import annotations

import json
import uuid

import pytest

from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from tests.treasury.conftest import CURRENCY, TOKEN, new_database, run

COMMANDS = [[], ["migrate"], ["serve"], ["deposit"], ["balance"]]


@pytest.fixture(scope="module")
def db_url(embedded_postgres: EmbeddedPostgres) -> str:
    return new_database(embedded_postgres, deposit=None)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_everywhere(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: comuna-treasury"), done.stdout


def test_serve_help_documents_the_token_and_the_testing_aid() -> None:
    text = " ".join(run("serve", "--help").stdout.split())
    assert "COMUNA_TREASURY_TOKEN" in text and "TESTING AID" in text and "--delay-seconds" in text


def one_line_refusal(*argv: str, env: dict[str, str] | None = None) -> str:
    done = run(*argv, env=env)
    assert done.returncode == 2, (argv, done.returncode, done.stderr)
    assert done.stdout == "", done.stdout
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["dance"],
        ["migrate"],
        ["migrate", "--currency", "usd"],
        ["deposit", "--reference", "x"],
        ["deposit", "--amount-minor", "-5", "--reference", "x"],
        ["deposit", "--amount-minor", "abc", "--reference", "x"],
        ["deposit", "--amount-minor", "+5", "--reference", "x"],
        ["deposit", "--amount-minor", "١٢", "--reference", "x"],  # Arabic-Indic digits
        ["deposit", "--amount-minor", "1.5", "--reference", "x"],
        ["serve", "--listen", "nonsense"],
        ["serve", "--listen", "127.0.0.1:99999"],
        ["serve", "--delay-seconds", "soon"],
        ["serve", "--territory", "bad territory"],
        ["serve", "--currency", "EURO"],
    ],
)
def test_usage_errors_are_one_line(argv: list[str], db_url: str) -> None:
    one_line_refusal(*argv, *(["--database-url", db_url] if argv else []))


def test_bad_values_are_one_line(db_url: str) -> None:
    deposit = ["deposit", "--database-url", db_url]
    assert "positive" in one_line_refusal(*deposit, "--amount-minor", "0", "--reference", "x")
    assert "control" in one_line_refusal(*deposit, "--amount-minor", "5", "--reference", "tab\there")
    assert "500" in one_line_refusal(*deposit, "--amount-minor", "5", "--reference", "x" * 501)
    assert "database" in one_line_refusal("balance")  # no --database-url, no environment
    assert "postgresql" in one_line_refusal("balance", "--database-url", "mysql://x@y/z")
    bad_delay = {"COMUNA_TREASURY_DELAY_SECONDS": "later", "COMUNA_TREASURY_TOKEN": TOKEN}
    one_line_refusal("serve", "--database-url", db_url, env=bad_delay)


def test_serve_refuses_to_start_without_a_token(db_url: str) -> None:
    assert "COMUNA_TREASURY_TOKEN" in one_line_refusal("serve", "--database-url", db_url)
    spaced = one_line_refusal("serve", "--database-url", db_url, env={"COMUNA_TREASURY_TOKEN": "two words"})
    assert "COMUNA_TREASURY_TOKEN" in spaced


def test_serve_refuses_another_currency_than_the_accounts(db_url: str) -> None:
    refused = one_line_refusal(
        "serve", "--database-url", db_url, "--currency", "USD", "--listen", f"127.0.0.1:{free_port()}",
        env={"COMUNA_TREASURY_TOKEN": TOKEN},
    )  # fmt: skip
    assert "USD" in refused and CURRENCY in refused


def test_migrate_is_idempotent_and_keeps_the_currency(db_url: str) -> None:
    again = run("migrate", "--database-url", db_url, "--currency", CURRENCY)
    assert again.returncode == 0, again.stderr
    assert "already open" in again.stderr
    refused = one_line_refusal("migrate", "--database-url", db_url, "--currency", "USD")
    assert CURRENCY in refused and "USD" in refused


def test_an_unmigrated_database_is_named(embedded_postgres: EmbeddedPostgres) -> None:
    name = f"treasury_empty_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(name)
    assert "migrate" in one_line_refusal("balance", "--database-url", embedded_postgres.dsn(name))


def test_an_unreachable_database_is_exit_1_with_one_line() -> None:
    done = run("balance", "--database-url", f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nope")
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "database" in done.stderr, done.stderr


def test_deposit_and_balance_print_json(db_url: str) -> None:
    before = json.loads(run("balance", "--database-url", db_url).stdout)
    done = run("deposit", "--database-url", db_url, "--amount-minor", "12345", "--reference", "transfer 2027-01")
    assert done.returncode == 0, done.stderr
    movement = json.loads(done.stdout)
    assert (movement["kind"], movement["amount_minor"], movement["currency"]) == ("deposit", 12345, CURRENCY)
    assert movement["reference"] == "transfer 2027-01" and uuid.UUID(movement["movement_id"])
    after = json.loads(run("balance", "--database-url", db_url).stdout)
    assert after["available_minor"] - before["available_minor"] == 12345
    assert after["currency"] == CURRENCY and after["reserved_minor"] == before["reserved_minor"]


def test_the_database_url_may_come_from_the_environment(db_url: str) -> None:
    done = run("balance", env={"COMUNA_TREASURY_DATABASE_URL": db_url})
    assert done.returncode == 0 and json.loads(done.stdout)["currency"] == CURRENCY, done.stderr
