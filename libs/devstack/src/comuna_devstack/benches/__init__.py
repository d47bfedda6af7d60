"""Benchmarks that need more than the REST API (`comuna-dev bench <name>`): figures, not tests."""
