"""Residents who sign up to vote online (the demo's and the ballot bench's): pure logic, a fake
platform client. Against Keycloak and the services: tests/e2e (the demo) and
`python -m comuna_devstack.benches.online_voters` (the bench's voters, against `make run`)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from comuna_devstack.benches.online_voters import OnlineVoters, registrars_needed, resident_username
from comuna_devstack.client import PlatformClient, StepFailed
from comuna_devstack.demo import online_voters
from comuna_devstack.demo_offline import OFFLINE_VOTERS
from comuna_devstack.errors import DevStackError
from comuna_devstack.residents import Account, RealmAdmin, account_subject, imported_credential, link_accounts
from comuna_devstack.seed import COMMUNES, commune_code, demo_residents
from comuna_devstack.stack import StackConfig


def test_an_account_has_the_same_keycloak_id_on_every_run_and_never_shows_its_password() -> None:
    one, two = Account.new("comuna", "resident-1"), Account.new("comuna", "resident-1")
    assert one.subject == two.subject == account_subject("comuna", "resident-1")
    assert one.password != two.password and len(one.password) >= 12
    assert account_subject("other-realm", "resident-1") != one.subject
    assert one.password not in repr(one)


def test_the_imported_credential_is_what_keycloak_verifies_pbkdf2_with() -> None:
    credential = imported_credential("correct horse battery staple", iterations=3)
    secret, data = json.loads(credential["secretData"]), json.loads(credential["credentialData"])
    assert data == {"hashIterations": 3, "algorithm": "pbkdf2-sha256", "additionalParameters": {}}
    derived = hashlib.pbkdf2_hmac("sha256", b"correct horse battery staple", base64.b64decode(secret["salt"]), 3, 32)
    assert base64.b64decode(secret["value"]) == derived
    assert "correct horse" not in json.dumps(credential)


class FakeIdentity:
    """`PlatformClient.call` for `/v1/residents:link`: answers from a script, records the calls."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[dict[str, Any]] = []

    def call(self, method: str, service: str, path: str, **options: Any) -> dict[str, Any]:
        assert (method, service, path) == ("POST", "identity", "/v1/residents:link")
        assert options["expect"] == (201, 409, 429)
        self.calls.append(options["json"])
        return self.answers.pop(0)


class Clock:
    """A fake monotonic clock; sleeping moves it (calls take no time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limited(retry_after: int) -> dict[str, Any]:
    return {"code": "rate_limited", "retry_after": retry_after}


def linked(account: Account) -> dict[str, Any]:
    return {"resident_id": "r", "subject": account.subject}


def test_a_registrar_waits_retry_after_then_paces_itself_at_the_limits_rate() -> None:
    accounts = [Account.new("comuna", f"resident-{i}") for i in range(4)]
    # The bucket was partly refilled: Retry-After says 1 s, the limit refills a token every 2 s.
    identity = FakeIdentity(
        [linked(accounts[0]), limited(1), {"code": "subject_already_linked"}, linked(accounts[2]), linked(accounts[3])]
    )
    clock, said, done = Clock(), list[str](), list[None]()
    counts = link_accounts(
        identity,  # type: ignore[arg-type]
        "registrar",
        [(f"V{i}", a) for i, a in enumerate(accounts)],
        interval=2.0,
        progress=said.append,
        on_done=lambda: done.append(None),
        sleep=clock.sleep,
        clock=clock,
    )
    assert (counts.linked, counts.already, counts.waits) == (3, 1, 1)
    # The refused link is tried again after the pace; every later link starts 2 s after the one before.
    assert [c["national_id"] for c in identity.calls] == ["V0", "V1", "V1", "V2", "V3"]
    assert clock.slept == [2.0, 2.0, 2.0]
    assert len(done) == 4 and len(said) == 1 and "Retry-After" in said[0]


def test_refused_again_at_its_pace_a_registrar_slows_down() -> None:
    accounts = [Account.new("comuna", f"resident-{i}") for i in range(3)]
    identity = FakeIdentity([linked(accounts[0]), limited(2), linked(accounts[1]), limited(2), linked(accounts[2])])
    clock = Clock()
    link_accounts(
        identity,  # type: ignore[arg-type]
        "registrar",
        [(f"V{i}", a) for i, a in enumerate(accounts)],
        interval=2.0,
        sleep=clock.sleep,
        clock=clock,
    )
    assert clock.slept == [2.0, 2.0, 2.5]


def test_a_resident_linked_to_another_account_stops_the_sign_up() -> None:
    identity = FakeIdentity([{"code": "resident_already_linked", "detail": "the resident already has one"}])
    with pytest.raises(StepFailed, match="resident-0: resident_already_linked"):
        link_accounts(identity, "registrar", [("V0", Account.new("comuna", "resident-0"))])  # type: ignore[arg-type]


def test_the_admin_comes_from_the_stack_settings_or_its_state_directory(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text(json.dumps({"keycloak": {"admin_password": "from-the-file"}}))
    embedded = RealmAdmin.for_stack(StackConfig(state_dir=tmp_path))
    assert (embedded.url, embedded.realm, embedded.username) == ("http://127.0.0.1:8080", "comuna", "admin")
    assert embedded.password == "from-the-file" and "from-the-file" not in repr(embedded)
    external = StackConfig(
        state_dir=tmp_path / "none",
        external_keycloak_url="http://kc:8080",
        keycloak_admin_password="given",
        realm="e2e-1",
    )
    assert RealmAdmin.for_stack(external).password == "given"
    with pytest.raises(DevStackError, match=r"secrets\.json"):
        RealmAdmin.for_stack(StackConfig(state_dir=tmp_path / "none"))


def test_the_demo_votes_online_with_about_ten_adults_of_every_commune_not_voting_elsewhere() -> None:
    residents = demo_residents()
    first = commune_code(COMMUNES[0][0])
    offline = [r for r in residents if r.commune_code == first and r.birth_date.year < 2000][-OFFLINE_VOTERS:]
    chosen = online_voters(offline)
    assert 8 <= len(chosen) <= 12
    assert {r.commune_code for _, r in chosen} == {commune_code(local) for local, _, _ in COMMUNES}
    for index, resident in chosen:
        assert residents[index] == resident
        assert index % 4 != 3 and resident not in offline and resident.birth_date.year < 2000


def test_the_bench_makes_enough_registrars_for_its_rate_limit() -> None:
    # 30 links a minute and a burst of 10 each: 70 links per registrar in two minutes.
    assert registrars_needed(5_000, 120, per_minute=30, burst=10) == 72
    assert registrars_needed(200, 120, per_minute=30, burst=10) == 3
    assert registrars_needed(1, 120, per_minute=30, burst=10) == 1
    # A bench resident's username is theirs whatever the list's order, and not their document.
    assert resident_username("V50000001") == resident_username("V50000001") != resident_username("V50000002")
    assert "50000001" not in resident_username("V50000001")


def fake_keycloak(dead_refresh: set[str]) -> httpx.Client:
    """Keycloak's token endpoint: a password grant opens a session; a refresh grant renews one
    unless its refresh token is in `dead_refresh` (the session ended)."""
    counter = iter(range(1_000_000))

    def answer(request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        if form["grant_type"] == "refresh_token" and form["refresh_token"] in dead_refresh:
            return httpx.Response(400, json={"error": "invalid_grant"})
        who = form.get("username") or form["refresh_token"].split(":")[0]
        n = next(counter)
        return httpx.Response(
            200,
            json={"access_token": f"{who}:{form['grant_type']}:{n}", "refresh_token": f"{who}:r{n}", "expires_in": 300},
        )

    return httpx.Client(transport=httpx.MockTransport(answer))


def test_fresh_tokens_sign_in_whoever_has_no_live_session() -> None:
    client = PlatformClient({}, token_url="http://keycloak.invalid/token")
    admin = RealmAdmin("http://keycloak.invalid", "comuna", "admin", "secret")
    voters = OnlineVoters(client, admin, ["V1", "V2", "V3"], progress=None)
    voters._http = fake_keycloak(dead_refresh=set())
    # Never minted: refresh() signs everyone in, in order.
    first = voters.refresh()
    names = [a.username for a in voters.accounts]
    assert [t.split(":")[:2] for t in first] == [[n, "password"] for n in names]
    assert 290 < voters.valid_for() <= 300
    # One session ended: that resident signs in again, the others are refreshed.
    voters._http = fake_keycloak(dead_refresh={voters.tokens[1].refresh})
    again = voters.refresh()
    assert [t.split(":")[1] for t in again] == ["refresh_token", "password", "refresh_token"]
    assert voters.figures["refreshes"]["signed_in_again"] == 1
