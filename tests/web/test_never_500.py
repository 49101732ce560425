"""Never a 500 for anything a client can send, on SQLite and PostgreSQL; and a bug that does
happen is still the contract's JSON error on API paths (also under the service prefix)."""

from __future__ import annotations

import httpx
import pytest
from fastapi.responses import HTMLResponse
from starlette.testclient import TestClient

from hubkeeper.logs.api import resume_offset
from hubkeeper.main import create_app
from tests.history.factories import add_session, prepared

EXTREMES = [
    "0001-01-01",
    "0001-01-02",  # a day's margin: once a 500 when a long session widened the scan before it
    "9999-12-31",
    "0001-01-01T00:00:00+14:00",  # before year 1 once in UTC
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-14:00",  # after year 9999 once in UTC
    "9999-12-31T23:59:59+14:00",
    "2026-11-30T00:00:00+14:00",
    "2026-11-30T00:00:00-14:00",
    "2026-11-30T00:00:00+24:00",  # not a valid offset
    "\u0662\u0660\u0662\u0666-01-01",  # Arabic-Indic digits
]
WINDOWED = [
    "api/v1/sessions",
    "api/v1/usage",
    "api/v1/usage?by=day",
    "api/v1/usage?by=user&format=csv",
    "api/v1/audit",
    "api/v1/lockdowns",
    "history",
    "audit",
]


@pytest.fixture(scope="module")
def admin_token(hub) -> str:
    hub.create_users(["gd-500-admin"], admin=True)
    return hub.user_token("gd-500-admin")


def test_extreme_dates_and_offsets_are_never_a_500(make_settings, db_url, admin_token):
    engine = prepared(db_url)  # a session over a day long: the windows' scans reach for it
    try:
        add_session(engine, "gd-500-long", "2026-01-01T00:00", "2026-04-01T00:00")
    finally:
        engine.dispose()
    headers = {"Authorization": f"token {admin_token}"}
    failures = []
    with TestClient(create_app(make_settings(db_url=db_url)), raise_server_exceptions=False) as c:
        for path in WINDOWED:
            for since in [None, *EXTREMES]:
                for until in [None, *EXTREMES]:
                    params = {k: v for k, v in (("since", since), ("until", until)) if v}
                    response = c.get("/services/hubkeeper/" + path, params=params, headers=headers)
                    if response.status_code >= 500:
                        failures.append(f"{path} {params}: {response.status_code}")
                    elif response.status_code >= 400 and path.startswith("api/"):
                        assert set(response.json()) == {"error", "detail"}, response.text
    assert not failures, "\n".join(failures[:20])


def test_an_unexpected_error_is_the_contracts_json_also_under_the_prefix(make_settings):
    app = create_app(make_settings())

    async def boom() -> None:
        raise RuntimeError("a bug")

    async def boom_page() -> HTMLResponse:
        raise RuntimeError("a bug on a page")

    app.add_api_route("/api/v1/test-boom", boom)
    app.add_api_route("/test-boom", boom_page)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/api/v1/test-boom", "/services/hubkeeper/api/v1/test-boom"):
            response = client.get(path)
            assert response.status_code == 500
            assert response.json() == {
                "error": "internal_error",
                "detail": "Something went wrong inside Hubkeeper; it is logged.",
            }
            assert "content-security-policy" in response.headers
        page = client.get("/services/hubkeeper/test-boom", headers={"Accept": "text/html"})
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert "internal_error" in page.text or "Something went wrong" in page.text
        assert "content-security-policy" in page.headers


@pytest.fixture(scope="module")
def running(hub):
    hub.create_users(["gd-500-logs"])
    hub.start_server("gd-500-logs")
    yield "gd-500-logs"
    hub.stop_server("gd-500-logs")


@pytest.mark.parametrize(
    "last_event_id", ["\u00b2", "\u00b9\u00b2", "\xff\xfe", "-1", "1e3", "9" * 4301, "1" * 20]
)
def test_a_strange_last_event_id_is_not_a_500(
    hubkeeper_server, admin_token, running, last_event_id
):
    url = hubkeeper_server.proxied_url + f"api/v1/users/{running}/logs/stream"
    headers = [
        (b"authorization", f"token {admin_token}".encode()),
        # Raw bytes as a client may send them; Starlette reads header bytes as latin-1.
        (b"last-event-id", last_event_id.encode("latin-1")),
    ]
    with (
        httpx.Client(timeout=20) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith(("data:", "id:", "event:", "retry:", ":"))


def test_a_last_event_id_too_long_for_an_offset_is_treated_as_absent():
    """int() refuses more than 4,300 digits (a ValueError); no byte offset has 20."""
    assert resume_offset("9" * 4301) is None
    assert resume_offset("1" * 20) is None
    assert resume_offset("9" * 19) == int("9" * 19)
    assert resume_offset("") is None and resume_offset(None) is None


def test_values_the_database_cannot_store_are_a_422_and_change_nothing(
    make_settings, db_url, admin_token
):
    """Found by the fuzz run on PostgreSQL: a NUL byte in text and an id past the integer
    column's range. Either is the client's error, on every database."""
    headers = {"Authorization": f"token {admin_token}"}
    with TestClient(create_app(make_settings(db_url=db_url)), raise_server_exceptions=False) as c:
        base = "/services/hubkeeper/api/v1/"
        locked = c.post(base + "lockdown", json={"reason": "bad\x00reason"}, headers=headers)
        if locked.status_code < 300:  # SQLite stores NUL: lift it again
            assert c.delete(base + "lockdown", headers=headers).status_code < 300
        else:
            assert locked.status_code == 422, locked.text
            assert locked.json()["error"] == "invalid_value"
            assert c.get(base + "lockdown", headers=headers).json()["active"] is False
        huge = c.delete(base + "exemptions/161219128252795072", headers=headers)
        assert huge.status_code == 422, huge.text
        assert set(huge.json()) == {"error", "detail"}
