"""One meaning of since/until everywhere (hubkeeper.kit.window): [since, until), and a bare-date
`until` includes that whole day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hubkeeper.kit.window import BadInput, bounds, parse_when, window

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_bare_date_until_includes_that_day():
    start, stop = window("2026-11-01", "2026-11-30", now=NOW)
    assert start == datetime(2026, 11, 1, tzinfo=UTC)
    assert stop == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_date_time_is_that_instant_in_utc_whatever_the_offset():
    assert parse_when("2026-11-01T08:00:00+14:00", "since") == datetime(
        2026, 10, 31, 18, tzinfo=UTC
    )
    assert parse_when("2026-11-01T08:00:00-14:00", "until", end=True) == datetime(
        2026, 11, 1, 22, tzinfo=UTC
    )


def test_defaults_are_the_last_30_days_up_to_now():
    assert window(None, None, now=NOW) == (datetime(2026, 10, 31, 12, tzinfo=UTC), NOW)


@pytest.mark.parametrize(
    ("since", "until", "code"),
    [
        ("2026-12-01", "2026-11-01", "invalid_window"),
        ("yesterday", None, "invalid_parameter"),
        ("0001-01-01T00:00:00+14:00", None, "invalid_parameter"),
        (None, "9999-12-31", "invalid_parameter"),
        (None, "0001-01-01", "invalid_window"),
    ],
)
def test_bad_or_extreme_values_are_refused_with_a_422(since, until, code):
    with pytest.raises(BadInput) as refused:
        window(since, until, now=NOW)
    assert refused.value.status_code == 422 and refused.value.code == code


def test_bounds_may_leave_either_end_open():
    assert bounds(None, None) == (None, None)
    assert bounds("2026-11-01", None) == (datetime(2026, 11, 1, tzinfo=UTC), None)
