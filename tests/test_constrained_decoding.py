"""Grammar-constrained decoding on a tiny random Llama (the hardest case: its
unconstrained text is noise): every row stays inside its grammar, the mask
never changes a greedy token that the grammar allows, batching changes
nothing, and rows without a grammar decode as before."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
llguidance = pytest.importorskip("llguidance")

from tiny_model import tiny_model, tiny_tokenizer  # noqa: E402

from agents.actions import parse  # noqa: E402
from agents.config import InferenceConfig, SteeringConfig  # noqa: E402
from agents.grammar import DEFAULT_LOCATIONS, ReflectionGrammar, action_grammar  # noqa: E402
from agents.hf_backend import HFBackend  # noqa: E402
from agents.model_loading import LoadedModel  # noqa: E402
from agents.reflection import parse_reflection  # noqa: E402
from agents.steering.vectors import SteeringVectors  # noqa: E402
from agents.typing import Message, Request, Traits  # noqa: E402

ACTIONS = action_grammar(DEFAULT_LOCATIONS)
REFLECTION = ReflectionGrammar()
LM = LoadedModel(
    model=tiny_model(),
    tokenizer=tiny_tokenizer(),
    name_or_path="tiny",
    resolved_path="tiny",
    identity="tiny",
    dtype="float32",
    device="cpu",
    quantized=False,
)
TRAITS = [Traits(E=1.0, N=-0.5), Traits(), Traits(A=-1.0, O=0.7), Traits(C=0.4, E=-0.8)]


def vectors() -> SteeringVectors:
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(2, 5, 64, generator=g), dim=-1)
    return SteeringVectors(layers=(1, 2), directions=d, norms=torch.full((2,), 8.0))


def ascii_model() -> LoadedModel:
    """The tiny model with its output rows zeroed for every token that is not a
    printable ASCII byte: its greedy text is then plain characters (a one-line
    grammar allows long stretches of it), where the random model's own is
    mostly bytes that are no UTF-8 at all."""
    model, tok = tiny_model(), tiny_tokenizer()
    keep = torch.tensor(
        [len(t := tok.decode([i])) == 1 and " " <= t <= "~" for i in range(model.config.vocab_size)]
    )
    with torch.no_grad():
        model.lm_head.weight[~keep] = 0.0
    return LoadedModel(
        model=model,
        tokenizer=tok,
        name_or_path="tiny-ascii",
        resolved_path="tiny-ascii",
        identity="tiny-ascii",
        dtype="float32",
        device="cpu",
        quantized=False,
    )


def backend(
    *, constrained: bool, temperature: float, steering: bool = False, lm: LoadedModel = LM
) -> HFBackend:
    return HFBackend(
        lm,
        inference=InferenceConfig(temperature=temperature, top_p=0.9, constrained=constrained),
        steering=SteeringConfig(enabled=steering, layers=[1, 2], strength=2.0, trait_layers={}),
        vectors=vectors() if steering else None,
    )


def requests(n: int = 12, grammars=(ACTIONS, REFLECTION), budget: int = 24) -> list[Request]:
    return [
        Request(
            prompt=(Message(role="user", content=f"Agent {i}: what do you do now?"),),
            traits=TRAITS[i % len(TRAITS)],
            max_new_tokens=budget + (i % 3) * 4,
            seed=100 + i,
            kind="reflection" if grammars[i % len(grammars)] is REFLECTION else "solo",
            grammar=grammars[i % len(grammars)],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("steering", [False, True])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_every_row_is_inside_its_grammar(temperature: float, steering: bool) -> None:
    reqs = requests(budget=40)  # room to finish: a budget cut may stop a row mid-word
    gens = backend(constrained=True, temperature=temperature, steering=steering).generate(reqs)
    for req, gen in zip(reqs, gens, strict=True):
        assert req.grammar.matches(gen.text), gen.text
        if req.grammar is ACTIONS:
            assert parse(gen.text, DEFAULT_LOCATIONS).parse_ok
        else:
            _, plan, ok = parse_reflection(gen.text)
            assert ok and gen.text.startswith("PLAN: I will ")
    # the free model, on the same requests, is nowhere near the grammar
    free = backend(constrained=False, temperature=temperature, steering=steering).generate(reqs)
    assert sum(r.grammar.matches(g.text) for r, g in zip(reqs, free, strict=True)) == 0


def _generated_ids(backend: HFBackend, reqs: list[Request]) -> list[list[int]]:
    """Each row's generated token ids, as the backend hands them to its tokenizer."""
    seen: list[list[int]] = []
    decode = backend.tokenizer.decode

    def spy(ids, **kw):
        seen.append(list(ids))
        return decode(ids, **kw)

    backend.tokenizer.decode = spy
    try:
        backend.generate(reqs)
    finally:
        backend.tokenizer.decode = decode
    return seen


def _allowed_prefix(backend: HFBackend, grammar, ids: list[int]) -> int:
    """How many of `ids` a fresh matcher of `grammar` accepts in a row."""
    matcher = backend.grammars.matcher(grammar)
    return matcher.validate_tokens(ids)


@pytest.mark.parametrize("steering", [False, True])
def test_greedy_tokens_the_grammar_allows_are_kept(steering: bool) -> None:
    """Where the unconstrained greedy token is allowed, the constrained greedy
    decode picks it too: both agree up to the first disallowed token, and
    differ there. A permissive one-line grammar makes the agreement long."""

    class OneLine:
        def lark(self) -> str:
            return 'start: /[^\\n]+/ "\\n"?\n'

        def matches(self, text: str) -> bool:
            return "\n" not in text.rstrip("\n")

    grammars = (OneLine(), ACTIONS)
    reqs = requests(n=8, grammars=grammars, budget=16)
    lm = ascii_model()
    free = backend(constrained=False, temperature=0.0, steering=steering, lm=lm)
    held = backend(constrained=True, temperature=0.0, steering=steering, lm=lm)
    agreed = 0
    free_ids, held_ids = _generated_ids(free, reqs), _generated_ids(held, reqs)
    for req, f_ids, c_ids in zip(reqs, free_ids, held_ids, strict=True):
        k = _allowed_prefix(held, req.grammar, f_ids)
        assert c_ids[:k] == f_ids[:k]
        if k < len(f_ids) and len(c_ids) > k:
            assert c_ids[k] != f_ids[k]  # the first disallowed token was replaced
        agreed += k
    assert agreed >= 20  # the comparison is not vacuous


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_batched_equals_one_at_a_time(temperature: float) -> None:
    b = backend(constrained=True, temperature=temperature, steering=True)
    reqs = requests(n=6)
    batched = b.generate(reqs)
    alone = [b.generate([r])[0] for r in reqs]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in alone]


def test_rows_without_grammar_decode_as_before() -> None:
    reqs = requests(n=6)
    free_reqs = [
        Request(
            prompt=r.prompt,
            traits=r.traits,
            max_new_tokens=r.max_new_tokens,
            seed=r.seed,
            kind=r.kind,
            grammar=None if i % 2 else r.grammar,
        )
        for i, r in enumerate(reqs)
    ]
    mixed = backend(constrained=True, temperature=0.9).generate(free_reqs)
    plain = backend(constrained=False, temperature=0.9).generate(free_reqs)
    for i, (m, p) in enumerate(zip(mixed, plain, strict=True)):
        if i % 2:
            assert m.text == p.text and m.completion_tokens == p.completion_tokens
        else:
            assert free_reqs[i].grammar.matches(m.text)


def test_describe_names_the_constraint() -> None:
    on = backend(constrained=True, temperature=0.0).describe()
    off = backend(constrained=False, temperature=0.0).describe()
    assert on["constrained"] is True and on["grammar_library"].startswith("llguidance")
    assert off["constrained"] is False and off["grammar_library"] is None


def test_describe_without_a_module_version(monkeypatch) -> None:
    """llguidance releases without a module __version__ (1.6.1) still build the
    compiler; the version comes from the package's metadata."""
    import llguidance

    monkeypatch.delattr(llguidance, "__version__", raising=False)
    on = backend(constrained=True, temperature=0.0).describe()
    assert on["grammar_library"].startswith("llguidance ")
    assert on["grammar_library"] != "llguidance unknown version"


def test_prefix_mask_cache_gives_the_masks_llguidance_computes() -> None:
    """Rows that share a grammar and a prefix get one computed mask (copied to
    the others, kept across decodes up to PREFIX_TOKENS tokens): every row's
    mask, step by step along random walks, equals its matcher's own."""
    import random

    import numpy as np

    from agents.constraint import PREFIX_TOKENS, GrammarCompiler

    tok = tiny_tokenizer()
    vocab = len(tok)
    compiler = GrammarCompiler(tok, vocab_size=vocab, eos_ids=[tok.eos_token_id])
    grammars = [action_grammar(DEFAULT_LOCATIONS), ReflectionGrammar()] * 4
    shifts = torch.arange(32, dtype=torch.int32)
    for decode in range(3):  # the later decodes start from cached prefixes
        rng = random.Random(decode)
        constraint = compiler.constraint(grammars)
        mask = compiler.allocate(len(grammars))
        active = list(range(len(grammars)))
        for step in range(PREFIX_TOKENS + 3):
            constraint.fill(mask, active)
            tokens = []
            for b in range(len(grammars)):
                if b not in active:
                    tokens.append(0)
                    continue
                own = np.frombuffer(constraint.matchers[b].compute_bitmask(), dtype=np.int32)
                assert np.array_equal(mask.numpy()[b], own), (decode, b)
                allowed = ((mask[b].unsqueeze(-1) >> shifts) & 1).view(-1)[:vocab].nonzero()
                # two rows of each grammar take the same token: shared prefixes
                pick = random.Random(f"{decode}-{b % 4}-{step}").randrange(len(allowed))
                tokens.append(int(allowed[pick if b % 2 == 0 else rng.randrange(len(allowed))]))
            done = constraint.consume(tokens, active)
            active = [b for b in active if b not in done]
            if not active:
                break
    # rows 0 and 4 (and 2 and 6) walk alike: later ones read the first one's mask
    assert compiler.prefix_masks.hits >= 3 * PREFIX_TOKENS and len(compiler.prefix_masks) > 0


def test_prefix_mask_cache_is_bounded() -> None:
    import numpy as np

    from agents.constraint import PrefixMasks

    cache = PrefixMasks(2)
    for i in range(3):
        cache.put(("g", (i,)), np.full(4, i, dtype=np.int32))
    assert len(cache) == 2 and cache.get(("g", (0,))) is None
    assert cache.get(("g", (2,))) is not None and cache.hits == 1 and cache.misses == 1
