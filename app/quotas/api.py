"""`api/v1/quotas` (read, replace), `api/v1/me/quota`, and `api/v1/quotas/check` for the hub
plugin's pre-spawn hook."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from hubkeeper.actions.audit import audit, require_recordable
from hubkeeper.deps import (
    CurrentAdmin,
    CurrentReader,
    CurrentUser,
    HubPluginCaller,
    SpawnsDep,
    StateDep,
)
from hubkeeper.errors import HubkeeperError, NotFound
from hubkeeper.kit.clock import utcnow
from hubkeeper.quotas import settings as quota_settings
from hubkeeper.quotas.schemas import QuotaCheck, QuotasOut, QuotaUse
from hubkeeper.quotas.usage import MonthUse, next_month, used_hours
from hubkeeper.state import HubkeeperState
from hubkeeper.web.openapi import errors
from hubkeeper.web.params import NAME_MAX
from hubkeeper.web.strict import STRICT_QUERY

router = APIRouter(prefix="/api/v1", tags=["quotas"], dependencies=STRICT_QUERY)


async def month_use(hk: HubkeeperState, user: str, groups: list[str]) -> MonthUse:
    """`user`'s server-hours this month against the quota that applies to them."""
    now = utcnow()
    quotas, _at, _by = await asyncio.to_thread(quota_settings.load, hk.engine)
    used = await asyncio.to_thread(used_hours, hk.engine, user, now)
    return MonthUse(round(used, 2), quotas.hours_for(user, groups), next_month(now))


@router.get("/quotas", response_model=QuotasOut, responses=errors())
async def get_quotas(who: CurrentReader, hk: StateDep) -> QuotasOut:
    """Server-hour quotas per calendar month (UTC): per user, per group, and whether they are
    enforced at spawn."""
    quotas, at, by = await asyncio.to_thread(quota_settings.load, hk.engine)
    return QuotasOut(**quotas.model_dump(), updated_at=at, updated_by=by)


@router.put("/quotas", response_model=QuotasOut, responses=errors(422))
async def put_quotas(request: Request, who: CurrentAdmin, hk: StateDep) -> QuotasOut:
    """Replace the quotas (the whole object; `updated_at`/`updated_by` ignored). 422
    `invalid_quotas` names every problem and changes nothing. Audited (`quotas.update`)."""
    try:
        body: Any = await request.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("updated_at", "updated_by")}
    await require_recordable(hk, who)
    try:
        new = quota_settings.parse_put(body)
    except HubkeeperError as exc:
        await audit(hk, who, "quotas.update", "quotas", outcome="failed", error=exc.detail)
        raise
    old, _at, _by = await asyncio.to_thread(quota_settings.load, hk.engine)
    await asyncio.to_thread(quota_settings.save, hk.engine, new, who.name)
    await audit(hk, who, "quotas.update", "quotas", detail=quota_settings.diff(old, new))
    return await get_quotas(who, hk)


@router.get("/me/quota", response_model=QuotaUse, responses=errors())
async def my_quota(who: CurrentUser, hk: StateDep) -> QuotaUse:
    """The caller's server-hours this month against their quota (`quota_hours` null: none),
    and when the count resets (UTC)."""
    user = hk.directory.get(who.name)
    use = await month_use(hk, who.name, list(user.groups) if user else [])
    return QuotaUse(used_hours=use.used_hours, quota_hours=use.quota_hours, resets_at=use.resets_at)


@router.get("/quotas/check", response_model=QuotaCheck, responses=errors(422))
async def check(
    _plugin: HubPluginCaller,
    hk: StateDep,
    spawns: SpawnsDep,
    user: Annotated[
        str, Query(min_length=1, max_length=NAME_MAX, description="the spawning user's name")
    ],
    groups: Annotated[
        str | None,
        Query(max_length=1_000, description="their groups, comma-separated, as the hub has them"),
    ] = None,
    admin: Annotated[
        bool | None, Query(description="whether the hub has them as an admin (never refused)")
    ] = None,
) -> QuotaCheck:
    """For the hub plugin's pre-spawn hook only (it sends Hubkeeper's service token: 401/403
    otherwise), which passes the spawning user's groups and admin flag as the hub knows them
    (without them, the hub is asked). `allowed` is false
    only when quotas are enforced, the user is no admin, and their month is used up; the
    message says what was used and when it resets. Tells nothing but that."""
    if spawns is not None:  # the plugin's hooks run: it reports failed spawns itself
        spawns.plugin_heard()
    quotas, _at, _by = await asyncio.to_thread(quota_settings.load, hk.engine)
    if not quotas.enforce:
        return QuotaCheck(allowed=True, message="")
    if groups is None or admin is None:
        try:
            model = await hk.hub.get_user(user)
        except NotFound:
            return QuotaCheck(allowed=True, message="")
        member_of, is_admin = list(model.groups), bool(model.admin)
    else:
        member_of, is_admin = [g for g in groups.split(",") if g], admin
    if is_admin:
        return QuotaCheck(allowed=True, message="")
    use = await month_use(hk, user, member_of)
    if use.quota_hours is None or use.used_hours < use.quota_hours:
        return QuotaCheck(allowed=True, message="")
    resets = use.resets_at.strftime("%Y-%m-%d %H:%M UTC")
    return QuotaCheck(
        allowed=False,
        message=(
            f"Your server-hours for this month are used up: {use.used_hours:g} of "
            f"{use.quota_hours:g} hours. They reset on {resets}; an administrator can raise "
            "your quota."
        ),
    )
