"""The built wheel is a working Hubkeeper on its own: import name `hubkeeper`, data inside."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_for_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {
        "hubkeeper"
        + (
            "." + ".".join(init.parent.relative_to(REPO / "app").parts)
            if init.parent != REPO / "app"
            else ""
        )
        for init in (REPO / "app").rglob("__init__.py")
    }
    assert folders <= listed, f"add to [tool.setuptools] packages: {sorted(folders - listed)}"
