"""The console script every service exposes: `comuna-<svc> serve | migrate | openapi`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from comuna_platform.migrations import migrate
from comuna_platform.runtime import ServiceSpec, serve


def run_cli(spec: ServiceSpec, migrations_dir: Path) -> None:
    parser = argparse.ArgumentParser(prog=f"comuna-{spec.name}", description=spec.title)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the REST and gRPC servers, outbox relay and consumers")
    commands.add_parser("migrate", help="apply database migrations up to the latest revision")
    commands.add_parser("openapi", help="print the OpenAPI document")
    args = parser.parse_args()
    command = args.command or "serve"
    if command == "migrate":
        migrate(migrations_dir, spec.settings_factory())
    elif command == "openapi":
        print(json.dumps(openapi_document(spec), indent=2))
    else:
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is a dependency; keep the fallback honest
            pass
        asyncio.run(serve(spec))


def openapi_document(spec: ServiceSpec) -> dict[str, object]:
    from fastapi import FastAPI

    from comuna_platform.http import create_app

    app: FastAPI = create_app(service=spec.name, title=spec.title, description=spec.description, routers=spec.routers)
    return app.openapi()
