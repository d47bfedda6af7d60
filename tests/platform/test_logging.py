"""Logs are JSON lines that carry the service name and the current trace and span ids."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider

from comuna_platform.telemetry import setup_logging


def test_log_lines_are_json_with_trace_ids() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        setup_logging("funding", "INFO")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("request") as span:
            logging.getLogger("comuna.test").info("allocated", extra={"commune": "VE.13.01.C001"})
        logging.getLogger("comuna.test").warning("outside any span")
    finally:
        root.handlers[:], root.level = saved_handlers, saved_level
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["message"] == "allocated" and inside["level"] == "INFO" and inside["service"] == "funding"
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["commune"] == "VE.13.01.C001"
    assert outside["trace_id"] is None
