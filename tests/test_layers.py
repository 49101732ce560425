"""Imports only point down (docs/architecture.md, "Layers"): the import-linter contract in
pyproject.toml holds, and no module of hubkeeper imports itself round a cycle (issue #13
found a circle of ten files)."""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parent.parent


def link_import_name(tmp_path: Path) -> Path:
    """A folder where `hubkeeper` is app/ (the code installs under that name)."""
    (tmp_path / "hubkeeper").symlink_to(REPO / "app")
    return tmp_path


def test_the_layer_contract_holds(tmp_path: Path, monkeypatch, capsys):
    root = link_import_name(tmp_path)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(root)
    exit_code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True)
    printed = capsys.readouterr().out
    assert exit_code == 0, printed
    assert "0 broken" in printed


def test_no_module_imports_itself_round_a_cycle(tmp_path: Path, monkeypatch):
    root = link_import_name(tmp_path)
    monkeypatch.syspath_prepend(str(root))
    graph = grimp.build_graph("hubkeeper", exclude_type_checking_imports=True, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.append((module, *back))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
