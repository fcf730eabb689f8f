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
from collections import OrderedDict
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
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

# A row's mask is a function of its grammar and the tokens it has taken, and
# most rows of a tick begin alike (a verb; "PLAN: I will"). Some of those
# early states are dear: after "SAY" the next token must be a space and then
# a non-space, which llguidance checks over ~32k tokens, 0.3 ms per row, so
# at B=128 the second and third steps of every tick took 15-35 ms of host
# time (a GPU stall of ~25 ms per tick on the H200: benchmarks/results/
# grammar_gaps_h200x2.json). The masks of outputs up to PREFIX_TOKENS tokens
# long are therefore computed once per distinct prefix and kept (LRU).
PREFIX_TOKENS = 4
CACHED_MASKS = 2048  # rows of V/8 bytes: 32 MiB at a 128k vocabulary


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
        self.library = f"llguidance {_version('llguidance')}"
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
        self.prefix_masks = PrefixMasks(CACHED_MASKS)

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
            grammars=[None if g is None else g.lark() for g in grammars],
            cache=self.prefix_masks,
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


class PrefixMasks:
    """Bitmask rows by (grammar, tokens taken so far), least recently used
    dropped first; see PREFIX_TOKENS."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._rows: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> np.ndarray | None:
        row = self._rows.get(key)
        if row is None:
            self.misses += 1
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return row

    def put(self, key: tuple, row: np.ndarray) -> None:
        if self.limit <= 0:
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.limit:
            self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)


class GrammarConstraint:
    """The per-row matchers of one batched decode."""

    def __init__(
        self,
        matchers: list[Any],
        *,
        executor: Any,
        width: int,
        llg: Any,
        grammars: Sequence[str | None] | None = None,
        cache: PrefixMasks | None = None,
    ) -> None:
        """`grammars`: each row's grammar text, the key of `cache` with the
        tokens the row has taken (no cache without them)."""
        self.matchers = matchers  # (B,) an LLMatcher, or None for a free row
        self.executor, self.width, self._llg = executor, width, llg
        self.failed = [False] * len(matchers)  # a matcher rejected a token: the row went free
        self.cache = cache if grammars is not None else None
        # (grammar, tokens so far) while the row is at most PREFIX_TOKENS long, else None
        self.keys: list[tuple | None] = [
            (g, ()) if g is not None and self.cache is not None else None
            for g in (grammars or [None] * len(matchers))
        ]

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
        host = bitmask.numpy()
        host[others] = _ALL_ALLOWED
        compute: list[int] = []  # rows whose mask llguidance computes
        shared: dict[tuple, list[int]] = {}  # an uncached prefix -> its rows
        for b in rows:
            key = self.keys[b]
            row = self.cache.get(key) if key is not None and self.cache is not None else None
            if row is not None:
                host[b] = row
            elif key is None:
                compute.append(b)
            else:
                shared.setdefault(key, []).append(b)
        compute += [group[0] for group in shared.values()]  # one row per new prefix
        if compute:
            self._llg.torch.fill_next_token_bitmask_par(
                self.executor, [(self.matchers[b], b) for b in compute], bitmask
            )
        for key, group in shared.items():
            row = host[group[0]].copy()
            self.cache.put(key, row)  # type: ignore[union-attr]
            host[group[1:]] = row

    def consume(self, tokens: Sequence[int], active: Sequence[int]) -> set[int]:
        """Advance each active constrained row by its sampled token; return the
        rows whose grammar is now complete (nothing but EOS may follow)."""
        rows = self._constrained(active)
        if not rows:
            return set()
        ok = self.executor.consume_token_par([(self.matchers[b], tokens[b]) for b in rows])
        complete = set()
        for b, good in zip(rows, ok, strict=True):
            key = self.keys[b]
            if key is not None:
                taken = (*key[1], int(tokens[b]))
                self.keys[b] = (key[0], taken) if len(taken) <= PREFIX_TOKENS else None
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


def _version(package: str) -> str:
    """An installed package's version from its metadata: llguidance's module
    has no __version__ in some releases (1.6.1, for one)."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown version"
