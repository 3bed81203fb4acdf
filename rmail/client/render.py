"""How values look on screen (pure): list cells and the reader's header block.

Everything returns ``rich.text.Text`` built with ``append``, so text from the network is never
interpreted as markup.
"""

from __future__ import annotations

import email.utils
from datetime import datetime

from rich.text import Text

from rmail.client.compose import format_addresses
from rmail.client.model import Folder, MessageSummary, ReadableMessage

#: Longest subject/from shown in a list cell; the table would otherwise measure huge strings.
MAX_CELL = 200


def human_size(size: int) -> str:
    """``512 B``, ``1.5 KB``, ``12 MB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def short_date(date: str, now: datetime | None = None) -> str:
    """``HH:MM`` today, ``Mon DD`` this year, else ``YYYY-MM-DD`` (local time)."""
    try:
        dt = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return date[:16]
    if dt is None:
        return date[:16]
    if dt.tzinfo is not None:
        dt = dt.astimezone()
        now = now.astimezone() if now is not None and now.tzinfo else now
    now = now or datetime.now(dt.tzinfo)
    if dt.date() == now.date():
        return dt.strftime("%H:%M")
    if dt.year == now.year:
        return dt.strftime("%b %d")
    return dt.strftime("%Y-%m-%d")


def flag_cell(s: MessageSummary) -> Text:
    marks = Text()
    marks.append("●" if not s.seen else " ", style="bold")
    marks.append("★" if s.flagged else " ", style="yellow")
    marks.append("↩" if "\\Answered" in s.flags else " ")
    return marks


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def summary_cells(s: MessageSummary, depth: int = 0, now: datetime | None = None) -> tuple[Text, Text, Text, Text, Text]:
    """(flags, date, from, subject, size) for one list row."""
    style = "" if s.seen else "bold"
    subject = Text(style=style)
    if depth:
        subject.append("  " * min(depth - 1, 8) + "└ ", style="dim")
    subject.append(_clip(s.subject) or "(no subject)")
    return (
        flag_cell(s),
        Text(short_date(s.date, now), style=style),
        Text(_clip(s.from_text) or "(unknown)", style=style),
        subject,
        Text(human_size(s.size), justify="right"),
    )


def folder_label(f: Folder) -> Text:
    label = Text(f.leaf)
    if f.unseen:
        label.stylize("bold")
        label.append(f" ({f.unseen})", style="bold")
    return label


def header_block(m: ReadableMessage) -> Text:
    """From/To/Cc/Date/Subject lines for the reader."""
    out = Text()
    rows = [("From", format_addresses(m.sender)), ("To", format_addresses(m.to))]
    if m.cc:
        rows.append(("Cc", format_addresses(m.cc)))
    rows += [("Date", m.date), ("Subject", m.subject)]
    for k, (name, value) in enumerate(rows):
        if k:
            out.append("\n")
        out.append(f"{name + ':':<9}", style="bold")
        out.append(value)
    return out
