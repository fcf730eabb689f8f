"""The Hugging Face backend: every request of a tick in ONE batched decode.

Prompts go through the chat template, are cut from the left to
`inference.max_prompt_tokens`, left-padded with an attention mask and explicit
positions (so a row sees the same positions as when alone), prefilled once,
then decoded token by token on the KV cache. Each row stops at its own EOS or
its own `max_new_tokens`. Sampling (temperature, top-p) uses Gumbel-max with
noise hashed from (request seed, step, token id), so a row's output depends
only on its own request, never on its batch mates or on a global RNG.
Steering: the row's trait coefficients set its delta in `SteeringHooks`.
Constraints (inference.constrained): a row whose request carries a grammar is
masked, step by step, to the tokens that keep it inside that grammar
(agents.constraint); it also stops when its grammar is complete. Each step
has exactly one host sync: the sampled ids, which the matchers and the stop
rules (EOS, budget, grammar complete) read on the host.

This module owns decoding and the backend contract; loading lives in
agents.model_loading, vectors and hooks in agents.steering."""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agents.backends import BackendSpec
from agents.config import InferenceConfig, SteeringConfig
from agents.constraint import GrammarCompiler, GrammarConstraint, apply_bitmask
from agents.decode.backend_path import generate_fast
from agents.decode.decoder import FastDecoder, fast_decoder_for, kv_cache
from agents.decode.sampling import token_bits
from agents.errors import ModelError
from agents.model_loading import LoadedModel, describe_loaded, load_model
from agents.steering.chat import (
    digit_token_ids,
    encode_many,
    expected_digit,
    left_pad,
    render_chat,
)
from agents.steering.data import config_pairs
from agents.steering.extract import vectors_for
from agents.steering.hooks import SteeringHooks, check_layers
from agents.steering.vectors import SteeringVectors, file_hash
from agents.typing import Generation, Message, Request, Traits

log = logging.getLogger(__name__)


def gumbel_noise(seeds: torch.Tensor, step: int, vocab: int) -> torch.Tensor:
    """(B, V) float64 Gumbel noise, a pure function of (seed[b], step, token id)."""
    tok = torch.arange(vocab, device=seeds.device)  # (V,)
    bits = token_bits(seeds, step, tok[None, :])  # (B, V) uniform 32-bit
    u = (bits.double() + 0.5) / 2.0**32  # (B, V) in (0, 1)
    return -torch.log(-torch.log(u))


def sample_next(
    logits: torch.Tensor, seeds: torch.Tensor, step: int, temperature: float, top_p: float
) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids: greedy at temperature 0, else top-p Gumbel-max."""
    if temperature <= 0:
        return logits.argmax(-1)
    scores = logits.float() / temperature  # (B, V)
    if top_p < 1.0:
        probs, order = scores.softmax(-1).sort(-1, descending=True)  # (B, V)
        drop_sorted = probs.cumsum(-1) - probs >= top_p  # mass before it already >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    noise = gumbel_noise(seeds, step, scores.shape[-1]).to(scores.device)
    return (scores.double() + noise).argmax(-1)


class HFBackend:
    """A causal LM behind the Backend protocol, with optional per-row steering."""

    name = "hf"

    def __init__(
        self,
        lm: LoadedModel,
        *,
        inference: InferenceConfig,
        steering: SteeringConfig,
        vectors: SteeringVectors | None = None,
        vectors_file: str | None = None,
    ) -> None:
        self.lm, self.model, self.tokenizer = lm, lm.model, lm.tokenizer
        self.temperature, self.top_p = inference.temperature, inference.top_p
        self.max_prompt_tokens = inference.max_prompt_tokens
        self.steering_cfg = steering
        self.vectors, self.vectors_file = vectors, vectors_file
        self.hooks: SteeringHooks | None = None
        if steering.enabled:
            if vectors is None:
                raise ValueError("steering is enabled but no vectors were given")
            self.hooks = SteeringHooks(self.model, vectors, steering.strength)
        self.device = next(self.model.parameters()).device
        eos = {self.tokenizer.eos_token_id, *_as_list(self.model.generation_config.eos_token_id)}
        self.eos_ids = frozenset(int(e) for e in eos if e is not None)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.grammars: GrammarCompiler | None = None
        if inference.constrained:
            self.grammars = GrammarCompiler(
                self.tokenizer,
                vocab_size=int(self.model.config.vocab_size),
                eos_ids=sorted(self.eos_ids),
            )
            # the mask kernel compiles itself on first use (seconds on CUDA): not in tick 0
            self.grammars.warm_up(self.device, next(self.model.parameters()).dtype)
        params = inspect.signature(self.model.forward).parameters
        self._keep_last = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        # transformers 5.24 renamed `past_key_values` to `cache` (the old name goes in 5.40)
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._digit_ids: dict[str, torch.Tensor] = {}
        # CUDA, a Llama-family model held whole or tensor-parallel (NCCL): static cache +
        # graph-replayed step (agents.decode); None keeps the loop below (CPU, 4-bit,
        # offload; logged once)
        self.fast: FastDecoder | None = fast_decoder_for(
            self.model,
            quantized=lm.quantized,
            pad_id=self.pad_id,
            eos_ids=sorted(self.eos_ids),
            temperature=self.temperature,
            top_p=self.top_p,
            hooks=self.hooks,
        )

    # -- prompts -------------------------------------------------------------

    def _prompt_ids(self, prompts: Sequence[Sequence[Message]]) -> list[list[int]]:
        """Each prompt's token ids (the chat template, then one batched encode),
        cut to the last max_prompt_tokens."""
        texts = [render_chat(self.tokenizer, m, add_generation_prompt=True) for m in prompts]
        return [ids[-self.max_prompt_tokens :] for ids in encode_many(self.tokenizer, texts)]

    def _left_pad(self, seqs: Sequence[list[int]]) -> tuple[torch.Tensor, ...]:
        """(ids, mask, positions), each (B, T), left-padded, on the model's device."""
        return tuple(t.to(self.device) for t in left_pad(seqs, self.pad_id))

    # -- generation ----------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """All requests in one batched decode, results in request order. (CUDA
        out-of-memory back-off is a wrapper: agents.oom_backoff.)"""
        requests = list(requests)
        if not requests:
            return []
        if self.fast is not None:
            return generate_fast(self, requests)
        return self._generate_batch(requests)

    def _steer(
        self, traits: Sequence[Traits], mask: torch.Tensor
    ) -> contextlib.AbstractContextManager:
        if self.hooks is None:
            return contextlib.nullcontext()
        self.hooks.set_coefficients(torch.tensor([t.as_tuple() for t in traits]))  # (B, 5)
        self.hooks.set_token_mask(mask)  # prefill: padding stays unsteered
        return self.hooks

    def _constraint(self, requests: Sequence[Request]) -> GrammarConstraint | None:
        """The batch's grammar masks, or None when nothing is constrained."""
        if self.grammars is None or all(r.grammar is None for r in requests):
            return None
        return self.grammars.constraint([r.grammar for r in requests])

    @torch.no_grad()
    def _generate_batch(self, requests: list[Request]) -> list[Generation]:
        t0 = time.perf_counter()
        prompts = self._prompt_ids([r.prompt for r in requests])
        ids, mask, pos = self._left_pad(prompts)  # (B, T)
        n, width = ids.shape
        budgets = [r.max_new_tokens for r in requests]
        # every step's attention mask is a prefix of this one: built once, not grown per step
        grown = torch.cat([mask, mask.new_ones(n, max(budgets))], dim=1)  # (B, T + max_new)
        seeds = torch.tensor([r.seed & (2**63 - 1) for r in requests], device=self.device)  # (B,)
        constraint = self._constraint(requests)
        bitmask = self.grammars.allocate(n) if constraint is not None else None  # (B, V/32) host
        tokens: list[list[int]] = [[] for _ in range(n)]
        finished_at = [0.0] * n
        active = list(range(n))  # rows still generating; finished rows run on, ignored
        with self._steer([r.traits for r in requests], mask):
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                **self._keep_last,
            )
            if self.hooks is not None:
                self.hooks.set_token_mask(None)  # generated tokens: every row steered
            for step in range(max(budgets)):
                logits = out.logits[:, -1]  # (B, V)
                if constraint is not None:
                    constraint.fill(bitmask, active)  # host, Rust threads
                    apply_bitmask(logits, bitmask.to(self.device, non_blocking=True))
                nxt = sample_next(logits, seeds, step, self.temperature, self.top_p)  # (B,)
                host = nxt.tolist()  # the one host sync per step
                complete = constraint.consume(host, active) if constraint is not None else set()
                now = time.perf_counter() - t0
                still = []
                for b in active:
                    tokens[b].append(host[b])
                    if host[b] in self.eos_ids or len(tokens[b]) >= budgets[b] or b in complete:
                        finished_at[b] = now
                    else:
                        still.append(b)
                active = still
                if not active:
                    break
                pos = pos[:, -1:] + 1  # (B, 1)
                out = self.model(
                    input_ids=nxt[:, None],
                    attention_mask=grown[:, : width + step + 1],  # (B, T+step+1)
                    position_ids=pos,
                    **{self._cache_arg: kv_cache(out)},
                    use_cache=True,
                )
        return self._generations(requests, prompts, tokens, finished_at)

    def _generations(
        self,
        requests: Sequence[Request],
        prompts: Sequence[list[int]],
        tokens: Sequence[list[int]],
        finished_at: Sequence[float],
    ) -> list[Generation]:
        """One decoded batch as Generations, in request order (either loop)."""
        layers = tuple(self.hooks.layers) if self.hooks is not None else ()
        return [
            Generation(
                text=self.tokenizer.decode(toks, skip_special_tokens=True).strip(),
                prompt_tokens=len(prompt),
                completion_tokens=len(toks),
                latency_s=latency,
                steer=req.traits if self.hooks is not None else Traits(),
                steer_layers=layers,
            )
            for req, prompt, toks, latency in zip(
                requests, prompts, tokens, finished_at, strict=True
            )
        ]

    # -- scoring -------------------------------------------------------------

    def _digits(self, digits: str) -> torch.Tensor:
        if digits not in self._digit_ids:
            ids = digit_token_ids(self.tokenizer, digits)
            self._digit_ids[digits] = torch.tensor(ids, device=self.device)
        return self._digit_ids[digits]

    @torch.no_grad()
    def digit_expectation(
        self, prompts: Sequence[tuple[Message, ...]], digits: str = "123456789"
    ) -> list[float]:
        """Expected digit value of the next token, the distribution restricted to
        `digits`, for each chat prompt: one unsteered batched forward pass."""
        if not prompts:
            return []
        ids, mask, pos = self._left_pad(self._prompt_ids(prompts))  # (B, T)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, **self._keep_last
        )
        return expected_digit(out.logits[:, -1], self._digits(digits), digits).tolist()

    # -- description ---------------------------------------------------------

    def describe(self) -> dict:
        """The manifest's record of the model and steering, enough to reload both."""
        s = self.steering_cfg
        steering: dict[str, Any] = {
            "enabled": s.enabled,
            "layers": list(self.hooks.layers) if self.hooks is not None else [],
            "strength": s.strength,
            "method": (self.vectors.meta.get("method", s.method) if self.vectors else s.method),
            "orthogonalize": s.orthogonalize,
            "trait_layers": (
                {t: list(x) for t, x in self.vectors.trait_layers().items()} if self.vectors else {}
            ),
            "vectors_file": self.vectors_file,
            "vectors_hash": file_hash(self.vectors_file) if self.vectors_file else None,
            # the shipped cross-talk calibration was applied (steering.calibrated and a match)
            "calibrated": bool(self.vectors is not None and "mixing" in self.vectors.meta),
            "trait_gains": dict(s.trait_gains),
        }
        return {
            "backend": self.name,
            **describe_loaded(self.lm),
            "temperature": self.temperature,
            "top_p": self.top_p,
            # which decode loop ran: their samplers differ (agents.decode.sampling)
            "decode_path": "fast" if self.fast is not None else "reference",
            "constrained": self.grammars is not None,
            "grammar_library": self.grammars.library if self.grammars is not None else None,
            "steering": steering,
        }

    def close(self) -> None:
        if self.fast is not None:
            self.fast.release()
        self.fast = None
        self.hooks = None
        self.model = self.lm = None  # drop the references; memory goes with the last one
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def build_hf_backend(spec: BackendSpec, lm: LoadedModel | None = None) -> HFBackend:
    """Load the model (unless given, e.g. a tensor-parallel slice) and the
    steering vectors a backend spec asks for."""
    s = spec.steering
    if s.enabled and s.vectors is None:
        config_pairs(s.pairs, s.method)  # a bad steering.pairs is refused before the model loads
    # a bad vectors file is refused before the model loads, too
    loaded = SteeringVectors.load(s.vectors) if s.enabled and s.vectors is not None else None
    lm = lm or load_model(spec.model, spec.optimization, spec.storage_root)
    vectors, vectors_file = None, None
    if s.enabled:
        check_layers(lm.model, s.layers)
        for trait, layers in s.trait_layers.items():
            check_layers(lm.model, layers, key=f"steering.trait_layers.{trait}")
        if loaded is not None:
            vectors = loaded.for_traits(s.layers_of()) if s.trait_layers else loaded
            vectors = vectors.select(s.all_layers())
            _check_traits_kept(loaded, vectors, s.vectors)
            vectors_file = str(Path(s.vectors))
            orthogonalize = s.orthogonalize and vectors.meta.get("orthogonalized") != "true"
            if orthogonalize:
                vectors = vectors.with_gains({}).orthogonalized()
            # trait_gains are the gains applied, also to a file a run already scaled
            # (its recorded vectors): rescaled by the ratio, not on top of them
            regained = vectors.with_gains(s.trait_gains)
            if orthogonalize or s.trait_layers or regained is not vectors:
                # the recorded file must hold exactly what is applied
                suffix = "orth" if orthogonalize else "traits"
                suffix += "".join(f"-{t}{g:g}" for t, g in sorted(s.trait_gains.items()))
                name = f"{Path(s.vectors).stem}-{suffix}.safetensors"
                vectors_file = str(regained.save(Path(spec.storage_root) / "vectors" / name))
            vectors = regained
        else:
            vectors, path = spec_vectors(spec, lm)
            vectors_file = str(path)
    return HFBackend(
        lm, inference=spec.inference, steering=s, vectors=vectors, vectors_file=vectors_file
    )


def _check_traits_kept(loaded: SteeringVectors, applied: SteeringVectors, file: str) -> None:
    """Refuse a layer choice that leaves a trait the file steers with no direction
    (a file built with O at [26] used with every trait at [21]): that trait
    would silently not be steered. A trait the file itself leaves out stays out."""
    kept = applied.trait_layers()
    for trait, layers in loaded.trait_layers().items():
        if layers and not kept[trait]:
            raise ModelError(
                f"steering.vectors {file!r} steers {trait} only at layers {list(layers)}, "
                f"which steering.layers / steering.trait_layers.{trait} do not include"
            )


def spec_vectors(
    spec: BackendSpec, lm: LoadedModel, *, model: Any = None, storage_root: str | None = None
) -> tuple[SteeringVectors, Path]:
    """The steering vectors `spec` builds (it names no file): from the cache, or
    built on a miss. `model` stands in for lm.model and `storage_root` for the
    spec's (a tensor-parallel rank asks whether a forward pass is needed, or
    builds into a private folder)."""
    s = spec.steering
    pairs = config_pairs(s.pairs, s.method)
    return vectors_for(
        lm.model if model is None else model,
        lm.tokenizer,
        storage_root=spec.storage_root if storage_root is None else storage_root,
        model_name=lm.name_or_path,
        model_identity=lm.identity,
        layers=s.layers,
        method=s.method,
        orthogonalize=s.orthogonalize,
        trait_layers=s.trait_layers or None,
        calibrated=s.calibrated,
        gains=s.trait_gains or None,
        pairs=pairs,
    )
