"""Shared plumbing for every Comuna service: settings, database, events, auth, errors, telemetry."""
