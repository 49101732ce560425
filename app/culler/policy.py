"""The culler's policy and outlook in words, for pages (pure: no I/O).

- `policy_sentence`: the culler page's first line, "on · idle 1 h · max age 7 d · kernels 1 h ·
  next pass 14:20 · 2 exemptions".
- `outlook`: what the culler will do with one server, as of now, from the same rules a pass
  applies (`decide.decide_server`): "culled at 14:20 UTC if idle until then", "exempt: ...".
- `through`: an exemption's end as people say it ("through 2026-12-06" for one ending at the
  next midnight, which is how a bare-date `until` is stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from hubkeeper.culler.settings import CullerSettings
from hubkeeper.hub.models import HubUser
from hubkeeper.kit.clock import as_utc
from hubkeeper.kit.durations import compact, short
from hubkeeper.web.templating import templates


def _hhmm(at: datetime, now: datetime) -> str:
    at = as_utc(at)
    return f"{at:%H:%M}" if at.date() == as_utc(now).date() else f"{at:%Y-%m-%d %H:%M}"


def policy_sentence(
    cfg: CullerSettings, *, next_pass: datetime | None, exemptions: int, now: datetime
) -> str:
    """The settings in force in a line (UTC times)."""
    parts = ["on" if cfg.enabled else "off (no periodic passes)"]
    parts.append(f"idle {short(cfg.timeout_s)}")
    if cfg.group_timeouts:
        parts.append(f"{len(cfg.group_timeouts)} group timeout(s)")
    parts.append(f"max age {short(cfg.max_age_s)}" if cfg.max_age_s else "no max age")
    parts.append(
        f"kernels {short(cfg.kernels.timeout_s)}" if cfg.kernels.enabled else "kernels off"
    )
    if cfg.enabled:
        if next_pass is None or as_utc(next_pass) <= now:
            parts.append("next pass due now")
        else:
            parts.append(f"next pass {_hhmm(next_pass, now)}")
    parts.append(f"{exemptions} exemption{'' if exemptions == 1 else 's'}")
    return " · ".join(parts)


def next_pass_at(last_started: datetime | None, cfg: CullerSettings) -> datetime | None:
    """When the next periodic pass is due: the last one's start + interval (None: no pass
    recorded yet, so one is due)."""
    return (
        None if last_started is None else as_utc(last_started) + timedelta(seconds=cfg.interval_s)
    )


@dataclass(frozen=True)
class Outlook:
    kind: str  # none | pending | exempt | off | kept | due | later
    text: str
    at: datetime | None = None  # when it would be culled (UTC)


def outlook(
    cfg: CullerSettings,
    user: HubUser,
    server_name: str,
    *,
    exempt: str | None,
    now: datetime,
    kept_until: datetime | None = None,
) -> Outlook:
    """What the culler would do with `server_name` of `user` if nobody uses it from now on.

    Follows `decide_server`: a pending or not-ready server is left alone; idle at last
    activity (else start, else the user's activity) + the timeout for the user's groups;
    max age at start + max_age_s. Kernels and exemptions by group are the caller's
    (`exempt` is the reason that applies, or None); `kept_until`: the end of a keep given to
    this server start (keeps.py), which postpones the idle cull (never the max age)."""
    server = user.servers.get(server_name)
    if server is None or server.stopped or not (server.ready or server.pending):
        return Outlook("none", "not running")
    if server.pending:
        return Outlook("pending", "starting or stopping: left alone")
    if exempt is not None:
        return Outlook("exempt", f"exempt: {exempt}")
    if server_name and cfg.named_servers == "keep":
        return Outlook("kept", "kept: named servers are not culled")
    timeout = cfg.timeout_for(user.groups)
    last = server.last_activity or server.started or user.last_activity
    chances: list[tuple[datetime, str]] = []
    kept = kept_until is not None and kept_until > now
    if last is not None:
        idle_at = as_utc(last) + timedelta(seconds=timeout)
        if kept_until is not None and kept and kept_until > idle_at:
            idle_at = as_utc(kept_until)
        chances.append((idle_at, "idle"))
    if cfg.max_age_s and server.started is not None:
        chances.append((as_utc(server.started) + timedelta(seconds=cfg.max_age_s), "max_age"))
    if not chances:
        return Outlook("none", "no activity time known: left alone")
    at, why = min(chances)
    when = "at the next pass" if at <= now else f"at {_hhmm(at, now)} UTC"
    if why == "idle" and kept and kept_until is not None and at == as_utc(kept_until):
        reason = f"kept until {_hhmm(at, now)} UTC, then idle {short(timeout)} if unused"
    elif why == "idle":
        reason = f"idle {short(timeout)}" + (" reached" if at <= now else " if unused until then")
    else:
        reason = f"max age {short(cfg.max_age_s)}"
    if not cfg.enabled:
        return Outlook("off", f"culler off (would be culled {when}: {reason})", at)
    return Outlook("due" if at <= now else "later", f"culled {when} ({reason})", at)


def through(until: datetime | None) -> str:
    """An exemption's end: "through 2026-12-06" when it ends at a midnight (a bare-date
    until includes that day), else "until 2026-12-06 14:30 UTC"; None → "until deleted"."""
    if until is None:
        return "until deleted"
    until = as_utc(until)
    if until.time() == time(0, 0):
        return f"through {until - timedelta(days=1):%Y-%m-%d}"
    return f"until {until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


templates.env.filters["through"] = through
templates.env.filters["duration"] = short
templates.env.filters["duration_field"] = compact
