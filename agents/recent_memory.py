"""The simplest MemoryStore: each agent remembers its last few memories and
retrieves the newest ones. Kept for tests and as the baseline the scored
memory stream is compared with."""

from __future__ import annotations

from collections import deque

from agents.typing import MemoryKind


class RecentMemory:
    def __init__(self, *, capacity: int = 50, top_k: int = 5) -> None:
        self.capacity, self.top_k = capacity, top_k
        self._items: dict[str, deque[tuple[int, str, str]]] = {}

    def add(self, agent_id: str, tick: int, text: str, kind: MemoryKind) -> None:
        self._items.setdefault(agent_id, deque(maxlen=self.capacity)).append((tick, kind, text))

    def end_tick(self, tick: int) -> None:
        pass

    def retrieve(self, queries: dict[str, str], tick: int) -> dict[str, list[str]]:
        return {a: [t for _, _, t in list(self._items.get(a, ()))[-self.top_k :]] for a in queries}

    def get_state(self) -> dict:
        return {a: [list(x) for x in items] for a, items in self._items.items()}

    def set_state(self, state: dict) -> None:
        self._items = {
            a: deque((tuple(x) for x in items), maxlen=self.capacity) for a, items in state.items()
        }
