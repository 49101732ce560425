"""Which servers may not run under a lockdown (`must_stop`), as a table: pure rules, no hub.
The loop itself is tested against real hubs in test_enforce.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hubkeeper.actions.lockdown_state import OPEN, LockdownState
from hubkeeper.directory.rows import ServerRow
from hubkeeper.lockdown.enforce import must_stop

LOCKED_AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 30, 3, 5, tzinfo=UTC)


def row(status: str, started: datetime | None) -> ServerRow:
    return ServerRow(
        user="enf-rule",
        server="",
        status=status,
        started=started,
        last_activity=None,
        url="/user/enf-rule/",
        admin=False,
        groups=(),
        user_last_activity=None,
        pending=None,
    )


def locked(stop_servers: bool) -> LockdownState:
    return LockdownState(
        active=True, reason="r", since=LOCKED_AT, by="a", id=1, stop_servers=stop_servers
    )


@pytest.mark.parametrize(
    ("status", "started", "stop_servers", "expected"),
    [
        ("running", BEFORE, True, True),  # stop everything
        ("running", BEFORE, False, False),  # kept: it ran when the lock was set
        ("running", AFTER, False, True),  # came up during the lock (no hook, hook failed open)
        ("starting", BEFORE, False, True),  # a spawn pending at the lock
        ("running", None, False, True),  # no start time: cannot prove it was running before
        ("stopping", AFTER, True, False),  # already on its way down
        ("stopped", None, True, False),
    ],
)
def test_must_stop(status, started, stop_servers, expected):
    assert must_stop(row(status, started), locked(stop_servers)) is expected


def test_nothing_is_stopped_while_open():
    assert must_stop(row("running", AFTER), OPEN) is False
