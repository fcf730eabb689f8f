"""The statement-likelihood measure of agents.steering.questionnaire, in any
chat context and under any steering row: for each (context, coefficients)
row, the mean per-token log-probability of each statement as the assistant's
reply. Rows sharing a context share one packed scorer (agents.steering
.scoring.PackedScorer: one forward pass scores every statement); rows with
different contexts (interviewed agents) are scored one context at a time.

Knows statements and chats, not runs or agents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from agents.steering.chat import encode, render_chat
from agents.steering.hooks import SteeringHooks
from agents.steering.scoring import PackedScorer
from agents.typing import KeyedStatement, Message, Traits


class HFStatementScorer:
    """agents.typing.StatementScorer for a Hugging Face model; `hooks` are the
    run's steering (None: unsteered)."""

    def __init__(self, model: Any, tokenizer: Any, hooks: SteeringHooks | None) -> None:
        self.model, self.tokenizer, self.hooks = model, tokenizer, hooks

    def statement_logprobs(
        self,
        prompts: Sequence[tuple[Message, ...]],
        statements: Sequence[KeyedStatement],
        traits: Sequence[Traits],
    ) -> np.ndarray:
        assert len(prompts) == len(traits), "one steering row per prompt"
        conts = [encode(self.tokenizer, s.text) for s in statements]
        out = np.empty((len(prompts), len(statements)))
        groups: dict[tuple[Message, ...], list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(tuple(prompt), []).append(i)
        for prompt, rows in groups.items():
            text = render_chat(self.tokenizer, prompt, add_generation_prompt=True)
            scorer = PackedScorer(self.model, encode(self.tokenizer, text), conts)
            if self.hooks is None:
                sums = scorer.score().expand(len(rows), -1)  # (R, C): one unsteered row
            else:
                coefs = torch.tensor([traits[i].as_tuple() for i in rows])  # (R, 5)
                deltas = self.hooks.vectors.deltas(coefs.float(), self.hooks.strength)  # (L, R, H)
                sums = scorer.score(self.hooks, deltas)  # (R, C)
            out[rows] = scorer.mean_logprob(sums).numpy()
        return out
