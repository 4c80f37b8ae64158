"""inboxd: mail accounts kept in sync, long mail work run as durable background jobs."""

__version__ = "0.1.0"
