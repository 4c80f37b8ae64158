"""Helpers shared by tests (not fixtures)."""
