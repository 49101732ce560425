"""The culler's settings: defaults from `HUBKEEPER_CULL_*`, overridden by the saved row.

The contract's `GET/PUT api/v1/culler` object. Every duration is whole seconds (≥ 1; `max_age_s`
0 = off); a PUT replaces the whole object and is validated before anything is written. The
settings are re-read at the start of every pass, so a change applies from the next one.
Names and defaults follow jupyterhub-idle-culler 2.0 where it has the setting
(`jupyterhub_idle_culler/__init__.py`, class `IdleCuller`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine
from sqlmodel import select

from hubkeeper.config import Settings
from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import CullerConfig
from hubkeeper.kit.clock import utcnow
from hubkeeper.kit.durations import as_seconds, parse_duration
from hubkeeper.kit.window import BadInput

Seconds = Annotated[int, Field(ge=1, le=10 * 365 * 86400)]
NamedPolicy = Literal["cull", "cull_and_remove", "keep"]
IdleSource = Literal["hub", "kernels"]
# Keys added after the first release: a PUT without them keeps their current values (the
# contract: scripts written before them keep working).
NEWER_KEYS = ("keep_busy", "idle_source", "warn_before_s", "keep_s", "max_keeps")
GROUP_NAME_MAX = 255


class KernelSettings(BaseModel):
    """Kernel culling, with jupyter_server's meanings (`MappingKernelManager.cull_*`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = True
    timeout_s: Seconds = 3600
    interval_s: Seconds = 300
    cull_busy: bool = False
    cull_connected: bool = False


class CullerSettings(BaseModel):
    """What a pass does; `last_run` is not part of it (read-only, reported beside it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = True
    timeout_s: Seconds = 3600
    max_age_s: Annotated[int, Field(ge=0, le=10 * 365 * 86400)] = 604800
    interval_s: Seconds = 600
    concurrency: Annotated[int, Field(ge=1, le=100)] = 10
    cull_admin_users: bool = True
    named_servers: NamedPolicy = "cull"
    cull_users: bool = False
    group_timeouts: dict[str, Seconds] = Field(default_factory=dict)
    kernels: KernelSettings = Field(default_factory=KernelSettings)
    # Newer keys (a PUT without them keeps their current values, see NEWER_KEYS):
    # a server with a busy kernel or a terminal used within the timeout is not culled for
    # idleness (max age still applies)
    keep_busy: bool = True
    # "hub": the hub's last_activity (idle-culler's meaning); "kernels": idle when no kernel
    # executed and no terminal was used for timeout_s (an open tab's polling is not use)
    idle_source: IdleSource = "hub"
    # a server due to be culled within this many seconds gets one `cull.warning` (0 = off)
    warn_before_s: Annotated[int, Field(ge=0, le=10 * 365 * 86400)] = 0
    keep_s: Seconds = 7200  # one "keep running" postpones idle culling this long
    max_keeps: Annotated[int, Field(ge=0, le=1000)] = 3  # keeps per server start

    @field_validator("group_timeouts")
    @classmethod
    def _group_names(cls, value: dict[str, int]) -> dict[str, int]:
        for name in value:
            if not name.strip() or len(name) > GROUP_NAME_MAX:
                raise ValueError("group names must be 1 to 255 characters, not blank")
        return dict(sorted(value.items()))

    def timeout_for(self, groups: list[str] | tuple[str, ...]) -> int:
        """The idle timeout (seconds) for a member of `groups`: the longest of its groups'
        timeouts, else the global one. A group timeout may be shorter than the global one."""
        found = [self.group_timeouts[g] for g in groups if g in self.group_timeouts]
        return max(found) if found else self.timeout_s

    def as_json(self) -> str:
        return self.model_dump_json()


def from_env(settings: Settings) -> CullerSettings:
    """The defaults: `HUBKEEPER_CULL_*` (already typed and range-checked in config.py)."""
    return CullerSettings(
        enabled=settings.cull_enabled,
        timeout_s=settings.cull_timeout,
        max_age_s=settings.cull_max_age,
        interval_s=settings.cull_interval,
        concurrency=settings.cull_concurrency,
        cull_admin_users=settings.cull_admin_users,
        named_servers=settings.cull_named_servers,
        cull_users=settings.cull_users,
        group_timeouts=dict(settings.cull_group_timeouts),
        kernels=KernelSettings(
            enabled=settings.cull_kernels_enabled,
            timeout_s=settings.cull_kernels_timeout,
            interval_s=settings.cull_kernels_interval,
            cull_busy=settings.cull_kernels_busy,
            cull_connected=settings.cull_kernels_connected,
        ),
    )


def _saved_row(engine: Engine) -> CullerConfig | None:
    with session_scope(engine) as session:
        return session.exec(select(CullerConfig).order_by(CullerConfig.id)).first()  # type: ignore[arg-type]


def load(engine: Engine, settings: Settings) -> tuple[CullerSettings, datetime | None, str | None]:
    """The settings in force, and when and by whom they were saved (None, None: env defaults).

    A saved row that no longer validates (edited by hand) falls back to the env defaults
    rather than stopping the culler with an error nobody sees.
    """
    row = _saved_row(engine)
    if row is None:
        return from_env(settings), None, None
    try:
        return CullerSettings.model_validate_json(row.settings), row.updated_at, row.updated_by
    except ValidationError:
        return from_env(settings), None, None


DURATIONS = ("timeout_s", "max_age_s", "interval_s")
KERNEL_DURATIONS = ("timeout_s", "interval_s")


def human_durations(data: dict[str, Any]) -> dict[str, Any]:
    """Durations may be written in human units ("90m", "7d") as well as seconds: those become
    whole seconds (what is stored and returned); text that is no duration stays for
    validation to name."""
    out = dict(data)
    for name in DURATIONS:
        if name in out:
            out[name] = as_seconds(out[name])
    if isinstance(out.get("group_timeouts"), dict):
        out["group_timeouts"] = {g: as_seconds(v) for g, v in out["group_timeouts"].items()}
    if isinstance(out.get("kernels"), dict):
        kernels = dict(out["kernels"])
        for name in KERNEL_DURATIONS:
            if name in kernels:
                kernels[name] = as_seconds(kernels[name])
        out["kernels"] = kernels
    return out


def parse_put(body: object, current: CullerSettings | None = None) -> CullerSettings:
    """The whole settings object from a PUT body; `last_run` is ignored, and a key of
    NEWER_KEYS left out keeps its `current` value (its default without `current`).

    Raises BadInput (422 `invalid_settings`) naming every problem: a missing field, an unknown
    field, a wrong type or a value out of range. Nothing is changed on error.
    """
    if not isinstance(body, dict):
        raise BadInput("The culler settings must be a JSON object", code="invalid_settings")
    data = human_durations({k: v for k, v in body.items() if k != "last_run"})
    kept = (current or CullerSettings()).model_dump()
    for key in NEWER_KEYS:
        data.setdefault(key, kept[key])
    if "keep_s" in body:
        data["keep_s"] = as_seconds(data["keep_s"])
    if "warn_before_s" in body:
        data["warn_before_s"] = as_seconds(data["warn_before_s"])
    problems: list[str] = []
    missing = [name for name in CullerSettings.model_fields if name not in data]
    problems += [f"{name}: missing (PUT takes the whole object)" for name in missing]
    kernels = data.get("kernels")
    if isinstance(kernels, dict):
        problems += [
            f"kernels.{name}: missing (PUT takes the whole object)"
            for name in KernelSettings.model_fields
            if name not in kernels
        ]
    try:
        parsed = CullerSettings.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            if not any(p.startswith(f"{where}: missing") for p in problems):
                problems.append(f"{where}: {_why(error)}")
        parsed = None
    if problems or parsed is None:
        raise BadInput("Invalid culler settings: " + "; ".join(problems), code="invalid_settings")
    return parsed


def _why(error: Any) -> str:
    """Pydantic's sentence, except for a duration given as text it could not read ("1h30",
    "-5m"): then which forms are taken, not "Input should be a valid integer"."""
    given = error.get("input")
    if error["type"] in ("int_parsing", "int_type") and isinstance(given, str):
        try:
            parse_duration(given)
        except ValueError as problem:
            return str(problem)
    return str(error["msg"])


def diff(old: CullerSettings, new: CullerSettings) -> list[str]:
    """`field: old → new` for every setting that changed (kernels.* flattened)."""
    changes = []
    before, after = _flat(old.model_dump()), _flat(new.model_dump())
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changes.append(f"{key}: {json.dumps(before.get(key))} → {json.dumps(after.get(key))}")
    return changes


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key == "kernels":
            flat.update(_flat(value, f"{key}."))
        else:
            flat[prefix + key] = value
    return flat


def save(engine: Engine, new: CullerSettings, who: str) -> None:
    """Write the settings row (one row: updated in place)."""
    with session_scope(engine) as session:
        row = session.exec(select(CullerConfig).order_by(CullerConfig.id)).first()  # type: ignore[arg-type]
        if row is None:
            row = CullerConfig(settings=new.as_json(), updated_by=who)
        else:
            row.settings = new.as_json()
            row.updated_at = utcnow()
            row.updated_by = who
        session.add(row)
