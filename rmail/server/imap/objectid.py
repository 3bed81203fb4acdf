"""OBJECTID (RFC 8474): stable ids for mailboxes and messages, made from what the store has.

- MAILBOXID is ``F`` + the mailbox's id + ``-`` + its UIDVALIDITY: RENAME keeps both, so the
  id stays (RFC 8474 §4.2), and a mailbox deleted and created again under the same name has a
  new UIDVALIDITY, so a new id (§4: ids are never reused).
- EMAILID is ``M`` + the id of the message's stored bytes: every copy of a message (COPY,
  MOVE, one delivery to several mailboxes) refers to the same immutable bytes, so it has the
  same EMAILID, and the same EMAILID always means the same bytes (§5.1).
- THREADID is NIL: rmail does not compute threads for this (§5.2 allows NIL), so the SEARCH
  key THREADID matches nothing.

Pure functions. The SEARCH keys EMAILID and THREADID are leaves of the one evaluator
(`search`), so SEARCH, SORT, THREAD, their extended forms and updating contexts all know them.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["OBJECTID", "email_id", "mailbox_id"]

#: RFC 8474 §7: objectid = 1*255(ALPHA / DIGIT / "_" / "-").
OBJECTID: Final = re.compile(r"[A-Za-z0-9_-]{1,255}")


def mailbox_id(box: int, uidvalidity: int) -> str:
    """The MAILBOXID of the mailbox with store id `box` in its life of `uidvalidity`."""
    return f"F{box}-{uidvalidity}"


def email_id(blob_id: str) -> str:
    return f"M{blob_id}"
