"""Run the `hubkeeper` command line as a real process, with only the settings a test gives it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m hubkeeper.cli ARGS`: the caller's JUPYTERHUB_*/HUBKEEPER_* are dropped."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HUBKEEPER_"))}
    return subprocess.run(
        [sys.executable, "-m", "hubkeeper.cli", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
