"""The ``inboxd`` command line: thin Typer commands over :mod:`inboxd.actions`."""

from inboxd.cli.main import main

__all__ = ["main"]
