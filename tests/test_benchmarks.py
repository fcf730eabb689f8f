"""The one benchmark tool (scripts/benchmark.py = orchestrator.benchmarks.cli)
at toy sizes: every subcommand runs, prints, and writes its result with
`--json PATH` (`-` = stdout); the GPU benchmark says in one line when it
falls back to the byte-level tokenizer; bad options are one line, exit 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.analysis_helpers import load_script


@pytest.fixture(scope="module")
def app():
    return load_script("benchmark").app


def _run(app, *args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_engine_writes_its_json(app, tmp_path: Path) -> None:
    dest = tmp_path / "engine.json"
    res = _run(
        app, "engine", "--agents", "4", "--ticks", "3", "--max-events", "2", "--json", str(dest)
    )
    assert res.exit_code == 0, res.output
    data = json.loads(dest.read_text())
    assert data["benchmark"] == "engine" and (data["agents"], data["ticks"]) == (4, 3)
    assert data["requests"] > 0 and data["wall_s"] > 0
    assert "per_tick_ms" in res.output


def test_json_overwrites_rather_than_appends(app, tmp_path: Path) -> None:
    dest = tmp_path / "engine.json"
    for _ in range(2):
        res = _run(app, "engine", "--agents", "3", "--ticks", "2", "--json", str(dest))
        assert res.exit_code == 0, res.output
    assert isinstance(json.loads(dest.read_text()), dict)


def test_memory_json_to_stdout(app) -> None:
    args = ["--agents", "6", "--memories", "20", "--dims", "16,8", "--ticks", "2", "--skip-run"]
    res = _run(app, "memory", *args, "--json", "-")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)  # the text lines went to stderr
    assert data["benchmark"] == "memory" and data["footprint"] is None
    assert [r["dim"] for r in data["retrieval"]] == [16, 8]
    assert "retrieval 6 agents x 20 memories, dim 16" in res.stderr


def test_gpu_smoke_on_cpu_says_when_the_tokenizer_is_byte_level(
    app, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("transformers")
    dest = tmp_path / "gpu.json"
    args = ["--arch", "tiny", "--batches", "2", "--new-tokens", "2", "--repeats", "1"]
    args += ["--device", "cpu", "--quant-arch", "", "--tokenizer", str(tmp_path / "none")]
    with caplog.at_level(logging.WARNING, logger="orchestrator.benchmarks.gpu"):
        res = _run(app, "gpu", *args, "--json", str(dest))
    assert res.exit_code == 0, res.output
    said = [r.getMessage() for r in caplog.records if "byte-level" in r.getMessage()]
    assert len(said) == 1 and "longer in tokens" in said[0]
    data = json.loads(dest.read_text())
    assert data["tokenizer"] == "byte-level" and data["device"] == "cpu"
    assert [(r["batch"], "steer=True" in r["config"]) for r in data["rows"]] == [
        (1, True),
        (2, True),
        (1, False),
        (2, False),
    ]
    assert all(r["prompt_tokens_mean"] > 0 for r in data["rows"])


def test_batching_on_a_tiny_local_model(app, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from agents.random_models import save_tiny

    model = save_tiny(tmp_path / "tiny")
    dest = tmp_path / "batching.json"
    args = ["--model", str(model), "--requests", "3", "--max-new-tokens", "3", "--no-steering"]
    res = _run(app, "batching", *args, "--storage-root", str(tmp_path), "--json", str(dest))
    assert res.exit_code == 0, res.output
    data = json.loads(dest.read_text())
    assert data["benchmark"] == "batching" and data["requests"] == 3
    assert data["identical_outputs"] == 3  # a row does not depend on its batch mates


@pytest.mark.parametrize(
    "args, expected",
    [
        (["gpu", "--arch", "llama-70b"], "--arch must be one of"),
        (["memory", "--dims", "big", "--skip-run"], "--dims takes positive integers"),
        (["distributed", "--cases", "data-1b", "--trace", __file__], "cannot make that folder"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(app, args, expected: str, capsys) -> None:
    from orchestrator.analysis.cli_support import run_app

    with pytest.raises(SystemExit) as exc:
        run_app(app, args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and len(err.splitlines()) == 1


def test_each_rank_reports_its_own_decode_phases() -> None:
    """The distributed benchmark's per-rank phases: from a rank's latest fast
    decode, nothing on the reference loop (no `fast`) or a one-step decode."""
    from types import SimpleNamespace

    from orchestrator.benchmarks.distributed import _last_decode

    last = SimpleNamespace(steps=5, prefill_s=0.1234, prompts_s=0.0456, decode_s=0.04)
    fast = SimpleNamespace(last=last, captures=[(32, 0.25), (64, 0.5)])
    assert _last_decode(SimpleNamespace(fast=fast)) == {
        "prefill_s": 0.123,
        "prompts_s": 0.046,
        "decode_ms_per_step": 10.0,
        "captures_s": 0.75,
    }
    assert _last_decode(SimpleNamespace(fast=None)) == {}
    assert _last_decode(SimpleNamespace()) == {}
    one_step = SimpleNamespace(last=SimpleNamespace(steps=1, prefill_s=0.1, decode_s=0.0))
    assert _last_decode(SimpleNamespace(fast=one_step)) == {}


def test_distributed_smoke_on_cpu_traces_every_rank(app, tmp_path: Path) -> None:
    """The distributed benchmark on CPU (gloo, the tiny model): one and two
    ranks of data mode run, and `--trace` leaves one Chrome trace per rank of
    each world size, with the host's Python frames and the ranks' own work."""
    import gzip

    pytest.importorskip("transformers")
    dest, traces = tmp_path / "dist.json", tmp_path / "traces"
    args = ["--cases", "data-1b", "--arch", "tiny", "--device", "cpu", "--requests", "4"]
    args += ["--new-tokens", "2", "--repeats", "1", "--trace", str(traces)]
    res = _run(app, "distributed", *args, "--json", str(dest))
    assert res.exit_code == 0, res.output
    rows = json.loads(dest.read_text())["rows"]
    assert [(r["world_size"], len(r["traces"])) for r in rows] == [(1, 1), (2, 2)]
    names = sorted(p.name for p in traces.iterdir())
    assert names == [f"data-1b-{w}ranks-rank{r}.json.gz" for w, r in ((1, 0), (2, 0), (2, 1))]
    for name in names:
        events = json.loads(gzip.open(traces / name).read())["traceEvents"]
        functions = {e["name"] for e in events if e.get("cat") == "python_function"}
        assert any("timed_generate" in f for f in functions), name  # the traced tick itself
        assert any(e.get("cat") == "cpu_op" for e in events)
