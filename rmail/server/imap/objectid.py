"""OBJECTID (RFC 8474): stable ids for mailboxes and messages, made from what the store has.

- MAILBOXID is ``F`` + the mailbox's id + ``-`` + its UIDVALIDITY: RENAME keeps both, so the
  id stays (RFC 8474 §4.2), and a mailbox deleted and created again under the same name has a
  new UIDVALIDITY, so a new id (§4: ids are never reused).
- EMAILID is ``M`` + the id of the message's stored bytes: every copy of a message (COPY,
  MOVE, one delivery to several mailboxes) refers to the same immutable bytes, so it has the
  same EMAILID, and the same EMAILID always means the same bytes (§5.1).
- THREADID is NIL: rmail does not compute threads for this (§5.2 allows NIL), so the SEARCH
  key THREADID matches nothing.

Pure functions and one store look-up for the SEARCH key EMAILID.
"""

from __future__ import annotations

import re
from typing import Final

from rmail.server.core.model import Mailbox

from . import commands as c
from .state import SessionState

__all__ = ["OBJECTID", "email_id", "mailbox_id", "resolve_search"]

#: RFC 8474 §7: objectid = 1*255(ALPHA / DIGIT / "_" / "-").
OBJECTID: Final = re.compile(r"[A-Za-z0-9_-]{1,255}")
#: UIDs per store read when SEARCH EMAILID looks for a message's copies.
_BATCH: Final = 1000


def mailbox_id(mailbox: Mailbox) -> str:
    return f"F{mailbox.id}-{mailbox.uidvalidity}"


def email_id(blob_id: str) -> str:
    return f"M{blob_id}"


def _has_objectid(key: c.SearchKey) -> bool:
    if isinstance(key, c.SearchObjectId):
        return True
    if isinstance(key, c.SearchAnd):
        return any(_has_objectid(k) for k in key.keys)
    if isinstance(key, c.SearchOr):
        return _has_objectid(key.left) or _has_objectid(key.right)
    if isinstance(key, c.SearchNot):
        return _has_objectid(key.key)
    return False


async def resolve_search(s: SessionState, key: c.SearchKey) -> c.SearchKey:
    """`key` with every EMAILID / THREADID key replaced by the UID set it stands for in the
    selected mailbox (RFC 8474 §6), so the evaluator needs nothing new. A SEARCH without them
    costs one walk of its key tree; with EMAILID, one read of the mailbox's messages."""
    if not _has_objectid(key):
        return key
    view = s.require_view()
    by_blob: dict[str, list[int]] = {}
    uids = list(view.uids)
    for start in range(0, len(uids), _BATCH):
        for meta in await s.store.get_meta(view.mailbox.id, uids[start:start + _BATCH]):
            by_blob.setdefault(meta.blob_id, []).append(meta.uid)
    return _replace(key, by_blob)


def _nothing() -> c.SearchKey:
    return c.SearchNot(c.SearchAll())


def _replace(key: c.SearchKey, by_blob: dict[str, list[int]]) -> c.SearchKey:
    if isinstance(key, c.SearchObjectId):
        if key.kind != "EMAILID" or not key.value.startswith("M"):
            return _nothing()  # THREADID is NIL for every message
        found = by_blob.get(key.value[1:])
        if not found:
            return _nothing()
        return c.SearchSeq(c.SeqSet(tuple((u, u) for u in sorted(found))), uid=True)
    if isinstance(key, c.SearchAnd):
        return c.SearchAnd(tuple(_replace(k, by_blob) for k in key.keys))
    if isinstance(key, c.SearchOr):
        return c.SearchOr(_replace(key.left, by_blob), _replace(key.right, by_blob))
    if isinstance(key, c.SearchNot):
        return c.SearchNot(_replace(key.key, by_blob))
    return key
