"""Typed settings, read from the environment a JupyterHub service receives.

`JUPYTERHUB_*` come from the hub (a managed service gets them set; an external service is given
them by whoever runs it). `HUBKEEPER_*` are Hubkeeper's own. Every field is documented in the
README's settings table; `tests/test_docs.py` keeps the two in step.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
# Decoded by `Settings._prices` (not by pydantic-settings, whose JSON error names no variable).
Prices = Annotated[dict[str, float], NoDecode]
PRICES_EXAMPLE = '{"gpu": 2.5, "*": 0.1}'


class MissingSetting(ValueError):
    """A required setting is absent; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    # --- from the hub -------------------------------------------------------------------
    hub_api_url: str = Field("", validation_alias="JUPYTERHUB_API_URL")
    hub_api_token: str = Field("", validation_alias="JUPYTERHUB_API_TOKEN", repr=False)
    client_id: str = Field("service-hubkeeper", validation_alias="JUPYTERHUB_CLIENT_ID")
    oauth_callback_url: str = Field("", validation_alias="JUPYTERHUB_OAUTH_CALLBACK_URL")
    # Empty = derived in `_derive_paths` (from the hub's base URL and the service name).
    service_prefix: str = Field("", validation_alias="JUPYTERHUB_SERVICE_PREFIX")
    service_name: str = Field("", validation_alias="JUPYTERHUB_SERVICE_NAME")
    # JSON list, as the hub gives a managed service (jupyterhub/services/auth.py
    # HubAuth.access_scopes); empty = `access:services!service=<service_name>`.
    oauth_access_scopes: str = Field("", validation_alias="JUPYTERHUB_OAUTH_ACCESS_SCOPES")
    service_url: str = Field("http://127.0.0.1:10101", validation_alias="JUPYTERHUB_SERVICE_URL")
    # Empty = derived from JUPYTERHUB_API_URL (`.../jhub/hub/api` → `/jhub/`).
    hub_base_url: str = Field("", validation_alias="JUPYTERHUB_BASE_URL")
    hub_host: str = Field("", validation_alias="JUPYTERHUB_HOST")
    hub_public_url: str = Field("", validation_alias="JUPYTERHUB_PUBLIC_URL")
    hub_public_hub_url: str = Field("", validation_alias="JUPYTERHUB_PUBLIC_HUB_URL")

    # --- Hubkeeper's own -----------------------------------------------------------------
    database_url: str = Field(
        "sqlite:///./hubkeeper.sqlite", validation_alias="HUBKEEPER_DATABASE_URL"
    )
    admin_groups: CommaList = Field(default_factory=list, validation_alias="HUBKEEPER_ADMIN_GROUPS")
    manager_groups: CommaList = Field(
        default_factory=list, validation_alias="HUBKEEPER_MANAGER_GROUPS"
    )
    cookie_secret: str = Field("", validation_alias="HUBKEEPER_COOKIE_SECRET", repr=False)
    cookie_secret_file: Path = Field(
        Path("hubkeeper_cookie_secret"), validation_alias="HUBKEEPER_COOKIE_SECRET_FILE"
    )
    audit_spool_file: Path | None = Field(None, validation_alias="HUBKEEPER_AUDIT_SPOOL_FILE")
    # Where events are POSTed (hubkeeper.outbox); none = recorded, not sent.
    webhook_urls: CommaList = Field(default_factory=list, validation_alias="HUBKEEPER_WEBHOOK_URLS")
    hub_timeout: float = Field(10.0, gt=0, validation_alias="HUBKEEPER_HUB_TIMEOUT")
    hub_concurrency: int = Field(8, ge=1, le=100, validation_alias="HUBKEEPER_HUB_CONCURRENCY")
    hub_bulk_concurrency: int = Field(
        8, ge=1, le=100, validation_alias="HUBKEEPER_HUB_BULK_CONCURRENCY"
    )
    active_sync_interval: float = Field(
        3.0, gt=0, validation_alias="HUBKEEPER_ACTIVE_SYNC_INTERVAL"
    )
    # With a proxy API, changes are seen in the proxy's routing table (free for the hub) and
    # the hub's `state=active` list is read only this often, paced (directory/sync.py): about
    # what jupyterhub-idle-culler reads (every running user once per cull interval, 600 s by
    # default); only what the routes cannot show (a spawn pending from another API client, a
    # server without a route) waits for it.
    routes_interval: float = Field(1.0, gt=0, validation_alias="HUBKEEPER_ROUTES_INTERVAL")
    reconcile_interval: float = Field(300.0, gt=0, validation_alias="HUBKEEPER_RECONCILE_INTERVAL")
    full_sync_interval: float = Field(600.0, gt=0, validation_alias="HUBKEEPER_FULL_SYNC_INTERVAL")
    full_sync_page_pause: float = Field(
        0.05, ge=0, validation_alias="HUBKEEPER_FULL_SYNC_PAGE_PAUSE"
    )
    identity_recheck_seconds: int = Field(
        300, ge=10, le=300, validation_alias="HUBKEEPER_IDENTITY_RECHECK_SECONDS"
    )
    token_cache_seconds: int = Field(
        60, ge=0, le=300, validation_alias="HUBKEEPER_TOKEN_CACHE_SECONDS"
    )
    server_log_path: str = Field(
        ".jupyter-server-log.txt", min_length=1, validation_alias="HUBKEEPER_SERVER_LOG_PATH"
    )
    log_level: str = Field("info", validation_alias="HUBKEEPER_LOG_LEVEL")
    # Reaching users' servers (see README "Reaching users' servers"): configurable-http-proxy's
    # REST API gives each server's own address, so reads skip the proxy and count as nobody's
    # activity. HUBKEEPER_PROXY_URL is the fallback for other proxies (reads count as activity).
    proxy_api_url: str = Field("", validation_alias="HUBKEEPER_PROXY_API_URL")
    proxy_auth_token: str = Field("", validation_alias="HUBKEEPER_PROXY_AUTH_TOKEN", repr=False)
    proxy_url: str = Field("", validation_alias="HUBKEEPER_PROXY_URL")
    log_format: Literal["text", "json"] = Field("text", validation_alias="HUBKEEPER_LOG_FORMAT")
    metrics_public: bool = Field(False, validation_alias="HUBKEEPER_METRICS_PUBLIC")
    replica_id: str = Field("", max_length=64, validation_alias="HUBKEEPER_REPLICA_ID")
    leader_interval: float = Field(5.0, gt=0, le=300, validation_alias="HUBKEEPER_LEADER_INTERVAL")
    job_lost_after: float = Field(30.0, gt=0, validation_alias="HUBKEEPER_JOB_LOST_AFTER")
    # Price per server-hour by profile (a session's `user_options["profile"]`), "*" = any
    # other profile and sessions without one. Empty: no prices, usage `cost` is null.
    prices: Prices = Field(default_factory=dict, validation_alias="HUBKEEPER_PRICES")
    # seconds between samples of each running server's memory and CPU (0 = off)
    resources_interval: float = Field(
        60.0, ge=0, le=86400, validation_alias="HUBKEEPER_RESOURCES_INTERVAL"
    )

    # --- the culler's defaults (the culler_config row saved from its page/API overrides them)
    cull_enabled: bool = Field(True, validation_alias="HUBKEEPER_CULL_ENABLED")
    cull_timeout: int = Field(3600, ge=1, validation_alias="HUBKEEPER_CULL_TIMEOUT")
    cull_max_age: int = Field(604800, ge=0, validation_alias="HUBKEEPER_CULL_MAX_AGE")
    cull_interval: int = Field(600, ge=1, validation_alias="HUBKEEPER_CULL_INTERVAL")
    cull_concurrency: int = Field(10, ge=1, le=100, validation_alias="HUBKEEPER_CULL_CONCURRENCY")
    cull_admin_users: bool = Field(True, validation_alias="HUBKEEPER_CULL_ADMIN_USERS")
    cull_named_servers: Literal["cull", "cull_and_remove", "keep"] = Field(
        "cull", validation_alias="HUBKEEPER_CULL_NAMED_SERVERS"
    )
    cull_users: bool = Field(False, validation_alias="HUBKEEPER_CULL_USERS")
    cull_group_timeouts: dict[str, int] = Field(
        default_factory=dict, validation_alias="HUBKEEPER_CULL_GROUP_TIMEOUTS"
    )
    cull_kernels_enabled: bool = Field(True, validation_alias="HUBKEEPER_CULL_KERNELS_ENABLED")
    cull_kernels_timeout: int = Field(3600, ge=1, validation_alias="HUBKEEPER_CULL_KERNELS_TIMEOUT")
    cull_kernels_interval: int = Field(
        300, ge=1, validation_alias="HUBKEEPER_CULL_KERNELS_INTERVAL"
    )
    cull_kernels_busy: bool = Field(False, validation_alias="HUBKEEPER_CULL_KERNELS_BUSY")
    cull_kernels_connected: bool = Field(False, validation_alias="HUBKEEPER_CULL_KERNELS_CONNECTED")
    cull_stop_timeout: float = Field(300.0, gt=0, validation_alias="HUBKEEPER_CULL_STOP_TIMEOUT")

    @field_validator("admin_groups", "manager_groups", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        """Fill what an external service is often not given, as a managed one would get it.

        The hub's base URL comes from JUPYTERHUB_API_URL when JUPYTERHUB_BASE_URL is unset:
        the hub serves its API at `<base_url>hub/api` (jupyterhub/app.py `hub_prefix` =
        base_url + "hub/"), so `http://hub:8081/jhub/hub/api` → `/jhub/`. The service name
        comes from the client id `service-<name>` (jupyterhub/app.py `init_services`), the
        prefix is `<base_url>services/<name>/` (jupyterhub/services/service.py `prefix`).
        """
        if not self.service_name:
            client = self.client_id
            self.service_name = client.removeprefix("service-") if client else "hubkeeper"
        if not self.hub_base_url.strip():
            self.hub_base_url = base_url_from_api_url(self.hub_api_url)
        self.hub_base_url = _slashed(self.hub_base_url)
        if not self.service_prefix.strip():
            self.service_prefix = f"{self.hub_base_url}services/{self.service_name}/"
        self.service_prefix = _slashed(self.service_prefix)
        return self

    @cached_property
    def access_scopes(self) -> frozenset[str]:
        """Scopes of which a caller's token must hold one to use Hubkeeper at all."""
        if self.oauth_access_scopes.strip():
            try:
                listed = json.loads(self.oauth_access_scopes)
            except ValueError:
                listed = None
            if isinstance(listed, list) and all(isinstance(x, str) for x in listed) and listed:
                return frozenset(listed)
            raise MissingSetting(
                "JUPYTERHUB_OAUTH_ACCESS_SCOPES must be a JSON list of scope strings"
            )
        return frozenset({f"access:services!service={self.service_name}"})

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _webhook_urls(cls, value: object) -> object:
        urls = value
        if isinstance(value, str):
            urls = [part.strip() for part in value.split(",") if part.strip()]
        for url in urls if isinstance(urls, list) else []:
            parts = urlsplit(str(url))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                # the message names only the start: such URLs carry their secret in the path
                raise ValueError(
                    "each webhook URL must be http(s)://host/...; "
                    f"got one starting {str(url)[:10]!r}"
                )
        return urls

    @field_validator("cull_group_timeouts", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        # From the environment pydantic-settings decodes JSON itself; given directly (tests,
        # a .env loader passing strings), decode it here the same way.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError(
                    'must be a JSON object of group → seconds, e.g. {"long-jobs": 28800}'
                ) from None
        return value

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: object) -> object:
        """A JSON object of profile → non-negative number (price per server-hour)."""
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError(
                    f"not valid JSON: use an object of profile → price "
                    f"per server-hour, e.g. {PRICES_EXAMPLE}"
                ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f"must be a JSON object of profile → price per server-hour, e.g. {PRICES_EXAMPLE}"
            )
        for key, price in value.items():
            if (
                not isinstance(price, int | float)
                or isinstance(price, bool)
                or not math.isfinite(price)
                or price < 0
            ):
                raise ValueError(
                    f"the price of {key!r} must be a number >= 0 (per server-hour), not {price!r}"
                )
        return {str(key): float(price) for key, price in value.items()}

    # --- derived -------------------------------------------------------------------------
    def require_hub(self) -> None:
        """Fail fast, naming the variable, when the hub cannot be reached at all."""
        if not self.hub_api_url:
            raise MissingSetting(
                "JUPYTERHUB_API_URL is not set: Hubkeeper needs the hub's API URL "
                "(e.g. http://127.0.0.1:8081/hub/api)"
            )
        if not self.hub_api_token:
            raise MissingSetting(
                "JUPYTERHUB_API_TOKEN is not set: Hubkeeper needs the service's API token"
            )

    @cached_property
    def proxy_token(self) -> str:
        """HUBKEEPER_PROXY_AUTH_TOKEN, else CONFIGPROXY_AUTH_TOKEN (what the hub and
        configurable-http-proxy share, already present wherever the proxy's token is)."""
        return self.proxy_auth_token or os.environ.get("CONFIGPROXY_AUTH_TOKEN", "")

    @cached_property
    def replica(self) -> str:
        """This process's name among the replicas: HUBKEEPER_REPLICA_ID, else host:pid."""
        if self.replica_id:
            return self.replica_id
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"[:64]

    @cached_property
    def bind_host(self) -> str:
        return urlsplit(self.service_url).hostname or "127.0.0.1"

    @cached_property
    def bind_port(self) -> int:
        return urlsplit(self.service_url).port or 10101

    @cached_property
    def browser_hub_url(self) -> str:
        """Where a browser reaches the hub: its public origin + base URL, no trailing slash.

        The hub gives a managed service JUPYTERHUB_PUBLIC_HUB_URL (the hub's public URL) and
        JUPYTERHUB_PUBLIC_URL (the *service's* own public URL); only their origin is used, the
        path always comes from JUPYTERHUB_BASE_URL. Empty origin = same origin (relative).
        """
        origin = ""
        for candidate in (self.hub_public_hub_url, self.hub_public_url, self.hub_host):
            parts = urlsplit(candidate)
            if parts.scheme and parts.netloc:
                origin = f"{parts.scheme}://{parts.netloc}"
                break
        return (
            origin + "/" + self.hub_base_url.strip("/") if self.hub_base_url.strip("/") else origin
        )

    @cached_property
    def secure_cookies(self) -> bool:
        return self.browser_hub_url.startswith("https://") or self.hub_public_url.startswith(
            "https://"
        )

    @property
    def audit_spool_path(self) -> Path:
        """Where audit events wait while the database is down: HUBKEEPER_AUDIT_SPOOL_FILE, else
        beside the cookie secret file (the directory deployments keep Hubkeeper's data in)."""
        if self.audit_spool_file:
            return self.audit_spool_file
        return self.cookie_secret_file.with_name("hubkeeper_audit_spool.jsonl")

    def resolved_cookie_secret(self) -> str:
        """The configured secret, or one generated once and kept in a 0600 file."""
        if self.cookie_secret:
            return self.cookie_secret
        path = self.cookie_secret_file
        if path.exists():
            return path.read_text().strip()
        secret = secrets.token_hex(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secret)
        return secret


def _slashed(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def base_url_from_api_url(api_url: str) -> str:
    """The hub's base URL from its API URL: `http://h:8081/jhub/hub/api/` → `/jhub/`.

    An API URL that does not end in `hub/api` (a proxy rewriting paths) gives `/`.
    """
    path = urlsplit(api_url).path.rstrip("/")
    if path.endswith("/hub/api"):
        return _slashed(path[: -len("/hub/api")])
    return "/"


def get_settings() -> Settings:
    return Settings()
