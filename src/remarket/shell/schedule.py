"""In-memory index of when each customer next needs a tick.

The source of truth is `due_at` inside each changelogged state; this index is only a cache of
it for the partitions this worker owns, rebuilt from the table after every assignment change.
So a restart or rebalance loses nothing: due work fires late, never not at all.
"""
from __future__ import annotations

import heapq
from datetime import datetime


class DueIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._due)

    def set(self, customer_id: str, due_at: datetime | None) -> None:
        if due_at is None:
            self._due.pop(customer_id, None)  # a stale heap entry is skipped on pop
            return
        if self._due.get(customer_id) == due_at:
            return
        self._due[customer_id] = due_at
        heapq.heappush(self._heap, (due_at, customer_id))
        if len(self._heap) > 4 * len(self._due) + 1024:
            self._compact()

    def due_by(self, customer_id: str, now: datetime) -> bool:
        due_at = self._due.get(customer_id)
        return due_at is not None and due_at <= now

    def earliest(self) -> datetime | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale: re-set or removed since
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime, limit: int = 10_000) -> list[tuple[str, datetime]]:
        """(customer, due time) whose due time has passed; they leave the index until re-set."""
        due: list[tuple[str, datetime]] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            at, customer_id = heapq.heappop(self._heap)
            if self._due.get(customer_id) == at:
                del self._due[customer_id]
                due.append((customer_id, at))
        return due

    @classmethod
    def of(cls, due: dict[str, datetime]) -> "DueIndex":
        """An index of `due` (customer -> due time), which it takes over."""
        index = cls()
        index._due = due
        index._compact()
        return index

    def _compact(self) -> None:
        self._heap = [(at, cid) for cid, at in self._due.items()]
        heapq.heapify(self._heap)
