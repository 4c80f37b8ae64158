"""Keywords of a Maildir folder, kept the way Dovecot keeps them.

Maildir's info suffix (``:2,FS``) has letters for the system flags only. Dovecot names up
to 26 keywords per folder in a ``dovecot-keywords`` file (lines ``0 $Label1``), and a
message carries keyword ``n`` as the lower-case letter ``chr(ord("a") + n)`` after its
flags. Reading and writing that file here lets other Dovecot-served clients see what
inboxd sets.
"""

from __future__ import annotations

import os
from pathlib import Path

from inboxd.providers.base import MutationRefused

#: The file naming a folder's keywords (in the maildir itself, beside cur/ and new/).
KEYWORDS_FILE = "dovecot-keywords"
#: Letters available for keywords: a to z.
MAX_KEYWORDS = 26


def read_keywords(folder: Path) -> list[str | None]:
    """The folder's keywords by letter index (None: a letter not in use)."""
    try:
        text = (folder / KEYWORDS_FILE).read_text("utf-8", "replace")
    except (FileNotFoundError, NotADirectoryError):
        return []
    out: list[str | None] = []
    for line in text.splitlines():
        number, _, name = line.strip().partition(" ")
        if not number.isdigit() or not name or int(number) >= MAX_KEYWORDS:
            continue
        index = int(number)
        out.extend([None] * (index + 1 - len(out)))
        out[index] = name
    return out


def keyword_letters(folder: Path, keywords: list[str | None], wanted: set[str]) -> dict[str, str]:
    """The letter of each keyword in ``wanted`` (IMAP keywords compare without regard to
    case), naming new ones in the folder's file; ``keywords`` is updated in place.
    MutationRefused when the folder's 26 letters are all taken."""
    index = {name.lower(): n for n, name in enumerate(keywords) if name is not None}
    missing = sorted(k for k in wanted if k.lower() not in index)
    if missing:
        for name in missing:
            free = next((n for n, kw in enumerate(keywords) if kw is None), len(keywords))
            if free >= MAX_KEYWORDS:
                raise MutationRefused(
                    f"the Maildir folder {folder.name} already has {MAX_KEYWORDS} keywords "
                    f"(Dovecot's limit): no letter left for {name}"
                )
            keywords.extend([None] * (free + 1 - len(keywords)))
            keywords[free] = name
            index[name.lower()] = free
        _write(folder, keywords)
    return {name: chr(ord("a") + index[name.lower()]) for name in wanted}


def _write(folder: Path, keywords: list[str | None]) -> None:
    lines = "".join(f"{n} {name}\n" for n, name in enumerate(keywords) if name is not None)
    tmp = folder / f".{KEYWORDS_FILE}.inboxd.{os.getpid()}"
    tmp.write_text(lines, "utf-8")
    # A reader sees the old file or the new one, never half of it.
    os.replace(tmp, folder / KEYWORDS_FILE)
