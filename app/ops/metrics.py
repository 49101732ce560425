"""Prometheus metrics (prometheus_client text format), served at `metrics`.

Each app gets its own `CollectorRegistry` (`build_registry(hk)`) so tests can build several
apps in one process. Series:

- `hubkeeper_culls_total{kind,reason}` — cull events in the database (`cull_event` rows, so
  every replica reports the same numbers); absent while that table does not exist.
- `hubkeeper_cull_pass_seconds` — histogram of cull pass durations; the culler calls
  `observe_cull_pass(seconds)` after each pass.
- `hubkeeper_server_sessions_open` — server sessions without a stop (the database).
- `hubkeeper_lockdown_active` — 1 while the hub is locked down (this replica's copy).
- `hubkeeper_hub_request_seconds{outcome}` — histogram of hub API calls, outcome = ok (any
  HTTP answer) | unavailable (no answer, timeout, 502/503/504); fed by `HubClient._request`.
- `hubkeeper_directory_lag_seconds` — seconds since the user directory last synced with the hub.
- `hubkeeper_leader{loop}` — 1 where this replica runs the loop now.
- `hubkeeper_cull_warnings_total`, `hubkeeper_cull_keeps_total`,
  `hubkeeper_cull_busy_protected_total` — counters of this process: `cull.warning`s recorded,
  keeps given, servers a real pass left running for a busy kernel or terminal (`keep_busy`).
- `hubkeeper_notifications_total{event}` — notifications recorded (`notification` rows: each
  event once, whatever the number of replicas).
- `hubkeeper_notification_deliveries{status}` — webhook deliveries by status (sent, retrying,
  failed), from the database, so every replica reports the same numbers.

Process-wide histograms and counters (hub requests, cull passes, warnings, keeps) live in
`PROCESS` and are added to each app's registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import inspect, text

from hubkeeper.kit.metrics import (  # noqa: F401 - defined below the capabilities
    CULL_PASS_SECONDS,
    HUB_REQUEST_SECONDS,
    PROCESS,
    observe_cull_pass,
    observe_hub_request,
)

if TYPE_CHECKING:
    from hubkeeper.state import HubkeeperState

log = logging.getLogger(__name__)


class _Process(Collector):
    def collect(self) -> Iterable[Metric]:
        yield from PROCESS.collect()


class StateCollector(Collector):
    """Gauges read from one Hubkeeper's state and database at scrape time."""

    def __init__(self, hk: HubkeeperState) -> None:
        self.hk = hk

    def collect(self) -> Iterable[Metric]:
        hk = self.hk
        from hubkeeper.actions.lockdown_state import current

        lockdown = GaugeMetricFamily(
            "hubkeeper_lockdown_active", "1 while the hub is locked down (no server may start)."
        )
        lockdown.add_metric([], 1.0 if current(hk).active else 0.0)
        yield lockdown

        lag = GaugeMetricFamily(
            "hubkeeper_directory_lag_seconds",
            "Seconds since the user directory last synced with the hub (NaN before the first).",
        )
        seconds = hk.directory.lag_seconds()
        lag.add_metric([], float("nan") if seconds is None else float(seconds))
        yield lag

        leader = GaugeMetricFamily(
            "hubkeeper_leader", "1 where this replica runs the loop now.", labels=["loop"]
        )
        if hk.leader is not None:
            for name, leading in sorted(hk.leader.loops().items()):
                leader.add_metric([name], 1.0 if leading else 0.0)
        yield leader

        yield from self._database()

    def _database(self) -> Iterable[Metric]:
        try:
            with self.hk.engine.connect() as conn:
                open_sessions = conn.execute(
                    text("SELECT count(*) FROM server_session WHERE stopped_at IS NULL")
                ).scalar()
                notes = [
                    (str(e), int(n))
                    for e, n in conn.execute(
                        text("SELECT event, count(*) FROM notification GROUP BY 1")
                    )
                ]
                deliveries = {
                    str(st): int(n)
                    for st, n in conn.execute(
                        text("SELECT status, count(*) FROM notification_delivery GROUP BY 1")
                    )
                }
                culls: list[tuple[str, str, int]] = []
                # the culler's table arrives with its own migration; until then: no series
                if inspect(conn).has_table("cull_event"):
                    culls = [
                        (str(k), str(r), int(n))
                        for k, r, n in conn.execute(
                            text("SELECT kind, reason, count(*) FROM cull_event GROUP BY 1, 2")
                        )
                    ]
        except Exception as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            return
        sessions = GaugeMetricFamily(
            "hubkeeper_server_sessions_open", "Server sessions recorded as running now."
        )
        sessions.add_metric([], float(open_sessions or 0))
        yield sessions
        counter = CounterMetricFamily(
            "hubkeeper_culls",
            "Servers and kernels culled (cull events).",
            labels=["kind", "reason"],
        )
        for kind, reason, n in culls:
            counter.add_metric([kind, reason], float(n))
        yield counter
        recorded = CounterMetricFamily(
            "hubkeeper_notifications",
            "Notifications recorded for the webhooks, by event (each event once).",
            labels=["event"],
        )
        for event, n in sorted(notes):
            recorded.add_metric([event], float(n))
        yield recorded
        sent = GaugeMetricFamily(
            "hubkeeper_notification_deliveries",
            "Webhook deliveries by status: sent, retrying (not yet sent), failed (given up).",
            labels=["status"],
        )
        for status in ("sent", "retrying", "failed"):
            sent.add_metric([status], float(deliveries.get(status, 0)))
        yield sent


def build_registry(hk: HubkeeperState) -> CollectorRegistry:
    """A registry with this app's gauges and the process-wide histograms."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    registry.register(StateCollector(hk))
    return registry
