"""`GET api/docs`: Swagger UI served from Hubkeeper's own static files, never a CDN.

FastAPI's built-in page loads Swagger UI from a CDN, which the Content-Security-Policy blocks
(and air-gapped hubs cannot reach); its inline start-up script is blocked too. This page loads
the vendored `static/vendor/swagger-ui/` and starts it from `static/api-docs.js`; a bar links
back to the console, and `static/api-docs.css` follows the console's theme (theme.js).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

router = APIRouter()

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Hubkeeper API</title>
<link rel="icon" href="{base}static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{base}static/vendor/swagger-ui/swagger-ui.css">
<link rel="stylesheet" href="{base}static/api-docs.css">
<script src="{base}static/theme.js"></script>
</head>
<body>
<header class="docs-bar">
<a href="{base}users">&larr; Back to Hubkeeper</a>
<span>REST API &middot; <a href="{base}api/openapi.json">openapi.json</a></span>
</header>
<main id="swagger-ui" data-openapi-url="{base}api/openapi.json"></main>
<script src="{base}static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{base}static/api-docs.js"></script>
</body>
</html>
"""


@router.get("/api/docs", include_in_schema=False)
async def api_docs(request: Request) -> HTMLResponse:
    """The REST API's interactive documentation (no sign-in: it shows no data)."""
    base = request.app.state.settings.service_prefix
    return HTMLResponse(PAGE.format(base=escape(base, quote=True)))
