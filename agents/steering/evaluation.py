"""Does the steering work? `evaluate_steering` sweeps each trait's coefficient,
measures all five trait scores on a questionnaire (statement likelihood; the
TEST set by default, the DEV set when a sweep makes choices), compares each
trait's effect with the same change under random directions of equal norm at
the same layers, and prices the fluency cost on neutral text. The result is a
`SteeringReport` with `passed`, `to_dict()` and `to_text()`; scripts and slow
tests only call this.

Pass rule: for every trait the own score rises strictly over every measured
coefficient (-1, -0.5, 0, 0.5, 1), and the lower end of the 95% bootstrap
interval of effect / random spread (resampling the controls) is at least
MIN_RATIO. The interval makes the verdict stable against the control sample:
with 20 controls a point ratio of 2.8 became 2.0 with 40. Spearman alone is
no test: random directions often give |rho| near 1, so it is reported, not
relied on. A second interval, reported next to it, resamples the statements
as well (agents.steering.item_resampling): what another set of items like
these would likely show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import torch

from agents.statistics import spearman as spearman_rho
from agents.steering.data import Questionnaire, Split, load_questionnaire
from agents.steering.hooks import SteeringHooks
from agents.steering.item_resampling import item_resampled_ratio_ci
from agents.steering.questionnaire import FluencyMeasure, RatingMeasure, TraitMeasure
from agents.steering.vectors import SteeringVectors
from agents.typing import TRAITS

MIN_RATIO = 3.0  # lower 95% bound of effect / random spread needed to pass
MAX_FLUENCY_COST = 0.3  # nats/token at +-1, reported (the defaults must stay under it)
N_RANDOM = 100  # random controls by default (fewer make the spread itself noisy)
N_BOOTSTRAP = 2000  # resamples of the controls for the ratio's interval
CI_LEVEL = 0.95


@dataclass(frozen=True)
class ItemEffects:
    """Per-statement changes behind a report's effects (likelihood measure):
    the trait scores are means of these over keyed statements."""

    own: np.ndarray  # (C,) change -1 -> +1 of each statement when its own trait is steered
    random: np.ndarray  # (n_random, C) its change under each control of its trait's placement
    traits: np.ndarray  # (C,) trait index (E A C O N order)
    keys: np.ndarray  # (C,) +1 high-keyed, -1 reverse-keyed


@dataclass(frozen=True, kw_only=True)
class SteeringReport:
    """Everything measured by one evaluation (numpy arrays, traits in E A C O N order)."""

    layers: tuple[int, ...]
    strength: float
    coefs: tuple[float, ...]
    curves: np.ndarray  # (5 steered, K coefs, 5 measured) trait scores
    random_effects: np.ndarray  # (n_random, 5) score change -1 -> +1 under random directions
    base_nll: float | None = None  # unsteered per-token NLL on the reference text
    fluency: np.ndarray | None = None  # (5, 2) NLL increase at coef -1, +1
    cosines: np.ndarray | None = None  # (L, 5, 5) between the trait directions
    items: ItemEffects | None = None  # per statement, for the item-resampled interval
    notes: dict[str, Any] = field(default_factory=dict)

    def _at(self, c: float) -> int:
        return self.coefs.index(c)

    @property
    def matrix(self) -> np.ndarray:
        """(5, 5): change of measured trait (column) when the steered trait (row) goes -1 -> +1."""
        return self.curves[:, self._at(1.0)] - self.curves[:, self._at(-1.0)]

    @property
    def effects(self) -> np.ndarray:
        return np.diag(self.matrix).copy()

    @property
    def random_spread(self) -> np.ndarray:
        return self.random_effects.std(axis=0, ddof=1)

    @property
    def random_p95(self) -> np.ndarray:
        return np.percentile(np.abs(self.random_effects), 95, axis=0)

    @property
    def ratios(self) -> np.ndarray:
        return self.effects / self.random_spread

    @cached_property  # a bootstrap: read by passed, to_dict and to_text
    def ratio_ci(self) -> np.ndarray:
        """(5, 2) percentile bootstrap interval (CI_LEVEL) of effect / random
        spread, resampling the random controls with replacement (fixed seed, so
        the same report gives the same interval)."""
        rand = np.asarray(self.random_effects, dtype=float)  # (n, 5)
        n = len(rand)
        if n < 3:
            return np.full((len(TRAITS), 2), np.nan)
        idx = np.random.default_rng(0).integers(0, n, size=(N_BOOTSTRAP, n))  # (B, n)
        sd = rand[idx].std(axis=1, ddof=1)  # (B, 5)
        tail = 100 * (1 - CI_LEVEL) / 2
        with np.errstate(divide="ignore", invalid="ignore"):  # identical resamples: sd 0
            boot = self.effects[None] / sd  # (B, 5)
            return np.percentile(boot, [tail, 100 - tail], axis=0).T  # (5, 2)

    @cached_property  # a bootstrap: read by passed, to_dict and to_text
    def ratio_ci_items(self) -> np.ndarray:
        """(5, 2) the same interval resampling the statements as well as the
        controls (NaN without per-statement data, e.g. the rating measure)."""
        if self.items is None:
            return np.full((len(TRAITS), 2), np.nan)
        i = self.items
        return item_resampled_ratio_ci(
            i.own, i.random, i.traits, i.keys, n_boot=N_BOOTSTRAP, level=CI_LEVEL
        )

    @property
    def z_scores(self) -> np.ndarray:
        return (self.effects - self.random_effects.mean(axis=0)) / self.random_spread

    @property
    def spearman(self) -> np.ndarray:
        return np.array(
            [spearman_rho(self.coefs, self.curves[t, :, t]) for t in range(len(TRAITS))]
        )

    @property
    def monotone(self) -> np.ndarray:
        """(5,) the own score rises strictly over every measured coefficient."""
        own = [self.curves[t, :, t] for t in range(len(TRAITS))]  # coefs ascending
        return np.array([bool(np.all(np.diff(c) > 0)) for c in own])

    @property
    def spillover(self) -> np.ndarray:
        """(5, 5) |matrix| / own effect, the worse of row (steered) and column
        (measured) normalisation; the diagonal is 1."""
        m = np.abs(self.matrix)
        own = np.diag(self.matrix).copy()
        own[own <= 0] = np.nan  # no own effect: spill-over undefined (reported as inf)
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(np.maximum(m / own[:, None], m / own[None, :]), nan=np.inf)

    @property
    def max_spillover(self) -> float:
        s = self.spillover.copy()
        np.fill_diagonal(s, 0.0)
        return float(s.max())

    @property
    def passed(self) -> bool:
        return bool(self.monotone.all() and (self.ratio_ci[:, 0] >= MIN_RATIO).all())

    @property
    def worst_fluency(self) -> float | None:
        return None if self.fluency is None else float(np.max(self.fluency))

    def to_dict(self) -> dict[str, Any]:
        def arr(a: np.ndarray | None) -> Any:
            return None if a is None else np.round(np.asarray(a, dtype=float), 4).tolist()

        return {
            "layers": list(self.layers),
            "strength": self.strength,
            "coefs": list(self.coefs),
            "traits": list(TRAITS),
            "passed": self.passed,
            "monotone": self.monotone.tolist(),
            "effects": arr(self.effects),
            "random_spread": arr(self.random_spread),
            "random_p95": arr(self.random_p95),
            "ratios": arr(self.ratios),
            "ratio_ci": arr(self.ratio_ci),
            "ratio_ci_items": None if self.items is None else arr(self.ratio_ci_items),
            "min_ratio": MIN_RATIO,
            "n_random": len(self.random_effects),
            "z_scores": arr(self.z_scores),
            "spearman": arr(self.spearman),
            "matrix": arr(self.matrix),
            "max_spillover": round(self.max_spillover, 4)
            if np.isfinite(self.max_spillover)
            else None,
            "curves": arr(self.curves),
            "random_effects": arr(self.random_effects),
            "base_nll": self.base_nll,
            "fluency_increase": arr(self.fluency),
            "worst_fluency": None if self.fluency is None else round(self.worst_fluency, 4),
            "cosines": arr(self.cosines),
            **self.notes,
        }

    def to_text(self) -> str:
        split = self.notes.get("questionnaire", "?")
        lines = [
            f"steering layers {list(self.layers)} strength {self.strength}, {split} questionnaire "
            f"({len(self.random_effects)} random controls): {'PASS' if self.passed else 'FAIL'} "
            f"(monotone, and lower {CI_LEVEL:.0%} bound of the ratio >= {MIN_RATIO:g})",
            "trait  effect  rand.sd  ratio  95% interval  items resampled      z  spearman  "
            "monotone",
        ]
        ci, ci_items = self.ratio_ci, self.ratio_ci_items
        for t, name in enumerate(TRAITS):
            lines.append(
                f"{name:>5} {self.effects[t]:7.2f} {self.random_spread[t]:8.2f} "
                f"{self.ratios[t]:6.1f}  [{ci[t, 0]:4.1f}, {ci[t, 1]:4.1f}]  "
                f"  [{ci_items[t, 0]:4.1f}, {ci_items[t, 1]:4.1f}]  "
                f"{self.z_scores[t]:6.1f} {self.spearman[t]:9.2f}  "
                f"{'yes' if self.monotone[t] else 'NO'}"
            )
        lines.append("matrix (row: steered -1 -> +1, column: measured change)")
        lines.append("      " + "".join(f"{t:>7}" for t in TRAITS))
        for t, name in enumerate(TRAITS):
            lines.append(f"{name:>5} " + "".join(f"{v:7.2f}" for v in self.matrix[t]))
        lines.append(f"largest spill-over / own effect: {self.max_spillover:.2f}")
        if self.fluency is not None:
            worst = float(np.max(self.fluency))
            lines.append(
                f"fluency: base NLL {self.base_nll:.3f} nats/token; increase at -1/+1 per trait "
                + ", ".join(
                    f"{n} {a:+.3f}/{b:+.3f}" for n, (a, b) in zip(TRAITS, self.fluency, strict=True)
                )
                + f"; worst {worst:+.3f} ({'ok' if worst <= MAX_FLUENCY_COST else 'TOO HIGH'})"
            )
        return "\n".join(lines)


def random_deltas(vectors: SteeringVectors, strength: float, n: int, seed: int = 0) -> torch.Tensor:
    """(L, 2n, H): n random unit directions at +strength then -strength (x each
    layer's norm). A control uses the same direction at every steered layer, as
    a trait does (its directions are aligned across neighbouring layers), so
    several layers give the controls no cancellation that the traits lack."""
    gen = torch.Generator().manual_seed(seed)
    n_layers, _, hidden = vectors.directions.shape
    dirs = torch.nn.functional.normalize(torch.randn(n, hidden, generator=gen), dim=-1)  # (n, H)
    scale = (strength * vectors.norms)[:, None, None]  # (L, 1, 1)
    return torch.cat([dirs * scale, -dirs * scale], dim=1)  # (L, 2n, H) by broadcasting


def control_groups(vectors: SteeringVectors) -> dict[tuple, list[int]]:
    """Traits whose controls are the same: {(layer mask, per-layer norms of
    the trait's direction): trait indices}. A control for trait t has t's
    norm at each of t's layers (1 for unit directions, a gain where a trait's
    direction was scaled), so every trait is compared with random directions
    of exactly its own size and placement."""
    size = vectors.directions.norm(dim=-1)  # (L, 5)
    groups: dict[tuple, list[int]] = {}
    for t in range(len(TRAITS)):
        key = tuple(round(float(x), 4) for x in size[:, t])
        groups.setdefault(key, []).append(t)
    return groups


def _item_effects(
    lp: np.ndarray,
    at: np.ndarray,
    coefs: tuple[float, ...],
    scorer: TraitMeasure,
    random_item_effects: np.ndarray | None,
    controls: tuple[dict[tuple, list[int]], int] | None,
) -> ItemEffects | None:
    """Per-statement changes from the scorer's (rows, C) log-probabilities:
    `at` (5, K) maps (steered trait, coefficient) to its row; `controls`
    (groups, n) says the control rows follow the steering rows when they were
    measured here, else `random_item_effects` comes from the caller (None:
    no per-statement controls, no item data)."""
    traits = np.array([TRAITS.index(it.trait) for it in scorer.items])  # (C,)
    cols = np.arange(len(traits))
    own = lp[at[traits, coefs.index(1.0)], cols] - lp[at[traits, coefs.index(-1.0)], cols]
    if controls is not None:
        groups, n = controls
        ctrl = lp[at.max() + 1 :]  # +direction then -direction rows, per group in order
        random_item_effects = np.zeros((n, len(traits)))
        for g, members in enumerate(groups.values()):
            block, mine = ctrl[2 * n * g : 2 * n * (g + 1)], np.isin(traits, members)
            random_item_effects[:, mine] = (block[:n] - block[n:])[:, mine]
    if random_item_effects is None:
        return None
    keys = np.array([it.key for it in scorer.items])
    return ItemEffects(own=own, random=random_item_effects, traits=traits, keys=keys)


def resolve_questionnaire(questionnaire: Questionnaire | Split) -> Questionnaire:
    return load_questionnaire(questionnaire) if isinstance(questionnaire, str) else questionnaire


@torch.no_grad()
def evaluate_steering(
    model: Any,
    tokenizer: Any,
    vectors: SteeringVectors,
    layers: Sequence[int] | None = None,
    strength: float = 0.2,
    coefs: Sequence[float] = (-1.0, -0.5, 0.0, 0.5, 1.0),
    n_random: int = N_RANDOM,
    *,
    seed: int = 0,
    fluency: bool = True,
    random_effects: np.ndarray | None = None,
    random_item_effects: np.ndarray | None = None,
    measure: Literal["likelihood", "rating"] = "likelihood",
    questionnaire: Questionnaire | Split = "test",
) -> SteeringReport:
    """Measure the steering `vectors` (restricted to `layers`) at `strength`
    on `questionnaire`: the TEST set unless a sweep asks for "dev".

    `random_effects` (n, 5) reuses random-control effects measured before for
    the same layers, norms, strength and questionnaire (they do not depend on
    the directions), e.g. in a sweep, and `random_item_effects` (n, C) their
    per-statement changes (the report's `items.random`; without it a reused
    control set gives no item-resampled interval); by default `n_random`
    controls are measured here. `measure="rating"` reads Likert ratings from digit
    probabilities instead of statement likelihood: only for large instruct
    models."""
    q = resolve_questionnaire(questionnaire)
    coefs = tuple(sorted({float(c) for c in coefs}))
    if not {-1.0, 0.0, 1.0} <= set(coefs):
        raise ValueError("coefs must include -1, 0 and 1")
    vecs = vectors.select(layers) if layers is not None else vectors
    start = min(vecs.layers)
    hooks = SteeringHooks(model, vecs, strength)
    if measure == "rating":
        scorer: TraitMeasure | RatingMeasure = RatingMeasure(model, tokenizer, questionnaire=q)
    else:
        scorer = TraitMeasure(model, tokenizer, start_layer=start, questionnaire=q)

    n_traits = len(TRAITS)
    grid = torch.zeros(n_traits, len(coefs), n_traits)  # (steered, K, 5) coefficient rows
    for t in range(n_traits):
        grid[t, :, t] = torch.tensor(coefs)
    rows, inverse = torch.unique(grid.reshape(-1, n_traits), dim=0, return_inverse=True)
    steer = vecs.deltas(rows, strength)  # (L, U, H): coefficient 0 is one shared row
    # controls replace a trait's vector at that trait's own layers, with its norm there
    groups = control_groups(vecs)
    n_random = 0 if random_effects is not None else n_random
    rand = random_deltas(vecs, strength, n_random, seed)  # (L, 2n, H)
    blocks = [rand * torch.tensor(g, dtype=rand.dtype)[:, None, None] for g in groups]
    deltas = torch.cat([steer, *blocks], dim=1)
    items = None
    if isinstance(scorer, TraitMeasure):  # per statement, so items can be resampled too
        lp = scorer.item_logprobs(hooks, deltas).numpy()  # (U+2nG, C)
        scores = lp @ scorer.weights.numpy().T  # (U+2nG, 5)
        at = inverse.numpy().reshape(n_traits, len(coefs))
        measured = (groups, n_random) if random_effects is None else None
        items = _item_effects(lp, at, coefs, scorer, random_item_effects, measured)
    else:
        scores = scorer.trait_scores(hooks, deltas).numpy()  # (U+2nG, 5)
    curves = scores[inverse.numpy()].reshape(n_traits, len(coefs), n_traits)
    if random_effects is None:
        random_effects = np.zeros((n_random, n_traits))
        for g, traits in enumerate(groups.values()):
            rs = scores[len(rows) + 2 * n_random * g : len(rows) + 2 * n_random * (g + 1)]
            random_effects[:, traits] = (rs[:n_random] - rs[n_random:])[:, traits]  # (n, k)

    base_nll = fl = None
    if fluency:
        fm = FluencyMeasure(model, tokenizer, start_layer=start, questionnaire=q)
        pm = torch.zeros(1 + 2 * n_traits, n_traits)  # base, then (-1, +1) per trait
        for t in range(n_traits):
            pm[1 + 2 * t, t], pm[2 + 2 * t, t] = -1.0, 1.0
        nll = fm.nll(hooks, vecs.deltas(pm, strength)).numpy()  # (11,)
        base_nll = float(nll[0])
        fl = (nll[1:] - nll[0]).reshape(n_traits, 2)
    return SteeringReport(
        layers=vecs.layers,
        strength=float(strength),
        coefs=coefs,
        curves=curves,
        random_effects=random_effects,
        base_nll=base_nll,
        fluency=fl,
        cosines=vecs.cosines().numpy(),
        items=items,
        notes={
            "method": vecs.meta.get("method", "?"),
            "orthogonalized": vecs.meta.get("orthogonalized", "false"),
            "trait_layers": {t: list(x) for t, x in vecs.trait_layers().items()},
            "measure": measure,
            "questionnaire": q.split,
        },
    )
