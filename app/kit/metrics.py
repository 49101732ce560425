"""The process's own Prometheus metrics that code below the capabilities records: hub API
calls (`hubkeeper.hub.client`, through the callable `hubkeeper.main` passes it) and culler
passes. `hubkeeper.ops.metrics` adds the collectors that read the capabilities' state and
serves them all at `GET metrics`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

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


def observe_hub_request(seconds: float, outcome: str) -> None:
    """Record one hub API call (`outcome`: ok | unavailable)."""
    HUB_REQUEST_SECONDS.labels(outcome=outcome).observe(seconds)


def observe_cull_pass(seconds: float) -> None:
    """Record one culler pass; the culler calls it after every pass."""
    CULL_PASS_SECONDS.observe(seconds)
