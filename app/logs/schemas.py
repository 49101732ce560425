"""The logs API's JSON."""

from __future__ import annotations

from pydantic import BaseModel, Field


class LogOut(BaseModel):
    lines: list[str] = Field(description="the last lines of the log, oldest first")
    source: str = Field(description="where the log was read, for people")
    truncated: bool = Field(description="the file holds earlier lines than these")
