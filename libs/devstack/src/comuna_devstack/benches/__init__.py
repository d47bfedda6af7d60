"""Benchmarks `make bench` runs: each module has `run(admin_url) -> dict` and starts nothing itself."""
