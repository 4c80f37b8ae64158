"""A throwaway PostgreSQL cluster on 127.0.0.1, owned by the test session."""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

from tests.services import (
    LOOPBACK,
    ServiceUnavailable,
    ensure_system_user,
    free_port,
    is_root,
    pid_alive,
    run_logged,
    tail,
)

SUPERUSER = "postgres"
StopMode = Literal["smart", "fast", "immediate"]


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.split("/bin/")[0]))


def find_pg_bindir() -> Path:
    """Return the bin directory holding initdb and pg_ctl, preferring the newest version."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(Path(initdb).parent)):
        return Path(initdb).parent
    raise ServiceUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")


class PostgresServer:
    """A private PostgreSQL cluster: trust auth, loopback TCP only, data in a temp dir."""

    def __init__(self, max_connections: int = 200) -> None:
        """Prepare (but do not start) a cluster."""
        self.max_connections = max_connections
        self.port = 0
        self._bindir: Path | None = None
        self._base: Path | None = None
        self._run_as: str | None = None
        self._initialised = False
        self._atexit_registered = False

    @property
    def base_dir(self) -> Path:
        """Directory holding the data dir, socket dir and log."""
        if self._base is None:
            raise RuntimeError("PostgresServer has not been started")
        return self._base

    @property
    def data_dir(self) -> Path:
        """The cluster's PGDATA."""
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        """The server log (also holds the output of initdb and pg_ctl)."""
        return self.base_dir / "postgres.log"

    def _argv(self, tool: str, *args: str) -> list[str]:
        assert self._bindir is not None
        argv = [str(self._bindir / tool), *args]
        if self._run_as is not None:
            # PostgreSQL refuses to run as root, so the cluster belongs to the postgres user.
            argv = ["runuser", "-u", self._run_as, "--", *argv]
        return argv

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        proc = run_logged(
            self._argv(tool, *args), self.log_path, cwd=self.base_dir, timeout=timeout
        )
        if proc.returncode != 0:
            raise ServiceUnavailable(
                f"{tool} failed with exit code {proc.returncode}:\n{tail(self.log_path)}"
            )

    def _prepare(self) -> None:
        self._bindir = find_pg_bindir()
        owner = None
        if is_root():
            owner = ensure_system_user(SUPERUSER)
            self._run_as = owner.pw_name
        # /tmp rather than $TMPDIR: as root the postgres user must be able to reach the dir.
        base = Path(tempfile.mkdtemp(prefix="inboxd-pg-", dir="/tmp" if owner else None))
        self._base = base
        (base / "sock").mkdir()
        self.log_path.touch()
        if owner is not None:
            for path in (base, base / "sock", self.log_path):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        self._initialised = True

    def _write_port_conf(self) -> None:
        # Settings go in an included file so a restart can rewrite the port without initdb.
        conf = self.data_dir / "inboxd_test.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listen_addresses = '{LOOPBACK}'",
                    f"port = {self.port}",
                    f"unix_socket_directories = '{self.base_dir / 'sock'}'",
                    f"max_connections = {self.max_connections}",
                    # Durability is irrelevant for throwaway test data; speed is not.
                    "fsync = off",
                    "synchronous_commit = off",
                    "full_page_writes = off",
                    "shared_buffers = 64MB",
                    "log_min_messages = warning",
                    "",
                ]
            )
        )
        if self._run_as is not None:
            owner = ensure_system_user(self._run_as)
            os.chown(conf, owner.pw_uid, owner.pw_gid)
        main_conf = self.data_dir / "postgresql.conf"
        text = main_conf.read_text()
        if "include_if_exists = 'inboxd_test.conf'" not in text:
            main_conf.write_text(text + "\ninclude_if_exists = 'inboxd_test.conf'\n")

    def start(self) -> None:
        """Create the cluster on first use and start it; a restart keeps data dir and port."""
        if self.running:
            return
        if self._base is None:
            self._prepare()
        if not self._initialised:
            self._initdb()
        keep_port = self.port != 0
        attempts = 1 if keep_port else 3
        for attempt in range(attempts):
            if not keep_port:
                self.port = free_port()
            self._write_port_conf()
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_path),
                )
                return
            except ServiceUnavailable:
                # Another process may have taken the port between probing and binding.
                if attempt == attempts - 1:
                    raise

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    @property
    def running(self) -> bool:
        """True while the postmaster process is alive."""
        if self._base is None:
            return False
        pid = self._postmaster_pid()
        return pid is not None and pid_alive(pid)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server ("immediate" simulates a crash); the data dir is kept."""
        pid = self._postmaster_pid() if self._base is not None else None
        if pid is None or not pid_alive(pid):
            return
        with contextlib.suppress(ServiceUnavailable):
            self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D", str(self.data_dir))
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop and start the same cluster on the same port, dropping every connection."""
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server and delete its files; safe to call more than once."""
        if self._base is None:
            return
        self.stop("immediate")
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = None
        self._initialised = False
        self.port = 0

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for a database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for psycopg."""
        return f"host={LOOPBACK} port={self.port} user={SUPERUSER} dbname={dbname}"

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(statement)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting any sessions still using it."""
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
