"""The process's own Prometheus metrics that code below the capabilities records: hub API
calls (`hubkeeper.hub.client`, through the callable `hubkeeper.main` passes it) and culler
passes. `hubkeeper.ops.metrics` adds the collectors that read the capabilities' state and
serves them all at `GET metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

PROCESS = CollectorRegistry(auto_describe=True)

HUB_REQUEST_SECONDS = Histogram(
    "hubkeeper_hub_request_seconds",
    "Hub API requests made by Hubkeeper, in seconds, by outcome (ok | unavailable).",
    ["outcome"],
    registry=PROCESS,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CULL_PASS_SECONDS = Histogram(
    "hubkeeper_cull_pass_seconds",
    "Duration of one culler pass over the hub's servers, in seconds.",
    registry=PROCESS,
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)

CULL_WARNINGS = Counter(
    "hubkeeper_cull_warnings",
    "cull.warning notifications this process recorded (each once, whatever the replicas).",
    registry=PROCESS,
)
CULL_KEEPS = Counter(
    "hubkeeper_cull_keeps",
    'Keeps given through this process ("keep running": idle culling postponed).',
    registry=PROCESS,
)
CULL_BUSY_PROTECTED = Counter(
    "hubkeeper_cull_busy_protected",
    "Servers a real pass of this process left running because a kernel was busy or a "
    "terminal in use (keep_busy), counted once per pass.",
    registry=PROCESS,
)


def count_warning() -> None:
    """One `cull.warning` recorded."""
    CULL_WARNINGS.inc()


def count_keep() -> None:
    """One keep given."""
    CULL_KEEPS.inc()


def count_busy_protected(servers: int) -> None:
    """`servers` kept by keep_busy in one real pass."""
    if servers:
        CULL_BUSY_PROTECTED.inc(servers)


def observe_hub_request(seconds: float, outcome: str) -> None:
    """Record one hub API call (`outcome`: ok | unavailable)."""
    HUB_REQUEST_SECONDS.labels(outcome=outcome).observe(seconds)


def observe_cull_pass(seconds: float) -> None:
    """Record one culler pass; the culler calls it after every pass."""
    CULL_PASS_SECONDS.observe(seconds)
