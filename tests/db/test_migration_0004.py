"""Migration 0004 on a database that an older Hubkeeper filled: duplicates that the old
check-then-insert could leave (two active lockdowns, two open sessions of one server) are
resolved so the new unique indexes can be built; the newest of each stays."""

from __future__ import annotations

from sqlalchemy import text

from hubkeeper.db.engine import create_db_engine, migrate


def test_upgrade_resolves_duplicates_left_by_races(db_url):
    migrate(db_url, "0003")
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as conn:
            for reason in ("older", "newer"):
                conn.execute(
                    text(
                        "INSERT INTO lockdown (reason, started_at, started_by, stop_servers) "
                        "VALUES (:r, '2026-11-01 10:00:00', 'a', true)"
                    ),
                    {"r": reason},
                )
            for started in ("2026-11-01 08:00:00", "2026-11-01 09:00:00"):
                conn.execute(
                    text(
                        'INSERT INTO server_session ("user", server, started_at) '
                        "VALUES ('mig-ann', '', :s)"
                    ),
                    {"s": started},
                )
        migrate(db_url)
        with engine.connect() as conn:
            active = conn.execute(text("SELECT reason FROM lockdown WHERE ended_at IS NULL")).all()
            still_open = conn.execute(
                text("SELECT id FROM server_session WHERE stopped_at IS NULL")
            ).all()
            closed = conn.execute(
                text(
                    "SELECT stop_reason, duration_s FROM server_session "
                    "WHERE stopped_at IS NOT NULL"
                )
            ).all()
    finally:
        engine.dispose()
    assert [r[0] for r in active] == ["newer"]
    assert len(still_open) == 1 and still_open[0][0] == 2
    assert [tuple(r) for r in closed] == [("unknown", 0.0)]
