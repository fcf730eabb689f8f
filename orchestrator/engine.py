"""The tick engine: plan events, build every acting agent's prompt, call the
backend ONCE for the whole batch, parse and apply the actions, record memories
and return the tick's rows: messages, plus what the agents saw (each request's
prompt with the ids and scores of the memories retrieved into it), the
memories stored and where every agent was. It knows nothing about Rich,
files or the CLI; the runner persists what it returns and the live view
renders it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agents.actions import Action, clean_text, parse
from agents.prompting import action_request
from agents.reflection import Reflection, ReflectionBatch, Reflector
from agents.seeding import GENERATION, derive_seed
from agents.typing import (
    Backend,
    Generation,
    MemoryStore,
    Message,
    Recalled,
    RecordedMemory,
    Request,
)
from orchestrator.records import REFLECT_ACTION, MemoryRow, MessageRow, PromptRow
from orchestrator.scheduler import Event, plan_events
from orchestrator.typing import TickResult
from orchestrator.world import AgentState, World

RAW_TEXT_CHARS = 2000
REFLECTION_EVENT_ID = -1  # reflection rows belong to no scheduled event

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Turn:
    """One agent acting in one event."""

    event: Event
    agent: AgentState
    request: Request
    recalled: Recalled | None  # the memories in the prompt with ids and scores, when known


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """What the tick loop reads of the config (orchestrator.assemble fills it)."""

    run_id: str
    seed: int
    max_events_per_tick: int
    max_group_size: int
    tokens_by_kind: dict[str, int]  # max_new_tokens of a "solo" and an "encounter" turn
    record_prompts: bool = True  # storage.save_prompts: return each request's prompt rows
    # optimization.reflect_with_actions: the reflections due after tick t-1 ride in
    # tick t's action batch (one decode per tick) instead of a second decode after
    # tick t's actions
    reflect_with_actions: bool = False


class Simulation:
    def __init__(
        self,
        *,
        settings: EngineSettings,
        world: World,
        backend: Backend,
        memory: MemoryStore,
        reflector: Reflector | None = None,
    ) -> None:
        self.settings = settings
        self.world = world
        self.backend = backend
        self.memory = memory
        self.reflector = reflector
        # A store without ids (any MemoryStore will do) still runs; its prompt
        # rows then name no memories and no memory rows are returned.
        self._recorded = isinstance(memory, RecordedMemory)

    def step(self) -> TickResult:
        """Run the world's next tick."""
        start = time.perf_counter()
        cfg, world = self.settings, self.world
        tick = world.tick
        events = plan_events(world, tick, cfg.seed, cfg.max_events_per_tick, cfg.max_group_size)
        positions = {a.id: a.location for a in world.agents}  # before anyone moves

        t0 = time.perf_counter()
        turns = self._turns(events, tick)
        memory_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        riding = self._riding_reflections(tick)
        reflect_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        requests = [t.request for t in turns] + list(riding.requests if riding else ())
        gens = self.backend.generate(requests) if requests else []
        generate_s = time.perf_counter() - t0
        if len(gens) != len(requests):
            raise RuntimeError(
                f"backend returned {len(gens)} generations for {len(requests)} requests"
            )

        t0 = time.perf_counter()
        rows = [
            self._apply(turn, gen, tick, i)
            for i, (turn, gen) in enumerate(zip(turns, gens[: len(turns)], strict=True))
        ]
        memory_s += time.perf_counter() - t0

        # Reflect before end_tick, so that this tick's memories and the new
        # insights are embedded and rated together in one batch.
        t0 = time.perf_counter()
        if riding is not None and self.reflector is not None:
            reflections = self.reflector.absorb(riding, gens[len(turns) :])
        else:
            reflections = self._reflect(tick)
        rows = self._mark_reflected(rows, reflections, tick)
        for r in reflections:
            if r.plan:  # after the rows, which show the plan the agent reflected with
                self.world.set_plan(r.agent_id, r.plan)
        reflect_s += time.perf_counter() - t0
        generate_calls = (1 if requests else 0) + (1 if reflections and riding is None else 0)

        t0 = time.perf_counter()
        self.memory.end_tick(tick)
        memories = self._stored_rows() if self._recorded else []
        memory_s += time.perf_counter() - t0

        world.tick = tick + 1
        return TickResult(
            tick=tick,
            events=events,
            rows=rows,
            generate_s=generate_s,
            reflect_s=reflect_s,
            memory_s=memory_s,
            tick_s=time.perf_counter() - start,
            generate_calls=generate_calls,
            prompts=self._prompt_rows(turns, reflections, tick) if cfg.record_prompts else [],
            memories=memories,
            positions=positions,
        )

    def _prompt_rows(
        self, turns: list[Turn], reflections: list[Reflection], tick: int
    ) -> list[PromptRow]:
        """One row per request, numbered as the tick's message rows are: the
        actions first, then the reflections."""
        out = []
        for i, t in enumerate(turns):
            r = t.recalled
            out.append(
                self._prompt_row(
                    tick,
                    i,
                    t.agent.id,
                    t.event.kind,
                    t.request.prompt,
                    ids=r.ids if r else [],
                    scores=r.scores if r else [],
                )
            )
        for j, refl in enumerate(reflections):
            # the reflection prompt lists the agent's recent memories, not retrieved ones
            out.append(
                self._prompt_row(
                    tick,
                    len(turns) + j,
                    refl.agent_id,
                    "reflection",
                    refl.prompt,
                    ids=[],
                    scores=[],
                )
            )
        return out

    def _prompt_row(
        self,
        tick: int,
        request_id: int,
        agent_id: str,
        kind: str,
        prompt: tuple[Message, ...],
        *,
        ids: list[int],
        scores: list[float],
    ) -> PromptRow:
        return PromptRow(
            run_id=self.settings.run_id,
            tick=tick,
            request_id=request_id,
            agent_id=agent_id,
            kind=kind,
            system="\n".join(m.content for m in prompt if m.role == "system"),
            user="\n".join(m.content for m in prompt if m.role != "system"),
            memory_ids=ids,
            memory_scores=scores,
        )

    def _stored_rows(self) -> list[MemoryRow]:
        run_id = self.settings.run_id
        return [
            MemoryRow(
                run_id=run_id,
                memory_id=m.id,
                agent_id=m.agent_id,
                tick=m.tick,
                text=m.text,
                importance=m.importance,
                kind=m.kind,
            )
            for m in self.memory.take_stored()  # type: ignore[attr-defined]
        ]

    def _riding_reflections(self, tick: int) -> ReflectionBatch | None:
        """With reflect_with_actions: the reflections due after tick-1, prepared
        to go in this tick's action batch. They read the memories up to tick-1
        (all stored by its end_tick), their insights are memories of this tick
        (the one that generates them), and their plans reach the prompts from
        tick+1 (this tick's actions are generated beside them). None when
        reflections run after the actions."""
        if self.reflector is None or not self.settings.reflect_with_actions:
            return None
        due = self.reflector.due(self.world.agents, tick - 1) if tick > 0 else []
        return self.reflector.prepare(due, tick - 1, made_at=tick) if due else None

    def _reflect(self, tick: int) -> list[Reflection]:
        """Without reflect_with_actions: everyone due after this tick's actions
        reflects, in a second batched call that reads this tick's memories too."""
        if self.reflector is None or self.settings.reflect_with_actions:
            return []
        return self.reflector.reflect(self.reflector.due(self.world.agents, tick), tick)

    def _mark_reflected(
        self, rows: list[MessageRow], reflections: list[Reflection], tick: int
    ) -> list[MessageRow]:
        """Rows of agents that reflected this tick carry reflected=True, and each
        reflection adds a REFLECT row whose content is its plan and insights."""
        if not reflections:
            return rows
        done = {r.agent_id for r in reflections}
        rows = [replace(row, reflected=True) if row.agent_id in done else row for row in rows]
        return rows + [
            self._reflection_row(r, tick, len(rows) + j) for j, r in enumerate(reflections)
        ]

    def _reflection_row(self, r: Reflection, tick: int, request_id: int) -> MessageRow:
        agent, gen = self.world.agent(r.agent_id), r.generation
        parts = ([f"PLAN {r.plan}"] if r.plan else []) + [f"INSIGHT {i}" for i in r.insights]
        return self._row(
            agent,
            tick,
            gen,
            request_id=request_id,
            event_id=REFLECTION_EVENT_ID,
            event_kind="reflection",
            location=agent.location,
            action=REFLECT_ACTION,
            target=None,
            content=clean_text(" | ".join(parts)),
            reflected=True,
            parse_ok=r.parse_ok,
        )

    def _turns(self, events: list[Event], tick: int) -> list[Turn]:
        cfg, world = self.settings, self.world
        acting = [
            (e, world.agent(a), tuple(world.agent(o).name for o in e.agent_ids if o != a))
            for e in events
            for a in e.agent_ids
        ]  # (event, agent, companion names)
        queries = {
            agent.id: memory_query(agent, event.location, companions)
            for event, agent, companions in acting
        }
        if self._recorded:
            recalled = self.memory.retrieve_scored(queries, tick)  # type: ignore[attr-defined]
            memories = {a: r.texts for a, r in recalled.items()}
        else:
            recalled, memories = {}, self.memory.retrieve(queries, tick)
        turns = []
        for event, agent, companions in acting:
            request = action_request(
                name=agent.name,
                age=agent.age,
                home=agent.home,
                goal=agent.goal,
                plan=agent.plan,
                places=world.locations,
                tick=tick,
                location=event.location,
                companions=companions,
                memories=memories.get(agent.id, []),
                traits=agent.traits,
                max_new_tokens=cfg.tokens_by_kind[event.kind],
                seed=derive_seed(cfg.seed, GENERATION, tick, agent.index),
                kind=event.kind,
            )
            turns.append(
                Turn(event=event, agent=agent, request=request, recalled=recalled.get(agent.id))
            )
        return turns

    def _apply(self, turn: Turn, gen: Generation, tick: int, request_id: int) -> MessageRow:
        agent, event = turn.agent, turn.event
        action = parse(gen.text, self.world.locations)
        self._remember(turn, action, tick)
        if action.kind == "MOVE" and action.target:
            self.world.move(agent.id, action.target)
        return self._row(
            agent,
            tick,
            gen,
            request_id=request_id,
            event_id=event.event_id,
            event_kind=event.kind,
            location=event.location,
            action=action.kind,
            target=action.target,
            content=action.content,
            reflected=False,
            parse_ok=action.parse_ok,
        )

    def _row(
        self,
        agent: AgentState,
        tick: int,
        gen: Generation,
        *,
        request_id: int,
        event_id: int,
        event_kind: str,
        location: str,
        action: str,
        target: str | None,
        content: str,
        reflected: bool,
        parse_ok: bool,
    ) -> MessageRow:
        """A dump row: what the agent did plus what the generation reports."""
        s = gen.steer
        return MessageRow(
            run_id=self.settings.run_id,
            tick=tick,
            request_id=request_id,
            event_id=event_id,
            event_kind=event_kind,
            agent_id=agent.id,
            agent_name=agent.name,
            location=location,
            action=action,
            target=target,
            content=content,
            goal=agent.goal,
            plan=agent.plan,
            raw_text=clean_text(gen.text, RAW_TEXT_CHARS),
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            steer_E=s.E,
            steer_A=s.A,
            steer_C=s.C,
            steer_O=s.O,
            steer_N=s.N,
            steer_layers=list(gen.steer_layers),
            reflected=reflected,
            parse_ok=parse_ok,
            latency_ms=gen.latency_s * 1000.0,
        )

    def _remember(self, turn: Turn, action: Action, tick: int) -> None:
        agent, event = turn.agent, turn.event
        own, heard = describe(agent.name, action, event.location)
        self.memory.add(agent.id, tick, own, "action")
        if heard:
            for other in event.agent_ids:
                if other != agent.id:
                    self.memory.add(other, tick, heard, "observation")


def memory_query(agent: AgentState, location: str, companions: Sequence[str]) -> str:
    """What an agent's memories are retrieved for: what it is after (its plan if
    it has one) and where and with whom it is now."""
    focus = agent.plan or f"I want to {agent.goal}."
    place = location.replace("_", " ")
    with_whom = f" with {', '.join(companions)}" if companions else ", alone"
    return f"{focus} At the {place}{with_whom}."


def describe(name: str, action: Action, location: str) -> tuple[str, str | None]:
    """(the actor's own memory, what the others in the event observe)."""
    place = location.replace("_", " ")
    if action.kind == "MOVE":
        dest = (action.target or "").replace("_", " ")
        return f"I went from the {place} to the {dest}.", f"{name} left for the {dest}."
    if action.kind == "SAY":
        return f'I said at the {place}: "{action.content}"', f'{name} said: "{action.content}"'
    if action.kind == "WORK":
        what = action.content or "my goal"
        return f"I worked at the {place}: {what}", f"{name} was working: {what}"
    if action.kind == "REST":
        return f"I rested at the {place}.", f"{name} took a break."
    return f"I did nothing at the {place}.", None
