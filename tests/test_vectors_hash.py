"""The vectors hash names what a file holds, not how safetensors laid it out:
the same vectors saved by two processes must hash the same (a resume compares
them), and any change of a value must change the hash."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from agents.steering.vectors import file_hash  # noqa: E402


def _relaid(src, dst) -> None:
    """dst: src's tensors and metadata with the JSON header written in another
    key order (as another process's safetensors may write it), the same data."""
    raw = src.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header = {k: header[k] for k in reversed(list(header))}
    if "__metadata__" in header:
        header["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))
    text = json.dumps(header, indent=1).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    dst.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])


def test_same_vectors_same_hash_whatever_the_layout(tmp_path) -> None:
    tensors = {"layer_3": torch.arange(10.0).reshape(2, 5), "layer_1": torch.ones(2, 5)}
    meta = {"model": "m", "method": "mean_diff", "layers": "1,3"}
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    save_file(tensors, str(a), metadata=meta)
    save_file(dict(reversed(tensors.items())), str(b), metadata=dict(reversed(meta.items())))
    _relaid(a, c)  # a layout that surely differs: safetensors' own order is per process
    assert c.read_bytes() != a.read_bytes()
    assert file_hash(a) == file_hash(b) == file_hash(c)


def test_any_change_changes_the_hash(tmp_path) -> None:
    base = {"layer_1": torch.ones(2, 5)}
    paths = []
    for i, (tensors, meta) in enumerate(
        [
            (base, {"method": "mean_diff"}),
            (
                {"layer_1": torch.ones(2, 5).index_fill(1, torch.tensor([4]), 2.0)},
                {"method": "mean_diff"},
            ),
            (base, {"method": "pca"}),
            ({"layer_2": torch.ones(2, 5)}, {"method": "mean_diff"}),
        ]
    ):
        paths.append(tmp_path / f"{i}.safetensors")
        save_file(tensors, str(paths[-1]), metadata=meta)
    assert len({file_hash(p) for p in paths}) == len(paths)


def test_a_damaged_file_hashes_without_raising(tmp_path) -> None:
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_file({"layer_1": torch.ones(2, 5)}, str(good))
    bad.write_bytes(b"not the vectors")
    assert file_hash(bad) != file_hash(good) and len(file_hash(bad)) == 16
