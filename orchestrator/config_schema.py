"""The typed schema of a run config (pydantic v2). Every section is a frozen
model with `extra="forbid"`, so a misspelt key is caught where it enters.
This module knows nothing about files or templates (see config_loader)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
LOCATION_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

Coef = Annotated[float, Field(ge=-1.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]
GiB = Annotated[float, Field(gt=0)]


def check_run_id(v: str) -> str:
    """A run id names a folder under storage/dumps: no separators, no '..'."""
    if not re.fullmatch(RUN_ID_PATTERN, v) or ".." in v:
        raise ValueError(
            f"invalid run id {v!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..' or path separators"
        )
    return v


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Persona(Section):
    """An agent spelled out in the config; unspecified traits are 0."""

    name: str = Field(min_length=1, max_length=64)
    age: int = Field(default=30, ge=0, le=130)
    home: str | None = None  # a world location; default: drawn from the seed
    goal: str | None = None
    E: Coef = 0.0
    A: Coef = 0.0
    C: Coef = 0.0
    O: Coef = 0.0  # noqa: E741
    N: Coef = 0.0


class PopulationConfig(Section):
    agents: PositiveInt = 32
    # "random": traits drawn uniformly from [-trait_range, trait_range] by the run
    # seed; or a list of personas (the first agents), the rest drawn at random.
    traits: Literal["random"] | list[Persona] = "random"
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
    locations: list[Annotated[str, Field(pattern=LOCATION_PATTERN)]] = Field(
        default_factory=lambda: list(DEFAULT_LOCATIONS), min_length=1
    )
    goals: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: list(DEFAULT_GOALS), min_length=1
    )
    max_group_size: int = Field(default=3, ge=2)  # agents in one encounter

    @field_validator("locations")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"duplicate location {dup[0]!r}")
        return v


class ModelConfig(Section):
    backend: Literal["hf", "mock"] = "hf"
    # a local HF folder, "smollm2-135m" (embedded default) or a hub id
    name_or_path: str = Field(default="smollm2-135m", min_length=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    trust_remote_code: bool = False
    allow_download: bool = False  # let a hub id be fetched (never needed for the default)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
        return v


class TokensByKind(Section):
    solo: PositiveInt | None = None  # a lone agent's decision (MOVE / WORK / REST)
    encounter: PositiveInt | None = None  # talking with co-located agents
    reflection: PositiveInt | None = None  # insights and a plan


class InferenceConfig(Section):
    max_new_tokens: PositiveInt = 48
    max_new_tokens_by_action: TokensByKind = Field(default_factory=TokensByKind)
    temperature: float = Field(default=0.8, ge=0.0, le=5.0)  # 0 = greedy
    top_p: float = Field(default=0.9, gt=0.0, le=1.0)
    max_prompt_tokens: PositiveInt = 1024  # longer prompts are truncated from the left

    def tokens_for(self, kind: str) -> int:
        return getattr(self.max_new_tokens_by_action, kind, None) or self.max_new_tokens


class SteeringConfig(Section):
    enabled: bool = True
    # defaults chosen by scripts/steering_sweep.py on SmolLM2-135M (30 layers)
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [21], min_length=1)
    # in units of each layer's typical hidden-state norm
    strength: float = Field(default=0.17, ge=0.0, le=4.0)
    method: Literal["mean_diff", "pca"] = "mean_diff"
    orthogonalize: bool = False  # sequential Gram-Schmidt over the five trait vectors
    vectors: str | None = None  # a safetensors file to load instead of building
    # per-trait overrides of `layers`, e.g. {O: [26]}; traits not named use `layers`
    trait_layers: dict[Literal["E", "A", "C", "O", "N"], list[Annotated[int, Field(ge=0)]]] = Field(
        default_factory=lambda: {"O": [26]}
    )

    @field_validator("layers")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("layers must not repeat")
        return sorted(v)

    @field_validator("trait_layers")
    @classmethod
    def _trait_layers(cls, v: dict[str, list[int]]) -> dict[str, list[int]]:
        for trait, layers in v.items():
            if not layers or len(set(layers)) != len(layers):
                raise ValueError(f"{trait}: give one or more distinct layers")
        return {t: sorted(x) for t, x in v.items()}

    def layers_of(self) -> dict[str, list[int]]:
        """The steered layers of each trait (E, A, C, O, N)."""
        return {t: self.trait_layers.get(t, self.layers) for t in ("E", "A", "C", "O", "N")}

    def all_layers(self) -> list[int]:
        return sorted({x for layers in self.layers_of().values() for x in layers})


class OptimizationConfig(Section):
    reflect_every_n_ticks: int = Field(default=5, ge=0)  # 0 = never
    use_quantization: bool = False  # 4-bit NF4 through bitsandbytes, CUDA only
    max_gpu_memory_gb: GiB | None = None
    max_cpu_memory_gb: GiB | None = None
    offload_folder: str | None = None


class MemoryWeights(Section):
    recency: float = Field(default=1.0, ge=0)
    importance: float = Field(default=1.0, ge=0)
    relevance: float = Field(default=1.0, ge=0)


class MemoryConfig(Section):
    top_k: PositiveInt = 8
    recency_decay: float = Field(default=0.99, gt=0, le=1.0)
    weights: MemoryWeights = Field(default_factory=MemoryWeights)
    max_items: PositiveInt = 200
    reflection_threshold: float | None = Field(default=None, gt=0)  # None = off
    prompt_token_budget: PositiveInt = 200
    embedder: Literal["auto", "minilm", "hashing"] = "auto"  # auto: minilm for hf, hashing for mock
    importance: Literal["auto", "model", "heuristic"] = "auto"


class DistributedConfig(Section):
    enabled: bool = False
    world_size: Literal["auto"] | PositiveInt = "auto"


class StorageConfig(Section):
    root: str = Field(default="storage", min_length=1)


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

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, v: str) -> str:
        return check_run_id(v)

    @model_validator(mode="after")
    def _personas_fit_world(self) -> RunConfig:
        if isinstance(self.population.traits, list):
            if len(self.population.traits) > self.population.agents:
                raise PersonaError(
                    "population.traits",
                    f"{len(self.population.traits)} personas but population.agents is "
                    f"{self.population.agents}",
                )
            for i, p in enumerate(self.population.traits):
                if p.home is not None and p.home not in self.world.locations:
                    raise PersonaError(
                        f"population.traits[{i}].home",
                        f"unknown location {p.home!r}; known: {', '.join(self.world.locations)}",
                    )
        return self


class PersonaError(ValueError):
    """Raised from the model validator with the dotted key it concerns."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)
