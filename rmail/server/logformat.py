"""The server log's two shapes: text for people, JSON lines for log shippers (``[log] format``).

A JSON line is one object: ``time`` (RFC 3339, UTC, milliseconds), ``level``, ``logger``,
``message``, then the structured fields a call gave with ``extra=`` (queue id, recipient,
outcome, client address, ...), and ``exception`` with the traceback text when there is one.
Every value is JSON-escaped, so text from the network can never start a line of its own.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                if isinstance(value, tuple):
                    value = list(value)
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None), list)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    """``kind`` is ``[log] format``: "text" or "json"."""
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)


def file_handler(path: Path) -> logging.FileHandler:
    """Appends to ``path``; a new file is made 0640 (it names users and their correspondents).

    Raises:
        OSError: the file cannot be created or opened for appending.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
    return logging.FileHandler(path, mode="a", encoding="utf-8")
