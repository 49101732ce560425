"""Where Hubkeeper's data files are: inside the installed package, or beside it in a checkout.

A wheel ships `templates/`, `static/` and the Alembic `migrations/` inside the `hubkeeper`
package (pyproject's package-dir maps them there); a source checkout keeps them at the repo
root, beside `app/` (which is installed under the import name `hubkeeper`).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(installed_name: str, checkout_name: str) -> Path:
    inside = PACKAGE_DIR / installed_name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / checkout_name


TEMPLATES_DIR = _data_dir("templates", "templates")
STATIC_DIR = _data_dir("static", "static")
MIGRATIONS_DIR = _data_dir("migrations", "alembic")
