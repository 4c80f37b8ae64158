"""The HTTP API: REST, SSE and WebSocket over the same services as the CLI."""
