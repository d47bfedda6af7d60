"""The identity side of the roll benchmark, as its own process: prepare the entry keys, freeze
the roll, then serve GetRoll and StreamRoll over gRPC until stdin closes.

It runs identity's own use cases (`comuna_identity.domain.roll`) on identity's schema; the gRPC
servicer here is a thin one without the platform's token check (the benchmark has no Keycloak),
otherwise the same calls as `comuna_identity.grpc.rolls`. Reports each phase as a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import grpc

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_identity.domain import roll
from comuna_identity.domain.roll_keys import RollSecret
from comuna_identity.grpc.rolls import summary_message
from comuna_platform.db import Database


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class BenchRollServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, db: Database, secret: RollSecret) -> None:
        self.db = db
        self.secret = secret

    async def GetRoll(self, request: pb.GetRollRequest, context: Any) -> pb.GetRollResponse:
        consultation_id = uuid.UUID(request.consultation_id)
        keys = self.secret.for_consultation(consultation_id)
        async with self.db.unit_of_work() as uow:
            found = await roll.summary(uow, consultation_id)
        return pb.GetRollResponse(summary=summary_message(found), voter_key=keys.voter_key, login_key=keys.login_key)

    async def StreamRoll(self, request: pb.StreamRollRequest, context: Any) -> AsyncIterator[pb.RollChunk]:
        consultation_id = uuid.UUID(request.consultation_id)
        after = request.after_seq
        while True:
            async with self.db.unit_of_work() as uow:
                chunk = await roll.chunk(uow, consultation_id, after_seq=after, size=request.chunk_size)
            if not chunk.count:
                return
            yield pb.RollChunk(first_seq=chunk.first_seq, entries=chunk.packed, entry_count=chunk.entry_count)
            after = chunk.first_seq + chunk.count - 1


async def main(args: argparse.Namespace) -> None:
    db = Database(args.database_url, pool_size=4)
    secret = RollSecret(os.environ["COMUNA_BENCH_ROLL_SECRET"].encode())
    consultation_id = uuid.UUID(args.consultation_id)
    cutoff = date.fromisoformat(args.cutoff)
    terms = roll.RollTerms.of(
        consultation_id, cutoff, cutoff + timedelta(days=30), [uuid.UUID(c) for c in args.communes]
    )
    async with db.unit_of_work() as uow:
        await roll.request_freeze(uow, terms)
    with ThreadPoolExecutor(args.threads) as pool:
        # Ahead of the cut-off (the day before): keys only.
        ahead = roll.RollFreezer(
            db, secret, voting_age=15, threads=args.threads, today=lambda: cutoff - timedelta(days=1)
        )
        started = time.perf_counter()
        await ahead.process(consultation_id, pool)
        say(phase="prepare", seconds=time.perf_counter() - started, split=ahead.last_split)
        # At the cut-off: the freeze (missing keys, entries, counts, digest).
        at_cutoff = roll.RollFreezer(db, secret, voting_age=15, threads=args.threads, today=lambda: cutoff)
        started = time.perf_counter()
        await at_cutoff.process(consultation_id, pool)
        say(phase="freeze", seconds=time.perf_counter() - started, split=at_cutoff.last_split)
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 8 * 1024 * 1024)])
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(BenchRollServicer(db, secret), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    say(phase="serving", port=port)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(grace=1)
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--consultation-id", required=True)
    parser.add_argument("--cutoff", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("communes", nargs="+")
    asyncio.run(main(parser.parse_args()))
