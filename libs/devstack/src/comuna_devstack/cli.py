"""`comuna-dev`: run the whole platform locally, drive the demo cycle, benchmark ballots."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from comuna_devstack.client import PlatformClient, StepFailed
from comuna_devstack.errors import DevStackError
from comuna_devstack.locations import cache_root, owned_temp_dir
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import SUPERUSER, EmbeddedPostgres
from comuna_devstack.seed import seed_residents
from comuna_devstack.stack import KEYCLOAK_ADMIN, PUBLIC_CLIENT, REALM, SERVICES, Stack, StackConfig, clean_state

DEFAULT_STATE_DIR = Path(".devstack")


def _urls(config: StackConfig) -> dict[str, str]:
    return {service: config.http_url(service) for service in SERVICES}


def _notice(message: str) -> None:
    print(f"comuna-dev: {message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Start everything, wait for Ctrl-C (or SIGTERM/SIGHUP, or a service dying), stop everything.

    Leaving the `with` block by any of those stops the services, NATS and PostgreSQL; if this
    process is killed outright they follow it (PR_SET_PDEATHSIG), and the next run stops
    whatever is still alive before it checks the ports.
    """
    started = time.monotonic()
    try:
        config = StackConfig.from_environment(args.state_dir.resolve())
        stack = Stack(config, notify=_notice)
        with stack:
            client = PlatformClient(_urls(config), token_url=config.token_url)
            client.login("registrar", stack.staff_passwords()["registrar"])
            seeded = seed_residents(client, "registrar")
            client.close()
            _print_banner(stack, seeded, time.monotonic() - started)
            name, code = stack.processes.wait_any()
            print(f"service {name} exited with code {code}; stopping", file=sys.stderr)
            return 1
    except DevStackError as error:
        _notice(str(error))
        return 2
    except KeyboardInterrupt:
        print("\nstopped")
        return 0


def cmd_clean(args: argparse.Namespace) -> int:
    try:
        clean_state(args.state_dir.resolve(), notify=_notice)
    except DevStackError as error:
        _notice(str(error))
        return 2
    return 0


def _print_banner(stack: Stack, seeded: dict[str, int], elapsed: float) -> None:
    config = stack.config
    print(
        f"\nComuna is up ({elapsed:.1f} s). Seeded {seeded['territories']} territories and "
        f"{seeded['residents']} residents.\n"
    )
    for service in SERVICES:
        print(
            f"  {service:<14} REST {config.http_url(service)}/docs   gRPC 127.0.0.1:{config.grpc_ports[service]}"
            f"   metrics {config.metrics_url(service)}"
        )
    server = make_url(stack.database_url("identity"))
    print(
        f"\n  PostgreSQL     {server.host}:{server.port} (role comuna_<service>_app per service, _owner for migrations)"
    )
    print(f"  NATS           {stack.nats_url}")
    reader = stack.nats_options()
    if reader:
        # Other apps (dashboards, the press) read every stream with this user; it publishes nothing.
        print(f"  NATS read-only user {reader['user']!r}, password {reader['password']!r}:")
        print(f"    nats.connect({stack.nats_url!r}, user={reader['user']!r}, password={reader['password']!r})")
    keycloak = stack.keycloak
    started = f", started in {keycloak.startup_seconds:.0f} s" if keycloak and keycloak.startup_seconds else ""
    print(
        f"  Keycloak       {config.keycloak_url} (realm {REALM!r}{started}; admin console {config.keycloak_url}/admin,"
    )
    print(f"                 user {KEYCLOAK_ADMIN!r}, password in {stack.state_dir / 'secrets.json'})")
    print(f"  Issuer         {config.issuer_url}")
    print(
        "\nStaff (operator, registrar, auditor, spokesperson-c001, overseer-c001, ..., officer-1, officer-2;"
        f" passwords in {stack.staff_passwords_file}). A staff token from Keycloak:"
    )
    print(
        f"  curl -s -d grant_type=password -d client_id={PUBLIC_CLIENT} -d username=operator \\\n"
        '       --data-urlencode password=$(python3 -c "import json;'
        f"print(json.load(open('{stack.staff_passwords_file}'))['operator'])\") \\\n"
        f"       {config.token_url}"
    )
    print(
        "\nRun `make demo` in another terminal for a whole consultation cycle. Ctrl-C stops everything.\n", flush=True
    )


def cmd_demo(args: argparse.Namespace) -> int:
    config = StackConfig.from_environment(args.state_dir.resolve())
    from comuna_devstack.demo import run_demo
    from comuna_devstack.record_check import dev_witness
    from comuna_devstack.residents import RealmAdmin

    client = PlatformClient(_urls(config), token_url=config.token_url)
    try:
        passwords = Stack.read_staff_passwords(config.state_dir)
        summary = run_demo(
            client,
            passwords,
            keycloak=RealmAdmin.for_stack(config),
            record_state=config.state_dir / "record",
            witness=dev_witness(config.state_dir),
            treasury_target=f"127.0.0.1:{config.treasury_port}",
        )
    except (StepFailed, DevStackError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    finally:
        client.close()
    print(json.dumps({"ok": True, **summary}, indent=2, ensure_ascii=False))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from comuna_devstack.register_gen import generate, stderr_progress, write

    rows = generate(args.seed, parishes=not args.no_parishes, progress=stderr_progress)
    if args.out is None:
        count = write(rows, sys.stdout, args.format)
    else:
        with args.out.open("w", encoding="utf-8", newline="") as out:
            count = write(rows, out, args.format)
    print(f"generate register: {count} units written to {args.out or 'stdout'}", file=sys.stderr)
    return 0


def cmd_bench_register(args: argparse.Namespace) -> int:
    """The register benchmark alone, against a throw-away PostgreSQL on a free port."""
    from comuna_devstack.benches.register import run
    from comuna_devstack.locations import cache_root, owned_temp_dir
    from comuna_devstack.ports import free_port
    from comuna_devstack.postgres import EmbeddedPostgres

    scratch = owned_temp_dir(cache_root() / "scratch", "bench-register")
    try:
        with EmbeddedPostgres(scratch / "pg", free_port(), fast=True) as server:
            server.create_database("bench_register")
            report = run(server.dsn("bench_register"), seed=args.seed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if report["meets_target"] else 1


# What `comuna-dev bench all` (`make bench`) runs, in order, at the sizes the issues set.
BENCH_ALL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("register", ()),
    ("census", ("--residents", "1000000")),
    ("audit", ("--entries", "1000000")),
    ("roll", ("--voters", "5000000")),
    ("ballots", ("--ballots", "100000", "--online", "5000", "--concurrency", "64")),
    ("ballot-commit", ("--ballots", "100000", "--concurrency", "512")),
    ("certify", ("--ballots", "6500000")),
    ("verify", ("--ballots", "6500000")),
    ("ledger", ("--single", "20000", "--batched", "200000", "--concurrency", "64", "--batch-size", "1000")),
)


def cmd_bench_all(args: argparse.Namespace) -> int:
    """Every benchmark, one process each (their progress on stderr), their figures gathered in
    one JSON object; a benchmark that fails is reported as such and the others still run."""
    program = Path(sys.argv[0]).resolve()
    results: dict[str, Any] = {}
    for name, options in BENCH_ALL:
        _notice(f"bench {name}: started")
        started = time.monotonic()
        done = subprocess.run(
            [str(program), "--state-dir", str(args.state_dir), "bench", name, *options],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        try:
            results[name] = json.loads(done.stdout)
        except json.JSONDecodeError:
            results[name] = {"ok": False, "exit_status": done.returncode, "output": done.stdout[-500:]}
        if done.returncode != 0 and isinstance(results[name], dict):
            results[name].setdefault("exit_status", done.returncode)
        _notice(f"bench {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s")
    print(json.dumps(results, indent=2))
    return 0 if all(isinstance(r, dict) and "exit_status" not in r for r in results.values()) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "all":
        return cmd_bench_all(args)
    if args.what == "roll":
        return cmd_bench_roll(args)
    if args.what == "register":
        return cmd_bench_register(args)
    if args.what == "census":
        return cmd_bench_census(args)
    if args.what == "audit":
        return cmd_bench_audit(args)
    if args.what == "ballot-commit":
        return cmd_bench_ballot_commit(args)
    if args.what == "certify":
        return cmd_bench_certify(args)
    if args.what == "verify":
        return cmd_bench_verify(args)
    if args.what == "ledger":
        return cmd_bench_ledger(args)
    from comuna_devstack.benches.ballots import run_bench
    from comuna_devstack.residents import RealmAdmin

    if not 0 <= args.online < args.ballots:
        print("comuna-dev bench ballots: --online must be at least 0 and below --ballots", file=sys.stderr)
        return 2

    config = StackConfig.from_environment(args.state_dir.resolve())
    admin_url = args.admin_url or (
        f"{config.postgres_url.rstrip('/')}/postgres"
        if config.postgres_url
        else f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{config.pg_port}/postgres"
    )
    try:
        passwords = Stack.read_staff_passwords(config.state_dir)
        report = run_bench(
            _urls(config),
            config.token_url,
            passwords,
            ballots=args.ballots,
            concurrency=args.concurrency,
            rate=args.rate,
            online=args.online,
            admin_url=admin_url,
            realm_admin=RealmAdmin.for_stack(config),
        )
    except (StepFailed, DevStackError) as exc:
        _notice(f"bench ballots: {exc}")
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    except httpx.TransportError as exc:
        error = f"cannot reach the platform ({exc}): start it with `make run` and wait for it to say it is up"
        _notice(f"bench ballots: {error}")
        print(json.dumps({"ok": False, "error": error}, indent=2))
        return 1
    print(json.dumps(report, indent=2))
    return 0 if report["counts_match"] else 1


def cmd_bench_ballot_commit(args: argparse.Namespace) -> int:
    """The ballot group commit on a durable PostgreSQL of its own (no `make run` needed)."""
    from comuna_devstack.benches import ballot_commit

    if args.ballots < 100 or args.concurrency < 1 or args.rate <= 0:
        print("comuna-dev bench ballot-commit: --ballots >= 100, --concurrency >= 1, --rate > 0", file=sys.stderr)
        return 2
    try:
        report = ballot_commit.run(args.ballots, concurrency=args.concurrency, rate=args.rate)
    except (DevStackError, RuntimeError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


def cmd_bench_roll(args: argparse.Namespace) -> int:
    """Freeze and stream a roll of `--voters` on a PostgreSQL of its own (no `make run` needed)."""
    from comuna_devstack.benches import roll

    if args.voters < 1:
        print("comuna-dev bench roll: --voters must be at least 1", file=sys.stderr)
        return 2
    try:
        report = roll.run(args.voters)
    except (DevStackError, RuntimeError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0


def cmd_bench_certify(args: argparse.Namespace) -> int:
    """Certify `--ballots` across 5,336 communes on a PostgreSQL of its own, next to a raw GROUP BY,
    and the RSS of a serving consultations process with the roll loaded (no `make run` needed)."""
    from comuna_devstack.benches import certify

    if args.ballots < 1 or args.communes < 1 or args.roll < 0:
        print(
            "comuna-dev bench certify: --ballots and --communes must be at least 1, --roll at least 0", file=sys.stderr
        )
        return 2
    try:
        report = certify.run(args.ballots, communes=args.communes, roll=args.roll)
    except (DevStackError, RuntimeError, OSError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": True, **report}, indent=2))
    return 0 if report["meets_target"] else 1


def cmd_bench_verify(args: argparse.Namespace) -> int:
    """`comuna-verify` on a generated record of `--ballots` across `--communes`, served from
    files (no `make run` needed): its time and peak memory."""
    from comuna_devstack.benches import verify

    if args.ballots < 1 or args.communes < 1 or args.batch < 1:
        print("comuna-dev bench verify: --ballots, --communes and --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        report = verify.run(args.ballots, communes=args.communes, batch=args.batch)
    except (DevStackError, RuntimeError, OSError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    print(json.dumps({"ok": report["verified"], **report}, indent=2))
    return 0 if report["verified"] else 1


def cmd_bench_ledger(args: argparse.Namespace) -> int:
    """Transfers/s through funding's REST API, single and batched, next to plain SQL on the same
    PostgreSQL, then the ledger checked (against `make run`)."""
    from comuna_devstack.benches import ledger

    if args.single < 1 or args.batched < 1 or args.concurrency < 1 or not 1 <= args.batch_size <= ledger.MAX_BATCH:
        print(
            "comuna-dev bench ledger: --single, --batched and --concurrency must be at least 1, "
            f"--batch-size from 1 to {ledger.MAX_BATCH}",
            file=sys.stderr,
        )
        return 2
    config = StackConfig.from_environment(args.state_dir.resolve())
    admin_url = args.admin_url or (
        f"{config.postgres_url.rstrip('/')}/postgres"
        if config.postgres_url
        else f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{config.pg_port}/postgres"
    )
    try:
        report = ledger.run_bench(
            _urls(config),
            config.token_url,
            Stack.read_staff_passwords(config.state_dir),
            single=args.single,
            batched=args.batched,
            concurrency=args.concurrency,
            batch_size=args.batch_size,
            admin_url=admin_url,
            state_dir=config.state_dir,
            metrics_url=config.metrics_url("funding"),
        )
    except (StepFailed, DevStackError, asyncpg.PostgresError) as exc:
        _notice(f"bench ledger: {exc}")
        print(json.dumps({"ok": False, "error": str(exc)}, indent=2))
        return 1
    except (httpx.TransportError, ConnectionError) as exc:
        error = f"cannot reach the platform ({exc}): start it with `make run` and wait for it to say it is up"
        _notice(f"bench ledger: {error}")
        print(json.dumps({"ok": False, "error": error}, indent=2))
        return 1
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def cmd_bench_census(args: argparse.Namespace) -> int:
    """Its own throw-away PostgreSQL (or `--admin-url`), never the running stack's."""
    from comuna_devstack.benches.census import run

    if args.admin_url:
        report = run(args.admin_url, args.residents)
    else:
        # A place the server's own account can traverse (as the tests' clusters use).
        scratch = owned_temp_dir(cache_root() / "scratch", "bench")
        try:
            with EmbeddedPostgres(scratch / "pg", free_port(), fast=True) as server:
                report = run(server.dsn(), args.residents)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


def cmd_bench_audit(args: argparse.Namespace) -> int:
    """Identity's audit log: 10^6 entries appended in one call, then verified, next to a raw COPY.
    Works in a throw-away database of the dev stack's PostgreSQL (or `--admin-url`)."""
    from comuna_devstack.benches import audit

    if args.entries < 1:
        _notice("--entries must be at least 1")
        return 2
    admin_url = args.admin_url
    if admin_url is None:
        config = StackConfig.from_environment(args.state_dir.resolve())
        admin_url = (
            f"{config.postgres_url.rstrip('/')}/postgres"
            if config.postgres_url
            else f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{config.pg_port}/postgres"
        )
    try:
        report = audit.run(admin_url, entries=args.entries)
    except (OSError, asyncpg.PostgresError) as exc:
        _notice(f"PostgreSQL unavailable at the admin URL (is `make run` up?): {exc.__class__.__name__}")
        return 2
    print(json.dumps(report, indent=2))
    return 0 if report["intact"] else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="comuna-dev", description=__doc__)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="where the embedded servers keep their data and secrets (default .devstack)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start PostgreSQL, NATS and the four services; seed a demo territory")
    commands.add_parser("demo", help="drive one whole consultation cycle against a running platform")
    commands.add_parser(
        "clean", help="stop what a killed run left behind; delete the state directory and relocated PostgreSQL data"
    )
    bench = commands.add_parser(
        "bench",
        help="all: every benchmark below, one JSON object (`make bench`); "
        "ballots: cast ballots through the REST API against `make run` (default); "
        "register: import the synthetic national register into a throw-away database; "
        "census: import residents through the CLI into a throw-away database; "
        "audit: append and verify identity's audit log; "
        "roll: freeze a voter roll and stream it to consultations; "
        "ballot-commit: the ballot group commit against a durable PostgreSQL of its own, next to a raw COPY; "
        "certify: certify every commune of a national consultation, next to a raw GROUP BY; "
        "verify: comuna-verify on a generated national record served from files; "
        "ledger: transfers through funding's REST API, single and batched, next to plain SQL, against `make run`",
    )
    bench.add_argument(
        "what",
        nargs="?",
        choices=[
            "all",
            "ballots",
            "ballot-commit",
            "register",
            "census",
            "audit",
            "roll",
            "certify",
            "verify",
            "ledger",
        ],
        default="ballots",
    )
    bench.add_argument("--ballots", type=int, default=100_000)
    bench.add_argument("--residents", type=int, default=1_000_000, help="census: residents to import")
    bench.add_argument(
        "--admin-url",
        help="census, audit, ballots, ledger: a PostgreSQL superuser URL (default: an embedded one / the dev stack's)",
    )
    bench.add_argument("--voters", type=int, default=5_000_000, help="roll: eligible voters to seed")
    bench.add_argument("--concurrency", type=int, default=64)
    bench.add_argument(
        "--online", type=int, default=5_000, help="ballots: of --ballots, how many residents vote online (own accounts)"
    )
    bench.add_argument(
        "--rate", type=float, default=1000.0, help="ballots, ballot-commit: open-loop ballots/s for the p99"
    )
    bench.add_argument("--communes", type=int, default=5_336, help="certify, verify: communes of the consultation")
    bench.add_argument("--batch", type=int, default=128, help="verify: ballots per group-commit batch in the record")
    bench.add_argument("--roll", type=int, default=8_000_000, help="certify: roll entries (turnout ~81%%)")
    bench.add_argument("--seed", type=int, default=1, help="register: the generator's seed")
    bench.add_argument("--single", type=int, default=20_000, help="ledger: single transfers through the API")
    bench.add_argument("--batched", type=int, default=200_000, help="ledger: transfers sent in batches")
    bench.add_argument("--batch-size", type=int, default=1_000, help="ledger: transfers per batch (at most 8,190)")
    generate = commands.add_parser("generate", help="write synthetic data sets")
    generate.add_argument("dataset", choices=["register"], help="register: the national territory register")
    generate.add_argument("--out", type=Path, help="file to write (default stdout)")
    generate.add_argument("--format", choices=["csv", "json"], default="csv")
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("--no-parishes", action="store_true", help="communes directly under municipalities")
    bench.add_argument("--entries", type=int, default=1_000_000, help="audit: entries appended in one call")
    args = parser.parse_args()
    handler = {"run": cmd_run, "demo": cmd_demo, "bench": cmd_bench, "clean": cmd_clean, "generate": cmd_generate}[
        args.command
    ]
    raise SystemExit(handler(args))
