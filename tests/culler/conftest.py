"""Fixtures shared by the culler's tests: the activity hub (a hub of their own that copies the
proxy's activity every second), started once for tests/culler/test_kernels.py and
tests/culler/test_signals.py and stopped when the culler's tests are done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hubkeeper.demo.localhub import LocalHub
from tests.conftest import build_settings
from tests.culler.helpers import QUIET, app_client

ACTIVITY_CONFIG = """
# Activity is copied from the proxy and reported by servers every second, kept to the second.
c.JupyterHub.last_activity_interval = 1
c.JupyterHub.activity_resolution = 0
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": "1"}
"""


@pytest.fixture(scope="package")
def activity_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    """One hub for test_kernels.py and test_signals.py (each test uses its own user names and
    stops the servers it starts); `own_hub` by tests/conftest.py TIER_FIXTURES."""
    local = LocalHub(tmp_path_factory.mktemp("activity-hub"), extra_config=ACTIVITY_CONFIG)
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture
def activity_client(activity_hub: LocalHub, tmp_path: Path):
    """Hubkeeper (TestClient, culler loops off) for the activity hub, on a SQLite of its own."""
    settings = build_settings(
        activity_hub, f"sqlite:///{tmp_path / 'hk.sqlite'}", tmp_path, **QUIET
    )
    with app_client(settings) as c:
        yield c
