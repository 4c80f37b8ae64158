"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inboxd.app import App
from tests.support.apps import make_app


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """An App on each database (SQLite and PostgreSQL) with the tests' fast timings; a
    module that needs other settings defines its own."""
    opened = make_app(database_url, tmp_path)
    yield opened
    opened.close()
