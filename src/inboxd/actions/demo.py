"""The demo mailbox: generated mail in a Maildir, registered as an account and synced."""

from __future__ import annotations

from inboxd.actions.accounts import registry
from inboxd.app import App
from inboxd.jobs.model import Job
from inboxd.store.accounts import Account
from inboxd.store.users import Users
from inboxd.sync.task import enqueue_sync

DEMO_NAME = "Demo mailbox"
DEMO_ADDRESS = "you@demo.inboxd.local"
DEMO_OWNER_NAME = "Alex Demo"
DEMO_MESSAGES = 3000


def ensure_demo_account(app: App, count: int = DEMO_MESSAGES) -> Account:
    """The demo account, its Maildir generated on first use (owned by the first admin)."""
    # Generating 3,000 messages imports the demo corpus: only callers that want it pay.
    from inboxd.mail.demo import generate_demo_maildir

    root = app.settings.data_dir / "demo-mail"
    generate_demo_maildir(root, count=count)
    accounts = registry(app)
    for account in accounts.list():
        if account.name == DEMO_NAME and account.provider == "maildir":
            return account
    return accounts.add(
        "maildir",
        DEMO_NAME,
        {"path": str(root)},
        owner=Users(app.engine).ensure_admin()[0].id,
        addresses=[DEMO_ADDRESS],
        owner_name=DEMO_OWNER_NAME,
    )


def start_demo(app: App, count: int = DEMO_MESSAGES) -> tuple[Account, Job]:
    """Make sure the demo account exists and queue its sync."""
    account = ensure_demo_account(app, count)
    return account, enqueue_sync(app.queue, account)
