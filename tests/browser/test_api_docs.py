"""The interactive API documentation at /docs renders offline, under the strict CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Request, sync_playwright

from tests.support.server import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = start_server(tmp_path_factory.mktemp("docs"), worker=False)
    try:
        yield started
    finally:
        started.stop()


def test_swagger_ui_renders_every_route_from_local_files(
    server: ServerProcess, chromium_path: str, tmp_path: Path
) -> None:
    problems: list[str] = []
    foreign: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith(server.base_url):
            foreign.append(request.url)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            page = browser.new_page()
            page.on("console", on_console)
            page.on("request", on_request)
            page.goto(f"{server.base_url}/docs")
            page.locator(".opblock-summary-path").first.wait_for(timeout=15_000)
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        finally:
            browser.close()
    assert {"/api/accounts", "/api/jobs/{job_id}", "/api/accounts/{account_id}/sync"} <= {
        p.replace("\u200b", "") for p in paths
    }
    assert foreign == []  # no CDN: the page works on a machine without internet
    assert problems == []  # includes Content-Security-Policy violations
