"""Benchmarks `make bench` runs: each module has `run(...) -> dict` (register, census, audit: given an
admin URL, they start nothing; roll: starts its own PostgreSQL and an identity process)."""
