"""The behavioural check: load the run's model and steering vectors as
manifest.json describes them, and measure the TEST questionnaire (117 IPIP-NEO
items) under steering with agents.steering.evaluation.evaluate_steering. This module only
adapts: it reads the manifest into a typed spec, loads what the spec names,
calls the evaluation, and turns its SteeringReport into a CheckResult. The
measurement and its pass rule (SteeringReport.passed: a monotone effect of
at least MIN_RATIO times the random-direction spread, for every trait) belong
to the evaluation module; this module imports the constant, never copies it.

A mock run has no model, so its behavioural check is skipped (status
"skip"). Anything that keeps the check from running on an hf run (no model
description, the evaluation module, model or vectors missing, vectors that
changed since the run) is a failure that says so: the log checks cannot
stand in for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.analysis.checks import CheckResult
from orchestrator.dumps_reader import storage_root_of
from orchestrator.errors import SteersimError

log = logging.getLogger(__name__)

N_RANDOM = 100  # random-direction controls: the pass rule's bootstrap interval needs >= 100
# --n-random's range. Each control is two passes over the questionnaire per group of
# traits with the same placement, so the check's time grows with it: ten times the
# default is precise enough; an extra zero or two ran for hours (or ran out of
# memory building the controls' deltas) after the model had loaded.
MIN_RANDOM, MAX_RANDOM = 20, 1_000
COEFS = (-1.0, -0.5, 0.0, 0.5, 1.0)
_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True, kw_only=True)
class BehaviouralOutcome:
    check: CheckResult
    text: str | None = None  # SteeringReport.to_text()
    data: dict[str, Any] | None = None  # SteeringReport.to_dict()


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What the behavioural check loads, as the run recorded it."""

    name_or_path: str  # the resolved folder when it still exists, else the configured name
    dtype: str  # auto | float32 | bfloat16 | float16
    trust_remote_code: bool
    storage_root: Path  # where the embedded model's converted folder lives
    layers: tuple[int, ...]
    strength: float
    vectors_file: Path
    vectors_hash: str | None


class SpecError(SteersimError):
    """The manifest does not say enough to rebuild the run's model and vectors."""


def unavailable(why: str) -> BehaviouralOutcome:
    return BehaviouralOutcome(
        check=CheckResult(
            name="behavioural",
            status="fail",
            summary=(
                f"behavioural check unavailable: {why} (pass --skip-behavioural to leave it out)"
            ),
        )
    )


def _section(d: Any, key: str) -> dict[str, Any]:
    value = d.get(key) if isinstance(d, dict) else None
    return value if isinstance(value, dict) else {}


def _locate(path: str, run_dir: Path, configured_root: str | None) -> Path:
    """A path the run recorded, found from here: relative to the run folder
    (where runs keep their steering vectors now, so a copied or moved run
    still finds them), as written, then relative to the directory the run was
    started in (its storage root minus the configured relative root), then
    relative to the storage root itself."""
    p = Path(path)
    if p.is_absolute():
        return p
    candidates = [run_dir / p, p]
    root = storage_root_of(run_dir)
    if root is not None:
        if configured_root and not Path(configured_root).is_absolute():
            base = root
            for _ in Path(configured_root).parts:
                base = base.parent
            candidates.append(base / p)
        candidates.append(root / p)
    return next((c.resolve() for c in candidates if c.exists()), p)


def model_spec(manifest: dict[str, Any], run_dir: Path) -> ModelSpec:
    """The spec from manifest["model"] (written by the HF backend), with the
    resolved config in manifest["config"] filling what the model section lacks."""
    model = _section(manifest, "model")
    config = _section(manifest, "config")
    steer = _section(model, "steering") or _section(manifest, "steering")
    steer_cfg = _section(config, "steering")
    model_cfg = _section(config, "model")
    if steer.get("enabled") is False or steer_cfg.get("enabled") is False:
        raise SpecError("the run had steering disabled (steering.enabled: false)")
    vectors = steer.get("vectors_file") or steer_cfg.get("vectors")
    if not vectors:
        raise SpecError(
            "manifest.json names no steering vectors file (model.steering.vectors_file)"
        )
    configured_root = _section(config, "storage").get("root")
    root = storage_root_of(run_dir) or Path(configured_root or ".")
    resolved = model.get("resolved_path")
    found = _locate(resolved, run_dir, configured_root) if resolved else None
    name = str(found) if found is not None and found.is_dir() else None
    name = name or model.get("name_or_path") or model_cfg.get("name_or_path")
    if not name:
        raise SpecError("manifest.json does not name the run's model (model.name_or_path)")
    layers = steer.get("layers") or steer_cfg.get("layers")
    strength = steer.get("strength", steer_cfg.get("strength"))
    if not layers or strength is None:
        raise SpecError("manifest.json lacks the steering layers or strength")
    dtype = str(model.get("dtype") or model_cfg.get("dtype") or "auto")
    return ModelSpec(
        name_or_path=str(name),
        dtype=dtype if dtype in _DTYPES else "auto",
        trust_remote_code=bool(model_cfg.get("trust_remote_code", False)),
        storage_root=root,
        layers=tuple(int(x) for x in layers),
        strength=float(strength),
        vectors_file=_locate(str(vectors), run_dir, configured_root),
        vectors_hash=steer.get("vectors_hash"),
    )


def load_model_and_vectors(spec: ModelSpec, device: str = "auto") -> tuple[Any, Any, Any]:
    """(model, tokenizer, SteeringVectors) for `spec`; offline; SteersimError
    (ModelError) with one line when something is missing or changed."""
    from agents.config import ModelConfig, OptimizationConfig
    from agents.model_loading import load_model
    from agents.steering.vectors import SteeringVectors, file_hash

    if not spec.vectors_file.is_file():
        raise SpecError(f"the run's steering vectors {spec.vectors_file} are gone")
    if spec.vectors_hash and file_hash(spec.vectors_file) != spec.vectors_hash:
        raise SpecError(
            f"{spec.vectors_file} changed since the run (hash {file_hash(spec.vectors_file)}, "
            f"the run recorded {spec.vectors_hash})"
        )
    cfg = ModelConfig(
        backend="hf",
        name_or_path=spec.name_or_path,
        dtype=spec.dtype,  # type: ignore[arg-type]
        device=device,
        trust_remote_code=spec.trust_remote_code,
        allow_download=False,
    )
    lm = load_model(cfg, OptimizationConfig(), spec.storage_root)
    return lm.model, lm.tokenizer, SteeringVectors.load(spec.vectors_file)


def as_check(report: Any, n_random: int) -> CheckResult:
    """A SteeringReport as a CheckResult: the verdict, then one line per trait."""
    from agents.steering.evaluation import MIN_RATIO  # the pass rule's own constant
    from agents.typing import TRAIT_NAMES, TRAITS

    d = report.to_dict()
    coefs = list(d["coefs"])
    lo, hi = coefs.index(-1.0), coefs.index(1.0)
    ratios, monotone = d["ratios"], d["monotone"]
    # the pass rule reads the lower end of each ratio's bootstrap interval
    lower = [ci[0] for ci in d["ratio_ci"]] if d.get("ratio_ci") else ratios
    strong = sum(r >= MIN_RATIO for r in lower)
    details = []
    for t, trait in enumerate(TRAITS):
        own = [row[t] for row in d["curves"][t]]
        details.append(
            f"{trait} ({TRAIT_NAMES[trait]}): score {own[lo]:+.3f} at -1, {own[hi]:+.3f} at +1; "
            f"effect {d['effects'][t]:+.3f} = {ratios[t]:.1f}x random spread "
            f"(95% interval from {lower[t]:.1f}) "
            f"(z {d['z_scores'][t]:+.1f}); Spearman {d['spearman'][t]:+.2f}; "
            f"{'monotone' if monotone[t] else 'NOT monotone'}"
        )
    if d.get("fluency_increase") is not None:
        worst = max(max(pair) for pair in d["fluency_increase"])
        details.append(f"fluency cost: worst NLL increase {worst:+.3f} nats/token at ±1")
    return CheckResult(
        name="behavioural",
        status="pass" if d["passed"] else "fail",
        summary=(
            f"behavioural check: layers {d['layers']} strength {d['strength']}, "
            f"{n_random} random controls; {sum(monotone)} of {len(TRAITS)} traits monotone, "
            f"{strong} of {len(TRAITS)} with effect >= {MIN_RATIO:g}x random spread "
            f"(lower 95% bound), {d.get('questionnaire', 'test')} questionnaire"
        ),
        details=tuple(details),
        data={k: d[k] for k in ("passed", "monotone", "effects", "ratios", "z_scores", "spearman")},
    )


Loader = Callable[[ModelSpec], tuple[Any, Any, Any]]


def check_n_random(n: int) -> None:
    """--n-random within MIN_RANDOM..MAX_RANDOM (SteersimError), checked before
    the run is read or any model loads."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_RANDOM <= n <= MAX_RANDOM:
        raise SteersimError(
            f"--n-random {n!r}: give {MIN_RANDOM} to {MAX_RANDOM:,} random-direction controls"
        )


def run_behavioural(
    manifest: dict[str, Any],
    run_dir: Path,
    *,
    loader: Loader | None = None,
    n_random: int = N_RANDOM,
    device: str = "auto",
) -> BehaviouralOutcome:
    """The behavioural check for the run at `run_dir` (see module docstring)."""
    model = _section(manifest, "model")
    backend = model.get("backend")
    if backend == "mock":
        return BehaviouralOutcome(
            check=CheckResult(
                name="behavioural",
                status="skip",
                summary="behavioural check skipped: the run used the mock backend (no model)",
            )
        )
    if not model or backend is None:
        return unavailable("manifest.json does not describe the run's model")
    try:
        from agents.steering.evaluation import evaluate_steering  # torch loads here
    except ImportError as exc:
        return unavailable(f"the steering evaluation API cannot be imported ({exc})")
    try:
        spec = model_spec(manifest, run_dir)
        model_obj, tokenizer, vectors = (loader or _default_loader(device))(spec)
    except SteersimError as exc:
        return unavailable(str(exc))
    log.info("behavioural check: layers %s strength %s", spec.layers, spec.strength)
    report = evaluate_steering(
        model_obj,
        tokenizer,
        vectors,
        layers=spec.layers,
        strength=spec.strength,
        coefs=COEFS,
        n_random=n_random,
    )
    return BehaviouralOutcome(
        check=as_check(report, n_random), text=report.to_text(), data=report.to_dict()
    )


def _default_loader(device: str) -> Loader:
    return lambda spec: load_model_and_vectors(spec, device)
