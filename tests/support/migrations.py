"""Compare a migrated database with the models, as every service's Alembic env targets them."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_platform.events.tables import events_metadata


def migration_target(service_metadata: MetaData) -> MetaData:
    """The service's models plus the platform's outbox/inbox tables."""
    combined = MetaData()
    for metadata in (service_metadata, events_metadata):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined


async def schema_diff(url: str, service_metadata: MetaData) -> list[Any]:
    """Alembic's differences between the database at `url` and the models; [] when in step."""
    target = migration_target(service_metadata)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), target)
            )
    finally:
        await engine.dispose()
