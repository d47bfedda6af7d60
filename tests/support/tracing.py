"""Spans of the services under test, caught in memory.

OpenTelemetry lets a process set its global tracer provider once; later calls are ignored. So
every test that reads spans adds its own exporter to the one SDK provider of the session, and
stops it when done, instead of setting a provider of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@contextmanager
def captured_spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        # The processor stays with the provider; a stopped exporter keeps nothing more.
        exporter.clear()
        exporter.shutdown()
