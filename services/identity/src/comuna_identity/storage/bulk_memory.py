"""Memory for the set-based statements of a bulk transaction (a census import, a roll freeze).

PostgreSQL's default `work_mem` (4 MB) makes every sort and hash of a million rows spill to
disk in batches: a 1M-voter freeze's joins ran in 8 to 16 batches and its sort by key wrote
73 MB of temporary files. The setting is per sort or hash node and only for the transaction
that asks (`SET LOCAL`), so the server's default stays what its operator chose.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

BULK_WORK_MEM = "256MB"


async def use_bulk_memory(conn: AsyncConnection | AsyncSession) -> None:
    await conn.execute(text(f"SET LOCAL work_mem = '{BULK_WORK_MEM}'"))
