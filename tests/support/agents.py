"""Talking to inboxd's MCP server as an agent does, with the SDK's own client."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from inboxd.api.main import DirectStreams, create_api
from inboxd.app import App
from inboxd.mcp.http import mount
from tests.support.apps import wait_for
from tests.support.server import free_port

#: The session-based protocol (initialize handshake) and the stateless revision.
LEGACY = "legacy"
STATELESS = "2026-07-28"
#: Every tool the server offers (and nothing that approves).
TOOLS = {
    "trigger_email_fetch",
    "get_email_status",
    "list_jobs",
    "get_job",
    "cancel_job",
    "wait_for_job",
    "search_messages",
    "get_message",
    "top_messages",
    "start_newsletter_extraction",
    "get_extraction",
    "propose_cleanup",
    "get_cleanup",
}


@contextmanager
def serving(app: App) -> Iterator[str]:
    """The API with /mcp mounted, as ``inboxd serve`` composes it, served by uvicorn on a
    free loopback port in a thread of this process; yields its base URL."""
    api = create_api(app)
    mount(api, app)
    port = free_port()
    config = uvicorn.Config(
        DirectStreams(api), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mcp-test-server", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@asynccontextmanager
async def over_http(
    base_url: str, headers: dict[str, str], *, mode: str = LEGACY
) -> AsyncIterator[Client]:
    """An MCP client of ``base_url``/mcp sending ``headers`` (the key) with each request."""
    timeout = httpx2.Timeout(30.0, read=120.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


def bearer(key: str) -> dict[str, str]:
    """The header the REST API takes a key in."""
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def over_stdio(
    env: dict[str, str], *args: str, errlog: Path | None = None
) -> AsyncIterator[Client]:
    """``python -m inboxd mcp ARGS`` started by the SDK's stdio client, with ``env``."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "inboxd", "mcp", *args], env=env
    )
    if errlog is None:
        async with Client(stdio_client(params), mode=LEGACY) as client:
            yield client
        return
    with errlog.open("a") as log:
        async with Client(stdio_client(params, errlog=log), mode=LEGACY) as client:
            yield client


def data(result: CallToolResult) -> dict[str, Any]:
    """A successful call's structured result (fails the test on a tool error)."""
    assert not result.is_error, text(result)
    found: dict[str, Any] | None = result.structured_content
    assert found is not None
    return found


def text(result: CallToolResult) -> str:
    """All the text blocks of a result, joined."""
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def trusted_text(result: CallToolResult) -> dict[str, Any]:
    """The first text block (inboxd's own data) parsed."""
    first = result.content[0]
    assert isinstance(first, TextContent)
    loaded: dict[str, Any] = json.loads(first.text)
    return loaded
