"""A base for API models whose datetimes are written in UTC with an explicit offset."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, field_serializer

from hubkeeper.kit.clock import iso_utc


class UtcTimes(BaseModel):
    """Every datetime field serialises as ISO 8601 in UTC (`+00:00`), as the contract says."""

    @field_serializer("*", when_used="json")
    def _utc(self, value: object) -> object:
        return iso_utc(value) if isinstance(value, datetime) else value
