"""Every task kind, registered from the top.

jobs/ says how a kind is declared (:func:`inboxd.jobs.registry.task`) and imports nothing
above itself; this module imports the modules that declare inboxd's own kinds, so their
decorators run, and then any extra modules the settings name. Task modules keep their
declarations light (the web process loads them to enqueue): heavy machinery is imported
when a task runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import inboxd.jobs.builtin
import inboxd.pipeline.changes  # registers change, undo
import inboxd.pipeline.cleanup  # registers cleanup
import inboxd.pipeline.export  # registers export
import inboxd.pipeline.index  # registers index
import inboxd.pipeline.labels  # registers label
import inboxd.pipeline.newsletters  # registers newsletter_extraction
import inboxd.pipeline.triage  # registers triage
import inboxd.pipeline.webhooks  # registers webhook_delivery
import inboxd.sync.signin  # registers sign_in
import inboxd.sync.task  # noqa: F401  (registers sync)


def load_tasks(extra_modules: Iterable[str] = ()) -> None:
    """Register inboxd's own kinds (done by importing this module) and the kinds of
    ``extra_modules`` (``settings.task_modules``), importing each."""
    for name in extra_modules:
        importlib.import_module(name)
