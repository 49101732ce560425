"""One page of a query, and how many rows the whole query matches (for `total`)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

T = TypeVar("T")


def fetch_page(
    session: Session, query: SelectOfScalar[T], *order_by: Any, offset: int, limit: int
) -> tuple[list[T], int]:
    """`query` ordered by `order_by` and cut at offset/limit, with the unpaged count."""
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(*order_by).offset(offset).limit(limit)).all()
    return list(rows), int(total)
