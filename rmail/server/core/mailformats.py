"""Maildir++ and mbox, the formats mail moves in and out as (pure: bytes and names only).

Maildir++ as Dovecot writes it: the INBOX is ``PATH/{cur,new}``, a folder is ``PATH/.Name``
with "." as the hierarchy separator and names in modified UTF-7; a file's flags follow
``:2,`` (``S`` Seen, ``R`` Answered, ``F`` Flagged, ``T`` Deleted, ``D`` Draft, ``a``-``z``
keywords numbered by the folder's ``dovecot-keywords`` file, lines ``N name``).

mbox: messages follow ``From `` separator lines. Reading undoes mboxrd quoting (one ``>`` off
every ``>+From `` line), which is also the mboxo rule for the ``>From `` lines that format
quotes; writing quotes mboxrd-style, so a round trip is exact. Line ends are LF in the file
and CRLF in the store (RFC 5322). Flags travel in the ``Status``/``X-Status``/``X-Keywords``
header fields, as Dovecot and mutt write them; reading removes those fields from the message
(they describe the mailbox, not the message), writing adds them.
"""

from __future__ import annotations

import base64
import calendar
import re
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

from . import mutf7

# -- flags -------------------------------------------------------------------------------------

#: Maildir info letters of the system flags, in the order a file name lists them (ASCII).
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
_FLAG_LETTER = {flag: letter for letter, flag in MAILDIR_FLAGS.items()}
#: Keyword letters a Maildir file name can carry.
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def parse_keywords_file(text: str) -> dict[int, str]:
    """``dovecot-keywords``: lines ``N name`` (N from 0 = "a"); anything else is skipped."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        number, _, name = line.strip().partition(" ")
        if number.isdigit() and name.strip() and int(number) < len(KEYWORD_LETTERS):
            out[int(number)] = name.strip()
    return out


def format_keywords_file(keywords: dict[int, str]) -> str:
    return "".join(f"{n} {name}\n" for n, name in sorted(keywords.items()))


def split_maildir_name(filename: str) -> tuple[str, str]:
    """A Maildir file name → (unique base, info letters); no ``:2,`` part → no letters."""
    base, sep, info = filename.partition(":2,")
    return (base, info) if sep else (filename, "")


def maildir_flags(info: str, keywords: dict[int, str]) -> list[str]:
    """Flags of a Maildir file from its info letters (unknown letters are ignored)."""
    flags = []
    for letter in info:
        if letter in MAILDIR_FLAGS:
            flags.append(MAILDIR_FLAGS[letter])
        elif letter in KEYWORD_LETTERS:
            name = keywords.get(KEYWORD_LETTERS.index(letter))
            if name is not None:
                flags.append(name)
    return flags


def maildir_info(flags: Iterable[str], letters: dict[str, str]) -> str:
    """Info letters for ``flags``; ``letters`` maps keyword → letter (a keyword missing there
    has no letter, the caller counts it). Sorted, as the Maildir spec asks."""
    out = {_FLAG_LETTER[f] for f in flags if f in _FLAG_LETTER}
    out |= {letters[f] for f in flags if f in letters}
    return "".join(sorted(out))


_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data: bytes) -> bytes:
    """Bare LF line ends (as Dovecot writes Maildir files) → CRLF, as RFC 5322 and the store
    have them; lines already ending CRLF stay as they are."""
    return _BARE_LF.sub(b"\r\n", data) if b"\n" in data else data


# -- folder names --------------------------------------------------------------------------------

def _mutf7_decode(name: str) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3), leniently: a malformed shift stays as it is."""
    def shift(m: re.Match[str]) -> str:
        body = m.group(1)
        if not body:
            return "&"
        try:
            raw = base64.b64decode(body.replace(",", "/") + "=" * (-len(body) % 4))
            return raw.decode("utf-16-be")
        except (ValueError, UnicodeDecodeError):
            return m.group(0)
    return re.sub(r"&([A-Za-z0-9+,]*)-", shift, name)


def folder_to_mailbox(dirname: str) -> str:
    """``.Work.Projects`` → ``Work/Projects`` (levels in modified UTF-7)."""
    return "/".join(_mutf7_decode(level) for level in dirname[1:].split("."))


def mailbox_to_folder(name: str) -> str:
    """``Work/Projects`` → ``.Work.Projects``; a "." inside a level is written shifted
    (``&AC4-``), since a bare one would split the level."""
    return "." + ".".join(mutf7.encode(level, also=".") for level in name.split("/"))


# -- mbox ---------------------------------------------------------------------------------------

_FROM_QUOTED = re.compile(rb"^>+From ")
_STATUS_FIELDS = (b"status", b"x-status", b"x-keywords")
_X_STATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}
_X_STATUS_LETTER = {flag: letter for letter, flag in _X_STATUS.items()}


@dataclass
class MboxMessage:
    data: bytes                     #: the message, CRLF line ends, status fields removed
    flags: list[str] = field(default_factory=list)
    date: int | None = None         #: from the separator line (unix seconds), if it parses


def _from_line_date(line: bytes) -> int | None:
    parts = line.decode("latin-1").split()
    # "From sender Thu Jan  1 00:00:00 1970", sometimes with a zone after the time.
    for candidate in (parts[-5:], parts[-6:-1]):
        try:
            return calendar.timegm(time.strptime(" ".join(candidate), "%a %b %d %H:%M:%S %Y"))
        except ValueError:
            continue
    return None


def _take_status(lines: list[bytes]) -> tuple[list[bytes], list[str]]:
    """Remove Status, X-Status and X-Keywords fields from the header; return their flags."""
    flags: list[str] = []
    out: list[bytes] = []
    in_header = True
    skipping = False
    for line in lines:
        if in_header:
            if line in (b"\n", b"\r\n"):
                in_header = False
            elif line[:1] in (b" ", b"\t"):
                if skipping:
                    continue
            else:
                name, colon, value = line.partition(b":")
                skipping = bool(colon) and name.strip().lower() in _STATUS_FIELDS
                if skipping:
                    field_name = name.strip().lower()
                    text = value.decode("latin-1").strip()
                    if field_name == b"status" and "R" in text:
                        flags.append("\\Seen")
                    elif field_name == b"x-status":
                        flags.extend(_X_STATUS[c] for c in text if c in _X_STATUS)
                    elif field_name == b"x-keywords":
                        flags.extend(k for k in text.replace(",", " ").split() if k)
                    continue
        out.append(line)
    return out, flags


def _finish(lines: list[bytes], date: int | None) -> MboxMessage:
    # The blank line before the next separator belongs to the format, not the message.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    lines, flags = _take_status(lines)
    body = []
    for line in lines:
        if _FROM_QUOTED.match(line):
            line = line[1:]
        if line.endswith(b"\r\n"):
            body.append(line)
        elif line.endswith(b"\n"):
            body.append(line[:-1] + b"\r\n")
        else:
            body.append(line)
    return MboxMessage(b"".join(body), list(dict.fromkeys(flags)), date)


def read_mbox(fh: BinaryIO) -> Iterator[MboxMessage]:
    """The messages of an mbox file, one at a time (the file is never read whole).

    A ``From `` line separates messages at the start of the file or after an empty line;
    elsewhere it is text (an mboxo writer may have left it unquoted). Text before the first
    separator is not a message and is skipped.
    """
    lines: list[bytes] | None = None
    date: int | None = None
    previous_blank = True
    for line in fh:
        if line.startswith(b"From ") and previous_blank:
            if lines is not None:
                yield _finish(lines, date)
            lines, date = [], _from_line_date(line)
            previous_blank = False
            continue
        previous_blank = line in (b"\n", b"\r\n")
        if lines is not None:
            lines.append(line)
    if lines is not None:
        yield _finish(lines, date)


def write_mbox_message(data: bytes, flags: Iterable[str], internaldate: int) -> bytes:
    """One message as an mboxrd entry: separator line, status fields at the end of the header,
    LF line ends, ``>``-quoted ``From `` lines, and the blank line that ends an entry."""
    flags = set(flags)
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(internaldate))
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()                                    # the message's own final line end
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    status = [b"Status: " + (b"RO" if "\\Seen" in flags else b"O")]
    x_status = "".join(letter for flag, letter in sorted(_X_STATUS_LETTER.items(), key=lambda i: i[1])
                       if flag in flags)
    if x_status:
        status.append(b"X-Status: " + x_status.encode())
    keywords = sorted(f for f in flags if not f.startswith("\\"))
    if keywords:
        status.append(b"X-Keywords: " + " ".join(keywords).encode())
    try:
        end = lines.index(b"")
    except ValueError:
        end = len(lines)
    lines[end:end] = status
    out = [b"From MAILER-DAEMON " + stamp.encode()]
    out += [b">" + line if _FROM_QUOTED.match(line) or line.startswith(b"From ") else line for line in lines]
    return b"\n".join(out) + b"\n\n"
