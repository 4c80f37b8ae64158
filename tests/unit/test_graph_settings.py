"""A Graph account's settings check and how Graph's properties become marks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inboxd.errors import InvalidField
from inboxd.providers import registry
from inboxd.providers.base import Marks
from inboxd.providers.graph.provider import marks_of
from inboxd.providers.graph.settings import SCOPE, GraphConfig, validate_settings


def test_defaults_and_normalised_values() -> None:
    clean = registry.validate_settings("graph", {"client_id": " app-id "})
    assert clean == {
        "client_id": "app-id",
        "tenant": "common",
        "authority": "https://login.microsoftonline.com",
        "graph_url": "https://graph.microsoft.com/v1.0",
    }
    local = validate_settings(
        {
            "client_id": "x",
            "tenant": "contoso.onmicrosoft.com",
            "authority": "http://127.0.0.1:8080/",
            "graph_url": "http://localhost:9/v1.0",
            "page_size": 50,
        }
    )
    assert local["authority"] == "http://127.0.0.1:8080" and local["page_size"] == 50
    config = GraphConfig("x", "contoso.onmicrosoft.com", local["authority"], local["graph_url"])
    assert config.token_url == "http://127.0.0.1:8080/contoso.onmicrosoft.com/oauth2/v2.0/token"
    assert config.oauth.scope == SCOPE


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "settings.client_id"),
        ({"client_id": "x", "tenant": "a/b"}, "settings.tenant"),
        ({"client_id": "x", "graph_url": "http://graph.example.com/v1.0"}, "settings.graph_url"),
        ({"client_id": "x", "authority": "ftp://login.example.com"}, "settings.authority"),
        ({"client_id": "x", "page_size": 0}, "settings.page_size"),
        ({"client_id": "x", "page_size": True}, "settings.page_size"),
        ({"client_id": "x", "page_size": 5000}, "settings.page_size"),
    ],
)
def test_refused_settings_name_the_field(settings: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidField, match=named):
        validate_settings(settings)


def test_marks_from_graph_properties() -> None:
    assert marks_of({"isRead": True, "flag": {"flagStatus": "flagged"}}) == Marks(
        ("\\Seen", "\\Flagged"), ()
    )
    # A completed follow-up flag is not a flagged message; categories are labels.
    assert marks_of(
        {"isRead": False, "flag": {"flagStatus": "complete"}, "categories": ["Red category"]}
    ) == Marks((), ("Red category",))


def test_checking_graph_settings_does_not_import_the_provider() -> None:
    code = (
        "import sys\n"
        "from inboxd.store.accounts import validate_settings\n"
        "validate_settings('graph', {'client_id': 'x'})\n"
        "assert 'inboxd.providers.graph.provider' not in sys.modules, 'provider imported'\n"
        "assert 'inboxd.providers.graph.client' not in sys.modules, 'client imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
