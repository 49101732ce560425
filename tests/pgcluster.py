"""A private PostgreSQL 15 cluster a test may stop and start (the shared one on :5432 must
never go down): `with private_postgres(tmp_path) as pg: ... pg.stop(); pg.start()`.

initdb/pg_ctl from /usr/lib/postgresql/15/bin run as the `postgres` OS user (`runuser`, when
the tests run as root; directly when they already run as postgres); the data directory is
a fresh temporary one, the port a free one on 127.0.0.1, trust auth. Tests using it are
marked `own_db` and skipped where the binaries (or the user) are missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubkeeper.demo.localhub import free_port

PG_BIN = Path(os.environ.get("HUBKEEPER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"


def _as_postgres(*args: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *args]
    return list(args)


def available() -> str | None:
    """Why a private cluster cannot run here, or None when it can."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {PG_BIN}"
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return f"no {PG_USER} OS user"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != PG_USER:
        return f"tests run neither as root nor as {PG_USER}"
    return None


@dataclass
class PrivateCluster:
    data_dir: Path
    port: int
    log_file: Path

    @property
    def url(self) -> str:
        """The `postgres` database; `create_database(name)` for one of a test's own."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{name}"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args),
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def start(self) -> None:
        """Start and wait until it accepts connections (`pg_ctl -w`)."""
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1"
        self._ctl("-w", "-t", "60", "-l", str(self.log_file), "-o", options, "start")

    def stop(self) -> None:
        """Stop at once, dropping every connection (`-m immediate`: as a crash looks to
        clients; `fast` would do the same for them, this is just quicker)."""
        self._ctl("-w", "-t", "60", "-m", "immediate", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)


@contextlib.contextmanager
def private_postgres(parent: Path | None = None) -> Iterator[PrivateCluster]:
    """A running private cluster, stopped and removed afterwards (even if the test failed)."""
    reason = available()
    if reason:
        pytest.skip(f"own_db: {reason}")
    # The postgres user must reach the data directory: a directory of its own under /tmp
    # (pytest's tmp_path lies under root's 0700 directories).
    root = Path(tempfile.mkdtemp(prefix="hubkeeper-pg-", dir=parent or "/tmp"))
    root.chmod(0o755)
    data = root / "data"
    owner = pwd.getpwnam(PG_USER)
    if os.geteuid() == 0:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = PrivateCluster(data_dir=data, port=free_port(), log_file=root / "postgres.log")
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "--no-sync"
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
