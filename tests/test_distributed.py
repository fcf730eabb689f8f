"""Distributed runs on CPU (gloo): the request split, data mode's dumps equal
one process's (mock backend and the tiny random model, fp32), tensor mode
reproducible, a failing rank ends the run with one clear error and no hang,
Ctrl+C then --resume on another world size equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from agents.typing import Message, Request, Traits
from orchestrator.distributed.partition import request_cost, split, split_requests
from orchestrator.distributed.ranks import rank_env
from tests.conftest import REPO
from tests.helpers import cli, comparable_dumps

RUN_TIMEOUT = 300  # seconds: a hung rank fails the test instead of stalling CI

MOCK = """\
run_id: {run_id}
seed: 11
ticks: {ticks}
population: {{agents: 12}}
max_events_per_tick: 6
model: {{backend: mock}}
storage: {{root: {root}}}
distributed: {{enabled: {enabled}, world_size: {world}, timeout_s: 120}}
"""

TINY = """\
run_id: {run_id}
seed: 5
ticks: 2
population: {{agents: 4}}
max_events_per_tick: 3
model: {{backend: hf, name_or_path: {model}, dtype: float32, device: cpu}}
inference: {{max_new_tokens: 6, max_prompt_tokens: 192}}
steering: {{layers: [1], trait_layers: {{}}, strength: 0.5}}
memory: {{embedder: hashing, importance: heuristic}}
optimization: {{reflect_every_n_ticks: 2}}
storage: {{root: {root}}}
distributed: {{enabled: {enabled}, world_size: {world}, mode: {mode}, timeout_s: 120}}
"""


def _request(prompt: str, tokens: int) -> Request:
    return Request(
        prompt=(Message(role="user", content=prompt),),
        traits=Traits(),
        max_new_tokens=tokens,
        seed=1,
    )


def _same_run(a: Path, b: Path) -> None:
    """Everything both runs wrote is equal, except perf.parquet (per-rank
    columns) and the config's distributed section."""
    da, db = comparable_dumps(a), comparable_dumps(b)
    for d in (da, db):
        d.pop("perf.parquet")
        d["manifest.config"].pop("distributed")
    assert da.keys() == db.keys()
    for key in da:
        if isinstance(da[key], pd.DataFrame):
            pd.testing.assert_frame_equal(da[key], db[key], obj=key)
        else:
            assert da[key] == db[key], key


def _run(config: Path, *args: str) -> subprocess.CompletedProcess:
    return cli(str(config), *args, timeout=RUN_TIMEOUT)


# -- the split -------------------------------------------------------------------


def test_split_covers_every_request_once_and_balances_cost() -> None:
    costs = [1.0, 9.0, 3.0, 3.0, 8.0, 2.0, 5.0, 5.0, 1.0]
    groups = split(costs, 3)
    assert sorted(i for g in groups for i in g) == list(range(len(costs)))
    assert all(g == sorted(g) for g in groups)
    loads = [sum(costs[i] for i in g) for g in groups]
    assert max(loads) - min(loads) <= max(costs)  # longest-first greedy bound
    assert split(costs, 3) == groups  # deterministic


def test_split_weighs_budgets_and_prompts() -> None:
    short, long = _request("hi", 8), _request("x" * 400, 8)
    assert request_cost(long) > request_cost(short)
    reqs = [_request("hi", 64)] + [_request("hi", 8)] * 8
    groups = split_requests(reqs, 2)
    assert len(groups[0]) == 1 or len(groups[1]) == 1  # the long budget shares its rank with none
    assert split([], 2) == [[], []]
    with pytest.raises(ValueError):
        split([1.0], 0)


def test_rank_env_reads_torchrun_variables() -> None:
    assert rank_env({}) is None
    env = rank_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 4, 1, 2)


class _InlineChannel:
    """Two ranks in one process: rank 1's ops are answered by `serve`'s own
    code (_answer) with its backend when rank 0 gathers."""

    rank, world_size = 0, 2

    def __init__(self, worker, mode: str) -> None:
        from agents.oom_backoff import OOMBackoff

        self.worker, self.mode, self.pending = OOMBackoff(worker), mode, None
        self.closed_clean: bool | None = None

    def scatter(self, ops):
        self.pending = ops[1]
        return ops[0]

    def gather(self, reply):
        from orchestrator.distributed.backend import _answer
        from orchestrator.distributed.messages import Reply

        op = self.pending
        if op.kind == "stop":
            return [reply]
        try:
            theirs = _answer(op, self.worker, 1, self.mode)
        except Exception as exc:
            theirs = Reply(rank=1, error=f"{type(exc).__name__}: {exc}")
        return [reply, theirs]

    def close(self, *, clean: bool = True) -> None:
        self.closed_clean = clean


def _rows(gens) -> list[tuple]:
    """What a generation says, without its timing."""
    return [(g.text, g.prompt_tokens, g.completion_tokens, g.steer) for g in gens]


def _requests(n: int) -> list[Request]:
    from orchestrator.benchmarks.workload import tick_requests

    return tick_requests(n, 16, seed=3)


def test_data_mode_puts_rows_back_in_request_order() -> None:
    from agents.mock_backend import MockBackend
    from orchestrator.distributed.backend import distributed_backend, take_rank_perf

    channel = _InlineChannel(MockBackend(), "data")
    backend = distributed_backend(MockBackend(), channel, mode="data")
    reqs = _requests(9)
    assert _rows(backend.generate(reqs)) == _rows(MockBackend().generate(reqs))
    assert backend.generate([]) == []
    perf = take_rank_perf(backend)
    assert perf["world_size"] == 2 and sum(perf["rank_requests"]) == 9
    assert min(perf["rank_requests"]) >= 3  # balanced, not all on one rank
    assert take_rank_perf(backend)["rank_requests"] == [0, 0]  # taken once per tick
    backend.close()
    assert channel.closed_clean is True


def test_a_worker_error_is_raised_by_rank_0_as_one_line() -> None:
    from agents.mock_backend import MockBackend
    from orchestrator.distributed.backend import distributed_backend
    from orchestrator.distributed.messages import DistributedError

    backend = distributed_backend(
        MockBackend(), _InlineChannel(_Failing(False), "data"), mode="data"
    )
    with pytest.raises(DistributedError, match="^rank 1 failed: RuntimeError: boom on this rank$"):
        backend.generate(_requests(4))


def test_tensor_mode_keeps_rank_0_rows_and_warns_on_a_mismatch(caplog) -> None:
    from agents.mock_backend import MockBackend
    from orchestrator.distributed.backend import distributed_backend

    reqs = _requests(4)
    same = distributed_backend(
        MockBackend(), _InlineChannel(MockBackend(), "tensor"), mode="tensor"
    )
    assert _rows(same.generate(reqs)) == _rows(MockBackend().generate(reqs))
    assert not [r for r in caplog.records if "different texts" in r.getMessage()]
    other = MockBackend(malformed_rate=1.0)  # another "rank" that writes other texts
    odd = distributed_backend(MockBackend(), _InlineChannel(other, "tensor"), mode="tensor")
    assert _rows(odd.generate(reqs)) == _rows(MockBackend().generate(reqs))
    assert len([r for r in caplog.records if "different texts" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("shape", "billions"),
    [
        ("llama-8b", 8.03),  # Llama-3.1-8B: 8.03 B parameters
        ("llama-70b", 70.55),  # Llama-3.1-70B: 70.55 B parameters
    ],
)
def test_model_size_from_config(tmp_path, shape, billions) -> None:
    """mode auto's 'does it fit one GPU' reads the size off config.json."""
    from orchestrator.benchmarks.distributed import shape_of
    from orchestrator.distributed.plan import model_bytes

    (tmp_path / "config.json").write_text(json.dumps(shape_of(shape)))
    size = model_bytes(tmp_path, "bfloat16")
    assert size == pytest.approx(2 * billions * 1e9, rel=0.01)
    assert model_bytes(tmp_path, "float32") == 2 * size
    assert model_bytes(tmp_path / "nowhere", "auto") is None


@pytest.mark.parametrize(
    ("shape", "model_type", "agents", "world", "tensor"),
    [
        ("llama-8b", "llama", 32, 2, True),  # the measured case: tensor 1.27x one GPU
        ("llama-8b", "llama", 64, 2, True),
        ("llama-8b", "llama", 65, 2, False),  # larger ticks: data mode scales
        ("llama-8b", "llama", 32, 3, False),  # 32 heads do not split over 3 ranks
        ("llama-8b", "gpt2", 32, 2, False),  # no fast step: tensor would run the eager loop
        ("llama-1b", "llama", 32, 2, False),  # too small: the collectives outweigh the saving
    ],
)
def test_auto_mode_picks_tensor_for_small_ticks(tmp_path, shape, model_type, agents, world, tensor):
    from orchestrator.benchmarks.distributed import shape_of
    from orchestrator.distributed.plan import tensor_pays_for_small_ticks

    (tmp_path / "config.json").write_text(json.dumps({**shape_of(shape), "model_type": model_type}))
    assert tensor_pays_for_small_ticks(tmp_path, "bfloat16", agents, world) is tensor


def test_tensor_mode_refuses_quantization() -> None:
    from pydantic import ValidationError

    from orchestrator.config_schema import RunConfig

    with pytest.raises(ValidationError, match="tensor parallelism splits the weights"):
        RunConfig.model_validate(
            {"distributed": {"mode": "tensor"}, "optimization": {"use_quantization": True}}
        )


def test_auto_world_size_without_gpus_runs_one_process(tmp_path, write_yaml) -> None:
    import torch

    if torch.cuda.device_count() > 1:
        pytest.skip("this machine has several GPUs")
    text = MOCK.format(run_id="solo", ticks=2, root=tmp_path, enabled="true", world=1)
    config = write_yaml("solo.yaml", text.replace("world_size: 1", "world_size: auto"))
    done = _run(config)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "running in one process" in line]
    assert len(said) == 1
    perf = pd.read_parquet(tmp_path / "dumps" / "solo" / "perf.parquet")
    assert (perf.world_size == 1).all()


# -- data mode: the same dumps as one process --------------------------------------


@pytest.mark.parametrize("world", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_data_mode_mock_equals_one_process(tmp_path, write_yaml, world) -> None:
    root = tmp_path / "st"
    one = write_yaml(
        "one.yaml", MOCK.format(run_id="one", ticks=5, root=root, enabled="false", world=1)
    )
    many = write_yaml(
        "many.yaml", MOCK.format(run_id="many", ticks=5, root=root, enabled="true", world=world)
    )
    for config in (one, many):
        done = _run(config)
        assert done.returncode == 0, done.stderr
    assert f"{world} ranks, data parallel" in done.stdout  # the view names them
    _same_run(root / "dumps" / "one", root / "dumps" / "many")
    perf = pd.read_parquet(root / "dumps" / "many" / "perf.parquet")
    assert (perf.world_size == world).all()
    assert [sum(r) for r in perf.rank_requests] == perf.requests.tolist()
    assert all(len(r) == world and min(r) > 0 for r in perf.rank_requests)
    manifest = json.loads((root / "dumps" / "many" / "manifest.json").read_text())
    assert manifest["model"]["distributed"] == {"world_size": world, "mode": "data"}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    from agents.random_models import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.slow
def test_data_mode_tiny_model_equals_one_process(tmp_path, write_yaml, tiny_folder) -> None:
    root = tmp_path / "st"
    fill = dict(model=tiny_folder, root=root, mode="data")
    one = write_yaml("one.yaml", TINY.format(run_id="one", enabled="false", world=1, **fill))
    two = write_yaml("two.yaml", TINY.format(run_id="two", enabled="true", world=2, **fill))
    for config in (one, two):
        done = _run(config)
        assert done.returncode == 0, done.stderr
    _same_run(root / "dumps" / "one", root / "dumps" / "two")


@pytest.mark.slow
def test_tensor_mode_runs_are_identical(tmp_path, write_yaml, tiny_folder) -> None:
    """transformers' tensor parallelism runs on CPU over gloo: two runs agree."""
    root = tmp_path / "st"
    fill = dict(model=tiny_folder, root=root, mode="tensor", enabled="true", world=2)
    for run_id in ("a", "b"):
        done = _run(write_yaml(f"{run_id}.yaml", TINY.format(run_id=run_id, **fill)))
        assert done.returncode == 0, done.stderr
    _same_run(root / "dumps" / "a", root / "dumps" / "b")
    manifest = json.loads((root / "dumps" / "a" / "manifest.json").read_text())
    assert manifest["model"]["distributed"]["mode"] == "tensor"
    assert manifest["model"]["steering"]["vectors_file"]  # built once, in lockstep


# -- failures ------------------------------------------------------------------------


class _Failing:
    """A worker's backend that raises on generate (or dies, with `hard`)."""

    name = "mock"

    def __init__(self, hard: bool) -> None:
        self.hard = hard

    def generate(self, requests):
        if self.hard:
            os._exit(3)  # a crash no exception handler sees
        raise RuntimeError("boom on this rank")

    def describe(self) -> dict:
        return {"backend": "mock"}

    def close(self) -> None:
        pass


def _failing_rank(hard: bool, out: str) -> None:
    """Rank 0 runs a mock simulation over a DistributedBackend; rank 1 fails."""
    from agents.mock_backend import MockBackend
    from orchestrator.config_loader import load_config
    from orchestrator.distributed.backend import distributed_backend, serve
    from orchestrator.distributed.ranks import Channel
    from orchestrator.errors import SteersimError
    from orchestrator.live_view import ConsoleView
    from orchestrator.runner import run_simulation

    env = rank_env()
    channel = Channel(env, timeout_s=60, use_cuda=False)
    if env.rank != 0:
        serve(_Failing(hard), channel, mode="data")
        return
    backend = distributed_backend(MockBackend(), channel, mode="data")
    resolved = load_config(Path(out).with_suffix(".yaml"))
    try:
        run_simulation(resolved, ConsoleView(live=False, no_color=True), backend=backend)
    except SteersimError as exc:
        Path(out).write_text(str(exc))
        raise SystemExit(2) from None


@pytest.mark.parametrize("hard", [False, True], ids=["raises", "dies"])
def test_a_failing_rank_ends_the_run(tmp_path, write_yaml, hard) -> None:
    from orchestrator.distributed.launch import launch

    out = tmp_path / "error.txt"
    write_yaml(
        "error.yaml", MOCK.format(run_id="f", ticks=5, root=tmp_path, enabled="true", world=2)
    )
    start = time.monotonic()
    code = launch(2, _failing_rank, (hard, str(out)))
    assert time.monotonic() - start < 120  # no hang: the launcher ends every rank
    assert code != 0
    manifest = json.loads((tmp_path / "dumps" / "f" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    if not hard:  # the worker's own error, as one line, from rank 0
        assert out.read_text() == "rank 1 failed: RuntimeError: boom on this rank"
        assert code == 2


# -- interrupt and resume on another world size ----------------------------------------


def test_ctrl_c_then_resume_on_another_world_size(tmp_path, write_yaml) -> None:
    root = tmp_path / "st"
    ticks = 60
    two = write_yaml(
        "two.yaml", MOCK.format(run_id="r", ticks=ticks, root=root, enabled="true", world=2)
    )
    one = write_yaml(
        "one.yaml", MOCK.format(run_id="ref", ticks=ticks, root=root, enabled="false", world=1)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", str(two)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    latest = root / "dumps" / "r" / "checkpoint" / "LATEST"
    deadline = time.monotonic() + RUN_TIMEOUT
    while not latest.exists() or json.loads(latest.read_text() or "{}").get("next_tick", 0) < 3:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C reaches the launcher and every rank
    _, err = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 130, err
    manifest = json.loads((root / "dumps" / "r" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert 3 <= manifest["ticks_completed"] < ticks
    # the same config on one process: the distributed section may change on resume
    done = cli("--resume", "r", str(one), timeout=RUN_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert _run(one).returncode == 0
    _same_run(root / "dumps" / "ref", root / "dumps" / "r")
