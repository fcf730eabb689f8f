"""The typed schema of a run config (pydantic v2). Every section is a frozen
model with `extra="forbid"`, so a misspelt key is caught where it enters.
This module knows nothing about files or templates (see config_loader)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agents.config import (
    InferenceConfig,
    MemoryConfig,
    ModelConfig,
    OptimizationConfig,
    PositiveInt,
    Section,
    SteeringConfig,
)
from agents.paths import expand_home

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
LOCATION_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
GOAL_CHARS = 500  # a goal is one sentence in a prompt

Coef = Annotated[float, Field(ge=-1.0, le=1.0)]


def check_run_id(v: str) -> str:
    """A run id names a folder under storage/dumps: no separators, no '..'."""
    if not re.fullmatch(RUN_ID_PATTERN, v) or ".." in v:
        raise ValueError(
            f"invalid run id {v!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' or path separators"
        )
    return v


class Persona(Section):
    """An agent spelled out in the config; unspecified traits are 0."""

    name: str = Field(min_length=1, max_length=64)
    age: int = Field(default=30, ge=0, le=130)
    home: str | None = None  # a world location; default: drawn from the seed
    goal: str | None = Field(default=None, max_length=GOAL_CHARS)
    E: Coef = 0.0
    A: Coef = 0.0
    C: Coef = 0.0
    O: Coef = 0.0  # noqa: E741
    N: Coef = 0.0


class PopulationConfig(Section):
    agents: PositiveInt = 32
    # "random": traits drawn uniformly from [-trait_range, trait_range] by the run
    # seed; or a list of personas (the first agents), the rest drawn at random.
    traits: Literal["random"] | Annotated[list[Persona], Field(fail_fast=True)] = "random"
    trait_range: float = Field(default=1.0, gt=0, le=1.0)


DEFAULT_LOCATIONS = ["home", "cafe", "park", "community_center", "library", "market"]
DEFAULT_GOALS = [
    "organise a neighbourhood festival",
    "finish writing a novel",
    "open a small bakery",
    "find a new job",
    "learn to paint",
    "make new friends",
    "fix the community garden",
    "train for a marathon",
]


class WorldConfig(Section):
    # fail_fast: the first bad item is the one reported; a list of 100,000 bad
    # items is not checked (and its errors collected) to the end
    locations: list[Annotated[str, Field(pattern=LOCATION_PATTERN)]] = Field(
        default_factory=lambda: list(DEFAULT_LOCATIONS), min_length=1, fail_fast=True
    )
    goals: list[Annotated[str, Field(min_length=1, max_length=GOAL_CHARS)]] = Field(
        default_factory=lambda: list(DEFAULT_GOALS), min_length=1, fail_fast=True
    )
    max_group_size: int = Field(default=3, ge=2)  # agents in one encounter

    @field_validator("locations")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        counts = Counter(v)  # linear: a hostile list may hold 100,000 names
        dup = sorted(x for x, n in counts.items() if n > 1)
        if dup:
            raise ValueError(f"duplicate location {dup[0]!r}")
        return v


class DistributedConfig(Section):
    """Several processes through torch.distributed (docs/distributed.md)."""

    enabled: bool = False
    world_size: Literal["auto"] | PositiveInt = "auto"  # auto: the visible GPUs
    # data: a replica per rank, each tick's requests split across them;
    # tensor: every weight matrix split across the ranks (models too big for one GPU);
    # auto: tensor when the model does not fit one GPU, else data
    mode: Literal["auto", "data", "tensor"] = "auto"
    # a rank that does not answer within this many seconds ends the run
    timeout_s: float = Field(default=1800.0, gt=0)


class StorageConfig(Section):
    root: str = Field(default="storage", min_length=1)
    # prompts/tick_*.parquet: every request's rendered prompt and retrieved memories
    save_prompts: bool = True

    @field_validator("root")
    @classmethod
    def _home(cls, v: str) -> str:
        # `~/data` is the home folder, as in a shell and in the analysis commands'
        # --storage-root; taken literally it made a folder named '~' in the cwd
        return expand_home(v)


class LimitsConfig(Section):
    """Upper bounds on the counts a run allocates for, so that a slip (an extra
    zero: `agents: 10000000`) is refused at once instead of allocating for
    hours. Raise one here when you mean it. Limits change no result, so they
    are left out of the config hash: a resume may raise them without --force."""

    agents: PositiveInt = 100_000  # population.agents, world.max_group_size
    ticks: PositiveInt = 1_000_000  # ticks
    events_per_tick: PositiveInt = 100_000  # max_events_per_tick
    new_tokens: PositiveInt = 8_192  # inference.max_new_tokens and max_new_tokens_by_action.*
    prompt_tokens: PositiveInt = 131_072  # inference.max_prompt_tokens, memory.prompt_token_budget
    memory_items: PositiveInt = 100_000  # memory.max_items, memory.top_k


class RunConfig(Section):
    run_id: str = "run"
    seed: int = Field(default=42, ge=0, lt=2**63)
    ticks: PositiveInt = 200
    max_events_per_tick: PositiveInt = 12
    population: PopulationConfig = Field(default_factory=PopulationConfig)
    world: WorldConfig = Field(default_factory=WorldConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    steering: SteeringConfig = Field(default_factory=SteeringConfig)
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, v: str) -> str:
        return check_run_id(v)

    @model_validator(mode="after")
    def _within_limits(self) -> RunConfig:
        inf, mem = self.inference, self.memory
        by_action = inf.max_new_tokens_by_action.model_dump()
        checks = [
            ("population.agents", self.population.agents, "agents"),
            ("world.max_group_size", self.world.max_group_size, "agents"),
            ("ticks", self.ticks, "ticks"),
            ("max_events_per_tick", self.max_events_per_tick, "events_per_tick"),
            ("inference.max_new_tokens", inf.max_new_tokens, "new_tokens"),
            *(
                (f"inference.max_new_tokens_by_action.{k}", v, "new_tokens")
                for k, v in by_action.items()
            ),
            ("inference.max_prompt_tokens", inf.max_prompt_tokens, "prompt_tokens"),
            ("memory.prompt_token_budget", mem.prompt_token_budget, "prompt_tokens"),
            ("memory.max_items", mem.max_items, "memory_items"),
            ("memory.top_k", mem.top_k, "memory_items"),
        ]
        for key, value, limit in checks:
            bound = getattr(self.limits, limit)
            if value is not None and value > bound:
                raise CrossFieldError(
                    key,
                    f"{value} is above the limit {bound} (limits.{limit}); set limits.{limit} "
                    "higher if you mean it",
                )
        return self

    @model_validator(mode="after")
    def _personas_fit_world(self) -> RunConfig:
        if isinstance(self.population.traits, list):
            if len(self.population.traits) > self.population.agents:
                raise CrossFieldError(
                    "population.traits",
                    f"{len(self.population.traits)} personas but population.agents is "
                    f"{self.population.agents}",
                )
            for i, p in enumerate(self.population.traits):
                if p.home is not None and p.home not in self.world.locations:
                    raise CrossFieldError(
                        f"population.traits[{i}].home",
                        f"unknown location {p.home!r}; known: {', '.join(self.world.locations)}",
                    )
            first: dict[str, int] = {}  # name -> first index (linear, not pairwise)
            for i, p in enumerate(self.population.traits):
                if p.name in first:
                    raise CrossFieldError(
                        f"population.traits[{i}].name",
                        f"duplicate persona name {p.name!r} (also population.traits"
                        f"[{first[p.name]}]); give every persona its own name",
                    )
                first[p.name] = i
        return self

    @model_validator(mode="after")
    def _tensor_parallel_loads_plainly(self) -> RunConfig:
        opt = self.optimization
        if self.distributed.mode == "tensor" and (
            opt.use_quantization
            or opt.max_gpu_memory_gb is not None
            or opt.max_cpu_memory_gb is not None
            or opt.offload_folder is not None
        ):
            raise CrossFieldError(
                "distributed.mode",
                "tensor parallelism splits the weights across GPUs and cannot be combined "
                "with optimization.use_quantization or memory limits/offload; drop those or "
                "use mode: data",
            )
        return self

    @model_validator(mode="after")
    def _importance_needs_a_model(self) -> RunConfig:
        if self.memory.importance == "model" and self.model.backend == "mock":
            raise CrossFieldError(
                "memory.importance",
                "model ratings need a real model, and model.backend is mock; "
                "use memory.importance: heuristic or auto",
            )
        return self


class CrossFieldError(ValueError):
    """Raised from a cross-field validator with the dotted key it concerns."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)
