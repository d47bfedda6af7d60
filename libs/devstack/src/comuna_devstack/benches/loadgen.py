"""HTTP load for the benchmarks: vegeta (Go), built once from the Go module proxy.

Why not Python: on two shared cores a Python client spends as much CPU per request as the
server it measures (aiohttp reached half of what vegeta reaches against the same bare
endpoint), so the figure would be the client's. vegeta is the well-kept Go load generator
made for this: per-request bodies and headers, closed loop (`rate=None`: as fast as `workers`
connections allow) or open loop (`rate`: requests per second, whatever the latency), and a
JSON report with latency percentiles and status counts.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comuna_devstack.errors import DevStackError
from comuna_devstack.locations import cache_root, owned_temp_dir

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
# vegeta reports the end of a lazily read target file as one failed request with this error.
_END_OF_TARGETS = "no targets to attack"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None


def vegeta() -> Path:
    """The vegeta binary, `go install`ed into the cache the first time (about 20 s)."""
    target = cache_root() / "tools" / f"vegeta-{VEGETA_VERSION}"
    binary = target / "vegeta"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise DevStackError("the ballot benchmark drives load with vegeta, built with Go: install Go 1.22 or newer")
    print(f"comuna-dev: building vegeta {VEGETA_VERSION} with Go (once)", file=sys.stderr, flush=True)
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [go, "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
        env={**_go_env(), "GOBIN": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.exists():
        raise DevStackError(f"building vegeta failed: {done.stderr.strip()[-400:]}")
    return binary


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Its own module and build caches, so a root CI run and a user's shell do not share one.
    env.setdefault("GOPATH", str(cache_root() / "go"))
    env.setdefault("GOFLAGS", "-modcacherw")
    return env


def attack(requests: Iterable[Request], *, label: str, workers: int, rate: float | None = None) -> dict[str, Any]:
    """Send every request once; `rate=None` as fast as `workers` connections go, else open loop.
    `label` names the load in the progress lines (stderr).

    Returns requests, seconds, per_second, p50/p99/max in ms and the status counts ("0": a
    transport error, listed under `errors`).
    """
    binary = vegeta()
    scratch = owned_temp_dir(cache_root() / "scratch", "loadgen")
    try:
        targets = scratch / "targets.jsonl"
        sent = _write_targets(targets, requests)
        results = scratch / "results.bin"
        pace = f"open loop at {int(rate)}/s" if rate is not None else f"closed loop, {workers} connections"
        print(f"comuna-dev: {label}: {sent} requests, {pace}", file=sys.stderr, flush=True)
        _run(_attack_command(binary, targets, results, workers=workers, rate=rate))
        report = json.loads(_run([str(binary), "report", "-type=json", str(results)]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summarise(report, sent)


def attack_rounds(rounds: Iterable[Callable[[], Iterable[Request]]], *, label: str, workers: int) -> dict[str, Any]:
    """`attack` in closed loop, one round after another, reported as one load. Each round's
    requests are built just before it is sent, so a load longer than a token's lifetime can
    carry a fresh token in each round; the gap between rounds is the time to write a round's
    targets (milliseconds)."""
    binary = vegeta()
    scratch = owned_temp_dir(cache_root() / "scratch", "loadgen")
    try:
        sent, outputs = 0, []
        for number, make_requests in enumerate(rounds):
            targets, results = scratch / f"targets-{number}.jsonl", scratch / f"results-{number}.bin"
            count = _write_targets(targets, make_requests())
            print(
                f"comuna-dev: {label}: round {number + 1}, {count} requests, closed loop, {workers} connections",
                file=sys.stderr,
                flush=True,
            )
            _run(_attack_command(binary, targets, results, workers=workers, rate=None))
            targets.unlink()
            sent += count
            outputs.append(str(results))
        report = json.loads(_run([str(binary), "report", "-type=json", *outputs]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summarise(report, sent)


def _write_targets(path: Path, requests: Iterable[Request]) -> int:
    """vegeta's JSON targets, one request a line; how many."""
    sent = 0
    with path.open("w") as out:
        for request in requests:
            sent += 1
            line: dict[str, Any] = {
                "method": request.method,
                "url": request.url,
                "header": {name: [value] for name, value in request.headers.items()},
            }
            if request.body is not None:
                line["body"] = base64.b64encode(request.body).decode()
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    return sent


def _attack_command(binary: Path, targets: Path, results: Path, *, workers: int, rate: float | None) -> list[str]:
    return [
        str(binary),
        "attack",
        "-format=json",
        f"-targets={targets}",
        "-lazy",
        "-timeout=60s",
        "-keepalive=true",
        f"-workers={workers}",
        f"-max-workers={workers if rate is None else max(workers, int(rate))}",
        f"-rate={0 if rate is None else f'{int(rate)}/1s'}",
        f"-output={results}",
    ]


def summarise(report: Mapping[str, Any], sent: int) -> dict[str, Any]:
    """vegeta's JSON report of `sent` requests, in milliseconds.

    Each worker that finds the lazily read target file at its end records one failed request
    ("no targets to attack", status 0): those are not requests, and are taken out.
    """
    statuses = dict(report.get("status_codes", {}))
    phantom = int(report["requests"]) - sent
    if phantom > 0:
        statuses["0"] = statuses.get("0", phantom) - phantom
        if statuses["0"] <= 0:
            del statuses["0"]
    errors = [error for error in report.get("errors") or [] if error != _END_OF_TARGETS]
    # From the first request sent to the last answer received.
    seconds = (report["duration"] + report["wait"]) / 1e9
    latencies = report["latencies"]
    return {
        "requests": sent,
        "seconds": round(seconds, 2),
        "per_second": round(sent / seconds) if seconds else None,
        "p50_ms": round(latencies["50th"] / 1e6, 2),
        "p99_ms": round(latencies["99th"] / 1e6, 2),
        "max_ms": round(latencies["max"] / 1e6, 2),
        "statuses": dict(sorted(statuses.items())),
        "errors": errors[:5],
    }


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DevStackError(f"{Path(command[0]).name} {command[1]} failed: {done.stderr.strip()[-400:]}")
    return done.stdout
