"""The storage contract: what adapters, the console and the CLI may rely on.

Everything here is a ``typing.Protocol`` (plus the small values they exchange); the backends
implement them in their own packages, ``core/sqlite/`` (the embedded default) and
``core/postgres/`` (``[store] url``, several nodes on one database). Nothing outside a backend
package imports its driver; ``open_backend`` is the one place that picks one.

Invariants every backend keeps (the contract tests in tests/contract/ check them):

- Acknowledged means committed: a coroutine that changes data returns only once the change is
  durable (SQLite ``synchronous=FULL`` with flushed blob files; PostgreSQL
  ``synchronous_commit=on``).
- UIDs are strictly ascending per mailbox and never reused, however many writers (threads,
  processes, nodes) append at once. A mailbox id names one life of a mailbox and is never
  reused; UIDVALIDITY is new for every life, and nothing of an old life (messages, expunge
  records, MODSEQs) reaches a later one.
- Every change to a mailbox bumps its HIGHESTMODSEQ and stamps what it touched with it;
  expunges leave records, so ``changes_since`` tells a session exactly what happened.
- A delivery to several mailboxes plus its outbound queue entries is one transaction.
- Events are published only after the commit that caused them, on every node: the change feed
  turns other processes' and nodes' commits into the same events on the local bus.
- Message bytes are reached through ``open_message`` (a size and async chunks), never a path.
"""

from __future__ import annotations

from .backend import Backend, StoreLocation, open_backend, open_key_store
from .body import BytesBody, MessageBody
from .directory import AddressLookup, Directory, UserUsage
from .flags import columns_to_flags, flags_to_columns, validate_flags
from .mail import Import, MailboxSnapshot, MailStore, Outbound, SpaceGuard
from .names import normalize_mailbox_name
from .queuestore import QueueStore
from .throttle import Bucket, FailureCount, FailureLedger, Standing
from .views import FolderRow, MailViews, MessageRow, Owner, flag_list, ordered_flags

__all__ = [
    "AddressLookup", "Backend", "Bucket", "BytesBody", "Directory", "FailureCount", "FailureLedger", "FolderRow",
    "Import", "MailStore", "MailViews", "MailboxSnapshot", "MessageBody", "MessageRow", "Outbound", "Owner",
    "QueueStore", "SpaceGuard", "Standing", "StoreLocation", "UserUsage", "columns_to_flags", "flag_list",
    "flags_to_columns", "normalize_mailbox_name", "open_backend", "open_key_store", "ordered_flags", "validate_flags",
]
