"""Settings: required hub variables, comma lists and the generated cookie secret."""

from __future__ import annotations

import stat

import pytest

from hubkeeper.config import MissingSetting, Settings
from hubkeeper.main import create_app
from tests.cli import run_cli

HUB = {"JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api", "JUPYTERHUB_API_TOKEN": "t"}


@pytest.mark.parametrize("missing", ["JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN"])
def test_missing_hub_setting_names_the_variable(missing, tmp_path):
    values = {**HUB, missing: "", "HUBKEEPER_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite"}
    with pytest.raises(MissingSetting, match=missing):
        Settings(**values).require_hub()
    with pytest.raises(MissingSetting, match=missing):
        create_app(Settings(**values))


@pytest.mark.subprocess
def test_serve_without_hub_settings_exits_2_with_one_line(tmp_path):
    result = run_cli("serve", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "JUPYTERHUB_API_URL" in lines[0]


def test_group_lists_parse_from_commas(monkeypatch):
    monkeypatch.setenv("HUBKEEPER_ADMIN_GROUPS", " ops, platform ,,")
    monkeypatch.setenv("HUBKEEPER_MANAGER_GROUPS", "managers")
    settings = Settings()
    assert settings.admin_groups == ["ops", "platform"]
    assert settings.manager_groups == ["managers"]
    assert Settings(HUBKEEPER_ADMIN_GROUPS="").admin_groups == []
    monkeypatch.delenv("HUBKEEPER_MANAGER_GROUPS")
    assert Settings().manager_groups == []


def test_cookie_secret_is_generated_once_into_a_private_file(tmp_path):
    path = tmp_path / "state" / "hubkeeper_cookie_secret"
    first = Settings(HUBKEEPER_COOKIE_SECRET_FILE=str(path)).resolved_cookie_secret()
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Settings(HUBKEEPER_COOKIE_SECRET_FILE=str(path)).resolved_cookie_secret()
    assert again == first
    explicit = Settings(HUBKEEPER_COOKIE_SECRET="x" * 64, HUBKEEPER_COOKIE_SECRET_FILE=str(path))
    assert explicit.resolved_cookie_secret() == "x" * 64


@pytest.mark.parametrize(
    ("api_url", "base", "prefix"),
    [
        ("http://hub.internal:8081/jhub/hub/api", "/jhub/", "/jhub/services/hubkeeper/"),
        ("http://hub.internal:8081/jhub/hub/api/", "/jhub/", "/jhub/services/hubkeeper/"),
        ("http://127.0.0.1:8081/hub/api", "/", "/services/hubkeeper/"),
        ("http://h/a/b/hub/api", "/a/b/", "/a/b/services/hubkeeper/"),
        ("http://proxy.example/weird/api", "/", "/services/hubkeeper/"),
    ],
)
def test_hub_base_url_and_prefix_come_from_the_api_url_when_unset(api_url, base, prefix):
    settings = Settings(JUPYTERHUB_API_URL=api_url, JUPYTERHUB_API_TOKEN="t")
    assert settings.hub_base_url == base
    assert settings.service_prefix == prefix
    assert settings.browser_hub_url == base.rstrip("/")


def test_given_base_url_and_prefix_win_over_the_derived_ones():
    settings = Settings(
        JUPYTERHUB_API_URL="http://hub.internal:8081/jhub/hub/api",
        JUPYTERHUB_API_TOKEN="t",
        JUPYTERHUB_BASE_URL="/other",
        JUPYTERHUB_SERVICE_PREFIX="/other/services/hk",
        JUPYTERHUB_CLIENT_ID="service-hk",
    )
    assert settings.hub_base_url == "/other/"
    assert settings.service_prefix == "/other/services/hk/"
    assert settings.service_name == "hk"
    assert settings.access_scopes == {"access:services!service=hk"}


def test_access_scopes_follow_the_hubs_variable():
    settings = Settings(
        **HUB, JUPYTERHUB_OAUTH_ACCESS_SCOPES='["access:services!service=a", "custom:x"]'
    )
    assert settings.access_scopes == {"access:services!service=a", "custom:x"}
    with pytest.raises(MissingSetting, match="JUPYTERHUB_OAUTH_ACCESS_SCOPES"):
        _ = Settings(**HUB, JUPYTERHUB_OAUTH_ACCESS_SCOPES="not json").access_scopes


@pytest.mark.parametrize(
    "value", ["{not json", "[1, 2]", '{"gpu": -0.5}', '{"gpu": "2"}', '{"gpu": true}', '{"*": NaN}']
)
def test_bad_prices_fail_at_start_naming_the_setting(monkeypatch, value):
    from pydantic import ValidationError

    monkeypatch.setenv("HUBKEEPER_PRICES", value)
    with pytest.raises(ValidationError, match="HUBKEEPER_PRICES"):
        Settings()


def test_prices_parse_as_profile_to_price(monkeypatch):
    monkeypatch.setenv("HUBKEEPER_PRICES", '{"gpu": 2, "*": 0.25}')
    assert Settings().prices == {"gpu": 2.0, "*": 0.25}
    monkeypatch.delenv("HUBKEEPER_PRICES")
    assert Settings().prices == {}
