"""Events as NOTIFY payloads: how one node's commits reach the buses of the others.

A payload is JSON: ``{"n": node id, "e": [event, ...]}`` with each event a short list
(``["m", user_id, mailbox_id]`` for MailboxChanged, ...). PostgreSQL caps a payload at 8000
bytes; a transaction with more events than fit sends ``["*"]``, which other nodes publish as
ExternalChange ("anything may have changed").
"""

from __future__ import annotations

import json
from typing import Final, Iterable

from ..events import (AccountsChanged, AliasesChanged, Event, ExternalChange, MailboxChanged, MailboxesChanged,
                      QueueChanged)

__all__ = ["CHANNEL", "decode", "encode"]

#: The one channel every node LISTENs on.
CHANNEL: Final = "rmail_changes"
#: Below PostgreSQL's 8000-byte NOTIFY payload limit, with room for the envelope.
MAX_PAYLOAD: Final = 7000


def _one(event: Event) -> list[object] | None:
    if isinstance(event, MailboxChanged):
        return ["m", event.user_id, event.mailbox_id]
    if isinstance(event, MailboxesChanged):
        return ["b", event.user_id]
    if isinstance(event, AccountsChanged):
        return ["a"]
    if isinstance(event, AliasesChanged):
        return ["l", event.domain]
    if isinstance(event, QueueChanged):
        return ["q"]
    return None   # events about this process only (connections, log lines) stay here


def encode(events: Iterable[Event], node: str) -> str | None:
    """The payload for ``events`` (duplicates once), or None when none concerns other nodes."""
    items: list[list[object]] = []
    seen: set[str] = set()
    for event in events:
        item = _one(event)
        if item is None:
            continue
        key = json.dumps(item)
        if key not in seen:
            seen.add(key)
            items.append(item)
    if not items:
        return None
    payload = json.dumps({"n": node, "e": items}, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD:
        payload = json.dumps({"n": node, "e": [["*"]]}, separators=(",", ":"))
    return payload


def decode(payload: str) -> tuple[str, list[Event]]:
    """(sending node, events). A payload this version does not understand becomes
    ExternalChange: look at everything again rather than miss a change."""
    try:
        doc = json.loads(payload)
        node = str(doc["n"])
        events: list[Event] = []
        for item in doc["e"]:
            kind = item[0]
            if kind == "m":
                events.append(MailboxChanged(int(item[1]), int(item[2])))
            elif kind == "b":
                events.append(MailboxesChanged(int(item[1])))
            elif kind == "a":
                events.append(AccountsChanged())
            elif kind == "l":
                events.append(AliasesChanged(str(item[1])))
            elif kind == "q":
                events.append(QueueChanged())
            else:
                events.append(ExternalChange())
        return node, events
    except (ValueError, KeyError, TypeError, IndexError):
        return "", [ExternalChange()]
