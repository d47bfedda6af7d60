import datetime

from comuna.common.v1 import options_pb2 as _options_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsultationOpened(_message.Message):
    __slots__ = ("consultation_id", "code", "voting_opens_at", "voting_closes_at", "commune_count", "assemblies_open_at", "candidates_close_at", "roll_cutoff_at", "certification_opens_at", "max_candidates", "funds_per_commune", "funds_currency")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VOTING_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    VOTING_CLOSES_AT_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ASSEMBLIES_OPEN_AT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_CLOSE_AT_FIELD_NUMBER: _ClassVar[int]
    ROLL_CUTOFF_AT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATION_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    FUNDS_PER_COMMUNE_FIELD_NUMBER: _ClassVar[int]
    FUNDS_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    code: str
    voting_opens_at: _timestamp_pb2.Timestamp
    voting_closes_at: _timestamp_pb2.Timestamp
    commune_count: int
    assemblies_open_at: _timestamp_pb2.Timestamp
    candidates_close_at: _timestamp_pb2.Timestamp
    roll_cutoff_at: _timestamp_pb2.Timestamp
    certification_opens_at: _timestamp_pb2.Timestamp
    max_candidates: int
    funds_per_commune: int
    funds_currency: str
    def __init__(self, consultation_id: _Optional[str] = ..., code: _Optional[str] = ..., voting_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., voting_closes_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., commune_count: _Optional[int] = ..., assemblies_open_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., candidates_close_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., roll_cutoff_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certification_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_candidates: _Optional[int] = ..., funds_per_commune: _Optional[int] = ..., funds_currency: _Optional[str] = ...) -> None: ...

class CandidateRecorded(_message.Message):
    __slots__ = ("consultation_id", "candidate_id", "commune_id", "title", "assembly_priority", "category", "estimated_cost", "currency", "proposal_id", "proposing_council_id")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ASSEMBLY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSING_COUNCIL_ID_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    candidate_id: str
    commune_id: str
    title: str
    assembly_priority: int
    category: str
    estimated_cost: int
    currency: str
    proposal_id: str
    proposing_council_id: str
    def __init__(self, consultation_id: _Optional[str] = ..., candidate_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., title: _Optional[str] = ..., assembly_priority: _Optional[int] = ..., category: _Optional[str] = ..., estimated_cost: _Optional[int] = ..., currency: _Optional[str] = ..., proposal_id: _Optional[str] = ..., proposing_council_id: _Optional[str] = ...) -> None: ...

class ConsultationClosed(_message.Message):
    __slots__ = ("consultation_id", "ballots")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    BALLOTS_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    ballots: int
    def __init__(self, consultation_id: _Optional[str] = ..., ballots: _Optional[int] = ...) -> None: ...

class CandidateResult(_message.Message):
    __slots__ = ("candidate_id", "title", "votes", "rank", "assembly_priority", "estimated_cost_minor")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    ASSEMBLY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_MINOR_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    title: str
    votes: int
    rank: int
    assembly_priority: int
    estimated_cost_minor: int
    def __init__(self, candidate_id: _Optional[str] = ..., title: _Optional[str] = ..., votes: _Optional[int] = ..., rank: _Optional[int] = ..., assembly_priority: _Optional[int] = ..., estimated_cost_minor: _Optional[int] = ...) -> None: ...

class ResultSubtotal(_message.Message):
    __slots__ = ("channel", "table_id", "votes", "blank", "null_votes", "participations")
    class VotesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    BLANK_FIELD_NUMBER: _ClassVar[int]
    NULL_VOTES_FIELD_NUMBER: _ClassVar[int]
    PARTICIPATIONS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    table_id: str
    votes: _containers.ScalarMap[str, int]
    blank: int
    null_votes: int
    participations: int
    def __init__(self, channel: _Optional[str] = ..., table_id: _Optional[str] = ..., votes: _Optional[_Mapping[str, int]] = ..., blank: _Optional[int] = ..., null_votes: _Optional[int] = ..., participations: _Optional[int] = ...) -> None: ...

class CommuneResult(_message.Message):
    __slots__ = ("commune_id", "commune_code", "commune_name", "ballots", "winner_candidate_id", "candidates", "blank", "null_votes", "participations", "roll_size", "conflicts", "subtotals", "version", "supersedes_version", "recount_reason", "tie_break")
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_CODE_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_NAME_FIELD_NUMBER: _ClassVar[int]
    BALLOTS_FIELD_NUMBER: _ClassVar[int]
    WINNER_CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    BLANK_FIELD_NUMBER: _ClassVar[int]
    NULL_VOTES_FIELD_NUMBER: _ClassVar[int]
    PARTICIPATIONS_FIELD_NUMBER: _ClassVar[int]
    ROLL_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    SUBTOTALS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDES_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECOUNT_REASON_FIELD_NUMBER: _ClassVar[int]
    TIE_BREAK_FIELD_NUMBER: _ClassVar[int]
    commune_id: str
    commune_code: str
    commune_name: str
    ballots: int
    winner_candidate_id: str
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateResult]
    blank: int
    null_votes: int
    participations: int
    roll_size: int
    conflicts: int
    subtotals: _containers.RepeatedCompositeFieldContainer[ResultSubtotal]
    version: int
    supersedes_version: int
    recount_reason: str
    tie_break: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, commune_id: _Optional[str] = ..., commune_code: _Optional[str] = ..., commune_name: _Optional[str] = ..., ballots: _Optional[int] = ..., winner_candidate_id: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[CandidateResult, _Mapping]]] = ..., blank: _Optional[int] = ..., null_votes: _Optional[int] = ..., participations: _Optional[int] = ..., roll_size: _Optional[int] = ..., conflicts: _Optional[int] = ..., subtotals: _Optional[_Iterable[_Union[ResultSubtotal, _Mapping]]] = ..., version: _Optional[int] = ..., supersedes_version: _Optional[int] = ..., recount_reason: _Optional[str] = ..., tie_break: _Optional[_Iterable[str]] = ...) -> None: ...

class CommuneResultCertified(_message.Message):
    __slots__ = ("consultation_id", "consultation_code", "certified_at", "result", "funds_currency")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSULTATION_CODE_FIELD_NUMBER: _ClassVar[int]
    CERTIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FUNDS_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    consultation_code: str
    certified_at: _timestamp_pb2.Timestamp
    result: CommuneResult
    funds_currency: str
    def __init__(self, consultation_id: _Optional[str] = ..., consultation_code: _Optional[str] = ..., certified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[CommuneResult, _Mapping]] = ..., funds_currency: _Optional[str] = ...) -> None: ...

class ConsultationCertified(_message.Message):
    __slots__ = ("consultation_id", "code", "certified_at", "ballots", "commune_count", "communes_with_winner")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CERTIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    BALLOTS_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMMUNES_WITH_WINNER_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    code: str
    certified_at: _timestamp_pb2.Timestamp
    ballots: int
    commune_count: int
    communes_with_winner: int
    def __init__(self, consultation_id: _Optional[str] = ..., code: _Optional[str] = ..., certified_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ballots: _Optional[int] = ..., commune_count: _Optional[int] = ..., communes_with_winner: _Optional[int] = ...) -> None: ...

class ScheduleAmended(_message.Message):
    __slots__ = ("consultation_id", "amendment_id", "assemblies_open_at", "candidates_close_at", "roll_cutoff_at", "voting_opens_at", "voting_closes_at", "certification_opens_at", "changed", "reason", "amended_by")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMENDMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSEMBLIES_OPEN_AT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_CLOSE_AT_FIELD_NUMBER: _ClassVar[int]
    ROLL_CUTOFF_AT_FIELD_NUMBER: _ClassVar[int]
    VOTING_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    VOTING_CLOSES_AT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATION_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMENDED_BY_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    amendment_id: str
    assemblies_open_at: _timestamp_pb2.Timestamp
    candidates_close_at: _timestamp_pb2.Timestamp
    roll_cutoff_at: _timestamp_pb2.Timestamp
    voting_opens_at: _timestamp_pb2.Timestamp
    voting_closes_at: _timestamp_pb2.Timestamp
    certification_opens_at: _timestamp_pb2.Timestamp
    changed: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    amended_by: str
    def __init__(self, consultation_id: _Optional[str] = ..., amendment_id: _Optional[str] = ..., assemblies_open_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., candidates_close_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., roll_cutoff_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., voting_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., voting_closes_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certification_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., amended_by: _Optional[str] = ...) -> None: ...

class CommuneHeld(_message.Message):
    __slots__ = ("consultation_id", "commune_id", "kind", "voting_opens_at", "voting_closes_at", "reason", "held_by")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VOTING_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    VOTING_CLOSES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HELD_BY_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    commune_id: str
    kind: str
    voting_opens_at: _timestamp_pb2.Timestamp
    voting_closes_at: _timestamp_pb2.Timestamp
    reason: str
    held_by: str
    def __init__(self, consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., kind: _Optional[str] = ..., voting_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., voting_closes_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., held_by: _Optional[str] = ...) -> None: ...

class AssemblySessionRecorded(_message.Message):
    __slots__ = ("consultation_id", "commune_id", "session_id", "council_id", "held_at", "attendance", "minutes_sha256", "proposal_ids")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    COUNCIL_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_AT_FIELD_NUMBER: _ClassVar[int]
    ATTENDANCE_FIELD_NUMBER: _ClassVar[int]
    MINUTES_SHA256_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_IDS_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    commune_id: str
    session_id: str
    council_id: str
    held_at: _timestamp_pb2.Timestamp
    attendance: int
    minutes_sha256: str
    proposal_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., session_id: _Optional[str] = ..., council_id: _Optional[str] = ..., held_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attendance: _Optional[int] = ..., minutes_sha256: _Optional[str] = ..., proposal_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CommunePrioritised(_message.Message):
    __slots__ = ("consultation_id", "commune_id", "proposal_ids", "candidate_ids", "recorded_by")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_IDS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_IDS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    commune_id: str
    proposal_ids: _containers.RepeatedScalarFieldContainer[str]
    candidate_ids: _containers.RepeatedScalarFieldContainer[str]
    recorded_by: str
    def __init__(self, consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., proposal_ids: _Optional[_Iterable[str]] = ..., candidate_ids: _Optional[_Iterable[str]] = ..., recorded_by: _Optional[str] = ...) -> None: ...

class TallySheetVotes(_message.Message):
    __slots__ = ("candidate_id", "votes")
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    candidate_id: str
    votes: int
    def __init__(self, candidate_id: _Optional[str] = ..., votes: _Optional[int] = ...) -> None: ...

class TallySheetConfirmed(_message.Message):
    __slots__ = ("consultation_id", "commune_id", "table_id", "table_code", "sheet_id", "votes", "blank", "null_votes", "checked_in", "scan_sha256", "confirmed_at")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_CODE_FIELD_NUMBER: _ClassVar[int]
    SHEET_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    BLANK_FIELD_NUMBER: _ClassVar[int]
    NULL_VOTES_FIELD_NUMBER: _ClassVar[int]
    CHECKED_IN_FIELD_NUMBER: _ClassVar[int]
    SCAN_SHA256_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_AT_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    commune_id: str
    table_id: str
    table_code: str
    sheet_id: str
    votes: _containers.RepeatedCompositeFieldContainer[TallySheetVotes]
    blank: int
    null_votes: int
    checked_in: int
    scan_sha256: str
    confirmed_at: _timestamp_pb2.Timestamp
    def __init__(self, consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., table_id: _Optional[str] = ..., table_code: _Optional[str] = ..., sheet_id: _Optional[str] = ..., votes: _Optional[_Iterable[_Union[TallySheetVotes, _Mapping]]] = ..., blank: _Optional[int] = ..., null_votes: _Optional[int] = ..., checked_in: _Optional[int] = ..., scan_sha256: _Optional[str] = ..., confirmed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
