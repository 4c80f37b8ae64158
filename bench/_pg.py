"""A throwaway PostgreSQL cluster for the benchmark: 127.0.0.1 only, data in a temp dir.

Durability settings are PostgreSQL's defaults (fsync, synchronous_commit and
full_page_writes on): the figures must be those of a real deployment, and every queue
measured on the cluster pays the same price for a commit.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    """The cluster could not be created or started."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.split("/bin/")[0]))


def find_bindir() -> Path:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl (or initdb on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresError("PostgreSQL server binaries (initdb, pg_ctl) not found")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """initdb + pg_ctl start in a temp dir; :meth:`close` stops it and deletes the files.

    Run as root, the cluster belongs to the ``postgres`` system user (PostgreSQL refuses
    to run as root) and its tools are started through ``runuser``.
    """

    def __init__(self, *, shared_buffers: str = "256MB", max_connections: int = 100) -> None:
        self.bindir = find_bindir()
        self.shared_buffers = shared_buffers
        self.max_connections = max_connections
        self.port = 0
        self._run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise PostgresError(
                    "running as root needs a 'postgres' system user to own the cluster"
                ) from exc
        # /tmp rather than $TMPDIR: as root, the postgres user must be able to reach it.
        self.base = Path(
            tempfile.mkdtemp(prefix="inboxd-bench-pg-", dir="/tmp" if self._run_as else None)
        )
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._started = False

    @property
    def version(self) -> str:
        """The server's version, from its binary (e.g. ``15.8``)."""
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        match = re.search(r"(\d+(?:\.\d+)*)", out)
        return match.group(1) if match else out.strip()

    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bindir / tool), *args]
        if self._run_as is not None:
            argv = ["runuser", "-u", self._run_as.pw_name, "--", *argv]
        return argv

    def _run(self, tool: str, *args: str) -> None:
        with self.log.open("a") as out:
            proc = subprocess.run(
                self._argv(tool, *args),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                timeout=120,
                check=False,
            )
        if proc.returncode != 0:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise PostgresError(f"{tool} failed ({proc.returncode}):\n{tail}")

    def start(self) -> None:
        """Create the cluster and start it on a free loopback port."""
        (self.base / "sock").mkdir()
        self.log.touch()
        if self._run_as is not None:
            for path in (self.base, self.base / "sock", self.log):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        # --no-sync only skips initdb's own final fsync of the fresh files; the server
        # itself runs with fsync on.
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        for attempt in range(3):
            self.port = free_port()
            conf = "\n".join(
                [
                    f"listen_addresses = '{LOOPBACK}'",
                    f"port = {self.port}",
                    f"unix_socket_directories = '{self.base / 'sock'}'",
                    f"max_connections = {self.max_connections}",
                    f"shared_buffers = {self.shared_buffers}",
                    "log_min_messages = warning",
                    "",
                ]
            )
            (self.data / "bench.conf").write_text(conf)
            main = self.data / "postgresql.conf"
            text = main.read_text()
            if "include_if_exists = 'bench.conf'" not in text:
                main.write_text(text + "\ninclude_if_exists = 'bench.conf'\n")
            if self._run_as is not None:
                os.chown(self.data / "bench.conf", self._run_as.pw_uid, self._run_as.pw_gid)
            try:
                self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                          "-l", str(self.log))  # fmt: skip
                self._started = True
                return
            except PostgresError:
                if attempt == 2:  # the port may have been taken between probe and bind
                    raise

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of a database on this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{dbname}"

    def close(self) -> None:
        """Stop the server and delete its files (safe to call twice)."""
        if self._started:
            try:
                self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data))
            except (PostgresError, subprocess.TimeoutExpired):
                self._kill()
            self._started = False
        shutil.rmtree(self.base, ignore_errors=True)

    def _kill(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return
        try:
            os.kill(pid, 9)
            time.sleep(0.5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
