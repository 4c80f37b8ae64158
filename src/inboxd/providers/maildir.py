"""Discover and list Maildir folders without reading message content.

A tree may use Maildir++ (``root/.Foo.Bar`` is folder "Foo/Bar", names in IMAP modified
UTF-7) or plain nested maildirs (``root/Foo/Bar/{cur,new,tmp}``); the root itself is
"INBOX".  Listing only stats files, so a sync can diff a large folder cheaply and read just
the messages it does not have yet.
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Literal

from inboxd.errors import InvalidField, NotFound
from inboxd.providers.base import (
    Applied,
    Capabilities,
    Changes,
    FetchedBatch,
    FetchedMessage,
    FetchPlan,
    FolderListing,
    FolderStatus,
    KnownKeys,
    Marks,
    Mutation,
    MutationRefused,
    Pending,
    ProviderAccount,
    ProviderBase,
    ProviderConfigError,
    ProviderOptions,
    RemoteFolder,
    SecretStore,
    StoredFolder,
    changed_flags,
    check_mutations,
    checked_path,
)
from inboxd.providers.maildir_keywords import keyword_letters, read_keywords

__all__ = [
    "MaildirEntry",
    "MaildirFolder",
    "MaildirProvider",
    "iter_maildir",
    "open_provider",
    "read_entry",
    "scan_maildir",
    "validate_settings",
]

INBOX = "INBOX"
MAX_NESTING = 16  # plain nested maildirs deeper than this are not looked for
_SUBDIRS = ("cur", "new", "tmp")
# Maildir info flags and the IMAP system flags they stand for, in IMAP's customary order.
_FLAG_MAP = (
    ("S", "\\Seen"),
    ("R", "\\Answered"),
    ("F", "\\Flagged"),
    ("T", "\\Deleted"),
    ("D", "\\Draft"),
)
# ":2," is the standard info separator; some tools use "!" or ";" where ":" is not allowed.
_INFO_SEPARATORS = (":2,", "!2,", ";2,")

Subdir = Literal["new", "cur"]


@dataclass(frozen=True, kw_only=True, slots=True)
class MaildirFolder:
    """A maildir found in the tree, with its IMAP-style name ("INBOX", "Foo/Bar")."""

    name: str
    path: Path


@dataclass(frozen=True, kw_only=True, slots=True)
class MaildirEntry:
    """One message file, described from its name and a stat, not its content."""

    key: str  # the unique name (before the ":2," info), stable across flag changes
    subdir: Subdir
    flags: list[str] = field(default_factory=list)
    size: int = 0
    mtime: float = 0.0
    # A str, not a Path: a sync lists every file of a folder at once, and at 100,000 files
    # Path objects cost ~20 MB more (tracemalloc: 66 vs 46 MB for the whole listing).
    path: str


def scan_maildir(root: str | Path) -> list[MaildirFolder]:
    """Every maildir folder under ``root``: INBOX first, then by name."""
    root = Path(root)
    if not root.is_dir():
        raise NotFound(f"no Maildir directory at {root}")
    found: list[MaildirFolder] = []
    if _is_maildir(root):
        found.append(MaildirFolder(name=INBOX, path=root))
    found.extend(_maildirplus_folders(root))
    found.extend(_nested_folders(root, (), 0))
    return _unique_names(found)


def iter_maildir(folder_path: str | Path) -> Iterator[MaildirEntry]:
    """The messages of one maildir folder (new/ and cur/), sorted by key; their flags
    include the keywords Dovecot's ``dovecot-keywords`` file names."""
    folder = Path(folder_path)
    if not folder.is_dir():
        raise NotFound(f"no Maildir folder at {folder}")
    keywords = read_keywords(folder)
    by_key: dict[str, MaildirEntry] = {}
    for subdir in ("new", "cur"):  # cur/ last: if a file is seen in both, cur/ is newer
        for entry in _list_subdir(folder, subdir, keywords):
            by_key[entry.key] = entry
    for key in sorted(by_key):
        yield by_key[key]


def read_entry(entry: MaildirEntry) -> bytes:
    """The message bytes, found again if another client renamed the file since listing."""
    try:
        return Path(entry.path).read_bytes()
    except FileNotFoundError:
        pass
    # A flag change or a new/ -> cur/ move renames the file; the key part stays the same.
    folder = Path(entry.path).parent.parent
    for subdir in ("cur", "new"):
        for candidate in _list_subdir(folder, subdir):
            if candidate.key == entry.key:
                try:
                    return Path(candidate.path).read_bytes()
                except FileNotFoundError:
                    continue
    raise NotFound(f"message {entry.key} is gone from {folder}")


def parse_filename(name: str, keywords: Sequence[str | None] = ()) -> tuple[str, list[str]]:
    """Split a maildir file name into its unique key and its IMAP flags (with the keywords
    its lower-case letters stand for in ``keywords``, the folder's; unknown letters are
    left out)."""
    for separator in _INFO_SEPARATORS:
        key, found, info = name.partition(separator)
        if found:
            flags = [flag for letter, flag in _FLAG_MAP if letter in info]
            for letter in sorted(c for c in set(info) if "a" <= c <= "z"):
                index = ord(letter) - ord("a")
                if index < len(keywords) and (keyword := keywords[index]) is not None:
                    flags.append(keyword)
            return key, flags
    return name, []


def _is_maildir(path: Path) -> bool:
    # tmp/ is often missing from copied or synced trees; cur/ or new/ is enough.
    return (path / "cur").is_dir() or (path / "new").is_dir()


def _list_subdir(
    folder: Path, subdir: Subdir, keywords: Sequence[str | None] = ()
) -> Iterator[MaildirEntry]:
    try:
        scanner = os.scandir(folder / subdir)
    except (FileNotFoundError, NotADirectoryError):
        return
    with scanner:
        for item in scanner:
            if item.name.startswith("."):  # hidden files are other tools' temporaries
                continue
            try:
                if not item.is_file():
                    continue
                stat = item.stat()
            except FileNotFoundError:  # expunged or renamed while we were listing
                continue
            key, flags = parse_filename(item.name, keywords)
            yield MaildirEntry(
                key=key,
                subdir=subdir,
                flags=flags,
                size=stat.st_size,
                mtime=stat.st_mtime,
                path=item.path,
            )


def _subdirectories(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as scanner:
            return sorted(
                (e for e in scanner if e.is_dir(follow_symlinks=False)), key=lambda e: e.name
            )
    except OSError:
        return []


def _maildirplus_folders(root: Path) -> Iterator[MaildirFolder]:
    for item in _subdirectories(root):
        if item.name.startswith(".") and item.name not in (".", ".."):
            path = Path(item.path)
            parts = [p for p in item.name[1:].split(".") if p]
            if parts and _is_maildir(path):
                yield MaildirFolder(name="/".join(decode_mutf7(p) for p in parts), path=path)


def _nested_folders(path: Path, prefix: tuple[str, ...], depth: int) -> Iterator[MaildirFolder]:
    if depth >= MAX_NESTING:
        return
    for item in _subdirectories(path):
        if item.name.startswith("."):
            continue  # Maildir++ folders (handled at the root) and hidden directories
        if item.name in _SUBDIRS and _is_maildir(path):
            continue  # the maildir's own cur/new/tmp, not a child folder
        child = Path(item.path)
        names = (*prefix, item.name)
        if _is_maildir(child):
            yield MaildirFolder(name="/".join(names), path=child)
        yield from _nested_folders(child, names, depth + 1)


def _unique_names(folders: list[MaildirFolder]) -> list[MaildirFolder]:
    """INBOX first, then by name; a clash (".Foo" and "Foo/") gets a numbered suffix."""
    seen: set[str] = set()
    out: list[MaildirFolder] = []
    for folder in folders:
        name, n = folder.name, 1
        while name in seen:
            n += 1
            name = f"{folder.name} ({n})"
        seen.add(name)
        out.append(MaildirFolder(name=name, path=folder.path))
    return sorted(out, key=lambda f: (f.name != INBOX, f.name))


def decode_mutf7(name: str) -> str:
    """Decode an IMAP modified UTF-7 folder name (RFC 3501 5.1.3); undecodable parts stay."""
    if "&" not in name:
        return name
    out: list[str] = []
    rest = name
    while (start := rest.find("&")) >= 0:
        end = rest.find("-", start)
        if end < 0:
            break
        out.append(rest[:start])
        out.append(_mutf7_chunk(rest[start + 1 : end]))
        rest = rest[end + 1 :]
    out.append(rest)
    return "".join(out)


def _mutf7_chunk(encoded: str) -> str:
    if not encoded:
        return "&"  # "&-" is a literal ampersand
    padded = encoded.replace(",", "/") + "=" * (-len(encoded) % 4)
    try:
        return base64.b64decode(padded, validate=True).decode("utf-16-be")
    except (ValueError, UnicodeDecodeError):
        return f"&{encoded}-"


class MaildirProvider(ProviderBase):
    """A Maildir tree as a MailProvider: folders are listed by file name (no message is
    read to plan), new messages are the keys the store does not hold yet, and a key gone
    from the listing is a message removed."""

    name = "Maildir"

    def __init__(self, root: Path, options: ProviderOptions) -> None:
        self.root = root
        self.options = options
        self._entries: dict[str, list[MaildirEntry]] = {}
        #: folder -> keys the store held when it was planned (their flags may have changed)
        self._known: dict[str, Collection[str]] = {}

    def folders(self) -> FolderListing:
        """Every maildir of the tree, listed (by file name) once per sync."""
        if not self.root.is_dir():
            raise ProviderConfigError(f"Maildir {self.root} is gone")
        found = scan_maildir(self.root)
        self._entries = {f.name: list(iter_maildir(f.path)) for f in found}
        return FolderListing(
            [(RemoteFolder(f.name), FolderStatus(len(self._entries[f.name]))) for f in found]
        )

    def pending(self, status: FolderStatus, state: StoredFolder, known: KnownKeys) -> Pending:
        """Listed keys the store does not hold."""
        keys = known()
        return Pending(sum(1 for e in self._entries[state.name] if e.key not in keys))

    def plan(
        self,
        folder: str,
        status: FolderStatus,
        state: StoredFolder,
        known: KnownKeys,
        *,
        stored: Collection[str] = (),
    ) -> FetchPlan:
        """The new keys, in batches of ``batch_messages``."""
        keys = self._known[folder] = known()
        new = [e.key for e in self._entries[folder] if e.key not in keys and e.key not in stored]
        size = self.options.batch_messages
        batches = tuple(tuple(new[n : n + size]) for n in range(0, len(new), size))
        return FetchPlan(folder=folder, batches=batches)

    def fetch(
        self,
        plan: FetchPlan,
        take: Callable[[], int | None] | None = None,
        *,
        singly: Mapping[int, str] | None = None,
        shared: bool = False,
    ) -> Generator[FetchedBatch, None, None]:
        """Each batch's files, read as they come."""
        by_key = {e.key: e for e in self._entries[plan.folder]}
        indexes = iter(range(len(plan.batches)))
        while (index := take() if take is not None else next(indexes, None)) is not None:
            entries = [by_key[key] for key in plan.batches[index]]
            messages = [
                FetchedMessage(remote_key=e.key, raw=read_entry(e), flags=tuple(e.flags))
                for e in entries
            ]
            yield FetchedBatch(messages=messages, index=index, advance=len(messages))

    def changes(
        self, folder: str, status: FolderStatus, state: StoredFolder, *, list_keys: bool
    ) -> Changes:
        """Flags of the messages stored before this sync; every key (from the listing)."""
        entries = self._entries[folder]
        before = self._known.get(folder, ())
        marks = {e.key: Marks(tuple(e.flags)) for e in entries if e.key in before}
        return Changes(marks, {e.key for e in entries}, len(entries))

    # -- mutations ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Writes flags, keywords and moves back (no labels, no network)."""
        return Capabilities(mutations=True)

    def apply(self, mutations: Sequence[Mutation]) -> list[Applied]:
        """Each mutation as one rename: the new flags in the file name's info, into the
        target folder's cur/ when it moves (a Maildir++ folder created when missing).
        Nothing is ever unlinked; a message renamed away meanwhile is an Applied error."""
        check_mutations(mutations, self.name, labels=False)
        writer = _Writer(self.root)
        return [writer.apply(mutation) for mutation in mutations]

    def current_marks(
        self, folder: str, keys: Sequence[str], *, validity: int | None = None
    ) -> dict[str, Marks]:
        """Flags and keywords of the keys still in ``folder`` (from file names)."""
        path = _folder_paths(self.root).get(folder)
        if path is None:
            return {}
        names, keywords = _file_names(path), read_keywords(path)
        out: dict[str, Marks] = {}
        for key in keys:
            if (found := names.get(key)) is not None:
                out[key] = Marks(tuple(parse_filename(os.path.basename(found), keywords)[1]))
        return out

    def locate(self, folder: str, message_id: str) -> list[str]:
        """Keys in ``folder`` of messages whose Message-ID is ``message_id`` (every
        message's header is read: for resuming, not for every change)."""
        path = _folder_paths(self.root).get(folder)
        if path is None:
            return []
        wanted = message_id.strip()
        return sorted(key for key, file in _file_names(path).items() if _message_id(file) == wanted)

    def archive_folder(self) -> str:
        """A folder named Archive (any case), else a new Maildir++ folder ``.Archive``."""
        folders = _folder_paths(self.root)
        for name in folders:
            if name.lower() == "archive":
                return name
        create_folder(self.root, "Archive")
        return "Archive"


class _Writer:
    """One apply(): the tree's folders and their files, listed once and kept current."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders = _folder_paths(root)
        self._names: dict[str, dict[str, str]] = {}
        self._keywords: dict[str, list[str | None]] = {}
        self._has_cur: set[str] = set()

    def names(self, folder: str) -> dict[str, str]:
        if folder not in self._names:
            self._names[folder] = _file_names(self.folders[folder])
        return self._names[folder]

    def _cur(self, folder: str) -> str:
        """The folder's cur/ (made when a copied tree left it out)."""
        path = os.path.join(self.folders[folder], "cur")
        if folder not in self._has_cur:
            os.makedirs(path, exist_ok=True)
            self._has_cur.add(folder)
        return path

    def keywords(self, folder: str) -> list[str | None]:
        if folder not in self._keywords:
            self._keywords[folder] = read_keywords(self.folders[folder])
        return self._keywords[folder]

    def apply(self, mutation: Mutation) -> Applied:
        applied = self._apply(mutation)
        if applied is None:
            # Renamed by another client since the folder was listed (a flag it set): the
            # key stays, so list again and try once more.
            self._names.pop(mutation.folder, None)
            applied = self._apply(mutation)
        return applied or Applied(
            mutation.key, mutation.folder, None, error=f"not in {mutation.folder} any more"
        )

    def _apply(self, mutation: Mutation) -> Applied | None:
        """The mutation done, or None when its file is not (or no longer) there."""
        folder, key = mutation.folder, mutation.key
        if folder not in self.folders or (source := self.names(folder).get(key)) is None:
            return None
        target = mutation.move_to if mutation.move_to not in (None, folder) else None
        to = target or folder
        name = os.path.basename(source)
        try:
            if target is not None and target not in self.folders:
                self.folders[target] = create_folder(self.root, target)
            flags = changed_flags(parse_filename(name, self.keywords(folder))[1], mutation)
            keywords = {f for f in flags if not f.startswith("\\")}
            letters = keyword_letters(self.folders[to], self.keywords(to), keywords)
        except (MutationRefused, InvalidField) as exc:
            return Applied(key, folder, key, error=str(exc))
        # A letter the source folder names no keyword for means nothing elsewhere.
        unknown = set() if target is not None else _unnamed(self.keywords(folder))
        info = _info(name, flags, letters, unknown)
        if target is None and sorted(info) == sorted(_info_of(name)):
            return Applied(
                key, folder, key, Marks(tuple(parse_filename(name, self.keywords(to))[1]))
            )
        new_key = key if target is None or key not in self.names(to) else _unique_key()
        new_name = f"{new_key}{_separator(name)}{info}"
        destination = os.path.join(self._cur(to), new_name)
        try:
            # Within one tree, one filesystem: the message is in one place or the other,
            # never both and never neither.
            os.rename(source, destination)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return Applied(key, folder, key, error=f"cannot rename the file: {exc.strerror}")
        del self.names(folder)[key]
        self.names(to)[new_key] = destination
        return Applied(
            key, to, new_key, Marks(tuple(parse_filename(new_name, self.keywords(to))[1]))
        )


def _folder_paths(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise ProviderConfigError(f"Maildir {root} is gone")
    return {f.name: f.path for f in scan_maildir(root)}


def _file_names(folder: Path) -> dict[str, str]:
    """key -> path of every message file (names only: nothing is stat'ed or read)."""
    out: dict[str, str] = {}
    for subdir in ("new", "cur"):  # cur/ last: if a file is seen in both, cur/ is newer
        try:
            names = os.listdir(folder / subdir)
        except (FileNotFoundError, NotADirectoryError):
            continue
        base = os.path.join(folder, subdir)
        for name in names:
            if not name.startswith("."):
                out[parse_filename(name)[0]] = os.path.join(base, name)
    return out


def _separator(name: str) -> str:
    return next((sep for sep in _INFO_SEPARATORS if sep in name), ":2,")


def _info_of(name: str) -> str:
    for separator in _INFO_SEPARATORS:
        if separator in name:
            return name.partition(separator)[2]
    return ""


def _info(name: str, flags: Sequence[str], letters: Mapping[str, str], unknown: set[str]) -> str:
    """The info letters for ``flags``: system flag letters, keyword letters, the letters
    inboxd does not manage (P, "passed") and those of ``unknown`` the name had, in ASCII
    order as Maildir asks."""
    managed = {letter for letter, _flag in _FLAG_MAP}
    lower = {f.lower() for f in flags}
    out = {letter for letter, flag in _FLAG_MAP if flag.lower() in lower}
    out |= {letters[f] for f in flags if f in letters}
    old = _info_of(name)
    out |= {c for c in old if (c.isupper() and c not in managed) or c in unknown}
    return "".join(sorted(out))


def _unnamed(keywords: Sequence[str | None]) -> set[str]:
    """Keyword letters the folder's file names nothing for."""
    named = {chr(ord("a") + n) for n, name in enumerate(keywords) if name is not None}
    return {chr(c) for c in range(ord("a"), ord("z") + 1)} - named


def _unique_key() -> str:
    """A new Maildir unique name (time, microseconds, pid, a counter, host)."""
    now = time.time()
    return (
        f"{int(now)}.M{int(now % 1 * 1_000_000)}P{os.getpid()}Q{next(_COUNTER)}."
        f"{socket.gethostname().replace('/', '_').replace(':', '_')}"
    )


_COUNTER = itertools.count(1)


def create_folder(root: Path, name: str) -> Path:
    """Create the folder ``name`` ("Foo/Bar") in the tree: Maildir++ (``root/.Foo.Bar``)
    when the root is a maildir itself, else nested directories; returns its path."""
    parts = name.split("/")
    if name == INBOX or any(not p or p.startswith(".") or "." in p for p in parts):
        raise InvalidField(f"{name!r} cannot be a Maildir folder name (no dots, no empty parts)")
    if any("\x00" in p or os.sep in p for p in parts):
        raise InvalidField(f"{name!r} cannot be a Maildir folder name")
    if _is_maildir(root):
        path = root / ("." + ".".join(encode_mutf7(p) for p in parts))
    else:
        path = root.joinpath(*parts)
    for subdir in _SUBDIRS:
        (path / subdir).mkdir(parents=True, exist_ok=True)
    if _is_maildir(root):
        (path / "maildirfolder").touch()  # Maildir++ marks its subfolders so
    return path


def encode_mutf7(name: str) -> str:
    """Encode a folder name in IMAP modified UTF-7 (RFC 3501 5.1.3). Hand-written rather than
    IMAPClient's: the web process imports this module and must not load the IMAP stack."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _message_id(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            head = file.read(256 * 1024)
    except OSError:
        return None
    end = head.find(b"\n\n")
    crlf = head.find(b"\r\n\r\n")
    if crlf >= 0 and (end < 0 or crlf < end):
        end = crlf
    header = BytesHeaderParser().parsebytes(head[: end if end >= 0 else len(head)])
    value = header.get("Message-ID")
    return str(value).strip() if value is not None else None


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A Maildir account's settings: the path of an existing directory."""
    resolved = checked_path(settings.get("path"), "maildir")
    if not resolved.is_dir():
        raise InvalidField(f"settings.path: no Maildir at {resolved}")
    return {"path": str(resolved)}


def open_provider(
    account: ProviderAccount, secrets: SecretStore, options: ProviderOptions
) -> MaildirProvider:
    """The registry's factory: a provider over the account's Maildir tree."""
    return MaildirProvider(Path(account.settings["path"]), options)
