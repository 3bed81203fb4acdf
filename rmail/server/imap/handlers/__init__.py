"""Command handlers, one module per area of the protocol.

- `auth` — CAPABILITY, ID, ENABLE, LOGOUT, STARTTLS (when the connection cannot), LOGIN,
  AUTHENTICATE (SASL PLAIN and LOGIN): what a client says before and at login.
- `mailboxes` — CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, NAMESPACE
  (what LIST/LSUB return is `listing`'s).
- `messages` — FETCH (streaming large bodies), STORE, COPY, MOVE, EXPUNGE, UID EXPUNGE, APPEND.
- `search` — SEARCH, SORT and THREAD (RFC 5256).
- `esearch` — SEARCH with RETURN options (ESEARCH, SEARCHRES, CONTEXT=SEARCH), CANCELUPDATE.
- `urlauth` — GENURLAUTH, RESETKEY, URLFETCH (RFC 4467, RFC 5524).
- `sync` — SELECT, EXAMINE, NOOP, CHECK, CLOSE, UNSELECT, IDLE, and `flush`: the selected
  mailbox's news, sent at the moments RFC 3501 §7.4.1 allows.
- `notify` — NOTIFY (RFC 5465) and the news it pushes about other mailboxes.
- `quota` — GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208) and STATUS DELETED/DELETED-STORAGE.

The contract of a handler: ``async def handler(session, command) -> Tagged``. It may write
untagged responses (through `encode`, never by hand) and returns the tagged reply, which the
session writes last; it refuses with `errors.CommandError` or lets a core error through (the
session maps both once). It sees the session as a `state.SessionState` and reads and changes
only that state.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Final, Mapping

from ..commands import Command
from ..encode import Tagged
from . import auth, mailboxes, messages, search, sync, urlauth
from . import esearch
from . import quota
from . import notify

__all__ = ["HANDLERS", "Handler"]

#: ``async (session, command) -> Tagged``; the command is the class the table maps to it.
Handler = Callable[..., Awaitable[Tagged]]

#: The handler of every command class (tests/imap check it matches protocol.py's tables).
HANDLERS: Final[Mapping[type[Command], Handler]] = {
    **auth.HANDLERS, **mailboxes.HANDLERS, **messages.HANDLERS, **search.HANDLERS,
    **sync.HANDLERS, **urlauth.HANDLERS,
    **esearch.HANDLERS,
    **quota.HANDLERS,
    **notify.HANDLERS,
}
