"""rmail's IMAP4rev1 server (RFC 3501 plus IDLE, NAMESPACE, UIDPLUS, MOVE, ID, ENABLE,
UNSELECT, LITERAL+ and SPECIAL-USE).

Layers, each with one job; only `connection` touches streams:

- `wire` — bytes → command frames (literals, LITERAL+, size limits); never reads a socket.
- `commands` — frozen Command values named after the RFC; `parser` — frames → commands.
- `protocol` — which commands each state allows, capability lists (data, not code).
- `encode` — typed responses → bytes (quoted vs literal strings decided in one place).
- `mutf7` — modified UTF-7 mailbox names.
- `selected` — one session's seq↔UID map and the moments it may tell the client of changes.
- `fetch`, `search` — pure functions over stored metadata (blob bytes only for BODY[...]).
- `handlers` — the session: async calls into the core, core errors mapped to NO once.
- `connection`, `service` — asyncio protocol, STARTTLS, IDLE waits, timeouts; `start()`.

Invariants:

- A client's bytes never reach the store or a reply unparsed: every command is framed, then
  parsed, then checked against its state's table, then handled.
- Every buffer is capped (line, literal, command, search nesting); a refused command is
  answered with NO/BAD and the connection stays in sync.
- A literal over the message-size limit is refused before any continuation is sent; a
  LITERAL+ literal over it is read and dropped, never buffered.
- Before login everything is smaller (issue 11): literals of ``limits.preauth_literal`` (a
  LITERAL+ literal over it ends the connection), lines of 64 KiB, a deadline of
  ``limits.login_timeout`` from connect, and a slot a newcomer may take when all are full.
"""

from __future__ import annotations

from .service import start

__all__ = ["start"]
