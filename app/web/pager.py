"""Page numbers for list pages (users, audit, history, culls): what to link and what is shown."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Pager:
    page: int
    total: int
    size: int = DEFAULT_PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_item(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.size + 1

    @property
    def last_item(self) -> int:
        return min(self.total, self.page * self.size)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    def window(self, radius: int = 2) -> list[int | None]:
        """Page numbers to link, with None for a gap: 1 … 4 5 [6] 7 8 … 20."""
        wanted = {1, self.pages, *range(self.page - radius, self.page + radius + 1)}
        numbers = sorted(n for n in wanted if 1 <= n <= self.pages)
        out: list[int | None] = []
        for n in numbers:
            if out and isinstance(out[-1], int) and n - out[-1] > 1:
                out.append(None)
            out.append(n)
        return out
