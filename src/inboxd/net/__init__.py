"""Fetching URLs taken from messages, only through the guarded client (no private addresses,
every hop checked): newsletter links, one-click unsubscribes, webhooks."""
