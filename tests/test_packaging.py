"""The built wheel is a working Hubkeeper on its own: import name `hubkeeper`, data inside."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.waiting import wait_for

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


@pytest.mark.subprocess
def test_the_built_wheel_is_a_working_service(hub, tmp_path):
    """Build the wheel, install it (not editable) with the production lock into a fresh venv,
    migrate, serve against the session hub, and render: the login redirect, a static file,
    health. Everything runs outside the repository, so nothing is imported from `app/`."""
    import os
    import shutil
    import subprocess
    import sys

    import httpx

    from hubkeeper.demo.localhub import free_port

    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is installed by make install"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HUBKEEPER_"))}
    clean.pop("VIRTUAL_ENV", None)
    clean.pop("PYTHONPATH", None)

    def run(*args: str, cwd: Path = tmp_path, timeout: float = 300) -> str:
        done = subprocess.run(
            args, cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return done.stdout

    dist = tmp_path / "dist"
    run(uv, "build", "--wheel", "--out-dir", str(dist), str(REPO))
    wheels = list(dist.glob("hubkeeper-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp_path / "venv"
    run(uv, "venv", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")
    run(uv, "pip", "install", "--python", python, "-r", str(REPO / "requirements-prod.lock"))
    run(uv, "pip", "install", "--python", python, "--no-deps", str(wheels[0]))
    where = run(python, "-c", "import hubkeeper, sys; print(hubkeeper.__file__)")
    assert str(venv) in where and str(REPO) not in where, where

    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    env = {
        **hub.hubkeeper_env(),
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "HUBKEEPER_DATABASE_URL": f"sqlite:///{work / 'hubkeeper.sqlite'}",
    }
    clean.update(env)
    run(str(venv / "bin" / "hubkeeper"), "db", "upgrade", cwd=work)
    server = subprocess.Popen(
        [str(venv / "bin" / "hubkeeper"), "serve"],
        cwd=work,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}{hub.service_prefix}"
    try:

        def answered() -> httpx.Response | None:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                return httpx.get(base + "api/v1/health", timeout=5)
            except httpx.HTTPError:
                return None

        health = wait_for(answered, 60, "hubkeeper serve to answer", interval=0.2)
        assert health.status_code == 200
        assert health.json()["status"] == "ok", health.json()
        page = httpx.get(base + "users", timeout=10)
        assert page.status_code == 302
        assert page.headers["location"].startswith(f"{hub.service_prefix}login?next=")
        login = httpx.get(base + "login", timeout=10)
        assert login.status_code == 302 and "/hub/api/oauth2/authorize" in login.headers["location"]
        static = httpx.get(base + "static/common.js", timeout=10)
        assert static.status_code == 200 and "hubkeeperCsrf" in static.text
        docs = httpx.get(base + "static/vendor/swagger-ui/swagger-ui-bundle.js", timeout=10)
        assert docs.status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
