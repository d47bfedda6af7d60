"""Benchmarks of issue 7's bulk paths (not tests: they report figures)."""
