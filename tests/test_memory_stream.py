"""Memory stream: the scored ranking on a hand-worked example, partial top-k
against a full sort, batching of end_tick, bounded growth, the token budget
and checkpoint round trips."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents.embedding import HashingEmbedder
from agents.importance import HeuristicImportance
from agents.memory_stream import MemoryStream, retrieval_scores, top_k
from agents.typing import MemoryStore
from orchestrator.checkpoint import Checkpoint, CheckpointStore


class TableEmbedder:
    """Fixed unit vectors per text; counts calls."""

    dim = 3

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = {k: np.asarray(v, np.float32) / np.linalg.norm(v) for k, v in table.items()}
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, 3), np.float32)


class TableScorer:
    """Fixed importance per text; counts calls."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table, self.calls = table, 0

    def score(self, texts: Sequence[str]) -> list[float]:
        self.calls += 1
        return [self.table[t] for t in texts]


# The hand-worked example. Query "q" points along x. Retrieved at tick 10, decay 0.9:
#   memory    made  importance  relevance   recency 0.9**(10-made)
#   recent     10       1          0.0        1.000
#   vital       0      10          0.0        0.349
#   apt         5       4          1.0        0.590
# min-max per term:  recency  recent 1, apt (0.590-0.349)/(1-0.349) = 0.371, vital 0
#                    importance vital 1, apt 0.333, recent 0
#                    relevance  apt 1, recent 0, vital 0
# Equal weights: apt 1.705 > recent 1.0 = vital 1.0 (a tie goes to the lower slot: vital,
# stored first).
EMB = {"q": (1, 0, 0), "recent": (0, 1, 0), "vital": (0, 0, 1), "apt": (1, 0, 0)}
IMP = {"recent": 1.0, "vital": 10.0, "apt": 4.0}


def hand_worked_stream(weights: tuple[float, float, float]) -> MemoryStream:
    stream = MemoryStream(
        embedder=TableEmbedder(EMB),
        scorer=TableScorer(IMP),
        top_k=3,
        recency_decay=0.9,
        weights=weights,
    )
    for tick, text in ((0, "vital"), (5, "apt"), (10, "recent")):
        stream.add("ada", tick, text, "observation")
        stream.end_tick(tick)
    return stream


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((1, 0, 0), ["recent", "apt", "vital"]),  # recency dominates
        ((0, 1, 0), ["vital", "apt", "recent"]),  # importance dominates
        ((0, 0, 1), ["apt", "vital", "recent"]),  # relevance dominates (vital/recent tie: slot)
        ((5, 1, 1), ["recent", "apt", "vital"]),
        ((1, 5, 1), ["vital", "apt", "recent"]),
        ((1, 1, 5), ["apt", "vital", "recent"]),
        ((1, 1, 1), ["apt", "vital", "recent"]),
    ],
)
def test_hand_worked_ranking(weights, expected) -> None:
    stream = hand_worked_stream(weights)
    assert isinstance(stream, MemoryStore)
    assert stream.retrieve({"ada": "q"}, tick=10) == {"ada": expected}


def test_hand_worked_scores() -> None:
    """The numbers of the table above, term by term."""
    valid = np.ones((1, 3), bool)
    common = dict(age=np.array([[10, 5, 0]]), valid=valid, decay=0.9)  # vital, apt, recent
    rel, imp = np.array([[0.0, 1.0, 0.0]]), np.array([[10.0, 4.0, 1.0]])
    s = retrieval_scores(relevance=rel, importance=imp, weights=(1, 1, 1), **common)
    apt_recency = (0.9**5 - 0.9**10) / (1 - 0.9**10)  # 0.371
    np.testing.assert_allclose(s, [[1.0, 1.0 + apt_recency + 3 / 9, 1.0]], rtol=1e-5)


def test_retrieval_counts_as_access() -> None:
    stream = hand_worked_stream((1, 0, 0))
    stream.retrieve({"ada": "q"}, tick=10)  # touches all three at tick 10
    stream.add("ada", 11, "recent2", "observation")
    stream.embedder.table["recent2"] = np.array([0, 1, 0], np.float32)
    stream.scorer.table["recent2"] = 1.0
    stream.end_tick(11)
    # All four now have near-equal recency; "recent2" (tick 11) is newest.
    assert stream.retrieve({"ada": "q"}, tick=12)["ada"][0] == "recent2"


@settings(max_examples=60, deadline=None)
@given(
    scores=arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 40)),
        elements=st.sampled_from([-np.inf, 0.0, 0.25, 0.5, 1.0, 1.5, 3.0]),  # many ties
    ),
    k=st.integers(1, 45),
)
def test_top_k_equals_full_sort(scores: np.ndarray, k: int) -> None:
    got = top_k(scores, k)
    want = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]
    finite = np.isfinite(np.take_along_axis(scores, want, axis=1))
    # Empty slots (-inf) are never returned as memories, so only their count matters.
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.where(finite, got, -1), np.where(finite, want, -1))


def random_stream(seed: int, agents: int = 12, ticks: int = 40) -> MemoryStream:
    rng = np.random.default_rng(seed)
    words = "garden festival job bakery coffee rain friend argument novel paint market".split()
    stream = MemoryStream(
        embedder=HashingEmbedder(dim=32), scorer=HeuristicImportance(), top_k=5, max_items=30
    )
    for t in range(ticks):
        for a in rng.choice(agents, size=agents // 2, replace=False):
            text = " ".join(rng.choice(words, size=4))
            stream.add(f"agent-{a:03d}", t, f"{text} {t}", "observation")
        stream.end_tick(t)
    return stream


def test_one_agent_alone_or_with_all_gets_the_same_memories() -> None:
    """The per-agent path (few agents querying) and the full pass (all) agree."""
    queries = {f"agent-{a:03d}": "the festival in the garden" for a in range(12)}
    together = random_stream(1).retrieve(queries, tick=40)
    alone = random_stream(1).retrieve({"agent-003": queries["agent-003"]}, tick=40)
    assert alone["agent-003"] == together["agent-003"] and len(alone["agent-003"]) == 5


def test_end_tick_embeds_and_rates_in_one_call_each() -> None:
    texts = {f"m{i}": (1, i, 0) for i in range(9)}
    emb, scorer = TableEmbedder(texts), TableScorer(dict.fromkeys(texts, 5.0))
    stream = MemoryStream(embedder=emb, scorer=scorer)
    for i in range(9):
        stream.add(f"agent-{i % 3}", 0, f"m{i}", "action")
    assert stream.retrieve({"agent-0": "m0"}, tick=0) == {"agent-0": []}  # queued, not stored
    emb.calls = 0
    stream.end_tick(0)
    assert (emb.calls, scorer.calls) == (1, 1)
    stream.end_tick(1)  # nothing queued: no calls
    assert (emb.calls, scorer.calls) == (1, 1)
    assert [stream.size(f"agent-{i}") for i in range(3)] == [3, 3, 3]


def test_growth_is_bounded_and_keeps_what_matters() -> None:
    stream = MemoryStream(
        embedder=HashingEmbedder(dim=16), scorer=HeuristicImportance(), max_items=20
    )
    stream.add("ada", 0, "I was offered a job at the bakery!", "observation")
    for t in range(1000):
        for j in range(3):
            stream.add("ada", t, f"I ate breakfast, round {t}-{j}.", "action")
            stream.add(f"agent-{j}", t, f"I rested at the park, round {t}.", "action")
        stream.end_tick(t)
    assert stream.size("ada") == 20
    assert stream._valid.shape[1] == 20  # columns grew to max_items and no further
    assert stream._valid.shape[0] <= 8  # rows: 4 agents
    kept = stream.recent("ada", 20)
    assert "I was offered a job at the bakery!" in kept  # important and old survives
    assert "I ate breakfast, round 999-2." in kept  # newest survives
    assert len(stream.embedder.cache) <= stream.embedder.cache.max_entries


def test_prompt_token_budget() -> None:
    stream = MemoryStream(
        embedder=HashingEmbedder(dim=16),
        scorer=HeuristicImportance(),
        top_k=8,
        prompt_token_budget=30,  # ~ 4 chars a token: two 40-char memories fit (2 * 12 tokens)
    )
    for i in range(8):
        stream.add("ada", i, f"{i} " + "x" * 38, "observation")
    stream.add("ben", 0, "y" * 1000, "observation")
    stream.end_tick(8)
    got = stream.retrieve({"ada": "x", "ben": "y"}, tick=9)
    assert len(got["ada"]) == 2
    assert got["ben"] == ["y" * 112]  # a too-long best memory is shortened, not dropped


def test_duplicates_are_one_line() -> None:
    stream = MemoryStream(embedder=HashingEmbedder(dim=16), scorer=HeuristicImportance())
    for t in range(5):
        stream.add("ada", t, "Ben took a break.", "observation")
        stream.end_tick(t)
    assert stream.retrieve({"ada": "Ben"}, tick=5) == {"ada": ["Ben took a break."]}


def test_state_survives_a_checkpoint(tmp_path) -> None:
    a = random_stream(2)
    a.mark_reflected("agent-001", 17)
    a.add("agent-002", 40, "queued, not yet stored", "reflection")
    CheckpointStore(tmp_path).save(
        Checkpoint(
            next_tick=41, world={}, memory=a.get_state(), config_hash="x", vectors_hash=None
        ),
    )
    b = MemoryStream(
        embedder=HashingEmbedder(dim=32), scorer=HeuristicImportance(), top_k=5, max_items=30
    )
    b.set_state(CheckpointStore(tmp_path).load().memory)
    queries = {f"agent-{i:03d}": "a friend at the market" for i in range(12)}
    for t in (41, 42):
        a.end_tick(t), b.end_tick(t)
        assert a.retrieve(queries, t) == b.retrieve(queries, t)
    assert b.last_reflection("agent-001") == 17
    assert "queued, not yet stored" in b.recent("agent-002", 3)


def test_state_refuses_other_embedding_dims() -> None:
    state = random_stream(3, agents=2, ticks=2).get_state()
    other = MemoryStream(embedder=HashingEmbedder(dim=64), scorer=HeuristicImportance())
    with pytest.raises(ValueError, match="memory.embedder"):
        other.set_state(state)


def test_reflection_stats() -> None:
    stream = hand_worked_stream((1, 1, 1))
    stream.mark_reflected("ada", 4)
    stream.add("ada", 11, "recent", "observation")
    counts, importance = stream.reflection_stats(["ada", "nobody"])
    assert counts.tolist() == [3, 0]  # apt (5), recent (10), queued (11)
    assert importance.tolist() == [5.0, 0.0]  # stored only: apt 4 + recent 1


# -- ids and scores (what a run records) -------------------------------------------


def test_scored_retrieval_gives_ids_and_scores_of_the_same_memories() -> None:
    stream = hand_worked_stream((1, 1, 1))
    stored = {m.text: m for m in stream.take_stored()}
    assert [stored[t].id for t in ("vital", "apt", "recent")] == [0, 1, 2]  # in storage order
    assert (stored["vital"].tick, stored["vital"].importance) == (0, 10.0)
    assert stored["apt"].kind == "observation" and stored["apt"].agent_id == "ada"
    got = stream.retrieve_scored({"ada": "q"}, tick=10)["ada"]
    assert got.texts == ["apt", "vital", "recent"]
    assert got.ids == [stored[t].id for t in got.texts]
    apt_recency = (0.9**5 - 0.9**10) / (1 - 0.9**10)  # the hand-worked table
    np.testing.assert_allclose(got.scores, [1.0 + apt_recency + 3 / 9, 1.0, 1.0], rtol=1e-5)
    assert stream.take_stored() == []  # taken once


def test_a_repeated_memory_keeps_its_id_and_is_not_new() -> None:
    stream = MemoryStream(embedder=HashingEmbedder(dim=16), scorer=HeuristicImportance())
    stream.add("ada", 0, "Ben took a break.", "observation")
    stream.add("ben", 0, "I rested.", "action")
    stream.end_tick(0)
    first = stream.take_stored()
    assert [(m.agent_id, m.id) for m in first] == [("ada", 0), ("ben", 1)]
    stream.add("ada", 1, "Ben took a break.", "observation")
    stream.add("ada", 1, "Cleo left.", "observation")
    stream.end_tick(1)
    assert [(m.text, m.id, m.tick) for m in stream.take_stored()] == [("Cleo left.", 2, 1)]
    ids = stream.retrieve_scored({"ada": "Ben"}, tick=2)["ada"].ids
    assert sorted(ids) == [0, 2]


def test_ids_survive_a_checkpoint(tmp_path) -> None:
    a = random_stream(4)
    a.take_stored()
    CheckpointStore(tmp_path).save(
        Checkpoint(next_tick=40, world={}, memory=a.get_state(), config_hash="x", vectors_hash=None)
    )
    b = MemoryStream(
        embedder=HashingEmbedder(dim=32), scorer=HeuristicImportance(), top_k=5, max_items=30
    )
    b.set_state(CheckpointStore(tmp_path).load().memory)
    queries = {f"agent-{i:03d}": "coffee in the rain" for i in range(12)}
    assert a.retrieve_scored(queries, 40) == b.retrieve_scored(queries, 40)
    for s in (a, b):
        s.add("agent-000", 40, "a brand new memory", "observation")
        s.end_tick(40)
    assert a.take_stored() == b.take_stored()  # the next id continues where it stopped
