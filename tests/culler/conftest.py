"""Fixtures shared by the culler's tests: Hubkeeper for the session's activity hub
(tests/conftest.py `activity_hub`), used by test_kernels.py and test_signals.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubkeeper.demo.localhub import LocalHub
from tests.conftest import build_settings
from tests.culler.helpers import QUIET, app_client


@pytest.fixture
def activity_client(activity_hub: LocalHub, tmp_path: Path):
    """Hubkeeper (TestClient, culler loops off) for the activity hub, on a SQLite of its own."""
    settings = build_settings(
        activity_hub, f"sqlite:///{tmp_path / 'hk.sqlite'}", tmp_path, **QUIET
    )
    with app_client(settings) as c:
        yield c
