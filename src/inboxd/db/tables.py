"""Table definitions (SQLAlchemy Core). Alembic migrations create them; code queries them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from inboxd.db.types import BigId, JSONDoc, UTCDateTime

metadata = MetaData()

#: Statuses in which a job holds its dedupe key.
ACTIVE_STATUSES = ("pending", "running", "awaiting_approval")
_ACTIVE_SQL = "status IN ('pending', 'running', 'awaiting_approval')"

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("owner", String(64), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("queue", String(32), nullable=False, server_default="default"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("status", String(20), nullable=False),
    Column("params", JSONDoc, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("run_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("dedupe_key", String(200), nullable=True),
    Column("step", String(64), nullable=True),
    Column("progress_current", BigId, nullable=False, server_default="0"),
    Column("progress_total", BigId, nullable=True),
    Column("message", Text, nullable=True),
    Column("rate", Float, nullable=True),
    Column("eta_seconds", Float, nullable=True),
    Column("checkpoint", JSONDoc, nullable=True),
    Column("result", JSONDoc, nullable=True),
    Column("error", Text, nullable=True),
    Column("error_detail", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # Claim order is priority DESC, run_at ASC: the index matches so no sort is needed.
    Index("ix_jobs_claim", "status", "queue", text("priority DESC"), "run_at"),
    Index("ix_jobs_lease", "status", "lease_expires_at"),
    Index("ix_jobs_owner_status", "owner", "status"),
    Index("ix_jobs_account", "account_id", "created_at"),
    Index("ix_jobs_finished", "kind", "finished_at"),
    Index(
        "ux_jobs_active_dedupe",
        "dedupe_key",
        unique=True,
        sqlite_where=text(f"dedupe_key IS NOT NULL AND {_ACTIVE_SQL}"),
        postgresql_where=text(f"dedupe_key IS NOT NULL AND {_ACTIVE_SQL}"),
    ),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("type", String(16), nullable=False),
    Column("payload", JSONDoc, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_job_events_job", "job_id", "id"),
    sqlite_autoincrement=True,
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("owner", String(64), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("duration_seconds", Float, nullable=True),
    Column("result", JSONDoc, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_job_runs_account", "account_id", "finished_at"),
    Index("ix_job_runs_owner", "owner", "finished_at"),
    Index("ix_job_runs_finished", "finished_at"),
    sqlite_autoincrement=True,
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queues", JSONDoc, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("last_slot", BigId, nullable=False),
    Column("last_enqueued_at", UTCDateTime, nullable=False),
)

# -- mail accounts and the local store ---------------------------------------------------------

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("provider", String(16), nullable=False),
    Column("name", String(200), nullable=False),
    Column("addresses", JSONDoc, nullable=False),
    Column("owner_name", String(200), nullable=True),
    Column("settings", JSONDoc, nullable=False),
    Column("secret", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("sync_interval_seconds", Integer, nullable=True),
    Column("state", String(20), nullable=False, server_default="ok"),
    Column("state_message", Text, nullable=True),
    Column("last_sync_at", UTCDateTime, nullable=True),
    Column("last_sync_job_id", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Triage categories are written back to the server (inboxd.pipeline.labels).
    Column("labels_enabled", Boolean, nullable=False, server_default=false()),
    Index("ix_accounts_owner", "owner"),
)

folders = Table(
    "folders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    Column("name", String(500), nullable=False),
    Column("delimiter", String(4), nullable=True),
    Column("special_use", String(32), nullable=True),
    Column("uidvalidity", BigId, nullable=True),
    Column("uidnext", BigId, nullable=True),
    Column("highest_uid", BigId, nullable=False, server_default="0"),
    Column("highestmodseq", BigId, nullable=True),
    Column("server_count", Integer, nullable=True),
    Column("cursor", JSONDoc, nullable=True),
    Column("last_synced_at", UTCDateTime, nullable=True),
    Column("gone_at", UTCDateTime, nullable=True),
    UniqueConstraint("account_id", "name", name="uq_folders_account_name"),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", String(36), nullable=False),
    Column("identity", String(80), nullable=False),
    Column("gm_msgid", BigId, nullable=True),
    Column("message_id", String(500), nullable=True),
    Column("from_addr", String(320), nullable=True),
    Column("from_name", String(300), nullable=True),
    Column("to_addrs", JSONDoc, nullable=False),
    Column("cc_addrs", JSONDoc, nullable=False),
    Column("reply_to", JSONDoc, nullable=False),
    Column("subject", Text, nullable=True),
    Column("date", UTCDateTime, nullable=True),
    Column("internal_date", UTCDateTime, nullable=True),
    Column("list_id", String(500), nullable=True),
    Column("list_unsubscribe", Text, nullable=True),
    Column("list_unsubscribe_post", String(200), nullable=True),
    Column("precedence", String(40), nullable=True),
    Column("auto_submitted", String(80), nullable=True),
    Column("in_reply_to", String(500), nullable=True),
    Column("flags", JSONDoc, nullable=False),
    Column("labels", JSONDoc, nullable=False),
    Column("size", Integer, nullable=False),
    Column("snippet", Text, nullable=True),
    Column("has_attachments", Boolean, nullable=False, server_default=text("false")),
    Column("parse_errors", JSONDoc, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("expunged_at", UTCDateTime, nullable=True),
    # The list order (newest first): the header date, else the server's arrival date.
    Column("sort_date", UTCDateTime, nullable=True),
    # References (JSON list of Message-IDs), for threading.
    Column("refs", Text, nullable=True),
    # Set by the index job (inboxd.pipeline.index), like indexed_at.
    Column("thread_id", BigId, nullable=True),
    Column("indexed_at", UTCDateTime, nullable=True),
    # Set by the triage job (inboxd.pipeline.triage): a vocabulary.Category, 0-100, 0-1,
    # the reasons in words (JSON list), the tier that decided (vocabulary.TriageSource).
    Column("category", String(20), nullable=True),
    Column("priority", SmallInteger, nullable=True),
    Column("confidence", Float, nullable=True),
    Column("reasons", JSONDoc, nullable=True),
    Column("triage_source", String(12), nullable=True),
    Column("triaged_at", UTCDateTime, nullable=True),
    UniqueConstraint("account_id", "identity", name="uq_messages_identity"),
    Index("ix_messages_account_date", "account_id", "date"),
    Index("ix_messages_message_id", "message_id"),
    Index("ix_messages_from", "account_id", "from_addr"),
    Index("ix_messages_list", "account_id", "list_id"),
    Index("ix_messages_sort", "account_id", text("sort_date DESC"), text("id DESC")),
    Index("ix_messages_sort_all", text("sort_date DESC"), text("id DESC")),
    Index("ix_messages_thread", "account_id", "thread_id"),
    Index(
        "ix_messages_unindexed",
        "account_id",
        "id",
        sqlite_where=text("indexed_at IS NULL"),
        postgresql_where=text("indexed_at IS NULL"),
    ),
    Index(
        "ix_messages_untriaged",
        "account_id",
        "id",
        sqlite_where=text("triaged_at IS NULL"),
        postgresql_where=text("triaged_at IS NULL"),
    ),
    Index(
        "ix_messages_category", "account_id", "category", text("sort_date DESC"), text("id DESC")
    ),
    Index(
        "ix_messages_priority",
        "account_id",
        text("priority DESC"),
        text("sort_date DESC"),
        text("id DESC"),
    ),
    Index(
        "ix_messages_category_priority",
        "account_id",
        "category",
        text("priority DESC"),
        text("sort_date DESC"),
        text("id DESC"),
    ),
    sqlite_autoincrement=True,
)

message_bodies = Table(
    "message_bodies",
    metadata,
    Column("message_pk", BigId, primary_key=True, autoincrement=False),
    Column("compression", String(8), nullable=False),
    # Empty when the body sits in a pack file (SQLite, see inboxd.store.packs): there it is
    # ``pack_length`` bytes at ``pack_offset`` of pack ``pack`` of the message's account.
    Column("raw", LargeBinary, nullable=False),
    Column("pack", String(36), nullable=True),
    Column("pack_offset", BigInteger, nullable=True),
    Column("pack_length", BigInteger, nullable=True),
)

locations = Table(
    "message_locations",
    metadata,
    Column("folder_id", BigId, primary_key=True, autoincrement=False),
    Column("remote_key", String(255), primary_key=True),
    Column("message_pk", BigId, nullable=False),
    Column("uid", BigId, nullable=True),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("expunged_at", UTCDateTime, nullable=True),
    Index("ix_locations_message", "message_pk"),
)

# The threads of an account: every Message-ID seen (a message's own, or one its References
# or In-Reply-To name, even when that message is not stored) and the thread it belongs to.
# Written by the index job (inboxd.pipeline.threads); a thread's id is a message pk.
thread_keys = Table(
    "thread_keys",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("message_id", String(500), primary_key=True),
    Column("thread_id", BigId, nullable=False),
    Index("ix_thread_keys_thread", "account_id", "thread_id"),
)

# The full-text index is dialect-specific (an FTS5 virtual table on SQLite; on PostgreSQL
# ``message_fts(message_pk, doc tsvector)`` with a GIN index): migration 0006 creates it and
# inboxd.store.fulltext reads and writes it.

# -- users, API keys and dashboard sessions ----------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False),
    # Only a SHA-256 of the key is stored: keys are 256-bit random, so a fast hash is enough.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("label", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index("ix_api_keys_user", "user_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("api_key_id", String(36), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_sessions_key", "api_key_id"),
)

# The user's triage rules: messages matching ``match`` (the search query language) get
# ``category`` (and ``priority`` when set). A sender rule (``source`` "sender") is one made
# from a correction ("always for this sender"); its match is ``from:<address>``. A rule
# without account applies to all of its owner's accounts.
triage_rules = Table(
    "triage_rules",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("owner", String(64), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("match", Text, nullable=False),
    Column("category", String(20), nullable=False),
    Column("priority", SmallInteger, nullable=True),
    Column("source", String(12), nullable=False, server_default="user"),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_triage_rules_owner", "owner"),
    sqlite_autoincrement=True,
)

# A person's correction of one message's category: kept (triage never overrides it) and
# the model's best labels.
triage_corrections = Table(
    "triage_corrections",
    metadata,
    Column(
        "message_pk",
        BigId,
        ForeignKey("messages.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("account_id", String(36), nullable=False),
    Column("category", String(20), nullable=False),
    Column("from_addr", String(320), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_triage_corrections_account", "account_id"),
)

# Each account's triage model (inboxd.triage.model), trained on its own mail by the triage
# job; ``blob`` is the model's own safe serialisation (never pickle).
triage_models = Table(
    "triage_models",
    metadata,
    Column("account_id", String(36), primary_key=True),
    Column("trained_at", UTCDateTime, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("labels", JSONDoc, nullable=False),
    Column("blob", LargeBinary, nullable=False),
)

#: One row per message per change, written (state ``planned``) before the server is
#: touched: ``before`` holds what undo restores ({"folder", "key", "uid", "flags",
#: "labels"}), ``after`` the same once done; ``change`` the change as planned.
change_journal = Table(
    "change_journal",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(36), nullable=False),
    Column("account_id", String(36), nullable=False),
    Column("message_pk", BigId, nullable=False),
    Column("op", String(40), nullable=False),
    Column("change", JSONDoc, nullable=False),
    Column("before", JSONDoc, nullable=False),
    Column("after", JSONDoc, nullable=True),
    Column("state", String(12), nullable=False),
    Column("reason", Text, nullable=True),
    Column("undone_by", String(36), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_change_journal_job", "job_id", "state", "id"),
    Index("ix_change_journal_message", "message_pk"),
    sqlite_autoincrement=True,
)

#: A clean-up: its discovery job's id, what it looked for, the proposal's summary and the
#: person's approval.
cleanups = Table(
    "cleanups",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("account_id", String(36), nullable=False),
    Column("owner", String(64), nullable=True),
    Column("action", String(20), nullable=False),
    Column("criteria", JSONDoc, nullable=False),
    Column("summary", JSONDoc, nullable=True),
    Column("candidates", Integer, nullable=False, server_default="0"),
    Column("protected", Integer, nullable=False, server_default="0"),
    Column("proposed_at", UTCDateTime, nullable=True),
    Column("approved_at", UTCDateTime, nullable=True),
    Column("approved_by", String(64), nullable=True),
    Column("approved_count", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_cleanups_account", "account_id", "created_at"),
)

#: Every message a clean-up looked at and kept: a candidate (with its reasons) or protected
#: (with why); ``approved`` once a person answered; ``outcome`` once executed.
cleanup_items = Table(
    "cleanup_items",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("message_pk", BigId, primary_key=True, autoincrement=False),
    Column("role", String(10), nullable=False),
    Column("reasons", JSONDoc, nullable=False),
    Column("approved", Boolean, nullable=True),
    Column("outcome", String(12), nullable=True),
    Column("outcome_reason", Text, nullable=True),
    Index("ix_cleanup_items_role", "job_id", "role"),
)

#: A newsletter extraction (its id is its job's id): what it looked for and, once it ended,
#: its counts and result (zlib-compressed JSON), kept after job retention pruned the job.
newsletter_extractions = Table(
    "newsletter_extractions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("account_id", String(36), nullable=True),
    Column("params", JSONDoc, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("counts", JSONDoc, nullable=True),
    Column("result", LargeBinary, nullable=True),
    Index("ix_newsletter_extractions_owner", "owner", "created_at"),
)

# -- webhooks ----------------------------------------------------------------------------------

# A user's webhook: ``events`` (job.finished, job.failed) of the owner's jobs, optionally only
# of some accounts' or kinds' (NULL: all), are POSTed to ``url`` signed with the secret, which
# is sealed like account credentials. ``owner`` NULL: the operator's own (ownerless) jobs.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("events", JSONDoc, nullable=False),
    Column("account_ids", JSONDoc, nullable=True),
    Column("kinds", JSONDoc, nullable=True),
    Column("description", String(200), nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_webhooks_owner", "owner", "enabled"),
)

# One event sent (or being sent) to one webhook; the payload is fixed when the event happens,
# the attempts are the delivery job's.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", String(36), nullable=False),
    Column("job_id", String(36), nullable=True),
    Column("delivery_job_id", String(36), nullable=True),
    Column("event", String(40), nullable=False),
    Column("payload", JSONDoc, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Index("ix_webhook_deliveries_hook", "webhook_id", "id"),
    sqlite_autoincrement=True,
)
