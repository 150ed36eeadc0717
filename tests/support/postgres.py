"""A Postgres cluster of one test alone (``initdb`` as the ``postgres`` user, its own port and data
directory), so a test can stop it hard and start it again without disturbing anyone else."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.wait import eventually

#: The system user that owns the cluster (Postgres refuses to run as root).
OWNER = "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.fail(
            "pg_ctl is not installed (the postgresql server package); run: sudo bash scripts/setup-system.sh"
        )
    return Path(found[-1]).parent


class PrivatePostgres:
    """``start()``, ``stop_immediately()`` (``pg_ctl stop -m immediate``: no clean shutdown), ``start()``
    again, ``destroy()``. Its database is ``postgres``; :attr:`url` is its SQLAlchemy URL."""

    def __init__(self, *, max_connections: int = 300) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.max_connections = max_connections
        # a directory the postgres user can enter (a test's tmp_path belongs to root, mode 0700)
        self.root = Path(tempfile.mkdtemp(prefix="cf-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        shutil.chown(self.root, OWNER, OWNER)
        self.url = f"postgresql+psycopg://{OWNER}@127.0.0.1:{self.port}/postgres"
        self._as_owner("initdb", "-D", str(self.data), "-A", "trust", "-U", OWNER, "--no-sync")

    def _as_owner(self, tool: str, *args: str) -> str:
        out = subprocess.run(
            ["runuser", "-u", OWNER, "--", str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if out.returncode != 0:
            pytest.fail(f"{tool} {' '.join(args)} failed ({out.returncode}):\n{out.stderr}\n{self.log()}")
        return out.stdout

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections={self.max_connections}"
        )
        self._as_owner("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start")

        def accepts() -> bool:
            engine = sa.create_engine(self.url)
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("select 1"))
            except sa.exc.OperationalError as exc:
                raise AssertionError(str(exc.orig)) from exc
            finally:
                engine.dispose()
            return True

        eventually(accepts, 30, f"the private Postgres on port {self.port} to accept connections")

    def stop_immediately(self) -> None:
        """The postmaster and every backend quit at once; in-flight statements and open
        connections die, as in a crash (recovery runs at the next start)."""
        self._as_owner("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        out = subprocess.run(
            ["runuser", "-u", OWNER, "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            timeout=30,
        )
        return out.returncode == 0

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop_immediately()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
