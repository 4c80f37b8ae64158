"""The browser every dashboard test drives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    """The system Chromium, headless (never a downloaded one)."""
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield launched
        finally:
            launched.close()
