"""``inboxd account …``: connect and manage mail accounts."""

from __future__ import annotations

import sys
import webbrowser
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from inboxd.actions import accounts as actions
from inboxd.actions import signin
from inboxd.cli.common import EXIT_FAILED, JsonOpt, app_session, err, out, print_json
from inboxd.errors import InvalidRequest
from inboxd.store.users import Users
from inboxd.vocabulary import AccountState

account_app = typer.Typer(help="Connect and manage mail accounts.", no_args_is_help=True)
add_app = typer.Typer(help="Add an account.", no_args_is_help=True)
account_app.add_typer(add_app, name="add")

AddressOpt = Annotated[
    list[str] | None, typer.Option("--address", help="The user's own address (repeatable).")
]
OwnerNameOpt = Annotated[
    str | None, typer.Option("--owner-name", help="The user's name, as it appears in mail.")
]
NoBrowserOpt = Annotated[
    bool, typer.Option("--no-browser", help="Only print the sign-in address; open no browser.")
]
IntervalOpt = Annotated[
    int | None, typer.Option("--sync-interval", help="Seconds between automatic syncs; 0: off.")
]


class Switch(StrEnum):
    """A policy an account has or not."""

    ON = "on"
    OFF = "off"


def _created(account: actions.Account, as_json: bool) -> None:
    if as_json:
        print_json({"id": account.id})
    else:
        sys.stdout.write(account.id + "\n")


@add_app.command("imap")
def add_imap(
    name: Annotated[str, typer.Option("--name", help="A name for the account.")],
    host: Annotated[
        str | None, typer.Option("--host", help="With --sign-in: the provider's own server.")
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="With --sign-in: the address signed in.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    port: Annotated[int | None, typer.Option("--port")] = None,
    security: Annotated[str, typer.Option("--security", help="tls, starttls or none.")] = "tls",
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="Trust the server's certificate if this PEM file (a CA or the server's "
            "own self-signed certificate) vouches for it, instead of the system's CAs.",
        ),
    ] = None,
    no_verify_tls: Annotated[
        bool,
        typer.Option(
            "--no-verify-tls",
            help="Accept any TLS certificate (unsafe outside a trusted network; prefer --ca-file).",
        ),
    ] = False,
    xoauth2: Annotated[
        bool,
        typer.Option(
            "--xoauth2",
            help="Log in with OAuth2 (XOAUTH2): standard input gives an access token, or, "
            "with --oauth-client-id, a refresh token that inboxd trades for access tokens.",
        ),
    ] = False,
    oauth_provider: Annotated[
        str | None,
        typer.Option(
            "--oauth-provider", help="google or microsoft: their token endpoint and mail scope."
        ),
    ] = None,
    oauth_client_id: Annotated[
        str | None, typer.Option("--oauth-client-id", help="The OAuth client (app) id.")
    ] = None,
    oauth_token_url: Annotated[
        str | None,
        typer.Option("--oauth-token-url", help="Token endpoint (instead of --oauth-provider)."),
    ] = None,
    oauth_scope: Annotated[
        str | None, typer.Option("--oauth-scope", help="Scope asked for (default: the provider's).")
    ] = None,
    oauth_client_secret_stdin: Annotated[
        bool,
        typer.Option(
            "--oauth-client-secret-stdin",
            help="The client secret follows the refresh token, on the second line of input.",
        ),
    ] = False,
    folder: Annotated[
        list[str] | None, typer.Option("--folder", help="Only sync this folder (repeatable).")
    ] = None,
    address: AddressOpt = None,
    owner_name: OwnerNameOpt = None,
    sync_interval: IntervalOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="Owner of the account.")] = None,
    sign_in: Annotated[
        bool,
        typer.Option(
            "--sign-in",
            help="Sign in with --oauth-provider instead of reading a secret: google opens "
            "the browser (redirect to 127.0.0.1), microsoft shows a device code.",
        ),
    ] = False,
    no_browser: NoBrowserOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add an IMAP account (Gmail, Outlook, any server); prints its id."""
    if sign_in:
        _add_imap_signed_in(
            name,
            oauth_provider,
            oauth_client_id,
            {
                "host": host,
                "port": port,
                "security": security,
                "username": username,
                "folders": folder or None,
                "verify_tls": False if no_verify_tls else None,
                "ca_pem": _read_ca_file(ca_file) if ca_file is not None else None,
            },
            client_secret_stdin=oauth_client_secret_stdin,
            open_browser=not no_browser,
            address=address,
            owner_name=owner_name,
            sync_interval=sync_interval,
            user=user,
            as_json=as_json,
        )
        return
    if host is None or username is None:
        raise InvalidRequest("an IMAP account needs --host and --username (or --sign-in)")
    if not password_stdin:
        raise InvalidRequest(
            "the password is read from standard input: pass --password-stdin "
            "(never put a password on the command line)"
        )
    oauth = _given(provider=oauth_provider, client_id=oauth_client_id, token_url=oauth_token_url)
    if oauth_scope is not None:
        oauth["scope"] = oauth_scope
    xoauth2 = xoauth2 or bool(oauth)
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise InvalidRequest("no password on standard input")
    auth = "xoauth2" if xoauth2 else "password"
    secret = actions.secret_from_input({"auth": auth, "oauth": oauth}, value)
    if oauth:
        if oauth_client_secret_stdin:
            secret["client_secret"] = sys.stdin.readline().rstrip("\r\n")
            if not secret["client_secret"]:
                raise InvalidRequest("no client secret on the second line of standard input")
    elif oauth_client_secret_stdin:
        raise InvalidRequest("--oauth-client-secret-stdin goes with --oauth-client-id")
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "security": security,
        "username": username,
        "auth": auth,
        "folders": folder or [],
        "verify_tls": not no_verify_tls,
        "ca_pem": _read_ca_file(ca_file) if ca_file is not None else None,
        "oauth": oauth or None,
    }
    with app_session() as opened:
        account = actions.add_account(
            opened,
            "imap",
            name,
            settings,
            secret=secret,
            owner=Users(opened.engine).resolve_owner(user).id,
            admin=True,
            addresses=address or ([username] if "@" in username else []),
            owner_name=owner_name,
            sync_interval_seconds=sync_interval,
        )
    _created(account, as_json)


def _show_sign_in(open_browser: bool) -> Callable[[str], None]:
    """How the CLI shows a sign-in: a device code's instructions, or a URL to open (opened
    in the person's browser too, unless they said not to)."""

    def show(text: str) -> None:
        # Plain writes, not Rich: a long URL must stay one line to be copied.
        if text.startswith(("http://", "https://")):
            sys.stderr.write(f"Open this address to sign in:\n{text}\n")
            sys.stderr.flush()
            if open_browser:
                webbrowser.open(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.write("Waiting for the sign-in...\n")
        sys.stderr.flush()

    return show


def _add_imap_signed_in(
    name: str,
    provider: str | None,
    client_id: str | None,
    overrides: dict[str, Any],
    *,
    client_secret_stdin: bool,
    open_browser: bool,
    address: list[str] | None,
    owner_name: str | None,
    sync_interval: int | None,
    user: str | None,
    as_json: bool,
) -> None:
    """``account add imap --oauth-provider P --sign-in``: sign in, then store the account."""
    if provider not in signin.PROVIDERS:
        raise InvalidRequest("--sign-in needs --oauth-provider google or microsoft")
    client_secret = None
    if client_secret_stdin:
        client_secret = sys.stdin.readline().rstrip("\r\n")
        if not client_secret:
            raise InvalidRequest("no client secret on standard input")
    with app_session() as opened:
        owner = Users(opened.engine).resolve_owner(user).id
        endpoints, granted = signin.cli_sign_in(
            opened,
            provider,
            show=_show_sign_in(open_browser),
            client_id=client_id,
            client_secret=client_secret,
        )
        account = signin.store_signed_in(
            opened,
            endpoints,
            granted,
            name,
            owner=owner,
            settings={k: v for k, v in overrides.items() if v is not None}
            or {"username": granted.username},
            sync_interval_seconds=sync_interval,
        )
        if address or owner_name:
            account = actions.update_account(
                opened,
                account,
                admin=True,
                **_given(addresses=address or None, owner_name=owner_name),
            )
    _created(account, as_json)


def _add_graph_signed_in(
    name: str, client_id: str | None, tenant: str, user: str | None, as_json: bool
) -> None:
    """The device-code sign-in of ``account add graph`` (without --refresh-token-stdin)."""
    with app_session() as opened:
        if not signin.graph_available():
            raise InvalidRequest("this installation has no Graph provider")
        owner = Users(opened.engine).resolve_owner(user).id
        endpoints, granted = signin.cli_sign_in(
            opened,
            "microsoft",
            show=_show_sign_in(False),
            client_id=client_id,
            tenant=tenant,
            graph=True,
        )
        account = signin.store_signed_in(
            opened, endpoints, granted, name, owner=owner, kind="graph"
        )
    _created(account, as_json)


def _given(**values: Any) -> dict[str, Any]:
    """The options that were given (not None)."""
    return {key: value for key, value in values.items() if value is not None}


def _read_ca_file(path: Path) -> str:
    try:
        return path.expanduser().read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read CA file {path}: {exc}") from exc


def _add_local(
    provider: str,
    name: str,
    path: Path,
    address: list[str] | None,
    owner_name: str | None,
    sync_interval: int | None,
    user: str | None,
    as_json: bool,
) -> None:
    with app_session() as opened:
        account = actions.add_account(
            opened,
            provider,
            name,
            {"path": str(path)},
            owner=Users(opened.engine).resolve_owner(user).id,
            admin=True,
            addresses=address,
            owner_name=owner_name,
            sync_interval_seconds=sync_interval,
        )
    _created(account, as_json)


@add_app.command("graph")
def add_graph(
    name: Annotated[str, typer.Option("--name", help="A name for the account.")],
    client_id: Annotated[
        str | None,
        typer.Option(
            "--client-id",
            help="The app (client) id registered with Microsoft (default: the setting).",
        ),
    ] = None,
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant id or domain; common for any account.")
    ] = "common",
    refresh_token_stdin: Annotated[
        bool,
        typer.Option(
            "--refresh-token-stdin", help="Read a refresh token (Mail.ReadWrite) from stdin."
        ),
    ] = False,
    address: AddressOpt = None,
    owner_name: OwnerNameOpt = None,
    sync_interval: IntervalOpt = None,
    user: Annotated[str | None, typer.Option("--user", help="Owner of the account.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a Microsoft Graph account (Outlook.com, Microsoft 365): shows a device code and
    waits for the sign-in, or takes a refresh token on stdin (headless); prints its id."""
    if not refresh_token_stdin:
        _add_graph_signed_in(name, client_id, tenant, user, as_json)
        return
    secret = _graph_refresh_token()
    with app_session() as opened:
        client_id = client_id or opened.settings.microsoft_client_id
        if not client_id:
            raise InvalidRequest("pass --client-id or set INBOXD_MICROSOFT_CLIENT_ID")
        settings = {"client_id": client_id, "tenant": tenant}
        account = actions.add_account(
            opened,
            "graph",
            name,
            settings,
            secret=secret,
            owner=Users(opened.engine).resolve_owner(user).id,
            admin=True,
            addresses=address,
            owner_name=owner_name,
            sync_interval_seconds=sync_interval,
        )
    _created(account, as_json)


def _graph_refresh_token() -> dict[str, Any]:
    """A Graph account's secret from the refresh token on standard input."""
    value = sys.stdin.readline().strip()
    if not value:
        raise InvalidRequest("no refresh token on standard input")
    return {"refresh_token": value}


@add_app.command("maildir")
def add_maildir(
    name: Annotated[str, typer.Option("--name")],
    path: Annotated[Path, typer.Option("--path", help="The Maildir's top directory.")],
    address: AddressOpt = None,
    owner_name: OwnerNameOpt = None,
    sync_interval: IntervalOpt = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a local Maildir; prints its id."""
    _add_local("maildir", name, path, address, owner_name, sync_interval, user, as_json)


@add_app.command("mbox")
def add_mbox(
    name: Annotated[str, typer.Option("--name")],
    path: Annotated[Path, typer.Option("--path", help="The mbox file (e.g. from Takeout).")],
    address: AddressOpt = None,
    owner_name: OwnerNameOpt = None,
    sync_interval: IntervalOpt = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an mbox file; prints its id."""
    _add_local("mbox", name, path, address, owner_name, sync_interval, user, as_json)


@account_app.command("list")
def account_list(as_json: JsonOpt = False) -> None:
    """List accounts."""
    with app_session() as opened:
        found = actions.list_accounts(opened)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True, min_width=36)
    for col in ("name", "provider", "state", "last sync"):
        table.add_column(col)
    for acc in found:
        last = acc.last_sync_at.strftime("%Y-%m-%d %H:%M") if acc.last_sync_at else "never"
        table.add_row(acc.id, acc.name, acc.provider, acc.state, last)
    out.print(table)


@account_app.command("show")
def account_show(account: str, as_json: JsonOpt = False) -> None:
    """Show an account (settings without secrets, state, counts per folder)."""
    with app_session() as opened:
        data = actions.detail(opened, actions.find_account(opened, account))
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key in (
        "id",
        "name",
        "provider",
        "state",
        "state_message",
        "last_sync_at",
        "message_count",
    ):
        if data.get(key) is not None:
            table.add_row(key, str(data[key]))
    for key, value in data["settings"].items():
        if key == "ca_pem" and value:
            value = f"{value.count('BEGIN CERTIFICATE')} certificate(s), not the system CAs"
        if value not in (None, [], ""):
            table.add_row(f"settings.{key}", str(value))
    out.print(table)
    for name, count in data["folders"].items():
        out.print(f"  {name}: {count}")
    if data["state"] == AccountState.NEEDS_SIGN_IN:
        out.print(f"needs sign-in: inboxd account sign-in {data['id']}", soft_wrap=True)


@account_app.command("test")
def account_test(account: str, as_json: JsonOpt = False) -> None:
    """Connect, list folders and counts, and say clearly what is wrong, if anything."""
    with app_session() as opened:
        result = actions.test_account(opened, actions.find_account(opened, account))
    if as_json:
        print_json(result)
    elif result["ok"]:
        out.print(f"[green]ok[/green]: {result['summary']}")
        for name, count in result["folders"].items():
            out.print(f"  {name}: {count}")
    else:
        err.print(f"[red]failed[/red]: {result['error']}", highlight=False)
    if not result["ok"]:
        raise typer.Exit(EXIT_FAILED)


@account_app.command("update")
def account_update(
    account: str,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read a new password (for an --xoauth2 account: access token, or refresh "
            "token when it has an OAuth client) from standard input.",
        ),
    ] = False,
    host: Annotated[str | None, typer.Option("--host")] = None,
    port: Annotated[int | None, typer.Option("--port")] = None,
    security: Annotated[
        str | None, typer.Option("--security", help="tls, starttls or none.")
    ] = None,
    username: Annotated[str | None, typer.Option("--username")] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="Trust the CA in this PEM file.")
    ] = None,
    verify_tls: Annotated[
        bool | None,
        typer.Option("--verify-tls/--no-verify-tls", help="Check the server's certificate."),
    ] = None,
    folder: Annotated[
        list[str] | None,
        typer.Option("--folder", help="Only sync these folders (repeatable; replaces the list)."),
    ] = None,
    path: Annotated[Path | None, typer.Option("--path", help="Maildir or mbox path.")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Sync on schedule, or not.")
    ] = None,
    sync_interval: IntervalOpt = None,
    labels: Annotated[
        Switch | None,
        typer.Option(
            "--labels",
            help="Write triage categories back to the server as keywords ($inboxd_newsletter) "
            "or Gmail labels (inboxd/Newsletter); not for mbox accounts.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an account: its password, connection settings, name, schedule or label
    policy. A new password or new settings bring an account that needs attention back to
    periodic syncs; turning labels on queues a label job."""
    settings = _given(
        host=host,
        port=port,
        security=security,
        username=username,
        verify_tls=verify_tls,
        folders=folder,
        path=str(path) if path is not None else None,
        ca_pem=_read_ca_file(ca_file) if ca_file is not None else None,
    )
    changes = _given(
        name=name,
        enabled=enabled,
        sync_interval_seconds=sync_interval,
        labels=None if labels is None else labels is Switch.ON,
    )
    if settings:
        changes["settings"] = settings
    with app_session() as opened:
        found = actions.find_account(opened, account)
        secret = None
        if password_stdin:
            if found.provider != "imap":
                raise InvalidRequest(f"a {found.provider} account has no password")
            value = sys.stdin.readline().rstrip("\r\n")
            if not value:
                raise InvalidRequest("no password on standard input")
            secret = actions.secret_from_input(found.settings, value)
        if not changes and secret is None:
            raise InvalidRequest("nothing to change (see --help)")
        updated = actions.update_account(opened, found, admin=True, secret=secret, **changes)
    if as_json:
        print_json(updated.to_dict())
    else:
        labels_now = "on" if updated.labels_enabled else "off"
        out.print(
            f"updated {updated.name} ({updated.id}); state: {updated.state}; labels: {labels_now}"
        )


@account_app.command("sign-in")
def account_sign_in(
    account: str,
    no_browser: NoBrowserOpt = False,
    client_secret_stdin: Annotated[
        bool,
        typer.Option(
            "--oauth-client-secret-stdin", help="Read a new client secret from standard input."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Sign an OAuth account in again (its grant was revoked or expired): a browser for
    Google, a device code for Microsoft. Periodic syncs resume."""
    client_secret = sys.stdin.readline().rstrip("\r\n") if client_secret_stdin else None
    with app_session() as opened:
        found = actions.find_account(opened, account)
        updated = signin.sign_in_again(
            opened, found, show=_show_sign_in(not no_browser), client_secret=client_secret
        )
    if as_json:
        print_json(updated.to_dict())
    else:
        out.print(f"signed in: {updated.name} ({updated.id}); state: {updated.state}")


@account_app.command("remove")
def account_remove(
    account: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Remove an account and its local copy (the mail on the server is not touched)."""
    with app_session() as opened:
        found = actions.find_account(opened, account)
        if not yes and sys.stdin.isatty():
            typer.confirm(f"Remove {found.name!r} and its local copy?", abort=True)
        actions.remove_account(opened, found)
    out.print(f"removed {found.name} ({found.id})")
