"""The fast decode loop: prefill a batch (with the Triton kernels, by the
step's own prefill straight into the static pool; else through transformers
as the reference loop does, left padding, steering hooks masking the padding,
its K/V then moved into the pool), then run the one-token step (model,
steering, sampler) once per token, replaying a CUDA graph captured once per
batch-size bucket. Finished rows are masked, not removed; the host reads a
small status record once per step, pipelined one step behind the GPU (with
grammar masks, the next step's forward runs while the host computes the
masks). A row's tokens depend only on its prompt, traits, seed and budget,
as in the reference loop.

`FastDecoder.decode` is what agents.hf_backend calls; `fast_decoder_for`
decides whether the fast path applies (CUDA, a Llama-family model, neither
4-bit nor offloaded; whole or tensor-parallel on an NCCL group) and says in
one log line when it does not. Under tensor parallelism every rank runs this
loop in lockstep on the same batch: the step's collectives keep the logits
identical, so every rank samples the same tokens and stops at the same step."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch
from torch import nn

from agents.decode.cache import Bucket, KVPool, bucket_size, round_length
from agents.decode.llama_step import LlamaStep, unsupported_reason
from agents.decode.sampling import shortlist_sample, unpack_bitmask
from agents.decode.tensor_parallel import (
    TensorParallel,
    is_tensor_parallel,
    local,
    process_group_of,
    whole,
)

log = logging.getLogger(__name__)


class StepMasks(Protocol):
    """Per-row allowed tokens, advanced one sampled token at a time: the shape
    of agents.constraint.GrammarConstraint (one grammar matcher per row).
    Bitmasks use llguidance's layout: int32 words, bit j of word w allows token
    32*w + j; `active` lists the rows still generating."""

    def fill(self, bitmask: torch.Tensor, active: Sequence[int]) -> None:
        """bitmask (n, W) int32 on the host <- the tokens each row may take next."""

    def consume(self, tokens: Sequence[int], active: Sequence[int]) -> set[int]:
        """Advance the active rows by their sampled tokens; the rows whose
        grammar is now complete (they stop, that token being their last)."""


@dataclass(frozen=True, kw_only=True)
class DecodeOutput:
    tokens: list[list[int]]  # per row, the generated ids (EOS included, as the reference)
    finished_at: list[float]  # seconds from `t0` until the row's last token was seen
    bucket: int
    steps: int  # forward steps run (the first token comes from the prefill)
    prefill_s: float  # from t0 until the first token was seen: prompts, prefill, sampling
    decode_s: float  # from then until the last token was seen
    mask_s: float = 0.0  # host time in the grammar matchers (consume + fill), all steps
    prompts_s: float = 0.0  # of prefill_s, before decode(): chat template, tokens, padding


def offload_or_quantized(model: nn.Module, quantized: bool) -> str | None:
    """Why graphs cannot apply to how the model is loaded, or None."""
    if quantized or getattr(model, "is_loaded_in_4bit", False):
        return "4-bit weights (bitsandbytes)"
    device_map = getattr(model, "hf_device_map", None)
    if device_map and len({str(d) for d in device_map.values()}) > 1:
        return "layers offloaded or spread by accelerate"
    params = list(model.parameters())
    if any(p.device.type == "meta" for p in params):
        return "offloaded weights"
    return None


def tensor_parallel_for(model: nn.Module) -> TensorParallel | str | None:
    """The group of a tensor-parallel model whose step can be captured (NCCL),
    why not, or None for a model held whole."""
    if not is_tensor_parallel(model):
        return None
    tp = process_group_of(model)
    if isinstance(tp, TensorParallel) and "nccl" not in tp.backend:  # "nccl", "cuda:nccl"
        return f"tensor-parallel group on {tp.backend} (graphs capture NCCL collectives only)"
    return tp


def fast_decoder_for(
    model: nn.Module,
    *,
    quantized: bool,
    pad_id: int,
    eos_ids: Sequence[int],
    temperature: float,
    top_p: float,
    hooks: Any,
) -> FastDecoder | None:
    """The fast decoder when it applies (CUDA), else None after one log line."""
    device = next(model.parameters()).device
    if device.type != "cuda":
        return None  # the reference loop is the CPU path; nothing to report
    # cuDNN's attention plans itself per shape: seconds of stall at each new prefill
    # shape, in either loop; the other sdpa backends cost nothing measurable here
    torch.backends.cuda.enable_cudnn_sdp(False)
    reason = offload_or_quantized(model, quantized) or unsupported_reason(model)
    tp = tensor_parallel_for(model) if reason is None else None
    if isinstance(tp, str):
        reason, tp = tp, None
    if reason is None:
        try:
            import triton  # noqa: F401
        except ImportError:
            reason = "triton is not installed"
    if reason is not None:
        log.info("fast decode off (%s): using the reference decode loop", reason)
        return None
    return FastDecoder(
        model,
        pad_id=pad_id,
        eos_ids=eos_ids,
        temperature=temperature,
        top_p=top_p,
        hooks=hooks,
        graphs=True,
        fused=True,
        tp=tp,
    )


class FastDecoder:
    """Static cache, per-bucket state and graphs; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        *,
        pad_id: int,
        eos_ids: Sequence[int],
        temperature: float,
        top_p: float,
        hooks: Any = None,
        graphs: bool,
        fused: bool,
        tp: TensorParallel | None = None,
    ) -> None:
        """`tp`: the model's tensor-parallel group (tensor_parallel_for); the
        step then runs on this rank's slices (ValueError if their layout is
        not Megatron-style)."""
        self.model = model
        self.tp = tp
        self.step = LlamaStep(model, fused=fused, tp=tp)
        self.shape = self.step.shape
        if tp is not None:
            log.info(
                "fast decode: tensor-parallel step, rank %d of %d (%d query / %d kv heads here)",
                tp.rank,
                tp.world,
                self.shape.q_heads,
                self.shape.kv_heads,
            )
        self.pad_id = int(pad_id)
        self.eos = torch.tensor(sorted(set(eos_ids)), device=self.shape.device)  # (E,)
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.hooks = hooks
        self.graphs = graphs and self.shape.device.type == "cuda"
        self.pool: KVPool | None = None
        self.buckets: dict[int, Bucket] = {}
        self.captures: list[tuple[int, float]] = []  # (bucket, seconds), for the benchmark
        self.last: DecodeOutput | None = None  # the latest batch's record, for the benchmark
        self._graph_pool = torch.cuda.graph_pool_handle() if self.graphs else None
        # the grammar masks' uploads, beside the forward (_masked_loop); one for the decoder's life
        self._copy_stream: torch.cuda.Stream | None = None
        self._sms = 1
        if self.shape.device.type == "cuda":
            torch.backends.cuda.enable_cudnn_sdp(False)  # see fast_decoder_for
            self._sms = torch.cuda.get_device_properties(self.shape.device).multi_processor_count
            self._copy_stream = torch.cuda.Stream(device=self.shape.device)

    def release(self) -> None:
        """Drop the pool, the buckets and their graphs (memory goes with them)."""
        self.buckets.clear()
        self.pool = None
        if self.graphs:  # the old pool dies with its last graph: new captures need a new one
            self._graph_pool = torch.cuda.graph_pool_handle()
        if self.shape.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- buffers and graphs --------------------------------------------------

    def _deltas(self) -> dict[int, torch.Tensor]:
        return self.hooks.delta_buffers() if self.hooks is not None else {}

    def _prepare(self, n: int, width: int, max_new: int, masked: bool) -> Bucket:
        size = bucket_size(n)
        need = width + max_new
        pool = self.pool
        if pool is None or pool.rows < size or pool.length < need:
            rows = max(size, pool.rows if pool else 0)
            length = max(round_length(need), pool.length if pool else 0)
            self.release()
            if self.hooks is not None:
                self.hooks.ensure_batch(rows)  # before any graph reads the delta buffers
            pool = self.pool = KVPool.allocate(self.shape, rows, length, self.step.rope_tables)
            log.info(
                "fast decode: K/V pool of %d rows x %d positions (%.2f GiB)",
                rows,
                length,
                pool.bytes() / 2**30,
            )
        deltas = self._deltas()
        pointers = tuple(d.data_ptr() for d in deltas.values())
        b = self.buckets.get(size)
        if b is None or b.new_tokens < max_new or b.captured_with != pointers:
            work = None
            if self.step.fused:
                from agents.decode.kernels import attention_splits

                splits = attention_splits(size, self.shape.kv_heads, self._sms)
                work = self.step.attention_work(size, splits)
            new_tokens = max(round_length(max_new), b.new_tokens if b else 0)
            b = Bucket.allocate(self.shape, size, new_tokens, pool, deltas, work)
            b.captured_with = pointers
            self.buckets[size] = b
        if self.graphs:
            for kind in ("forward", "sample_masked") if masked else ("step",):
                if kind not in b.graphs:
                    self._capture(b, kind)
        return b

    def _capture(self, b: Bucket, kind: str) -> None:
        """Warm up (Triton compiles, cuBLAS picks kernels) on a side stream, then
        capture. Both run the body on placeholder state, which _start overwrites."""
        t0 = time.perf_counter()
        stream = torch.cuda.Stream(device=self.shape.device)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._reset_placeholders(b)
                self._body(b, kind)
        torch.cuda.current_stream().wait_stream(stream)
        self._reset_placeholders(b)
        graph = torch.cuda.CUDAGraph()
        options: dict[str, Any] = {}
        if self.tp is not None:
            # NCCL's watchdog thread polls its events while this thread captures:
            # only this thread's calls must be capture-safe
            torch.cuda.synchronize()
            options["capture_error_mode"] = "thread_local"
        with torch.cuda.graph(graph, pool=self._graph_pool, **options):
            self._body(b, kind)
        torch.cuda.synchronize()
        b.graphs[kind] = graph
        seconds = time.perf_counter() - t0
        b.capture_s += seconds
        self.captures.append((b.size, seconds))
        log.info("fast decode: captured the %s graph of bucket %d in %.2f s", kind, b.size, seconds)

    def _reset_placeholders(self, b: Bucket) -> None:
        for t in (b.buf.tokens, b.buf.pos, b.buf.slot, b.step, b.produced, b.finish_step):
            t.zero_()
        b.buf.start.zero_()
        b.budgets.fill_(1)
        b.done.zero_()
        b.forced.zero_()

    def _body(self, b: Bucket, kind: str) -> None:
        if kind in ("step", "forward"):
            self._forward(b)
        if kind in ("step", "sample_masked"):
            self._sample(b, masked=kind == "sample_masked")

    def _run(self, b: Bucket, kind: str) -> None:
        if self.graphs:
            b.graphs[kind].replay()
        else:
            self._body(b, kind)

    # -- the step's two halves -------------------------------------------------

    def _forward(self, b: Bucket) -> None:
        assert self.pool is not None
        self.step.forward(b.buf, self.pool.cos, self.pool.sin, b.logits)
        b.buf.pos.add_(1)
        b.buf.slot.add_(1)

    def _sample(self, b: Bucket, *, masked: bool) -> None:
        """Sample token `step` of every row from b.logits and record it."""
        allowed = None
        if masked:
            if self.step.fused:  # one kernel, in place (b.logits is rewritten every forward)
                sampler_kernels().mask_logits_(b.logits, b.bitmask)
            else:
                allowed = unpack_bitmask(b.bitmask, self.shape.vocab)
            b.done.logical_or_(b.forced)  # rows whose grammar completed (decided on the host)
        nxt = shortlist_sample(
            b.logits,
            b.seeds,
            b.step,
            temperature=self.temperature,
            top_p=self.top_p,
            allowed=allowed,
            fused=self.step.fused,
        )
        if self.step.fused:
            sampler_kernels().record_tokens(
                nxt,
                b.done,
                b.produced,
                b.budgets,
                self.eos,
                b.step,
                b.finish_step,
                b.out,
                b.buf.tokens,
                b.status,
                self.pad_id,
            )
            return
        was_done = b.done.clone()
        nxt = torch.where(was_done, self.pad_id, nxt)  # (B,)
        b.out.index_copy_(1, b.step.view(1), nxt[:, None])
        b.produced.add_((~was_done).long())
        is_eos = (nxt[:, None] == self.eos[None, :]).any(-1)
        newly = ~was_done & (is_eos | (b.produced >= b.budgets))
        b.finish_step.copy_(torch.where(newly, b.step, b.finish_step))
        b.done.logical_or_(newly)
        b.buf.tokens.copy_(nxt)
        b.status.copy_(torch.cat([nxt, b.done.long(), b.done.sum().view(1)]))
        b.step.add_(1)

    # -- one batch ---------------------------------------------------------------

    @torch.no_grad()
    def decode(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        pos: torch.Tensor,
        *,
        lengths: Sequence[int],
        budgets: Sequence[int],
        seeds: Sequence[int],
        steer: contextlib.AbstractContextManager | None = None,
        masks: StepMasks | None = None,
        t0: float | None = None,
    ) -> DecodeOutput:
        """ids/mask/pos (n, T) left-padded on the model's device; lengths, budgets
        and seeds per row. `steer` is entered for the prefill only (it sets the
        steering coefficients and the prefill's token mask)."""
        entered = time.perf_counter()
        t0 = entered if t0 is None else t0
        on_device = (
            torch.cuda.device(self.shape.device)  # graphs capture on the current device
            if self.shape.device.type == "cuda"
            else contextlib.nullcontext()
        )
        try:
            with on_device:
                last = self._decode(ids, mask, pos, lengths, budgets, seeds, steer, masks, t0)
                self.last = replace(last, prompts_s=entered - t0)
            return self.last
        except torch.cuda.OutOfMemoryError:
            self.release()  # leave the memory to the caller's back-off
            raise

    def _decode(self, ids, mask, pos, lengths, budgets, seeds, steer, masks, t0) -> DecodeOutput:
        n, width = ids.shape
        max_new = max(budgets)
        b = self._prepare(n, width, max_new, masks is not None)
        self._prefill(b, ids, mask, pos, lengths, steer)
        self._start(b, n, width, lengths, budgets, seeds)
        size = b.size
        cuda = self.shape.device.type == "cuda"
        status = torch.empty(
            (max_new, 2 * size + 1), dtype=torch.long, pin_memory=cuda
        )  # per step: tokens, done flags, count done
        step_time = [0.0] * max_new
        events: list[Any] = [None] * max_new

        def record(s: int) -> None:
            status[s].copy_(b.status, non_blocking=True)
            if cuda:
                # a spinning wait: a blocking one (blocking=True) gained nothing in data
                # mode and cost 0.4% of the 1B step at 256 rows (session 5's runs)
                events[s] = torch.cuda.Event()
                events[s].record()

        def seen(s: int) -> bool:
            """Wait for step s; True when every row is finished after it."""
            if cuda:
                events[s].synchronize()  # the one host sync per step
            step_time[s] = time.perf_counter() - t0
            return int(status[s, 2 * size]) == size

        if masks is None:
            self._sample(b, masked=False)  # token 0, from the prefill's logits
            record(0)
            s = 0
            while True:
                more = s + 1 < max_new
                if more:  # launch step s+1 before waiting for step s: the GPU never waits
                    self._run(b, "step")
                if seen(s) or not more:
                    break
                record(s + 1)
                s += 1
            host_finish: dict[int, int] = {}
            mask_s = 0.0
        else:
            s, host_finish, mask_s = self._masked_loop(b, n, max_new, masks, record, seen, status)
        steps = s + 1
        out = b.out[:n].cpu()
        produced = b.produced[:n].tolist()
        finish = [host_finish.get(i, f) for i, f in enumerate(b.finish_step[:n].tolist())]
        return DecodeOutput(
            tokens=[out[i, : produced[i]].tolist() for i in range(n)],
            finished_at=[step_time[min(f, steps - 1)] for f in finish],
            bucket=size,
            steps=steps,
            prefill_s=step_time[0],
            decode_s=step_time[steps - 1] - step_time[0],
            mask_s=mask_s,
        )

    def _masked_loop(self, b, n, max_new, masks, record, seen, status) -> tuple[int, dict, float]:
        """The loop under grammar masks: each step's forward is launched before
        the host reads the previous token, feeds it to the matchers and uploads
        the next masks, so the mask work overlaps the model. Rows whose grammar
        completes are finished from the host (`forced`)."""
        cuda = self.shape.device.type == "cuda"
        size = b.size
        mask_host = torch.empty((n, b.bitmask.shape[1]), dtype=torch.int32, pin_memory=cuda)
        forced_host = torch.zeros(n, dtype=torch.bool, pin_memory=cuda)
        active = list(range(n))
        finish: dict[int, int] = {}  # rows completed by their grammar -> step of their last token
        copies = self._copy_stream

        def upload() -> None:
            """The masks to the device on a side stream, so the copy overlaps the
            running forward; the sampler waits for it. (The last sampler to read
            b.bitmask finished before the host filled these masks: seen().)"""
            if copies is None:
                b.bitmask[:n].copy_(mask_host)
                b.forced[:n].copy_(forced_host)
                return
            with torch.cuda.stream(copies):
                b.bitmask[:n].copy_(mask_host, non_blocking=True)
                b.forced[:n].copy_(forced_host, non_blocking=True)
            torch.cuda.current_stream().wait_stream(copies)

        t = time.perf_counter()
        masks.fill(mask_host, active)
        mask_s = time.perf_counter() - t
        b.bitmask[:n].copy_(mask_host)
        self._run(b, "sample_masked")  # token 0, from the prefill's logits
        record(0)
        s = 0
        while True:
            more = s + 1 < max_new
            if more:
                self._run(b, "forward")
            seen(s)
            t = time.perf_counter()
            tokens = status[s, :n].tolist()
            done = status[s, size : size + n].tolist()
            for i in masks.consume(tokens, active):
                finish[i] = s
                forced_host[i] = True
            active = [i for i in active if not done[i] and i not in finish]
            if not active or not more:
                return s, finish, mask_s + time.perf_counter() - t
            masks.fill(mask_host, active)
            mask_s += time.perf_counter() - t
            upload()
            self._run(b, "sample_masked")
            record(s + 1)
            s += 1

    def _prefill(self, b, ids, mask, pos, lengths, steer) -> None:
        """The prompts' K/V into the pool's first rows and their last logits into
        the sampler's input: with the fused kernels, by the step's own prefill
        (LlamaStep.prefill, the steering deltas added by the kernels); else
        through transformers (sdpa, steering hooks), the K/V copied over."""
        n, width = ids.shape
        if self.step.fused:
            assert self.pool is not None
            with steer if steer is not None else contextlib.nullcontext():  # sets the deltas
                self.step.prefill(
                    ids,
                    lengths,
                    b.buf.keys,
                    b.buf.values,
                    self._deltas(),
                    self.pool.cos,
                    self.pool.sin,
                    b.logits[:n],
                )
            b.logits[n:].zero_()
            return
        with steer if steer is not None else contextlib.nullcontext():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                logits_to_keep=1,
            )
        cache = kv_cache(out)
        for i in range(self.shape.layers):
            k, v = _layer_kv(cache, i)  # this rank's kv heads under tensor parallelism
            b.buf.keys[i][:n, :, :width].copy_(local(k))
            b.buf.values[i][:n, :, :width].copy_(local(v))
        b.logits[:n].copy_(whole(out.logits)[:, -1])
        b.logits[n:].zero_()

    def _start(self, b, n, width, lengths, budgets, seeds) -> None:
        """The bucket's state for this batch; extra rows are finished from the start
        and attend only to the slots they write themselves."""
        extra = b.size - n

        def put(dst: torch.Tensor, values: list) -> None:
            dst.copy_(torch.tensor(values, dtype=dst.dtype), non_blocking=False)

        put(b.buf.start, [width - x for x in lengths] + [width] * extra)
        put(b.buf.pos, list(lengths) + [0] * extra)
        put(b.seeds, [s & (2**63 - 1) for s in seeds] + [0] * extra)
        put(b.budgets, list(budgets) + [0] * extra)
        put(b.done, [False] * n + [True] * extra)
        b.forced.zero_()
        b.buf.slot.fill_(width)
        b.buf.tokens.fill_(self.pad_id)
        b.step.zero_()
        b.produced.zero_()
        b.finish_step.zero_()
        b.out.fill_(self.pad_id)
        b.bitmask.fill_(-1)


def sampler_kernels() -> Any:
    """agents.decode.sampler_kernels, imported on first use: it needs triton
    (and, on CPU, TRITON_INTERPRET set before it loads)."""
    from agents.decode import sampler_kernels as module

    return module


def kv_cache(out: Any) -> Any:
    """The KV cache of a transformers forward output, under its new name
    (`cache`, transformers 5.24) or its old one (`past_key_values`)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _layer_kv(cache: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer i's (keys, values) of a transformers cache, (B, HKV, T, D)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return layers[i].keys, layers[i].values
    return cache.key_cache[i], cache.value_cache[i]  # transformers 4.x
