"""`steersim interview`: each agent of a run put back in its own context
(persona with goal and plan, the memories it recalls, its steering) and
asked questionnaire items and, optionally, free questions.

Where the context comes from:
- at the run's last complete tick (the default): its checkpoint. The world
  and memory are restored as --resume would restore them and each agent
  recalls, by the run's own retrieval, the memories most relevant to the
  question (for the questionnaire: its neutral prompt).
- at an earlier tick: the run's recorded prompts (storage.save_prompts): the
  persona and the memories of the agent's last action prompt at or before
  that tick (the memories it was actually shown).

The items are scored by the statement-likelihood measure of the steering
evaluation (agents.typing.StatementScorer), giving each agent a measured
Big-Five profile; per trait, the profile is correlated across agents with
the coefficients set in the config (Pearson and Spearman, permutation
p-values). The same items under the questionnaire's own neutral prompt and
the same steering ("bare") show what the simulation's context changes.
Free questions are answered in ONE batched generate."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agents.interview import AgentContext, answer_request, interview_messages, statement_scorer
from agents.json_files import read_json, records, text_field
from agents.paths import expand_home
from agents.prompting import persona_prompt
from agents.statistics import average_ranks
from agents.typing import TRAITS, Message
from orchestrator.assemble import RunState, open_run_state
from orchestrator.config_schema import LimitsConfig
from orchestrator.dumps_reader import DumpsError, load_tick_folder
from orchestrator.errors import SteersimError, one_line
from orchestrator.records import MEMORY_SCHEMA, PROMPT_SCHEMA
from orchestrator.storage import RunDir

log = logging.getLogger(__name__)

ITEM_SETS = ("test", "dev")
# an answer's budget is bounded like a run's (inference.max_new_tokens): a slip such as
# an extra zero is refused at once instead of decoding for hours
MAX_NEW_TOKENS = LimitsConfig.model_fields["new_tokens"].default
SETTINGS = ("context", "bare")
# the p-values' null is a (permutations x agents) array: 100x the default is
# precise enough; an extra zero or two was a MemoryError traceback after the model loaded
MIN_PERMUTATIONS, MAX_PERMUTATIONS = 100, 1_000_000
MAX_ITEMS_BYTES = 1 << 22  # the shipped test set is 15 kB
ITEM_KEYS = ("trait", "key", "text")
DEFAULT_ITEMS_PROMPT = "Describe yourself in one sentence."  # a file without "prompt"


@dataclass(frozen=True, kw_only=True)
class Items:
    """The statements and the neutral prompt they answer."""

    name: str  # test | dev | the file's path
    system: str | None
    prompt: str
    items: tuple[Any, ...]  # agents.steering.data.QuestionnaireItem


@dataclass(frozen=True, kw_only=True)
class InterviewPlan:
    tick: int | None = None  # None: the last complete tick
    items: str = "test"  # test | dev | a questionnaire JSON file
    questions: tuple[str, ...] = ()
    max_new_tokens: int = 64  # 1 .. MAX_NEW_TOKENS
    permutations: int = 10_000
    bare: bool = True

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEW_TOKENS:
            raise SteersimError(
                f"--max-new-tokens {n!r}: give 1 to {MAX_NEW_TOKENS} tokens "
                "(the bound of a run's inference.max_new_tokens, limits.new_tokens)"
            )
        p = self.permutations
        if (
            isinstance(p, bool)
            or not isinstance(p, int)
            or not MIN_PERMUTATIONS <= p <= MAX_PERMUTATIONS
        ):
            raise SteersimError(
                f"--permutations {p!r}: give {MIN_PERMUTATIONS} to {MAX_PERMUTATIONS:,} "
                "permutations per p-value"
            )


@dataclass(frozen=True, kw_only=True)
class InterviewResult:
    run_id: str
    tick: int
    source: str  # checkpoint | prompts
    items_name: str
    steering: dict[str, Any]  # the backend's steering record (enabled, strength, layers)
    rows: pd.DataFrame  # one row per (agent, setting, item) and per (agent, question)
    profiles: pd.DataFrame  # one row per agent: set_* and measured (context_*, bare_*) traits
    correlations: pd.DataFrame  # one row per (setting, trait)
    contexts: pd.DataFrame  # what each agent was shown: agent_id, query, system, user
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- items ------------------------------------------------------------------------


def load_items(spec: str) -> Items:
    """The shipped dev or test questionnaire, or a JSON file of the same form
    ({"prompt"?, "system"?, "items": [{"trait", "key", "text"}]})."""
    from agents.steering.data import load_questionnaire

    if spec in ITEM_SETS:
        q = load_questionnaire(spec)  # type: ignore[arg-type]
        return Items(name=spec, system=q.system, prompt=q.prompt, items=q.items)
    if not spec.strip():  # read as '.' it was "not ... a questionnaire file (is a folder)"
        raise SteersimError("--items: the value is empty; give test, dev or a questionnaire file")
    try:
        path = Path(expand_home(spec))
    except ValueError as exc:  # a ~user of no user
        raise SteersimError(f"--items {spec!r}: {exc}") from None
    try:
        # only a regular file of bounded size is read: a FIFO blocked the command
        # for ever, /dev/zero read until the process was killed for memory
        system, prompt, items = _parse_items(read_json(path, max_bytes=MAX_ITEMS_BYTES))
    except (OSError, ValueError) as exc:
        raise SteersimError(
            f"--items {spec}: not test, dev or a readable questionnaire file ({one_line(str(exc))})"
        ) from None
    for trait in TRAITS:
        if {i.key for i in items if i.trait == trait} != {1, -1}:
            raise SteersimError(f"--items {spec}: needs +1 and -1 keyed items for trait {trait}")
    return Items(name=str(path), system=system, prompt=prompt, items=items)


def _parse_items(doc: Any) -> tuple[str | None, str, tuple[Any, ...]]:
    """(system, prompt, items) of a parsed questionnaire file, each field
    checked. Before: a key `true` or `1.0` was taken and the writing of the
    results failed with a traceback, leaving an empty folder; an empty or
    repeated statement was scored like any other; "prompt": "" (or "Prompt")
    silently became the default prompt. Other keys (the shipped files' facet,
    stem, description, ...) are notes and are ignored."""
    from agents.steering.data import QuestionnaireItem

    items: list[Any] = []
    seen: dict[str, int] = {}
    top_keys = ("system", "prompt", "items")
    for j, (at, item) in enumerate(
        records(doc, "items", top_keys, "item", fields=ITEM_KEYS, required=ITEM_KEYS, strict=False)
    ):
        trait, key = item["trait"], item["key"]
        if trait not in TRAITS:
            raise ValueError(f"{at}: trait must be one of {', '.join(TRAITS)}, got {trait!r}")
        if type(key) is not int or key not in (1, -1):  # not True, not 1.0: strict as a config
            raise ValueError(f"{at}: key must be 1 or -1, got {key!r}")
        text = text_field(item["text"], f"{at}: text")
        same = " ".join(text.split()).casefold()
        if same in seen:
            raise ValueError(f"{at} repeats the text of item {seen[same]}")
        seen[same] = j
        items.append(QuestionnaireItem(trait=trait, key=key, text=text))
    prompt, system = doc.get("prompt"), doc.get("system")  # null: as if left out
    return (
        None if system is None else text_field(system, "system"),
        DEFAULT_ITEMS_PROMPT if prompt is None else text_field(prompt, "prompt"),
        tuple(items),
    )


def trait_profile(scores: np.ndarray, items: tuple[Any, ...]) -> np.ndarray:
    """(N, C) item scores -> (N, 5): per trait, the mean over its high-keyed
    items minus the mean over its reverse-keyed ones (as the evaluation)."""
    out = np.empty((scores.shape[0], len(TRAITS)))
    for t, trait in enumerate(TRAITS):
        hi = [j for j, it in enumerate(items) if it.trait == trait and it.key == 1]
        lo = [j for j, it in enumerate(items) if it.trait == trait and it.key == -1]
        out[:, t] = scores[:, hi].mean(axis=1) - scores[:, lo].mean(axis=1)
    return out


# -- statistics ---------------------------------------------------------------------


def correlation(x: np.ndarray, y: np.ndarray, permutations: int, seed: int) -> dict[str, float]:
    """Pearson r and Spearman rho of x and y with two-sided permutation
    p-values ((1 + #|stat*| >= |stat|) / (1 + permutations)); NaN where undefined."""
    n = len(x)
    nan = {"n": n, "pearson_r": math.nan, "pearson_p": math.nan}
    nan |= {"spearman_rho": math.nan, "spearman_p": math.nan}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return nan
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((permutations, n)), axis=1)  # (P, n) permutations of y
    out: dict[str, float] = {"n": n}
    for name, (a, b) in {
        "pearson": (x, y),
        "spearman": (average_ranks(x), average_ranks(y)),
    }.items():
        za = (a - a.mean()) / a.std()
        zb = (b - b.mean()) / b.std()
        stat = float(np.clip((za * zb).mean(), -1, 1))
        null = (za[None, :] * zb[perms]).mean(axis=1)  # (P,)
        p = (1 + np.sum(np.abs(null) >= abs(stat) - 1e-12)) / (1 + permutations)
        key = "pearson_r" if name == "pearson" else "spearman_rho"
        out[key], out[f"{name}_p"] = stat, float(p)
    return out


# -- contexts -------------------------------------------------------------------------


def contexts_from_state(state: RunState, query: str) -> list[AgentContext]:
    """Every agent as the checkpoint left it, recalling memories for `query`."""
    agents = state.world.agents
    recalled = state.memory.retrieve({a.id: query for a in agents}, state.next_tick)
    return [
        AgentContext(
            agent_id=a.id,
            index=a.index,
            name=a.name,
            persona=persona_prompt(name=a.name, age=a.age, home=a.home, goal=a.goal, plan=a.plan),
            memories=tuple(recalled.get(a.id, [])),
            traits=a.traits,
        )
        for a in agents
    ]


def contexts_from_prompts(run_dir: Path, state: RunState, tick: int) -> list[AgentContext]:
    """Every agent with the persona and memories of its last action prompt at
    or before `tick` (agents that had none yet: their persona, no memories)."""
    from agents.grammar import action_grammar

    layout = RunDir(run_dir)
    prompts = load_tick_folder(layout.prompts, PROMPT_SCHEMA)
    if prompts is None:
        raise DumpsError(
            f"{run_dir}: no recorded prompts (storage.save_prompts was off), so the agents can "
            f"only be interviewed at the last complete tick ({state.next_tick - 1})"
        )
    memories = load_tick_folder(layout.memories, MEMORY_SCHEMA)
    texts = (
        {} if memories is None else dict(zip(memories["memory_id"], memories["text"], strict=True))
    )
    shown = prompts[(prompts["tick"] <= tick) & (prompts["kind"] != "reflection")]
    last = shown.sort_values(["tick", "request_id"]).groupby("agent_id").tail(1)
    last = last.set_index("agent_id")
    help_text = "\n" + action_grammar(tuple(state.world.locations)).help_text()
    out = []
    for a in state.world.agents:
        if a.id in last.index:
            row = last.loc[a.id]
            persona = str(row["system"]).split(help_text)[0]
            recalled = tuple(texts[m] for m in row["memory_ids"] if m in texts)
        else:
            persona = persona_prompt(name=a.name, age=a.age, home=a.home, goal=a.goal, plan=None)
            recalled = ()
        out.append(
            AgentContext(
                agent_id=a.id,
                index=a.index,
                name=a.name,
                persona=persona,
                memories=recalled,
                traits=a.traits,
            )
        )
    return out


# -- the interview --------------------------------------------------------------------


def interview(run_dir: Path, plan: InterviewPlan, *, backend: Any = None) -> InterviewResult:
    """Interview the agents of the run at `run_dir` (see the module docstring).
    A `backend` passed in stays open (the caller owns it); one built here is closed."""
    items = load_items(plan.items)
    state = open_run_state(run_dir, backend=backend)
    try:
        return _interview(run_dir, state, items, plan)
    finally:
        if backend is None:
            state.close()


def _interview(
    run_dir: Path, state: RunState, items: Items, plan: InterviewPlan
) -> InterviewResult:
    last = state.next_tick - 1
    if last < 0:
        raise SteersimError(f"{run_dir}: the run has not completed a tick yet; nothing to ask")
    tick = last if plan.tick is None else plan.tick
    if not 0 <= tick <= last:
        raise SteersimError(f"--tick {tick}: the run has completed ticks 0..{last}")
    source = "checkpoint" if tick == last else "prompts"
    notes = []
    if not state.vectors_match:
        notes.append(
            "the rebuilt steering vectors differ from the run's (hash mismatch): the measured "
            "profile is under today's vectors"
        )

    def contexts_for(query: str) -> list[AgentContext]:
        if source == "checkpoint":
            return contexts_from_state(state, query)
        return contexts_from_prompts(run_dir, state, tick)

    scorer = statement_scorer(state.backend)
    item_ctx = contexts_for(items.prompt)
    set_traits = np.array([c.traits.as_tuple() for c in item_ctx])  # (N, 5)
    traits = [c.traits for c in item_ctx]
    prompts = {"context": [interview_messages(c, items.prompt) for c in item_ctx]}
    if plan.bare:
        bare: tuple[Message, ...] = (Message(role="user", content=items.prompt),)
        if items.system:
            bare = (Message(role="system", content=items.system), *bare)
        prompts["bare"] = [bare] * len(item_ctx)
    rows, profiles, corr = [], {}, []
    for setting, chats in prompts.items():
        scores = scorer.statement_logprobs(chats, items.items, traits)  # (N, C)
        profile = trait_profile(scores, items.items)  # (N, 5)
        profiles[setting] = profile
        for i, ctx in enumerate(item_ctx):
            for j, item in enumerate(items.items):
                rows.append(_row(state, tick, ctx, "item", setting, item.text, score=scores[i, j],
                                 trait=item.trait, key=item.key))  # fmt: skip
        for t, trait in enumerate(TRAITS):
            stats = correlation(set_traits[:, t], profile[:, t], plan.permutations, state.seed + t)
            corr.append({"setting": setting, "trait": trait, **stats})
    contexts = [_context_row(c, items.prompt) for c in item_ctx]
    if plan.questions:
        requests, asked = [], []
        for qi, question in enumerate(plan.questions):
            for ctx in contexts_for(question):
                requests.append(answer_request(ctx, question, question_index=qi,
                                               run_seed=state.seed, tick=tick,
                                               max_new_tokens=plan.max_new_tokens))  # fmt: skip
                asked.append((ctx, question))
                contexts.append(_context_row(ctx, question))
        answers = state.backend.generate(requests)  # ONE batched call for every answer
        for (ctx, question), gen in zip(asked, answers, strict=True):
            rows.append(_row(state, tick, ctx, "question", "context", question, answer=gen.text))
    steering = dict(state.backend.describe().get("steering") or {})
    return InterviewResult(
        run_id=state.run_id,
        tick=tick,
        source=source,
        items_name=items.name,
        steering=steering,
        rows=pd.DataFrame(rows),
        profiles=_profiles(item_ctx, set_traits, profiles),
        correlations=pd.DataFrame(corr),
        contexts=pd.DataFrame(contexts),
        notes=tuple(notes),
    )


def _row(state, tick, ctx, kind, setting, text, *, score=None, answer=None, trait=None, key=None):
    return {
        "run_id": state.run_id,
        "tick": tick,
        "agent_id": ctx.agent_id,
        "agent_name": ctx.name,
        "kind": kind,  # item | question
        "setting": setting,  # context (the agent's own) | bare (the questionnaire's prompt)
        "text": text,  # the item or the question
        "trait": trait,
        "key": key,
        "score": math.nan if score is None else float(score),  # mean log-prob per token
        "answer": answer,
    }


def _context_row(ctx: AgentContext, query: str) -> dict[str, Any]:
    system, user = interview_messages(ctx, query)
    return {
        "agent_id": ctx.agent_id,
        "query": query,
        "system": system.content,
        "user": user.content,
        "memories": len(ctx.memories),
    }


def _profiles(contexts: list[AgentContext], set_traits: np.ndarray, measured: dict) -> pd.DataFrame:
    df = pd.DataFrame({"agent_id": [c.agent_id for c in contexts]})
    df["agent_name"] = [c.name for c in contexts]
    for t, trait in enumerate(TRAITS):
        df[f"set_{trait}"] = set_traits[:, t]
    for setting, profile in measured.items():
        for t, trait in enumerate(TRAITS):
            df[f"{setting}_{trait}"] = profile[:, t]
    return df


# -- writing ----------------------------------------------------------------------------


def summary_markdown(result: InterviewResult) -> str:
    """Per trait and setting: correlation of set coefficient and measured score."""
    s = result.steering
    lines = [
        f"# Interview of run {result.run_id} at tick {result.tick}",
        "",
        f"{result.profiles.shape[0]} agents; context from the {result.source}; items: "
        f"{result.items_name} ({result.rows['kind'].eq('item').sum()} scores); steering "
        f"{'on' if s.get('enabled', True) else 'off'}, strength {s.get('strength', '?')}.",
        "",
        "Per trait, across agents: the coefficient set in the config against the trait score "
        "measured by statement likelihood (mean log-probability of high-keyed minus "
        "reverse-keyed items). *context*: in the agent's own context; *bare*: under the "
        "questionnaire's neutral prompt with the same steering. p: permutation test.",
        "",
        "| setting | trait | n | Pearson r | p | Spearman rho | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.correlations.to_dict(orient="records"):
        lines.append(
            f"| {r['setting']} | {r['trait']} | {r['n']} | {_f(r['pearson_r'])} | "
            f"{_f(r['pearson_p'])} | {_f(r['spearman_rho'])} | {_f(r['spearman_p'])} |"
        )
    lines += [f"\nNote: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _f(v: float) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def write(result: InterviewResult, out: Path) -> dict[str, Path]:
    """interviews.parquet, interview_profiles.parquet, interview_contexts.parquet,
    interview_summary.md and interview.json (the correlations) in `out`."""
    import pyarrow as pa

    from orchestrator.storage import (
        atomic_write,
        atomic_write_json,
        atomic_write_table,
        make_output_folder,
    )

    make_output_folder(out)
    paths = {}
    for name, df in (
        ("interviews", result.rows),
        ("interview_profiles", result.profiles),
        ("interview_contexts", result.contexts),
    ):
        paths[name] = out / f"{name}.parquet"
        atomic_write_table(paths[name], pa.Table.from_pandas(df, preserve_index=False))
    paths["summary"] = out / "interview_summary.md"
    text = summary_markdown(result)
    atomic_write(paths["summary"], lambda p: p.write_text(text, encoding="utf-8"))
    paths["json"] = out / "interview.json"
    atomic_write_json(paths["json"], result_dict(result))
    return paths


def result_dict(result: InterviewResult) -> dict[str, Any]:
    corr = result.correlations.astype(object).where(result.correlations.notna(), None)
    return {
        "run_id": result.run_id,
        "tick": result.tick,
        "source": result.source,
        "items": result.items_name,
        "steering": result.steering,
        "correlations": corr.to_dict(orient="records"),
        "notes": list(result.notes),
    }
