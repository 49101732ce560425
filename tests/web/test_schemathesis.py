"""A bounded schemathesis run against the real app (uvicorn, a real hub of its own, SQLite and
PostgreSQL): whatever a client sends, never a 500, every error is the contract's JSON, and
every error status is one the published schema lists for that route.

The hub is this module's own, so the generated writes (start, stop, stop-all, lockdown) touch
no other test's servers. Examples per operation: HUBKEEPER_TEST_FUZZ_EXAMPLES (default 12) on
PostgreSQL, half that on SQLite when PostgreSQL runs too (on SQLite alone, all of them).
Headers are fuzzed too: besides the schema's own parameters, each case carries generated values
for the headers Hubkeeper reads (Last-Event-ID, HX-Request, HX-Current-URL, Sec-Fetch-*).
The token reaches the API through the schema's own `token` security scheme (schemathesis
applies it to the operations that declare it), as Swagger UI's Authorize does: a route that
forgot to declare it would be called without one, and its 401s would show.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubkeeper.demo.localhub import LocalHub
from tests.conftest import POSTGRES_URL, build_settings
from tests.waiting import wait_for

EXAMPLES = int(os.environ.get("HUBKEEPER_TEST_FUZZ_EXAMPLES", "12"))
# PostgreSQL is the stricter database (NUL bytes in text, integer ranges, types): it gets the
# full count. When it runs too, SQLite gets half (the same app and checks; what only SQLite
# could refuse is rarer), which keeps the pair within the suite's budget.
HALF = min(EXAMPLES, max(4, EXAMPLES // 2))


def examples_for(db_url: str) -> int:
    if db_url.startswith("sqlite") and POSTGRES_URL:
        return HALF
    return EXAMPLES


# Text a client may put in a header (HTTP carries bytes; Starlette reads them as latin-1).
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).filter(lambda value: not value[:1].isspace())  # requests refuses a leading space
EXTRA_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Last-Event-ID": HEADER_TEXT,
        "HX-Request": st.sampled_from(["true", "false", ""]),
        "HX-Current-URL": HEADER_TEXT,
        "Sec-Fetch-Mode": st.sampled_from(["navigate", "cors", "no-cors", "same-origin", "x"]),
        "Sec-Fetch-Site": st.sampled_from(["same-origin", "same-site", "cross-site", "none"]),
        "Accept": st.sampled_from(["application/json", "text/html", "*/*", "text/csv"]),
    },
)


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHub]:
    local = LocalHub(tmp_path_factory.mktemp("fuzz-hub"))
    try:
        local.start()
        local.create_users(["fz-admin"], admin=True)
        local.create_users(["fz-ann", "fz-ben"])
        yield local
    finally:
        local.stop()


def serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="hubkeeper-fuzz", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "Hubkeeper's server thread ended"
        return bool(server.started)

    wait_for(started, 30, "Hubkeeper to start", interval=0.02)
    return server, thread


def test_the_api_never_answers_500(fuzz_hub, db_url, tmp_path):
    from hubkeeper.main import create_app

    examples = examples_for(db_url)
    app = create_app(build_settings(fuzz_hub, db_url, tmp_path))
    server, thread = serve(app, fuzz_hub.service_port)
    token = fuzz_hub.user_token("fz-admin")
    # Through the hub's proxy, as clients reach it.
    base = f"{fuzz_hub.url}{fuzz_hub.service_prefix}".rstrip("/")
    failures: list[str] = []
    seen: list[int] = []
    authorized: list[int] = []  # statuses of secured operations called with the scheme's token
    try:
        config = schemathesis.config.SchemathesisConfig.from_dict(
            {"auth": {"openapi": {"token": {"api_key": f"token {token}"}}}}
        )
        schema = schemathesis.openapi.from_url(base + "/api/openapi.json", config=config)
        for result in schema.get_all_operations():
            operation = result.ok()

            # Valid requests and invalid ones (wrong types, out-of-range values, missing fields).
            cases = st.one_of(
                operation.as_strategy(),
                operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
            )

            @given(case=cases, extra=EXTRA_HEADERS)
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any, extra: dict[str, str]) -> None:
                headers = {**(case.headers or {}), **extra}
                response = case.call(base_url=base, headers=headers, timeout=15)
                status = response.status_code
                seen.append(status)
                sent = response.request.headers.get("Authorization")
                secured = bool(case.operation.definition.raw.get("security"))
                if secured and sent == f"token {token}":
                    authorized.append(status)
                where = f"{case.method} {case.formatted_path} {case.query} {extra}"
                documented = case.operation.definition.raw.get("responses", {})
                if status >= 400 and str(status) not in documented:
                    failures.append(f"{where}: {status} is not in the schema's responses")
                if status >= 500 and status != 503:
                    failures.append(f"{where}: {status} {response.text[:200]}")
                elif status >= 400 and response.headers.get("content-type", [""])[0].startswith(
                    "application/json"
                ):
                    body = response.json()
                    if set(body) != {"error", "detail"}:
                        failures.append(f"{where}: {status} not the error shape: {body}")

            check()
    finally:
        server.should_exit = True
        thread.join(15)
    assert len(seen) >= 20 * examples, "schemathesis ran fewer cases than expected"
    # the security scheme carried the token: most secured calls had it, and it let them in
    assert len(authorized) >= 10 * examples, f"only {len(authorized)} calls carried the token"
    assert sum(status not in (401, 403) for status in authorized) >= 0.9 * len(authorized)
    assert not failures, "\n".join(failures[:20])
