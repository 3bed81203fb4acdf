"""What one IMAP session knows, and the few things every handler does with it.

`SessionState` holds a client's state — the connection state (RFC 3501 §3), the logged-in
user, the selected mailbox and its doorbell — with the helpers the handlers share (writing
responses, requiring a selected or writable mailbox, deselecting). Handlers depend on this
module only; `session.Session` adds running commands on top.

Invariants:

- `state` is SELECTED exactly when `selected` is set, and then `bell` is the doorbell
  subscription of that mailbox; `deselect` gives both back together.
- `user` is set from a successful login on, and never changes after.
- Everything written goes through `encode` (`send` for typed responses, `out.write` for the
  encoder's hot-path bytes); nothing here touches a socket.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Final, Protocol

from rmail.server.core import mutf7
from rmail.server.core.accounts import Accounts
from rmail.server.core.authguard import AuthGuard
from rmail.server.core.connections import ConnectionInfo, ConnectionRegistry
from rmail.server.core.events import Doorbell, EventBus
from rmail.server.core.lru import SizedLRU
from rmail.server.core.mime import HeaderLines
from rmail.server.core.model import Account
from rmail.server.core.quota import Quotas
from rmail.server.core.slicing import OnePerKey
from rmail.server.core.storage.mail import MailStore

from .encode import Atom, Code, Response, Status, encode, encode_all
from .errors import CommandError
from .protocol import State, capabilities
from .selected import SelectedMailbox
from .wire import DEFAULT_MAX_LITERAL

__all__ = ["AUTOLOGOUT", "Notifier", "Output", "ReadLine", "Services", "SessionState"]

#: RFC 3501 §5.4: an autologout timer of at least 30 minutes.
AUTOLOGOUT: Final = 30 * 60
#: Capacity of the parsed-header cache (Services.headers).
HEADER_CACHE_BYTES: Final = 8 * 1024 * 1024


class Notifier(Protocol):
    """NOTIFY's subscription (RFC 5465, `handlers.notify`): IDLE waits on its bell and pushes
    its news; the session stops it when NOTIFY changes or the connection ends."""

    bell: Doorbell

    async def push(self) -> None: ...

    def stop(self) -> None: ...


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
    #: The largest message APPEND takes (config [limits] message_size): APPENDLIMIT=n and
    #: STATUS APPENDLIMIT (RFC 7889); None: not advertised.
    append_limit: int | None = None
    #: Parsed headers of messages fetched lately, by blob id: clients scanning headers
    #: (BODY.PEEK[HEADER.FIELDS (...)]) need each message's header parsed once (fetch.py).
    headers: SizedLRU[str, HeaderLines] = field(default_factory=lambda: SizedLRU(HEADER_CACHE_BYTES))

    @property
    def max_message(self) -> int:
        """The largest message APPEND stores, one CATENATE builds included: the configured
        limit, or the literal bound the server has without one."""
        return self.append_limit if self.append_limit is not None else DEFAULT_MAX_LITERAL


class SessionState:
    """One client's IMAP session state (RFC 3501 §3) and what handlers share."""

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
        #: What ENABLE has turned on (RFC 5161; the names of `protocol.ENABLE`).
        self.enabled: set[str] = set()
        #: COMPRESS DEFLATE was accepted (RFC 4978): the connection compresses from the end of
        #: the tagged OK on, both ways.
        self.compressing = False
        #: NOTIFY in force (RFC 5465), None when off.
        self.notifier: Notifier | None = None
        #: Held while a command runs: NOTIFY's pusher writes only between commands.
        self.writing = asyncio.Lock()

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
                            authenticated=self.state is not State.NOT_AUTHENTICATED,
                            append_limit=self.services.append_limit)

    @property
    def utf8(self) -> bool:
        """UTF8=ACCEPT (RFC 6855) or IMAP4rev2 (RFC 9051 §5.1) is enabled: mailbox names
        travel as UTF-8."""
        return "UTF8=ACCEPT" in self.enabled or self.rev2

    @property
    def rev2(self) -> bool:
        """The client enabled IMAP4rev2 (RFC 9051 Appendix A): the one switch every IMAP4rev2
        difference reads (docs/IMAP.md "IMAP4rev2"); without it the session is IMAP4rev1."""
        return "IMAP4REV2" in self.enabled

    def wire_mailbox(self, name: str) -> str:
        """A mailbox name as this session sends it: modified UTF-7 (RFC 3501 §5.1.3), or the
        name itself once UTF8=ACCEPT or IMAP4rev2 is enabled (RFC 6855 §3, RFC 9051 §5.1);
        the parser reads names back by the same rule."""
        return name if self.utf8 else mutf7.encode(name)

    def capability_code(self) -> Code:
        """``[CAPABILITY ...]`` for the greeting and a successful login."""
        return Code("CAPABILITY", tuple(Atom(cap) for cap in self.capabilities()))

    @property
    def condstore(self) -> bool:
        """RFC 7162: CONDSTORE is on (ENABLE, or any command that uses it, §3.1), for good."""
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        """RFC 7162 §3.2.3: QRESYNC is on (ENABLE QRESYNC only, which turns CONDSTORE on too)."""
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """Turn CONDSTORE on. The first time, with a mailbox selected, the client learns its
        HIGHESTMODSEQ (RFC 7162 §3.1): the MODSEQ up to which it has heard everything."""
        if self.condstore:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.send(Status("OK", "highest mod-sequence",
                             Code("HIGHESTMODSEQ", (self.selected.synced_modseq,))))

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
