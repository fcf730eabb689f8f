"""A run folder as the replay page's data: one small `meta` part (the run,
the locations, every agent with its traits, goal, plans and the ticks it
acted in) and one part per tick (where every agent was, what each acting
agent did, the prompt and retrieved memories behind it, the memories made).
The page loads a tick's part only when it shows that tick, so a 1,000-agent
run opens as fast as a small one.

It reads the documented dump layout through orchestrator.dumps_reader and
knows nothing about HTML; orchestrator.replay.page turns the parts into a page.
Runs made before prompts/, memories/ or positions/ existed still replay:
positions are then rebuilt from the homes and the MOVE rows, and the agent
panel says that the prompts were not recorded."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc

from agents.typing import TRAITS
from orchestrator.dumps_reader import DumpsError, load_run, load_tick_folder, read_arrow
from orchestrator.records import (
    EVENT_KINDS,
    MEMORY_SCHEMA,
    POSITION_SCHEMA,
    PROMPT_SCHEMA,
    ROW_ACTIONS,
)
from orchestrator.storage import RunDir

log = logging.getLogger(__name__)

FORMAT = "steersim-replay/1"


class ReplayData:
    """The page's data: `meta`, embedded as it is, and `parts()`, the part of
    each tick of `meta["ticks"]` in order, made one at a time when asked for:
    the prompts of a 1,000-agent run are hundreds of MB as Python objects, so
    only one tick's are ever held."""

    def __init__(self, meta: dict[str, Any], make_part: Callable[[int], dict[str, Any]]) -> None:
        self.meta = meta
        self._make_part = make_part

    def parts(self) -> Iterator[dict[str, Any]]:
        for tick in self.meta["ticks"]:
            yield self._make_part(tick)


def build_replay_data(run_dir: Path) -> ReplayData:
    """Everything the replay page shows of the run in `run_dir`."""
    dumps = load_run(run_dir)
    layout = RunDir(run_dir)
    msgs = dumps.messages
    memories = load_tick_folder(layout.memories, MEMORY_SCHEMA)
    positions = load_tick_folder(layout.positions, POSITION_SCHEMA)
    has_prompts = any(layout.prompts.glob("tick_*.parquet"))

    agents = _agents(dumps.agents, msgs)
    index = {a["id"]: i for i, a in enumerate(agents)}
    _check_agents_known(msgs, index, layout)
    _check_values(msgs, layout.messages, {"action": ROW_ACTIONS, "event_kind": EVENT_KINDS})
    locations = _locations(dumps.manifest, agents, msgs, positions)
    loc_index = {loc: i for i, loc in enumerate(locations)}
    ticks = _ticks(layout, msgs)

    # tick -> agent index -> location index, as the run recorded it or rebuilt
    where = (
        _recorded_positions(positions, index, loc_index)
        if positions is not None
        else _rebuilt_positions(ticks, agents, msgs, index, loc_index)
    )
    memory_of = _memory_lookup(memories)
    new_memories = _memories_by_tick(memories, index)
    rows_of = msgs.groupby("tick").indices if len(msgs) else {}  # tick -> row positions

    def make_part(tick: int) -> dict[str, Any]:
        prompt_of = _prompts_of_tick(layout, tick) if has_prompts else {}
        part_rows = []
        at = rows_of.get(tick)
        if at is not None and prompt_of:
            _check_prompt_agents(prompt_of, msgs.iloc[at], layout.tick_file(tick, layout.prompts))
        if at is not None:
            for r in msgs.iloc[at].itertuples(index=False):
                a = index.get(r.agent_id)
                if a is not None:
                    part_rows.append(_row(r, a, loc_index, prompt_of, memory_of))
        pos = where.get(tick) or [None] * len(agents)
        return {"tick": tick, "pos": pos, "rows": part_rows, "mem": new_memories.get(tick, [])}

    _add_acts(agents, msgs, index)
    _add_plans(agents, msgs, index)
    model = dumps.manifest.get("model") or {}
    meta = {
        "format": FORMAT,
        "run_id": dumps.run_id,
        "status": dumps.manifest.get("status") or "unknown",
        "backend": str(model.get("backend") or dumps.backend),
        "model": str(model.get("name_or_path") or model.get("backend") or "unknown"),
        "steering": _steering(model),
        "traits": list(TRAITS),
        "locations": locations,
        "agents": agents,
        "ticks": ticks,
        "recorded": {
            "prompts": has_prompts,
            "memories": memories is not None,
            "positions": positions is not None,
        },
        "rows": len(msgs),
    }
    return ReplayData(meta, make_part)


# -- the parts ---------------------------------------------------------------


def _agents(agents: pd.DataFrame, msgs: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per agent in agents.parquet order; from the messages when the
    run has no agents.parquet (its traits are then the steering coefficients)."""
    out = []
    if len(agents):
        for r in agents.itertuples(index=False):
            out.append(
                {
                    "id": str(r.agent_id),
                    "name": str(r.agent_name),
                    "age": int(r.age),
                    "home": str(r.home),
                    "goal": str(r.goal),
                    "traits": [round(float(getattr(r, t)), 3) for t in TRAITS],
                }
            )
        return out
    first = msgs.drop_duplicates("agent_id").sort_values("agent_id")
    for r in first.itertuples(index=False):
        out.append(
            {
                "id": str(r.agent_id),
                "name": str(r.agent_name),
                "age": None,
                "home": str(r.location),
                "goal": str(r.goal),
                "traits": [round(float(getattr(r, f"steer_{t}")), 3) for t in TRAITS],
            }
        )
    return out


def _check_agents_known(msgs: pd.DataFrame, index: dict[str, int], layout: RunDir) -> None:
    """Every message row's agent is in agents.parquet: the page shows a row
    through its agent, so a row of an unknown agent would vanish from it
    without a word (agents.parquet from another run, or a damaged one)."""
    unknown = sorted(set(msgs["agent_id"]) - index.keys()) if len(msgs) else []
    if unknown:
        raise DumpsError(
            f"{layout.agents} lacks {len(unknown)} agent(s) the messages name, "
            f"e.g. {unknown[0]!r}; is it this run's?"
        )


def _check_values(rows: pd.DataFrame, folder: Path, allowed: dict[str, tuple[str, ...]]) -> None:
    """The rows of a per-tick folder hold only values a run writes in the
    `allowed` columns, and each request id once per tick; else DumpsError
    naming the first tick file at fault. The page showed an unknown action as
    if the agent had taken it, and two rows of one request id both showed the
    one prompt of that id (or one prompt replaced another's)."""
    if not len(rows):
        return
    for column, values in allowed.items():
        bad = rows.loc[~rows[column].isin(values), ["tick", column]]
        if len(bad):
            tick, value = bad.iloc[0]
            count = int((bad["tick"] == tick).sum())
            raise DumpsError(
                f"{folder / f'tick_{int(tick):06d}.parquet'}: {column} {value!r} in "
                f"{count} row(s) is none of {', '.join(values)}; is it a steersim dump?"
            )
    twice = rows.loc[rows.duplicated(["tick", "request_id"]), ["tick", "request_id"]]
    if len(twice):
        tick, request = (int(x) for x in twice.iloc[0])
        raise DumpsError(
            f"{folder / f'tick_{tick:06d}.parquet'}: request_id {request} is in more than "
            "one row; each request has one row per tick"
        )


def _locations(
    manifest: dict[str, Any],
    agents: list[dict[str, Any]],
    msgs: pd.DataFrame,
    positions: pd.DataFrame | None,
) -> list[str]:
    """The world's locations in the config's order, plus any the dumps name."""
    config = manifest.get("config") or {}
    world = config.get("world") if isinstance(config, dict) else None
    known = list((world or {}).get("locations") or [])
    seen = [a["home"] for a in agents]
    if len(msgs):
        seen += msgs["location"].dropna().tolist() + msgs["target"].dropna().tolist()
    if positions is not None:
        seen += positions["location"].tolist()
    for loc in seen:
        if loc not in known:
            known.append(loc)
    return [str(x) for x in known]


def _ticks(layout: RunDir, msgs: pd.DataFrame) -> list[int]:
    """Every tick the run wrote a messages file for (a tick may have no rows)."""
    found = set()
    for p in layout.messages.glob("tick_*.parquet"):
        try:
            found.add(int(p.stem.split("_")[1]))
        except (IndexError, ValueError):
            continue
    found |= {int(t) for t in msgs["tick"].unique()} if len(msgs) else set()
    return sorted(found)


def _recorded_positions(
    positions: pd.DataFrame, index: dict[str, int], loc_index: dict[str, int]
) -> dict[int, list[int | None]]:
    out: dict[int, list[int | None]] = {}
    for tick, rows in positions.groupby("tick", sort=True):
        pos: list[int | None] = [None] * len(index)
        for agent_id, loc in zip(rows["agent_id"], rows["location"], strict=True):
            a = index.get(agent_id)
            if a is not None:
                pos[a] = loc_index[loc]
        out[int(tick)] = pos
    return out


def _rebuilt_positions(
    ticks: list[int],
    agents: list[dict[str, Any]],
    msgs: pd.DataFrame,
    index: dict[str, int],
    loc_index: dict[str, int],
) -> dict[int, list[int | None]]:
    """For runs without positions/: everyone starts at home; an acting agent
    is where its row says; a MOVE takes effect the next tick."""
    here: list[int | None] = [loc_index.get(a["home"]) for a in agents]
    by_tick = {int(t): rows for t, rows in msgs.groupby("tick")} if len(msgs) else {}
    out = {}
    for tick in ticks:
        rows = by_tick.get(tick)
        moves = []
        if rows is not None:
            for r in rows.itertuples(index=False):
                a = index.get(r.agent_id)
                if a is None or r.event_kind == "reflection":
                    continue
                here[a] = loc_index.get(r.location, here[a])
                if r.action == "MOVE" and isinstance(r.target, str) and r.target in loc_index:
                    moves.append((a, loc_index[r.target]))
        out[tick] = list(here)
        for a, loc in moves:
            here[a] = loc
    return out


def _memory_lookup(memories: pd.DataFrame | None) -> dict[int, tuple[int, str, float, str]]:
    """memory id -> (tick made, kind, importance, text)."""
    if memories is None:
        return {}
    return {
        int(m): (int(t), str(k), round(float(i), 2), str(x))
        for m, t, k, i, x in zip(
            memories["memory_id"],
            memories["tick"],
            memories["kind"],
            memories["importance"],
            memories["text"],
            strict=True,
        )
    }


def _prompts_of_tick(layout: RunDir, tick: int) -> dict[int, dict[str, Any]]:
    """request id -> the prompt row of one tick (none when the file is absent)."""
    path = layout.tick_file(tick, layout.prompts)
    if not path.is_file():
        return {}
    table = read_arrow(path, PROMPT_SCHEMA).select(PROMPT_SCHEMA.names)  # types, nulls, NaN
    ids, scores = (pc.list_value_length(table[n]) for n in ("memory_ids", "memory_scores"))
    if pc.all(pc.equal(ids, scores)).as_py() is False:  # one score per recalled memory
        raise DumpsError(f"{path}: memory_ids and memory_scores differ in length")
    _check_values(
        table.select(["tick", "request_id", "kind"]).to_pandas(),
        layout.prompts,
        {"kind": EVENT_KINDS},
    )
    rows = table.to_pylist()
    return {int(r["request_id"]): r for r in rows}


def _check_prompt_agents(
    prompt_of: dict[int, dict[str, Any]], rows: pd.DataFrame, path: Path
) -> None:
    """A prompt belongs to the message row of its request id: the same agent.
    A prompts file of another run or tick showed one agent's prompt under another's action."""
    for request_id, agent_id in zip(rows["request_id"], rows["agent_id"], strict=True):
        p = prompt_of.get(int(request_id))
        if p is not None and p["agent_id"] != agent_id:
            raise DumpsError(
                f"{path}: request_id {int(request_id)} is {p['agent_id']!r}'s prompt, but the "
                f"message row of that id is {agent_id!r}'s; is it this run's?"
            )


def _memories_by_tick(
    memories: pd.DataFrame | None, index: dict[str, int]
) -> dict[int, list[list[Any]]]:
    """tick -> [[agent index, id, kind, importance, text], ...] made that tick."""
    out: dict[int, list[list[Any]]] = defaultdict(list)
    if memories is None:
        return out
    for m in memories.itertuples(index=False):
        a = index.get(m.agent_id)
        if a is not None:
            out[int(m.tick)].append(
                [a, int(m.memory_id), str(m.kind), round(float(m.importance), 2), str(m.text)]
            )
    return out


def _row(
    r: Any,
    a: int,
    loc_index: dict[str, int],
    prompt_of: dict[int, dict[str, Any]],
    memory_of: dict[int, tuple[int, str, float, str]],
) -> dict[str, Any]:
    """One message row as the page reads it (short keys: there are many)."""
    out: dict[str, Any] = {
        "a": a,  # agent index
        "r": int(r.request_id),
        "e": int(r.event_id),
        "k": str(r.event_kind),
        "act": str(r.action),
        "tg": r.target if isinstance(r.target, str) else None,
        "c": str(r.content),
        "l": loc_index.get(r.location),
        "ok": bool(r.parse_ok),
        "raw": str(r.raw_text),
        "g": str(r.goal),
    }
    p = prompt_of.get(int(r.request_id))
    if p is not None:
        recalled = []
        for mid, score in zip(p["memory_ids"], p["memory_scores"], strict=True):
            made, kind, importance, text = memory_of.get(int(mid), (None, "?", None, "?"))
            recalled.append([int(mid), round(float(score), 3), made, kind, importance, text])
        out["p"] = {"s": str(p["system"]), "u": str(p["user"]), "m": recalled}
    return out


def _add_acts(agents: list[dict[str, Any]], msgs: pd.DataFrame, index: dict[str, int]) -> None:
    """Each agent's `acts`: the ticks it has rows in (actions or reflections)."""
    for agent in agents:
        agent["acts"] = []
    if not len(msgs):
        return
    for agent_id, ticks in msgs.groupby("agent_id")["tick"].unique().items():
        a = index.get(agent_id)
        if a is not None:
            agents[a]["acts"] = sorted(int(t) for t in ticks)


def _add_plans(agents: list[dict[str, Any]], msgs: pd.DataFrame, index: dict[str, int]) -> None:
    """Each agent's `plans`: [[tick, plan], ...] whenever the plan its prompt
    showed changed: the row's `plan` where the run records one, else its
    `goal` column (older runs wrote the plan there once there was one)."""
    for agent in agents:
        agent["plans"] = []
    if not len(msgs):
        return
    acting = msgs[msgs["event_kind"] != "reflection"]
    plan_col = acting["plan"] if "plan" in acting.columns else [None] * len(acting)
    for agent_id, tick, plan, goal in zip(
        acting["agent_id"], acting["tick"], plan_col, acting["goal"], strict=True
    ):
        a = index.get(agent_id)
        shown = plan if isinstance(plan, str) and plan else goal
        if a is None or not isinstance(shown, str) or not shown:
            continue
        agent = agents[a]
        plans = agent["plans"]
        if shown == agent["goal"] and not plans:
            continue  # no plan yet: the goal is shown as it is
        if not plans or plans[-1][1] != shown:
            plans.append([int(tick), shown])


def _steering(model: dict[str, Any]) -> dict[str, Any] | None:
    steer = model.get("steering")
    if not isinstance(steer, dict) or not steer.get("enabled", True) or not steer.get("layers"):
        return None
    return {"layers": list(steer.get("layers") or []), "strength": steer.get("strength")}
