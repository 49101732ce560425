"""The published OpenAPI document: the token security scheme, the real error shape, every
error status of every route, and a description for every parameter.

Built from the app alone (no hub is asked: the document is made from the routes).
"""

from __future__ import annotations

from typing import Any

import pytest

from hubkeeper.config import Settings
from hubkeeper.main import create_app

ERROR_REF = "#/components/schemas/ErrorOut"
PUBLIC = {
    ("get", "/api/v1/health"),
    ("get", "/api/v1/health/live"),
    ("get", "/api/v1/health/ready"),
    ("get", "/api/v1/lockdown/status"),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api",
        JUPYTERHUB_API_TOKEN="not-used",
        HUBKEEPER_DATABASE_URL=f"sqlite:///{tmp / 'hk.sqlite'}",
        HUBKEEPER_COOKIE_SECRET="0" * 64,
    )
    app = create_app(settings, run_migrations=False)
    from starlette.testclient import TestClient

    # as published (the URL clients and the docs page read), not only app.openapi()
    client = TestClient(app)
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


def test_the_token_security_scheme_is_declared(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["token"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schemes["token"]["description"],
    }
    assert "Authorization: token" in schemes["token"]["description"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert "Authorization: token" in schema["info"]["description"]


def test_every_route_but_the_public_ones_requires_the_token(schema):
    for method, path, op in operations(schema):
        if (method, path) in PUBLIC:
            assert "security" not in op, (method, path)
        else:
            assert op.get("security") == [{"token": []}, {"bearer": []}], (method, path)


def test_every_route_lists_its_error_responses(schema):
    for method, path, op in operations(schema):
        responses = op["responses"]
        statuses = {int(s) for s in responses}
        # every API route refuses an unknown query parameter
        assert 422 in statuses, (method, path)
        if (method, path) not in PUBLIC:
            assert {401, 403, 503} <= statuses, (method, path)
        if "{" in path:
            assert 404 in statuses, (method, path)
        for status, answer in responses.items():
            if int(status) < 400 or (path, status) == ("/api/v1/health/ready", "503"):
                continue
            ref = answer["content"]["application/json"]["schema"]["$ref"]
            assert ref == ERROR_REF, (method, path, status)
            assert answer["description"], (method, path, status)


def test_route_specific_errors_are_listed(schema):
    paths = schema["paths"]
    assert "409" in paths["/api/v1/users/{name}/server/start"]["post"]["responses"]
    assert "409" in paths["/api/v1/users/{name}/servers/{server}/stop"]["post"]["responses"]
    assert "409" in paths["/api/v1/lockdown"]["post"]["responses"]
    assert "409" in paths["/api/v1/lockdown"]["delete"]["responses"]
    assert "409" in paths["/api/v1/exemptions/{exemption_id}"]["delete"]["responses"]
    assert "409" in paths["/api/v1/users/{name}/logs"]["get"]["responses"]
    assert "503" in paths["/api/v1/health/ready"]["get"]["responses"]


def test_the_error_schema_is_the_real_one(schema):
    schemas = schema["components"]["schemas"]
    assert set(schemas["ErrorOut"]["properties"]) == {"error", "detail"}
    assert set(schemas["ErrorOut"]["required"]) == {"error", "detail"}
    # FastAPI's validation-error shape is never sent, so it is not published
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in str(schema)


def test_every_parameter_is_described(schema):
    missing = [
        f"{method.upper()} {path} {param['name']}"
        for method, path, op in operations(schema)
        for param in op.get("parameters", ())
        if not param.get("description")
    ]
    assert not missing, missing


def test_the_users_list_speaks_the_pages_vocabulary(schema):
    params = {p["name"]: p for p in schema["paths"]["/api/v1/users"]["get"]["parameters"]}
    assert {"q", "state", "group", "sort", "offset", "limit"} <= set(params)
    assert params["status"]["deprecated"] is True
    state = params["state"]["schema"]["anyOf"][0]["enum"]
    assert set(state) == {"any", "active", "running", "pending", "stopped"}
    assert {"started", "-started"} <= set(params["sort"]["schema"]["enum"])
