"""``inboxd --version`` says the version the package was installed as."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

import inboxd
from inboxd.cli.main import app


def test_version_option_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"inboxd {inboxd.__version__}"
    assert inboxd.__version__ == version("inboxd")
