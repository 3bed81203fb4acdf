"""rmail's IMAP4rev1 server (RFC 3501) and its extensions: `protocol.capabilities` lists them,
docs/IMAP.md names the RFC of each and what is not supported.

Pure layers, each with one job, and one I/O shell (h11's shape: bytes in, events out):

- `wire` — bytes → command frames (literals, LITERAL+, size limits); never reads a socket.
- `commands` — the parsed commands, frozen values named after the RFC; `parser` — frames →
  commands. Only the connection calls the parser; everything above imports `commands`.
- `protocol` — which commands each state allows, capability lists (data, not code).
- `state` — what one session knows (user, selected mailbox, doorbell) and the helpers every
  handler shares; `handlers/` — the handlers by area: `auth`, `mailboxes`, `messages`,
  `search`, `sync`, each depending on `state` only; `session` — the state plus the dispatch
  of each command to its handler.
- `encode` — every byte the server sends: typed responses, the hot-path byte builders, one
  text rule; strings by `core.imapstring`, the rule that also wrote the stored ENVELOPE and
  BODYSTRUCTURE. `errors` — every error's reply, mapped once.
- `selected` — one session's seq↔UID map and the moments it may tell the client of changes.
- `listing` — which names LIST and LSUB return, with which attributes; the wildcard matcher.
- `fetch`, `search` — pure functions over stored metadata (message bytes only for BODY[...]);
  `stream` — a stored file's bytes into a FETCH literal, chunk by chunk; `deflate` —
  COMPRESS=DEFLATE both ways, in bounded steps.
- `sort`, `thread` — SORT's ordering and THREAD's algorithms (RFC 5256) over the matches of
  a search, pure like `search`.
- `results` — a search (or sort) result in its requested order and what ESEARCH says of it;
  `context` — the saved result "$" and the updating searches of the selected mailbox.
- `connection`, `service` — asyncio protocol, STARTTLS, timeouts; `start()`.

Invariants:

- A client's bytes never reach the store or a reply unparsed: every command is framed, then
  parsed, then checked against its state's table, then handled.
- Nothing but `encode` writes protocol syntax (tests/imap/test_imap_layout.py): a quoting,
  literal or sanitising rule lives in one place, and each reply text is one bounded line.
- Every buffer is capped (line, literal, command, search nesting); a refused command is
  answered with NO/BAD and the connection stays in sync.
- A literal over the message-size limit is refused before any continuation is sent; a
  LITERAL+ literal over it is read and dropped, never buffered.
- Before login everything is smaller (issue 11): literals of ``limits.preauth_literal`` (a
  LITERAL+ literal over it ends the connection), lines of 64 KiB, a deadline of
  ``limits.login_timeout`` from connect, and a slot a newcomer may take when all are full.
- A compressed connection (COMPRESS) feeds the framer in bounded inflated steps, so every
  cap above holds for the inflated stream too.
- The package sees the store only through the storage contract (`core.storage`), so it runs
  the same on every backend and node.
"""

from __future__ import annotations

from .service import start

__all__ = ["start"]
