"""`benches.loadgen.summarise`: vegeta's report without its end-of-targets markers."""

from __future__ import annotations

from comuna_devstack.benches.loadgen import summarise


def report(requests: int, statuses: dict[str, int], errors: list[str]) -> dict[str, object]:
    return {
        "requests": requests,
        "status_codes": statuses,
        "errors": errors,
        "duration": 2_000_000_000,
        "wait": 500_000_000,
        "latencies": {"50th": 1_500_000, "99th": 12_000_000, "max": 30_000_000},
    }


def test_each_worker_that_hit_the_end_of_the_targets_is_not_a_request() -> None:
    summary = summarise(report(1042, {"0": 42, "201": 1000}, ["no targets to attack"]), sent=1000)
    assert summary["requests"] == 1000
    assert summary["statuses"] == {"201": 1000}
    assert summary["errors"] == []
    assert summary["seconds"] == 2.5 and summary["per_second"] == 400
    assert (summary["p50_ms"], summary["p99_ms"], summary["max_ms"]) == (1.5, 12.0, 30.0)


def test_real_transport_errors_are_kept() -> None:
    summary = summarise(report(1003, {"0": 5, "201": 998}, ["no targets to attack", "connection refused"]), sent=1000)
    assert summary["statuses"] == {"0": 2, "201": 998}
    assert summary["errors"] == ["connection refused"]
