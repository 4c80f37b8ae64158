"""Providers by name: each one's settings check and factory, imported when first used.

The web process checks settings and enqueues syncs; only workers open providers. Entries
therefore name their functions by dotted path, so checking an IMAP account's settings does
not import the IMAP stack (imapclient, the session), and a Graph provider later is one more
entry here and one new module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from inboxd.errors import InvalidRequest
from inboxd.providers.base import (
    MailProvider,
    ProviderAccount,
    ProviderOptions,
    ProviderSpec,
    SecretStore,
)

Validator = Callable[[dict[str, Any]], dict[str, Any]]
Factory = Callable[[ProviderAccount, SecretStore, ProviderOptions], MailProvider]
SpecFactory = Callable[[ProviderSpec], MailProvider]


@dataclass(frozen=True)
class ProviderEntry:
    """Where a provider's functions live ("module:function")."""

    name: str
    validator: str
    factory: str
    from_spec: str | None = None  # providers whose helpers open them from a spec


_ENTRIES: dict[str, ProviderEntry] = {}


def register(entry: ProviderEntry) -> None:
    """Add (or replace) a provider; tests register the fake this way."""
    _ENTRIES[entry.name] = entry


def unregister(name: str) -> None:
    """Remove a provider (a test's, when it is done)."""
    _ENTRIES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered provider name, in registration order."""
    return tuple(_ENTRIES)


def validate_settings(provider: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Check an account's connection settings for ``provider``; returns them normalised."""
    validator = cast(Validator, _resolve(_entry(provider).validator))
    return validator(settings)


def open_provider(
    account: ProviderAccount, secrets: SecretStore, options: ProviderOptions
) -> MailProvider:
    """A provider for ``account`` (not connected yet: see ``MailProvider.open``)."""
    factory = cast(Factory, _resolve(_entry(account.provider).factory))
    return factory(account, secrets, options)


def provider_from_spec(spec: ProviderSpec) -> MailProvider:
    """A provider opened in a helper process from another's :meth:`MailProvider.spec`."""
    path = _entry(spec.provider).from_spec
    if path is None:
        raise InvalidRequest(f"provider {spec.provider!r} cannot be opened from a spec")
    return cast(SpecFactory, _resolve(path))(spec)


def factory_modules(*, helpers: bool = False) -> list[str]:
    """Modules of the registered factories (with ``helpers``, only of providers that helper
    processes open): what a worker, or the forkserver of helpers, imports ahead of time."""
    paths = [e.from_spec if helpers else e.factory for e in _ENTRIES.values()]
    return sorted({path.partition(":")[0] for path in paths if path is not None})


def preload() -> None:
    """Import every provider's factory now: a worker pays for the IMAP stack when it
    starts, not in its first sync."""
    for module in factory_modules():
        importlib.import_module(module)


def _entry(provider: str) -> ProviderEntry:
    try:
        return _ENTRIES[provider]
    except KeyError:
        known = ", ".join(_ENTRIES)
        raise InvalidRequest(f"unknown provider {provider!r} (one of: {known})") from None


def _resolve(path: str) -> object:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


register(
    ProviderEntry(
        "imap",
        validator="inboxd.providers.imap.settings:validate_settings",
        factory="inboxd.providers.imap.provider:open_provider",
        from_spec="inboxd.providers.imap.provider:provider_from_spec",
    )
)
register(
    ProviderEntry(
        "maildir",
        validator="inboxd.providers.maildir:validate_settings",
        factory="inboxd.providers.maildir:open_provider",
    )
)
register(
    ProviderEntry(
        "mbox",
        validator="inboxd.providers.mbox:validate_settings",
        factory="inboxd.providers.mbox:open_provider",
    )
)
register(
    ProviderEntry(
        "graph",
        validator="inboxd.providers.graph.settings:validate_settings",
        factory="inboxd.providers.graph.provider:open_provider",
    )
)
