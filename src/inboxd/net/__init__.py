"""Fetching URLs taken from messages, only through the guarded client (no private addresses,
every hop checked): newsletter links, one-click unsubscribes, webhooks."""

from inboxd.net.guarded import GuardedClient, Hop, PostResult, Refused, Resolution, Resolver

__all__ = ["GuardedClient", "Hop", "PostResult", "Refused", "Resolution", "Resolver"]
