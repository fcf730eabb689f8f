"""The config sections the minds consume: model, inference, steering,
optimisation (loading) and memory. Each is a frozen pydantic model with
`extra="forbid"`, so a misspelt key is caught where it enters. The run side's
schema (orchestrator.config_schema.RunConfig) composes them; nothing here knows
about files, templates or the run."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.paths import expand_home

PositiveInt = Annotated[int, Field(gt=0)]
GiB = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    # decode under the answer's grammar (agents.grammar) with llguidance, so every
    # action and reflection has the grammar's form; false = free text + the parser
    constrained: bool = True

    def tokens_for(self, kind: str) -> int:
        return getattr(self.max_new_tokens_by_action, kind, None) or self.max_new_tokens


class SteeringConfig(Section):
    enabled: bool = True
    # defaults chosen by scripts/steering_sweep.py on SmolLM2-135M (30 layers), on the DEV
    # questionnaire only (docs/steering.md: the test questionnaire reports, it never chooses)
    layers: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [21], min_length=1)
    # in units of each layer's typical hidden-state norm
    strength: float = Field(default=0.17, ge=0.0, le=4.0)
    # gradient: statement pairs read by their likelihood gradient, persona pairs by their
    # activation difference (docs/steering.md)
    method: Literal["mean_diff", "pca", "lda", "gradient"] = "gradient"
    # the contrastive pairs the vectors are built from: "shipped", a candidate set's name
    # under agents/data/pair_sets/ or a pairs JSON file; statement_con = the shipped E and A
    # personas with C, O and N statement pairs (chosen on dev in session 14)
    pairs: str = Field(default="statement_con", min_length=1)
    orthogonalize: bool = False  # sequential Gram-Schmidt over the five trait vectors
    vectors: str | None = None  # a safetensors file to load instead of building
    # per-trait overrides of `layers`, e.g. {O: [26]}; traits not named use `layers`
    trait_layers: dict[Literal["E", "A", "C", "O", "N"], list[Annotated[int, Field(ge=0)]]] = Field(
        default_factory=lambda: {"O": [26]}
    )
    # recombine the five directions by the shipped cross-talk calibration when one matches
    # the model, pairs, method and layers (agents/data/steering_calibration.json)
    calibrated: bool = True
    # per-trait multipliers of `strength`, e.g. {E: 0.8}; traits not named use 1. C at 0.6
    # keeps its gradient direction's fluency cost under the limit; the shipped calibration
    # for these defaults was fitted with that gain
    trait_gains: dict[Literal["E", "A", "C", "O", "N"], Annotated[float, Field(gt=0, le=4)]] = (
        Field(default_factory=lambda: {"C": 0.6})
    )

    @field_validator("pairs", "vectors")
    @classmethod
    def _home(cls, v: str | None) -> str | None:
        # `~/v.safetensors` is the home folder, as in storage.root; taken literally it
        # was "no such file", and a `~user` of no user is refused here with its key
        return None if v is None else expand_home(v)

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
    # true: the reflections due after tick t-1 ride in tick t's action batch (one decode
    # a tick); false: a second decode after tick t's actions, reading their memories too.
    # false is the default: on the 8B shape it measured faster (docs/memory-and-reflection.md)
    reflect_with_actions: bool = False
    use_quantization: bool = False  # 4-bit NF4 through bitsandbytes, CUDA only
    max_gpu_memory_gb: GiB | None = None
    max_cpu_memory_gb: GiB | None = None
    offload_folder: str | None = None

    @field_validator("offload_folder")
    @classmethod
    def _home(cls, v: str | None) -> str | None:
        # as storage.root: `~/off` is the home folder, not a folder named '~' in the cwd
        return None if v is None else expand_home(v)


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
