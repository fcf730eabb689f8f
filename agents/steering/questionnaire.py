"""The trait measure used everywhere (tests, sweep, verification): statement
likelihood. After a neutral "describe yourself" user turn, the mean per-token
log-probability the (steered) model gives each held-out first-person
statement as its reply; a trait's score is the mean over its high-keyed
statements minus the mean over its reverse-keyed ones. Also the fluency
measure: per-token NLL of neutral reference text.

Knows the questionnaire and the chat layout, not how steering is applied
(rows of deltas come from the caller)."""

from __future__ import annotations

from typing import Any

import torch

from agents.steering.chat import encode, render_chat
from agents.steering.data import Questionnaire, load_questionnaire
from agents.steering.hooks import SteeringHooks
from agents.steering.scoring import PackedScorer
from agents.typing import TRAITS, Message


def _prefix(tokenizer: Any, prompt: str, system: str | None) -> list[int]:
    msgs = (Message(role="system", content=system),) if system else ()
    msgs += (Message(role="user", content=prompt),)
    return encode(tokenizer, render_chat(tokenizer, msgs, add_generation_prompt=True))


class TraitMeasure:
    """(R, 5) trait scores for R steering rows, in one packed pass per chunk."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        start_layer: int = 0,
        questionnaire: Questionnaire | None = None,
    ) -> None:
        q = questionnaire or load_questionnaire()
        self.items = q.items
        conts = [encode(tokenizer, item.text) for item in q.items]
        self.scorer = PackedScorer(
            model, _prefix(tokenizer, q.prompt, q.system), conts, start_layer=start_layer
        )
        weights = torch.zeros(len(TRAITS), len(q.items), dtype=torch.float64)  # (5, C)
        for t, trait in enumerate(TRAITS):
            for key in (1, -1):
                idx = [i for i, it in enumerate(q.items) if it.trait == trait and it.key == key]
                if not idx:
                    raise ValueError(f"questionnaire needs +1 and -1 keyed items for {trait}")
                weights[t, idx] = key / len(idx)
        self.weights = weights

    def item_logprobs(
        self, hooks: SteeringHooks | None = None, deltas: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(R, C) mean per-token log-probability of each statement."""
        return self.scorer.mean_logprob(self.scorer.score(hooks, deltas))

    def trait_scores(
        self, hooks: SteeringHooks | None = None, deltas: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(R, 5): mean over high-keyed minus mean over reverse-keyed statements."""
        return self.item_logprobs(hooks, deltas) @ self.weights.T


class FluencyMeasure:
    """(R,) per-token NLL of the neutral reference texts, token-weighted."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        start_layer: int = 0,
        questionnaire: Questionnaire | None = None,
    ) -> None:
        q = questionnaire or load_questionnaire()
        conts = [encode(tokenizer, text) for text in q.reference_texts]
        prefix = _prefix(tokenizer, q.reference_prompt, q.system)
        self.scorer = PackedScorer(model, prefix, conts, start_layer=start_layer)

    def nll(
        self, hooks: SteeringHooks | None = None, deltas: torch.Tensor | None = None
    ) -> torch.Tensor:
        sums = self.scorer.score(hooks, deltas)  # (R, C)
        return -sums.sum(-1) / self.scorer.lengths.sum().double()
