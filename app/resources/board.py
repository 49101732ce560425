"""The last figures of every running server, in memory: what the pages and the API read.

The sampling replica replaces them after each pass; the others load them from the database
(store.py) every few seconds. Reads are plain dictionary lookups (no I/O).
"""

from __future__ import annotations

from hubkeeper.resources.figures import Figures

Key = tuple[str, str]  # (user, server); "" = the default server


class ResourceBoard:
    """`get(user, server)`; `version` changes whenever the figures do (the pages' poll)."""

    def __init__(self) -> None:
        self._figures: dict[Key, Figures] = {}
        self._by_user: dict[str, list[Figures]] = {}
        self.version = 0

    def replace(self, figures: dict[Key, Figures]) -> bool:
        """Take these figures as the whole board; True when anything changed."""
        if figures == self._figures:
            return False
        self._figures = dict(figures)
        by_user: dict[str, list[Figures]] = {}
        for (user, _server), found in self._figures.items():
            by_user.setdefault(user, []).append(found)
        self._by_user = by_user
        self.version += 1
        return True

    def get(self, user: str, server: str) -> Figures | None:
        return self._figures.get((user, server))

    def users(self) -> set[str]:
        """The users with figures for at least one server."""
        return set(self._by_user)

    def user_total(self, user: str, what: str) -> float | None:
        """The sum of `what` ("memory" or "cpu") over the user's sampled servers; None when no
        server of theirs has that figure."""
        values = [
            v
            for f in self._by_user.get(user, ())
            if (v := (f.memory_bytes if what == "memory" else f.cpu_percent)) is not None
        ]
        return sum(values) if values else None

    def value(self, user: str, server: str, what: str) -> float | None:
        found = self._figures.get((user, server))
        if found is None:
            return None
        return found.memory_bytes if what == "memory" else found.cpu_percent

    def __len__(self) -> int:
        return len(self._figures)
