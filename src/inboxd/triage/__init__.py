"""Triage: a category, a priority, a confidence and reasons for every message.

Pure code over what one message says and what is known of its user (no database, no
network except the optional refiner): ``types`` (what goes in and out), ``extract`` (a
:class:`~inboxd.triage.types.Mail` from stored bytes and columns), ``classify`` (sender
memory and header signals), ``priority``, ``model`` (the small model trained on the user's
own mail) and ``refiner`` (an optional OpenAI-compatible endpoint). The ``triage`` job that
runs it over an account's mail is :mod:`inboxd.pipeline.triage`.
"""
