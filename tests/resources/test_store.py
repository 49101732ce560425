"""The figures in the database (SQLite and PostgreSQL): the shared table and the open
sessions' peak memory, limit and running mean CPU."""

from __future__ import annotations

from datetime import UTC, datetime

from hubkeeper.db.engine import session_scope
from hubkeeper.db.models import ServerSession
from hubkeeper.resources import store
from hubkeeper.resources.figures import Figures
from tests.history.factories import add_session, prepared

T1 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 5, 12, 1, tzinfo=UTC)
GiB = 1024**3


def test_a_pass_replaces_the_table_and_adds_to_the_open_sessions(db_url):
    engine = prepared(db_url)
    try:
        closed = add_session(engine, "st-ann", "2026-12-05T08:00", "2026-12-05T09:00")
        ann = add_session(engine, "st-ann", "2026-12-05T11:00")
        gpu = add_session(engine, "st-ann", "2026-12-05T11:00", server="gpu")
        bob = add_session(engine, "st-bob", "2026-12-05T11:00")

        store.save_pass(
            engine,
            {
                ("st-ann", ""): Figures(300, 2 * GiB, 10.0, T1),
                ("st-ann", "gpu"): Figures(5 * GiB, None, None, T1),
            },
        )
        store.save_pass(
            engine,
            {
                ("st-ann", ""): Figures(200, 2 * GiB, 20.0, T2),
                ("st-bob", ""): Figures(100, None, 0.0, T2),
            },
        )
        # the table: the last pass only (gpu no longer sampled)
        assert store.load(engine) == {
            ("st-ann", ""): Figures(200, 2 * GiB, 20.0, T2),
            ("st-bob", ""): Figures(100, None, 0.0, T2),
        }
        with session_scope(engine) as session:
            rows = {r.id: r for r in session.query(ServerSession).all()}
            figures = {
                key: (r.peak_memory_bytes, r.memory_limit_bytes, r.mean_cpu_percent, r.cpu_samples)
                for key, r in rows.items()
            }
        assert figures[ann] == (300, 2 * GiB, 15.0, 2)  # the peak stays, the mean of 10 and 20
        assert figures[gpu] == (5 * GiB, None, None, 0)  # no CPU tracked: no mean
        assert figures[bob] == (100, None, 0.0, 1)
        assert figures[closed] == (None, None, None, 0)  # a closed session is left alone
    finally:
        engine.dispose()


def test_kept_figures_stay_in_the_table_but_are_not_counted_again(db_url):
    """A server waiting for its token keeps its last figures on show; its session's mean
    takes only what was sampled (else each waiting pass would count the old value again)."""
    engine = prepared(db_url)
    try:
        ann = add_session(engine, "kp-ann", "2026-12-05T11:00")
        first = Figures(300, None, 10.0, T1)
        store.save_pass(engine, {("kp-ann", ""): first})
        store.save_pass(engine, {}, {("kp-ann", ""): first})
        assert store.load(engine) == {("kp-ann", ""): first}
        with session_scope(engine) as session:
            row = session.get(ServerSession, ann)
            assert row is not None and (row.mean_cpu_percent, row.cpu_samples) == (10.0, 1)
    finally:
        engine.dispose()
