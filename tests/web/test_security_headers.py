"""Every response carries the security headers; the policy forbids inline script."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hubkeeper.main import create_app


def test_pages_and_api_carry_security_headers(make_settings):
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        for path in ("/services/hubkeeper/api/v1/health", "/services/hubkeeper/users"):
            response = client.get(path, follow_redirects=False)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
            assert "frame-ancestors 'none'" in csp
            # the access-server form may land on the hub's origin
            assert settings.browser_hub_url.split("/")[2] in csp.split("form-action", 1)[1]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
