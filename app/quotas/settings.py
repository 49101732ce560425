"""Server-hour quotas per calendar month (UTC), per user and per group, saved in the database
(one row, like the culler's settings) and audited.

Which quota applies to a user: their own, if set; otherwise the largest of their groups'
(a member of a generous course is not held to a stricter one); otherwise none.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine
from sqlmodel import select

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import QuotaConfig
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.window import BadInput

NAME_MAX = 255
Hours = Annotated[float, Field(ge=0, le=24 * 31 * 100)]  # server-hours in a month


class Quotas(BaseModel):
    """`{"users": {"<name>": hours}, "groups": {"<group>": hours}, "enforce": false}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    users: dict[str, Hours] = Field(default_factory=dict)
    groups: dict[str, Hours] = Field(default_factory=dict)
    enforce: bool = False  # refuse spawns over quota (the hub plugin's pre-spawn hook)

    @field_validator("users", "groups", mode="before")
    @classmethod
    def _numbers(cls, value: object) -> object:
        # whole numbers are hours too (strict mode would refuse an int for a float)
        if isinstance(value, dict):
            return {k: float(v) if type(v) is int else v for k, v in value.items()}
        return value

    @field_validator("users", "groups")
    @classmethod
    def _names(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not name.strip() or len(name) > NAME_MAX:
                raise ValueError("names must be 1 to 255 characters, not blank")
        return dict(sorted(value.items()))

    def hours_for(self, user: str, groups: list[str] | tuple[str, ...]) -> float | None:
        """The monthly quota in server-hours that applies to `user` (None: no quota)."""
        if user in self.users:
            return self.users[user]
        found = [self.groups[g] for g in groups if g in self.groups]
        return max(found) if found else None


def parse_put(body: object) -> Quotas:
    """The whole object from a PUT body. Raises BadInput (422 `invalid_quotas`) naming every
    problem; nothing is changed on error."""
    if not isinstance(body, dict):
        raise BadInput("The quotas must be a JSON object", code="invalid_quotas")
    try:
        return Quotas.model_validate(body)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        ]
        raise BadInput("Invalid quotas: " + "; ".join(problems), code="invalid_quotas") from None


def load(engine: Engine) -> tuple[Quotas, datetime | None, str | None]:
    """The quotas saved (none: empty, not enforced), when and by whom (blocking)."""
    with session_scope(engine) as session:
        row = session.exec(select(QuotaConfig).order_by(QuotaConfig.id)).first()  # type: ignore[arg-type]
        if row is None:
            return Quotas(), None, None
        try:
            return Quotas.model_validate_json(row.settings), row.updated_at, row.updated_by
        except ValidationError:
            return Quotas(), None, None


def save(engine: Engine, quotas: Quotas, who: str) -> None:
    """Write the one row (blocking)."""
    with session_scope(engine) as session:
        row = session.exec(select(QuotaConfig).order_by(QuotaConfig.id)).first()  # type: ignore[arg-type]
        if row is None:
            row = QuotaConfig(settings=quotas.model_dump_json(), updated_by=who)
        else:
            row.settings = quotas.model_dump_json()
            row.updated_at = utcnow()
            row.updated_by = who
        session.add(row)


def diff(old: Quotas, new: Quotas) -> str:
    """What changed, for the audit record."""
    changes = []
    for part in ("users", "groups"):
        before, after = getattr(old, part), getattr(new, part)
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                changes.append(
                    f"{part}.{name}: {json.dumps(before.get(name))} → {json.dumps(after.get(name))}"
                )
    if old.enforce != new.enforce:
        changes.append(f"enforce: {json.dumps(old.enforce)} → {json.dumps(new.enforce)}")
    return "; ".join(changes) or "no change"
