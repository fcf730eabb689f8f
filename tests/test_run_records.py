"""What a run records of what its agents saw: each request's prompt and the
memories retrieved into it (prompts/), every memory stored (memories/) and
every agent's location at every tick (positions/), joined to the messages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from orchestrator.records import MEMORY_SCHEMA, POSITION_SCHEMA, PROMPT_SCHEMA
from tests.analysis_helpers import make_mock_run

TICKS, AGENTS = 8, 10


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mock_run(tmp_path_factory.mktemp("rec"), run_id="rec", ticks=TICKS, agents=AGENTS)


def _read(run_dir: Path, folder: str) -> pd.DataFrame:
    files = sorted((run_dir / folder).glob("tick_*.parquet"))
    assert [f.name for f in files] == [f"tick_{t:06d}.parquet" for t in range(TICKS)]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_files_have_the_documented_columns(run_dir: Path) -> None:
    for folder, schema in (
        ("prompts", PROMPT_SCHEMA),
        ("memories", MEMORY_SCHEMA),
        ("positions", POSITION_SCHEMA),
    ):
        assert list(_read(run_dir, folder).columns) == schema.names, folder


def test_every_message_row_has_its_prompt(run_dir: Path) -> None:
    msgs, prompts = _read(run_dir, "messages"), _read(run_dir, "prompts")
    assert len(prompts) == len(msgs) and len(msgs) > 0
    for _, rows in msgs.groupby("tick"):
        assert list(rows["request_id"]) == list(range(len(rows)))  # position in the file
    joined = msgs.merge(prompts, on=["run_id", "tick", "request_id"], validate="one_to_one")
    assert (joined["agent_id_x"] == joined["agent_id_y"]).all()
    assert (joined["event_kind"] == joined["kind"]).all()
    reflections = joined[joined["kind"] == "reflection"]
    assert len(reflections) > 0 and reflections["user"].str.contains("recent memories").all()
    actions = joined[joined["kind"] != "reflection"]
    assert all(
        s.startswith(f"You are {n},")
        for s, n in zip(actions["system"], actions["agent_name"], strict=True)
    )
    # the user turn names where the agent was when it acted
    for _, r in actions.iterrows():
        assert f"at the {r['location'].replace('_', ' ')}." in r["user"]


def test_prompts_name_the_memories_they_show(run_dir: Path) -> None:
    prompts, memories = _read(run_dir, "prompts"), _read(run_dir, "memories")
    by_id = memories.set_index("memory_id")
    assert by_id.index.is_unique
    shown = 0
    for _, p in prompts.iterrows():
        ids, scores = list(p["memory_ids"]), list(p["memory_scores"])
        assert len(ids) == len(scores)
        assert scores == sorted(scores, reverse=True)  # best first
        for mid in ids:
            m = by_id.loc[mid]
            assert m["agent_id"] == p["agent_id"]  # an agent recalls only its own memories
            assert m["tick"] < p["tick"]  # stored at the end of an earlier tick
            assert f"- {m['text']}\n" in p["user"]
            shown += 1
    assert shown > len(prompts)  # most prompts show several memories


def test_memories_are_numbered_in_storage_order(run_dir: Path) -> None:
    memories = _read(run_dir, "memories")
    assert list(memories["memory_id"]) == list(range(len(memories)))
    assert memories["tick"].is_monotonic_increasing
    assert set(memories["kind"]) == {"action", "observation", "reflection"}
    assert memories["importance"].between(1, 10).all()


def test_positions_follow_the_moves(run_dir: Path) -> None:
    pos, msgs = _read(run_dir, "positions"), _read(run_dir, "messages")
    assert pos.groupby("tick")["agent_id"].nunique().eq(AGENTS).all()  # acting or not
    where = pos.set_index(["tick", "agent_id"])["location"]
    acts = msgs[msgs["event_kind"] != "reflection"]
    assert (
        acts.apply(lambda r: where[(r["tick"], r["agent_id"])], axis=1) == acts["location"]
    ).all()
    moves = acts[(acts["action"] == "MOVE") & (acts["tick"] < TICKS - 1)]
    assert len(moves) > 0
    for _, r in moves.iterrows():
        assert where[(r["tick"] + 1, r["agent_id"])] == r["target"]
    movers = set(zip(moves["tick"], moves["agent_id"], strict=True))
    for (tick, agent), loc in where.items():
        if tick + 1 < TICKS and (tick, agent) not in movers:
            assert where[(tick + 1, agent)] == loc  # nobody moves without a MOVE


def test_save_prompts_false_writes_no_prompts(tmp_path: Path) -> None:
    from orchestrator.config_loader import load_config
    from orchestrator.runner import run_simulation
    from tests.analysis_helpers import QuietView
    from tests.conftest import CONFIGS

    resolved = load_config(
        CONFIGS / "run.fast.yaml",
        [
            "model.backend=mock",
            "ticks=3",
            "population.agents=6",
            "run_id=np",
            f"storage.root={tmp_path}",
            "storage.save_prompts=false",
        ],
    )
    run_simulation(resolved, QuietView())
    run = tmp_path / "dumps" / "np"
    assert not list((run / "prompts").glob("*.parquet"))
    assert len(list((run / "memories").glob("tick_*.parquet"))) == 3
    assert len(list((run / "positions").glob("tick_*.parquet"))) == 3


class PlainMemory:
    """A MemoryStore without ids or scores (only the contract's methods)."""

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = {}

    def add(self, agent_id: str, tick: int, text: str, kind: str) -> None:
        self.items.setdefault(agent_id, []).append(text)

    def end_tick(self, tick: int) -> None: ...

    def retrieve(self, queries: dict[str, str], tick: int) -> dict[str, list[str]]:
        return {a: self.items.get(a, [])[-2:] for a in queries}

    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None: ...


def test_a_memory_store_without_ids_still_records_prompts() -> None:
    from agents.mock_backend import MockBackend
    from agents.typing import RecordedMemory
    from orchestrator.assemble import engine_settings
    from orchestrator.config_schema import RunConfig
    from orchestrator.engine import Simulation
    from orchestrator.population import build_agents
    from orchestrator.world import World

    cfg = RunConfig(run_id="p", population={"agents": 6}, model={"backend": "mock"})
    memory = PlainMemory()
    assert not isinstance(memory, RecordedMemory)
    world = World(cfg.world.locations, build_agents(cfg.population, cfg.world, cfg.seed))
    sim = Simulation(
        settings=engine_settings(cfg), world=world, backend=MockBackend(), memory=memory
    )
    results = [sim.step() for _ in range(3)]
    last = results[-1]
    assert len(last.prompts) == len(last.rows) > 0
    assert all(p.memory_ids == [] and p.memory_scores == [] for p in last.prompts)
    assert any("You remember:" in p.user for p in last.prompts)  # the memories are still shown
    assert all(r.memories == [] for r in results)
    assert set(last.positions) == {a.id for a in world.agents}
