"""`hubkeeper report` on a prepared database (and the hub's groups for --by group)."""

from __future__ import annotations

import csv
import io
import subprocess
from typing import Any

import pytest

from tests.cli import run_cli
from tests.history.factories import add_session, prepared

pytestmark = pytest.mark.subprocess

ANN, BEN = "hist-cli-ann", "hist-cli-ben"
WINDOW = ("--since", "2026-11-01", "--until", "2026-11-02")  # a bare-date until includes that day


def report(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("report", *args, env={**(env or {}), "HUBKEEPER_DATABASE_URL": db_url})


def seeded(tmp_path: Any) -> str:
    db_url = f"sqlite:///{tmp_path / 'report.sqlite'}"
    engine = prepared(db_url)
    try:
        add_session(engine, ANN, "2026-11-01T22:00", "2026-11-02T03:00")
        add_session(engine, BEN, "2026-11-02T10:00", "2026-11-02T12:00")
    finally:
        engine.dispose()
    return db_url


def test_report_by_day_is_a_table(tmp_path):
    result = report(seeded(tmp_path), *WINDOW, "--by", "day")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Usage by day, 2026-11-01 00:00 to 2026-11-03 00:00 UTC"
    assert lines[1].split() == ["key", "sessions", "server-hours", "users"]
    assert lines[3].split() == ["2026-11-01", "1", "2.00", "1"]
    assert lines[4].split() == ["2026-11-02", "2", "5.00", "2"]
    assert lines[-1] == "Total: 7.00 server-hours"


def test_report_by_user_as_csv(tmp_path):
    result = report(seeded(tmp_path), *WINDOW, "--by", "user", "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [
        ["key", "sessions", "server_hours", "users", "cost"],
        [ANN, "1", "5.000", "1", ""],
        [BEN, "1", "2.000", "1", ""],
    ]


def test_report_by_group_asks_the_hub(hub, tmp_path):
    hub.create_users([ANN, BEN])
    hub.add_to_group("hist-cli-team", [ANN])
    result = report(seeded(tmp_path), *WINDOW, "--by", "group", "--csv", env=hub.hubkeeper_env())
    assert result.returncode == 0, result.stderr
    rows = {r[0]: r for r in csv.reader(io.StringIO(result.stdout))}
    assert rows["hist-cli-team"] == ["hist-cli-team", "1", "5.000", "1", ""]
    assert rows["(no group)"] == ["(no group)", "1", "2.000", "1", ""]


def test_report_by_group_without_the_hub_exits_3(hub, tmp_path):
    down = {
        **hub.hubkeeper_env(),
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",  # nothing listens there
        "HUBKEEPER_HUB_TIMEOUT": "2",
    }
    result = report(seeded(tmp_path), *WINDOW, "--by", "group", env=down)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "hubkeeper: by=group needs the hub's groups" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_by_group_with_no_hub_configured_exits_3(tmp_path):
    result = report(seeded(tmp_path), *WINDOW, "--by", "group")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "JUPYTERHUB_API_URL is not set" in result.stderr and "Traceback" not in result.stderr


def test_report_by_day_over_more_than_ten_years_exits_2_as_the_api_answers_422(tmp_path):
    result = report(seeded(tmp_path), "--since", "1900-01-01", "--by", "day")
    assert result.returncode == 2, result.stdout
    assert "by=day covers at most 3660 days" in result.stderr and result.stdout == ""


def test_report_with_a_bad_date_exits_2(tmp_path):
    result = report(seeded(tmp_path), "--since", "last tuesday")
    assert result.returncode == 2
    assert "since must be an ISO 8601 date" in result.stderr and "Traceback" not in result.stderr
    backwards = report(seeded(tmp_path), "--since", "2026-11-03", "--until", "2026-11-01")
    assert backwards.returncode == 2 and "since must not be after until" in backwards.stderr


def test_report_by_profile_prices_each_profile(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'report.sqlite'}"
    engine = prepared(db_url)
    try:
        add_session(engine, ANN, "2026-11-01T22:00", "2026-11-02T03:00", profile="gpu")  # 5 h
        add_session(engine, BEN, "2026-11-02T10:00", "2026-11-02T12:00")  # 2 h, default
    finally:
        engine.dispose()
    prices = {"HUBKEEPER_PRICES": '{"gpu": 2.5, "*": 0.25}'}
    result = report(db_url, *WINDOW, "--by", "profile", env=prices)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["key", "sessions", "server-hours", "users", "cost"]
    assert lines[3].split() == ["gpu", "1", "5.00", "1", "12.50"]
    assert lines[4].split() == ["(default)", "1", "2.00", "1", "0.50"]
    assert lines[-1] == "Total: 7.00 server-hours, cost 13.00"
    rows = list(csv.reader(io.StringIO(report(db_url, *WINDOW, "--csv", env=prices).stdout)))
    assert rows[1:] == [
        ["2026-11-01", "1", "2.000", "1", "5.00"],
        ["2026-11-02", "2", "5.000", "2", "8.00"],
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{gpu: 1}", "not valid JSON"),
        ('{"gpu": -1}', "must be a number >= 0"),
        ('{"gpu": "1"}', "must be a number >= 0"),
    ],
)
def test_bad_prices_stop_the_command_with_one_line_naming_the_setting(tmp_path, value, says):
    result = report(seeded(tmp_path), *WINDOW, env={"HUBKEEPER_PRICES": value})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("hubkeeper: invalid setting HUBKEEPER_PRICES: ")
    assert says in result.stderr
    assert "Traceback" not in result.stderr
