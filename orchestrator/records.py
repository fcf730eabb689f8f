"""The rows a run writes, as typed records with their Arrow schemas: the
documented output contract that the analysis scripts read."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import get_args

import pyarrow as pa

from agents.grammar import ACTION_KINDS
from agents.typing import RequestKind

REFLECT_ACTION = "REFLECT"  # the action of the row a reflection writes
ROW_ACTIONS: tuple[str, ...] = (*ACTION_KINDS, REFLECT_ACTION)  # what `action` can hold
# what a message row's `event_kind` and a prompt row's `kind` can hold: a request's
# kinds less "interview", whose prompts go to the interview's own files
EVENT_KINDS: tuple[str, ...] = tuple(k for k in get_args(RequestKind) if k != "interview")


@dataclass(frozen=True, kw_only=True)
class MessageRow:
    run_id: str
    tick: int
    request_id: int  # the row's position in its tick's file; prompts/ rows join on it
    event_id: int
    event_kind: str  # solo | encounter | reflection
    agent_id: str
    agent_name: str
    location: str  # where the agent was when it acted
    action: str  # MOVE | SAY | WORK | REST | IDLE | REFLECT
    target: str | None  # MOVE: destination
    content: str  # what was said / done (cleaned)
    goal: str  # the agent's goal (its prompt shows it)
    plan: str | None  # the plan its prompt showed (from its last reflection); None before one
    raw_text: str  # the model's output as generated (cleaned of control chars)
    prompt_tokens: int
    completion_tokens: int
    steer_E: float
    steer_A: float
    steer_C: float
    steer_O: float
    steer_N: float
    steer_layers: list[int]
    reflected: bool  # the row belongs to a reflection tick of this agent
    parse_ok: bool
    latency_ms: float


MESSAGE_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("tick", pa.int32()),
        ("request_id", pa.int32()),
        ("event_id", pa.int32()),
        ("event_kind", pa.string()),
        ("agent_id", pa.string()),
        ("agent_name", pa.string()),
        ("location", pa.string()),
        ("action", pa.string()),
        ("target", pa.string()),
        ("content", pa.string()),
        ("goal", pa.string()),
        ("plan", pa.string()),
        ("raw_text", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("steer_E", pa.float32()),
        ("steer_A", pa.float32()),
        ("steer_C", pa.float32()),
        ("steer_O", pa.float32()),
        ("steer_N", pa.float32()),
        ("steer_layers", pa.list_(pa.int32())),
        ("reflected", pa.bool_()),
        ("parse_ok", pa.bool_()),
        ("latency_ms", pa.float64()),
    ]
)


@dataclass(frozen=True, kw_only=True)
class PromptRow:
    """What one request showed the model: joins a message row on (tick, request_id)."""

    run_id: str
    tick: int
    request_id: int  # the row's position in its tick's messages file
    agent_id: str
    kind: str  # solo | encounter | reflection
    system: str  # the rendered system turn
    user: str  # the rendered user turn
    memory_ids: list[int]  # the retrieved memories shown, best first (memories/ ids)
    memory_scores: list[float]  # their retrieval scores


PROMPT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("tick", pa.int32()),
        ("request_id", pa.int32()),
        ("agent_id", pa.string()),
        ("kind", pa.string()),
        ("system", pa.string()),
        ("user", pa.string()),
        ("memory_ids", pa.list_(pa.int64())),
        ("memory_scores", pa.list_(pa.float32())),
    ]
)


@dataclass(frozen=True, kw_only=True)
class MemoryRow:
    """A memory as it was first stored (agents.typing.StoredMemory, with the run)."""

    run_id: str
    memory_id: int
    agent_id: str
    tick: int  # the tick it was made
    text: str
    importance: float  # 1..10
    kind: str  # observation | action | reflection


MEMORY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("memory_id", pa.int64()),
        ("agent_id", pa.string()),
        ("tick", pa.int32()),
        ("text", pa.string()),
        ("importance", pa.float32()),
        ("kind", pa.string()),
    ]
)

# Every agent's location at the start of every tick (where the scheduler saw it).
POSITION_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("tick", pa.int32()),
        ("agent_id", pa.string()),
        ("location", pa.string()),
    ]
)


def positions_table(run_id: str, tick: int, positions: dict[str, str]) -> pa.Table:
    """positions (agent id -> location) as a table, built column-wise: one row
    per agent per tick is too many for a record object each at 1,000 agents."""
    n = len(positions)
    return pa.table(
        {
            "run_id": [run_id] * n,
            "tick": [tick] * n,
            "agent_id": list(positions),
            "location": list(positions.values()),
        },
        schema=POSITION_SCHEMA,
    )


# agent_id/agent_name as in the messages, so msgs.merge(agents, on="agent_id") joins;
# run_id in every table, so tables of several runs stack (steersim compare).
AGENT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("agent_id", pa.string()),
        ("agent_name", pa.string()),
        ("age", pa.int32()),
        ("home", pa.string()),
        ("goal", pa.string()),
        ("E", pa.float32()),
        ("A", pa.float32()),
        ("C", pa.float32()),
        ("O", pa.float32()),
        ("N", pa.float32()),
    ]
)


@dataclass(frozen=True, kw_only=True)
class PerfRow:
    tick: int
    events: int
    requests: int  # rows in the tick's batched generate call(s)
    generate_calls: int  # backend.generate calls this tick (1, plus 1 on a reflection tick)
    prompt_tokens: int
    completion_tokens: int
    generate_s: float
    reflect_s: float
    memory_s: float
    tick_s: float
    parse_failures: int
    oom_splits: int
    rss_mb: float
    # distributed runs (orchestrator.distributed): ranks, rank 0's seconds in
    # scatter/gather, and per rank (index = rank) its rows, new tokens and generate seconds
    world_size: int = 1
    comm_s: float = 0.0
    rank_requests: list[int] = field(default_factory=list)
    rank_completion_tokens: list[int] = field(default_factory=list)
    rank_generate_s: list[float] = field(default_factory=list)


PERF_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),  # added by the writer: a PerfRow knows nothing of its run
        ("tick", pa.int32()),
        ("events", pa.int32()),
        ("requests", pa.int32()),
        ("generate_calls", pa.int32()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("generate_s", pa.float64()),
        ("reflect_s", pa.float64()),
        ("memory_s", pa.float64()),
        ("tick_s", pa.float64()),
        ("parse_failures", pa.int32()),
        ("oom_splits", pa.int32()),
        ("rss_mb", pa.float64()),
        ("world_size", pa.int32()),
        ("comm_s", pa.float64()),
        ("rank_requests", pa.list_(pa.int32())),
        ("rank_completion_tokens", pa.list_(pa.int64())),
        ("rank_generate_s", pa.list_(pa.float64())),
    ]
)

# Columns that measure time and so differ between otherwise identical runs.
TIMING_COLUMNS = (
    "latency_ms",
    "generate_s",
    "reflect_s",
    "memory_s",
    "tick_s",
    "rss_mb",
    "comm_s",
    "rank_generate_s",
)


def to_table(rows: list, schema: pa.Schema) -> pa.Table:
    """Records (dataclasses) to an Arrow table with a fixed schema, even when empty."""
    names = schema.names
    if rows:
        assert [f.name for f in fields(rows[0])] == names, "record and schema disagree"
    # getattr, not dataclasses.asdict: asdict deep-copies every value (10x slower)
    return pa.table({n: [getattr(r, n) for r in rows] for n in names}, schema=schema)
