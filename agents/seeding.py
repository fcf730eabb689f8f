"""Seeds derived from (run seed, purpose, tick, index), so a draw does not
depend on how many other draws happened before it: runs reproduce across
batch sizes and world sizes, and a resumed run continues identically."""

from __future__ import annotations

import hashlib
import struct

import numpy as np

# One stream id per purpose; never reuse or renumber.
POPULATION = 1
SCHEDULER = 2
GENERATION = 3
REFLECTION = 4


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that is a pure function of the integer parts."""
    payload = struct.pack(f"<{len(parts)}q", *(int(p) & 0x7FFF_FFFF_FFFF_FFFF for p in parts))
    digest = hashlib.blake2b(payload, digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def rng_for(*parts: int) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))
