"""Builds the backend a config asks for. The heavy HF stack is imported only
when `model.backend: hf`, so a mock run never imports torch."""

from __future__ import annotations

from agents.mock_backend import MockBackend
from agents.typing import Backend
from orchestrator.config_schema import RunConfig


def build_backend(config: RunConfig) -> Backend:
    if config.model.backend == "mock":
        return MockBackend()
    from agents.hf_backend import build_hf_backend  # torch and transformers load here

    return build_hf_backend(config)
