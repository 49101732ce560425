"""Durations in human units, the policy sentence, a server's outlook and an exemption's end:
pure functions, on synthetic users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hubkeeper.culler.policy import next_pass_at, outlook, policy_sentence, through
from hubkeeper.culler.settings import CullerSettings
from hubkeeper.hub.models import HubServer, HubUser
from hubkeeper.kit.durations import as_seconds, compact, parse_duration, short

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("90m", 5400),
        ("1.5h", 5400),
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2 days", 172800),
        ("1w", 604800),
        ("45s", 45),
        (" 10 min ", 600),
    ],
)
def test_durations_are_read_in_human_units(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration(compact(seconds)) == seconds  # what the form shows reads back


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "5 fortnights",
        "-5m",
        "1.5s",
        "m",
        "1h x",
        "9" * 50,
        "1h30",
        "1,5h",
        "30 1h",
        "\u0663m",
    ],
)
def test_what_is_not_a_duration_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_as_seconds_converts_only_durations_with_units():
    assert as_seconds("90m") == 5400
    assert as_seconds("60") == "60"  # strict JSON: a number sent as text stays refused
    assert as_seconds(60) == 60
    assert as_seconds("soon") == "soon"


def test_short_is_exact():
    assert [short(s) for s in (45, 3600, 5400, 604800, 90061)] == [
        "45 s",
        "1 h",
        "1 h 30 min",
        "7 d",
        "1 d 1 h 1 min 1 s",
    ]
    assert compact(5400) == "1h30m" and compact(604800) == "7d"


def test_policy_sentence():
    cfg = CullerSettings()
    sentence = policy_sentence(cfg, next_pass=NOW + timedelta(minutes=20), exemptions=2, now=NOW)
    assert sentence == "on · idle 1 h · max age 7 d · kernels 1 h · next pass 12:20 · 2 exemptions"
    off = CullerSettings(enabled=False, max_age_s=0, kernels={"enabled": False})
    assert (
        policy_sentence(off, next_pass=None, exemptions=1, now=NOW)
        == "off (no periodic passes) · idle 1 h · no max age · kernels off · 1 exemption"
    )
    assert next_pass_at(None, cfg) is None
    assert next_pass_at(NOW, cfg) == NOW + timedelta(seconds=600)


def user(**servers: HubServer) -> HubUser:
    return HubUser(name="ann", groups=["physics"], servers=servers, last_activity=None)


def test_outlook_follows_the_passes_rules():
    cfg = CullerSettings(timeout_s=3600, max_age_s=86400, group_timeouts={"physics": 7200})
    idle = HubServer(
        ready=True, started=NOW - timedelta(hours=1), last_activity=NOW - timedelta(minutes=30)
    )
    later = outlook(cfg, user(**{"": idle}), "", exempt=None, now=NOW)
    # the group's longer timeout applies: last activity 11:30 + 2 h
    assert later.kind == "later" and later.at == NOW + timedelta(minutes=90)
    assert later.text == "culled at 13:30 UTC (idle 2 h if unused until then)"
    stale = HubServer(ready=True, started=NOW - timedelta(days=2), last_activity=NOW)
    due = outlook(cfg, user(**{"": stale}), "", exempt=None, now=NOW)
    assert due.kind == "due" and "max age 1 d" in due.text
    assert outlook(cfg, user(**{"": idle}), "", exempt="thesis", now=NOW).text == "exempt: thesis"
    named = CullerSettings(named_servers="keep")
    assert outlook(named, user(gpu=idle), "gpu", exempt=None, now=NOW).kind == "kept"
    assert outlook(cfg, user(), "", exempt=None, now=NOW).kind == "none"
    pending = HubServer(pending="spawn")
    assert outlook(cfg, user(**{"": pending}), "", exempt=None, now=NOW).kind == "pending"
    off = CullerSettings(enabled=False)
    assert outlook(off, user(**{"": idle}), "", exempt=None, now=NOW).kind == "off"


def test_outlook_follows_a_keep_but_never_past_max_age():
    cfg = CullerSettings(timeout_s=3600, max_age_s=86400)
    idle = HubServer(ready=True, started=NOW - timedelta(hours=1), last_activity=NOW)
    ann = user(**{"": idle})
    kept = outlook(cfg, ann, "", exempt=None, now=NOW, kept_until=NOW + timedelta(hours=2))
    assert kept.at == NOW + timedelta(hours=2)
    assert kept.text == "culled at 14:00 UTC (kept until 14:00 UTC, then idle 1 h if unused)"
    # an ended keep changes nothing; max age comes first whatever the keep says
    ended = outlook(cfg, ann, "", exempt=None, now=NOW, kept_until=NOW - timedelta(minutes=1))
    assert ended.at == NOW + timedelta(hours=1)
    old = user(**{"": HubServer(ready=True, started=NOW - timedelta(hours=23), last_activity=NOW)})
    aged = outlook(cfg, old, "", exempt=None, now=NOW, kept_until=NOW + timedelta(hours=5))
    assert aged.at == NOW + timedelta(hours=1) and "max age" in aged.text


def test_through_names_the_last_day():
    assert through(datetime(2026, 12, 7, tzinfo=UTC)) == "through 2026-12-06"
    assert through(datetime(2026, 12, 7, 14, 30, tzinfo=UTC)) == "until 2026-12-07 14:30 UTC"
    assert through(None) == "until deleted"
