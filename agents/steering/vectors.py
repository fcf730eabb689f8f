"""The steering-vector value type: for each steered layer five directions (one
per trait, in E, A, C, O, N order) and the layer's typical hidden-state norm,
plus where they came from. Saved and loaded as safetensors (no pickles); the
cache file name encodes model identity, layers, method and data hash.

It knows how to turn trait coefficients into per-layer deltas, but nothing
about hooks, models or where the directions were learned."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from agents.errors import ModelError
from agents.paths import existing_file
from agents.typing import TRAITS

FORMAT_VERSION = "1"


@dataclass(frozen=True, kw_only=True)
class SteeringVectors:
    layers: tuple[int, ...]  # decoder blocks, ascending; block l's output is hidden_states[l+1]
    # (L, 5, H) float32; unit rows (a trait's gain where scaled), zero where a trait is not steered
    directions: torch.Tensor
    norms: torch.Tensor  # (L,) typical (median) hidden-state norm of each layer
    meta: Mapping[str, str] = field(default_factory=dict)  # model, method, data hash, ...

    def __post_init__(self) -> None:
        n_layers = len(self.layers)
        if self.directions.ndim != 3 or self.directions.shape[:2] != (n_layers, len(TRAITS)):
            raise ValueError(
                f"directions must be (L={n_layers}, 5, H), got {self.directions.shape}"
            )
        if self.norms.shape != (n_layers,):
            raise ValueError(f"norms must be ({n_layers},), got {tuple(self.norms.shape)}")
        if list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"layers must be unique and ascending, got {self.layers}")

    @property
    def hidden_size(self) -> int:
        return int(self.directions.shape[-1])

    def index(self, layer: int) -> int:
        return self.layers.index(layer)

    def select(self, layers: Sequence[int]) -> SteeringVectors:
        """The same vectors restricted to `layers` (each must be present)."""
        missing = sorted(set(layers) - set(self.layers))
        if missing:
            raise ModelError(
                f"steering vectors have no layer {missing[0]} (they cover {list(self.layers)}); "
                "rebuild them for steering.layers or pick covered layers"
            )
        idx = [self.index(layer) for layer in sorted(layers)]
        return SteeringVectors(
            layers=tuple(sorted(layers)),
            directions=self.directions[idx].clone(),
            norms=self.norms[idx].clone(),
            meta={**self.meta, "layers": ",".join(map(str, sorted(layers)))},
        )

    def orthogonalized(self) -> SteeringVectors:
        """Sequential Gram-Schmidt in E, A, C, O, N order at every layer: each
        trait keeps only what is orthogonal to the traits before it."""
        out = self.directions.clone()  # (L, 5, H)
        for t in range(1, len(TRAITS)):
            prev = out[:, :t]  # (L, t, H), already orthonormal
            coef = torch.einsum("lth,lh->lt", prev, out[:, t])  # (L, t)
            out[:, t] -= torch.einsum("lt,lth->lh", coef, prev)
            out[:, t] = torch.nn.functional.normalize(out[:, t], dim=-1)
        return SteeringVectors(
            layers=self.layers,
            directions=out,
            norms=self.norms.clone(),
            meta={**self.meta, "orthogonalized": "true"},
        )

    def for_traits(self, layers_of: Mapping[str, Sequence[int]]) -> SteeringVectors:
        """Trait t steered only at layers_of[t]: the union of layers, with t's
        direction zeroed at the others (a trait missing from the map keeps all)."""
        union = sorted({x for t in TRAITS for x in layers_of.get(t, self.layers)})
        sub = self.select(union)
        dirs = sub.directions.clone()  # (L, 5, H)
        for t, trait in enumerate(TRAITS):
            keep = set(layers_of.get(trait, union))
            for i, layer in enumerate(union):
                if layer not in keep:
                    dirs[i, t] = 0.0
        tag = ",".join(f"{t}={'_'.join(map(str, layers_of[t]))}" for t in TRAITS if t in layers_of)
        return SteeringVectors(
            layers=sub.layers,
            directions=dirs,
            norms=sub.norms,
            meta={**sub.meta, "trait_layers": tag},
        )

    def scaled(self, gains: Mapping[str, float]) -> SteeringVectors:
        """Trait t's directions times gains[t] (others kept): a per-trait
        strength, strength x gain, carried by the vectors themselves."""
        # the recorded gain is the total, so that scaling twice is recorded as it applies
        total = dict(self.recorded_gains())
        for trait, g in gains.items():
            total[trait] = total.get(trait, 1.0) * float(g)
        return self.with_gains(total)

    def recorded_gains(self) -> dict[str, float]:
        """The per-trait gains `scaled` applied to these directions, read back
        from the metadata ({} when none were)."""
        tag = self.meta.get("trait_gains", "")
        gains: dict[str, float] = {}
        for item in filter(None, tag.split(",")):
            trait, _, value = item.partition("=")
            try:
                gain = float(value)
            except ValueError:
                gain = float("nan")
            if trait not in TRAITS or trait in gains or not 0 < gain < float("inf"):
                raise ValueError(f"trait_gains tag {tag!r} is not TRAIT=gain,... with gains > 0")
            gains[trait] = gain
        return gains

    def with_gains(self, gains: Mapping[str, float]) -> SteeringVectors:
        """These vectors with exactly `gains` applied (traits not named at 1):
        each trait rescaled by the ratio to the gain it records, so that gains
        apply once to a file a run already scaled. Itself when nothing changes."""
        have = self.recorded_gains()
        ratio = {t: float(gains.get(t, 1.0)) / have.get(t, 1.0) for t in TRAITS}
        if all(r == 1.0 for r in ratio.values()):
            return self
        dirs = self.directions.clone()
        for t, trait in enumerate(TRAITS):
            dirs[:, t] *= ratio[trait]
        tag = ",".join(f"{t}={float(g):g}" for t, g in sorted(gains.items()) if g != 1.0)
        meta = {k: v for k, v in self.meta.items() if k != "trait_gains"}
        if tag:
            meta["trait_gains"] = tag
        return SteeringVectors(
            layers=self.layers, directions=dirs, norms=self.norms.clone(), meta=meta
        )

    def without(self, axis: torch.Tensor, fraction: float = 1.0) -> SteeringVectors:
        """Each direction minus `fraction` of its projection on the unit
        `axis` (L, H) of its layer, renormalised (zero directions stay zero)."""
        proj = torch.einsum("lth,lh->lt", self.directions, axis)  # (L, 5)
        dirs = self.directions - fraction * proj[..., None] * axis[:, None]
        active = self.directions.norm(dim=-1, keepdim=True) > 0
        dirs = torch.where(active, torch.nn.functional.normalize(dirs, dim=-1), dirs)
        return SteeringVectors(
            layers=self.layers, directions=dirs, norms=self.norms.clone(),
            meta={**self.meta, "removed_axis": f"{fraction:g}"},
        )  # fmt: skip

    def mixed(self, weights: Sequence[Sequence[float]]) -> SteeringVectors:
        """Trait k's new direction at every layer is sum_i weights[k][i] V_i,
        renormalised to unit length: a 5x5 recombination that can cancel a
        measured cross-talk (see agents.steering.calibrate). Needs every trait
        at the same layers, or the sum would mix placements."""
        w = torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(TRAITS), len(TRAITS)):
            raise ValueError(f"mixing weights must be 5x5, got {tuple(w.shape)}")
        if len(set(self.trait_layers().values())) != 1:
            raise ValueError("mixing needs every trait steered at the same layers")
        dirs = torch.nn.functional.normalize(
            torch.einsum("ki,lih->lkh", w, self.directions), dim=-1
        )
        return SteeringVectors(
            layers=self.layers, directions=dirs, norms=self.norms.clone(),
            meta={**self.meta, "mixing": ";".join(",".join(f"{x:.4f}" for x in r) for r in w.tolist())},
        )  # fmt: skip

    def trait_layers(self) -> dict[str, tuple[int, ...]]:
        """The layers at which each trait has a non-zero direction."""
        active = self.directions.norm(dim=-1) > 0  # (L, 5)
        return {
            trait: tuple(layer for i, layer in enumerate(self.layers) if active[i, t])
            for t, trait in enumerate(TRAITS)
        }

    def cosines(self) -> torch.Tensor:
        """(L, 5, 5) cosine similarity between the trait directions."""
        d = torch.nn.functional.normalize(self.directions, dim=-1)
        return d @ d.transpose(1, 2)

    def deltas(self, coefs: torch.Tensor, strength: float) -> torch.Tensor:
        """(L, B, H) additive deltas: (coef[b] * strength * norm[l]) @ V[l]."""
        scaled = (
            coefs.to(self.directions)[None] * (strength * self.norms)[:, None, None]
        )  # (L, B, 5)
        return torch.bmm(scaled, self.directions)  # (L, B, H)

    # -- persistence -------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp name, then rename) and return the path."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**{k: str(v) for k, v in self.meta.items()}, "format": FORMAT_VERSION}
        meta["traits"] = "".join(TRAITS)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(
            {
                "directions": self.directions.float().contiguous(),
                "norms": self.norms.float().contiguous(),
                "layers": torch.tensor(self.layers, dtype=torch.int64),
            },
            str(tmp),
            metadata=meta,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringVectors:
        from safetensors import safe_open

        path = existing_file(path, "steering.vectors")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in ("directions", "norms", "layers")}
        except Exception as exc:  # a bad header or missing tensor: one line, not a traceback
            raise ModelError(
                f"steering.vectors {str(path)!r} is not a steering file: {exc}"
            ) from None
        where = f"steering.vectors {str(path)!r}"
        if meta.get("traits", "".join(TRAITS)) != "".join(TRAITS):
            raise ModelError(f"{where} has trait order {meta['traits']}")
        layers, directions, norms = tensors["layers"], tensors["directions"], tensors["norms"]
        # a hand-made or damaged file must fail here, in one line, not as NaN text
        # (non-finite values) or a layer silently truncated (2.7 -> 2)
        if layers.dtype.is_floating_point or layers.dtype == torch.bool or layers.ndim != 1:
            raise ModelError(f"{where}: layers must be a 1-D integer tensor")
        if (layers < 0).any():
            raise ModelError(f"{where}: negative layer {int(layers.min())}")
        if not (torch.isfinite(directions.float()).all() and torch.isfinite(norms.float()).all()):
            raise ModelError(f"{where} holds non-finite values (NaN or inf)")
        if norms.ndim == 1 and (norms <= 0).any():
            raise ModelError(f"{where}: layer norms must be positive")
        try:
            vectors = cls(
                layers=tuple(int(x) for x in layers.tolist()),
                directions=directions.float(),
                norms=norms.float(),
                meta=meta,
            )
            vectors.recorded_gains()  # a malformed gain tag is refused with the file
        except ValueError as exc:
            raise ModelError(f"{where}: {exc}") from None
        return vectors


def file_hash(path: str | Path) -> str:
    """A digest of what a vectors file holds: every tensor (name, dtype, shape,
    bytes) and the metadata, each in sorted order. Not of the raw file bytes:
    safetensors writes its metadata in a per-process order, so the same vectors
    saved by two processes would otherwise hash differently (and refuse a resume)."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    try:
        with safe_open(str(path), framework="pt") as f:
            for key, value in sorted((f.metadata() or {}).items()):
                digest.update(f"meta {key}={value}\n".encode())
            for name in sorted(f.keys()):
                t = f.get_tensor(name).contiguous()
                digest.update(f"tensor {name} {t.dtype} {tuple(t.shape)}\n".encode())
                digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    except OSError:
        raise
    except Exception:  # not a safetensors file (damaged, replaced): hash its bytes
        digest = hashlib.sha256(b"raw\n" + Path(path).read_bytes())
    return digest.hexdigest()[:16]


def cache_path(
    storage_root: str | Path,
    *,
    model_name: str,
    model_identity: str,
    layers: Sequence[int] | None,
    method: str,
    data_hash: str,
    orthogonalize: bool = False,
    variant: str = "",
) -> Path:
    """<root>/vectors/<model>-<identity>-L<layers>-<method>[-orth][-variant]-<data>.safetensors;
    layers=None gives the glob pattern matching any layers."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model_name).name or model_name)[:48]
    lay = "*" if layers is None else "_".join(map(str, sorted(layers)))
    if len(lay) > 40:  # keep names short for many layers
        lay = hashlib.sha256(lay.encode()).hexdigest()[:10]
    orth = "-orth" if orthogonalize else ""
    var = f"-{re.sub(r'[^A-Za-z0-9_]+', '', variant)}" if variant else ""
    name = f"{slug}-{model_identity}-L{lay}-{method}{orth}{var}-{data_hash}.safetensors"
    return Path(storage_root) / "vectors" / name
