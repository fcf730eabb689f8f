"""Method `gradient` (agents.steering.gradient) on a tiny random Llama: each
statement pair's gradient is the derivative of its likelihood contrast, batch
and padding do not change it, and build_vectors reads statement pairs by it
and persona pairs as mean_diff does."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_model import tiny_model, tiny_tokenizer  # noqa: E402

from agents.steering import load_pairs  # noqa: E402
from agents.steering.data import ContrastivePair  # noqa: E402
from agents.steering.extract import build_vectors  # noqa: E402
from agents.steering.gradient import pair_gradients, statement_sequences  # noqa: E402
from agents.steering.hooks import decoder_layers  # noqa: E402
from agents.typing import TRAITS  # noqa: E402

STATEMENTS = [
    ("I panic easily.", "I stay calm."),
    ("I brood over every small mistake for days.", "I let mistakes go."),
    ("I get upset when plans change.", "I take changes of plan in my stride."),
]


def statement_pair(high: str, low: str, trait: str = "N") -> ContrastivePair:
    return ContrastivePair(
        trait=trait, kind="statement", system="You are a person.", user="Tell me about yourself.",
        continuation="", high=high, low=low, framing="desirable_low",
    )  # fmt: skip


def contrast(model, tok, pair, layer: int, delta: torch.Tensor) -> float:
    """Mean token log-probability of the high statement minus the low one's,
    `delta` added at every position of block `layer`'s output; written
    independently of the module (one unpadded sequence at a time)."""
    out = 0.0
    for (ids, start), sign in zip(statement_sequences(tok, pair), (1, -1), strict=True):
        hook = decoder_layers(model)[layer].register_forward_hook(
            lambda m, a, o: (o[0] + delta, *o[1:]) if isinstance(o, tuple) else o + delta
        )
        try:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
        finally:
            hook.remove()
        logp = torch.log_softmax(logits.double(), -1)
        out += sign * float(
            torch.stack([logp[j - 1, ids[j]] for j in range(start, len(ids))]).mean()
        )
    return out


def test_a_pair_gradient_is_the_derivative_of_its_likelihood_contrast() -> None:
    model, tok = tiny_model().double(), tiny_tokenizer()
    pair = statement_pair(*STATEMENTS[1])
    (hi, start), (lo, _) = statement_sequences(tok, pair)
    assert tok.decode(hi[start:]) == pair.high and tok.decode(lo[start:]) == pair.low
    grads = pair_gradients(model, tok, [1, 2], [pair])  # (1, 2, H)
    assert grads.shape == (1, 2, model.config.hidden_size)
    g = torch.Generator().manual_seed(0)
    for li, layer in enumerate((1, 2)):
        u = torch.nn.functional.normalize(torch.randn(model.config.hidden_size, generator=g), dim=0)
        eps = 1e-2  # RMSNorm computes in float32 even in a double model: no smaller
        want = (contrast(model, tok, pair, layer, eps * u.double()) - contrast(
            model, tok, pair, layer, -eps * u.double()
        )) / (2 * eps)  # fmt: skip
        got = float(grads[0, li] @ u)
        assert abs(want) > 1e-3  # a direction that moves the contrast at all
        assert got == pytest.approx(want, rel=2e-3)
    # the model's parameters are left as they were, gradients and all
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_pair_gradients_do_not_depend_on_batching_or_padding() -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    pairs = [statement_pair(h, lo) for h, lo in STATEMENTS]  # different lengths: padding
    one_by_one = pair_gradients(model, tok, [1], pairs, batch_size=1)
    together = pair_gradients(model, tok, [1], pairs, batch_size=3)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(one_by_one[0], one_by_one[1])  # each pair its own


def test_method_gradient_reads_statement_pairs_and_persona_pairs_as_mean_diff() -> None:
    model, tok = tiny_model(), tiny_tokenizer()
    statements = [statement_pair(h, lo) for h, lo in STATEMENTS]
    pairs = [p for p in load_pairs() if p.trait != "N"] + statements
    v = build_vectors(model, tok, [1], pairs=pairs, method="gradient")
    want = torch.nn.functional.normalize(
        pair_gradients(model, tok, [1], statements).mean(0), dim=-1
    )
    torch.testing.assert_close(v.directions[:, TRAITS.index("N")], want, atol=1e-5, rtol=0)
    persona = build_vectors(model, tok, [1], pairs=pairs, method="mean_diff")
    for t in "EACO":  # persona pairs hold no statements: their activation difference
        k = TRAITS.index(t)
        torch.testing.assert_close(v.directions[:, k], persona.directions[:, k])
    assert v.meta["method"] == "gradient"
    # a statement pair's gradient is not its activation difference
    assert float(v.directions[0, 4] @ persona.directions[0, 4]) < 0.99

    with pytest.raises(ValueError, match="needs statement pairs"):
        build_vectors(model, tok, [1], pairs=load_pairs(), method="gradient")
    with pytest.raises(ValueError, match="trait N has both persona and statement pairs"):
        build_vectors(model, tok, [1], pairs=[*load_pairs(), *statements], method="gradient")


def test_steering_sweep_refuses_a_trait_of_both_kinds_before_the_model(tmp_path, capsys) -> None:
    from orchestrator.analysis import steering_sweep

    both = [*load_pairs(), statement_pair(*STATEMENTS[0])]
    path = tmp_path / "both.json"
    path.write_text(json.dumps({"pairs": [p.hashed() | {"kind": p.kind} for p in both]}))
    argv = ["--pairs", str(path), "--methods", "gradient", "--layer-sets", "21"]
    with pytest.raises(SystemExit) as info:
        steering_sweep.main([*argv, "--out", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and "trait N has both persona and statement pairs" in err[-1]
    assert not (tmp_path / "o.jsonl").exists()


def test_a_run_builds_its_vectors_from_the_pairs_its_config_names(tmp_path) -> None:
    """steering.pairs + method gradient through the HF backend: the vectors are
    built from that file, read by gradient, and cached under its hash."""
    from agents.hf_backend import build_hf_backend
    from agents.random_models import save_tiny
    from agents.steering.data import pairs_hash
    from orchestrator.assemble import backend_spec
    from orchestrator.config_schema import RunConfig

    statements = [statement_pair(h, lo, trait=t) for t in TRAITS for h, lo in STATEMENTS[:2]]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"pairs": [p.hashed() for p in statements]}))
    folder = save_tiny(tmp_path / "tiny")
    cfg = RunConfig.model_validate({
        "model": {"name_or_path": str(folder), "device": "cpu"},
        "steering": {"layers": [2], "trait_layers": {}, "method": "gradient", "pairs": str(path)},
        "storage": {"root": str(tmp_path / "storage")},
    })  # fmt: skip
    backend = build_hf_backend(backend_spec(cfg))
    vf = backend.describe()["steering"]["vectors_file"]
    assert pairs_hash(tuple(statements)) in vf and "gradient" in vf
    model, tok = backend.lm.model, backend.lm.tokenizer
    want = build_vectors(model, tok, [2], pairs=statements, method="gradient")
    want = want.scaled(cfg.steering.trait_gains)  # the default gains apply too (C at 0.6)
    assert cfg.steering.trait_gains
    torch.testing.assert_close(backend.vectors.directions, want.directions)


@pytest.mark.parametrize(
    ("steering", "says"),
    [
        ({"pairs": "shipped"}, "steering.pairs 'shipped': method gradient needs statement pairs"),
        ({"pairs": "no_such_set"}, "steering.pairs 'no_such_set': no_such_set: cannot read pairs"),
        ({"pairs": "{trait}"}, "no pairs for trait A"),
        ({"pairs": "{deep}"}, "nested too deeply"),
    ],
)
def test_bad_steering_pairs_are_one_line_before_the_model_loads(tmp_path, steering, says) -> None:
    from agents.errors import ModelError
    from agents.hf_backend import build_hf_backend
    from agents.mock_backend import MockBackend
    from orchestrator.assemble import backend_spec
    from orchestrator.config_schema import RunConfig

    (tmp_path / "trait.json").write_text(
        json.dumps({"pairs": [statement_pair(*STATEMENTS[0], trait="E").hashed()]})
    )
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    steering = {
        k: v.format(trait=tmp_path / "trait.json", deep=tmp_path / "deep.json")
        for k, v in steering.items()
    }
    cfg = RunConfig.model_validate({
        "model": {"name_or_path": str(tmp_path / "never-loaded")},
        "steering": steering, "storage": {"root": str(tmp_path / "s")},
    })  # fmt: skip
    for build in (
        lambda: build_hf_backend(backend_spec(cfg)),
        lambda: MockBackend(steering=cfg.steering),
    ):
        with pytest.raises(ModelError) as err:  # not "no such model folder": checked first
            build()
        assert says in str(err.value) and "\n" not in str(err.value)
