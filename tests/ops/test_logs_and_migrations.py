"""JSON logs (HUBKEEPER_LOG_FORMAT=json) and migrations under a lock."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from sqlalchemy import inspect

from hubkeeper.db.engine import create_db_engine, migrate
from hubkeeper.ops.logs import JsonFormatter
from tests.cli import run_cli


def test_json_formatter_writes_one_object_per_line():
    formatter = JsonFormatter("replica-a")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "hubkeeper.x", logging.ERROR, __file__, 1, 'said "%s"', ("hi\n",), sys.exc_info()
        )
    record.user = "ann"
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "hubkeeper.x"
    assert entry["message"] == 'said "hi\n"' and entry["replica"] == "replica-a"
    assert entry["user"] == "ann" and "ValueError: bad" in entry["exc_info"]
    assert entry["ts"].endswith("+00:00")


@pytest.mark.subprocess
def test_the_cli_logs_json_lines(tmp_path):
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    result = run_cli(
        "db",
        "upgrade",
        env={
            "HUBKEEPER_DATABASE_URL": db,
            "HUBKEEPER_LOG_FORMAT": "json",
            "HUBKEEPER_LOG_LEVEL": "info",
        },
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "alembic logs its steps at INFO"
    for line in lines:
        assert isinstance(json.loads(line), dict), line


@pytest.mark.subprocess
def test_replicas_migrating_together_take_turns(db_url):
    """Three processes run `hubkeeper db upgrade` on one empty database at once (Alembic is
    not thread-safe: processes, as replicas are)."""
    results: list[object] = []

    def run() -> None:
        results.append(run_cli("db", "upgrade", env={"HUBKEEPER_DATABASE_URL": db_url}))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    migrate(db_url)  # already at head: nothing to do
    engine = create_db_engine(db_url)
    try:
        assert {"job", "stop_intent", "server_session"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
