"""Turns chat messages into model text: the tokenizer's chat template when it
has one, a plain "role: content" layout otherwise. Shared by the HF backend
and the steering code so both see prompts the same way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.typing import Message


def render_chat(tokenizer: Any, messages: Sequence[Message], *, add_generation_prompt: bool) -> str:
    """The prompt text for `messages`; with add_generation_prompt it ends where
    the assistant's reply begins."""
    turns = [{"role": m.role, "content": m.content} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    text = "".join(f"{t['role']}: {t['content']}\n" for t in turns)
    return text + ("assistant:" if add_generation_prompt else "")


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of already rendered text (the template holds the special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
