"""The verification benchmark's record, written with the service's own encoders, verifies with
the independent `comuna-verify` (so the benchmark measures an honest run), and reports its
figures."""

from __future__ import annotations

from comuna_devstack.benches import verify


def test_the_generated_record_verifies_and_the_figures_are_reported() -> None:
    report = verify.run(3_000, communes=7, batch=64)
    assert report["verified"] is True and report["mismatches"] == [], report
    # 47 batches of 64 ballots (the last of 56), then a bulletin and a result per commune.
    assert report["entries"] == 47 + 2 * 7
    assert report["verify_seconds"] > 0 and report["verify_peak_rss_mb"] > 0
