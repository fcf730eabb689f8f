"""frozen_heap: the objects alive when a run's tick loop starts are out of the
collector's reach for the loop, garbage from before is not kept, nesting
unfreezes once."""

from __future__ import annotations

import gc
import weakref

from orchestrator.frozen_heap import frozen_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_freezes_for_the_block_and_nests() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with frozen_heap():
            assert gc.get_freeze_count() == frozen  # the inner block freezes nothing more
        assert gc.get_freeze_count() == frozen  # ... and does not unfreeze the outer
    assert gc.get_freeze_count() == 0


def test_earlier_garbage_is_collected_not_frozen() -> None:
    node = _Node()
    gone = weakref.ref(node)
    del node  # unreachable, but alive until the cyclic collector runs
    with frozen_heap():
        assert gone() is None


def test_cycles_made_in_the_block_are_still_collected() -> None:
    with frozen_heap():
        node = _Node()
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
