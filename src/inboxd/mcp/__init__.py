"""An MCP server for AI agents: the tools (server.py), their results (results.py) and the
HTTP endpoint mounted in ``inboxd serve`` (http.py); ``inboxd mcp`` serves it over stdio."""
