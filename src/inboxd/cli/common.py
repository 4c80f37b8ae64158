"""Pieces shared by the CLI modules: consoles, --json, opening the App."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from inboxd import logs
from inboxd.app import App
from inboxd.config import load_settings

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

#: Exit codes: a job that did not complete, a wait that timed out.
EXIT_FAILED, EXIT_TIMEOUT = 1, 3


class LogFormat(StrEnum):
    """``--log-format`` choices (the same as INBOXD_LOG_FORMAT's)."""

    text = "text"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat | None,
    typer.Option(
        "--log-format",
        help="text, or json: one object per line (default: INBOXD_LOG_FORMAT, else text).",
    ),
]


@contextmanager
def app_session(*, daemon: bool = False, log_format: LogFormat | None = None) -> Iterator[App]:
    """Settings, logging and an open App for one command (a one-shot command logs only
    warnings; a long-running one logs at INBOXD_LOG_LEVEL, in ``log_format`` if given)."""
    settings = load_settings(**({"log_format": log_format.value} if log_format else {}))
    logs.configure(settings.log_level if daemon else "WARNING", settings.log_format)
    with App.open(settings) as opened:
        yield opened


def print_json(value: Any) -> None:
    """Write a JSON document to stdout."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
