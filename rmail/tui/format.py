"""Cell and line formatting shared by the panes. Network text becomes ``rich.text.Text``, so
a peer name or a subject containing ``[bold]`` is shown as typed, never parsed as markup."""

from __future__ import annotations

import time

from rich.text import Text

#: Longest text put in one table cell; the rest is cut so a hostile value cannot widen a column forever.
MAX_CELL = 120

TLS_MODES = {"none": "plain", "starttls": "STARTTLS", "implicit": "TLS"}


#: C0 controls and DEL become U+FFFD: a peer's ESC or CR must not reach the terminal.
_CONTROLS = {c: "\N{REPLACEMENT CHARACTER}" for c in (*range(0x20), 0x7F)}


def cell(value: object, style: str = "") -> Text:
    """A table cell that is never interpreted as markup; control characters are made visible."""
    text = str(value)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return Text(text.translate(_CONTROLS), style=style, no_wrap=True, overflow="ellipsis")


def size(n: int) -> str:
    """Bytes in a short human form: 512 B, 3.4 KiB, 12.0 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def clock_time(ts: float) -> str:
    """Local wall-clock time of day for a timestamp (HH:MM:SS)."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def date_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def duration(seconds: float) -> str:
    """An uptime like 3d 04:05:06 or 04:05:06."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    hms = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {hms}" if days else hms


def relative(ts: float, now: float) -> str:
    """When a future or past moment is, relative to now: 'in 4m', '12s ago', 'now'."""
    delta = ts - now
    amount = abs(int(delta))
    if amount < 1:
        return "now"
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if amount >= seconds:
            text = f"{amount // seconds}{unit}"
            break
    return f"in {text}" if delta > 0 else f"{text} ago"


_PROTOCOL_OF_PART = {"smtp": "smtp", "submission": "smtp", "smtps": "smtp", "queue": "smtp",
                     "imap": "imap", "imaps": "imap", "http": "api", "api": "api", "rest": "api",
                     "aiohttp": "api"}


def protocol_of(logger: str) -> str:
    """The protocol a log line belongs to, from its logger name (for the Log pane's filter):
    ``rmail.smtp.session`` and ``rmail.submission`` are smtp, ``aiohttp.access`` is api."""
    if logger.startswith("mail.log"):       # aiosmtpd
        return "smtp"
    for part in logger.lower().split("."):
        if part in _PROTOCOL_OF_PART:
            return _PROTOCOL_OF_PART[part]
    return "core"
