"""The slices of the hub's user and server models that Hubkeeper reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class HubServer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = ""
    ready: bool = False
    pending: str | None = None  # "spawn" | "stop" | None
    stopped: bool = False
    started: datetime | None = None
    last_activity: datetime | None = None
    url: str = ""
    progress_url: str = ""
    user_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("user_options", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        # A stopped server (include_stopped_servers=1) reports `"user_options": null`.
        return {} if value is None else value

    @property
    def profile(self) -> str | None:
        """The profile it was started with: `user_options["profile"]` (the key KubeSpawner's
        profile list and most options forms use; KubeSpawner puts the chosen profile's slug
        there), None when absent, empty or not a string. At most 255 characters."""
        found = self.user_options.get("profile")
        return found[:255] if isinstance(found, str) and found else None

    @property
    def status(self) -> str:
        """running | starting | stopping | stopped, as an admin would say it."""
        if self.pending == "spawn":
            return "starting"
        if self.pending == "stop":
            return "stopping"
        if self.ready:
            return "running"
        if self.stopped or not self.started:
            return "stopped"
        return "starting"


class HubUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    admin: bool = False
    groups: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    created: datetime | None = None
    last_activity: datetime | None = None
    pending: str | None = None
    servers: dict[str, HubServer] = Field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> HubUser:
        servers = {
            name: HubServer.model_validate({**server, "name": name})
            for name, server in (data.get("servers") or {}).items()
        }
        return cls.model_validate({**data, "servers": servers})


class HubIdentity(BaseModel):
    """What `GET /hub/api/user` says about the holder of a token."""

    model_config = ConfigDict(extra="ignore")

    kind: str = "user"
    name: str
    admin: bool = False
    groups: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)


class ProgressEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    progress: int | None = None
    message: str = ""
    ready: bool = False
    failed: bool = False
    url: str | None = None
