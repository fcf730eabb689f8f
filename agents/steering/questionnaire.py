"""The trait measure used everywhere (tests, sweep, verification): statement
likelihood. After a neutral "describe yourself" user turn, the mean per-token
log-probability the (steered) model gives each first-person statement of the
questionnaire (TEST by default, DEV for choices) as its reply; a trait's score is the mean over its high-keyed
statements minus the mean over its reverse-keyed ones. Also the fluency
measure (per-token NLL of neutral reference text) and, for large instruct
models only, a Likert rating read from the digits' probabilities (a 135M
model puts little mass on the digits and its expected rating barely moves).

Knows the questionnaire and the chat layout, not how steering is applied
(rows of deltas come from the caller)."""

from __future__ import annotations

from typing import Any

import torch

from agents.steering.chat import digit_token_ids, encode, expected_digit, left_pad, render_chat
from agents.steering.data import Questionnaire, load_questionnaire
from agents.steering.hooks import SteeringHooks
from agents.steering.scoring import PackedScorer
from agents.typing import TRAITS, Message


def _prefix(tokenizer: Any, prompt: str, system: str | None) -> list[int]:
    msgs = (Message(role="system", content=system),) if system else ()
    msgs += (Message(role="user", content=prompt),)
    return encode(tokenizer, render_chat(tokenizer, msgs, add_generation_prompt=True))


def _keyed_weights(items: Any) -> torch.Tensor:
    """(5, C): +1/n on a trait's high-keyed items, -1/n on its reverse-keyed ones."""
    weights = torch.zeros(len(TRAITS), len(items), dtype=torch.float64)
    for t, trait in enumerate(TRAITS):
        for key in (1, -1):
            idx = [i for i, it in enumerate(items) if it.trait == trait and it.key == key]
            if not idx:
                raise ValueError(f"questionnaire needs +1 and -1 keyed items for {trait}")
            weights[t, idx] = key / len(idx)
    return weights


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
        self.weights = _keyed_weights(q.items)  # (5, C)

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


LIKERT_DIGITS = "12345"
RATING_PROMPT = (
    'How well does this statement describe you? "{text}" Answer with one digit from 1 '
    "(disagree strongly) to 5 (agree strongly)."
)


class RatingMeasure:
    """(R, 5) trait scores from Likert ratings: the expected digit 1..5 of the
    next token after each item's rating question, high-keyed minus reverse-keyed
    means. For large instruct models; every (row, item) is one batched prompt."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        questionnaire: Questionnaire | None = None,
        row_chunk: int = 8,
    ) -> None:
        q = questionnaire or load_questionnaire()
        self.model, self.row_chunk = model, row_chunk
        self.device = next(model.parameters()).device
        system = (Message(role="system", content=q.system),) if q.system else ()
        prompts = [
            encode(
                tokenizer,
                render_chat(
                    tokenizer,
                    system + (Message(role="user", content=RATING_PROMPT.format(text=it.text)),),
                    add_generation_prompt=True,
                ),
            )
            for it in q.items
        ]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids, mask, pos = (t.to(self.device) for t in left_pad(prompts, pad))
        self.ids, self.mask, self.pos = ids, mask, pos  # (C, T)
        ids = digit_token_ids(tokenizer, LIKERT_DIGITS)
        self.digit_ids = torch.tensor(ids, device=self.device)
        self.weights = _keyed_weights(q.items)  # (5, C)

    @torch.no_grad()
    def ratings(
        self, hooks: SteeringHooks | None = None, deltas: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(R, C) expected rating of each item under each steering row."""
        n_items = self.ids.shape[0]
        if hooks is None or deltas is None:
            return self._expected(self.ids, self.mask, self.pos)[None]
        out = []
        for lo in range(0, deltas.shape[1], self.row_chunk):
            chunk = deltas[:, lo : lo + self.row_chunk]  # (L, r, H)
            rows = chunk.shape[1]
            hooks.set_deltas(chunk.repeat_interleave(n_items, dim=1))  # (L, r*C, H)
            mask = self.mask.repeat(rows, 1)  # (r*C, T)
            hooks.set_token_mask(mask)  # padding stays unsteered
            with hooks:
                exp = self._expected(self.ids.repeat(rows, 1), mask, self.pos.repeat(rows, 1))
            out.append(exp.view(rows, n_items))
        return torch.cat(out)

    def _expected(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        logits = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False
        ).logits[:, -1]  # (N, V)
        return expected_digit(logits, self.digit_ids, LIKERT_DIGITS).double().cpu()  # (N,)

    def trait_scores(
        self, hooks: SteeringHooks | None = None, deltas: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.ratings(hooks, deltas) @ self.weights.T  # (R, 5)
