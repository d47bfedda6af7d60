"""Online voters for the ballot benchmark: thousands of residents, each with a Keycloak account
of their own linked to their census record before the roll is frozen, and an access token each.

    voters = OnlineVoters(client, RealmAdmin.for_stack(config), national_ids)
    voters.enrol()            # accounts and links: BEFORE `freeze_roll`
    tokens = voters.mint()    # one access token per resident, in the order of `national_ids`
    tokens = voters.refresh() # fresh ones for the same sessions (nothing hashed), e.g. just before casting
                              # (without a `mint` before, it signs everyone in: the same as `mint`)

or `prepare_online_voters(...)`, which does the first two at once (`enrol(mint=True)`: the
sign-ins run while the registrars link). What each step costs, measured with 5,000 residents
against `make run` on 2 cores (`python -m comuna_devstack.benches.online_voters --residents
5000 [--together]`; progress on stderr, figures in `OnlineVoters.figures`): 3.4 min in all
together, about 4 min one step after the other.

* accounts: Keycloak's partial import (`residents.KeycloakUsers`, 250 users a request, 4 in
  flight), each with an already hashed credential (`residents.imported_credential`): nothing
  hashed at import, ~270 accounts/s new, ~140/s recreated on a later run (a delete and an
  insert each). Imported with plain passwords, Keycloak hashes each with the realm's policy
  (Argon2, ~20/s).
* links: `POST /v1/residents:link` is rate-limited per registrar (`DOCUMENT_LOOKUPS`, 30/min,
  burst 10 by default), so the bench makes its own registrars (`bench-registrar-NNN`, Keycloak
  users granted `registrar` on the bench municipality by the operator), enough to link everyone
  in about `link_seconds` (72 for 5,000), each pacing itself at the limit's rate after its first
  429. Identity then links ~35-40/s: 125-140 s for 5,000.
* tokens: the password grant, in parallel (never twice the same user at once: Keycloak refuses
  concurrent sign-ins of one user). At its first sign-in Keycloak re-hashes each account's
  imported credential to the realm's policy (Argon2): that is the cost, ~60 sign-ins/s alone,
  ~27/s beside the links. A refresh grant hashes nothing: ~340/s.
* lifetime: the realm's access tokens live `accessTokenLifespan` (300 s) and 5,000 sign-ins
  take over a minute: the first tokens have 2-4 minutes left when the last is minted.
  `valid_for()` says how long the oldest still has; `refresh()` just before casting gives every
  session a token good for another 300 s.

The operator must be signed in on `client` (`client.login("operator", ...)`): it grants the
registrars. Running again is idempotent: the same usernames get the same Keycloak ids (and new
passwords), links and grants already made answer 409.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from comuna_devstack.client import PlatformClient, StepFailed, Tokens, password_grant, refresh_grant
from comuna_devstack.residents import (
    LINKS_BURST,
    LINKS_PER_MINUTE,
    Account,
    KeycloakUsers,
    LinkCounts,
    Progress,
    RealmAdmin,
    in_parallel,
    link_accounts,
    notice,
)

BENCH_MUNICIPALITY = "VE.90.01"
# How long linking everyone should take: decides how many registrars the bench makes.
LINK_SECONDS = 120.0
# Sign-ins in flight: Keycloak hashes on as many threads as it has cores (2 here); a few more
# keep it busy while the others' answers travel.
WORKERS = 8


def resident_username(national_id: str) -> str:
    """The bench resident's username: the same for the same resident on every run (whatever the
    order of the list), and not their document number."""
    return "bench-resident-" + hashlib.sha256(f"comuna-bench:{national_id}".encode()).hexdigest()[:16]


def registrar_username(index: int) -> str:
    return f"bench-registrar-{index:03d}"


def registrars_needed(
    residents: int,
    seconds: float = LINK_SECONDS,
    *,
    per_minute: float = LINKS_PER_MINUTE,
    burst: int = LINKS_BURST,
) -> int:
    """Registrars whose buckets (a burst, then `per_minute`) link `residents` within `seconds`."""
    return max(1, math.ceil(residents / (burst + per_minute / 60.0 * seconds)))


class OnlineVoters:
    """Residents (by national id, already in the census under `territory`) who vote online in
    the bench; see the module docstring."""

    def __init__(
        self,
        client: PlatformClient,
        admin: RealmAdmin,
        national_ids: list[str],
        *,
        territory: str = BENCH_MUNICIPALITY,
        registrars: int | None = None,
        link_seconds: float = LINK_SECONDS,
        workers: int = WORKERS,
        progress: Progress | None = notice,
    ) -> None:
        self.client = client
        self.admin = admin
        self.national_ids = list(national_ids)
        self.territory = territory
        self.registrars = registrars or registrars_needed(len(self.national_ids), link_seconds)
        self.workers = workers
        self.progress = progress
        self.accounts = [
            Account.new(admin.realm, resident_username(n), first_name="Residente", last_name="Bench")
            for n in self.national_ids
        ]
        self.tokens: list[Tokens] = []
        self.figures: dict[str, Any] = {"residents": len(self.accounts), "registrars": self.registrars}
        self._http = httpx.Client(timeout=120.0, limits=httpx.Limits(max_connections=max(workers, 1) * 2))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OnlineVoters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    # -- before the roll is frozen -------------------------------------------------------------
    def enrol(self, *, mint: bool = False) -> dict[str, Any]:
        """Create the registrars and the residents' accounts, then link every resident; with
        `mint`, sign everyone in meanwhile (Keycloak's work beside identity's paced links)."""
        with KeycloakUsers(self.admin) as users:
            registrars = self._registrars(users)
            started = time.perf_counter()
            counts = users.import_accounts(self.accounts, email_domain="bench.comuna.invalid", progress=self.progress)
            seconds = time.perf_counter() - started
        self.figures["accounts"] = {**counts, **_rate(len(self.accounts), seconds)}
        self._say(f"{len(self.accounts)} resident accounts in Keycloak in {seconds:.1f} s")
        if not mint:
            self.figures["links"] = self._link(registrars)
            return self.figures
        with ThreadPoolExecutor(1) as beside:
            minted = beside.submit(self.mint)
            self.figures["links"] = self._link(registrars)
            minted.result()
        return self.figures

    def _registrars(self, users: KeycloakUsers) -> list[Account]:
        started = time.perf_counter()
        registrars = [
            Account.new(self.admin.realm, registrar_username(k), first_name="Registrador", last_name="Bench")
            for k in range(self.registrars)
        ]
        users.import_accounts(registrars, email_domain="bench.comuna.invalid")
        # Signed in on `client` (one at a time per user: the pool never signs in one twice).
        with ThreadPoolExecutor(min(self.workers, len(registrars))) as pool:
            list(pool.map(lambda a: self.client.login(a.username, a.password), registrars))
        for registrar in registrars:
            self.client.call(
                "POST",
                "identity",
                "/v1/role-assignments",
                as_user="operator",
                expect=(201, 409),
                json={"subject": registrar.subject, "role": "registrar", "territory_code": self.territory},
            )
        seconds = time.perf_counter() - started
        self.figures["registrars_seconds"] = round(seconds, 1)
        self._say(f"{len(registrars)} bench registrars of {self.territory} ready in {seconds:.1f} s")
        return registrars

    def _link(self, registrars: list[Account]) -> dict[str, Any]:
        """Each registrar links its share, one after the other, all registrars at once."""
        total = len(self.accounts)
        done = 0
        lock = threading.Lock()
        started = last = time.monotonic()
        paced: list[str] = []

        def one_done() -> None:
            nonlocal done, last
            with lock:
                done += 1
                now = time.monotonic()
                if now - last >= 10.0 and done < total:
                    last = now
                    self._say(f"links: {done} of {total} ({done / (now - started):.0f}/s)")

        def first_wait(message: str) -> None:
            with lock:
                if not paced:
                    paced.append(message)
                    self._say(f"{message}; each registrar now paces itself")

        def share(k: int) -> LinkCounts:
            pairs = list(zip(self.national_ids[k :: len(registrars)], self.accounts[k :: len(registrars)], strict=True))
            return link_accounts(self.client, registrars[k].username, pairs, progress=first_wait, on_done=one_done)

        with ThreadPoolExecutor(len(registrars)) as pool:
            shares = list(pool.map(share, range(len(registrars))))
        seconds = time.monotonic() - started
        counts = LinkCounts()
        for part in shares:
            counts.add(part)
        self._say(
            f"{counts.linked} residents linked, {counts.already} already linked, in {seconds:.1f} s"
            f" ({total / seconds:.0f}/s, {counts.waits} waits on Retry-After)"
        )
        return {
            "linked": counts.linked,
            "already_linked": counts.already,
            "rate_limited": counts.waits,
            **_rate(total, seconds),
        }

    # -- tokens ----------------------------------------------------------------------------------
    def mint(self) -> list[str]:
        """Sign every resident in (password grant); their access tokens, in order."""
        token_url = self.client.token_url
        accounts = self.accounts
        started = time.perf_counter()
        self.tokens = in_parallel(
            lambda i: password_grant(self._http, token_url, accounts[i].username, accounts[i].password),
            len(accounts),
            workers=self.workers,
            what="sign-ins",
            progress=self.progress,
        )
        seconds = time.perf_counter() - started
        self.figures["tokens"] = _rate(len(accounts), seconds)
        self._say(
            f"{len(accounts)} residents signed in in {seconds:.1f} s ({len(accounts) / seconds:.0f}/s);"
            f" the oldest token expires in {self.valid_for():.0f} s"
        )
        return [t.access for t in self.tokens]

    def refresh(self) -> list[str]:
        """Fresh access tokens for every resident, in order: a refresh grant for each session
        `mint` opened (nothing hashed); residents not signed in yet (no `mint` before) or whose
        session ended (idle 30 min) sign in again with their password."""
        if len(self.tokens) != len(self.accounts):
            return self.mint()
        token_url = self.client.token_url
        current, accounts = self.tokens, self.accounts
        again: list[int] = []

        def one(i: int) -> Tokens:
            try:
                return refresh_grant(self._http, token_url, current[i], accounts[i].username)
            except StepFailed:
                again.append(i)  # list.append is atomic: no lock needed across the pool's threads
                return password_grant(self._http, token_url, accounts[i].username, accounts[i].password)

        started = time.perf_counter()
        self.tokens = in_parallel(
            one, len(current), workers=self.workers, what="token refreshes", progress=self.progress
        )
        seconds = time.perf_counter() - started
        signed_in_again = len(again)
        self.figures["refreshes"] = {**_rate(len(current), seconds), "signed_in_again": signed_in_again}
        note = f", {signed_in_again} signed in again (session ended)" if signed_in_again else ""
        self._say(f"{len(current)} tokens refreshed in {seconds:.1f} s ({len(current) / seconds:.0f}/s){note}")
        return [t.access for t in self.tokens]

    def valid_for(self) -> float:
        """Seconds the oldest access token is still valid (0 if none)."""
        if not self.tokens:
            return 0.0
        return max(0.0, min(t.expires_at for t in self.tokens) - time.monotonic())


def prepare_online_voters(
    client: PlatformClient,
    admin: RealmAdmin,
    national_ids: list[str],
    *,
    progress: Progress | None = notice,
    **options: Any,
) -> list[str]:
    """One access token per resident (same order), each resident's account created and linked:
    call it before freezing the roll. `options`: those of `OnlineVoters`."""
    with OnlineVoters(client, admin, national_ids, progress=progress, **options) as voters:
        voters.enrol(mint=True)
        return [t.access for t in voters.tokens]


def _rate(count: int, seconds: float) -> dict[str, Any]:
    return {"count": count, "seconds": round(seconds, 2), "per_second": round(count / seconds, 1) if seconds else None}


# -- a check against `make run` ----------------------------------------------------------------
def check(state_dir: Path, residents: int, *, together: bool = False) -> dict[str, Any]:
    """Seed `residents` the way the ballot bench does, make them online voters, then check each
    token: it verifies as the services verify tokens, and identity's `/v1/me` shows its link."""
    import asyncio

    from comuna_devstack.benches.ballots import _national_id, _seed
    from comuna_devstack.stack import AUDIENCE, SERVICES, Stack, StackConfig
    from comuna_platform.auth import TokenVerifier

    config = StackConfig.from_environment(state_dir.resolve())
    passwords = Stack.read_staff_passwords(config.state_dir)
    client = PlatformClient({s: config.http_url(s) for s in SERVICES}, token_url=config.token_url, timeout=120.0)
    try:
        for user in ("operator", "registrar"):
            client.login(user, passwords[user])
        _seed(client, residents, passwords["registrar"])
        national_ids = [_national_id(i) for i in range(residents)]
        with OnlineVoters(client, RealmAdmin.for_stack(config), national_ids) as voters:
            started = time.perf_counter()
            if together:
                voters.enrol(mint=True)
            else:
                voters.enrol()
                voters.mint()
            prepared = time.perf_counter() - started
            tokens = voters.refresh()
            subjects = [a.subject for a in voters.accounts]
            figures = {**voters.figures, "prepare_seconds": round(prepared, 1)}

        async def verify_all() -> list[str]:
            verifier = TokenVerifier(config.issuer_url, AUDIENCE)
            return [(await verifier.verify(token)).subject for token in tokens]

        verified = asyncio.run(verify_all())
        me_url = f"{config.http_url('identity')}/v1/me"

        def me(token: str) -> Any:
            response = client.http.get(me_url, headers={"Authorization": f"Bearer {token}"})
            response.raise_for_status()
            return response.json()

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(me, tokens))
    finally:
        client.close()
    return {
        **figures,
        "tokens_verified": sum(v == s for v, s in zip(verified, subjects, strict=True)),
        "me_linked": sum(
            a["subject"] == s and a["resident_id"] is not None for a, s in zip(answers, subjects, strict=True)
        ),
        "distinct_residents": len({a["resident_id"] for a in answers}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Check online voters against `make run` (figures on stdout).")
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--together", action="store_true", help="sign in while linking (prepare_online_voters)")
    args = parser.parse_args()
    report = check(args.state_dir, args.residents, together=args.together)
    print(json.dumps(report, indent=2))
    ok = report["tokens_verified"] == report["me_linked"] == report["distinct_residents"] == args.residents
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
