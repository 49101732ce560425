"""Imports only point down (docs/architecture.md, "Layers"): the import-linter contract in
pyproject.toml holds, and no module of hubkeeper imports itself round a cycle (issue #13
found a circle of ten files). Run in a separate interpreter: import-linter and grimp import
the package from a folder of their own and would change this process's logging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parent.parent

CHECK = """
import sys
import grimp
from importlinter.cli import lint_imports

graph = grimp.build_graph("hubkeeper", exclude_type_checking_imports=True, cache_dir=None)
cycles = []
for module in sorted(graph.modules):
    for imported in graph.find_modules_directly_imported_by(module):
        back = graph.find_shortest_chain(importer=imported, imported=module)
        if back is not None:
            cycles.append(" -> ".join((module, *back)))
if cycles:
    print("import cycles:", *cycles, sep="\\n")
    sys.exit(3)
sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True))
"""


def run_check(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "hubkeeper").symlink_to(REPO / "app")  # the code installs under that name
    return subprocess.run(
        [sys.executable, "-c", CHECK, str(REPO / "pyproject.toml")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_imports_point_down_and_never_round_a_cycle(tmp_path: Path):
    done = run_check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
