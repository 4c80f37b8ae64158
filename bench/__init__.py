"""Benchmarks (figures, not tests); run them as scripts, e.g. ``python bench/queue.py``."""
