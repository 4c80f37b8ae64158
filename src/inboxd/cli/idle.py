"""``inboxd idle``: the IMAP IDLE watcher on its own, for deployments that run workers apart
from the web server (``inboxd serve`` starts one itself)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from inboxd.actions.idle import run_idle
from inboxd.cli.common import LogFormatOpt, app_session, err

log = logging.getLogger(__name__)


def idle_cmd(
    rescan: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds between looks at the accounts (added, removed)."),
    ] = 30.0,
    log_format: LogFormatOpt = None,
) -> None:
    """Keep an IMAP IDLE connection per account and sync new mail within seconds (until
    SIGTERM/SIGINT); INBOXD_IDLE_MAX_CONNECTIONS caps the connections, 0 turns it off."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("IDLE watcher stopping (%s)", signal.Signals(signum).name)
        stop.set()

    with app_session(daemon=True, log_format=log_format) as opened:
        if opened.settings.idle_max_connections <= 0:
            err.print("IDLE is off (INBOXD_IDLE_MAX_CONNECTIONS=0); nothing to do")
            return
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        run_idle(opened, stop, rescan_seconds=rescan)
