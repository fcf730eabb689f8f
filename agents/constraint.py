"""Grammar-constrained decoding with llguidance: for every row of a batched
decode, a token mask that keeps the row's output inside its grammar.

`GrammarCompiler` is built once per backend (it wraps the tokenizer, which
costs about a second, and caches each grammar's compiled matcher). For each
batched decode it hands out a `GrammarConstraint`, which the decode loop
drives with two calls per step:

    constraint.fill(bitmask, active)        # host (B, ceil(V/32)) int32: the allowed tokens
    apply_bitmask(logits, bitmask_on_dev)   # disallowed logits -> -inf, in place
    ... sample, one host sync for the sampled ids ...
    constraint.consume(tokens, active)      # advance each active row's matcher

The mask step stays separate from sampling so that another decode loop (a
CUDA-graph one, say) can reuse it unchanged. Rows without a grammar, and rows
that are done, get an all-ones mask. This module knows nothing about models,
steering or budgets; the grammars themselves live in agents.grammar.

Why llguidance (not xgrammar): see docs/models.md. In short: a 3 MB abi3
wheel with no dependencies (xgrammar pulls in triton and tvm-ffi), Lark
grammars, masks for the whole batch filled in Rust threads, and on SmolLM2
a per-step cost that fits the decode budget on 2 CPU cores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from agents.decode.sampling import unpack_bitmask
from agents.errors import ModelError
from agents.typing import OutputGrammar

log = logging.getLogger(__name__)

_ALL_ALLOWED = -1  # an int32 of 32 one-bits

# llguidance's executor defaults to 80% of the CPUs. Per step, each row's mask
# takes ~15 us and its token ~4 us, so more threads cost more in handing out
# work than they save: at B=128 on the H200 machine's 16-core host, fill +
# consume took 2.5 ms per step with 2 threads, 7.0 ms with the default 12
# (2.1 and 1.4 ms with 1 and 2 threads on the 2-core CPU); see
# benchmarks/results/grammar_threads_h200.json.
MATCHER_THREADS = 2


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch
    except ImportError:
        raise ModelError(
            "inference.constrained needs the llguidance package: "
            "pip install 'llguidance>=1.2' (or set inference.constrained: false)"
        ) from None
    return llguidance


def bitmask_width(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def apply_bitmask_eager(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """(B, V) logits, (B, ceil(V/32)) int32 bitmask on the same device:
    logits of disallowed tokens become -inf, in place (plain torch ops; the
    unpacking is the fast path's, agents.decode.sampling)."""
    logits.masked_fill_(~unpack_bitmask(bitmask, logits.shape[1]), float("-inf"))


def apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """The mask step: llguidance's compiled kernel on CUDA (warm it up first:
    it compiles itself on first use), plain torch ops on CPU, where inductor's
    C++ compile would cost seconds per process for no gain at this size."""
    if logits.is_cuda:
        _llguidance().torch.apply_token_bitmask_inplace(logits, bitmask)
    else:
        apply_bitmask_eager(logits, bitmask)


class GrammarCompiler:
    """Compiles grammars for one tokenizer and vocabulary; hands out constraints."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        vocab_size: int,
        eos_ids: Sequence[int],
        threads: int | None = MATCHER_THREADS,
    ) -> None:
        """`threads`: the matchers' executor (None = llguidance's default)."""
        llg = _llguidance()
        self._llg = llg
        self.library = f"llguidance {llg.__version__}"
        try:
            self.tokenizer = llg.hf.from_tokenizer(
                tokenizer, n_vocab=vocab_size, eos_token=sorted(int(e) for e in eos_ids)
            )
        except ValueError as exc:  # a slow (Python) tokenizer
            raise ModelError(
                f"inference.constrained: the model's tokenizer is not supported ({exc}); "
                "set inference.constrained: false"
            ) from None
        self.vocab_size = vocab_size
        self.width = bitmask_width(vocab_size)
        self.executor = llg.LLExecutor(num_threads=threads)
        self._templates: dict[str, Any] = {}

    def matcher(self, grammar: OutputGrammar) -> Any:
        """A fresh matcher at the start of `grammar` (compiled once, then copied)."""
        lark = grammar.lark()
        template = self._templates.get(lark)
        if template is None:
            template = self._llg.LLMatcher(self.tokenizer, lark, log_level=0)
            if template.is_error():
                raise ValueError(f"invalid grammar: {template.get_error()}")
            self._templates[lark] = template
        return template.deep_copy()

    def constraint(self, grammars: Sequence[OutputGrammar | None]) -> GrammarConstraint:
        """The masks of one batched decode, one grammar (or None: free) per row."""
        return GrammarConstraint(
            [None if g is None else self.matcher(g) for g in grammars],
            executor=self.executor,
            width=self.width,
            llg=self._llg,
        )

    def allocate(self, batch: int) -> torch.Tensor:
        """A host bitmask for `batch` rows, pinned where a GPU would copy it."""
        return self._llg.torch.allocate_token_bitmask(batch, self.vocab_size)

    def warm_up(self, device: torch.device, dtype: torch.dtype) -> None:
        """Run the mask kernel once, so that its compilation (seconds on CUDA)
        happens at start-up, not inside the first tick."""
        logits = torch.zeros(2, self.vocab_size, device=device, dtype=dtype)
        mask = torch.full((2, self.width), _ALL_ALLOWED, dtype=torch.int32)
        mask[1] = 0
        mask[1, 0] = 1  # row 1: only token 0
        apply_bitmask(logits, mask.to(device))
        assert torch.isinf(logits[1, 1:]).all() and not torch.isinf(logits[0]).any()


class GrammarConstraint:
    """The per-row matchers of one batched decode."""

    def __init__(self, matchers: list[Any], *, executor: Any, width: int, llg: Any) -> None:
        self.matchers = matchers  # (B,) an LLMatcher, or None for a free row
        self.executor, self.width, self._llg = executor, width, llg
        self.failed = [False] * len(matchers)  # a matcher rejected a token: the row went free

    def _constrained(self, active: Sequence[int]) -> list[int]:
        return [b for b in active if self.matchers[b] is not None and not self.failed[b]]

    def fill(self, bitmask: torch.Tensor, active: Sequence[int]) -> None:
        """Write the allowed tokens of every active constrained row into the
        host bitmask (B, W); every other row allows everything."""
        rows = self._constrained(active)
        others = sorted(set(range(bitmask.shape[0])).difference(rows))
        # numpy, not bitmask.fill_: torch spreads a fill of this size over its
        # intra-op threads, which took 6.5 ms per step at B=128 on the H200
        # machine's 16-core host (0.25 ms on one thread)
        bitmask.numpy()[others] = _ALL_ALLOWED
        if rows:
            self._llg.torch.fill_next_token_bitmask_par(
                self.executor, [(self.matchers[b], b) for b in rows], bitmask
            )

    def consume(self, tokens: Sequence[int], active: Sequence[int]) -> set[int]:
        """Advance each active constrained row by its sampled token; return the
        rows whose grammar is now complete (nothing but EOS may follow)."""
        rows = self._constrained(active)
        if not rows:
            return set()
        ok = self.executor.consume_token_par([(self.matchers[b], tokens[b]) for b in rows])
        complete = set()
        for b, good in zip(rows, ok, strict=True):
            m = self.matchers[b]
            if not good:  # cannot happen with a correct mask; never lose the row over it
                log.warning("grammar constraint: row %d left its grammar (%s)", b, m.get_error())
                self.failed[b] = True
            elif m.is_stopped():
                complete.add(b)
        return complete

    def accepting(self, b: int) -> bool:
        """Whether row b's output so far is a complete sentence of its grammar."""
        m = self.matchers[b]
        return m is not None and not self.failed[b] and m.is_accepting()
