"""One client's IMAP session: each command checked against its state and dispatched.

`Session.execute` runs one parsed command: it checks the state table (`protocol`), runs the
command's handler (`handlers`), turns a refusal or a core error into the tagged reply once
(`errors`), sends the selected mailbox's news when RFC 3501 §7.4.1 allows (`handlers.sync`),
and writes the tagged reply. The session never touches a socket: it writes to an `Output`
and reads continuation lines (AUTHENTICATE, IDLE) through a callback the connection provides;
its state is `state.SessionState`'s.

Invariants:

- `protocol.COMMANDS_BY_STATE` alone decides which commands run in which state; every command
  class there has exactly one handler (`handlers.HANDLERS`).
- A command's tagged reply is the last thing it writes; the selected mailbox's pending news
  comes just before it (never an EXPUNGE after FETCH, STORE or SEARCH, RFC 3501 §7.4.1).
- Untagged responses that belong together go out in one write: every write to an idle socket
  is a send() and a wakeup of the client (SELECT written in four pieces made a connect, login,
  select, store, logout cycle about 30% dearer in CPU, client and server in one process).
- A bug in a handler is logged and answered ``NO [SERVERBUG]``; the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from rmail.server.core.errors import RmailError

from . import commands as c
from .encode import Status, Tagged
from .errors import CommandError, SessionClosed, core_error_reply, reply
from .context import with_saved_result
from .handlers import HANDLERS
from .handlers.sync import flush
from .protocol import State, allowed
from .selected import InvalidSequence
from .state import SessionState

__all__ = ["Session"]

log = logging.getLogger("rmail.imap")

#: Commands during which EXPUNGE responses are forbidden (RFC 3501 §7.4.1, RFC 5256 §3).
_NO_EXPUNGE: Final = (c.Fetch, c.Store, c.Search, c.Sort, c.Thread)


class Session(SessionState):
    """One client's IMAP session (RFC 3501 §3 states): the connection's entry points."""

    async def greeting(self) -> None:
        self.send(Status("OK", "rmail IMAP4rev1 ready", self.capability_code()))
        await self.out.drain()

    async def execute(self, cmd: c.Command) -> None:
        """Run one command and write all its responses, the tagged one last.

        Raises:
            SessionClosed: the connection must close after this command.
        """
        async with self.writing:    # NOTIFY's news goes between commands (handlers.notify)
            await self._execute(cmd)

    async def _execute(self, cmd: c.Command) -> None:
        if not allowed(self.state, cmd):
            self.send(Tagged(cmd.tag, "BAD", f"{type(cmd).__name__.upper()} not allowed in "
                             f"the {self.state.value} state"))
            return
        tagged: Tagged | Status
        if self.selected is not None:
            cmd = with_saved_result(self, cmd)  # "$" (RFC 5182) as the messages it holds
        try:
            tagged = await HANDLERS[type(cmd)](self, cmd)
        except CommandError as exc:
            tagged = reply(exc, cmd.tag)
        except InvalidSequence as exc:
            tagged = Tagged(cmd.tag, "BAD", str(exc))
        except RmailError as exc:
            tagged = core_error_reply(cmd.tag, exc)
        except (SessionClosed, asyncio.CancelledError):
            raise
        except Exception:  # noqa: BLE001 - a bug: log it, never show a traceback (STYLE)
            log.exception("imap: %s failed", type(cmd).__name__)
            tagged = Tagged(cmd.tag, "NO", "internal server error", "SERVERBUG")
        if self.selected is not None and not isinstance(cmd, (c.Logout, c.Idle)):
            await flush(self, allow_expunge=not isinstance(cmd, _NO_EXPUNGE))
        self.send(tagged)
        if self.state is State.LOGOUT:
            await self.out.drain()
            raise SessionClosed()

    def close(self) -> None:
        """Release subscriptions; called by the connection when it ends."""
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        self.deselect()
