"""steersim interview: agents questioned in their own context, on the mock and
on a tiny random Llama (mechanics: shapes, the context used, the measure)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.steering.data import load_questionnaire
from agents.typing import TRAITS
from orchestrator.assemble import open_run_state
from orchestrator.config_loader import load_config
from orchestrator.experiments.interview import InterviewPlan, correlation, interview, write
from orchestrator.runner import run_simulation
from tests.analysis_helpers import QuietView, make_tiny_model, make_tiny_vectors
from tests.conftest import CONFIGS
from tests.helpers import cli

QUESTION = "What matters most to you today?"


def _run(root: Path, run_id: str, *sets: str) -> Path:
    resolved = load_config(
        CONFIGS / "run.fast.yaml",
        [
            "population.agents=6",
            "max_events_per_tick=6",
            "ticks=4",
            f"run_id={run_id}",
            f"storage.root={root}",
            *sets,
        ],
    )
    run_simulation(resolved, QuietView())
    return root / "dumps" / run_id


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("iv")
    return _run(root, "m", "model.backend=mock", "steering.strength=0.2")


def test_mock_interview_shapes_and_context(mock_run):
    plan = InterviewPlan(questions=(QUESTION,), permutations=200)
    result = interview(mock_run, plan)
    n, items = 6, result.rows[result.rows["kind"] == "item"]
    n_items = items["text"].nunique()
    assert n_items == len(load_questionnaire("test").items) == 117
    assert result.items_name == "test"
    assert result.tick == 3 and result.source == "checkpoint"
    assert len(items) == n * n_items * 2  # every agent, every item, context and bare
    assert set(items["setting"]) == {"context", "bare"}
    assert result.profiles.shape[0] == n
    assert result.correlations.shape[0] == 2 * len(TRAITS)
    # each agent's context is its own: its persona (goal, plan) and the memories it recalls
    state = open_run_state(mock_run)
    try:
        agents = {a.id: a for a in state.world.agents}
        recalled = state.memory.retrieve({a: QUESTION for a in agents}, state.next_tick)
    finally:
        state.close()
    asked = result.contexts[result.contexts["query"] == QUESTION].set_index("agent_id")
    assert len(asked) == n
    for agent_id, agent in agents.items():
        system, user = asked.loc[agent_id, "system"], asked.loc[agent_id, "user"]
        assert f"You are {agent.name}," in system and agent.goal in system
        if agent.plan:
            assert agent.plan in system
        assert recalled[agent_id] and all(m in user for m in recalled[agent_id])
        assert user.endswith(QUESTION) and "MOVE" not in system  # no action instructions
    # one answer per agent, from one batched call, drawing on what it remembers
    answers = result.rows[result.rows["kind"] == "question"].set_index("agent_id")
    assert len(answers) == n
    for agent_id in agents:
        assert recalled[agent_id][0] in answers.loc[agent_id, "answer"]
    # the mock's steering shows in the measured profile: set and measured agree
    ctx = result.correlations[result.correlations["setting"] == "context"]
    assert (ctx["pearson_r"] > 0.8).all() and (ctx["pearson_p"] < 0.1).all()


def test_mock_interview_without_steering_measures_no_traits(tmp_path):
    run = _run(tmp_path, "nosteer", "model.backend=mock", "steering.enabled=false")
    result = interview(run, InterviewPlan(permutations=200))
    bare = result.profiles[[f"bare_{t}" for t in TRAITS]].to_numpy()
    assert np.ptp(bare, axis=0).max() == 0  # one prompt, no steering: one profile
    assert result.correlations.query("setting == 'bare'")["pearson_r"].isna().all()
    assert result.steering.get("enabled") is False


def test_interview_at_an_earlier_tick_uses_the_recorded_prompts(mock_run, tmp_path):
    result = interview(mock_run, InterviewPlan(tick=1, bare=False, permutations=200))
    assert result.source == "prompts" and result.tick == 1
    prompts = pd.concat(
        pd.read_parquet(f) for f in sorted((mock_run / "prompts").glob("tick_*.parquet"))
    )
    memories = pd.concat(
        pd.read_parquet(f) for f in sorted((mock_run / "memories").glob("tick_*.parquet"))
    ).set_index("memory_id")
    seen = prompts[(prompts["tick"] <= 1) & (prompts["kind"] != "reflection")]
    last = seen.sort_values(["tick", "request_id"]).groupby("agent_id").tail(1)
    contexts = result.contexts.set_index("agent_id")
    for row in last.to_dict(orient="records"):
        user = contexts.loc[row["agent_id"], "user"]
        for memory_id in row["memory_ids"]:
            assert memories.loc[memory_id, "text"] in user
        assert contexts.loc[row["agent_id"], "system"] in row["system"]


def test_cli_writes_the_files_and_refuses_a_bad_tick(mock_run, tmp_path):
    out = tmp_path / "iv"
    proc = cli("interview", str(mock_run), "--permutations", "200", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = pd.read_parquet(out / "interviews.parquet")
    assert list(rows.columns[:4]) == ["run_id", "tick", "agent_id", "agent_name"]
    saved = json.loads((out / "interview.json").read_text())
    assert len(saved["correlations"]) == 10
    assert "| context | E |" in (out / "interview_summary.md").read_text()
    proc = cli("interview", str(mock_run), "--tick", "7")
    assert proc.returncode == 2 and "--tick 7" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("interview", str(mock_run), "--items", str(tmp_path / "none.json"))
    assert proc.returncode == 2 and "--items" in proc.stderr


def test_correlation_permutation_p_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    strong = correlation(x, 2 * x + rng.normal(scale=0.1, size=30), 2000, seed=1)
    assert strong["pearson_r"] > 0.95 and strong["pearson_p"] < 0.01
    assert strong["spearman_rho"] > 0.9 and strong["spearman_p"] < 0.01
    null = correlation(x, rng.normal(size=30), 2000, seed=1)
    assert null["pearson_p"] > 0.01
    flat = correlation(x, np.ones(30), 100, seed=1)
    assert np.isnan(flat["pearson_r"]) and np.isnan(flat["spearman_p"])


def _small_questionnaire(path: Path):
    """One +1 and one -1 keyed item per trait from the test set (a byte-level
    tokenizer makes every character a token: fewer items, a faster test)."""
    from dataclasses import replace

    q = load_questionnaire("test")
    keep = [
        next(i for i in q.items if i.trait == t and i.key == k) for t in TRAITS for k in (1, -1)
    ]
    doc = {
        "system": q.system,
        "prompt": q.prompt,
        "items": [{"trait": i.trait, "key": i.key, "text": i.text} for i in keep],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return replace(q, items=tuple(keep))


def test_tiny_model_interview_uses_the_steering_measure(tmp_path):
    """On a tiny random Llama: the bare scores are the steering evaluation's
    own statement likelihoods (TraitMeasure) under each agent's steering."""
    import torch

    from agents.steering.questionnaire import TraitMeasure

    model = make_tiny_model(tmp_path / "models" / "tiny")
    vectors = make_tiny_vectors(tmp_path / "vectors.safetensors")
    sets = [
        "model.backend=hf",
        f"model.name_or_path={model}",
        "model.device=cpu",
        "model.dtype=float32",
        f"steering.vectors={vectors}",
        "steering.layers=[1]",
        "steering.trait_layers={}",
        "steering.strength=0.5",
        # the run's copy holds the scaled vectors: reopening must not scale them again
        "steering.trait_gains={C: 0.6}",
        "memory.embedder=hashing",
        "memory.importance=heuristic",
        "inference.max_new_tokens=4",
        "population.agents=4",
        "ticks=2",
    ]
    run = _run(tmp_path, "tiny", *sets)
    vectors.unlink()  # the interview steers with the run's own copy of what it applied
    q = _small_questionnaire(tmp_path / "items.json")
    plan = InterviewPlan(
        items=str(tmp_path / "items.json"),
        questions=(QUESTION,),
        max_new_tokens=6,
        permutations=200,
    )
    state = open_run_state(run)
    backend = state.backend
    try:
        assert state.vectors_match
        result = interview(run, plan, backend=backend)
        assert not result.notes
        items = result.rows[result.rows["kind"] == "item"]
        assert len(items) == 4 * 10 * 2 and items["score"].lt(0).all()
        texts = [it.text for it in q.items]
        order = [a.id for a in state.world.agents]
        bare = items[items["setting"] == "bare"].pivot(
            index="agent_id", columns="text", values="score"
        )
        measure = TraitMeasure(backend.model, backend.tokenizer, questionnaire=q)
        coefs = torch.tensor([a.traits.as_tuple() for a in state.world.agents])
        deltas = backend.hooks.vectors.deltas(coefs, backend.hooks.strength)
        expected = measure.item_logprobs(backend.hooks, deltas).numpy()  # (agents, items)
        np.testing.assert_allclose(bare.loc[order, texts].to_numpy(), expected, atol=1e-4)
        # in context the scores differ from bare: the agent's own chat
        ctx = items[items["setting"] == "context"].pivot(
            index="agent_id", columns="text", values="score"
        )
        assert not np.allclose(ctx.loc[order, texts].to_numpy(), expected, atol=1e-3)
        answers = result.rows[result.rows["kind"] == "question"]
        assert len(answers) == 4 and answers["answer"].map(type).eq(str).all()
        assert result.profiles.shape == (4, 2 + 5 + 10)
        paths = write(result, tmp_path / "out")
        assert pd.read_parquet(paths["interviews"]).shape[0] == len(result.rows)
    finally:
        state.close()
