"""The ``export`` job: write an account's stored messages (all, or those a query matches)
to an mbox file or a Maildir tree on the server's host, exactly as they were fetched.

Messages go out in store order (by id), a page at a time. After each page the output is
flushed to the disk and the last id written is saved twice: as the job's checkpoint (for an
attempt that takes over after a crash) and in a small state file named after the job (for
a cancelled export that a person retries: a retry clears the checkpoint but keeps the id).
A resumed export first removes whatever was written after that point, then goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Connection, func, select

from inboxd.config import Settings
from inboxd.db.engine import reading
from inboxd.db.tables import folders, locations
from inboxd.db.tables import messages as m
from inboxd.db.types import utcnow
from inboxd.errors import InvalidField, InvalidParams
from inboxd.jobs.progress import TaskContext
from inboxd.jobs.registry import task
from inboxd.pipeline.mailfiles import MaildirWriter, MboxWriter, OutMessage
from inboxd.store.accounts import Accounts
from inboxd.store.bodies import read_bodies
from inboxd.store.search import message_filter, parse_query
from inboxd.vocabulary import Step

Format = Literal["mbox", "maildir"]
Layout = Literal["folders", "flat"]

#: Messages read per query, and at most this many bytes of them per write and commit.
PAGE_MESSAGES = 1000
PAGE_BYTES = 32 * 1024 * 1024


class ExportParams(BaseModel, extra="forbid"):
    """Parameters of ``export``."""

    account_id: str = Field(min_length=1, max_length=36)
    format: Format
    out: str = Field(
        min_length=2, max_length=4096, description="Absolute path on the server's host."
    )
    query: str | None = Field(default=None, max_length=2000)
    layout: Layout | None = Field(
        default=None,
        description="Maildir only: one Maildir++ folder per folder (the default), or flat.",
    )


@dataclass
class ExportState:
    """How far an export got: the last message id written and what the output holds."""

    last_id: int = 0
    messages: int = 0
    files: int = 0
    size: int = 0
    missing: int = 0
    #: the mbox file's committed length
    offset: int = 0
    #: 1 once the output was made by this job (a retry may then open it again)
    claimed: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> ExportState | None:
        """The state saved as ``data``, or None if there is none."""
        if not isinstance(data, dict):
            return None
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def export_dedupe_key(out: str) -> str:
    """At most one active export per output path."""
    return "export:" + hashlib.sha256(out.encode()).hexdigest()[:40]


def check_target(fmt: Format, out: str, layout: Layout | None = None) -> Path:
    """The output path if an export may write there (InvalidField says why not): absolute,
    in a directory that exists, and new (a Maildir export may also take an empty one)."""
    if layout is not None and fmt != "maildir":
        raise InvalidField("layout applies to a Maildir export only")
    path = Path(out)
    if not path.is_absolute():
        raise InvalidField(f"the output path must be absolute: {out!r}")
    if not path.parent.is_dir():
        raise InvalidField(f"no directory {path.parent} to export into")
    if path.is_symlink():
        raise InvalidField(f"{path} exists; an export never writes over anything")
    if path.exists():
        if fmt == "mbox" or not path.is_dir():
            raise InvalidField(f"{path} exists; an export never writes over anything")
        if any(path.iterdir()):
            raise InvalidField(f"{path} is not empty; a Maildir export needs a new or empty one")
    return path


def state_path(settings: Settings, job_id: str) -> Path:
    """Where an export job keeps how far it got, beside the database."""
    return settings.data_dir / "exports" / f"{job_id}.json"


@task("export", params=ExportParams)
def export(ctx: TaskContext, params: ExportParams) -> dict[str, Any]:
    """Write an account's messages to an mbox file or a Maildir tree, byte for byte."""
    account = Accounts(ctx.engine, ctx.settings).get(params.account_id)
    if ctx.job.account_id not in (None, account.id):
        raise InvalidParams("the job's account and its params' account_id differ")
    condition = _condition(ctx, account.id, params.query)
    saved = state_path(ctx.settings, ctx.job_id)
    state = _load_state(saved) or ExportState.from_dict(ctx.checkpoint)
    # Only an output this job made is ever opened again, and only after it said so.
    resuming = state is not None and state.claimed > 0
    if state is None or not resuming:
        state = ExportState()
        check_target(params.format, params.out, params.layout)
    out = Path(params.out)
    writer: MboxWriter | MaildirWriter
    if params.format == "mbox":
        writer = MboxWriter(out, resume_at=state.offset if resuming else None)
    else:
        folders_layout = params.layout != "flat"
        writer = MaildirWriter(
            out, folders=folders_layout, resume_after=state.last_id if resuming else None
        )
        writer.files = state.files
    if not resuming:
        state.claimed = 1
        _save_state(saved, state)
    try:
        with reading(ctx.engine) as conn:
            total = conn.execute(select(func.count()).select_from(m).where(condition)).scalar_one()
        ctx.progress.step(Step.EXPORTING, total=int(total), message=str(out))
        ctx.progress.update(state.messages)
        for page in _pages(ctx, condition, state.last_id):
            found, written = _write_page(ctx, writer, page, folders=params.format == "maildir")
            state.missing += len(page) - found
            state.last_id = page[-1].pk
            state.messages += found
            if isinstance(writer, MboxWriter):
                state.offset = state.size = writer.commit()
            else:
                writer.commit()
                state.files = writer.files
                state.size += written
            _save_state(saved, state)
            ctx.progress.checkpoint(asdict(state))
            ctx.progress.update(advance=len(page))
    finally:
        writer.close()
    with contextlib.suppress(FileNotFoundError):
        saved.unlink()
    if state.missing:
        ctx.log.warning("export %s: %d messages had no stored body", ctx.job_id, state.missing)
    return {
        "format": params.format,
        "out": str(out),
        "messages": state.messages,
        "files": state.files if params.format == "maildir" else 1,
        "bytes": state.size,
        "missing": state.missing,
    }


def _condition(ctx: TaskContext, account_id: str, query: str | None) -> ColumnElement[bool]:
    condition = (m.c.account_id == account_id) & m.c.expunged_at.is_(None)
    if query and query.strip():
        parsed = parse_query(query)
        condition = condition & message_filter(
            parsed, dialect=ctx.engine.dialect.name, now=utcnow()
        )
    return condition


@dataclass(frozen=True, slots=True)
class _Listed:
    """What an export needs of a message besides its bytes."""

    pk: int
    sender: str | None
    date: datetime | None
    flags: list[str]
    size: int


def _pages(ctx: TaskContext, condition: ColumnElement[bool], after: int) -> Iterator[list[_Listed]]:
    """The matching messages after id ``after``, in id order, a page at a time, each page
    cut to at most PAGE_BYTES (but at least one message)."""
    columns = (m.c.id, m.c.from_addr, m.c.internal_date, m.c.date, m.c.sort_date, m.c.flags)
    while True:
        ctx.progress.check_cancelled()
        with reading(ctx.engine) as conn:
            rows = conn.execute(
                select(*columns, m.c.size)
                .where(condition, m.c.id > after)
                .order_by(m.c.id)
                .limit(PAGE_MESSAGES)
            ).all()
        if not rows:
            return
        page: list[_Listed] = []
        size = 0
        for pk, sender, internal_date, date, sort_date, flags, length in rows:
            if page and size + length > PAGE_BYTES:
                yield page
                page, size = [], 0
            # The mbox "From " line's date is traditionally the arrival date.
            when = internal_date or date or sort_date
            page.append(_Listed(pk, sender, when, list(flags or ()), length))
            size += length
        yield page
        after = page[-1].pk


def _write_page(
    ctx: TaskContext, writer: MboxWriter | MaildirWriter, page: Sequence[_Listed], *, folders: bool
) -> tuple[int, int]:
    """Write one page; returns how many of its messages had a body, and the bytes written."""
    pks = [listed.pk for listed in page]
    with reading(ctx.engine) as conn:
        bodies = read_bodies(conn, pks)
        places = _places(conn, pks) if folders else {}
    out = [
        OutMessage(
            pk=listed.pk,
            raw=bodies[listed.pk],
            sender=listed.sender,
            date=listed.date,
            flags=listed.flags,
            folders=places.get(listed.pk, ()),
        )
        for listed in page
        if listed.pk in bodies
    ]
    return len(out), writer.write(out)


def _places(conn: Connection, pks: Sequence[int]) -> dict[int, list[tuple[str, str | None]]]:
    rows = conn.execute(
        select(locations.c.message_pk, folders.c.name, folders.c.delimiter)
        .join(folders, folders.c.id == locations.c.folder_id)
        .where(
            locations.c.message_pk.in_(list(pks)),
            locations.c.expunged_at.is_(None),
            folders.c.gone_at.is_(None),
        )
        .order_by(locations.c.message_pk, folders.c.name, locations.c.remote_key)
    ).all()
    found: dict[int, list[tuple[str, str | None]]] = {}
    for pk, name, delimiter in rows:
        found.setdefault(pk, []).append((name, delimiter))
    return found


def _load_state(path: Path) -> ExportState | None:
    try:
        return ExportState.from_dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def _save_state(path: Path, state: ExportState) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(asdict(state)).encode())
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
