"""Plug-in funding sources: a state's or a municipality's own treasury, reached over the
`comuna.funding.source.v1` gRPC contract (the national fund is built into funding's ledger).

`remote.RemoteSource` only translates between that contract and plain values and exceptions;
what a reservation means for the ledger is the caller's business.
"""

from comuna_funding.sources.remote import (
    CancelOutcome,
    ConflictKind,
    MovementKind,
    RemoteSource,
    SourceCancellation,
    SourceCommit,
    SourceConflict,
    SourceDescription,
    SourceError,
    SourceFunds,
    SourceInvalidRequest,
    SourceMovement,
    SourceNotFound,
    SourceProtocolError,
    SourceRefused,
    SourceReservation,
    SourceStatement,
    SourceUnavailable,
    UnavailableCause,
)

__all__ = [
    "CancelOutcome",
    "ConflictKind",
    "MovementKind",
    "RemoteSource",
    "SourceCancellation",
    "SourceCommit",
    "SourceConflict",
    "SourceDescription",
    "SourceError",
    "SourceFunds",
    "SourceInvalidRequest",
    "SourceMovement",
    "SourceNotFound",
    "SourceProtocolError",
    "SourceRefused",
    "SourceReservation",
    "SourceStatement",
    "SourceUnavailable",
    "UnavailableCause",
]
