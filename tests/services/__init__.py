"""Real services (PostgreSQL, Dovecot) started privately by the test suite, loopback only."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

LOOPBACK = "127.0.0.1"


class ServiceUnavailable(RuntimeError):
    """A service could not be found or started on this machine."""


def services_required() -> bool:
    """True when a missing service must fail tests instead of skipping them (CI)."""
    return os.environ.get("INBOXD_REQUIRE_SERVICES") == "1"


def require_services(reason: str) -> NoReturn:
    """Fail (INBOXD_REQUIRE_SERVICES=1) or skip the current test because a service is missing."""
    if services_required():
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(f"service unavailable: {reason}")


def is_root() -> bool:
    """Return True when running as uid 0."""
    return os.geteuid() == 0


def free_port() -> int:
    """Return a TCP port on the loopback address that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Return True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll a zero-argument callable until it returns truthy or raise ServiceUnavailable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise ServiceUnavailable(f"timed out after {timeout:.0f}s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """Return True when a process with this pid exists (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[0] != "Z"


def ensure_system_user(name: str) -> pwd.struct_passwd:
    """Return the passwd entry of a system user, creating it (as root) when missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if not is_root():
        raise ServiceUnavailable(f"system user {name!r} is missing and we are not root")
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return pwd.getpwnam(name)


def run_logged(
    argv: Sequence[str], log: Path, *, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """Run a command with output appended to a log file (never a pipe a daemon could inherit)."""
    with log.open("ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        return subprocess.run(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )


def tail(path: Path, lines: int = 30) -> str:
    """Return the last lines of a text file, or an empty string when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
