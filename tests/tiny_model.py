"""The fast tests' tiny random Llama and byte-level chat tokenizer, under
their old names; they live in agents.random_models (the benchmarks use them too)."""

from agents.random_models import CHATML, save_tiny
from agents.random_models import byte_tokenizer as tiny_tokenizer
from agents.random_models import tiny_llama as tiny_model

__all__ = ["CHATML", "save_tiny", "tiny_model", "tiny_tokenizer"]
