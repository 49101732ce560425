"""Every setting is documented in the README's settings table (like datasette's test_docs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubkeeper.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def documented_settings() -> set[str]:
    names = set()
    for line in README.read_text().splitlines():
        match = re.match(r"\|\s*`([A-Z][A-Z0-9_]+)`\s*\|", line)
        if match:
            names.add(match.group(1))
    return names


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_setting_is_in_the_readme_table(field):
    alias = Settings.model_fields[field].validation_alias
    assert isinstance(alias, str), f"Settings.{field} has no environment variable name"
    assert alias in documented_settings(), f"README settings table lacks `{alias}`"
