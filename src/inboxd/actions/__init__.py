"""The one service layer: what the API, the CLI and (later) MCP may do, and the rules that
go with it. Entry points stay thin: they parse input, call one action and shape the answer.

- :mod:`inboxd.actions.accounts`: add, update, remove, test and sync accounts; their views.
- :mod:`inboxd.actions.jobs`: start, list, cancel, retry and approve jobs; their events.
- :mod:`inboxd.actions.demo`: the generated demo mailbox.
- :mod:`inboxd.actions.changes`: mark a message, undo a job's changes, read its journal.
"""
