"""Builds the backend a spec asks for. The heavy HF stack is imported only
for `model.backend: hf`, so a mock run never imports torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.config import InferenceConfig, ModelConfig, OptimizationConfig, SteeringConfig
from agents.mock_backend import MockBackend
from agents.typing import Backend


@dataclass(frozen=True, kw_only=True)
class BackendSpec:
    """What building a backend reads: four config sections and where caches
    (converted models, steering vectors) live. The mock reads steering
    (enabled, strength; a steering.vectors file must exist, as for a model)
    and inference.constrained too."""

    model: ModelConfig = field(default_factory=ModelConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    storage_root: str = "storage"


def build_backend(spec: BackendSpec) -> Backend:
    if spec.model.backend == "mock":
        return MockBackend(steering=spec.steering, constrained=spec.inference.constrained)
    from agents.hf_backend import build_hf_backend  # torch and transformers load here

    return build_hf_backend(spec)
