"""Every table Hubkeeper keeps. Alembic's autogenerate reads this module's metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Text
from sqlmodel import Field, SQLModel

from hubkeeper.kit.clock import utcnow


def UTCDateTime(**kw: object) -> Column:  # noqa: N802 - reads like a type in models
    return Column(DateTime(timezone=True), **kw)  # type: ignore[arg-type]


class AuditEvent(SQLModel, table=True):
    """An action a person (or the system) took, whether it worked or not."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True))
    actor: str = Field(index=True, max_length=255)
    action: str = Field(index=True, max_length=64)
    target: str = Field(default="", index=True, max_length=512)
    outcome: str = Field(default="ok", max_length=16)  # ok | failed | pending
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    via: str = Field(default="web", max_length=16)  # web | api | cli | system


class WebSession(SQLModel, table=True):
    """A browser sign-in. The cookie carries only the signed id; everything else stays here."""

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)
    user: str = Field(index=True, max_length=255)
    role: str = Field(max_length=16)
    access_token: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    checked_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))


class Lockdown(SQLModel, table=True):
    """A period during which the hub refuses to start servers; `ended_at` is null while active."""

    __tablename__ = "lockdown"

    id: int | None = Field(default=None, primary_key=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True)
    )
    started_by: str = Field(max_length=255)
    stop_servers: bool = Field(default=True)
    ended_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    ended_by: str | None = Field(default=None, max_length=255)


class ServerSession(SQLModel, table=True):
    """One run of one server, from ready to stopped; `stopped_at` is null while it runs."""

    __tablename__ = "server_session"

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(index=True, max_length=255)
    server: str = Field(default="", max_length=255)  # "" = the default server
    started_at: datetime = Field(sa_column=UTCDateTime(nullable=False, index=True))
    stopped_at: datetime | None = Field(
        default=None, sa_column=UTCDateTime(nullable=True, index=True)
    )
    duration_s: float | None = Field(default=None)  # set when it stops
    stop_reason: str | None = Field(default=None, max_length=16)  # admin|culled|lockdown|unknown
    stopped_by: str | None = Field(default=None, max_length=255)


class CullEvent(SQLModel, table=True):
    """One server or kernel the culler stopped (or tried to), with why and the settings then."""

    __tablename__ = "cull_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False, index=True))
    kind: str = Field(index=True, max_length=16)  # server | kernel
    user: str = Field(index=True, max_length=255)
    server: str = Field(default="", max_length=255)  # "" = the default server
    kernel_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=16)  # idle | max_age
    inactive_s: float | None = Field(default=None)  # seconds idle when decided (None: unknown)
    age_s: float | None = Field(default=None)  # seconds since the server started
    outcome: str = Field(default="ok", max_length=16)  # ok | error
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    settings: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    actor: str = Field(default="culler", max_length=255)  # culler, or the admin who ran it


class CullExemption(SQLModel, table=True):
    """A user or a group the culler leaves alone, until `until` (None: until deleted)."""

    __tablename__ = "cull_exemption"

    id: int | None = Field(default=None, primary_key=True)
    user: str | None = Field(default=None, index=True, max_length=255)
    group: str | None = Field(default=None, index=True, max_length=255)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    until: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    created_by: str = Field(max_length=255)
    deleted_at: datetime | None = Field(default=None, sa_column=UTCDateTime(nullable=True))


class CullerConfig(SQLModel, table=True):
    """The culler settings saved from the page or the API (one row; absent = env defaults)."""

    __tablename__ = "culler_config"

    id: int | None = Field(default=None, primary_key=True)
    settings: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=UTCDateTime(nullable=False))
    updated_by: str = Field(max_length=255)


class CullRun(SQLModel, table=True):
    """One culler pass (servers or kernels): when, how long, what it did; `last_run` reads it."""

    __tablename__ = "cull_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # servers | kernels
    started_at: datetime = Field(sa_column=UTCDateTime(nullable=False, index=True))
    finished_at: datetime = Field(sa_column=UTCDateTime(nullable=False))
    duration_s: float = Field(default=0.0)
    actor: str = Field(default="culler", max_length=255)
    dry_run: bool = Field(default=False)
    culled: int = Field(default=0)
    errors: int = Field(default=0)
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
