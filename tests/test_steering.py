"""Steering mechanics on a tiny random Llama: the hook's exact per-row delta,
vector value type and cache, extraction, packed scoring and the evaluation
report's shape."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_model import tiny_model, tiny_tokenizer  # noqa: E402

from agents.errors import ModelError  # noqa: E402
from agents.steering import SteeringHooks, SteeringVectors, load_pairs, load_questionnaire  # noqa: E402
from agents.steering.data import pairs_hash  # noqa: E402
from agents.steering.evaluation import evaluate_steering  # noqa: E402
from agents.steering.extract import build_vectors, vectors_for  # noqa: E402
from agents.steering.hooks import decoder_layers  # noqa: E402
from agents.steering.scoring import PackedScorer  # noqa: E402
from agents.typing import TRAITS  # noqa: E402


def random_vectors(layers=(1,), hidden=64, seed=0) -> SteeringVectors:
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(len(layers), 5, hidden, generator=g), dim=-1)
    return SteeringVectors(
        layers=tuple(layers), directions=d, norms=torch.arange(1.0, len(layers) + 1) * 3
    )


def test_shipped_data_sizes() -> None:
    pairs, q = load_pairs(), load_questionnaire()
    for t in TRAITS:
        assert sum(p.trait == t for p in pairs) >= 40
        items = [i for i in q.items if i.trait == t]
        assert len(items) >= 8 and sum(i.key == -1 for i in items) * 2 == len(items)
    statements = {i.text for i in q.items}
    assert not statements & {p.continuation for p in pairs}  # held out


def test_hook_adds_exact_delta_to_row_and_skips_padding() -> None:
    model = tiny_model()
    layer = 1
    vecs = random_vectors((layer,))
    ids = torch.randint(3, 200, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # row 0 left-padded by 3
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    coefs = torch.tensor([[1.0, 0, -0.5, 0, 0], [0.0] * 5, [0, 0.3, 0, 0, 1.0]])
    block = decoder_layers(model)[layer]

    seen = []

    def grab(module, args, output):
        seen.append((output[0] if isinstance(output, tuple) else output).clone())

    with torch.no_grad():
        h = block.register_forward_hook(grab)
        model(input_ids=ids, attention_mask=mask, position_ids=pos)
        hooks = SteeringHooks(model, vecs, strength=0.25, max_batch=2)  # grows to 3
        hooks.set_coefficients(coefs)
        hooks.set_token_mask(mask)
        with hooks:
            h.remove()
            h = block.register_forward_hook(grab)  # runs after the steering hook
            model(input_ids=ids, attention_mask=mask, position_ids=pos)
        h.remove()
        assert not block._forward_hooks  # removed on exit
    plain, steered = seen
    expected = (coefs * 0.25 * vecs.norms[0]) @ vecs.directions[0]  # (B, H)
    diff = steered - plain  # (B, T, H)
    torch.testing.assert_close(diff[0, 3:], expected[0].expand(4, -1), atol=1e-5, rtol=0)
    assert torch.equal(diff[0, :3], torch.zeros_like(diff[0, :3]))  # padding untouched
    assert torch.equal(diff[1], torch.zeros_like(diff[1]))  # zero coefficients: untouched
    torch.testing.assert_close(diff[2], expected[2].expand(7, -1), atol=1e-5, rtol=0)


def test_hook_handles_tuple_outputs() -> None:
    """Decoder layers of older transformers return (hidden, ...) tuples."""
    hooks = SteeringHooks(tiny_model(), random_vectors((1,)), 0.5)
    hooks.set_coefficients(torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, -1.0]]))
    hidden = torch.randn(2, 4, 64)
    out = hooks._make_hook(0)(None, (), (hidden, "cache"))
    assert isinstance(out, tuple) and out[1] == "cache"
    expected = hooks.vectors.deltas(torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, -1.0]]), 0.5)[0]
    torch.testing.assert_close(out[0] - hidden, expected[:, None].expand(2, 4, 64))


def test_hooks_removed_on_error() -> None:
    model = tiny_model()
    hooks = SteeringHooks(model, random_vectors((0, 2)), 0.1)
    hooks.set_coefficients(torch.ones(1, 5))
    with pytest.raises(RuntimeError), hooks:
        raise RuntimeError("boom")
    assert all(not b._forward_hooks for b in decoder_layers(model))


def test_bad_layer_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="layer 9 is out of range.*4 decoder layers"):
        SteeringHooks(tiny_model(), random_vectors((9,)), 0.1)
    with pytest.raises(ModelError, match="hidden size 32"):
        SteeringHooks(tiny_model(), random_vectors((1,), hidden=32), 0.1)


def test_vectors_value_type_and_roundtrip(tmp_path) -> None:
    v = random_vectors((0, 2, 3))
    path = v.save(tmp_path / "v.safetensors")
    w = SteeringVectors.load(path)
    assert w.layers == v.layers and torch.equal(w.directions, v.directions)
    assert torch.equal(w.norms, v.norms)
    s = w.select([3, 0])
    assert s.layers == (0, 3) and torch.equal(s.directions[1], v.directions[2])
    o = v.orthogonalized()
    torch.testing.assert_close(o.cosines(), torch.eye(5).expand(3, 5, 5), atol=1e-5, rtol=0)
    assert torch.allclose(o.directions[:, 0], v.directions[:, 0])  # E kept as is
    deltas = v.deltas(torch.tensor([[1.0, 0, 0, 0, 0]]), 0.5)  # (L, 1, H)
    torch.testing.assert_close(deltas[:, 0], v.directions[:, 0] * 0.5 * v.norms[:, None])
    with pytest.raises(ModelError, match="no layer 1"):
        v.select([1])
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ModelError, match="not a steering file"):
        SteeringVectors.load(tmp_path / "bad.safetensors")


def test_per_trait_layers() -> None:
    v = random_vectors((1, 2, 3))
    m = v.for_traits({"O": [3], "E": [1, 2]})
    assert m.layers == (1, 2, 3)
    assert m.trait_layers() == {
        "E": (1, 2),
        "A": (1, 2, 3),
        "C": (1, 2, 3),
        "O": (3,),
        "N": (1, 2, 3),
    }
    assert torch.equal(m.directions[2, 3], v.directions[2, 3])
    assert not m.directions[0, 3].any() and not m.directions[2, 0].any()
    hooks = SteeringHooks(tiny_model(), m, 0.5)
    hooks.set_coefficients(torch.tensor([[0, 0, 0, 1.0, 0]]))  # O only
    assert not hooks._delta[0].any() and hooks._delta[2].any()


def test_extract_and_cache(tmp_path, monkeypatch) -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    pairs = [p for p in load_pairs() if p.continuation.startswith("Tomorrow")]
    v = build_vectors(model, tok, [1, 3], pairs=pairs)
    assert v.directions.shape == (2, 5, 64) and (v.norms > 0).all()
    torch.testing.assert_close(v.directions.norm(dim=-1), torch.ones(2, 5))
    kwargs = dict(storage_root=tmp_path, model_name="tiny", model_identity="abc", layers=[1, 3])
    import agents.steering.extract as ex

    monkeypatch.setattr(ex, "build_vectors", lambda m, t, layers, method: v)
    built, path = vectors_for(model, tok, **kwargs)
    assert path.parent == tmp_path / "vectors" and pairs_hash() in path.name
    monkeypatch.setattr(ex, "build_vectors", lambda *a, **k: pytest.fail("cache not used"))
    again, path2 = vectors_for(model, tok, **kwargs)
    assert path2 == path and torch.equal(again.directions, built.directions)
    assert again.meta["model_identity"] == "abc"
    # a file covering more layers serves a subset, orthogonalised on request
    sub, path3 = vectors_for(model, tok, **{**kwargs, "layers": [3]}, orthogonalize=True)
    assert sub.layers == (3,) and path3 != path and path3.is_file()
    torch.testing.assert_close(sub.cosines()[0], torch.eye(5), atol=1e-5, rtol=0)
    # per-trait layers: a separate file holding the masked directions
    masked, path4 = vectors_for(model, tok, **{**kwargs, "layers": [1]}, trait_layers={"O": [3]})
    assert masked.trait_layers()["O"] == (3,) and masked.trait_layers()["E"] == (1,)
    assert SteeringVectors.load(path4).trait_layers() == masked.trait_layers()


@pytest.mark.parametrize("start", [0, 2])
def test_packed_scorer_matches_separate_passes(start: int) -> None:
    model = tiny_model()
    prefix = [1, 40, 41, 42, 43]
    conts = [[50, 51, 52], [60], [70, 71, 72, 73, 74]]
    vecs = random_vectors((2, 3))
    hooks = SteeringHooks(model, vecs, 0.5)
    coefs = torch.tensor([[0.0] * 5, [1.0, -1.0, 0.5, 0, 0]])
    scorer = PackedScorer(model, prefix, conts, start_layer=start)
    assert scorer._base is not None or start == 0
    packed = scorer.score(hooks, vecs.deltas(coefs, 0.5))  # (2, 3)
    with torch.no_grad():
        for r in range(2):
            hooks.set_coefficients(coefs[r : r + 1])
            for j, c in enumerate(conts):
                ids = torch.tensor([prefix + c])
                with hooks:
                    logp = torch.log_softmax(model(ids).logits[0].double(), -1)
                want = sum(logp[len(prefix) - 1 + k, t] for k, t in enumerate(c))
                assert float(packed[r, j]) == pytest.approx(float(want), abs=1e-4)


def test_evaluation_report_on_tiny_model() -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    rep = evaluate_steering(model, tok, random_vectors((2,)), None, 0.3, n_random=3)
    assert rep.curves.shape == (5, 5, 5) and rep.random_effects.shape == (3, 5)
    assert rep.matrix.shape == (5, 5) and rep.fluency.shape == (5, 2)
    # coefficient 0 is the same unsteered row for every trait
    assert (rep.curves[:, 2] == rep.curves[0, 2]).all()
    d = rep.to_dict()
    assert set(d) >= {"passed", "effects", "random_spread", "matrix", "fluency_increase"}
    assert "matrix" in rep.to_text()
    # per-trait layers: each trait's controls sit at that trait's layers
    per = evaluate_steering(
        model, tok, random_vectors((1, 2)).for_traits({"O": [2]}), None, 0.3, n_random=3,
        fluency=False,
    )  # fmt: skip
    assert per.notes["trait_layers"]["O"] == [2] and per.random_effects.shape == (3, 5)


def test_rating_measure_option() -> None:
    from agents.steering.questionnaire import RatingMeasure

    model, tok = tiny_model(), tiny_tokenizer()
    rm = RatingMeasure(model, tok, row_chunk=2)
    vecs = random_vectors((1,))
    hooks = SteeringHooks(model, vecs, 0.5)
    coefs = torch.tensor([[0.0] * 5, [1.0, 0, 0, 0, 0], [0, 0, -1.0, 0, 0]])
    r = rm.ratings(hooks, vecs.deltas(coefs, 0.5))  # (3, C) in two chunks
    assert r.shape == (3, 50) and ((r >= 1) & (r <= 5)).all()
    torch.testing.assert_close(r[0], rm.ratings()[0], atol=1e-5, rtol=0)
    assert not torch.allclose(r[1], r[0])
    rep = evaluate_steering(
        model, tok, vecs, None, 0.5, n_random=2, fluency=False, measure="rating"
    )
    assert rep.notes["measure"] == "rating" and rep.curves.shape == (5, 5, 5)
