"""What the quota endpoints answer."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from hubkeeper.kit.schemas import UtcTimes


class QuotasOut(UtcTimes):
    users: dict[str, float] = Field(description="server-hours per calendar month, per user")
    groups: dict[str, float] = Field(
        description="per group; a user without a quota of their own gets their largest group's"
    )
    enforce: bool = Field(description="spawns over quota are refused by the hub plugin's hook")
    updated_at: datetime | None
    updated_by: str | None


class QuotaUse(UtcTimes):
    used_hours: float = Field(description="server-hours this calendar month (UTC), so far")
    quota_hours: float | None = Field(description="the quota that applies; null: none")
    resets_at: datetime = Field(description="the next month's start (UTC)")


class QuotaCheck(BaseModel):
    allowed: bool
    message: str = Field(description="why not, for the user's spawn page")
