"""The memory stream (after Park et al. 2023, Generative Agents), implementing
agents.typing.MemoryStore for thousands of agents.

Each agent's memories (tick, text, kind, importance 1-10, embedding, last
access) live in dense per-agent rows of shared arrays, so one tick's retrieval
for every querying agent is a handful of array operations:

    score = w_rec * mm(decay ** (tick - last_access))
          + w_imp * mm(importance)
          + w_rel * mm(cosine(query, memory))        mm = min-max over the agent's memories

then a partial top-k (argpartition, no full sort), a last-access update for
what was retrieved, and a cut to the prompt token budget. New memories wait
until end_tick, which embeds and rates all of them in one call each. Rows hold
at most `max_items`; beyond that the memories with the lowest recency +
importance (oldest first among equals) are dropped.

Every stored memory gets a run-wide id (in storage order, so the same run
gives the same ids); retrieve_scored() returns the ids and scores behind a
prompt and take_stored() the memories stored since its last call, for the
run's records.

It also keeps what lazy reflection needs (recent texts, importance since the
last reflection, when that was). It knows nothing about prompts, backends or
the world: embedder and importance scorer are passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.config import MemoryConfig
from agents.typing import (
    Backend,
    Embedder,
    ImportanceScorer,
    KeyedRows,
    MemoryKind,
    Recalled,
    StoredMemory,
)

log = logging.getLogger(__name__)

KINDS: tuple[MemoryKind, ...] = ("observation", "action", "reflection")
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
STATE_FORMAT = "memory_stream/1"


class EmbedderMismatch(ValueError):
    """A memory state whose embeddings another embedder made (other dimensions):
    the config's fault, not damage."""


_FULL_PASS_SHARE = 0.9  # from this share of agents querying, one matmul over all rows
_MIN_COLUMNS = 16


def estimate_tokens(text: str) -> int:
    """About four characters a token for English, plus the bullet and newline."""
    return len(text) // 4 + 2


def _row_scale(x: np.ndarray, valid: np.ndarray, all_valid: bool) -> tuple[np.ndarray, np.ndarray]:
    """(lo, 1 / (hi - lo)) per row over the valid entries, each (Q, 1); the scale
    is 0 where a row's valid entries are all equal or it has none."""
    if all_valid:  # the common case once memories fill up: no masking passes
        lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    else:
        lo = np.where(valid, x, np.inf).min(axis=1, keepdims=True)
        hi = np.where(valid, x, -np.inf).max(axis=1, keepdims=True)
    span = (hi - lo).astype(np.float32)
    ok = np.isfinite(span) & (span > 0)
    scale = np.divide(1.0, span, out=np.zeros_like(span), where=ok)
    return np.where(np.isfinite(lo), lo, 0).astype(np.float32), scale


def retrieval_scores(
    *,
    relevance: np.ndarray,
    importance: np.ndarray,
    age: np.ndarray,
    valid: np.ndarray,
    decay: float,
    weights: tuple[float, float, float],
) -> np.ndarray:
    """(Q, C) scores; empty slots are -inf. `age` is ticks since last access and
    `weights` is (recency, importance, relevance); each term is min-max scaled
    per row over the valid entries, then weighted and summed."""
    all_valid = bool(valid.all())
    recency = np.exp(age.astype(np.float32) * np.float32(np.log(decay)))  # (Q, C) decay**age
    score = np.zeros(valid.shape, dtype=np.float32)  # (Q, C)
    tmp = np.empty_like(score)  # (Q, C) reused: no temporaries per term
    for w, term in ((weights[0], recency), (weights[1], importance), (weights[2], relevance)):
        if w:
            lo, scale = _row_scale(term, valid, all_valid)
            np.subtract(term, lo, out=tmp, casting="unsafe")
            tmp *= scale * np.float32(w)
            score += tmp
    if not all_valid:
        score[~valid] = -np.inf
    return score


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(Q, min(k, C)) column indices of each row's k best scores, best first:
    a partial selection (argpartition), then a sort of only those k. Equal
    scores go to the lower column, exactly as a stable full sort would order
    them, so the result does not depend on argpartition's internals."""
    q, c = scores.shape
    k = min(k, c)
    if k == 0:
        return np.empty((q, 0), dtype=np.int64)
    if k == c:
        part = np.broadcast_to(np.arange(c), (q, c)).copy()
    else:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (Q, k) unordered
        # A finite k-th score that also occurs outside the selection is a tie at
        # the boundary; only those (rare) rows get a stable full sort.
        sel = np.take_along_axis(scores, part, axis=1)  # (Q, k)
        kth = sel.min(axis=1, keepdims=True)  # (Q, 1)
        left_out = (scores == kth).sum(axis=1) > (sel == kth).sum(axis=1)  # (Q,)
        tied = np.isfinite(kth[:, 0]) & left_out
        if tied.any():
            part[tied] = np.argsort(-scores[tied], axis=1, kind="stable")[:, :k]
    sel = np.take_along_axis(scores, part, axis=1)  # (Q, k)
    order = np.lexsort((part, -sel), axis=1)  # by score desc, then column asc
    return np.take_along_axis(part, order, axis=1)


class MemoryStream:
    """Scored retrieval over per-agent memory rows; see the module docstring."""

    def __init__(
        self,
        *,
        embedder: Embedder,
        scorer: ImportanceScorer,
        top_k: int = 8,
        recency_decay: float = 0.99,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        max_items: int = 200,
        prompt_token_budget: int = 200,
    ) -> None:
        self.embedder, self.scorer = embedder, scorer
        self.top_k, self.decay, self.weights = top_k, recency_decay, tuple(weights)
        self.max_items, self.prompt_token_budget = max_items, prompt_token_budget
        self.dim = int(embedder.dim)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._alloc(rows=0, cols=min(_MIN_COLUMNS, max_items))
        # agent id -> memories queued this tick as (tick, text, kind), in arrival order
        self._pending: dict[str, list[tuple[int, str, MemoryKind]]] = {}
        self._reflected_at: dict[str, int] = {}
        self._next_id = 0  # the id the next stored memory gets (ids are never reused)
        self._stored: list[StoredMemory] = []  # stored since the last take_stored()

    @classmethod
    def from_config(
        cls, m: MemoryConfig, *, embedder: Embedder, scorer: ImportanceScorer
    ) -> MemoryStream:
        """From the `memory` config section."""
        return cls(
            embedder=embedder,
            scorer=scorer,
            top_k=m.top_k,
            recency_decay=m.recency_decay,
            weights=(m.weights.recency, m.weights.importance, m.weights.relevance),
            max_items=m.max_items,
            prompt_token_budget=m.prompt_token_budget,
        )

    # -- storage ---------------------------------------------------------------

    def _alloc(self, *, rows: int, cols: int) -> None:
        """(Re)allocate the arrays at rows x cols, keeping what fits."""
        old = getattr(self, "_valid", None)
        emb = np.zeros((rows, cols, self.dim), dtype=np.float32)  # (R, C, D)
        imp = np.zeros((rows, cols), dtype=np.float32)  # (R, C) importance 1..10
        made = np.zeros((rows, cols), dtype=np.int32)  # (R, C) tick the memory was made
        last = np.zeros((rows, cols), dtype=np.int32)  # (R, C) tick of last access
        kind = np.zeros((rows, cols), dtype=np.int8)  # (R, C) index into KINDS
        tokens = np.zeros((rows, cols), dtype=np.int32)  # (R, C) estimate_tokens(text)
        valid = np.zeros((rows, cols), dtype=bool)  # (R, C)
        ids = np.zeros((rows, cols), dtype=np.int64)  # (R, C) the memory's run-wide id
        texts: list[list[str | None]] = [[None] * cols for _ in range(rows)]
        index: list[dict[str, int]] = [{} for _ in range(rows)]  # per row: text -> slot
        if old is not None:
            r, c = min(rows, old.shape[0]), min(cols, old.shape[1])
            emb[:r, :c], imp[:r, :c] = self._emb[:r, :c], self._imp[:r, :c]
            made[:r, :c], last[:r, :c] = self._made[:r, :c], self._last[:r, :c]
            kind[:r, :c], valid[:r, :c] = self._kind[:r, :c], self._valid[:r, :c]
            tokens[:r, :c], ids[:r, :c] = self._tokens[:r, :c], self._mem_id[:r, :c]
            for i in range(r):
                texts[i][:c] = self._texts[i][:c]
            index[:r] = self._index[:r]  # columns only grow, so slots stay valid
        self._emb, self._imp, self._made, self._last = emb, imp, made, last
        self._kind, self._tokens, self._valid, self._mem_id = kind, tokens, valid, ids
        self._texts, self._index = texts, index

    def _row_of(self, agent_id: str) -> int:
        row = self._row.get(agent_id)
        if row is None:
            row = len(self._ids)
            if row >= self._valid.shape[0]:  # grow rows by doubling: amortised copies
                self._alloc(rows=max(8, 2 * row), cols=self._valid.shape[1])
            self._ids.append(agent_id)
            self._row[agent_id] = row
        return row

    def add(self, agent_id: str, tick: int, text: str, kind: MemoryKind) -> None:
        """Queue a memory; it is embedded, rated and stored at end_tick."""
        if kind not in _KIND_CODE:
            raise ValueError(f"unknown memory kind {kind!r}")
        self._pending.setdefault(agent_id, []).append((tick, text, kind))

    def end_tick(self, tick: int) -> None:
        """Embed and rate everything added since the last call (one call each), then store it."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        texts = [text for items in pending.values() for _, text, _ in items]
        vecs = self.embedder.embed(texts)  # (N, D)
        scores = np.asarray(self.scorer.score(texts), dtype=np.float32)  # (N,)
        start = 0
        for agent_id, items in pending.items():
            end = start + len(items)
            self._store(agent_id, items, vecs[start:end], scores[start:end], tick)
            start = end

    def _store(
        self,
        agent_id: str,
        items: list[tuple[int, str, MemoryKind]],
        vecs: np.ndarray,  # (n, D)
        scores: np.ndarray,  # (n,)
        tick: int,
    ) -> None:
        row = self._row_of(agent_id)
        index = self._index[row]
        # A sentence the agent already remembers is refreshed (made and accessed
        # now, the higher importance) rather than stored twice: repeated
        # observations would otherwise crowd out everything else.
        fresh: dict[str, int] = {}  # new text -> its last position in items
        for i, (made, text, kind) in enumerate(items):
            slot = index.get(text)
            if slot is None:
                fresh[text] = i
                continue
            self._made[row, slot] = self._last[row, slot] = made
            self._imp[row, slot] = max(self._imp[row, slot], scores[i])
            self._kind[row, slot] = _KIND_CODE[kind]
        if len(fresh) < len(items):
            keep = np.array(sorted(fresh.values()), dtype=np.int64)
            items, vecs, scores = [items[i] for i in keep], vecs[keep], scores[keep]
        n = len(items)
        if n == 0:
            return
        if n > self.max_items:  # more new memories than room: keep the most important
            keep = np.sort(np.argsort(-scores, kind="stable")[: self.max_items])
            items, vecs, scores, n = [items[i] for i in keep], vecs[keep], scores[keep], len(keep)
        used = int(self._valid[row].sum())
        cols = self._valid.shape[1]
        if used + n > cols and cols < self.max_items:
            self._alloc(
                rows=self._valid.shape[0], cols=min(self.max_items, max(2 * cols, used + n))
            )
        free = np.flatnonzero(~self._valid[row])
        if len(free) < n:
            self._evict(row, n - len(free), tick)
            free = np.flatnonzero(~self._valid[row])
        slots = free[:n]
        self._emb[row, slots] = vecs
        self._imp[row, slots] = scores
        self._made[row, slots] = [it[0] for it in items]
        self._last[row, slots] = [it[0] for it in items]
        self._kind[row, slots] = [_KIND_CODE[it[2]] for it in items]
        self._tokens[row, slots] = [estimate_tokens(it[1]) for it in items]
        self._valid[row, slots] = True
        new_ids = range(self._next_id, self._next_id + n)
        self._mem_id[row, slots] = new_ids
        self._next_id += n
        for slot, it, mid, imp in zip(slots.tolist(), items, new_ids, scores.tolist(), strict=True):
            self._texts[row][slot] = it[1]
            index[it[1]] = slot
            self._stored.append(
                StoredMemory(
                    id=mid, agent_id=agent_id, tick=it[0], text=it[1], importance=imp, kind=it[2]
                )
            )

    def take_stored(self) -> list[StoredMemory]:
        """The memories stored since the last call, in the order they were stored
        (a refreshed repeat is not new and does not appear)."""
        out, self._stored = self._stored, []
        return out

    def _evict(self, row: int, count: int, tick: int) -> None:
        """Drop `count` memories of one row: lowest recency + importance first,
        then the oldest, then the lowest slot. Relevance cannot count here (no query)."""
        w_rec, w_imp, _ = self.weights
        slots = np.flatnonzero(self._valid[row])
        recency = np.power(self.decay, (tick - self._last[row, slots]).astype(np.float64))
        keep_score = w_rec * recency + w_imp * (self._imp[row, slots] - 1.0) / 9.0
        order = np.lexsort((slots, self._made[row, slots], keep_score))
        gone = slots[order[:count]]
        self._valid[row, gone] = False
        for s in gone.tolist():
            del self._index[row][self._texts[row][s]]
            self._texts[row][s] = None

    # -- retrieval -------------------------------------------------------------

    def retrieve(self, queries: dict[str, str], tick: int) -> dict[str, list[str]]:
        """For every querying agent at once: its top-k memories by score, best
        first, cut to the prompt token budget. Retrieved memories count as accessed."""
        return {a: r.texts for a, r in self.retrieve_scored(queries, tick).items()}

    def retrieve_scored(self, queries: dict[str, str], tick: int) -> dict[str, Recalled]:
        """retrieve(), with each memory's id and retrieval score (what a run records)."""
        out = {a: Recalled(texts=[], ids=[], scores=[]) for a in queries}
        known = [a for a in queries if a in self._row]
        rows = np.array([self._row[a] for a in known], dtype=np.int64)  # (Q,)
        has_any = self._valid[rows].any(axis=1) if len(rows) else np.zeros(0, bool)
        agents = [a for a, h in zip(known, has_any.tolist(), strict=True) if h]
        rows = rows[has_any]
        if not agents:
            return out
        qv = np.asarray(self.embedder.embed([queries[a] for a in agents]), np.float32)  # (Q, D)
        relevance = self._relevance(rows, qv)  # (Q, C)
        valid = self._valid[rows]  # (Q, C)
        scores = retrieval_scores(
            relevance=relevance,
            importance=self._imp[rows],
            age=tick - self._last[rows],
            valid=valid,
            decay=self.decay,
            weights=self.weights,  # type: ignore[arg-type]
        )
        best = top_k(scores, self.top_k)  # (Q, k)
        hit = np.take_along_axis(valid, best, axis=1)  # (Q, k) False where an agent has < k
        r_idx = np.broadcast_to(rows[:, None], best.shape)
        self._last[r_idx[hit], best[hit]] = tick
        # The prompt budget: the best memories whose summed tokens fit (no Python per memory).
        cost = np.where(hit, self._tokens[r_idx, best], 0)  # (Q, k)
        fits = hit & (np.cumsum(cost, axis=1) <= self.prompt_token_budget)  # (Q, k)
        # the best memory alone too long: shortened rather than dropped, so n is at least 1
        n_fit = np.maximum(fits.sum(axis=1), 1).tolist()  # a prefix: costs are positive
        best_ids = self._mem_id[r_idx, best].tolist()  # (Q, k)
        best_scores = np.take_along_axis(scores, best, axis=1).tolist()  # (Q, k)
        chars = max(0, (self.prompt_token_budget - 2) * 4)
        for qi, agent_id in enumerate(agents):
            texts, n = self._texts[rows[qi]], n_fit[qi]
            picked = [texts[c] for c in best[qi, :n].tolist()]
            if not fits[qi, 0]:
                picked = [picked[0][:chars]]
            out[agent_id] = Recalled(texts=picked, ids=best_ids[qi][:n], scores=best_scores[qi][:n])
        return out

    def _relevance(self, rows: np.ndarray, qv: np.ndarray) -> np.ndarray:
        """(Q, C) cosine of each query with each memory of its own agent (unit vectors).

        The work is memory-bound: every embedding of a querying agent is read
        once. With (nearly) all agents querying, one batched matrix product over
        all rows in place. With fewer, one BLAS matrix-vector product per
        querying agent over its own row: gathering the rows first (E[rows])
        would copy them, and a pass over all rows would read the idle agents'
        memories too; both measured 2-10x slower here than this loop over agents."""
        n_rows, cols = len(self._ids), self._emb.shape[1]
        if len(rows) >= _FULL_PASS_SHARE * n_rows:
            q_all = np.zeros((n_rows, self.dim), dtype=np.float32)  # (R, D)
            q_all[rows] = qv
            rel = np.matmul(self._emb[:n_rows], q_all[:, :, None])[:, :, 0]  # (R, C)
            return rel if len(rows) == n_rows and (rows == np.arange(n_rows)).all() else rel[rows]
        out = np.empty((len(rows), cols), dtype=np.float32)  # (Q, C)
        emb = self._emb
        for i, r in enumerate(rows.tolist()):
            np.dot(emb[r], qv[i], out=out[i])  # (C, D) @ (D,) -> (C,)
        return out

    # -- what reflection needs --------------------------------------------------

    def recent(self, agent_id: str, n: int) -> list[str]:
        """The agent's n newest memories, oldest first, including ones not yet stored."""
        if n <= 0:
            return []
        queued = [text for _, text, _ in self._pending.get(agent_id, ())]
        row = self._row.get(agent_id)
        stored: list[str] = []
        if row is not None and n > len(queued):
            slots = np.flatnonzero(self._valid[row])
            order = np.lexsort((slots, self._made[row, slots]))  # by tick, then slot
            stored = [self._texts[row][s] for s in slots[order][-(n - len(queued)) :]]
        return (stored + queued)[-n:]

    def reflection_stats(self, agent_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each agent, since its last reflection: (how many memories it made,
        stored or queued; their summed importance). Only what it lived counts
        (actions and observations): its own insights are no new experience.
        Queued memories are not rated yet, so an importance trigger sees them
        one tick later."""
        counts = np.zeros(len(agent_ids), dtype=np.int64)  # (A,)
        sums = np.zeros(len(agent_ids), dtype=np.float64)  # (A,)
        known = [(i, self._row[a]) for i, a in enumerate(agent_ids) if a in self._row]
        if known:
            idx, rows = (np.array(x, dtype=np.int64) for x in zip(*known, strict=True))
            since = np.array([self.last_reflection(agent_ids[i]) for i in idx])[:, None]  # (K, 1)
            fresh = self._valid[rows] & (self._made[rows] > since)  # (K, C)
            fresh &= self._kind[rows] != _KIND_CODE["reflection"]
            counts[idx] = fresh.sum(axis=1)
            sums[idx] = np.where(fresh, self._imp[rows], 0.0).sum(axis=1)
        for i, a in enumerate(agent_ids):
            since = self.last_reflection(a)
            counts[i] += sum(
                1 for t, _, kind in self._pending.get(a, ()) if t > since and kind != "reflection"
            )
        return counts, sums

    def last_reflection(self, agent_id: str) -> int:
        """Tick of the agent's last reflection, -1 if none."""
        return self._reflected_at.get(agent_id, -1)

    def mark_reflected(self, agent_id: str, tick: int) -> None:
        self._reflected_at[agent_id] = tick

    def size(self, agent_id: str) -> int:
        row = self._row.get(agent_id)
        return 0 if row is None else int(self._valid[row].sum())

    # -- checkpoints -------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Plain data: lists, a dict and numpy arrays (one row per stored memory),
        so a checkpoint can put the arrays in an .npz and the rest in JSON. Slots
        are kept, so a restored stream breaks score ties exactly as before."""
        n_rows = len(self._ids)
        rows, slots = np.nonzero(self._valid[:n_rows])  # (N,), (N,) row-major
        texts = [self._texts[r][s] for r, s in zip(rows.tolist(), slots.tolist(), strict=True)]
        return {
            "format": STATE_FORMAT,
            "dim": self.dim,
            "columns": int(self._valid.shape[1]),
            "agent_ids": list(self._ids),
            "row": rows.astype(np.int32),
            "slot": slots.astype(np.int32),
            # indexing with (rows, slots) copies: these arrays are already a snapshot
            "made": self._made[rows, slots],
            "last_access": self._last[rows, slots],
            "importance": self._imp[rows, slots],
            "kind": self._kind[rows, slots],
            "memory_id": self._mem_id[rows, slots],
            "next_id": self._next_id,
            # an embedding is a function of its text: a checkpoint stores each once
            "embedding": KeyedRows(
                store="embeddings", keys=texts, rows=self._emb[rows, slots]
            ),  # (N, D)
            "reflected_at": dict(self._reflected_at),
            "pending": [[a, t, x, k] for a, items in self._pending.items() for t, x, k in items],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore get_state's dict. EmbedderMismatch when its embeddings have
        another size than this stream's embedder gives; ValueError (or the
        KeyError, TypeError, IndexError of a missing or mistyped part) when it
        is damaged."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a memory stream state (format {state.get('format')!r})")
        if int(state["dim"]) != self.dim:
            raise EmbedderMismatch(
                f"the checkpoint's memories have {state['dim']}-dim embeddings but the "
                f"embedder gives {self.dim}: resume with the run's memory.embedder"
            )
        ids = list(state["agent_ids"])
        cols = max(int(state["columns"]), min(_MIN_COLUMNS, self.max_items))
        self._ids, self._row = [], {}
        self._valid = None  # type: ignore[assignment]  # drop the old arrays
        self._alloc(rows=len(ids), cols=cols)
        self._ids, self._row = ids, {a: i for i, a in enumerate(ids)}
        rows, slots = np.asarray(state["row"], np.int64), np.asarray(state["slot"], np.int64)
        emb: KeyedRows = state["embedding"]  # the texts are its keys
        self._emb[rows, slots] = np.asarray(emb.rows, np.float32).reshape(-1, self.dim)
        self._imp[rows, slots] = np.asarray(state["importance"], np.float32)
        self._made[rows, slots] = np.asarray(state["made"], np.int32)
        self._last[rows, slots] = np.asarray(state["last_access"], np.int32)
        self._kind[rows, slots] = np.asarray(state["kind"], np.int8)
        self._valid[rows, slots] = True
        if "memory_id" in state:
            ids_held = np.asarray(state["memory_id"], np.int64)
            self._mem_id[rows, slots] = ids_held
            self._next_id = int(state["next_id"])
            # new memories are numbered from next_id: one at or below a held id would
            # give two memories one id, and the dumps' memory_ids would mislead
            if len(ids_held) and (
                len(np.unique(ids_held)) != len(ids_held) or self._next_id <= ids_held.max()
            ):
                raise ValueError("memory ids repeat, or next_id is not above them")
        else:  # a checkpoint from before memory ids: number what it holds
            self._mem_id[rows, slots] = np.arange(len(rows))
            self._next_id = len(rows)
        self._stored = []
        for r, s, t in zip(rows.tolist(), slots.tolist(), emb.keys, strict=True):
            self._texts[r][s] = t
            self._index[r][t] = s
            self._tokens[r, s] = estimate_tokens(t)
        self._reflected_at = {a: int(t) for a, t in state["reflected_at"].items()}
        self._pending = {}
        for a, t, x, k in state["pending"]:
            self._pending.setdefault(a, []).append((int(t), x, k))


def build_memory_stream(memory: MemoryConfig, *, backend: Backend, device: str) -> MemoryStream:
    """The run's memory from its `memory` section: the embedder `memory.embedder`
    names (auto: MiniLM for a real model, hashing for the mock), placed on
    `device`, and the importance scorer `memory.importance` names, which may
    ask `backend` for ratings."""
    from agents.embedding import build_embedder
    from agents.importance import select_importance

    embedder = build_embedder(memory.embedder, backend=backend.name, device=device)
    scorer = select_importance(memory.importance, backend)
    log.info(
        "memory stream: %s embeddings (dim %d), %s importance",
        getattr(embedder, "name", type(embedder).__name__),
        embedder.dim,
        getattr(scorer, "name", type(scorer).__name__),
    )
    return MemoryStream.from_config(memory, embedder=embedder, scorer=scorer)
