"""One client's IMAP session: the state its commands share, and each command dispatched.

`Session.execute` runs one parsed command: it checks the state table (`protocol`), runs the
command's handler (`handlers`), turns a refusal or a core error into the tagged reply once
(`errors`), sends the selected mailbox's news when RFC 3501 §7.4.1 allows (`handlers.sync`),
and writes the tagged reply. The session never touches a socket: it writes to an `Output`
and reads continuation lines (AUTHENTICATE, IDLE) through a callback the connection provides.

Invariants:

- `protocol.COMMANDS_BY_STATE` alone decides which commands run in which state; every command
  class there has exactly one handler (`handlers.HANDLERS`).
- A command's tagged reply is the last thing it writes; the selected mailbox's pending news
  comes just before it (never an EXPUNGE after FETCH, STORE or SEARCH, RFC 3501 §7.4.1).
- Every byte written goes through `encode`.
- `state` is SELECTED exactly when `selected` is set, and a selected session holds a doorbell
  subscription that `deselect` (or `close`) gives back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Final, Protocol

from rmail.server.core.accounts import Accounts
from rmail.server.core.authguard import AuthGuard
from rmail.server.core.connections import ConnectionInfo, ConnectionRegistry
from rmail.server.core.errors import RmailError
from rmail.server.core.events import Doorbell, EventBus
from rmail.server.core.model import Account
from rmail.server.core.quota import Quotas
from rmail.server.core.slicing import OnePerKey
from rmail.server.core.storage.mail import MailStore

from . import commands as c
from .encode import Atom, Code, Response, Status, Tagged, encode, encode_all
from .errors import CommandError, SessionClosed, core_error_reply, reply
from .handlers import HANDLERS
from .handlers.sync import flush
from .protocol import State, allowed, capabilities
from .selected import InvalidSequence, SelectedMailbox

__all__ = ["AUTOLOGOUT", "Output", "ReadLine", "Services", "Session"]

log = logging.getLogger("rmail.imap")

#: RFC 3501 §5.4: an autologout timer of at least 30 minutes.
AUTOLOGOUT: Final = 30 * 60
#: Commands during which EXPUNGE responses are forbidden (RFC 3501 §7.4.1).
_NO_EXPUNGE: Final = (c.Fetch, c.Store, c.Search)


class Output(Protocol):
    """Where a session writes; the connection implements it over a transport."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


#: Reads one raw line from the client (AUTHENTICATE responses, IDLE's DONE); None when the
#: client went away.
ReadLine = Callable[[], Awaitable["bytes | None"]]


@dataclass(frozen=True, slots=True)
class Services:
    """What sessions need from the runtime (built once per listener set)."""

    store: MailStore
    accounts: Accounts
    throttle: AuthGuard
    bus: EventBus
    connections: ConnectionRegistry
    tls_configured: bool
    max_per_user: int
    autologout: float = AUTOLOGOUT
    #: CPU seconds one SEARCH may spend on the event loop (config [limits] search_budget).
    search_budget: float | None = None
    quotas: Quotas | None = None    # APPEND and COPY check them; None in tests without
    scans: OnePerKey = field(default_factory=OnePerKey)


class Session:
    """One client's IMAP session (RFC 3501 §3 states)."""

    def __init__(self, services: Services, out: Output, *, peer: str, tls_active: bool,
                 info: ConnectionInfo | None = None, read_line: ReadLine | None = None) -> None:
        self.services = services
        self.store: MailStore = services.store
        self.out = out
        self.peer = peer
        self.tls_active = tls_active
        self.info = info
        self.read_line = read_line
        self.state = State.NOT_AUTHENTICATED
        self.user: Account | None = None
        self.selected: SelectedMailbox | None = None
        #: Rings when the selected mailbox (or the user's mailbox list) may have changed.
        self.bell: Doorbell | None = None
        #: Set by the doorbell's filter when the mailbox list may have changed: the next flush
        #: then checks that the selected mailbox still exists (and learns a new name).
        self.check_mailbox = False

    # -- what handlers share ------------------------------------------------------------------

    def send(self, *responses: Response) -> None:
        """Write typed responses (the hot paths write `encode`'s bytes with `out.write`)."""
        self.out.write(encode(responses[0]) if len(responses) == 1 else encode_all(responses))

    @property
    def account(self) -> Account:
        """The logged-in user; only commands of the authenticated states ask."""
        assert self.user is not None
        return self.user

    def capabilities(self) -> tuple[str, ...]:
        return capabilities(tls_configured=self.services.tls_configured,
                            tls_active=self.tls_active,
                            authenticated=self.state is not State.NOT_AUTHENTICATED)

    def capability_code(self) -> Code:
        """``[CAPABILITY ...]`` for the greeting and a successful login."""
        return Code("CAPABILITY", tuple(Atom(cap) for cap in self.capabilities()))

    def require_view(self) -> SelectedMailbox:
        if self.selected is None:
            raise CommandError("BAD", "no mailbox selected")
        return self.selected

    def require_writable(self) -> SelectedMailbox:
        view = self.require_view()
        if view.readonly:
            raise CommandError("NO", "mailbox is read-only", "READ-ONLY")
        return view

    def deselect(self) -> None:
        """Leave the selected mailbox (if any) and give its subscription back."""
        if self.bell is not None:
            self.services.bus.unsubscribe(self.bell)
            self.bell = None
        self.selected = None
        self.check_mailbox = False
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    # -- the connection's entry points --------------------------------------------------------

    async def greeting(self) -> None:
        self.send(Status("OK", "rmail IMAP4rev1 ready", self.capability_code()))
        await self.out.drain()

    async def execute(self, cmd: c.Command) -> None:
        """Run one command and write all its responses, the tagged one last.

        Raises:
            SessionClosed: the connection must close after this command.
        """
        if not allowed(self.state, cmd):
            self.send(Tagged(cmd.tag, "BAD", f"{type(cmd).__name__.upper()} not allowed in "
                             f"the {self.state.value} state"))
            return
        tagged: Tagged | Status
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
        self.deselect()
