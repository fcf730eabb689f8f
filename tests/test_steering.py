"""Steering mechanics on a tiny random Llama: the hook's exact per-row delta,
vector value type and cache, extraction, packed scoring and the evaluation
report's shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_model import tiny_model, tiny_tokenizer  # noqa: E402

from agents.errors import ModelError  # noqa: E402
from agents.steering import SteeringHooks, SteeringVectors, load_pairs, load_questionnaire  # noqa: E402
from agents.steering.data import load_pairs_file, pairs_hash  # noqa: E402
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


DATA = Path(__file__).resolve().parents[1] / "agents" / "data"


def test_shipped_data_sizes() -> None:
    pairs, dev, test = load_pairs(), load_questionnaire("dev"), load_questionnaire("test")
    assert (dev.split, test.split) == ("dev", "test")
    assert load_questionnaire() == test  # reporting reads the test set unless told otherwise
    for t in TRAITS:
        assert sum(p.trait == t for p in pairs) >= 40
        keys = [i.key for i in dev.items if i.trait == t]
        assert len(keys) >= 39 and min(keys.count(1), keys.count(-1)) >= 14
        keys = [i.key for i in test.items if i.trait == t]
        assert 22 <= len(keys) <= 24 and min(keys.count(1), keys.count(-1)) >= 10
    assert len(dev.items) == 220 and len(test.items) == 117


def test_dev_holds_the_retired_ipip50_and_the_rest_of_the_ipip_neo() -> None:
    """Version 1's test set (the IPIP-50 markers) was seen, so it joined dev;
    the IPIP-NEO items the test set did not take are dev's too (27 of the 30
    facets have some left), and none of them is a test item."""
    doc = json.loads((DATA / "questionnaire_dev.json").read_text())
    test = json.loads((DATA / "questionnaire_test.json").read_text())
    ipip50 = [i for i in doc["items"] if i["origin"].startswith("IPIP-50")]
    assert len(ipip50) == 50 and doc["version"] == 3
    assert {i["trait"] for i in ipip50} == set(TRAITS)
    neo = [i for i in doc["items"] if "neo300_item" in i]
    facets = {i["facet"] for i in neo}
    assert facets <= {i["facet"] for i in test["items"]} and len(facets) == 27
    assert not {i["neo300_item"] for i in neo} & {i["neo300_item"] for i in test["items"]}
    for item in doc["items"]:
        stem = item["stem"]
        assert item["text"] == "I " + stem[0].lower() + stem[1:]


def test_test_set_is_ipip_neo_by_one_rule() -> None:
    """Every test statement is 'I ' + an IPIP-NEO stem with its first letter
    lower-cased; two to four per facet of all 30, in administration order;
    the file names its source, the selection rule and the rephrasing rule."""
    doc = json.loads((DATA / "questionnaire_test.json").read_text())
    assert "Goldberg" in doc["source"] and "ipip.ori.org" in doc["source"]
    assert "lower-cased" in doc["rephrasing_rule"] and "before any item" in doc["selection_rule"]
    assert doc["version"] == 2
    by_facet: dict[str, list[dict]] = {}
    for item in doc["items"]:
        stem = item["stem"]
        assert item["text"] == "I " + stem[0].lower() + stem[1:]
        assert item["facet"][0] == item["trait"]
        by_facet.setdefault(item["facet"], []).append(item)
    assert len(by_facet) == 30
    for facet, items in by_facet.items():
        assert 2 <= len(items) <= 4, facet
        order = [i["neo300_item"] for i in items]
        assert order == sorted(order), facet  # administration order within a facet
    assert len({i["neo300_item"] for i in doc["items"]}) == len(doc["items"])


def _norm(text: str) -> str:
    return re.sub(r"[^a-z' ]+", "", text.lower().replace("’", "'")).strip()


def test_pairs_dev_and_test_share_no_item_text() -> None:
    """Three disjoint sets: no statement in both questionnaires, and no
    statement's predicate (the words after 'I') inside any pair text, for the
    shipped pairs and every candidate pair set a sweep can compare."""
    dev = {_norm(i.text) for i in load_questionnaire("dev").items}
    test = {_norm(i.text) for i in load_questionnaire("test").items}
    assert len(dev) == 220 and len(test) == 117
    assert not dev & test
    pair_sets = [load_pairs()] + [load_pairs_file(f) for f in sorted(DATA.glob("pair_sets/*.json"))]
    assert len(pair_sets) >= 3
    for pairs in pair_sets:
        texts = {
            _norm(x) for p in pairs for x in (p.high, p.low, p.user, p.continuation, p.system or "")
        }
        for statement in dev | test:
            predicate = statement.removeprefix("i ")
            assert not any(predicate in x for x in texts), statement


def test_statement_pairs_differ_only_in_the_statement_read_at_its_last_token() -> None:
    """A statement pair's two sequences share system and user turn and end on
    either statement; a persona pair's end on the shared continuation. The
    direction built from statement pairs is their last tokens' mean
    high-minus-low residual, signed high-positive."""
    from agents.steering.data import ContrastivePair
    from agents.steering.extract import last_token_residuals, pair_prompts

    tok = tiny_tokenizer()
    sp = ContrastivePair(
        trait="N", kind="statement", system="You are a person.", user="Tell me about yourself.",
        continuation="", high="I panic easily.", low="I stay calm.", framing="desirable_low",
    )  # fmt: skip
    hi, lo = pair_prompts(tok, sp)
    n = next(i for i, (a, b) in enumerate(zip(hi, lo, strict=False)) if a != b)
    assert tok.decode(hi).endswith("I panic easily.") and tok.decode(lo).endswith("I stay calm.")
    assert "You are a person." in tok.decode(hi[:n]) and "Tell me about yourself." in tok.decode(
        hi[:n]
    )
    persona = load_pairs()[0]
    for ids in pair_prompts(tok, persona):
        assert tok.decode(ids).endswith(persona.continuation)
    with pytest.raises(ValueError, match="system"):
        ContrastivePair(trait="N", high="a", low="b", user="u", continuation="", system="s")
    with pytest.raises(ValueError, match="kind"):
        ContrastivePair(trait="N", high="a", low="b", user="u", continuation="", kind="other")
    # the two new fields do not enter a persona pair's hash: the shipped
    # calibration entries stay filed under the shipped pairs' hash
    assert pairs_hash(tuple(load_pairs())) == pairs_hash()
    assert "kind" not in persona.hashed() and sp.hashed()["kind"] == "statement"

    model = tiny_model()
    pairs = [p for p in load_pairs() if p.trait != "N"] + [sp]
    v = build_vectors(model, tok, [1], pairs=pairs)
    acts, _ = last_token_residuals(model, [hi, lo], [1])
    want = torch.nn.functional.normalize(acts[0, 0] - acts[1, 0], dim=-1)
    torch.testing.assert_close(v.directions[0, TRAITS.index("N")], want, atol=1e-5, rtol=0)


def test_candidate_statement_sets_keep_the_shipped_personas() -> None:
    """statement_n is the shipped pairs with only N's replaced by statement
    pairs; statements holds statement pairs for all five traits."""
    shipped = load_pairs()
    mixed = load_pairs_file(DATA / "pair_sets" / "statement_n.json")
    assert sorted([p for p in mixed if p.trait != "N"], key=repr) == sorted(
        [p for p in shipped if p.trait != "N"], key=repr
    )
    assert {p.kind for p in mixed if p.trait == "N"} == {"statement"}
    every = load_pairs_file(DATA / "pair_sets" / "statements.json")
    assert {p.trait for p in every if p.kind == "statement"} == set(TRAITS)
    assert all(p.high != p.low and p.system for p in every)


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


@pytest.mark.parametrize("name", ["no-such.safetensors", "a" * 300 + ".safetensors"])
def test_loading_a_missing_vectors_file_is_one_line(tmp_path, name) -> None:
    """A missing file, or a name over 255 bytes (pathlib raises OSError for
    it), is the same ModelError the mock backend gives."""
    with pytest.raises(ModelError, match=r"^steering.vectors '.*': no such file$"):
        SteeringVectors.load(tmp_path / name)


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

    monkeypatch.setattr(ex, "build_vectors", lambda m, t, layers, method, pairs: v)
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
    r = rm.ratings(hooks, vecs.deltas(coefs, 0.5))  # (3, items) in two chunks
    n_items = len(load_questionnaire("test").items)
    assert r.shape == (3, n_items) and ((r >= 1) & (r <= 5)).all()
    torch.testing.assert_close(r[0], rm.ratings()[0], atol=1e-5, rtol=0)
    assert not torch.allclose(r[1], r[0])
    rep = evaluate_steering(
        model, tok, vecs, None, 0.5, n_random=2, fluency=False, measure="rating"
    )
    assert rep.notes["measure"] == "rating" and rep.curves.shape == (5, 5, 5)


def _report(effects, random_effects, coefs=(-1.0, -0.5, 0.0, 0.5, 1.0), bump=None):
    """A SteeringReport whose own-trait curves are linear with the given effects."""
    from agents.steering.evaluation import SteeringReport

    c = np.array(coefs)
    curves = np.zeros((5, len(c), 5))
    for t in range(5):
        curves[t, :, t] = effects[t] * c / 2
    if bump is not None:
        curves[bump, 1, bump] = curves[bump, 0, bump] - 0.01  # a dip at -0.5
    return SteeringReport(
        layers=(1,), strength=0.2, coefs=tuple(c), curves=curves, random_effects=random_effects
    )


def _small_dev(per_key: int = 3):
    """The dev questionnaire cut to `per_key` statements per trait and key (fast)."""
    from dataclasses import replace

    q = load_questionnaire("dev")
    groups: dict = {}
    for it in q.items:
        groups.setdefault((it.trait, it.key), []).append(it)
    return replace(q, items=tuple(it for g in groups.values() for it in g[:per_key]))


def test_pass_rule_uses_the_lower_bootstrap_bound() -> None:
    from agents.steering.evaluation import MIN_RATIO

    rng = np.random.default_rng(1)
    rand = rng.normal(0, 1, (100, 5))
    rand /= rand.std(axis=0, ddof=1)  # spread exactly 1 per trait
    rep = _report(np.array([10, 10, 10, 10, MIN_RATIO + 0.05]), rand)
    ci = rep.ratio_ci
    assert rep.ratios[4] >= MIN_RATIO  # the point ratio clears the bar...
    assert ci[4, 0] < MIN_RATIO < ci[4, 1]  # ...its interval straddles it
    assert not rep.passed  # so it fails
    assert (ci[:, 0] < rep.ratios).all() and (rep.ratios < ci[:, 1]).all()
    assert np.array_equal(ci, rep.ratio_ci)  # seeded: the same report, the same interval
    assert _report(np.full(5, 10.0), rand).passed
    # fewer controls: a wider interval around the same ratio
    few = _report(np.full(5, 10.0), rand[:20] / rand[:20].std(axis=0, ddof=1))
    assert (np.diff(few.ratio_ci, axis=1) > np.diff(rep.ratio_ci, axis=1)).all()
    d = rep.to_dict()
    assert d["ratio_ci"][4][0] == pytest.approx(ci[4, 0], abs=1e-4) and d["n_random"] == 100


def test_monotone_means_every_step() -> None:
    rand = np.random.default_rng(2).normal(0, 0.1, (50, 5))
    rep = _report(np.full(5, 10.0), rand, bump=2)
    assert rep.monotone.tolist() == [True, True, False, True, True] and not rep.passed


def test_lda_discounts_a_direction_shared_by_noisy_pairs() -> None:
    """Each trait's pairs differ along its own axis plus a large +-v term
    (valence: favourable and unfavourable framings), with an imbalance that
    leaves some v in every mean difference. mean_diff keeps that v; LDA, which
    whitens by the spread of the differences, removes most of it."""
    from agents.steering.extract import directions_from_diffs, lda_directions, ledoit_wolf

    g = torch.Generator().manual_seed(0)
    hidden, per = 32, 40
    v = torch.nn.functional.normalize(torch.randn(hidden, generator=g), dim=0)
    rows, trait_of = [], []
    for t in range(5):
        axis = torch.zeros(hidden)
        axis[t] = 1.0
        sign = torch.tensor([1.0] * 26 + [-1.0] * 14)  # unbalanced framing
        d = axis + 3.0 * sign[:, None] * v + 0.1 * torch.randn(per, hidden, generator=g)
        rows.append(d)
        trait_of += [TRAITS[t]] * per
    diffs = torch.cat(rows)[:, None]  # (P, 1, H)
    lda, shrink = lda_directions(diffs, trait_of)
    assert lda.shape == (1, 5, hidden) and 0 <= shrink[0] <= 1
    for t in range(5):
        mean = directions_from_diffs(
            diffs[[i for i, x in enumerate(trait_of) if x == TRAITS[t]]], "mean_diff"
        )
        assert abs(float(mean[0] @ v)) > 0.5
        assert abs(float(lda[0, t] @ v)) < 0.1
        assert float(lda[0, t, t]) > 0.9  # the trait's own axis survives
    cov, a = ledoit_wolf(torch.randn(10, 20, generator=g))
    assert 0 < a <= 1 and torch.linalg.eigvalsh(cov).min() > 0  # invertible with n < H


def test_scaled_traits_get_controls_of_their_own_size() -> None:
    """A trait steered with a gain is compared with random directions of the
    same gain: its controls move (about) gain times as much as a unit trait's."""
    from agents.steering.evaluation import control_groups

    model, tok = tiny_model(), tiny_tokenizer()
    unit = random_vectors((1, 2)).for_traits({"O": [2]})
    v = unit.scaled({"N": 2.0})
    assert torch.allclose(v.directions[:, 4].norm(dim=-1), torch.tensor([2.0, 2.0]))
    assert sorted(control_groups(v).values()) == [[0, 1, 2], [3], [4]]
    assert sorted(control_groups(unit).values()) == [[0, 1, 2, 4], [3]]
    kw = dict(n_random=6, fluency=False, coefs=(-1, 0, 1), questionnaire=_small_dev())
    rep1 = evaluate_steering(model, tok, unit, None, 0.02, **kw)
    rep2 = evaluate_steering(model, tok, v, None, 0.02, **kw)
    np.testing.assert_allclose(rep2.random_effects[:, :4], rep1.random_effects[:, :4], atol=1e-9)
    ratio = rep2.random_spread[4] / rep1.random_spread[4]  # the same directions, twice as large
    assert 1.8 < ratio < 2.2


def test_sweep_reads_the_dev_set_and_reuses_controls(monkeypatch, tmp_path) -> None:
    import agents.steering.sweep as sw

    assert sw.SPLIT == "dev"
    monkeypatch.setattr(sw, "SPLIT", _small_dev())  # dev cut short: the whole one takes minutes

    model, tok = tiny_model(), tiny_tokenizer()
    pairs = tuple(p for p in load_pairs() if p.continuation.startswith("Tomorrow"))
    monkeypatch.setattr(sw, "pair_set", lambda name: pairs)
    calls = []
    real = sw.evaluate_steering

    def spy(*args, **kwargs):
        calls.append(kwargs.get("random_effects") is None)
        return real(*args, **kwargs)

    monkeypatch.setattr(sw, "evaluate_steering", spy)
    settings = [
        sw.Setting(method=m, layers=(1,), trait_layers={"O": (2,)}, strength=0.3)
        for m in ("mean_diff", "lda")
    ] + [sw.Setting(layers=(1, 2), strength=0.3)]
    rows = sw.run_sweep(model, tok, settings, tmp_path / "s.jsonl", n_random=4, fluency=False)
    assert [r["questionnaire"] for r in rows] == ["dev"] * 3
    # controls once per placement (layer 1, layer 2, layers 1+2), then reused
    assert calls == [True, True, False, False, True, False]
    assert rows[0]["random_effects"] == rows[1]["random_effects"]
    assert rows[0]["effects"] != rows[1]["effects"]  # but the directions differ
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(x)["setting"]["method"] for x in lines] == ["mean_diff", "lda", "mean_diff"]
    # each trait's split-half cosine at its own layers (O at 2, the rest at 1)
    rel = json.loads(lines[0])["reliability"]
    assert set(rel) == set("EACON") and list(rel["O"]) == ["2"] and list(rel["E"]) == ["1"]
    assert all(-1 <= v <= 1 for t in rel for v in rel[t].values())


def test_sweep_controls_equal_the_evaluations_own(monkeypatch) -> None:
    """Controls assembled per placement are the ones evaluate_steering measures
    itself for the same vectors (same seed, same directions, same sizes)."""
    import agents.steering.sweep as sw

    model, tok = tiny_model(), tiny_tokenizer()
    q = _small_dev()  # the sweep's dev set, cut short: the whole one takes minutes here
    monkeypatch.setattr(sw, "SPLIT", q)
    v = random_vectors((1, 2)).for_traits({"O": [2]}).scaled({"N": 1.5})
    own = evaluate_steering(
        model, tok, v, None, 0.1, n_random=4, fluency=False, coefs=(-1, 0, 1), questionnaire=q
    ).random_effects
    np.testing.assert_allclose(sw.Sweep(model, tok, n_random=4).controls(v, 0.1)[0], own, atol=1e-6)


def test_sweep_command_line_builds_dev_settings() -> None:
    from orchestrator.analysis.steering_sweep import main, parse_layers, settings_from

    assert parse_layers("18-20,24") == (18, 19, 20, 24)
    import argparse

    args = argparse.Namespace(
        pairs=["shipped"], methods=["mean_diff", "lda"], shrinkage=[0.5, 0.9],
        orthogonalize="no", layer_sets=["21"],
        per_trait=["E=21", "A=21", "C=21", "O=26", "N=20-22"], strengths=[0.1],
        gains=["N=1.5"], remove_valence=[0.0],
    )  # fmt: skip
    got = settings_from(args)
    assert [(s.method, s.shrinkage) for s in got] == [
        ("mean_diff", None), ("mean_diff", None), ("lda", 0.5), ("lda", 0.5), ("lda", 0.9),
        ("lda", 0.9),
    ]  # fmt: skip
    per = got[1]
    assert per.layers == (21,) and dict(per.trait_layers) == {"O": (26,), "N": (20, 21, 22)}
    assert dict(per.gains) == {"N": 1.5}
    for bad in (["--layer-sets", "2x"], ["--per-trait", "E=1"], ["--gains", "N=0"], []):
        with pytest.raises(SystemExit) as exc:
            main(bad)
        assert exc.value.code == 2


def _cross_talk_case() -> tuple[np.ndarray, np.ndarray]:
    """A (5, 5) cross-talk matrix with real spill-over and the Gram matrix of
    five random unit directions."""
    rng = np.random.default_rng(3)
    s = np.diag([1.5, 1.0, 0.8, 0.6, 1.2]) + rng.normal(0, 0.4, (5, 5))
    raw = rng.normal(size=(5, 16))
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    return s, unit @ unit.T


def _spill(m: np.ndarray) -> float:
    """The largest spill-over, row and column, as the calibration bounds it."""
    return max(abs(m[k, j]) / min(m[k, k], m[j, j]) for k in range(5) for j in range(5) if j != k)


def test_bounded_mixing_keeps_cross_talk_within_rho() -> None:
    from agents.steering.calibrate import bounded_mixing, predicted

    s, gram = _cross_talk_case()
    assert _spill(s) > 0.5
    for rho in (0.2, 0.5):
        mix = bounded_mixing([s] * 5, [gram] * 5, rho)
        m = predicted([s] * 5, mix)
        assert (np.diag(m) > 0).all() and _spill(m) <= rho + 1e-6
        np.testing.assert_allclose(np.einsum("ki,ij,kj->k", mix, gram, mix), 1.0, atol=1e-9)
    free = predicted([s] * 5, bounded_mixing([s] * 5, [gram] * 5, 100.0))
    assert (np.diag(free) >= np.diag(s) - 1e-9).all()  # the best unit-length own change


def test_bounded_mixing_keeps_cross_talk_within_rho_under_per_trait_gains() -> None:
    """A trait turned down by its gain gets the other traits' spill-over onto
    it bounded by its scaled own change: the fit knows the gain, while a fit
    made without it breaks the bound once the gain is applied."""
    from agents.steering.calibrate import bounded_mixing, predicted

    s, gram = _cross_talk_case()
    gains = {"C": 0.4, "N": 1.5}
    for rho in (0.3, 0.6):
        aware = predicted([s] * 5, bounded_mixing([s] * 5, [gram] * 5, rho, gains=gains), gains)
        blind = predicted([s] * 5, bounded_mixing([s] * 5, [gram] * 5, rho), gains)
        assert (np.diag(aware) > 0).all() and _spill(aware) <= rho + 1e-6
        assert _spill(blind) > rho + 0.05
    mix = bounded_mixing([s] * 5, [gram] * 5, 0.5)
    np.testing.assert_allclose(predicted([s] * 5, mix, {"C": 0.4})[2], 0.4 * (mix[2] @ s))
    with pytest.raises(ValueError, match="gains must be positive"):
        bounded_mixing([s] * 5, [gram] * 5, 0.5, gains={"C": 0.0})


def test_a_calibration_fitted_for_gains_serves_only_those_gains(monkeypatch) -> None:
    from agents.steering import calibrate

    key = dict(
        model_identity="m", data_hash="h", method="gradient", orthogonalize=False,
        layers_of={t: [21] for t in "EACON"},
    )  # fmt: skip
    plain = {**key, "mixing": np.eye(5).tolist()}
    fitted = {**key, "data_hash": "h2", "mixing": (2 * np.eye(5)).tolist(), "gains": {"C": 0.6}}
    monkeypatch.setattr(calibrate, "_calibrations", lambda: (plain, fitted))
    # an entry without gains was fitted on the plain directions: any gains use it
    assert calibrate.find_mixing(**key, gains={"C": 0.6}) is not None
    assert calibrate.find_mixing(**key) is not None
    two = {**key, "data_hash": "h2"}
    np.testing.assert_array_equal(calibrate.find_mixing(**two, gains={"C": 0.6}), 2 * np.eye(5))
    assert calibrate.find_mixing(**two, gains={"C": 0.6, "E": 1.0}) is not None  # 1 = absent
    assert calibrate.find_mixing(**two, gains={"C": 0.7}) is None
    assert calibrate.find_mixing(**two) is None


def test_calibration_is_found_only_for_matching_vectors(tmp_path, monkeypatch) -> None:
    from agents.steering import calibrate, extract

    entry = json.loads((DATA / "steering_calibration.json").read_text())["calibrations"][0]
    key = dict(
        model_identity=entry["model_identity"], data_hash=entry["data_hash"],
        method=entry["method"], orthogonalize=entry["orthogonalize"],
        layers_of=entry["layers_of"],
    )  # fmt: skip
    assert entry["data_hash"] == pairs_hash()  # made for the shipped pairs
    np.testing.assert_array_equal(calibrate.find_mixing(**key), np.array(entry["mixing"]))
    assert calibrate.find_mixing(**{**key, "model_identity": "other"}) is None
    assert calibrate.find_mixing(**{**key, "layers_of": {**key["layers_of"], "O": [25]}}) is None
    # vectors_for applies a matching mixing before placing, then the gains
    model, tok = tiny_model(), tiny_tokenizer()
    base = random_vectors((1, 2))
    monkeypatch.setattr(
        extract, "build_vectors", lambda m, t, layers, method, pairs: base.select(layers)
    )
    mix = np.eye(5)
    mix[0, 1] = 1.0  # E becomes E + A, renormalised
    monkeypatch.setattr(extract, "find_mixing", lambda **kw: mix)
    kw = dict(storage_root=tmp_path, model_name="tiny", model_identity="abc", layers=[1])
    v, path = vectors_for(
        model, tok, **kw, trait_layers={"O": [2]}, calibrated=True, gains={"N": 2}
    )
    want = torch.nn.functional.normalize(base.directions[0, 0] + base.directions[0, 1], dim=0)
    torch.testing.assert_close(v.directions[0, 0], want)
    torch.testing.assert_close(v.directions[1, 3], base.directions[1, 3])  # O: identity row
    assert float(v.directions[0, 4].norm()) == pytest.approx(2.0)
    assert not v.directions[1, 0].any()  # E only at its own layer
    assert "mixing" in SteeringVectors.load(path).meta
    plain, path2 = vectors_for(model, tok, **kw, trait_layers={"O": [2]})
    assert path2 != path and torch.equal(plain.directions[0, 0], base.directions[0, 0])


def test_sweep_calibration_predicts_the_mixed_cross_talk(monkeypatch) -> None:
    """On a tiny model at a small strength steering is close to linear, so the
    mixed directions' measured cross-talk is what the calibration predicted."""
    import agents.steering.sweep as sw

    model, tok = tiny_model(), tiny_tokenizer()
    pairs = tuple(p for p in load_pairs() if p.continuation.startswith("Tomorrow"))
    monkeypatch.setattr(sw, "pair_set", lambda name: pairs)
    monkeypatch.setattr(sw, "SPLIT", _small_dev(per_key=4))
    sweep = sw.Sweep(model, tok, n_random=3)
    s = sw.Setting(layers=(1,), trait_layers={"O": (2,)}, strength=0.02)
    entry = sweep.calibrate(s, rho=0.3)
    assert set(entry["dev_matrices"]) == {"1", "2"} and entry["layers_of"]["O"] == [2]
    mixed = sw.replace(s, mixing=tuple(map(tuple, entry["mixing"])))
    measured = sweep.matrix(mixed)
    np.testing.assert_allclose(measured, entry["predicted"], atol=0.05 * np.abs(measured).max())


def test_valence_axis_and_its_removal() -> None:
    """The valence axis is what changes when the same contrast is framed the
    other way round; `without` takes it out of every direction."""
    from agents.steering.data import ContrastivePair
    from agents.steering.extract import valence_directions

    g = torch.Generator().manual_seed(5)
    hidden = 24
    u = torch.nn.functional.normalize(torch.randn(hidden, generator=g), dim=0)
    pairs, rows = [], []
    for t, trait in enumerate(TRAITS):
        for framing, sign in (("desirable_high", 1.0), ("desirable_low", -1.0)):
            for _ in range(4):
                pairs.append(
                    ContrastivePair(
                        trait=trait, high="h", low="l", user="u", continuation="c", framing=framing
                    )  # fmt: skip
                )
                axis = torch.zeros(hidden)
                axis[t] = 1.0
                rows.append(axis + sign * 0.8 * u + 0.05 * torch.randn(hidden, generator=g))
    diffs = torch.stack(rows)[:, None]  # (P, 1, H)
    axis = valence_directions(diffs, pairs)
    assert float(axis[0] @ u) > 0.98
    v = SteeringVectors(
        layers=(0,), directions=torch.nn.functional.normalize(torch.randn(1, 5, hidden), dim=-1),
        norms=torch.ones(1),
    )  # fmt: skip
    gone = v.without(axis, 1.0)
    assert torch.allclose(gone.directions[0] @ axis[0], torch.zeros(5), atol=1e-6)
    torch.testing.assert_close(gone.directions.norm(dim=-1), torch.ones(1, 5))
    half = v.without(axis, 0.5).directions[0] @ axis[0]
    assert (half.abs() < (v.directions[0] @ axis[0]).abs()).all()


@pytest.mark.parametrize(
    "bad, says",
    [
        (["--per-trait", "E=21", "A=21", "C=21", "O=26", "X=1"], "--per-trait takes"),
        (["--traits", "NZ"], "--traits takes"),
        (["--calibration", "no-such-calibration.json"], "no-such-calibration.json"),
        (["--pairs", "no-such-pairs.json"], "no-such-pairs.json"),
        (["--pairs", "{tmp}/kind.json"], "unknown pair kind 'other'"),
        (["--pairs", "{tmp}/system.json"], "system turns are its high and low"),
        (["--method", "gradient"], "method gradient needs statement pairs"),
    ],
)
def test_by_key_script_refuses_bad_arguments_in_one_line(tmp_path, capsys, bad, says) -> None:
    """scripts/steering_by_key.py: exit 2 and one line naming the argument, before any model loads."""
    import runpy

    pair = {"trait": "N", "high": "a", "low": "b", "user": "u", "continuation": ""}
    for name, extra in (("kind", {"kind": "other"}), ("system", {"system": "s"})):
        (tmp_path / f"{name}.json").write_text(json.dumps({"pairs": [{**pair, **extra}]}))
    bad = [x.replace("{tmp}", str(tmp_path)) for x in bad]

    main = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "steering_by_key.py"))["main"]
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "out.json"), *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and "Traceback" not in "\n".join(err)


def test_item_effects_add_up_to_the_reported_effects(monkeypatch) -> None:
    """The per-statement changes are the report's own numbers taken apart: a
    trait's keyed means of them give back its effect and its controls."""
    import agents.steering.sweep as sw

    model, tok = tiny_model(), tiny_tokenizer()
    q = _small_dev()
    v = random_vectors((1, 2)).for_traits({"O": [2]})
    rep = evaluate_steering(
        model, tok, v, None, 0.1, n_random=5, fluency=False, coefs=(-1, 0, 1), questionnaire=q
    )
    items = rep.items
    assert items is not None and items.random.shape == (5, 30)
    for t in range(5):
        high, low = (items.traits == t) & (items.keys > 0), (items.traits == t) & (items.keys < 0)
        assert items.own[high].mean() - items.own[low].mean() == pytest.approx(rep.effects[t])
        keyed = items.random[:, high].mean(axis=1) - items.random[:, low].mean(axis=1)
        np.testing.assert_allclose(keyed, rep.random_effects[:, t], atol=1e-9)
    ci = rep.ratio_ci_items
    assert (ci[:, 0] <= ci[:, 1]).all() and rep.to_dict()["ratio_ci_items"] is not None
    # a sweep's reused controls carry the same per-statement changes
    monkeypatch.setattr(sw, "SPLIT", q)
    _, per_item = sw.Sweep(model, tok, n_random=5).controls(v, 0.1)
    np.testing.assert_allclose(per_item, items.random, atol=1e-6)
    # controls passed in without their statements: no item interval, not a wrong one
    reused = evaluate_steering(
        model, tok, v, None, 0.1, fluency=False, coefs=(-1, 0, 1), questionnaire=q,
        random_effects=rep.random_effects,
    )  # fmt: skip
    assert reused.items is None and np.isnan(reused.ratio_ci_items).all()
    assert reused.to_dict()["ratio_ci_items"] is None


def _items(own_sd: float, rng: np.random.Generator, n_items: int = 24, n: int = 100):
    """Statements whose own changes scatter by `own_sd` around +-0.5 (keyed),
    with controls shared by all statements plus a little statement noise."""
    traits = np.repeat(np.arange(5), n_items)
    keys = np.tile(np.r_[np.ones(n_items // 2), -np.ones(n_items // 2)], 5)
    own = 0.5 * keys + rng.normal(0, own_sd, len(keys))
    rand = rng.normal(0, 0.2, (n, 1)) * keys[None] + rng.normal(0, 0.05, (n, len(keys)))
    return own, rand, traits, keys


def test_item_resampling_widens_the_interval_when_statements_disagree() -> None:
    from agents.steering.item_resampling import item_resampled_ratio_ci

    rng = np.random.default_rng(3)
    kw = {"n_boot": 2000, "level": 0.95}
    agree = item_resampled_ratio_ci(*_items(0.01, rng), **kw)
    disagree = item_resampled_ratio_ci(*_items(1.0, rng), **kw)
    assert (np.diff(disagree, axis=1) > 2 * np.diff(agree, axis=1)).all()
    assert (disagree[:, 0] < agree[:, 0]).all()
    # statements that agree: close to the controls-only interval of the same numbers
    own, rand, traits, keys = _items(0.0, np.random.default_rng(4))
    rep = _report(np.full(5, 1.0), rand[:, ::24] - rand[:, 12::24])
    only_items = item_resampled_ratio_ci(own, rand, traits, keys, **kw)
    np.testing.assert_allclose(only_items, rep.ratio_ci, rtol=0.1)
    # statements that agree on the steering but each add noise of their own under
    # the controls: repeats in a resample must not inflate the spread (uncorrected,
    # a mean over n draws with replacement carries about twice the noise of one
    # over n distinct statements: the interval sat about 20% low)
    own, _, traits, keys = _items(0.0, np.random.default_rng(5))
    rng = np.random.default_rng(6)
    noisy = rng.normal(0, 0.2, (100, 1)) * keys[None] + rng.normal(0, 1.0, (100, len(keys)))
    keyed = np.stack(
        [noisy[:, (traits == t) & (keys > 0)].mean(1) - noisy[:, (traits == t) & (keys < 0)].mean(1)
         for t in range(5)], axis=1,
    )  # fmt: skip
    controls_only = _report(np.full(5, 1.0), keyed).ratio_ci
    both = item_resampled_ratio_ci(own, noisy, traits, keys, **kw)
    np.testing.assert_allclose(both.mean(axis=1), controls_only.mean(axis=1), rtol=0.08)
    assert (both[:, 0] > 0.85 * controls_only[:, 0]).all()
    # seeded, and undefined without both keys or enough controls
    assert np.array_equal(only_items, item_resampled_ratio_ci(own, rand, traits, keys, **kw))
    one_key = item_resampled_ratio_ci(own, rand, traits, np.ones_like(keys), **kw)
    assert np.isnan(one_key).all()
    assert np.isnan(item_resampled_ratio_ci(own, rand[:2], traits, keys, **kw)).all()


@pytest.mark.parametrize(
    "tensors,match",
    [
        ({"directions": torch.zeros(2, 4, 8), "norms": torch.ones(2)}, r"directions must be"),
        (
            {
                "layers": torch.tensor([2, 1]),
                "directions": torch.ones(2, 5, 8),
                "norms": torch.ones(2),
            },
            "unique and ascending",
        ),
        ({"layers": torch.tensor([-1])}, "negative layer -1"),
        ({"layers": torch.tensor([2.7])}, "1-D integer tensor"),
        ({"directions": torch.full((1, 5, 8), float("nan"))}, "non-finite"),
        ({"norms": torch.tensor([float("inf")])}, "non-finite"),
        ({"norms": torch.tensor([0.0])}, "norms must be positive"),
        ({"meta": {"trait_gains": "C=abc"}}, "trait_gains tag"),
        ({"meta": {"trait_gains": "X=2"}}, "trait_gains tag"),
        ({"meta": {"trait_gains": "C=0"}}, "trait_gains tag"),
    ],
)
def test_a_malformed_vectors_file_is_one_line(tmp_path, tensors, match) -> None:
    """Hand-made or damaged files: a traceback (bad shapes, layer order), NaN
    steering (non-finite values) or a truncated layer (2.7 -> 2) before."""
    from safetensors.torch import save_file

    meta = {"traits": "EACON", **tensors.pop("meta", {})}
    parts = {
        "directions": torch.ones(1, 5, 8),
        "norms": torch.ones(1),
        "layers": torch.tensor([2]),
        **tensors,
    }
    path = tmp_path / "v.safetensors"
    save_file(parts, str(path), metadata=meta)
    with pytest.raises(ModelError, match=match) as err:
        SteeringVectors.load(path)
    assert str(err.value).startswith(f"steering.vectors {str(path)!r}")
    assert "\n" not in str(err.value)


def test_gains_compose_and_are_undone_exactly() -> None:
    """scaled records the total gain; with_gains sets the gains outright (by
    the ratio to what is recorded) and is a no-op when they already hold."""
    v = random_vectors((1, 2))
    twice = v.scaled({"C": 0.5}).scaled({"C": 0.5, "E": 2.0})
    assert twice.recorded_gains() == {"C": 0.25, "E": 2.0}
    torch.testing.assert_close(twice.directions.norm(dim=-1)[0], torch.tensor([2, 1, 0.25, 1, 1.0]))
    back = twice.with_gains({})
    torch.testing.assert_close(back.directions, v.directions)
    assert back.recorded_gains() == {} and "trait_gains" not in back.meta
    assert twice.with_gains({"C": 0.25, "E": 2.0}) is twice
